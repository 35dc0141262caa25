//! `clawgate proxies …`.

use super::*;

pub(super) fn entries_line(entries: &[String]) -> String {
    if entries.is_empty() {
        "(none)".into()
    } else {
        entries.join(", ")
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
            let l: dto::ProxyList = api.typed(&v)?;
            if l.entries.is_empty() {
                println!("No trusted proxies: X-Forwarded-For and similar headers are ignored.")
            } else {
                println!("Trusted proxies ({}):", l.entries.len());
                for e in &l.entries {
                    println!("  {e}");
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
                    Some(&json!(dto::ProxyEntryBody {
                        entry: Some(entry.clone())
                    })),
                    etag.as_deref(),
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            let c: dto::ProxyChange = api.typed(&v)?;
            let changed = c.changed;
            if dry_run {
                println!(
                    "dry run, nothing applied: {}; the list would be: {}",
                    if changed {
                        format!("{entry} would be added")
                    } else {
                        format!("{entry} is already trusted")
                    },
                    entries_line(&c.entries)
                );
            } else if changed {
                println!(
                    "added {entry}; trusted proxies: {}",
                    entries_line(&c.entries)
                );
            } else {
                println!(
                    "{entry} is already trusted; nothing changed (trusted proxies: {})",
                    entries_line(&c.entries)
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
            let c: dto::ProxyChange = api.typed(&v)?;
            println!(
                "removed {entry}; trusted proxies: {}",
                entries_line(&c.entries)
            );
            Ok(())
        }
    }
}
