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
    let me = identity::for_device(store, &IdMap::default(), identity::MAINTENANCE)
        .await
        .map_err(|e| format!("storage: {e}"))?;
    let params = json!({
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
    let mut opened = upstream::open(up, &params, &grant, Some(&me), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    let req = json!({"type": "req", "id": "forget", "method": "device.pair.remove", "params": {"deviceId": upstream_device_id}});
    opened
        .ws
        .send(Message::text(req.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_millis(up.connect_timeout_ms);
    let answer = loop {
        match tokio::time::timeout_at(deadline, opened.ws.next()).await {
            Err(_) => break Err("no answer in time".to_string()),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                if v["type"] == "res" && v["id"] == "forget" {
                    break match v["ok"].as_bool() {
                        Some(true) => Ok(()),
                        // Already gone there (never bridged after a reset, say): nothing to forget.
                        _ if v["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("unknown")) =>
                        {
                            Ok(())
                        }
                        _ => Err(format!("device.pair.remove: {}", v["error"])),
                    };
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(_) => break Err("the connection closed".to_string()),
        }
    };
    let _ = opened.ws.close(None).await;
    answer
}
