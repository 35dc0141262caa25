//! The OpenClaw gateway WebSocket: attribution → upgrade → `connect.challenge`
//! → `connect` → `hello-ok` → session loop (ticks, pings, RPCs, events).

pub mod auth;
pub(crate) mod bridge;
mod connect;
mod control_ui;
pub mod device;
pub mod frames;
mod http_auth;
pub mod listener;
pub mod ops;
pub mod pairing;
pub mod registry;
pub mod reload;
mod rpc;
pub mod scopes;
mod session;
pub mod trusted_proxy;
pub mod watch;
pub mod wire;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use arc_swap::ArcSwap;
use serde_json::{json, Value};

use crate::config::RuntimeConfig;
use crate::net::{self, Attribution, ClientAddr, ProxyPolicy};
use crate::store::Store;

/// The protocol level clawgate speaks, reported as `server.version`.
pub const COMPAT_VERSION: &str = "2026.9.6";
pub const PROTOCOL_VERSION: u64 = 4;

/// One recorded rejection (for diagnostics).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectionRecord {
    pub ts: u64,
    pub peer: String,
    pub client: String,
    pub forwarded_headers: Vec<(String, String)>,
    pub reason: String,
    pub hint: String,
    /// The browser's `Origin`, when the refused request had one.
    pub origin: Option<String>,
}

/// Shared state of the gateway listener.
pub struct GatewayState {
    pub config: ArcSwap<RuntimeConfig>,
    pub store: Store,
    pub registry: registry::Registry,
    pub limiter: auth::AuthLimiter,
    pub token_key: [u8; 32],
    pub boot_id: String,
    pub started: Instant,
    live: AtomicUsize,
    /// Woken when the last live connection ends.
    live_gone: tokio::sync::Notify,
    /// The runtime WebSocket sessions run on (not an HTTP worker's, so that
    /// a listener can stop while the sessions it accepted go on).
    sessions_rt: tokio::runtime::Handle,
    preauth: Mutex<HashMap<IpAddr, usize>>,
    rejections: Mutex<VecDeque<RejectionRecord>>,
    /// device id → (last seen ms, client address); flushed in batches.
    last_seen: Mutex<HashMap<String, (u64, String)>>,
    /// Events for admin listeners (SSE).
    pub events: tokio::sync::broadcast::Sender<ops::AdminEvent>,
    handshakes: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Decompressed device keys (point decompression costs a square root on
    /// every connect otherwise); bounded, cleared when full.
    keys: Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>,
    /// Config reloads, listeners and their status.
    pub control: reload::Control,
    /// Front-door mode: the upstream as last seen, and relay counters.
    pub upstream: bridge::status::UpstreamStatus,
    /// Front-door mode: downstream device ids ↔ their upstream identities.
    pub upstream_ids: bridge::identity::IdMap,
    admin_addr: std::sync::OnceLock<std::net::SocketAddr>,
}

impl GatewayState {
    pub fn new(config: RuntimeConfig, store: Store, token_key: [u8; 32]) -> Self {
        let upstream_ids = bridge::identity::IdMap::load(&store).unwrap_or_else(|e| {
            // Only the nodeId translation is affected until identities are used again.
            tracing::warn!(error = %e, "cannot read the upstream identities");
            Default::default()
        });
        GatewayState {
            config: ArcSwap::from_pointee(config),
            store,
            registry: Default::default(),
            limiter: Default::default(),
            token_key,
            boot_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            live: AtomicUsize::new(0),
            live_gone: tokio::sync::Notify::new(),
            sessions_rt: tokio::runtime::Handle::current(),
            preauth: Mutex::new(HashMap::new()),
            rejections: Mutex::new(VecDeque::new()),
            last_seen: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(1024).0,
            handshakes: Mutex::new(Default::default()),
            keys: Mutex::new(HashMap::new()),
            control: Default::default(),
            upstream: Default::default(),
            upstream_ids,
            admin_addr: Default::default(),
        }
    }

    /// The admin listener's address, once bound.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr.get().copied()
    }

    pub fn set_admin_addr(&self, a: std::net::SocketAddr) {
        let _ = self.admin_addr.set(a);
    }

    /// The verifying key for raw public-key bytes, cached.
    pub fn verifying_key(&self, raw: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
        if let Some(k) = self.keys.lock().expect("key cache lock").get(raw) {
            return Some(*k);
        }
        let k = ed25519_dalek::VerifyingKey::from_bytes(raw).ok()?;
        let mut m = self.keys.lock().expect("key cache lock");
        if m.len() >= 8192 {
            m.clear();
        }
        m.insert(*raw, k);
        Some(k)
    }

    pub fn count_handshake(&self, outcome: &str) {
        let mut m = self.handshakes.lock().expect("handshake counter lock");
        match m.get_mut(outcome) {
            Some(n) => *n += 1,
            None => {
                m.insert(outcome.to_string(), 1);
            }
        }
    }

    /// Connect attempts by outcome (`ok` or the error's detail code).
    pub fn handshake_counts(&self) -> Vec<(String, u64)> {
        self.handshakes
            .lock()
            .expect("handshake counter lock")
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Notes that a device connected (kept in memory, written by [`Self::flush_last_seen`]).
    pub fn note_seen(&self, device_id: &str, ip: &IpAddr) {
        let mut m = self.last_seen.lock().expect("last-seen lock");
        m.insert(
            device_id.to_string(),
            (crate::util::now_ms(), ip.to_string()),
        );
    }

    /// Writes the batched last-seen times in one non-durable transaction (the
    /// store makes it durable within a second); never on the handshake path.
    pub async fn flush_last_seen(&self) -> Result<usize, crate::store::StoreError> {
        let batch: Vec<(String, (u64, String))> = {
            let mut m = self.last_seen.lock().expect("last-seen lock");
            m.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        self.store
            .write(redb::Durability::None, move |txn| {
                let mut n = 0;
                for (id, (ts, ip)) in &batch {
                    if let Some(mut d) = crate::store::device_in(txn, id)? {
                        d.last_seen_at_ms = Some(*ts);
                        d.last_seen_reason = Some("connect".into());
                        d.last_seen_ip = Some(ip.clone());
                        crate::store::put_device(txn, &d)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await
    }

    /// Open WebSocket connections (authenticated or not).
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no WebSocket connection is left, at most `limit`; whether
    /// none is.
    pub async fn connections_gone(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let gone = self.live_gone.notified();
                if self.live_connections() == 0 {
                    return;
                }
                gone.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Authenticated sessions.
    pub fn sessions(&self) -> usize {
        self.registry.len()
    }

    pub fn record_rejection(&self, addr: &ClientAddr, reason: &str, hint: &str) {
        self.record_rejection_from(addr, None, reason, hint);
    }

    /// [`Self::record_rejection`] for a request that carried an `Origin`.
    pub fn record_rejection_from(
        &self,
        addr: &ClientAddr,
        origin: Option<&str>,
        reason: &str,
        hint: &str,
    ) {
        let mut ring = self.rejections.lock().expect("rejections lock");
        if ring.len() >= 256 {
            ring.pop_front();
        }
        ring.push_back(RejectionRecord {
            ts: crate::util::now_ms(),
            peer: addr.peer.to_string(),
            client: addr.client.to_string(),
            forwarded_headers: addr.proxy_headers.clone(),
            reason: reason.to_string(),
            hint: hint.to_string(),
            origin: origin.map(|o| crate::util::truncate_utf8(o, 256).to_string()),
        });
    }

    pub fn recent_rejections(&self) -> Vec<RejectionRecord> {
        self.rejections
            .lock()
            .expect("rejections lock")
            .iter()
            .cloned()
            .collect()
    }
}

/// Counts a live connection; the guard decrements on drop.
pub(crate) struct LiveGuard(Arc<GatewayState>, Option<listener::Conns>);

impl LiveGuard {
    fn new(state: Arc<GatewayState>, per_listener: Option<listener::Conns>) -> Self {
        state.live.fetch_add(1, Ordering::SeqCst);
        if let Some(c) = &per_listener {
            c.fetch_add(1, Ordering::SeqCst);
        }
        LiveGuard(state, per_listener)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.live_gone.notify_waiters();
        }
        if let Some(c) = &self.1 {
            c.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Counts an unauthenticated socket per client address.
pub(crate) struct PreauthGuard {
    state: Arc<GatewayState>,
    ip: Option<IpAddr>,
}

impl PreauthGuard {
    fn try_new(state: Arc<GatewayState>, ip: IpAddr, max: usize) -> Option<Self> {
        {
            let mut m = state.preauth.lock().expect("preauth lock");
            let n = m.entry(ip).or_insert(0);
            if *n >= max {
                return None;
            }
            *n += 1;
        }
        Some(PreauthGuard {
            state,
            ip: Some(ip),
        })
    }

    /// Called once the socket authenticated (or ended).
    pub(crate) fn release(&mut self) {
        if let Some(ip) = self.ip.take() {
            let mut m = self.state.preauth.lock().expect("preauth lock");
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

impl Drop for PreauthGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// Who a request on the gateway port is from, under the config's proxy policy.
pub(crate) fn attribute(
    cfg: &crate::config::RuntimeConfig,
    peer: std::net::IpAddr,
    headers: &actix_web::http::header::HeaderMap,
) -> net::ClientAddr {
    net::attribute(
        peer,
        &header_pairs(headers),
        &ProxyPolicy {
            trusted: &cfg.gateway.trusted_proxies,
            allow_real_ip_fallback: cfg.gateway.allow_real_ip_fallback,
        },
    )
}

/// Request headers as (lowercase name, value) pairs.
/// The headers attribution looks at (proxy and Tailscale headers), as
/// (lowercase name, value) pairs. Others are not copied.
fn header_pairs(headers: &actix_web::http::header::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            n.starts_with("x-") || n == "forwarded" || n.starts_with("tailscale-")
        })
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn header(headers: &actix_web::http::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

const RESERVED_PATHS: &[&str] = &[
    "/__openclaw__/worker",
    "/desktop/observe",
    "/node-desktop/attach",
    "/node-portal/attach",
];

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true}))
}

async fn readyz(state: web::Data<Arc<GatewayState>>) -> HttpResponse {
    match state.store.check_ready() {
        Ok(()) => HttpResponse::Ok().json(json!({"ok": true, "sessions": state.sessions()})),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(json!({"ok": false, "error": e.to_string()}))
        }
    }
}

/// Every path that is not `/healthz` or `/readyz`: the gateway WebSocket.
/// Plain HTTP on the gateway port (WebSocket upgrades are taken over by
/// [`upgrade_entry`] before they reach the app).
async fn ws_entry(
    state: web::Data<Arc<GatewayState>>,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    let cfg = state.config.load_full();
    // A WebSocket handshake that lost its Upgrade/Connection headers on the
    // way (a proxy that does not pass them on): said so, in both modes.
    if let Some(resp) = upgrade_dropped(&state, &cfg, &req) {
        return resp;
    }
    // Front-door mode: plain HTTP goes to the upstream (the Control UI, its
    // config, avatars, the OpenAI-compatible and tools endpoints, hooks).
    if let Some(up) = cfg.gateway.upstream.clone() {
        return bridge::http::proxy(state.get_ref().clone(), cfg, &up, req, body).await;
    }
    if RESERVED_PATHS.iter().any(|p| req.path().starts_with(p)) {
        return HttpResponse::NotFound()
            .json(json!({"error": {"message": "not found", "type": "not_found"}}));
    }
    // Standalone mode: the Control UI, when gateway.controlUi.root is set.
    if let Some(resp) = control_ui::serve(&state, &cfg, &req).await {
        return resp;
    }
    HttpResponse::UpgradeRequired().json(json!({
        "error": {"message": "this is the OpenClaw gateway WebSocket endpoint; connect with a WebSocket client", "type": "upgrade_required"}
    }))
}

/// What clawgate says when a WebSocket handshake arrives without its
/// `Upgrade: websocket` (the proxy in front dropped the hop-by-hop
/// headers): the rejection log and `clawgate doctor` name the fix.
pub const UPGRADE_DROPPED_HINT: &str = "a WebSocket handshake (Sec-WebSocket-Key) arrived without \
`Upgrade: websocket` / `Connection: upgrade`: the proxy in front does not pass them on. nginx: \
`proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";` \
in the location; HAProxy: do not delete Upgrade/Connection (`mode http` passes them); Caddy: \
`reverse_proxy` passes them unless a `header_up -Upgrade` / `-Connection` removes them";

fn upgrade_dropped(
    state: &GatewayState,
    cfg: &crate::config::RuntimeConfig,
    req: &HttpRequest,
) -> Option<HttpResponse> {
    let h = req.headers();
    if !h.contains_key("sec-websocket-key") || h.contains_key("upgrade") {
        return None;
    }
    let addr = attribute(cfg, req.peer_addr()?.ip(), h);
    tracing::warn!(peer = %addr.peer, client = %addr.client, "refused a WebSocket handshake without its Upgrade header (a proxy dropped it)");
    state.record_rejection(&addr, "websocket_upgrade_missing", UPGRADE_DROPPED_HINT);
    Some(HttpResponse::UpgradeRequired().json(json!({
        "error": {"type": "upgrade_headers_missing", "message": UPGRADE_DROPPED_HINT}
    })))
}

/// Writes a complete HTTP/1.1 response and closes the connection.
async fn respond(
    io: &mut tokio::net::TcpStream,
    status: actix_web::http::StatusCode,
    content_type: &str,
    body: &str,
) {
    use tokio::io::AsyncWriteExt;
    let msg = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = io.write_all(msg.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// A request with `Connection: Upgrade`, handed over by actix-http with its
/// raw connection: attribution, budgets and the WebSocket handshake, then the
/// session runs on the socket itself (see [`ws`]).
pub async fn upgrade_entry(
    state: Arc<GatewayState>,
    per_listener: listener::Conns,
    req: actix_http::Request,
    framed: actix_codec::Framed<tokio::net::TcpStream, actix_http::h1::Codec>,
) -> Result<(), actix_http::Error> {
    use actix_web::http::StatusCode;
    let parts = framed.into_parts();
    let mut io = parts.io;
    let early = parts.read_buf;
    drop(parts.write_buf);
    let head = req.head();
    let headers = &head.headers;
    let is_ws = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let path = head.uri.path();
    if RESERVED_PATHS.iter().any(|p| path.starts_with(p)) {
        let body = json!({"error": {"message": "not found", "type": "not_found"}}).to_string();
        respond(&mut io, StatusCode::NOT_FOUND, "application/json", &body).await;
        return Ok(());
    }
    if !is_ws {
        let body = json!({
            "error": {"message": "this is the OpenClaw gateway WebSocket endpoint; connect with a WebSocket client", "type": "upgrade_required"}
        })
        .to_string();
        respond(
            &mut io,
            StatusCode::UPGRADE_REQUIRED,
            "application/json",
            &body,
        )
        .await;
        return Ok(());
    }
    let cfg = state.config.load_full();
    let Some(peer) = req
        .peer_addr()
        .map(|a| a.ip())
        .or_else(|| io.peer_addr().ok().map(|a| a.ip()))
    else {
        respond(&mut io, StatusCode::BAD_REQUEST, "text/plain", "").await;
        return Ok(());
    };
    let addr = attribute(&cfg, peer, headers);
    if addr.kind == Attribution::Unattributable {
        let body = net::attribution_required_body(&addr);
        let hint = body["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        tracing::warn!(peer = %addr.peer, reason = addr.reason.map_or("", |r| r.as_str()), "rejected upgrade: proxy attribution required");
        state.record_rejection(&addr, "proxy_attribution_required", &hint);
        respond(
            &mut io,
            StatusCode::FORBIDDEN,
            "application/json",
            &body.to_string(),
        )
        .await;
        return Ok(());
    }
    let Some(preauth) = PreauthGuard::try_new(
        state.clone(),
        addr.client,
        cfg.gateway.limits.max_preauth_per_ip,
    ) else {
        state.record_rejection(
            &addr,
            "preauth_budget",
            "too many unauthenticated sockets from this address",
        );
        respond(
            &mut io,
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "Too many unauthenticated sockets",
        )
        .await;
        return Ok(());
    };
    if let Err(e) = actix_http::ws::verify_handshake(head) {
        let status = match e {
            actix_http::ws::HandshakeError::GetMethodRequired => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        respond(&mut io, status, "text/plain", &e.to_string()).await;
        return Ok(());
    }
    let key = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes())
        .unwrap_or_default();
    let accept = actix_http::ws::hash_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        std::str::from_utf8(&accept).unwrap_or_default()
    );
    {
        use tokio::io::AsyncWriteExt;
        if io.write_all(response.as_bytes()).await.is_err() {
            return Ok(());
        }
    }
    let ctx = connect::ConnCtx {
        conn_id: uuid::Uuid::new_v4().to_string(),
        addr,
        origin: header(headers, "origin"),
        host: header(headers, "host"),
        identity: http_auth::identity_headers(&cfg, headers),
    };
    drop(req);
    let _ = io.set_nodelay(true);
    let live = LiveGuard::new(state.clone(), Some(per_listener));
    let max_preauth_payload = cfg.gateway.limits.max_preauth_payload;
    // The session leaves the HTTP worker for the sessions runtime: a listener
    // that stops (a port change) stops its workers, never its sessions.
    let Ok(io) = io.into_std() else {
        return Ok(());
    };
    let rt = state.sessions_rt.clone();
    rt.spawn(async move {
        let Ok(io) = tokio::net::TcpStream::from_std(io) else {
            return;
        };
        let (r, w) = io.into_split();
        let reader = ws::WsReader::new(r, early, max_preauth_payload);
        let writer = ws::WsWriter::new(w);
        session::run(state, cfg, ctx, writer, reader, live, preauth).await;
    });
    Ok(())
}

/// Registers the gateway routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .default_service(web::to(ws_entry));
}

/// `hello-ok.features`: exactly what is implemented.
pub fn features() -> Value {
    json!({
        "methods": rpc::METHODS,
        "events": registry::WsEvent::ALL.map(registry::WsEvent::as_str),
    })
}
