//! The browser Origin policy (protocol §3.9), also re-applied to live
//! sessions on reload.

use serde_json::json;

use super::params::{is_control_ui, Params};
use super::reject::{RejectReason, Rejection};
use super::ConnCtx;
use crate::config::RuntimeConfig;
use crate::gateway::frames::ErrorShape;
use crate::net::{is_private_or_loopback, Attribution};

pub(super) use crate::net::host::host_of;

pub(super) fn is_loopback_host(h: &str) -> bool {
    h == "localhost"
        || h.ends_with(".localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

pub(super) fn is_private_host(h: &str) -> bool {
    is_loopback_host(h)
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| is_private_or_loopback(&ip))
}

/// The Origin step: a browser (an Origin header, or the Control UI's client
/// id) must come from an allowed origin; other clients pass.
pub(super) fn check(cfg: &RuntimeConfig, ctx: &ConnCtx, p: &Params<'_>) -> Result<(), Rejection> {
    if ctx.origin.is_some() || is_control_ui(p) {
        check_origin(cfg, ctx)
    } else {
        Ok(())
    }
}

/// Browser Origin policy (protocol §3.9). `Ok` when allowed.
fn check_origin(cfg: &RuntimeConfig, ctx: &ConnCtx) -> Result<(), Rejection> {
    let msg = "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)";
    if origin_allowed(
        cfg,
        ctx.origin.as_deref(),
        ctx.host.as_deref(),
        ctx.addr.kind == Attribution::DirectLocal,
    ) {
        return Ok(());
    }
    Err(Rejection::policy(
        RejectReason::OriginNotAllowed,
        ErrorShape::invalid(msg).with_details(
            json!({"code": RejectReason::OriginNotAllowed.code(), "reason": "origin not allowed"}),
        ),
    ))
}

/// Whether a browser origin is allowed (also re-checked for live sessions on reload).
pub(crate) fn origin_allowed(
    cfg: &RuntimeConfig,
    origin: Option<&str>,
    host: Option<&str>,
    local: bool,
) -> bool {
    let Some(origin) = origin else {
        return false;
    };
    let o = origin.trim().trim_end_matches('/').to_lowercase();
    if o == "null" || !o.contains("://") || o.contains('@') {
        return false;
    }
    let allowed = &cfg.gateway.control_ui.allowed_origins;
    if allowed.iter().any(|a| a == "*" || *a == o) {
        return true;
    }
    let ohost = host_of(&o);
    let host = host.map(host_of).unwrap_or_default();
    if cfg
        .gateway
        .control_ui
        .dangerously_allow_host_header_origin_fallback
        && ohost == host
    {
        return true;
    }
    if ohost == host {
        let trusted_host = (is_loopback_host(&host) && local)
            || (host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| is_private_or_loopback(&ip))
                && !is_loopback_host(&host))
            || host.ends_with(".local")
            || host.ends_with(".ts.net");
        if trusted_host {
            return true;
        }
    }
    local && is_loopback_host(&ohost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing() {
        assert!(is_loopback_host("127.0.0.2"));
        assert!(is_private_host("172.17.0.1"));
        assert!(!is_private_host("example.com"));
    }
}
