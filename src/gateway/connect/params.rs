//! The `connect` params, typed (protocol §2.6).

use serde_json::{Map, Value};

use serde_json::json;

use super::reject::{invalid_params, RejectReason, Rejection};
use crate::gateway::frames::ErrorShape;
use crate::gateway::scopes::Role;
use crate::gateway::PROTOCOL_VERSION;

/// What kind of client a connect names (`client.id` × `client.mode`): the
/// only form in which the decisions look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientKind {
    /// The browser Control UI (or webchat).
    ControlUi,
    /// The `openclaw` CLI (`cli` / `cli`).
    Cli,
    /// The gateway's own backend client (`gateway-client` / `backend`).
    Backend,
    Other,
}

/// `client.mode`, where a decision depends on it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientMode {
    Node,
    Probe,
    Other,
}

impl ClientKind {
    fn of(id: &str, mode: &str) -> ClientKind {
        match (id, mode) {
            ("openclaw-control-ui" | "webchat-ui" | "webchat", _) | (_, "webchat") => {
                ClientKind::ControlUi
            }
            ("cli", "cli") => ClientKind::Cli,
            ("gateway-client", "backend") => ClientKind::Backend,
            _ => ClientKind::Other,
        }
    }
}

impl ClientMode {
    fn of(mode: &str) -> ClientMode {
        match mode {
            "node" => ClientMode::Node,
            "probe" => ClientMode::Probe,
            _ => ClientMode::Other,
        }
    }
}

pub(super) struct Params<'a> {
    pub(super) kind: ClientKind,
    pub(super) mode: ClientMode,
    pub(super) min_protocol: u64,
    pub(super) max_protocol: u64,
    pub(super) client_id: &'a str,
    pub(super) client_version: &'a str,
    pub(super) client_platform: &'a str,
    pub(super) client_mode: &'a str,
    pub(super) device_family: Option<&'a str>,
    pub(super) display_name: Option<&'a str>,
    pub(super) instance_id: Option<&'a str>,
    /// `None`: a string that names no role (refused after the protocol check).
    pub(super) role: Option<Role>,
    pub(super) scopes: Vec<String>,
    /// What `auth` holds, read once.
    pub(super) presented: Presented<'a>,
    pub(super) device: Option<&'a Map<String, Value>>,
}

pub(super) fn parse_params(v: &Value) -> Result<Params<'_>, Rejection> {
    let Some(p) = v.as_object() else {
        return Err(invalid_params("at root: must be object".into()));
    };
    let int = |k: &str| -> Result<u64, Rejection> {
        match p.get(k) {
            None => Err(invalid_params(format!(
                "at root: must have required property '{k}'"
            ))),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(n),
                _ => Err(invalid_params(format!("at /{k}: must be integer >= 1"))),
            },
        }
    };
    let min_protocol = int("minProtocol")?;
    let max_protocol = int("maxProtocol")?;
    let client = match p.get("client") {
        None => {
            return Err(invalid_params(
                "at root: must have required property 'client'".into(),
            ))
        }
        Some(Value::Object(c)) => c,
        Some(_) => return Err(invalid_params("at /client: must be object".into())),
    };
    let req_str = |k: &str| -> Result<&str, Rejection> {
        match client.get(k) {
            None => Err(invalid_params(format!(
                "at /client: must have required property '{k}'"
            ))),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            Some(_) => Err(invalid_params(format!(
                "at /client/{k}: must be non-empty string"
            ))),
        }
    };
    let client_id = req_str("id")?;
    let client_version = req_str("version")?;
    let client_platform = req_str("platform")?;
    let client_mode = req_str("mode")?;
    let opt_str = |k: &str| client.get(k).and_then(Value::as_str);
    let role = match p.get("role") {
        None | Some(Value::Null) => Some(Role::Operator),
        Some(Value::String(s)) => Role::parse(s),
        Some(_) => None,
    };
    let scopes = match p.get("scopes") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => {
            let mut out = vec![];
            for (i, s) in a.iter().enumerate() {
                match s.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => return Err(invalid_params(format!("at /scopes/{i}: must be string"))),
                }
            }
            out
        }
        Some(_) => return Err(invalid_params("at /scopes: must be array".into())),
    };
    let auth = match p.get("auth") {
        None | Some(Value::Null) => None,
        Some(Value::Object(a)) => Some(a),
        Some(_) => return Err(invalid_params("at /auth: must be object".into())),
    };
    let device = match p.get("device") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => {
            for k in ["id", "publicKey", "signature", "nonce"] {
                match d.get(k) {
                    Some(Value::String(_)) => {}
                    None => {
                        return Err(invalid_params(format!(
                            "at /device: must have required property '{k}'"
                        )))
                    }
                    Some(_) => {
                        return Err(invalid_params(format!("at /device/{k}: must be string")))
                    }
                }
            }
            match d.get("signedAt").and_then(Value::as_u64) {
                Some(_) => {}
                None => {
                    return Err(invalid_params(
                        "at /device/signedAt: must be integer >= 0".into(),
                    ))
                }
            }
            Some(d)
        }
        Some(_) => return Err(invalid_params("at /device: must be object".into())),
    };
    Ok(Params {
        kind: ClientKind::of(client_id, client_mode),
        mode: ClientMode::of(client_mode),
        min_protocol,
        max_protocol,
        client_id,
        client_version,
        client_platform,
        client_mode,
        device_family: opt_str("deviceFamily"),
        display_name: opt_str("displayName"),
        instance_id: opt_str("instanceId"),
        role,
        scopes,
        presented: Presented::of(auth),
        device,
    })
}

/// The credentials a connect presented (blank strings count as absent).
#[derive(Clone, Copy)]
pub(super) struct Presented<'a> {
    pub token: Option<&'a str>,
    pub password: Option<&'a str>,
    pub device_token: Option<&'a str>,
    pub bootstrap_token: Option<&'a str>,
}

impl<'a> Presented<'a> {
    fn of(auth: Option<&'a Map<String, Value>>) -> Self {
        Presented {
            token: auth_str(auth, "token"),
            password: auth_str(auth, "password"),
            device_token: auth_str(auth, "deviceToken"),
            bootstrap_token: auth_str(auth, "bootstrapToken"),
        }
    }

    /// A token, password or device token (what the failed-auth limiter counts).
    pub(super) fn any(&self) -> bool {
        self.token.is_some() || self.password.is_some() || self.device_token.is_some()
    }

    /// The token the device signature covers.
    pub(super) fn signature_token(&self) -> &'a str {
        self.token
            .or(self.device_token)
            .or(self.bootstrap_token)
            .unwrap_or("")
    }
}

fn auth_str<'a>(auth: Option<&'a Map<String, Value>>, k: &str) -> Option<&'a str> {
    auth.and_then(|a| a.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

pub(super) fn is_control_ui(p: &Params<'_>) -> bool {
    p.kind == ClientKind::ControlUi
}

/// The protocol range (§1.7), then the role: the first two refusals, in
/// OpenClaw's order.
pub(super) fn check_protocol_and_role(p: &Params<'_>) -> Result<Role, Rejection> {
    // Protocol range (§1.7).
    let accepts = (p.min_protocol <= PROTOCOL_VERSION && PROTOCOL_VERSION <= p.max_protocol)
        || (p.mode == ClientMode::Probe
            && p.max_protocol >= 3
            && p.min_protocol <= PROTOCOL_VERSION)
        || (p.role == Some(Role::Node)
            && p.mode == ClientMode::Node
            && p.min_protocol <= 3
            && 3 <= p.max_protocol);
    if !accepts {
        let err = ErrorShape::invalid("protocol mismatch").with_details(json!({
            "code": RejectReason::ProtocolMismatch.code(),
            "clientMinProtocol": p.min_protocol,
            "clientMaxProtocol": p.max_protocol,
            "expectedProtocol": PROTOCOL_VERSION,
            "minimumProbeProtocol": 3,
        }));
        return Err(Rejection {
            reason: RejectReason::ProtocolMismatch,
            error: Some(err),
            close_code: 1002,
            close_reason: "protocol mismatch".into(),
            delay_ms: 0,
        });
    }
    let Some(role) = p.role else {
        return Err(Rejection {
            reason: RejectReason::InvalidRequest,
            error: Some(ErrorShape::invalid("invalid role")),
            close_code: 1008,
            close_reason: "invalid role".into(),
            delay_ms: 0,
        });
    };
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_validation_messages() {
        let e = parse_params(&json!({"minProtocol": 4})).err().unwrap();
        assert_eq!(
            e.error.unwrap().message,
            "invalid connect params: at root: must have required property 'maxProtocol'"
        );
        let e = parse_params(&json!({"minProtocol": 4, "maxProtocol": 4, "client": {"id": "cli", "version": "1", "platform": "linux"}})).err().unwrap();
        assert_eq!(e.close_code, 1008);
        assert!(e.close_reason.contains("'mode'"));
        let v = json!({"minProtocol": 4, "maxProtocol": 4, "bogus": 1,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli", "buildId": "x"}});
        assert!(parse_params(&v).is_ok(), "unknown fields are accepted");
    }
}
