//! `clawgate proxies …`.

use super::*;

pub(super) fn entries_line(v: &Value) -> String {
    match v["entries"].as_array() {
        Some(a) if !a.is_empty() => list(&v["entries"]).replace(',', ", "),
        _ => "(none)".into(),
    }
}

pub(super) fn proxies(api: &Api, cmd: ProxiesCommand, json: bool) -> Res<()> {
    const PATH: &str = "/admin/v1/trusted-proxies";
    match cmd {
        ProxiesCommand::List => {
            let v = api.get(PATH)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            match v["entries"].as_array() {
                Some(a) if !a.is_empty() => {
                    println!("Trusted proxies ({}):", a.len());
                    for e in a {
                        println!("  {}", text(e));
                    }
                }
                _ => {
                    println!("No trusted proxies: X-Forwarded-For and similar headers are ignored.")
                }
            }
            Ok(())
        }
        ProxiesCommand::Add { entry, dry_run } => {
            let etag = api.call("GET", PATH, None, None)?.etag;
            let path = if dry_run {
                format!("{PATH}?dryRun=true")
            } else {
                PATH.to_string()
            };
            let v = api
                .call(
                    "POST",
                    &path,
                    Some(&json!({ "entry": entry })),
                    etag.as_deref(),
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            let changed = v["changed"].as_bool().unwrap_or(true);
            if dry_run {
                println!(
                    "dry run, nothing applied: {}; the list would be: {}",
                    if changed {
                        format!("{entry} would be added")
                    } else {
                        format!("{entry} is already trusted")
                    },
                    entries_line(&v)
                );
            } else if changed {
                println!("added {entry}; trusted proxies: {}", entries_line(&v));
            } else {
                println!(
                    "{entry} is already trusted; nothing changed (trusted proxies: {})",
                    entries_line(&v)
                );
            }
            Ok(())
        }
        ProxiesCommand::Remove { entry } => {
            let etag = api.call("GET", PATH, None, None)?.etag;
            let v = api
                .call(
                    "DELETE",
                    &format!("{PATH}/{}", enc(entry.trim())),
                    None,
                    etag.as_deref(),
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!("removed {entry}; trusted proxies: {}", entries_line(&v));
            Ok(())
        }
    }
}
