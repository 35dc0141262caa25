//! Credentials on plain HTTP requests to the gateway port (the Control UI's
//! runtime config, and front-door mode's reverse proxy): a bearer or
//! `?token=` that clawgate can check is its shared secret or one of the
//! device tokens it issued; in trusted-proxy mode, the proxy's word for the
//! user (the same rules as a WebSocket connect).

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;

use super::trusted_proxy::{self, Denied};
use super::{auth, pairing, GatewayState};
use crate::config::{AuthMode, RuntimeConfig};
use crate::net::Attribution;

/// The headers trusted-proxy auth reads (the user header, the required
/// ones, the scope cap); nothing in the other modes.
pub fn identity_headers(cfg: &RuntimeConfig, headers: &HeaderMap) -> Vec<(String, String)> {
    let a = &cfg.gateway.auth;
    let Some(t) = a
        .trusted_proxy
        .as_ref()
        .filter(|_| a.mode == AuthMode::TrustedProxy)
    else {
        return vec![];
    };
    t.header_names()
        .chain([trusted_proxy::SCOPES_HEADER])
        .filter_map(|n| {
            let v = headers.get(n)?.to_str().ok()?;
            Some((
                n.to_string(),
                crate::util::truncate_utf8(v, 1024).to_string(),
            ))
        })
        .collect()
}

/// Trusted-proxy mode: the user the proxy vouches for on this request, or
/// why not; `None` in the other modes.
pub fn proxy_user(
    cfg: &RuntimeConfig,
    req: &HttpRequest,
    attribution: Attribution,
) -> Option<Result<String, Denied>> {
    let a = &cfg.gateway.auth;
    let t = a
        .trusted_proxy
        .as_ref()
        .filter(|_| a.mode == AuthMode::TrustedProxy)?;
    let peer = req.peer_addr()?.ip().to_canonical();
    let headers = identity_headers(cfg, req.headers());
    Some(trusted_proxy::authorize(
        &cfg.gateway.trusted_proxies,
        t,
        &trusted_proxy::Request {
            peer,
            attribution,
            headers: &headers,
        },
        trusted_proxy::is_own_address,
    ))
}

/// `Authorization: Bearer <token>`, blank counts as absent.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Whether `presented` is clawgate's shared secret (or the previous token
/// within its grace period) or a device token it issued.
pub fn known(state: &GatewayState, cfg: &RuntimeConfig, presented: &str) -> bool {
    let a = &cfg.gateway.auth;
    let d = auth::sha256(presented);
    let shared = [a.token.as_ref(), a.password.as_ref()]
        .into_iter()
        .flatten()
        .any(|s| auth::digest_eq(s.digest(), &d))
        || a.previous_token
            .is_some_and(|(p, until)| crate::util::now_ms() < until && auth::digest_eq(&p, &d));
    shared
        || matches!(
            state
                .store
                .device_token_owner(&pairing::token_digest_hex(presented)),
            Ok(Some(_))
        )
}
