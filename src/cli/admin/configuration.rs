//! `clawgate config show|reload|…`.

use super::*;

pub(super) fn source_text(src: &Value) -> String {
    match src["kind"].as_str().unwrap_or("") {
        "file" => {
            let file = src["file"].as_str().unwrap_or("file");
            match (src["line"].as_u64(), src["column"].as_u64()) {
                (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
                _ => file.to_string(),
            }
        }
        "env" => format!("env {}", src["variable"].as_str().unwrap_or("?")),
        "override" => format!(
            "override by {} {}",
            src["setBy"].as_str().unwrap_or("?"),
            src["setAtMs"]
                .as_u64()
                .map(|t| format!("({} ago)", ago(t)))
                .unwrap_or_default()
        ),
        "flag" => format!("flag {}", src["flag"].as_str().unwrap_or("?")),
        "generated" => format!("generated into {}", src["file"].as_str().unwrap_or("?")),
        other => other.to_string(),
    }
}

pub(super) fn ago(t: u64) -> String {
    crate::cli::text::since(t, now_ms())
}

pub(super) fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub(super) fn print_config(body: &Value, explain: bool) {
    if !explain {
        println!(
            "{}",
            serde_json::to_string_pretty(&body["config"]).unwrap_or_default()
        );
        return;
    }
    let keys = body["keys"].as_array().cloned().unwrap_or_default();
    let width = keys
        .iter()
        .map(|k| k["key"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(10);
    let vwidth = keys
        .iter()
        .map(|k| short(&k["value"]).len().min(40))
        .max()
        .unwrap_or(5);
    println!("{:width$}  {:vwidth$}  SOURCE", "KEY", "VALUE");
    for k in &keys {
        println!(
            "{:width$}  {:vwidth$}  {}",
            k["key"].as_str().unwrap_or(""),
            short(&k["value"]),
            source_text(&k["source"])
        );
    }
    for s in body["shadowed"].as_array().into_iter().flatten() {
        println!(
            "shadowed: {} is {} in the file{} but {} sets it; to give the file control: {}",
            s["key"].as_str().unwrap_or(""),
            short(&s["fileValue"]),
            s["fileLine"]
                .as_u64()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default(),
            source_text(&s["source"]),
            s["release"].as_str().unwrap_or("")
        );
    }
    for w in body["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", w.as_str().unwrap_or(""));
    }
}

pub(super) fn config_show_local(
    opts: &LoadOptions,
    explain: bool,
    json: bool,
    why: &Failure,
) -> Res<()> {
    let cfg = config::load(opts)
        .map_err(|e| Failure::refused(e.to_string().trim_end().to_string(), None))?;
    eprintln!(
        "clawgate: not running ({}); showing the file, environment and defaults (runtime overrides are not included)",
        why.message
    );
    let body = if explain {
        config::explain::explain(&cfg)
    } else {
        json!({"config": config::explain::tree(&cfg)})
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print_config(&body, explain);
    }
    Ok(())
}

pub(super) fn config_cmd(api: &Api, op: ConfigOp, json: bool, _opts: &LoadOptions) -> Res<()> {
    match op {
        ConfigOp::Show { explain } => {
            let body = api.get(&format!("/admin/v1/config?explain={explain}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                print_config(&body, explain);
            }
        }
        ConfigOp::Reload => {
            let r = api.post("/admin/v1/config/reload", &json!({}))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                return Ok(());
            }
            let changed: Vec<&str> = r["changed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match r["result"].as_str() {
                Some("unchanged") => println!(
                    "unchanged: the file matches the configuration in force (revision {})",
                    r["revision"]
                ),
                _ if changed.is_empty() => {
                    println!("reloaded: revision {}, no effective change", r["revision"])
                }
                _ => println!(
                    "reloaded: revision {}, changed {}; {} session(s) closed",
                    r["revision"],
                    changed.join(", "),
                    r["closedSessions"]
                ),
            }
            for s in r["shadowed"].as_array().into_iter().flatten() {
                println!(
                    "shadowed: {} changed in the file, but {} sets it; {}",
                    s["key"].as_str().unwrap_or(""),
                    source_text(&s["source"]),
                    s["release"].as_str().unwrap_or("")
                );
            }
            for s in r["restartRequired"].as_array().into_iter().flatten() {
                println!(
                    "restart required: {} (running {}, configured {})",
                    s["key"].as_str().unwrap_or(""),
                    s["running"],
                    s["configured"]
                );
            }
            if let Some(e) = r["listenerError"].as_str() {
                println!("listener: {e}");
            }
        }
    }
    Ok(())
}
