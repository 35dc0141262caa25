//! The `connect` pipeline (protocol §2.6): params → protocol → role → origin →
//! shared secret (rate limited) → missing-device policy → device proof →
//! device-token fallback → pairing → token issue/reuse → `hello-ok`.

// A rejection carries the whole error frame; it is built once per failed connect.
#![allow(clippy::result_large_err)]

mod admission;
mod origin;
mod params;
mod proof;
mod recheck;
mod reject;
mod secret;

use std::sync::Arc;

use serde_json::{json, Value};

use origin::{check_origin, host_of, is_loopback_host, is_private_host};
use params::{auth_str, check_protocol_and_role, is_control_ui, parse_params, Params};
use proof::Proven;
pub use recheck::verdict;
use reject::{auth_rejection, internal, rate_limited};
pub use reject::{RejectReason, Rejection};
use secret::SharedSecret;

use super::auth::{AuthMethod, AuthReason, HintKind, LimitCheck, LimitKey};
use super::device;
use super::frames::ErrorShape;
use super::ops::AdminEventName;
use super::pairing::{self, PairingAsk, PairingError, TokenCheck};
use super::registry::{SessionInfo, WsEvent};
use super::scopes::{self, Role};
use super::{GatewayState, COMPAT_VERSION, PROTOCOL_VERSION};
use crate::config::{AuthMode, RuntimeConfig};
use crate::net::{is_private_or_loopback, Attribution, ClientAddr};
use crate::util::{now_ms, truncate_utf8};

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
}

/// Pairing locality (protocol §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Locality {
    DirectLocal,
    BrowserContainerLocal,
    CliContainerLocal,
    SharedSecretLoopbackLocal,
    Remote,
}

fn locality(ctx: &ConnCtx, p: &Params<'_>, shared_ok: bool) -> Locality {
    if ctx.addr.kind == Attribution::DirectLocal {
        return Locality::DirectLocal;
    }
    let no_proxy = ctx.addr.proxy_headers.is_empty();
    let host = ctx.host.as_deref().map(host_of).unwrap_or_default();
    if shared_ok && no_proxy && ctx.addr.kind == Attribution::DirectRemote {
        if is_control_ui(p) {
            if let Some(origin) = &ctx.origin {
                if is_private_or_loopback(&ctx.addr.peer)
                    && is_loopback_host(&host)
                    && is_loopback_host(&host_of(origin))
                {
                    return Locality::BrowserContainerLocal;
                }
            }
        } else if ctx.origin.is_none() && ctx.addr.peer.is_loopback() && is_private_host(&host) {
            return if p.client_id == "cli" && p.client_mode == "cli" {
                Locality::CliContainerLocal
            } else {
                Locality::SharedSecretLoopbackLocal
            };
        }
    }
    Locality::Remote
}

/// Runs the connect pipeline for one socket.
pub async fn process_connect(
    state: &Arc<GatewayState>,
    cfg: &RuntimeConfig,
    ctx: &ConnCtx,
    nonce: &str,
    raw: &Value,
) -> Result<Accepted, Rejection> {
    let p = parse_params(raw)?;
    let g = &cfg.gateway;

    let role = check_protocol_and_role(&p)?;

    // Origin (§3.9).
    let browser = ctx.origin.is_some() || is_control_ui(&p);
    if browser {
        check_origin(cfg, ctx)?;
    }

    let local = ctx.addr.kind == Attribution::DirectLocal;
    let hint = if is_control_ui(&p) {
        HintKind::Ui
    } else if local {
        HintKind::CliLocal
    } else {
        HintKind::CliRemote
    };

    // Shared secret (§3.2), with the failed-auth limiter (§7).
    let token_field = auth_str(p.auth, "token");
    let password_field = auth_str(p.auth, "password");
    let device_token_field = auth_str(p.auth, "deviceToken");
    let (limit_key, exempt) = match (&ctx.origin, browser) {
        (Some(o), true) if ctx.addr.client.is_loopback() => {
            (LimitKey::LoopbackOrigin(o.to_lowercase()), false)
        }
        (_, true) => (LimitKey::Browser(ctx.addr.client), false),
        _ => (
            LimitKey::SharedSecret(ctx.addr.client),
            g.auth.rate_limit.exempt_loopback && ctx.addr.client.is_loopback(),
        ),
    };
    let now = now_ms();
    let presented_any =
        token_field.is_some() || password_field.is_some() || device_token_field.is_some();
    if presented_any {
        if let LimitCheck::Locked { retry_after_ms } = state.limiter.check(&limit_key, now) {
            return Err(rate_limited(retry_after_ms, hint));
        }
    }
    let SharedSecret {
        ok: shared_ok,
        reason: shared_reason,
        digest: shared_digest,
    } = secret::check(&g.auth, token_field, password_field, now);
    let auth_none = g.auth.mode == AuthMode::None;
    // Known once a secret or a device token has been checked.
    let mut auth_method: Option<AuthMethod> = if shared_ok {
        Some(AuthMethod::for_mode(g.auth.mode))
    } else if auth_none {
        Some(AuthMethod::None)
    } else {
        None
    };
    let loc = locality(ctx, &p, shared_ok);
    let mut session_scopes = p.scopes.clone();
    let insecure_bypass = g.control_ui.allow_insecure_auth && shared_ok;

    // Missing device identity (§3.7).
    if p.device.is_none() {
        let backend_self = p.client_id == "gateway-client"
            && p.client_mode == "backend"
            && matches!(
                loc,
                Locality::DirectLocal | Locality::SharedSecretLoopbackLocal
            )
            && ctx.origin.is_none()
            && (shared_ok || auth_none);
        if backend_self {
            // allowed, scopes kept
        } else if insecure_bypass {
            // allowInsecureAuth: the shared token is enough; scopes kept.
        } else if is_control_ui(&p) {
            if let Some(reason) = shared_reason.filter(|_| {
                !shared_ok
                    && (token_field.is_some()
                        || password_field.is_some()
                        || g.auth.mode != AuthMode::None)
            }) {
                if reason == AuthReason::TokenMissing || reason == AuthReason::PasswordMissing {
                    // A tokenless browser gets AUTH_TOKEN_MISSING so the login form appears.
                    return Err(auth_failure(
                        state, g, &limit_key, exempt, reason, hint, false, now,
                    ));
                }
                if reason.counts_as_failure() {
                    return Err(auth_failure(
                        state, g, &limit_key, exempt, reason, hint, false, now,
                    ));
                }
            }
            let msg = "control ui requires device identity (use HTTPS or localhost secure context)";
            let why = RejectReason::ControlUiDeviceIdentityRequired;
            return Err(Rejection::policy(
                why,
                ErrorShape::invalid(msg).with_details(json!({"code": why.code()})),
            ));
        } else if role == Role::Operator && shared_ok {
            let keep = p.client_id == "cli"
                && p.client_mode == "cli"
                && matches!(loc, Locality::DirectLocal | Locality::CliContainerLocal);
            if !keep {
                session_scopes.clear();
            }
        } else if let Some(reason) = shared_reason.filter(|r| r.counts_as_failure()) {
            return Err(auth_failure(
                state, g, &limit_key, exempt, reason, hint, false, now,
            ));
        } else {
            let why = RejectReason::DeviceIdentityRequired;
            let err = ErrorShape::new("NOT_PAIRED", "device identity required")
                .with_details(json!({"code": why.code()}));
            return Err(Rejection::policy(why, err));
        }
        if shared_ok {
            state.limiter.reset(&limit_key);
        }
        return Ok(finish(
            state,
            cfg,
            ctx,
            &p,
            role,
            None,
            authenticated(auth_method)?,
            shared_digest,
            session_scopes,
            None,
        ));
    }

    // Device proof (§2.5).
    let d = p.device.expect("device");
    let Proven {
        device_id,
        public_key,
    } = proof::verify(
        state,
        &p,
        d,
        role,
        nonce,
        now,
        token_field,
        device_token_field,
    )?;
    let record = state
        .store
        .device(&device_id)
        .map_err(|e| internal(&e.to_string()))?;

    // Device-token fallback (§3.6).
    let mut device_token_echo: Option<(String, u64)> = None;
    if !shared_ok && !auth_none {
        let candidate = device_token_field.or(token_field);
        let check = candidate.map(|c| {
            pairing::verify_token(record.as_ref(), &public_key, role.as_str(), c, &p.scopes)
        });
        match check {
            Some(TokenCheck::Ok { issued_at_ms }) => {
                auth_method = Some(AuthMethod::DeviceToken);
                device_token_echo = Some((candidate.expect("candidate").to_string(), issued_at_ms));
                state.limiter.reset(&limit_key);
            }
            other => {
                let reason = if other == Some(TokenCheck::ScopeMismatch) {
                    AuthReason::ScopeMismatch
                } else if device_token_field.is_some() {
                    AuthReason::DeviceTokenMismatch
                } else {
                    shared_reason.unwrap_or(AuthReason::TokenMissing)
                };
                let can_retry = reason == AuthReason::TokenMismatch && device_token_field.is_none();
                return Err(auth_failure(
                    state, g, &limit_key, exempt, reason, hint, can_retry, now,
                ));
            }
        }
    } else if shared_ok {
        state.limiter.reset(&limit_key);
    }

    if insecure_bypass {
        // allowInsecureAuth: the verified device is accepted without pairing.
        return Ok(finish(
            state,
            cfg,
            ctx,
            &p,
            role,
            Some(device_id),
            authenticated(auth_method)?,
            shared_digest,
            session_scopes,
            None,
        ));
    }

    // Pairing (§5).
    let mut record = record.filter(|r| r.public_key == public_key);
    let requirement = admission::requirement(
        record.as_ref(),
        auth_method,
        role,
        p.client_platform,
        p.device_family,
        &p.scopes,
    );
    if let Some(reason) = requirement {
        let ask = PairingAsk {
            device_id: device_id.clone(),
            public_key: public_key.clone(),
            display_name: p.display_name.map(str::to_string),
            platform: Some(p.client_platform.to_string()),
            device_family: p.device_family.map(str::to_string),
            client_id: p.client_id.to_string(),
            client_mode: p.client_mode.to_string(),
            client_version: p.client_version.to_string(),
            role: role.as_str().to_string(),
            scopes: scopes::normalize(&p.scopes),
            remote_ip: (!ctx.addr.client.is_loopback()).then(|| ctx.addr.client.to_string()),
            client_key: ctx.addr.client.to_string(),
            peer_ip: ctx.addr.peer.to_string(),
            reason,
        };
        let approval = admission::approval(
            reason,
            &admission::Situation {
                locality: loc,
                role,
                auth: auth_method,
                paired: record.is_some(),
                browser: ctx.origin.is_some() && !is_control_ui(&p),
                origin: ctx.origin.is_some(),
                scopes_empty: p.scopes.is_empty(),
                auto_approve_local: g.node_pairing.auto_approve_local,
                in_auto_approve_cidr: g
                    .node_pairing
                    .auto_approve_cidrs
                    .iter()
                    .any(|n| n.contains(&ctx.addr.client)),
            },
        );
        if let Some(via) = approval.automatic() {
            let mut d = pairing::approve_silently(&state.store, ask)
                .await
                .map_err(|e| internal(&e.to_string()))?;
            if approval == admission::Approval::TrustedCidr {
                d.approved_via = via.into();
            }
            state.registry.broadcast(
                WsEvent::DevicePairResolved,
                json!({"requestId": uuid::Uuid::new_v4().to_string(), "deviceId": device_id, "decision": "approved", "ts": now_ms()}),
            );
            tracing::info!(device = %device::fingerprint(&device_id), via, %reason, "device paired automatically");
            record = Some(d);
        } else {
            let outcome = pairing::request_pairing(
                &state.store,
                ask,
                g.pairing.pending_ttl_ms,
                g.pairing.max_pending_per_client,
                g.pairing.max_pending_total,
            )
            .await;
            let outcome = match outcome {
                Ok(o) => o,
                Err(e @ (PairingError::ClientQueueFull(_) | PairingError::QueueFull(_))) => {
                    let mut err = ErrorShape::new("UNAVAILABLE", e.to_string()).with_details(
                        json!({"code": RejectReason::PairingQueueFull.code(), "reason": reason}),
                    );
                    err.retryable = Some(true);
                    err.retry_after_ms = Some(g.pairing.pending_ttl_ms);
                    state.record_rejection(&ctx.addr, "pairing_queue_full", &e.to_string());
                    return Err(Rejection::policy(RejectReason::PairingQueueFull, err));
                }
                Err(e) => return Err(internal(&e.to_string())),
            };
            for (rid, did) in &outcome.superseded {
                let payload = json!({"requestId": rid, "deviceId": did, "decision": "rejected", "superseded": true, "ts": now_ms()});
                state
                    .registry
                    .broadcast(WsEvent::DevicePairResolved, payload.clone());
                state.emit(AdminEventName::PairingResolved, payload);
            }
            if outcome.created {
                let public = pairing::pending_json(&outcome.request);
                state
                    .registry
                    .broadcast(WsEvent::DevicePairRequested, public.clone());
                state.emit(AdminEventName::PairingRequested, public);
                tracing::info!(request = %outcome.request.request_id, device = %device::fingerprint(&device_id), client = %ctx.addr.client, %reason, "pairing requested");
            }
            let (message, remediation) = reason.wording();
            let mut details = json!({
                "code": RejectReason::PairingRequired.code(),
                "reason": reason,
                "requestId": outcome.request.request_id,
                "remediationHint": remediation,
                "deviceId": device_id,
                "requestedRole": role,
                "requestedScopes": p.scopes,
            });
            if let Some(r) = &record {
                details["approvedRoles"] = json!(r.roles);
                details["approvedScopes"] = json!(r.scopes);
            }
            state.record_rejection(
                &ctx.addr,
                "pairing_required",
                &format!(
                    "approve request {} (clawgate devices approve / openclaw devices approve)",
                    outcome.request.request_id
                ),
            );
            let err = ErrorShape::new("NOT_PAIRED", message).with_details(details);
            let reason_text = format!("{message} (requestId: {})", outcome.request.request_id);
            return Err(Rejection {
                reason: RejectReason::PairingRequired,
                error: Some(err),
                close_code: 1008,
                close_reason: truncate_utf8(&reason_text, 120).to_string(),
                delay_ms: 0,
            });
        }
    }

    // Token issue/reuse (§3.6).
    if device_token_echo.is_none() {
        if let Some(r) = &record {
            device_token_echo =
                pairing::ensure_token(&state.store, state.token_key, r, role.as_str(), &p.scopes)
                    .await
                    .map_err(|e| internal(&e.to_string()))?;
        }
    }
    Ok(finish(
        state,
        cfg,
        ctx,
        &p,
        role,
        Some(device_id),
        authenticated(auth_method)?,
        shared_digest,
        session_scopes,
        device_token_echo,
    ))
}

#[allow(clippy::too_many_arguments)]
fn auth_failure(
    state: &GatewayState,
    g: &crate::config::GatewayConfig,
    key: &LimitKey,
    exempt: bool,
    reason: AuthReason,
    hint: HintKind,
    can_retry: bool,
    now: u64,
) -> Rejection {
    let mut delay = 0;
    if reason.counts_as_failure() {
        let (check, d) = state
            .limiter
            .record_failure(key, now, &g.auth.rate_limit, exempt);
        delay = d;
        if let LimitCheck::Locked { retry_after_ms } = check {
            return rate_limited(retry_after_ms, hint);
        }
    }
    let mut r = auth_rejection(reason, hint, can_retry);
    r.delay_ms = delay;
    r
}

/// The method a connect that is being accepted authenticated with; a path
/// that reaches acceptance without one is a bug, refused as internal.
fn authenticated(m: Option<AuthMethod>) -> Result<AuthMethod, Rejection> {
    m.ok_or_else(|| internal("a connect reached acceptance without an auth method"))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    state: &GatewayState,
    cfg: &RuntimeConfig,
    ctx: &ConnCtx,
    p: &Params<'_>,
    role: Role,
    device_id: Option<String>,
    auth_method: AuthMethod,
    shared_digest: Option<[u8; 32]>,
    session_scopes: Vec<String>,
    token: Option<(String, u64)>,
) -> Accepted {
    let g = &cfg.gateway;
    if let Some(id) = &device_id {
        state.note_seen(id, &ctx.addr.client);
    }
    let info = Arc::new(SessionInfo {
        conn_id: ctx.conn_id.clone(),
        device_id,
        role,
        scopes: session_scopes.clone(),
        auth_method,
        shared_digest,
        client_id: p.client_id.to_string(),
        client_mode: p.client_mode.to_string(),
        client_version: p.client_version.to_string(),
        platform: p.client_platform.to_string(),
        instance_id: p.instance_id.map(str::to_string),
        peer: ctx.addr.peer,
        client_ip: ctx.addr.client,
        origin: ctx.origin.clone(),
        host: ctx.origin.as_ref().and(ctx.host.clone()),
        direct_local: ctx.addr.kind == Attribution::DirectLocal,
        forwarded: !ctx.addr.proxy_headers.is_empty(),
        connected_at_ms: now_ms(),
    });
    let mut auth = json!({"method": auth_method, "role": role, "scopes": session_scopes});
    if let Some((tok, issued)) = token {
        auth["deviceToken"] = json!(tok);
        auth["issuedAtMs"] = json!(issued);
    }
    let uptime = state.started.elapsed().as_millis() as u64;
    // Built as text around pre-serialized constant parts: this runs on every
    // connect.
    static FEATURES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let features = FEATURES.get_or_init(|| super::features().to_string());
    let js = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let hello = format!(
        concat!(
            r#"{{"type":"hello-ok","protocol":{proto},"server":{{"version":{ver},"connId":{conn},"buildId":{build},"bootId":{boot},"controlUiBuildSource":"configured"}},"#,
            r#""features":{features},"snapshot":{{"presence":[{presence}],"health":{health},"stateVersion":{{"presence":1,"health":1}},"uptimeMs":{uptime},"authMode":{mode}}},"#,
            r#""auth":{auth},"policy":{{"maxPayload":{mp},"maxBufferedBytes":{mb},"tickIntervalMs":{tick}}}}}"#
        ),
        proto = PROTOCOL_VERSION,
        ver = js(COMPAT_VERSION),
        conn = js(&ctx.conn_id),
        build = js(concat!("clawgate-", env!("CARGO_PKG_VERSION"))),
        boot = js(&state.boot_id),
        features = features,
        // The minimal snapshot of protocol §1.8: clients fetch `health` and
        // `system-presence` when they want them, and every byte of hello-ok
        // stays allocated in each connection's write buffer.
        presence = "",
        health = "{}",
        uptime = uptime,
        mode = js(g.auth.mode.as_str()),
        auth = auth,
        mp = g.limits.max_payload,
        mb = g.limits.max_buffered_bytes,
        tick = g.limits.tick_interval_ms,
    );
    Accepted { info, hello }
}
