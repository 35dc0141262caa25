//! What clawgate knows about its upstream: the last `hello-ok` it got (the
//! upstream's version and build), the capabilities its challenge
//! advertises, the last failure, and counters for the metrics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::util::now_ms;

/// The challenge capabilities OpenClaw 2026.9.6 advertises, until the
/// upstream has told its own.
pub const DEFAULT_CAPABILITIES: &[&str] = &["model-catalog-snapshot"];
/// The same, as JSON (the standalone challenge writes it as it is).
pub const DEFAULT_CAPABILITIES_JSON: &str = r#"["model-catalog-snapshot"]"#;

#[derive(Default)]
struct Last {
    /// `hello-ok.server` of the last upstream session.
    server: Option<Value>,
    ok_at_ms: Option<u64>,
    capabilities: Option<Vec<String>>,
    error: Option<String>,
    error_at_ms: Option<u64>,
}

#[derive(Default)]
pub struct UpstreamStatus {
    last: Mutex<Last>,
    bridged: AtomicUsize,
    pub connects_ok: AtomicU64,
    pub connects_failed: AtomicU64,
    /// Sum of the connect latencies (challenge → hello-ok included), µs.
    pub connect_us_total: AtomicU64,
    pub frames_up: AtomicU64,
    pub frames_down: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
}

/// Counts one bridged session while it lives.
pub struct Bridged<'a>(&'a UpstreamStatus);

impl Drop for Bridged<'_> {
    fn drop(&mut self) {
        self.0.bridged.fetch_sub(1, Ordering::Relaxed);
    }
}

impl UpstreamStatus {
    pub fn opened(&self, server: &Value, capabilities: Option<Vec<String>>, micros: u64) {
        self.connects_ok.fetch_add(1, Ordering::Relaxed);
        self.connect_us_total.fetch_add(micros, Ordering::Relaxed);
        let mut l = self.last.lock().expect("upstream status lock");
        l.server = Some(server.clone());
        l.ok_at_ms = Some(now_ms());
        if capabilities.is_some() {
            l.capabilities = capabilities;
        }
    }

    pub fn failed(&self, why: &str) {
        self.connects_failed.fetch_add(1, Ordering::Relaxed);
        let mut l = self.last.lock().expect("upstream status lock");
        l.error = Some(why.to_string());
        l.error_at_ms = Some(now_ms());
    }

    pub fn bridged(&self) -> Bridged<'_> {
        self.bridged.fetch_add(1, Ordering::Relaxed);
        Bridged(self)
    }

    pub fn bridged_sessions(&self) -> usize {
        self.bridged.load(Ordering::Relaxed)
    }

    /// The capabilities a downstream challenge advertises.
    pub fn capabilities(&self) -> Vec<String> {
        self.last
            .lock()
            .expect("upstream status lock")
            .capabilities
            .clone()
            .unwrap_or_else(|| DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect())
    }

    pub fn relayed_up(&self, bytes: usize) {
        self.frames_up.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn relayed_down(&self, bytes: usize) {
        self.frames_down.fetch_add(1, Ordering::Relaxed);
        self.bytes_down.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `GET /admin/v1/upstream` (without the live reachability probe).
    pub fn to_json(&self) -> Value {
        let l = self.last.lock().expect("upstream status lock");
        json!({
            "server": l.server,
            "lastConnectedAtMs": l.ok_at_ms,
            "capabilities": l.capabilities,
            "lastError": l.error,
            "lastErrorAtMs": l.error_at_ms,
            "bridgedSessions": self.bridged_sessions(),
            "connects": {
                "ok": self.connects_ok.load(Ordering::Relaxed),
                "failed": self.connects_failed.load(Ordering::Relaxed),
            },
        })
    }
}

/// Whether something accepts TCP connections at the upstream's address.
pub async fn reachable(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = u
        .host_str()
        .ok_or("no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = u.port_or_known_default().ok_or("no port")?;
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_capabilities_json_is_the_list() {
        assert_eq!(
            serde_json::to_string(DEFAULT_CAPABILITIES).unwrap(),
            DEFAULT_CAPABILITIES_JSON
        );
    }
}
