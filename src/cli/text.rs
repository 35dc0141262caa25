//! Wording shared by the CLI commands and the doctor.

/// `1 session`, `3 sessions`.
pub fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The time from `ts` to `now` (ms) in its largest unit: `42s`, `5m`, `3h`, `2d`.
pub fn since(ts: u64, now: u64) -> String {
    let s = now.saturating_sub(ts) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `5m ago`, or `just now` within the same second (or for a time ahead).
pub fn ago(ts: u64, now: u64) -> String {
    if ts >= now || now - ts < 1000 {
        "just now".into()
    } else {
        format!("{} ago", since(ts, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wording() {
        assert_eq!(plural(1, "session"), "1 session");
        assert_eq!(plural(0, "session"), "0 sessions");
        assert_eq!(since(0, 59_999), "59s");
        assert_eq!(since(0, 3_600_000), "1h");
        assert_eq!(ago(10_000, 10_500), "just now");
        assert_eq!(ago(20_000, 10_000), "just now");
        assert_eq!(ago(0, 120_000), "2m ago");
        assert_eq!(ago(0, 2 * 86_400_000), "2d ago");
    }
}
