//! clawgate's own sessions to the upstream (its maintenance identity), for
//! what it asks the upstream itself.
//!
//! When a device is removed in clawgate, the upstream forgets the identity
//! clawgate presented for it: clawgate opens a session of its own (its
//! maintenance identity, from loopback with the upstream's secret, paired
//! silently there as local) and calls `device.pair.remove` for that
//! identity. The upstream drops the device with its node surface and
//! tokens; a device that pairs again in clawgate gets a new identity, and a
//! node's command surface is approved upstream again.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::identity::{self, IdMap};
use super::upstream::{self, Grant};
use crate::config::UpstreamConfig;
use crate::gateway::scopes::Role;
use crate::store::Store;

/// What clawgate's maintenance session asks for.
const SCOPES: &[&str] = &["operator.admin", "operator.pairing"];

/// Asks the upstream to forget `upstream_device_id`; the outcome is logged.
pub async fn forget(store: Store, up: UpstreamConfig, upstream_device_id: String) {
    match run(&store, &up, &upstream_device_id).await {
        Ok(()) => {
            tracing::info!(upstream = %up.url, identity = %crate::gateway::device::fingerprint(&upstream_device_id), "the upstream forgot a removed device's identity")
        }
        Err(e) => {
            tracing::warn!(upstream = %up.url, identity = %crate::gateway::device::fingerprint(&upstream_device_id), error = %e, "the upstream could not be told to forget a removed device's identity; remove it there with `openclaw devices remove`")
        }
    }
}

async fn run(store: &Store, up: &UpstreamConfig, upstream_device_id: &str) -> Result<(), String> {
    match call(
        store,
        up,
        "device.pair.remove",
        json!({"deviceId": upstream_device_id}),
    )
    .await
    {
        Ok(_) => Ok(()),
        // Already gone there (never bridged after a reset, say): nothing to forget.
        Err(Refused(e)) if e["message"].as_str().is_some_and(|m| m.contains("unknown")) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a maintenance call gave no answer.
#[derive(Debug)]
pub enum CallError {
    /// No session, or no answer in time.
    Unavailable(String),
    /// The upstream answered with this error object.
    Refused(Value),
}
use CallError::Refused;

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable(why) => write!(f, "{why}"),
            Refused(e) => write!(
                f,
                "{} {}",
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            ),
        }
    }
}

/// One request on a maintenance session of clawgate's own: its answer's
/// payload.
pub async fn call(
    store: &Store,
    up: &UpstreamConfig,
    method: &str,
    params: Value,
) -> Result<Value, CallError> {
    let unavailable = |e: String| CallError::Unavailable(e);
    let me = identity::for_device(store, &IdMap::default(), identity::MAINTENANCE)
        .await
        .map_err(|e| unavailable(format!("storage: {e}")))?;
    let connect = json!({
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "cli", "mode": "cli", "version": env!("CARGO_PKG_VERSION"), "platform": std::env::consts::OS, "displayName": "clawgate"},
    });
    let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
    let grant = Grant {
        role: Role::Operator,
        scopes: &scopes,
        browser: false,
    };
    let mut opened = upstream::open(up, &connect, &grant, Some(&me), 1 << 20)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let req = json!({"type": "req", "id": "maintenance", "method": method, "params": params});
    opened
        .ws
        .send(Message::text(req.to_string()))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(up.connect_timeout_ms);
    let answer = loop {
        match tokio::time::timeout_at(deadline, opened.ws.next()).await {
            Err(_) => break Err(unavailable("no answer in time".into())),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "res" && v["id"] == "maintenance" {
                    break match v["ok"].as_bool() {
                        Some(true) => Ok(v["payload"].clone()),
                        _ => Err(Refused(v["error"].clone())),
                    };
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => break Err(unavailable("the connection closed".into())),
        }
    };
    let _ = opened.ws.close(None).await;
    answer
}
