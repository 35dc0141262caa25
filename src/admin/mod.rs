//! The REST admin API on its own listener: approve pairings, manage devices,
//! rotate tokens, edit trusted proxies; with an audit log, live events (SSE)
//! and Prometheus metrics. The route table below is the single source for
//! registration, scope checks and the `openapi.yaml` conformance test.

pub mod auth;
pub mod client;
pub mod denials;
pub mod dto;
pub mod error;
mod handlers;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, App, HttpMessage, HttpServer, ResponseError};

use crate::gateway::GatewayState;
use auth::AdminScope;
use error::{ApiError, Code};

/// One admin route: method, path (OpenAPI template syntax, also actix's), and
/// the scope it needs (`None`: no authentication).
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<AdminScope>,
}

macro_rules! admin_routes {
    ($( ($m:ident, $path:literal, $scope:expr, $h:path) ),* $(,)?) => {
        /// Every route the admin listener serves.
        pub const ROUTES: &[RouteSpec] = &[ $( RouteSpec { method: stringify!($m), path: $path, scope: $scope } ),* ];

        fn register(cfg: &mut web::ServiceConfig) {
            $( cfg.route($path, web::method(Method::$m).to($h)); )*
        }
    };
}

admin_routes![
    (GET, "/healthz", None, handlers::healthz),
    (GET, "/readyz", None, handlers::readyz),
    (
        GET,
        "/metrics",
        Some(AdminScope::ConfigRead),
        handlers::metrics
    ),
    (
        GET,
        "/admin/v1/pairing/requests",
        Some(AdminScope::PairingRead),
        handlers::list_requests
    ),
    (
        GET,
        "/admin/v1/pairing/requests/{requestId}",
        Some(AdminScope::PairingRead),
        handlers::get_request
    ),
    (
        POST,
        "/admin/v1/pairing/requests/{requestId}/approve",
        Some(AdminScope::PairingWrite),
        handlers::approve_request
    ),
    (
        POST,
        "/admin/v1/pairing/requests/{requestId}/reject",
        Some(AdminScope::PairingWrite),
        handlers::reject_request
    ),
    (
        GET,
        "/admin/v1/devices",
        Some(AdminScope::PairingRead),
        handlers::list_devices
    ),
    (
        GET,
        "/admin/v1/devices/{deviceId}",
        Some(AdminScope::PairingRead),
        handlers::get_device
    ),
    (
        PATCH,
        "/admin/v1/devices/{deviceId}",
        Some(AdminScope::DevicesWrite),
        handlers::patch_device
    ),
    (
        DELETE,
        "/admin/v1/devices/{deviceId}",
        Some(AdminScope::DevicesWrite),
        handlers::delete_device
    ),
    (
        POST,
        "/admin/v1/devices/{deviceId}/tokens/{role}/rotate",
        Some(AdminScope::TokensWrite),
        handlers::rotate_device_token
    ),
    (
        DELETE,
        "/admin/v1/devices/{deviceId}/tokens/{role}",
        Some(AdminScope::TokensWrite),
        handlers::revoke_device_token
    ),
    (
        POST,
        "/admin/v1/gateway/token/rotate",
        Some(AdminScope::TokensWrite),
        handlers::rotate_gateway_token
    ),
    (
        GET,
        "/admin/v1/trusted-proxies",
        Some(AdminScope::ConfigRead),
        handlers::get_proxies
    ),
    (
        PUT,
        "/admin/v1/trusted-proxies",
        Some(AdminScope::ConfigWrite),
        handlers::put_proxies
    ),
    (
        POST,
        "/admin/v1/trusted-proxies",
        Some(AdminScope::ConfigWrite),
        handlers::add_proxy
    ),
    (
        DELETE,
        "/admin/v1/trusted-proxies/{entry}",
        Some(AdminScope::ConfigWrite),
        handlers::delete_proxy
    ),
    (
        GET,
        "/admin/v1/sessions",
        Some(AdminScope::PairingRead),
        handlers::list_sessions
    ),
    (
        DELETE,
        "/admin/v1/sessions/{connId}",
        Some(AdminScope::DevicesWrite),
        handlers::delete_session
    ),
    (
        GET,
        "/admin/v1/config",
        Some(AdminScope::ConfigRead),
        handlers::get_config
    ),
    (
        PATCH,
        "/admin/v1/config",
        Some(AdminScope::ConfigWrite),
        handlers::patch_config
    ),
    (
        POST,
        "/admin/v1/config/validate",
        Some(AdminScope::ConfigRead),
        handlers::validate_config
    ),
    (
        POST,
        "/admin/v1/config/reload",
        Some(AdminScope::ConfigWrite),
        handlers::reload_config
    ),
    (
        GET,
        "/admin/v1/config/status",
        Some(AdminScope::ConfigRead),
        handlers::config_status
    ),
    (
        DELETE,
        "/admin/v1/config/overrides/{key}",
        Some(AdminScope::ConfigWrite),
        handlers::delete_override
    ),
    (
        GET,
        "/admin/v1/upstream",
        Some(AdminScope::ConfigRead),
        handlers::get_upstream
    ),
    (
        GET,
        "/admin/v1/audit",
        Some(AdminScope::Admin),
        handlers::audit
    ),
    (
        GET,
        "/admin/v1/diagnostics/rejections",
        Some(AdminScope::ConfigRead),
        handlers::rejections
    ),
    (
        GET,
        "/admin/v1/events",
        Some(AdminScope::PairingRead),
        handlers::events
    ),
    (
        POST,
        "/admin/v1/tokens",
        Some(AdminScope::Admin),
        handlers::mint_token
    ),
    (
        GET,
        "/admin/v1/tokens",
        Some(AdminScope::Admin),
        handlers::list_tokens
    ),
    (
        DELETE,
        "/admin/v1/tokens/{jti}",
        Some(AdminScope::Admin),
        handlers::revoke_token
    ),
];

/// Request counters for `/metrics`.
#[derive(Default)]
pub struct AdminMetrics {
    pub requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

/// Shared state of the admin listener.
pub struct AdminState {
    pub gw: Arc<GatewayState>,
    pub admin_digest: [u8; 32],
    pub metrics: AdminMetrics,
    /// Host names accepted in the Host header (empty: any).
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub sse_keepalive: Duration,
    /// Failed authentication, aggregated per client address.
    pub denials: denials::Denials,
}

/// The Host names accepted for a listener bound to `bind`.
pub fn allowed_hosts_for(bind: IpAddr, allow_remote: bool) -> Vec<String> {
    if allow_remote && !bind.is_loopback() {
        return vec![];
    }
    let mut v = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bind.is_loopback() && !bind.is_unspecified() {
        v.push(bind.to_string());
    }
    v
}

fn find_route(method: &Method, pattern: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == pattern)
}

fn reject(req: ServiceRequest, err: ApiError) -> ServiceResponse<BoxBody> {
    let resp = err.error_response();
    req.into_response(resp)
}

async fn guard(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AdminState>>()
        .cloned()
        .expect("admin state");
    let pattern = req.match_pattern().unwrap_or_else(|| "(unmatched)".into());
    let method = req.method().clone();
    let route = find_route(&method, &pattern);
    let resp = match check(&state, &req, route).await {
        Err(e) => reject(req, e),
        Ok(()) => next.call(req).await?.map_into_boxed_body(),
    };
    let status = resp.status().as_u16();
    let mut m = state.metrics.requests.lock().expect("metrics lock");
    *m.entry((method_label(&method).to_string(), pattern, status))
        .or_insert(0) += 1;
    Ok(resp)
}

/// The query parameters a mutation takes: the routes with a dry run take
/// `dryRun`, every other mutation takes none.
fn mutation_query_params(route: &RouteSpec) -> &'static [&'static str] {
    match (route.method, route.path) {
        ("PUT" | "POST", "/admin/v1/trusted-proxies")
        | ("DELETE", "/admin/v1/trusted-proxies/{entry}")
        | ("PATCH", "/admin/v1/config") => &["dryRun"],
        _ => &[],
    }
}

/// The `method` label of the request counter, from a closed set: any other
/// method name a client invents counts as `other` (labels must not grow
/// with what the network sends).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn check(
    state: &AdminState,
    req: &ServiceRequest,
    route: Option<&RouteSpec>,
) -> Result<(), ApiError> {
    // DNS-rebinding defence: the Host header must name this listener.
    if !state.allowed_hosts.is_empty() {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(crate::net::host::host_of)
            .unwrap_or_default();
        if !state.allowed_hosts.contains(&host) {
            return Err(ApiError::new(
                Code::HostNotAllowed,
                format!("Host {host:?} is not an allowed admin host"),
            )
            .hint("use http://127.0.0.1:<admin port> or http://localhost:<admin port>"));
        }
    }
    // CSRF defence: a browser Origin must be explicitly allowed.
    if let Some(origin) = req.headers().get("origin").and_then(|o| o.to_str().ok()) {
        let o = origin.trim_end_matches('/').to_lowercase();
        if o == "null" || !state.allowed_origins.contains(&o) {
            return Err(ApiError::new(
                Code::OriginNotAllowed,
                format!("browser origin {origin:?} is not allowed to call the admin API"),
            ));
        }
    }
    let Some(route) = route else {
        return Ok(()); // unknown routes answer 404 from the default service
    };
    let Some(scope) = route.scope else {
        return Ok(());
    };
    let header = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok());
    let principal = match auth::authenticate(&state.gw.store, &state.admin_digest, header) {
        Ok(p) => p,
        Err(e) => {
            let ip = req.peer_addr().map(|a| a.ip());
            let now = crate::util::now_ms();
            if let denials::Verdict::Audit { suppressed } = state.denials.record(ip, now) {
                let mut detail = e.detail.clone();
                if suppressed > 0 {
                    detail.push_str(&format!(
                        " (and {suppressed} more refused requests from this address in the previous window, not recorded one by one)"
                    ));
                }
                let ev = crate::store::AuditEvent {
                    ts: now,
                    actor: "anonymous".into(),
                    action: "admin.auth".into(),
                    target: denials::clip(
                        &format!("{} {}", req.method(), req.path()),
                        denials::MAX_TARGET,
                    ),
                    client_addr: ip.map(|i| i.to_string()),
                    outcome: "denied".into(),
                    detail: Some(detail),
                    ..Default::default()
                };
                // No fsync for an unauthenticated caller: the store's
                // periodic flush makes the record durable.
                let _ = state.gw.store.audit_lazy(ev).await;
            }
            return Err(e);
        }
    };
    if !principal.allows(scope) {
        return Err(ApiError::new(
            Code::Forbidden,
            format!("this token lacks the scope {scope}"),
        )
        .hint(format!(
            "mint a token with {scope} (or admin) via POST /admin/v1/tokens"
        )));
    }
    let m = req.method();
    if m == Method::POST || m == Method::PUT || m == Method::PATCH {
        let ct = req
            .headers()
            .get("content-type")
            .and_then(|c| c.to_str().ok())
            .unwrap_or("");
        let essence = ct.split(';').next().unwrap_or("").trim().to_lowercase();
        let json5_ok = essence == "application/json5" && req.path() == "/admin/v1/config/validate";
        if essence != "application/json" && !essence.ends_with("+json") && !json5_ok {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "send Content-Type: application/json",
            )
            .hint("mutations take JSON bodies (an empty body may be sent as {})"));
        }
    }
    if m != Method::GET && m != Method::HEAD {
        // A mutation ignores no query parameter: `?dryRun=true` on a route
        // without a dry run must not quietly make the change.
        let takes = mutation_query_params(route);
        let q = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
        if let Some((k, _)) = q.iter().find(|(k, _)| !takes.contains(&k.as_str())) {
            let hint = if takes.is_empty() {
                "this route takes no query parameters (it has no dry run)".to_string()
            } else {
                format!("this route takes: {}", takes.join(", "))
            };
            return Err(
                ApiError::new(Code::Invalid, format!("unknown query parameter {k:?}")).hint(hint),
            );
        }
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

async fn not_found(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    // A known path with another method: 405 with the methods it has.
    let segs: Vec<&str> = req.path().split('/').collect();
    let allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|r| {
            let t: Vec<&str> = r.path.split('/').collect();
            t.len() == segs.len()
                && t.iter()
                    .zip(&segs)
                    .all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
        })
        .map(|r| r.method)
        .collect();
    if !allowed.is_empty() {
        let mut resp = ApiError::new(
            Code::MethodNotAllowed,
            format!("{} is not allowed on {}", req.method(), req.path()),
        )
        .hint(format!("allowed: {}", allowed.join(", ")))
        .error_response();
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(actix_web::http::header::ALLOW, v);
        }
        return resp;
    }
    ApiError::not_found("no such admin route")
        .hint("see openapi.yaml for the routes")
        .error_response()
}

/// A running admin listener.
pub struct AdminServer {
    pub addr: SocketAddr,
    pub state: web::Data<AdminState>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl AdminServer {
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// Binds and starts the admin listener.
pub fn start(
    gw: Arc<GatewayState>,
    admin_digest: [u8; 32],
    bind: IpAddr,
    port: u16,
    allow_remote: bool,
) -> std::io::Result<AdminServer> {
    let state = web::Data::new(AdminState {
        gw,
        admin_digest,
        metrics: AdminMetrics::default(),
        allowed_hosts: allowed_hosts_for(bind, allow_remote),
        allowed_origins: vec![],
        sse_keepalive: Duration::from_secs(15),
        denials: denials::Denials::default(),
    });
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(handlers::MAX_BODY * 4))
            .wrap(actix_web::middleware::from_fn(guard))
            .configure(register)
            .default_service(web::to(not_found))
    })
    .workers(1)
    .disable_signals()
    .client_disconnect_timeout(Duration::from_millis(200))
    .shutdown_timeout(1)
    .bind((bind, port))?;
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(AdminServer {
        addr,
        state,
        handle,
        task,
    })
}
