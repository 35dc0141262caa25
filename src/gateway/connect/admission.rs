//! The pairing decision (protocol §5): whether a proven device must be
//! (re-)approved (`requirement`), and whether that approval is automatic
//! (`approval`), as pure functions of the connect's situation so the rules
//! are tested as a table; then `admit`, which carries the decision out.

use serde_json::json;

use super::auth::{AuthOutcome, PairingStep};
use super::locality::Locality;
use super::params::{is_control_ui, Params};
use super::proof::Proven;
use super::reject::{internal, RejectReason, Rejection};
use super::ConnCtx;
use crate::config::GatewayConfig;
use crate::gateway::auth::AuthMethod;
use crate::gateway::frames::ErrorShape;
use crate::gateway::ops::{Actor, AdminEventName};
use crate::gateway::pairing::{self, PairingAsk, PairingError, PairingReason};
use crate::gateway::registry::WsEvent;
use crate::gateway::scopes::{self, Role};
use crate::gateway::{device, GatewayState};
use crate::store::DeviceRecord;
use crate::util::{now_ms, truncate_utf8};

/// Why the device must be approved, or `None` when it is admitted as it
/// is. A valid device token admits by itself.
pub(super) fn requirement(
    record: Option<&DeviceRecord>,
    auth: Option<AuthMethod>,
    role: Role,
    platform: &str,
    device_family: Option<&str>,
    requested_scopes: &[String],
) -> Option<PairingReason> {
    if auth == Some(AuthMethod::DeviceToken) {
        return None;
    }
    let Some(r) = record else {
        return Some(PairingReason::NotPaired);
    };
    let norm = |s: Option<&str>| s.map(|x| x.trim().to_ascii_lowercase()).unwrap_or_default();
    if norm(r.platform.as_deref()) != norm(Some(platform))
        || norm(r.device_family.as_deref()) != norm(device_family)
    {
        Some(PairingReason::MetadataUpgrade)
    } else if !r.roles.iter().any(|x| x == role.as_str())
        || r.tokens
            .get(role.as_str())
            .is_some_and(|t| t.revoked_at_ms.is_some())
    {
        // A revoked role token takes the role away until it is approved
        // again, as in OpenClaw (a role-upgrade request).
        Some(PairingReason::RoleUpgrade)
    } else if !scopes::covers(&r.scopes, requested_scopes) {
        Some(PairingReason::ScopeUpgrade)
    } else {
        None
    }
}

/// What the approval decision looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Situation {
    pub locality: Locality,
    pub role: Role,
    /// How the connect authenticated so far (`None`: no secret matched).
    pub auth: Option<AuthMethod>,
    /// The device is already paired (this is an upgrade).
    pub paired: bool,
    /// A browser that is not the Control UI (an Origin from some page).
    pub browser: bool,
    /// The upgrade request carried an Origin.
    pub origin: bool,
    pub scopes_empty: bool,
    /// `gateway.nodes.pairing.autoApproveLocal`.
    pub auto_approve_local: bool,
    /// The client address is in `gateway.nodes.pairing.autoApproveCidrs`.
    pub in_auto_approve_cidr: bool,
    /// A browser or native UI operator a trusted proxy vouched for, with
    /// `trustedProxy.deviceAutoApprove.enabled`.
    pub proxy_auto_approve: bool,
    /// Another key holds this device id.
    pub id_taken: bool,
}

/// How a required approval happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Approval {
    /// Approved on the spot: a local client (OpenClaw's silent local pairing).
    Silent,
    /// Approved on the spot: a new node from a trusted CIDR.
    TrustedCidr,
    /// Approved on the spot: a UI device of a user a trusted proxy vouched
    /// for, under `deviceAutoApprove`.
    TrustedProxy,
    /// A pending request that a person approves.
    Request,
}

impl Approval {
    /// `approvedVia` for an automatic approval.
    pub fn automatic(self) -> Option<&'static str> {
        match self {
            Approval::Silent => Some("silent"),
            Approval::TrustedCidr => Some("trusted-cidr"),
            Approval::TrustedProxy => Some("trusted-proxy"),
            Approval::Request => None,
        }
    }
}

pub(super) fn approval(reason: PairingReason, s: &Situation) -> Approval {
    // deviceAutoApprove: new devices and same-key scope upgrades only, never
    // a role or metadata change, never an id another key holds.
    let proxy = s.proxy_auto_approve
        && s.role == Role::Operator
        && match reason {
            PairingReason::NotPaired => !s.paired && !s.id_taken,
            PairingReason::ScopeUpgrade => s.paired,
            _ => false,
        };
    if proxy {
        return Approval::TrustedProxy;
    }
    // A scope upgrade is silent only for a connect that proved the shared
    // secret (or needs none), never on a device token's say-so.
    let scope_upgrade_ok = reason != PairingReason::ScopeUpgrade
        || matches!(
            s.auth,
            Some(AuthMethod::None | AuthMethod::Token | AuthMethod::Password)
        );
    let silent = s.auto_approve_local
        && s.locality != Locality::Remote
        && scope_upgrade_ok
        && !s.browser
        && !(s.paired && s.role != Role::Operator);
    if silent {
        return Approval::Silent;
    }
    let trusted_cidr = reason == PairingReason::NotPaired
        && s.role == Role::Node
        && s.scopes_empty
        && !s.origin
        && s.in_auto_approve_cidr;
    if trusted_cidr {
        Approval::TrustedCidr
    } else {
        Approval::Request
    }
}

/// The pairing step (§5) for a proven device: admitted as paired, paired
/// on the spot, or refused with a pending request a person approves.
/// Returns the record tokens are issued from (`None`: the step is skipped).
pub(super) async fn admit(
    state: &GatewayState,
    g: &GatewayConfig,
    input: AdmitInput<'_, '_>,
) -> Result<Admission, Rejection> {
    let AdmitInput {
        ctx,
        p,
        role,
        auth,
        device,
        record,
    } = input;
    let Some(device) = device.filter(|_| auth.pairing == PairingStep::Decide) else {
        return Ok(Admission::default());
    };
    let device_id = &device.device_id;
    let id_taken = record.is_some();
    let record = record.filter(|r| r.public_key == device.public_key);
    let id_taken = id_taken && record.is_none();
    let method = Some(auth.method);
    let requirement = requirement(
        record.as_ref(),
        method,
        role,
        p.client_platform,
        p.device_family,
        &p.scopes,
    );
    let Some(reason) = requirement else {
        return Ok(Admission {
            record,
            scopes: None,
        });
    };
    let proxy_rule = g
        .auth
        .trusted_proxy
        .as_ref()
        .filter(|t| t.auto_approve && auth.method == AuthMethod::TrustedProxy)
        .filter(|_| auth.user.is_some() && (is_control_ui(p) || p.client_mode == "ui"));
    let mut ask = PairingAsk {
        device_id: device_id.clone(),
        public_key: device.public_key.clone(),
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
    let approval = approval(
        reason,
        &Situation {
            locality: auth.locality,
            role,
            auth: method,
            paired: record.is_some(),
            browser: ctx.origin.is_some() && !is_control_ui(p),
            origin: ctx.origin.is_some(),
            scopes_empty: p.scopes.is_empty(),
            auto_approve_local: g.node_pairing.auto_approve_local,
            in_auto_approve_cidr: g
                .node_pairing
                .auto_approve_cidrs
                .iter()
                .any(|n| n.contains(&ctx.addr.client)),
            proxy_auto_approve: proxy_rule.is_some(),
            id_taken,
        },
    );
    let mut session_scopes = None;
    let mut audit = None;
    if let (Approval::TrustedProxy, Some(t), Some(user)) = (approval, proxy_rule, &auth.user) {
        let granted = crate::gateway::trusted_proxy::cap(
            crate::gateway::trusted_proxy::auto_approve_scopes(t, &p.scopes),
            super::scope_cap(ctx),
        );
        ask.scopes = granted.clone();
        session_scopes = Some(match &record {
            // A scope upgrade: what it asked for that the grant now covers.
            Some(r) if !p.scopes.is_empty() => {
                let all = scopes::union(&r.scopes, &granted);
                p.scopes
                    .iter()
                    .filter(|s| scopes::satisfies(&all, s))
                    .cloned()
                    .collect()
            }
            _ => granted.clone(),
        });
        let actor = Actor {
            name: format!("trusted-proxy:{user}"),
            client_addr: Some(ctx.addr.client.to_string()),
        };
        audit = Some(actor.audit(
            "pairing.approve",
            device_id,
            "ok",
            Some(format!(
                "approvedVia trusted-proxy (deviceAutoApprove), scopes {}",
                granted.join(",")
            )),
        ));
        tracing::warn!(user = %user, device = %device::fingerprint(device_id), scopes = %granted.join(","), "security audit: trusted-proxy operator device auto-approved");
    }
    if let Some(via) = approval.automatic() {
        let d = pairing::approve_silently(&state.store, ask, via, audit)
            .await
            .map_err(|e| internal(&e.to_string()))?;
        state.registry.broadcast(
            WsEvent::DevicePairResolved,
            json!({"requestId": uuid::Uuid::new_v4().to_string(), "deviceId": device_id, "decision": "approved", "ts": now_ms()}),
        );
        tracing::info!(device = %device::fingerprint(device_id), via, %reason, "device paired automatically");
        return Ok(Admission {
            record: Some(d),
            scopes: session_scopes,
        });
    }
    Err(request(state, g, ctx, p, role, ask, record.as_ref()).await)
}

/// What the pairing step let in.
#[derive(Default)]
pub(super) struct Admission {
    /// The record tokens are issued from (`None`: the step was skipped).
    pub record: Option<DeviceRecord>,
    /// The session's scopes when the approval set them (deviceAutoApprove).
    pub scopes: Option<Vec<String>>,
}

/// What the pairing step looks at.
pub(super) struct AdmitInput<'a, 'p> {
    pub ctx: &'a ConnCtx,
    pub p: &'a Params<'p>,
    pub role: Role,
    pub auth: &'a AuthOutcome,
    pub device: Option<&'a Proven>,
    /// The stored record of the device id (any key).
    pub record: Option<DeviceRecord>,
}

/// Files (or refreshes) the pending request and builds the `pairing
/// required` refusal that names it.
async fn request(
    state: &GatewayState,
    g: &GatewayConfig,
    ctx: &ConnCtx,
    p: &Params<'_>,
    role: Role,
    ask: PairingAsk,
    record: Option<&DeviceRecord>,
) -> Rejection {
    let reason = ask.reason;
    let device_id = ask.device_id.clone();
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
            return Rejection::policy(RejectReason::PairingQueueFull, err);
        }
        Err(e) => return internal(&e.to_string()),
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
    });
    // As OpenClaw: a Control UI operator waiting for approval is told to
    // keep retrying, so the page connects by itself once approved.
    if is_control_ui(p) && role == Role::Operator {
        details["recommendedNextStep"] = json!("wait_then_retry");
        details["retryable"] = json!(true);
        details["pauseReconnect"] = json!(false);
    }
    details["deviceId"] = json!(device_id);
    details["requestedRole"] = json!(role);
    details["requestedScopes"] = json!(p.scopes);
    if let Some(r) = record {
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
    Rejection {
        reason: RejectReason::PairingRequired,
        error: Some(err),
        close_code: 1008,
        close_reason: truncate_utf8(&reason_text, 120).to_string(),
        delay_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Approval::{Request, Silent, TrustedCidr};
    use Locality::*;
    use PairingReason::*;

    fn situation(locality: Locality, role: Role, auth: Option<AuthMethod>) -> Situation {
        Situation {
            locality,
            role,
            auth,
            paired: false,
            browser: false,
            origin: false,
            scopes_empty: true,
            auto_approve_local: true,
            in_auto_approve_cidr: false,
            proxy_auto_approve: false,
            id_taken: false,
        }
    }

    /// locality, auth, role, reason, paired, browser, in an auto-approve CIDR → approval
    type Row = (
        Locality,
        Option<AuthMethod>,
        Role,
        PairingReason,
        bool,
        bool,
        bool,
        Approval,
    );

    /// locality × auth × role × pairing state → approval.
    #[test]
    fn approval_table() {
        let tok = Some(AuthMethod::Token);
        let none = None;
        let dt = Some(AuthMethod::DeviceToken);
        let op = Role::Operator;
        let node = Role::Node;
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // locality, auth, role, reason, paired, browser, in CIDR → approval
            (DirectLocal, tok, op, NotPaired, false, false, false, Silent),
            (DirectLocal, none, op, NotPaired, false, false, false, Silent),
            (CliContainerLocal, tok, op, NotPaired, false, false, false, Silent),
            (BrowserContainerLocal, tok, op, NotPaired, false, false, false, Silent),
            (SharedSecretLoopbackLocal, tok, op, NotPaired, false, false, false, Silent),
            (Remote, tok, op, NotPaired, false, false, false, Request),
            (Remote, none, op, NotPaired, false, false, false, Request),
            // a page's Origin is never paired silently, even locally
            (DirectLocal, tok, op, NotPaired, false, true, false, Request),
            // scope upgrades: silent locally with the secret, not on a device token
            (DirectLocal, tok, op, ScopeUpgrade, true, false, false, Silent),
            (DirectLocal, dt, op, ScopeUpgrade, true, false, false, Request),
            (Remote, tok, op, ScopeUpgrade, true, false, false, Request),
            // an already paired non-operator is never re-approved silently
            (DirectLocal, tok, node, RoleUpgrade, true, false, false, Request),
            (DirectLocal, tok, node, NotPaired, false, false, false, Silent),
            // trusted CIDRs: new remote nodes only
            (Remote, tok, node, NotPaired, false, false, true, TrustedCidr),
            (Remote, tok, node, NotPaired, false, false, false, Request),
            (Remote, tok, op, NotPaired, false, false, true, Request),
            (Remote, tok, node, MetadataUpgrade, true, false, true, Request),
            (Remote, tok, node, RoleUpgrade, true, false, true, Request),
        ];
        for (i, &(loc, auth, role, reason, paired, browser, cidr, want)) in rows.iter().enumerate()
        {
            let mut s = situation(loc, role, auth);
            s.paired = paired;
            s.browser = browser;
            s.origin = browser;
            s.in_auto_approve_cidr = cidr;
            assert_eq!(approval(reason, &s), want, "row {i}: {s:?} {reason:?}");
        }
    }

    #[test]
    fn auto_approve_local_off_leaves_only_requests_and_cidrs() {
        let mut s = situation(DirectLocal, Role::Operator, Some(AuthMethod::Token));
        s.auto_approve_local = false;
        assert_eq!(approval(NotPaired, &s), Request);
        let mut s = situation(Remote, Role::Node, Some(AuthMethod::Token));
        s.auto_approve_local = false;
        s.in_auto_approve_cidr = true;
        assert_eq!(approval(NotPaired, &s), TrustedCidr);
        s.scopes_empty = false;
        assert_eq!(approval(NotPaired, &s), Request, "a node asking for scopes");
    }

    fn record(platform: &str, roles: &[&str], scopes: &[&str]) -> DeviceRecord {
        DeviceRecord {
            device_id: "d".into(),
            platform: Some(platform.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// pairing state × request → requirement.
    #[test]
    fn requirement_table() {
        let read = vec!["operator.read".to_string()];
        let admin = vec!["operator.admin".to_string()];
        let op = Role::Operator;
        let tok = Some(AuthMethod::Token);
        let paired = record("linux", &["operator"], &["operator.read"]);
        assert_eq!(
            requirement(None, tok, op, "linux", None, &read),
            Some(NotPaired)
        );
        assert_eq!(
            requirement(
                None,
                Some(AuthMethod::DeviceToken),
                op,
                "linux",
                None,
                &read
            ),
            None,
            "a valid device token admits by itself"
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "linux", None, &read),
            None
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, " Linux ", None, &read),
            None,
            "platform compared trimmed, case-insensitively"
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "darwin", None, &read),
            Some(MetadataUpgrade)
        );
        assert_eq!(
            requirement(Some(&paired), tok, Role::Node, "linux", None, &[]),
            Some(RoleUpgrade)
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "linux", None, &admin),
            Some(ScopeUpgrade)
        );
    }
}
