//! RPC methods on an authenticated session (protocol §5.6), with the scope,
//! role and ownership rules.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::auth::AuthMethod;
use super::frames::{self, ErrorShape};
use super::pairing::{self, PairingError};
use super::registry::SessionInfo;
use super::scopes::Role;
use super::{ops, scopes, GatewayState, COMPAT_VERSION};
use crate::util::now_ms;

/// Methods implemented (advertised in `hello-ok.features.methods`).
pub const METHODS: &[&str] = &[
    "health",
    "status",
    "system-presence",
    "device.pair.list",
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "node.pair.remove",
];

#[derive(Default)]
pub struct ConnState {
    unauthorized_streak: u32,
}

pub enum Outcome {
    None,
    Reply(String),
    ReplyAndClose(String, u16, String),
}

pub fn health_payload(state: &GatewayState) -> Value {
    json!({
        "ok": true,
        "ts": now_ms(),
        "durationMs": 0,
        "configReload": {"hotReloadStatus": "active"},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "agents": [],
        "sessions": {"count": state.sessions(), "recent": []},
    })
}

/// Host name and kernel release, read once.
fn host_info() -> &'static (String, String) {
    static INFO: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "clawgate".into());
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        (host, release)
    })
}

pub fn self_presence(state: &GatewayState) -> Value {
    let (host, release) = host_info();
    let ip = state.config.load().gateway.bind.to_string();
    json!({
        "host": host,
        "ip": ip,
        "version": COMPAT_VERSION,
        "platform": format!("{} {release}", std::env::consts::OS).trim().to_string(),
        "deviceFamily": if cfg!(target_os = "linux") { "Linux" } else { std::env::consts::OS },
        "mode": "gateway",
        "reason": "self",
        "instanceId": state.boot_id,
        "text": format!("Gateway: {host} · clawgate {} · mode gateway · reason self", env!("CARGO_PKG_VERSION")),
        "ts": now_ms(),
    })
}

fn err(msg: impl Into<String>) -> ErrorShape {
    ErrorShape::invalid(msg)
}

fn missing_scope(scope: &str) -> ErrorShape {
    ErrorShape::new("FORBIDDEN", format!("missing scope: {scope}")).with_details(json!({
        "code": "MISSING_SCOPE",
        "missingScope": scope,
        "requiredScopes": [scope],
    }))
}

/// Checks that params is an object with only `allowed` keys and has `required`.
fn check_params<'a>(
    method: &str,
    params: &'a Value,
    allowed: &[&str],
    required: &[&str],
) -> Result<&'a Map<String, Value>, ErrorShape> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let obj = match params {
        Value::Null => EMPTY.get_or_init(Map::new),
        Value::Object(o) => o,
        _ => {
            return Err(err(format!(
                "invalid {method} params: at root: must be object"
            )))
        }
    };
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(format!(
                "invalid {method} params: at root: unexpected property '{k}'"
            )));
        }
    }
    for r in required {
        match obj.get(*r) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => {
                return Err(err(format!(
                    "invalid {method} params: at /{r}: must be non-empty string"
                )))
            }
            None => {
                return Err(err(format!(
                    "invalid {method} params: at root: must have required property '{r}'"
                )))
            }
        }
    }
    Ok(obj)
}

fn str_param<'a>(p: &'a Map<String, Value>, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or("")
}

fn scopes_param(method: &str, p: &Map<String, Value>) -> Result<Option<Vec<String>>, ErrorShape> {
    match p.get("scopes") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str().map(str::to_string).ok_or_else(|| {
                    err(format!(
                        "invalid {method} params: at /scopes: must be array of strings"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(err(format!(
            "invalid {method} params: at /scopes: must be array"
        ))),
    }
}

fn pairing_err(e: PairingError) -> ErrorShape {
    match e {
        PairingError::Store(s) => {
            tracing::error!(error = %s, "store error in RPC");
            let mut e = ErrorShape::new("UNAVAILABLE", format!("state store error: {s}"));
            e.retryable = Some(true);
            e
        }
        other => err(other.to_string()),
    }
}

/// Handles one text frame from an authenticated session.
pub async fn handle(
    state: &Arc<GatewayState>,
    info: &Arc<SessionInfo>,
    cs: &mut ConnState,
    text: &str,
) -> Outcome {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        tracing::debug!(conn = %info.conn_id, "ignored a frame that is not JSON");
        return Outcome::None;
    };
    if v.get("type").and_then(Value::as_str) != Some("req") {
        return Outcome::None;
    }
    let Some(id) = v
        .get("id")
        .filter(|i| i.as_str().is_some_and(|s| !s.is_empty()))
        .cloned()
    else {
        return Outcome::None;
    };
    let Some(method) = v.get("method").and_then(Value::as_str) else {
        return Outcome::Reply(frames::res_err(&id, &err("invalid request frame")));
    };
    let params = v.get("params").cloned().unwrap_or(Value::Null);
    let result = dispatch(state, info, method, &params).await;
    match result {
        Ok(payload) => {
            cs.unauthorized_streak = 0;
            Outcome::Reply(frames::res_ok(&id, payload))
        }
        Err(e) => {
            if e.message.starts_with("unauthorized role:") {
                cs.unauthorized_streak += 1;
                if cs.unauthorized_streak > 10 {
                    return Outcome::ReplyAndClose(
                        frames::res_err(&id, &e),
                        1008,
                        "repeated unauthorized calls".into(),
                    );
                }
            } else {
                cs.unauthorized_streak = 0;
            }
            Outcome::Reply(frames::res_err(&id, &e))
        }
    }
}

/// The audit actor for a WebSocket caller.
fn actor(info: &SessionInfo) -> ops::Actor {
    let who = match (&info.user, &info.device_id) {
        (Some(u), Some(d)) => format!("ws:user:{u} (device:{})", super::device::fingerprint(d)),
        (Some(u), None) => format!("ws:user:{u}"),
        (None, Some(d)) => format!("ws:device:{}", super::device::fingerprint(d)),
        (None, None) => format!(
            "ws:{}:{}",
            info.client_id,
            &info.conn_id[..8.min(info.conn_id.len())]
        ),
    };
    ops::Actor {
        name: who,
        client_addr: Some(info.client_ip.to_string()),
    }
}

/// Maps an operation error to the WebSocket message (OpenClaw's texts).
fn op_err(e: ops::OpError, not_found: &str) -> ErrorShape {
    match e {
        ops::OpError::Store(s) => pairing_err(PairingError::Store(s)),
        ops::OpError::Invalid(m) if not_found.starts_with("device token") => {
            tracing::debug!(reason = %m, "token operation denied");
            err(not_found)
        }
        ops::OpError::Invalid(m) => err(m),
        ops::OpError::UnknownRequest
        | ops::OpError::UnknownDevice
        | ops::OpError::NoToken(_)
        | ops::OpError::AlreadyDecided(_)
        | ops::OpError::AlreadyRevoked(_)
        | ops::OpError::ClientQueueFull(_)
        | ops::OpError::QueueFull(_) => err(not_found),
    }
}

fn require(info: &SessionInfo, scope: &str) -> Result<(), ErrorShape> {
    if info.role != scopes::Role::Operator {
        return Err(err(format!("unauthorized role: {}", info.role)));
    }
    if scopes::satisfies(&info.scopes, scope) {
        Ok(())
    } else {
        Err(missing_scope(scope))
    }
}

fn is_admin(info: &SessionInfo) -> bool {
    info.scopes.iter().any(|s| s == scopes::ADMIN)
}

/// Device-token callers without admin may act only on their own device.
fn owner_only(info: &SessionInfo) -> bool {
    info.auth_method == AuthMethod::DeviceToken && !is_admin(info)
}

/// Whether `id` is a paired device of clawgate's with the node role.
pub fn is_node_device(state: &GatewayState, id: &str) -> bool {
    matches!(state.store.device(id), Ok(Some(d)) if d.roles.iter().any(|r| Role::parse(r) == Some(Role::Node)))
}

async fn dispatch(
    state: &Arc<GatewayState>,
    info: &Arc<SessionInfo>,
    method: &str,
    params: &Value,
) -> Result<Value, ErrorShape> {
    let cfg = state.config.load();
    let ttl = cfg.gateway.pairing.pending_ttl_ms;
    match method {
        "health" => Ok(health_payload(state)),
        "status" => {
            require(info, scopes::READ)?;
            Ok(json!({
                "ok": true,
                "server": {"name": "clawgate", "version": env!("CARGO_PKG_VERSION"), "compatVersion": COMPAT_VERSION, "bootId": state.boot_id},
                "uptimeMs": state.started.elapsed().as_millis() as u64,
                "sessions": state.sessions(),
                "authMode": cfg.gateway.auth.mode.as_str(),
                "pendingPairing": state.store.pending().map(|p| p.iter().filter(|r| r.expires_at(ttl) > now_ms()).count()).unwrap_or(0),
                "pairedDevices": state.store.devices().map(|d| d.len()).unwrap_or(0),
            }))
        }
        "system-presence" => {
            require(info, scopes::READ)?;
            Ok(json!([self_presence(state)]))
        }
        "device.pair.list" => {
            require(info, scopes::PAIRING)?;
            check_params(method, params, &[], &[])?;
            let now = now_ms();
            let own = owner_only(info).then(|| info.device_id.clone()).flatten();
            let visible = |d: &str| !owner_only(info) || own.as_deref() == Some(d);
            let pending: Vec<Value> = state
                .store
                .pending()
                .map_err(|e| pairing_err(e.into()))?
                .iter()
                .filter(|p| p.expires_at(ttl) > now && visible(&p.device_id))
                .map(pairing::pending_json)
                .collect();
            let paired: Vec<Value> = state
                .store
                .devices()
                .map_err(|e| pairing_err(e.into()))?
                .iter()
                .filter(|d| visible(&d.device_id))
                .map(|d| {
                    pairing::paired_json(d, Some(state.registry.is_device_connected(&d.device_id)))
                })
                .collect();
            Ok(json!({"pending": pending, "paired": paired}))
        }
        "device.pair.approve" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(method, params, &["requestId"], &["requestId"])?;
            let request_id = str_param(p, "requestId").to_string();
            let pending = state
                .store
                .pending()
                .map_err(|e| pairing_err(e.into()))?
                .into_iter()
                .find(|r| r.request_id == request_id && r.expires_at(ttl) > now_ms())
                .ok_or_else(|| err("unknown requestId"))?;
            if owner_only(info) && info.device_id.as_deref() != Some(pending.device_id.as_str()) {
                return Err(err("device pairing approval denied"));
            }
            if pending
                .roles
                .iter()
                .any(|r| Role::parse(r) != Some(Role::Operator))
                && !is_admin(info)
            {
                // OpenClaw's words for it (the real CLI then retries with
                // operator.admin).
                return Err(err("device pairing approval denied"));
            }
            // The caller must hold every scope the approved token will carry: the
            // requested ones and the device's current operator token scopes (as
            // OpenClaw 2026.9.6 does; a pairing-only caller cannot approve a
            // scope upgrade of a read device).
            let mut needed = scopes::for_role(Role::Operator.as_str(), &pending.scopes);
            if let Ok(Some(d)) = state.store.device(&pending.device_id) {
                if let Some(t) = d
                    .tokens
                    .get(Role::Operator.as_str())
                    .filter(|t| t.revoked_at_ms.is_none())
                {
                    needed = scopes::union(&needed, &t.scopes);
                }
            }
            if let Some(s) = scopes::first_missing(&info.scopes, &needed) {
                return Err(err(format!("missing scope: {s}")));
            }
            let a = ops::approve(state, &actor(info), &request_id, None, None)
                .await
                .map_err(|e| op_err(e, "unknown requestId"))?;
            Ok(
                json!({"requestId": a.request.request_id, "device": pairing::paired_json(&a.device, None)}),
            )
        }
        "device.pair.reject" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(method, params, &["requestId"], &["requestId"])?;
            let request_id = str_param(p, "requestId").to_string();
            if owner_only(info) {
                let pend = state.store.pending().map_err(|e| pairing_err(e.into()))?;
                let target = pend
                    .iter()
                    .find(|r| r.request_id == request_id)
                    .ok_or_else(|| err("unknown requestId"))?;
                if info.device_id.as_deref() != Some(target.device_id.as_str()) {
                    return Err(err("device pairing rejection denied"));
                }
            }
            let r = ops::reject(state, &actor(info), &request_id)
                .await
                .map_err(|e| op_err(e, "unknown requestId"))?;
            Ok(json!({"requestId": r.request_id, "deviceId": r.device_id}))
        }
        "device.pair.remove" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(method, params, &["deviceId"], &["deviceId"])?;
            let device_id = str_param(p, "deviceId").to_string();
            if owner_only(info) && info.device_id.as_deref() != Some(device_id.as_str()) {
                return Err(err("device pairing removal denied"));
            }
            let (d, _) = ops::remove_device(state, &actor(info), &device_id)
                .await
                .map_err(|e| op_err(e, "unknown deviceId"))?;
            Ok(json!({"deviceId": d.device_id}))
        }
        // The node's device pairing is clawgate's: removing the node removes
        // its node role here (in front-door mode only for clawgate's devices;
        // any other nodeId is relayed).
        "node.pair.remove" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(method, params, &["nodeId"], &["nodeId"])?;
            let node_id = str_param(p, "nodeId").to_string();
            if owner_only(info) && info.device_id.as_deref() != Some(node_id.as_str()) {
                return Err(err("node pairing removal denied"));
            }
            if !is_node_device(state, &node_id) {
                return Err(err("unknown nodeId"));
            }
            ops::remove_node(state, &actor(info), &node_id)
                .await
                .map_err(|e| op_err(e, "unknown nodeId"))?;
            Ok(json!({"nodeId": node_id}))
        }
        "device.pair.rename" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(
                method,
                params,
                &["deviceId", "label"],
                &["deviceId", "label"],
            )?;
            let device_id = str_param(p, "deviceId").to_string();
            let label = str_param(p, "label").trim().to_string();
            if label.is_empty() || label.chars().count() > 64 {
                return Err(err(format!(
                    "invalid {method} params: at /label: must be 1 to 64 characters"
                )));
            }
            if owner_only(info) && info.device_id.as_deref() != Some(device_id.as_str()) {
                return Err(err("device pairing rename denied"));
            }
            let d = ops::rename_device(state, &actor(info), &device_id, &label)
                .await
                .map_err(|e| op_err(e, "unknown deviceId"))?;
            Ok(json!({"deviceId": d.device_id, "label": label}))
        }
        "device.token.rotate" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(
                method,
                params,
                &["deviceId", "role", "scopes"],
                &["deviceId", "role"],
            )?;
            let device_id = str_param(p, "deviceId").to_string();
            let role = str_param(p, "role").to_string();
            let operator = Role::parse(&role) == Some(Role::Operator);
            let req_scopes = scopes_param(method, p)?;
            if !operator && !is_admin(info) {
                return Err(err("device token rotation denied"));
            }
            let own = info.device_id.as_deref() == Some(device_id.as_str());
            if owner_only(info) && (!own || !operator) {
                return Err(err("device token rotation denied"));
            }
            if let Some(s) = &req_scopes {
                if scopes::first_missing(&info.scopes, s).is_some() && !is_admin(info) {
                    return Err(err("device token rotation denied"));
                }
            }
            let in_band = own && info.auth_method == AuthMethod::DeviceToken;
            let except = in_band.then_some(info.conn_id.as_str());
            let (rec, token, _) =
                ops::rotate_token(state, &actor(info), &device_id, &role, req_scopes, except)
                    .await
                    .map_err(|e| op_err(e, "device token rotation denied"))?;
            let mut out = json!({
                "deviceId": device_id,
                "role": role,
                "scopes": rec.scopes,
                "rotatedAtMs": rec.rotated_at_ms.unwrap_or(rec.created_at_ms),
                "tokenDelivery": if in_band { "in-band" } else { "withheld-cross-device" },
            });
            if in_band {
                out["token"] = json!(token);
            }
            Ok(out)
        }
        "device.token.revoke" => {
            require(info, scopes::PAIRING)?;
            let p = check_params(method, params, &["deviceId", "role"], &["deviceId", "role"])?;
            let device_id = str_param(p, "deviceId").to_string();
            let role = str_param(p, "role").to_string();
            let operator = Role::parse(&role) == Some(Role::Operator);
            if !operator && !is_admin(info) {
                return Err(err("device token revocation denied"));
            }
            if owner_only(info)
                && (info.device_id.as_deref() != Some(device_id.as_str()) || !operator)
            {
                return Err(err("device token revocation denied"));
            }
            let at = match ops::revoke_token(state, &actor(info), &device_id, &role).await {
                Ok((at, _)) => at,
                // Revoking twice answers like the first time (OpenClaw is idempotent here).
                Err(ops::OpError::AlreadyRevoked(_)) => state
                    .store
                    .device(&device_id)
                    .ok()
                    .flatten()
                    .and_then(|d| d.tokens.get(&role).and_then(|t| t.revoked_at_ms))
                    .unwrap_or_else(now_ms),
                Err(e) => return Err(op_err(e, "device token revocation denied")),
            };
            Ok(json!({"deviceId": device_id, "role": role, "revokedAtMs": at}))
        }
        "connect" => Err(err("connect is only valid as the first request")),
        // The rest of the device family (scope upgrades, setup codes): clawgate
        // is the device authority and does not offer them; in front-door mode
        // they are never relayed.
        other if other.starts_with("device.") => Err(err(format!(
            "{other} is not available: clawgate is this gateway's device authority; to widen a \
             device's scopes, connect asking for them (a scope-upgrade pairing request) and approve \
             it with `clawgate devices approve` or the admin API"
        ))),
        // Standalone mode (in front-door mode these are relayed, never here).
        other if other.starts_with("node.") => Err(err(format!(
            "{other} needs an OpenClaw gateway behind clawgate: node hosts pair with clawgate, but \
             their commands are the gateway's (set upstream.url: front-door mode)"
        ))),
        other => Err(err(format!(
            "unknown method: {other} (clawgate on its own answers only health, status and the \
             device pairing and token methods; set upstream.url to put it in front of your OpenClaw gateway)"
        ))),
    }
}
