//! The per-session re-check on reload: a live session keeps its authority
//! only while the rules it was admitted under still admit it.

use crate::config::{AuthMode, RuntimeConfig};
use crate::gateway::auth::AuthMethod;
use crate::gateway::registry::SessionInfo;

/// Whether a live session keeps its authority under `new` (it had it under
/// `old`). `Some((close code, reason))` when it must go.
pub fn verdict(
    old: &RuntimeConfig,
    new: &RuntimeConfig,
    s: &SessionInfo,
) -> Option<(u16, &'static str)> {
    let a = &new.gateway.auth;
    let auth_ok = match s.auth_method {
        AuthMethod::Token => {
            a.mode == AuthMode::Token
                && s.shared_digest.is_some_and(|d| {
                    a.token
                        .as_ref()
                        .is_some_and(|t| crate::gateway::auth::digest_eq(t.digest(), &d))
                        || a.previous_token
                            .is_some_and(|(p, _)| crate::gateway::auth::digest_eq(&p, &d))
                })
        }
        AuthMethod::Password => {
            a.mode == AuthMode::Password
                && s.shared_digest.is_some_and(|d| {
                    a.password
                        .as_ref()
                        .is_some_and(|t| crate::gateway::auth::digest_eq(t.digest(), &d))
                })
        }
        AuthMethod::None => a.mode == AuthMode::None,
        // A device token is its own credential: a shared-secret change
        // leaves it valid (revoking or rotating it closes the session).
        AuthMethod::DeviceToken => true,
        // The proxy's word holds while the mode does and the user is let in.
        AuthMethod::TrustedProxy => {
            a.mode == AuthMode::TrustedProxy
                && a.trusted_proxy.as_ref().is_some_and(|t| {
                    t.allow_users.is_empty()
                        || s.user
                            .as_ref()
                            .is_some_and(|u| t.allow_users.iter().any(|x| x == u))
                })
        }
    };
    if !auth_ok {
        return Some((4001, "gateway auth changed"));
    }
    if s.origin.is_some()
        && !super::origin::origin_allowed(
            new,
            s.origin.as_deref(),
            s.host.as_deref(),
            s.direct_local,
        )
    {
        return Some((1008, "origin not allowed"));
    }
    if s.forwarded && old.is_trusted_proxy(&s.peer) != new.is_trusted_proxy(&s.peer) {
        return Some((4001, "gateway policy changed"));
    }
    None
}
