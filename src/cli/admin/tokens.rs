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
            let body = json!(dto::RotateDeviceTokenBody {
                scopes: (!scopes.is_empty()).then_some(scopes),
            });
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
            let r: dto::DeviceTokenRotated = api.typed(&v)?;
            println!(
                "rotated the {} token of device {} (scopes {}; {} closed); \
                 the device receives the new token when it next connects",
                r.role,
                crate::gateway::device::fingerprint(&r.device_id),
                csv(&r.scopes),
                plural(r.closed_sessions as u64, "session"),
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
            let r: dto::DeviceTokenRevoked = api.typed(&v)?;
            println!(
                "revoked the {} token of device {} ({} closed)",
                r.role,
                crate::gateway::device::fingerprint(&r.device_id),
                plural(r.closed_sessions as u64, "session"),
            );
            Ok(())
        }
        TokensCommand::RotateGateway { grace } => {
            let body = json!(dto::RotateGatewayTokenBody {
                grace_seconds: grace,
            });
            let v = api.post("/admin/v1/gateway/token/rotate", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let r: dto::GatewayTokenRotated = api.typed(&v)?;
            println!("{}", r.token);
            let g = r.grace_seconds;
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
            let body = json!(dto::MintTokenBody {
                scopes: Some(scopes),
                ttl_seconds: ttl,
                label,
            });
            let v = api.post("/admin/v1/tokens", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let t: dto::AdminToken = api.typed(&v)?;
            let Some(token) = &t.token else {
                return Err(Failure::refused("the API answered without a token", None));
            };
            println!("{token}");
            eprintln!(
                "clawgate: minted admin token {} with scopes {}; it expires {}. It is shown only this once.",
                opt(Some(&t.jti)),
                csv(&t.scopes),
                at(Some(t.expires_at_ms)),
            );
            Ok(())
        }
    }
}
