//! The connection to the upstream gateway for one downstream session: the
//! upstream's challenge, a `connect` built from the downstream one (the
//! client info copied, the role and scopes clawgate granted, the upstream's
//! secret, clawgate's identity for the device), and its `hello-ok`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::identity::Identity;
use crate::config::{UpstreamConfig, UpstreamSecret};
use crate::gateway::device::{payload_v3, PayloadFields};
use crate::gateway::registry::SessionInfo;
use crate::gateway::scopes::Role;
use crate::util::now_ms;

pub type UpWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The request id of the upstream `connect` (the downstream one keeps its own).
const CONNECT_ID: &str = "clawgate-connect";

/// An upstream session that answered `hello-ok`.
pub struct Opened {
    pub ws: UpWs,
    /// The upstream's `hello-ok` payload.
    pub hello: Value,
    /// What its challenge advertised (`payload.capabilities`).
    pub capabilities: Option<Vec<String>>,
}

/// Why no upstream session could be opened.
#[derive(Debug)]
pub enum OpenError {
    /// No connection, or no answer in time.
    Unreachable(String),
    /// The upstream refused `connect`: its error object, and its close.
    Refused {
        error: Value,
        close: Option<(u16, String)>,
    },
    /// The upstream spoke something that is not the gateway protocol.
    Protocol(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Unreachable(why) => write!(f, "unreachable: {why}"),
            OpenError::Refused { error, .. } => write!(
                f,
                "refused connect: {} {}",
                error["code"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("")
            ),
            OpenError::Protocol(why) => write!(f, "not the gateway protocol: {why}"),
        }
    }
}

/// The role and scopes an upstream session asks for: the downstream
/// session's granted ones, never more.
pub struct Grant<'a> {
    pub role: Role,
    pub scopes: &'a [String],
    /// A browser session (its upgrade had an `Origin`): the upstream gets
    /// one it accepts from a local client, its own (the real gateway
    /// refuses a browser client without one, whatever its allowedOrigins).
    pub browser: bool,
}

impl<'a> Grant<'a> {
    pub fn of(info: &'a SessionInfo) -> Self {
        Grant {
            role: info.role,
            scopes: &info.scopes,
            browser: info.origin.is_some(),
        }
    }
}

/// The upstream's own origin (`ws://h:p/x` → `http://h:p`).
fn own_origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let scheme = if u.scheme() == "wss" { "https" } else { "http" };
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The downstream `connect` params as the upstream gets them.
pub fn upstream_params(
    downstream: &Value,
    grant: &Grant<'_>,
    secret: &UpstreamSecret,
    identity: Option<&Identity>,
    nonce: &str,
) -> Value {
    let mut p = downstream.as_object().cloned().unwrap_or_default();
    p.remove("device");
    p.remove("auth");
    p.insert("role".into(), json!(grant.role));
    p.insert("scopes".into(), json!(grant.scopes));
    let token = match secret {
        UpstreamSecret::Token(t) => {
            let t = t.expose().unwrap_or_default().to_string();
            p.insert("auth".into(), json!({ "token": t }));
            t
        }
        UpstreamSecret::Password(pw) => {
            p.insert(
                "auth".into(),
                json!({ "password": pw.expose().unwrap_or_default() }),
            );
            String::new()
        }
        UpstreamSecret::None => String::new(),
    };
    if let Some(id) = identity {
        let client = p.get("client").cloned().unwrap_or(Value::Null);
        let s = |k: &str| client.get(k).and_then(Value::as_str).unwrap_or("");
        let signed_at = now_ms();
        let device_id = id.device_id();
        let fields = PayloadFields {
            device_id: &device_id,
            client_id: s("id"),
            client_mode: s("mode"),
            role: grant.role.as_str(),
            scopes: grant.scopes,
            signed_at_ms: signed_at,
            token: &token,
            nonce,
            platform: s("platform"),
            device_family: s("deviceFamily"),
        };
        p.insert(
            "device".into(),
            json!({
                "id": device_id,
                "publicKey": id.public_key(),
                "signature": id.sign(&payload_v3(&fields)),
                "signedAt": signed_at,
                "nonce": nonce,
            }),
        );
    }
    Value::Object(p)
}

/// Opens an upstream session for `info`.
pub async fn open(
    up: &UpstreamConfig,
    downstream_params: &Value,
    grant: &Grant<'_>,
    identity: Option<&Identity>,
    max_payload: usize,
) -> Result<Opened, OpenError> {
    // Small buffers: an idle bridged session must stay small (tungstenite
    // allocates a 128 KiB read buffer by default: measured 131-146 KiB per
    // bridged session with it, see benches/relay.rs); frames are written at
    // once (no write batching) and the write buffer may hold one frame more.
    let cfg = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(max_payload.saturating_mul(2))
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload));
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = up
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| OpenError::Unreachable(e.to_string()))?;
    if grant.browser {
        if let Some(o) = own_origin(&up.url).and_then(|o| o.parse().ok()) {
            request.headers_mut().insert("origin", o);
        }
    }
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(cfg), true);
    // One deadline for the whole opening (TCP, upgrade, challenge, hello):
    // an upstream that chatters without ever answering gets no longer.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(up.connect_timeout_ms);
    let (mut ws, _) = match tokio::time::timeout_at(deadline, connecting).await {
        Err(_) => return Err(OpenError::Unreachable("no answer in time".into())),
        Ok(Err(e)) => return Err(OpenError::Unreachable(e.to_string())),
        Ok(Ok(c)) => c,
    };
    // The challenge.
    let (nonce, capabilities) = loop {
        let v = next_json(&mut ws, deadline).await?;
        if v["type"] == "event" && v["event"] == "connect.challenge" {
            let caps = v["payload"]["capabilities"].as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
            match v["payload"]["nonce"].as_str() {
                Some(n) => break (n.to_string(), caps),
                None => return Err(OpenError::Protocol("a challenge without a nonce".into())),
            }
        }
    };
    let params = upstream_params(downstream_params, grant, &up.secret, identity, &nonce);
    let frame = json!({"type": "req", "id": CONNECT_ID, "method": "connect", "params": params});
    if let Err(e) = ws.send(Message::text(frame.to_string())).await {
        return Err(OpenError::Unreachable(e.to_string()));
    }
    loop {
        let v = match next_json(&mut ws, deadline).await {
            Ok(v) => v,
            Err(OpenError::Unreachable(e)) => return Err(OpenError::Unreachable(e)),
            Err(e) => return Err(e),
        };
        if v["type"] != "res" || v["id"] != CONNECT_ID {
            continue;
        }
        if v["ok"] == true {
            return Ok(Opened {
                ws,
                hello: v["payload"].clone(),
                capabilities,
            });
        }
        let error = v["error"].clone();
        // The close that follows a refusal says how to retry (1013 while starting).
        let close = match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(c))))) => {
                Some((u16::from(c.code), c.reason.to_string()))
            }
            _ => None,
        };
        return Err(OpenError::Refused { error, close });
    }
}

/// The next text frame as JSON, before `deadline`.
async fn next_json(ws: &mut UpWs, deadline: tokio::time::Instant) -> Result<Value, OpenError> {
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(OpenError::Unreachable("no answer in time".into())),
            Ok(None) => return Err(OpenError::Unreachable("the connection closed".into())),
            Ok(Some(Err(e))) => return Err(OpenError::Unreachable(e.to_string())),
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(t) => {
                return serde_json::from_str(t.as_str())
                    .map_err(|e| OpenError::Protocol(format!("a frame that is not JSON ({e})")))
            }
            Message::Close(c) => {
                let why = c
                    .map(|c| format!("closed {} {}", u16::from(c.code), c.reason))
                    .unwrap_or_else(|| "closed".into());
                return Err(OpenError::Unreachable(why));
            }
            _ => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_upstreams_own_origin() {
        assert_eq!(
            super::own_origin("ws://127.0.0.1:18790").as_deref(),
            Some("http://127.0.0.1:18790")
        );
        assert_eq!(
            super::own_origin("wss://gw.example/x").as_deref(),
            Some("https://gw.example")
        );
        assert_eq!(
            super::own_origin("ws://[::1]:9").as_deref(),
            Some("http://[::1]:9")
        );
    }
}
