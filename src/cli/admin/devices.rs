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
            let requests: Vec<dto::RequestEntry> = api.typed(&requests)?;
            let devices: Option<Vec<dto::Device>> =
                devices.as_ref().map(|d| api.typed(d)).transpose()?;
            print_devices_list(&requests, devices.as_deref(), all);
            Ok(())
        }
        DevicesCommand::Approve {
            request_id,
            scopes,
            label,
        } => {
            let id = resolve_request(api, &request_id)?;
            let body = dto::ApproveBody {
                scopes: (!scopes.is_empty()).then_some(scopes),
                label,
            };
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/approve", enc(&id)),
                &json!(body),
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let a: dto::Approved = api.typed(&v)?;
            let d = &a.device;
            let name = device_name(d);
            println!(
                "approved request {}: device {}{} may connect as {} with scopes {}",
                opt(Some(&a.request_id)),
                opt(Some(&d.fingerprint)),
                if name == "-" {
                    String::new()
                } else {
                    format!(" ({name})")
                },
                csv(&d.paired.roles),
                csv(&d.paired.scopes),
            );
            Ok(())
        }
        DevicesCommand::Reject { request_id } => {
            let id = resolve_request(api, &request_id)?;
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/reject", enc(&id)),
                &json!(dto::EmptyBody {}),
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let r: dto::Rejected = api.typed(&v)?;
            println!(
                "rejected request {} (device {})",
                r.request_id,
                crate::gateway::device::fingerprint(&r.device_id)
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
            let r: dto::Removed = api.typed(&v)?;
            println!(
                "removed device {} ({} closed); it must pair again to connect",
                crate::gateway::device::fingerprint(&r.device_id),
                plural(r.closed_sessions as u64, "session"),
            );
            Ok(())
        }
        DevicesCommand::Rename { device_id, label } => {
            let id = resolve_device(api, &device_id)?;
            let v = api
                .call(
                    "PATCH",
                    &format!("/admin/v1/devices/{}", enc(&id)),
                    Some(&json!(dto::RenameBody { label: Some(label) })),
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            let d: dto::Device = api.typed(&v)?;
            println!(
                "device {} is now labelled {:?}",
                d.fingerprint,
                opt(d.label.as_deref().or(d.paired.operator_label.as_deref()))
            );
            Ok(())
        }
    }
}

pub(super) fn print_devices_list(
    requests: &[dto::RequestEntry],
    devices: Option<&[dto::Device]>,
    all: bool,
) {
    let pending: Vec<&dto::PendingRequest> = requests
        .iter()
        .filter_map(|r| match r {
            dto::RequestEntry::Pending(p) => Some(p.as_ref()),
            dto::RequestEntry::Decided(_) => None,
        })
        .collect();
    let decided: Vec<&dto::DecidedRequest> = requests
        .iter()
        .filter_map(|r| match r {
            dto::RequestEntry::Decided(d) => Some(d),
            dto::RequestEntry::Pending(_) => None,
        })
        .collect();
    if pending.is_empty() {
        println!("No pending pairing requests.");
    } else {
        println!("Pending pairing requests ({}):", pending.len());
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                let c = &r.client;
                let from = if r.client_address.is_empty() {
                    &r.peer_address
                } else {
                    &r.client_address
                };
                vec![
                    opt(Some(&r.request_id)),
                    opt(Some(&r.fingerprint)),
                    opt(c.display_name.as_deref()),
                    client_desc(c.id.as_deref(), c.platform.as_deref()),
                    opt(Some(&r.role)),
                    csv(&r.scopes),
                    opt(Some(from)),
                    opt(Some(&r.reason)),
                    at(Some(r.first_seen_at_ms)),
                    at(Some(r.expires_at_ms)),
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
                        opt(Some(&r.request_id)),
                        opt(Some(&r.fingerprint)),
                        opt(Some(&r.status)),
                        opt(Some(&r.decided_by)),
                        at(Some(r.decided_at_ms)),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["REQUEST", "DEVICE", "STATUS", "BY", "DECIDED"], &rows)
            );
        }
    }
    let Some(devs) = devices else { return };
    println!();
    if devs.is_empty() {
        println!("No paired devices.");
        return;
    }
    println!("Paired devices ({}):", devs.len());
    let rows: Vec<Vec<String>> = devs
        .iter()
        .map(|d| {
            vec![
                opt(Some(&d.fingerprint)),
                device_name(d),
                client_desc(d.paired.client_id.as_deref(), d.paired.platform.as_deref()),
                csv(&d.paired.roles),
                csv(&d.paired.scopes),
                d.connected_sessions.to_string(),
                at(Some(d.paired.approved_at_ms)),
                match d.paired.last_seen_at_ms {
                    Some(t) => at(Some(t)),
                    None => "never".into(),
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
