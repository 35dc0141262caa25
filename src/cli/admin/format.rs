//! Text output: tables, ages, names.

use super::*;

// ---------------------------------------------------------------- formatting

pub(super) fn now_ms() -> u64 {
    crate::util::now_ms()
}

pub(super) fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `5m ago`, `in 2h`, or `-` for a missing time.
pub(super) fn age(v: &Value) -> String {
    let Some(t) = v.as_u64() else {
        return "-".into();
    };
    let now = now_ms();
    if t <= now {
        if now - t < 1000 {
            "just now".into()
        } else {
            format!("{} ago", span(now - t))
        }
    } else {
        format!("in {}", span(t - now))
    }
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".into(),
    }
}

pub(super) fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

pub(super) fn first_text(candidates: &[&Value]) -> String {
    candidates
        .iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .unwrap_or("-")
        .to_string()
}

/// Left-aligned columns separated by two spaces.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                let pad = widths[i] - c.chars().count() + 2;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub(super) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

pub(super) fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A device's human name: label, else display name.
pub(super) fn device_name(d: &Value) -> String {
    first_text(&[&d["label"], &d["operatorLabel"], &d["displayName"]])
}

pub(super) fn client_desc(client_id: &Value, platform: &Value) -> String {
    match (client_id.as_str(), platform.as_str()) {
        (Some(c), Some(p)) if !p.is_empty() => format!("{c}/{p}"),
        (Some(c), _) => c.to_string(),
        _ => "-".into(),
    }
}
