//! `clawgate tokens …`.

use super::*;

pub(super) fn tokens(api: &Api, cmd: TokensCommand, json: bool) -> Res<()> {
    match &cmd {
        TokensCommand::Rotate { device, .. } | TokensCommand::Revoke { device, .. } => {
            let given = device.clone();
            hint_ids(tokens_inner(api, cmd, json), &given)
        }
        _ => tokens_inner(api, cmd, json),
    }
}

pub(super) fn tokens_inner(api: &Api, cmd: TokensCommand, json: bool) -> Res<()> {
    match cmd {
        TokensCommand::Rotate {
            device,
            role,
            scopes,
        } => {
            let id = resolve_device(api, &device)?;
            let mut body = json!({});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            let v = api.post(
                &format!(
                    "/admin/v1/devices/{}/tokens/{}/rotate",
                    enc(&id),
                    enc(&role)
                ),
                &body,
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "rotated the {} token of device {} (scopes {}; {} closed); \
                 the device receives the new token when it next connects",
                text(&v["role"]),
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                list(&v["scopes"]),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        TokensCommand::Revoke { device, role } => {
            let id = resolve_device(api, &device)?;
            let v = api
                .call(
                    "DELETE",
                    &format!("/admin/v1/devices/{}/tokens/{}", enc(&id), enc(&role)),
                    None,
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "revoked the {} token of device {} ({} closed)",
                text(&v["role"]),
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        TokensCommand::RotateGateway { grace } => {
            let mut body = json!({});
            if let Some(g) = grace {
                body["graceSeconds"] = json!(g);
            }
            let v = api.post("/admin/v1/gateway/token/rotate", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let Some(token) = v["token"].as_str() else {
                return Err(Failure::refused("the API answered without a token", None));
            };
            println!("{token}");
            let g = v["graceSeconds"].as_u64().unwrap_or(0);
            eprintln!("clawgate: the gateway token was rotated; the new token (above) is shown only this once.");
            if g > 0 {
                eprintln!(
                    "clawgate: the previous token keeps working for {g}s more; then its sessions are closed."
                );
            } else {
                eprintln!("clawgate: the previous token no longer works; sessions that used it were closed.");
            }
            eprintln!("clawgate: give the new token to your clients (gateway.remote.token / OPENCLAW_GATEWAY_TOKEN).");
            Ok(())
        }
        TokensCommand::Mint { scopes, ttl, label } => {
            let mut body = json!({ "scopes": scopes });
            if let Some(t) = ttl {
                body["ttlSeconds"] = json!(t);
            }
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            let v = api.post("/admin/v1/tokens", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let Some(token) = v["token"].as_str() else {
                return Err(Failure::refused("the API answered without a token", None));
            };
            println!("{token}");
            eprintln!(
                "clawgate: minted admin token {} with scopes {}; it expires {}. It is shown only this once.",
                text(&v["jti"]),
                list(&v["scopes"]),
                age(&v["expiresAtMs"]),
            );
            Ok(())
        }
    }
}
