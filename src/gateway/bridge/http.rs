//! Front-door mode, HTTP: every request on the gateway listener that is not
//! a WebSocket upgrade (and not clawgate's `/healthz` or `/readyz`) goes to
//! the upstream, streamed both ways (awc, actix's own client: the request
//! body and the answer are never buffered whole, so SSE and chunked answers
//! pass as they come).
//!
//! - Forwarded headers are clawgate's: `X-Forwarded-For` is the attributed
//!   client, `X-Forwarded-Proto` and `X-Forwarded-Host` what the client (or
//!   a trusted proxy in front) used; the client's own are dropped, as are
//!   the hop-by-hop headers (RFC 9110 §7.6.1) both ways.
//! - Credentials: a bearer or `?token=` that clawgate can check (its shared
//!   secret, a clawgate device token) is replaced by the upstream's
//!   credential; one it cannot check is refused with 401 here; a request
//!   without one passes without one.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::config::{RuntimeConfig, UpstreamConfig, UpstreamSecret};
use crate::gateway::{http_auth, trusted_proxy, GatewayState};
use crate::net::{self, Attribution, ProxyPolicy};

/// How long the upstream may take to answer with its status line.
const ANSWER: Duration = Duration::from_secs(60);

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers clawgate sets itself (the client's are not passed on).
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

thread_local! {
    // awc's client is per thread (it is not Send); one per worker keeps
    // its connection pool.
    static CLIENT: awc::Client = awc::Client::builder()
        .disable_redirects()
        .timeout(ANSWER)
        .finish();
}

/// The headers of `h` that pass a proxy: no hop-by-hop ones, none that the
/// `Connection` header names, and (`drop`) none of those listed.
fn passable(h: &HeaderMap, drop: &[&str]) -> Vec<(HeaderName, HeaderValue)> {
    let named: Vec<String> = h
        .get_all("connection")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    h.iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            !HOP_BY_HOP.contains(&n) && !drop.contains(&n) && !named.iter().any(|x| x == n)
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

fn upstream_secret(up: &UpstreamConfig) -> Option<String> {
    match &up.secret {
        UpstreamSecret::Token(s) | UpstreamSecret::Password(s) => s.expose().map(str::to_string),
        UpstreamSecret::None => None,
    }
}

fn refuse(status: actix_web::http::StatusCode, kind: &str, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"message": message, "type": kind}}))
}

/// The upstream's base URL for HTTP (`ws://h:p/x` → `http://h:p/x`).
fn http_base(up: &UpstreamConfig) -> String {
    let base = up.url.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = base.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        base.to_string()
    }
}

/// Proxies one request to the upstream.
pub async fn proxy(
    state: Arc<GatewayState>,
    cfg: Arc<RuntimeConfig>,
    up: &UpstreamConfig,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no peer address".into(),
        );
    };
    let pairs: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .filter(|(n, _)| n.starts_with("x-") || n == "forwarded")
        .collect();
    let addr = net::attribute(
        peer,
        &pairs,
        &ProxyPolicy {
            trusted: &cfg.gateway.trusted_proxies,
            allow_real_ip_fallback: cfg.gateway.allow_real_ip_fallback,
        },
    );
    if addr.kind == Attribution::Unattributable {
        state.record_rejection(&addr, "proxy_attribution_required", "HTTP request");
        return HttpResponse::Forbidden().json(net::attribution_required_body(&addr));
    }
    // Credentials: the bearer, then ?token=.
    let bearer = http_auth::bearer(&req);
    let mut query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    let query_token = query.iter().position(|(k, _)| k == "token");
    let presented: Vec<&str> = bearer
        .iter()
        .map(String::as_str)
        .chain(query_token.map(|i| query[i].1.as_str()))
        .collect();
    let mut replace = false;
    let mut vouched = false;
    // Trusted-proxy mode: a request the proxy vouches for goes upstream with
    // the upstream's secret (which carries every operator scope, so a
    // narrowing x-openclaw-scopes cannot be honoured: refused, not widened).
    if presented.is_empty() {
        match http_auth::proxy_user(&cfg, &req, addr.kind) {
            Some(Ok(_)) if req.headers().contains_key(trusted_proxy::SCOPES_HEADER) => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "scope_cap_unsupported",
                    "clawgate relays HTTP requests with the upstream's shared secret, which carries every operator scope, so it cannot narrow this one to x-openclaw-scopes; drop the header for HTTP at the proxy (it still caps WebSocket sessions)".into(),
                );
            }
            Some(Ok(_)) => vouched = true,
            Some(Err(_)) | None => {}
        }
    }
    for p in &presented {
        if !http_auth::known(&state, &cfg, p) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "unauthorized: the token is neither this gateway's shared token nor a device token it issued".into(),
            );
        }
        replace = true;
    }
    let secret = upstream_secret(up);
    if let (true, Some(i)) = (replace, query_token) {
        query[i].1 = secret.clone().unwrap_or_default();
    }
    let mut path = req.path().to_string();
    if !query.is_empty() {
        path.push('?');
        path.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&query)
                .finish(),
        );
    }
    let target = format!("{}{path}", http_base(up));
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // What the client used: a trusted proxy in front says so.
    let host = match addr.kind {
        Attribution::TrustedProxy => header("x-forwarded-host").or(header("host")),
        _ => header("host"),
    }
    .unwrap_or("")
    .to_string();
    let proto = match addr.kind {
        Attribution::TrustedProxy => req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("http")
            .to_string(),
        _ => "http".to_string(),
    };
    // The body limit: a declared length over it is refused before anything
    // goes upstream; a chunked body is counted as it streams.
    let limit = cfg.gateway.limits.max_http_body;
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body over gateway.limits.maxHttpBodyBytes ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let over = std::rc::Rc::new(std::cell::Cell::new(false));
    let counted = {
        use futures_util::StreamExt;
        let (over, mut seen) = (over.clone(), 0u64);
        body.map(move |chunk| {
            let c = chunk?;
            seen += c.len() as u64;
            if seen > limit {
                over.set(true);
                return Err(actix_web::error::PayloadError::Overflow);
            }
            Ok(c)
        })
    };
    let method = req.method().clone();
    let headers = passable(
        req.headers(),
        &[FORWARDING, &["host", "authorization"]].concat(),
    );
    let sent = CLIENT.with(|c| {
        let mut r = c.request(method, &target).no_decompress();
        for (n, v) in headers {
            r = r.append_header((n, v));
        }
        // A client on this host goes upstream as what it is, a local
        // request (the real gateway refuses a forwarded chain of loopback
        // hops); any other client with its address, which the upstream
        // believes when it trusts clawgate (its gateway.trustedProxies).
        if !addr.client.is_loopback() {
            r = r
                .insert_header(("x-forwarded-for", addr.client.to_string()))
                .insert_header(("x-forwarded-proto", proto))
                .insert_header(("x-forwarded-host", host));
        }
        match (&bearer, replace, &secret) {
            (Some(_), true, Some(s)) => {
                r = r.insert_header(("authorization", format!("Bearer {s}")))
            }
            (None, _, Some(s)) if vouched => {
                r = r.insert_header(("authorization", format!("Bearer {s}")))
            }
            (Some(b), false, _) => r = r.insert_header(("authorization", format!("Bearer {b}"))),
            _ => {}
        }
        // A request without a body is sent without one (not as an empty
        // chunked stream).
        let has_body =
            req.headers().contains_key("transfer-encoding") || declared.is_some_and(|n| n > 0);
        // A declared length stays declared (not re-framed as chunked).
        if let Some(n) = declared.filter(|n| *n > 0) {
            r.send_body(awc::body::SizedStream::new(n, counted))
        } else if has_body {
            r.send_stream(counted)
        } else {
            r.send()
        }
    });
    let resp = match sent.await {
        Ok(r) => r,
        Err(_) if over.get() => return too_large(),
        Err(e) => {
            tracing::warn!(upstream = %up.url, error = %e, "HTTP request to the upstream failed");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!("the upstream gateway {} did not answer ({e})", up.url),
            );
        }
    };
    let mut out = HttpResponse::build(resp.status());
    for (n, v) in passable(resp.headers(), &[]) {
        out.append_header((n, v));
    }
    if resp.status() == StatusCode::FORBIDDEN {
        // The upstream's own proxy refusal is about clawgate, not the
        // client: say what to change.
        let mut resp = resp;
        let body = resp.body().limit(16 * 1024).await.unwrap_or_default();
        if body
            .windows(b"proxy_attribution_required".len())
            .any(|w| w == b"proxy_attribution_required")
        {
            tracing::warn!(upstream = %up.url, "the upstream gateway refused clawgate's forwarded headers: add \"127.0.0.1\" to gateway.trustedProxies in its openclaw.json");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "upstream_distrusts_clawgate",
                format!(
                    "the upstream gateway {} does not trust clawgate as its proxy, so it refused this request from {}: add \"127.0.0.1\" to gateway.trustedProxies in the real gateway's openclaw.json (clawgate's own trusted proxies go in clawgate.json)",
                    up.url, addr.client
                ),
            );
        }
        return out.body(body);
    }
    out.streaming(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_do_not_pass() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("accept", "text/html"),
            ("x-forwarded-for", "1.2.3.4"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        let names: Vec<String> = passable(&h, FORWARDING)
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names, ["accept"]);
    }

    #[test]
    fn upstream_base_for_http() {
        let up = |url: &str| UpstreamConfig {
            url: url.into(),
            secret: UpstreamSecret::None,
            secret_from: "none",
            derived: false,
            connect_timeout_ms: UpstreamConfig::DEFAULT_CONNECT_TIMEOUT_MS,
        };
        assert_eq!(
            http_base(&up("ws://127.0.0.1:18790")),
            "http://127.0.0.1:18790"
        );
        assert_eq!(http_base(&up("wss://gw/x/")), "https://gw/x");
    }
}
