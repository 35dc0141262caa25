//! The `connect` pipeline (protocol §2.6, design §4), one step per line:
//! params → protocol and role → origin → the failed-auth gate → device
//! proof → authentication (shared secret, missing-device policy,
//! device-token fallback) → pairing → token issue/reuse → `hello-ok`.

// A rejection carries the whole error frame; it is built once per failed connect.
#![allow(clippy::result_large_err)]

mod admission;
mod auth;
mod hello;
mod locality;
mod origin;
mod params;
mod proof;
mod recheck;
mod reject;
mod secret;

use std::sync::Arc;

use serde_json::Value;

use admission::AdmitInput;
use auth::{AuthInput, AuthOutcome, Gate};
use hello::Admitted;
use params::{check_protocol_and_role, parse_params, Params};
pub use recheck::verdict;
use reject::internal;
pub use reject::Rejection;

use super::pairing;
use super::registry::SessionInfo;
use super::scopes::Role;
use super::trusted_proxy::{self, SCOPES_HEADER};
use super::GatewayState;
use crate::config::RuntimeConfig;
use crate::net::ClientAddr;
use crate::store::DeviceRecord;
use crate::util::now_ms;

/// What the upgrade request told us about the connection.
pub struct ConnCtx {
    pub conn_id: String,
    pub addr: ClientAddr,
    pub origin: Option<String>,
    pub host: Option<String>,
    /// Trusted-proxy mode: the identity headers of the upgrade (lowercase
    /// names), read once there.
    pub identity: Vec<(String, String)>,
}

/// A successful connect.
pub struct Accepted {
    pub info: Arc<SessionInfo>,
    /// The `hello-ok` payload, serialized.
    pub hello: String,
    /// Its `auth` object, in front-door mode only (what the bridged session
    /// puts into the upstream's `hello-ok`).
    pub auth: Option<Value>,
}

/// Runs the connect pipeline for one socket.
pub async fn process_connect(
    state: &Arc<GatewayState>,
    cfg: &RuntimeConfig,
    ctx: &ConnCtx,
    nonce: &str,
    raw: &Value,
) -> Result<Accepted, Rejection> {
    let g = &cfg.gateway;
    let mut p = parse_params(raw)?;
    let role = check_protocol_and_role(&p)?;
    origin::check(cfg, ctx, &p)?;
    let gate = Gate::enter(state, g, ctx, &p, now_ms())?;
    let device = proof::verify(state, &p, role, nonce, gate.now)?;
    let record = stored_record(state, device.as_ref())?;
    let mut auth = auth::authenticate(
        state,
        g,
        AuthInput {
            ctx,
            p: &p,
            role,
            gate: &gate,
            device: device.as_ref().map(|d| (d, record.as_ref())),
        },
    )?;
    gate.passed(state, &auth);
    let proxy_ui = proxy_vouched_ui(&p, role, &auth);
    if proxy_ui {
        // The proxy's scope cap narrows what the browser may ask to pair with.
        p.scopes = trusted_proxy::cap(std::mem::take(&mut p.scopes), scope_cap(ctx));
        auth.scopes = trusted_proxy::cap(std::mem::take(&mut auth.scopes), scope_cap(ctx));
    }
    let admitted = admission::admit(
        state,
        g,
        AdmitInput {
            ctx,
            p: &p,
            role,
            auth: &auth,
            device: device.as_ref(),
            record,
        },
    )
    .await?;
    if let Some(s) = admitted.scopes {
        auth.scopes = s;
    }
    if let (Some(user), Role::Operator) = (&auth.user, role) {
        // identityScopes: session-only, capped by the proxy (§3.4).
        let granted = trusted_proxy::with_identity_scopes(
            &auth.scopes,
            trusted_proxy::identity_scopes(&g.auth.identity_scopes, user),
        );
        auth.scopes = trusted_proxy::cap(granted, scope_cap(ctx));
    }
    // No device token for a browser the proxy vouched for (OpenClaw's rule):
    // it comes back through the proxy each time.
    let token = if proxy_ui {
        None
    } else {
        issue_token(state, &p, role, &auth, admitted.record.as_ref()).await?
    };
    Ok(hello::accept(
        state,
        cfg,
        Admitted {
            ctx,
            p: &p,
            role,
            device,
            auth,
            token,
        },
    ))
}

/// OpenClaw's `trustedProxyAuthOk`: a Control UI operator the proxy vouched for.
fn proxy_vouched_ui(p: &Params<'_>, role: Role, auth: &AuthOutcome) -> bool {
    params::is_control_ui(p)
        && role == Role::Operator
        && auth.method == crate::gateway::auth::AuthMethod::TrustedProxy
}

/// The proxy's `x-openclaw-scopes`, in trusted-proxy mode.
fn scope_cap(ctx: &ConnCtx) -> Option<&str> {
    ctx.identity
        .iter()
        .find(|(n, _)| n == SCOPES_HEADER)
        .map(|(_, v)| v.as_str())
}

/// The stored record of the proven device's id.
fn stored_record(
    state: &GatewayState,
    device: Option<&proof::Proven>,
) -> Result<Option<DeviceRecord>, Rejection> {
    match device {
        None => Ok(None),
        Some(d) => state
            .store
            .device(&d.device_id)
            .map_err(|e| internal(&e.to_string())),
    }
}

/// Token issue/reuse (§3.6): the presented device token when it verified,
/// else the role's token of the admitted record (minted if it has none).
async fn issue_token(
    state: &GatewayState,
    p: &Params<'_>,
    role: Role,
    auth: &AuthOutcome,
    admitted: Option<&DeviceRecord>,
) -> Result<Option<(String, u64)>, Rejection> {
    if let Some(t) = &auth.device_token {
        return Ok(Some(t.clone()));
    }
    let Some(r) = admitted else {
        return Ok(None);
    };
    pairing::ensure_token(&state.store, state.token_key, r, role.as_str(), &p.scopes)
        .await
        .map_err(|e| internal(&e.to_string()))
}
