//! `clawgate devices …`.

use super::*;

pub(super) fn devices(api: &Api, cmd: DevicesCommand, json: bool) -> Res<()> {
    let given = match &cmd {
        DevicesCommand::List { .. } => String::new(),
        DevicesCommand::Approve { request_id, .. } | DevicesCommand::Reject { request_id } => {
            request_id.clone()
        }
        DevicesCommand::Remove { device_id } | DevicesCommand::Rename { device_id, .. } => {
            device_id.clone()
        }
    };
    hint_ids(devices_inner(api, cmd, json), &given)
}

pub(super) fn devices_inner(api: &Api, cmd: DevicesCommand, json: bool) -> Res<()> {
    match cmd {
        DevicesCommand::List { pending, all } => {
            let status = if all { "all" } else { "pending" };
            let requests = api.get(&format!("/admin/v1/pairing/requests?status={status}"))?;
            let requests = requests["requests"].clone();
            let devices = if pending {
                None
            } else {
                Some(api.get("/admin/v1/devices")?["devices"].clone())
            };
            if json {
                let mut out = json!({ "requests": requests });
                if let Some(d) = &devices {
                    out["devices"] = d.clone();
                }
                print_json(&out);
                return Ok(());
            }
            print_devices_list(&requests, devices.as_ref(), all);
            Ok(())
        }
        DevicesCommand::Approve {
            request_id,
            scopes,
            label,
        } => {
            let id = resolve_request(api, &request_id)?;
            let mut body = json!({});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/approve", enc(&id)),
                &body,
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let d = &v["device"];
            let name = device_name(d);
            println!(
                "approved request {}: device {}{} may connect as {} with scopes {}",
                text(&v["requestId"]),
                text(&d["fingerprint"]),
                if name == "-" {
                    String::new()
                } else {
                    format!(" ({name})")
                },
                list(&d["roles"]),
                list(&d["scopes"]),
            );
            Ok(())
        }
        DevicesCommand::Reject { request_id } => {
            let id = resolve_request(api, &request_id)?;
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/reject", enc(&id)),
                &json!({}),
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let dev = text(&v["deviceId"]);
            println!(
                "rejected request {} (device {})",
                text(&v["requestId"]),
                crate::gateway::device::fingerprint(&dev)
            );
            Ok(())
        }
        DevicesCommand::Remove { device_id } => {
            let id = resolve_device(api, &device_id)?;
            let v = api
                .call(
                    "DELETE",
                    &format!("/admin/v1/devices/{}", enc(&id)),
                    None,
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "removed device {} ({} closed); it must pair again to connect",
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        DevicesCommand::Rename { device_id, label } => {
            let id = resolve_device(api, &device_id)?;
            let v = api
                .call(
                    "PATCH",
                    &format!("/admin/v1/devices/{}", enc(&id)),
                    Some(&json!({ "label": label })),
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "device {} is now labelled {:?}",
                text(&v["fingerprint"]),
                first_text(&[&v["label"], &v["operatorLabel"]])
            );
            Ok(())
        }
    }
}

pub(super) fn print_devices_list(requests: &Value, devices: Option<&Value>, all: bool) {
    let empty = vec![];
    let reqs = requests.as_array().unwrap_or(&empty);
    let pending: Vec<&Value> = reqs.iter().filter(|r| r["status"] == "pending").collect();
    let decided: Vec<&Value> = reqs.iter().filter(|r| r["status"] != "pending").collect();
    if pending.is_empty() {
        println!("No pending pairing requests.");
    } else {
        println!("Pending pairing requests ({}):", pending.len());
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                let c = &r["client"];
                vec![
                    text(&r["requestId"]),
                    text(&r["fingerprint"]),
                    first_text(&[&c["displayName"]]),
                    client_desc(&c["id"], &c["platform"]),
                    text(&r["role"]),
                    list(&r["scopes"]),
                    first_text(&[&r["clientAddress"], &r["peerAddress"]]),
                    text(&r["reason"]),
                    age(&r["firstSeenAtMs"]),
                    age(&r["expiresAtMs"]),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "REQUEST", "DEVICE", "NAME", "CLIENT", "ROLE", "SCOPES", "FROM", "REASON",
                    "ASKED", "EXPIRES"
                ],
                &rows
            )
        );
        println!("Approve with `clawgate devices approve <REQUEST>`, refuse with `clawgate devices reject <REQUEST>`.");
    }
    if all {
        println!();
        if decided.is_empty() {
            println!("No decided pairing requests.");
        } else {
            println!("Decided pairing requests ({}):", decided.len());
            let rows: Vec<Vec<String>> = decided
                .iter()
                .map(|r| {
                    vec![
                        text(&r["requestId"]),
                        text(&r["fingerprint"]),
                        text(&r["status"]),
                        text(&r["decidedBy"]),
                        age(&r["decidedAtMs"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["REQUEST", "DEVICE", "STATUS", "BY", "DECIDED"], &rows)
            );
        }
    }
    let Some(devices) = devices else { return };
    println!();
    let devs = devices.as_array().unwrap_or(&empty);
    if devs.is_empty() {
        println!("No paired devices.");
        return;
    }
    println!("Paired devices ({}):", devs.len());
    let rows: Vec<Vec<String>> = devs
        .iter()
        .map(|d| {
            vec![
                text(&d["fingerprint"]),
                device_name(d),
                client_desc(&d["clientId"], &d["platform"]),
                list(&d["roles"]),
                list(&d["scopes"]),
                text(&d["connectedSessions"]),
                age(&d["approvedAtMs"]),
                if d["lastSeenAtMs"].is_u64() {
                    age(&d["lastSeenAtMs"])
                } else {
                    "never".into()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "DEVICE",
                "NAME",
                "CLIENT",
                "ROLES",
                "SCOPES",
                "SESSIONS",
                "PAIRED",
                "LAST SEEN"
            ],
            &rows
        )
    );
}
