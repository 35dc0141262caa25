//! Credentials on plain HTTP requests to the gateway port (the Control UI's
//! runtime config, and front-door mode's reverse proxy): a bearer or
//! `?token=` that clawgate can check is its shared secret or one of the
//! device tokens it issued.

use actix_web::HttpRequest;

use super::{auth, pairing, GatewayState};
use crate::config::RuntimeConfig;

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
