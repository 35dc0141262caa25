//! Text output: tables, ages, names.

use super::*;

// ---------------------------------------------------------------- formatting

pub(super) fn now_ms() -> u64 {
    crate::util::now_ms()
}

pub(super) fn span(ms: u64) -> String {
    crate::cli::text::since(0, ms)
}

/// `5m ago`, `in 2h`, or `-` for a missing time.
pub(super) fn at(t: Option<u64>) -> String {
    let Some(t) = t else {
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

/// A text field, `-` when missing or empty.
pub(super) fn opt(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

/// A list as `a,b`, `-` when empty.
pub(super) fn csv(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
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

pub(super) use crate::cli::text::plural;

/// A device's human name: label, else display name.
pub(super) fn device_name(d: &dto::Device) -> String {
    [&d.label, &d.paired.operator_label, &d.paired.display_name]
        .into_iter()
        .find_map(|s| s.as_deref().filter(|s| !s.is_empty()))
        .unwrap_or("-")
        .to_string()
}

pub(super) fn client_desc(client_id: Option<&str>, platform: Option<&str>) -> String {
    match (client_id, platform) {
        (Some(c), Some(p)) if !p.is_empty() => format!("{c}/{p}"),
        (Some(c), _) => c.to_string(),
        _ => "-".into(),
    }
}
