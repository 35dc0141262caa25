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
    let p = parse_params(raw)?;
    let role = check_protocol_and_role(&p)?;
    origin::check(cfg, ctx, &p)?;
    let gate = Gate::enter(state, g, ctx, &p, now_ms())?;
    let device = proof::verify(state, &p, role, nonce, gate.now)?;
    let record = stored_record(state, device.as_ref())?;
    let auth = auth::authenticate(
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
    let token = issue_token(state, &p, role, &auth, admitted.as_ref()).await?;
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
