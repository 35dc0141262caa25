//! Pairing and token decisions with all their effects: the store change and its
//! audit record in one transaction, then WebSocket events, admin events and
//! the closing of sessions whose authority ended. The WebSocket RPCs and the
//! admin API both call these, so a decision means the same thing either way.

use super::registry::WsEvent;
use serde_json::{json, Value};

use super::pairing::{self, Approved, PairingError};
use super::GatewayState;
use crate::store::{AuditEvent, DeviceRecord, PendingRecord, StoreError, TokenRecord};
use crate::util::now_ms;

/// Who is acting (for the audit log; never a secret).
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub client_addr: Option<String>,
}

impl Actor {
    pub fn audit(
        &self,
        action: &str,
        target: &str,
        outcome: &str,
        detail: Option<String>,
    ) -> AuditEvent {
        AuditEvent {
            seq: 0,
            ts: now_ms(),
            actor: self.name.clone(),
            action: action.to_string(),
            target: target.to_string(),
            client_addr: self.client_addr.clone(),
            outcome: outcome.to_string(),
            detail,
        }
    }
}

/// Why an operation (an RPC or an admin call) did not happen: one variant
/// per case, so that each edge (HTTP, WebSocket, audit) maps it without
/// looking at its text.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("unknown requestId")]
    UnknownRequest,
    #[error("unknown deviceId")]
    UnknownDevice,
    #[error("the device has no {0} token")]
    NoToken(String),
    #[error("request {} was already {} (by {})", .0.request_id, .0.decision, .0.actor)]
    AlreadyDecided(crate::store::DecidedRecord),
    #[error("the {0} token is already revoked")]
    AlreadyRevoked(String),
    #[error("{0}")]
    Invalid(String),
    #[error("too many pending pairing requests from this address ({0}); approve or reject pending requests, or wait for them to expire")]
    ClientQueueFull(usize),
    #[error("too many pending pairing requests in total ({0}); approve or reject pending requests, or wait for them to expire")]
    QueueFull(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The class of an [`OpError`]: what the edges answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    NotFound,
    Conflict,
    Invalid,
    Store,
}

impl OpError {
    pub fn kind(&self) -> OpKind {
        match self {
            OpError::UnknownRequest | OpError::UnknownDevice | OpError::NoToken(_) => {
                OpKind::NotFound
            }
            OpError::AlreadyDecided(_)
            | OpError::AlreadyRevoked(_)
            | OpError::ClientQueueFull(_)
            | OpError::QueueFull(_) => OpKind::Conflict,
            OpError::Invalid(_) => OpKind::Invalid,
            OpError::Store(_) => OpKind::Store,
        }
    }

    fn outcome(&self) -> &'static str {
        match self.kind() {
            OpKind::NotFound => "not_found",
            OpKind::Conflict => "conflict",
            OpKind::Invalid => "invalid",
            OpKind::Store => "error",
        }
    }
}

impl From<PairingError> for OpError {
    fn from(e: PairingError) -> Self {
        match e {
            PairingError::UnknownRequest => OpError::UnknownRequest,
            PairingError::UnknownDevice => OpError::UnknownDevice,
            PairingError::UnknownRole(r) => OpError::NoToken(r),
            PairingError::AlreadyDecided(d) => OpError::AlreadyDecided(d),
            PairingError::AlreadyRevoked(r) => OpError::AlreadyRevoked(r),
            PairingError::Invalid(m) => OpError::Invalid(m),
            PairingError::ClientQueueFull(n) => OpError::ClientQueueFull(n),
            PairingError::QueueFull(n) => OpError::QueueFull(n),
            PairingError::Store(s) => OpError::Store(s),
        }
    }
}

/// The events admin listeners get (`GET /admin/v1/events`, SSE `event:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminEventName {
    PairingRequested,
    PairingResolved,
    DeviceRemoved,
    DeviceChanged,
    TokenRotated,
    TokenRevoked,
    GatewayTokenRotated,
    TrustedProxiesChanged,
    ConfigReloadFailed,
    ConfigChanged,
    ConfigReloaded,
}

impl AdminEventName {
    /// The SSE event name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminEventName::PairingRequested => "pairing.requested",
            AdminEventName::PairingResolved => "pairing.resolved",
            AdminEventName::DeviceRemoved => "device.removed",
            AdminEventName::DeviceChanged => "device.changed",
            AdminEventName::TokenRotated => "token.rotated",
            AdminEventName::TokenRevoked => "token.revoked",
            AdminEventName::GatewayTokenRotated => "gateway.token.rotated",
            AdminEventName::TrustedProxiesChanged => "trustedProxies.changed",
            AdminEventName::ConfigReloadFailed => "config.reload_failed",
            AdminEventName::ConfigChanged => "config.changed",
            AdminEventName::ConfigReloaded => "config.reloaded",
        }
    }
}

/// An event for admin listeners (SSE).
#[derive(Debug, Clone)]
pub struct AdminEvent {
    pub name: AdminEventName,
    pub data: Value,
}

impl GatewayState {
    pub fn emit(&self, name: AdminEventName, data: Value) {
        let _ = self.events.send(AdminEvent { name, data });
    }
}

async fn audit_failure(
    state: &GatewayState,
    actor: &Actor,
    action: &str,
    target: &str,
    e: &OpError,
) {
    if !matches!(e, OpError::Store(_)) {
        let _ = state
            .store
            .audit_now(actor.audit(action, target, e.outcome(), Some(e.to_string())))
            .await;
    }
}

macro_rules! audited {
    ($state:expr, $actor:expr, $action:expr, $target:expr, $call:expr) => {
        match $call.await.map_err(OpError::from) {
            Ok(v) => v,
            Err(e) => {
                audit_failure($state, $actor, $action, $target, &e).await;
                return Err(e);
            }
        }
    };
}

pub async fn approve(
    state: &GatewayState,
    actor: &Actor,
    request_id: &str,
    narrowed: Option<Vec<String>>,
    label: Option<String>,
) -> Result<Approved, OpError> {
    let ttl = state.config.load().gateway.pairing.pending_ttl_ms;
    let audit = actor.audit(
        "pairing.approve",
        request_id,
        "ok",
        narrowed
            .as_ref()
            .map(|s| format!("scopes narrowed to {}", s.join(","))),
    );
    let a = audited!(
        state,
        actor,
        "pairing.approve",
        request_id,
        pairing::approve(
            &state.store,
            state.token_key,
            request_id.to_string(),
            ttl,
            narrowed,
            label,
            Some(actor.name.clone()),
            audit
        )
    );
    let payload = json!({"requestId": a.request.request_id, "deviceId": a.device.device_id, "decision": "approved", "ts": now_ms()});
    state
        .registry
        .broadcast(WsEvent::DevicePairResolved, payload.clone());
    state.emit(AdminEventName::PairingResolved, payload);
    tracing::info!(request = %a.request.request_id, device = %super::device::fingerprint(&a.device.device_id), actor = %actor.name, "pairing approved");
    Ok(a)
}

pub async fn reject(
    state: &GatewayState,
    actor: &Actor,
    request_id: &str,
) -> Result<PendingRecord, OpError> {
    let ttl = state.config.load().gateway.pairing.pending_ttl_ms;
    let audit = actor.audit("pairing.reject", request_id, "ok", None);
    let p = audited!(
        state,
        actor,
        "pairing.reject",
        request_id,
        pairing::reject(&state.store, request_id.to_string(), ttl, audit)
    );
    let payload = json!({"requestId": p.request_id, "deviceId": p.device_id, "decision": "rejected", "ts": now_ms()});
    state
        .registry
        .broadcast(WsEvent::DevicePairResolved, payload.clone());
    state.emit(AdminEventName::PairingResolved, payload);
    tracing::info!(request = %p.request_id, actor = %actor.name, "pairing rejected");
    Ok(p)
}

pub async fn remove_device(
    state: &GatewayState,
    actor: &Actor,
    device_id: &str,
) -> Result<(DeviceRecord, usize), OpError> {
    let audit = actor.audit("device.remove", device_id, "ok", None);
    let upstream_id = state.upstream_ids.up_of(device_id);
    let d = audited!(
        state,
        actor,
        "device.remove",
        device_id,
        pairing::remove(&state.store, device_id.to_string(), audit)
    );
    let id = d.device_id.clone();
    let closed = state.registry.close_where(
        |s| s.device_id.as_deref() == Some(id.as_str()),
        4001,
        "device removed",
        None,
    );
    forget_upstream_identity(state, &id, upstream_id);
    state.emit(
        AdminEventName::DeviceRemoved,
        json!({"deviceId": d.device_id, "closedSessions": closed, "ts": now_ms()}),
    );
    tracing::info!(device = %super::device::fingerprint(&d.device_id), actor = %actor.name, closed, "device removed");
    Ok((d, closed))
}

/// Front-door mode: the upstream forgets the identity it knew a removed
/// device by (`upstream_id`, looked up before the removal).
fn forget_upstream_identity(state: &GatewayState, device_id: &str, upstream_id: Option<String>) {
    let Some(up_id) = upstream_id else { return };
    state.upstream_ids.remove(device_id);
    if let Some(up) = state.config.load().gateway.upstream.clone() {
        tokio::spawn(super::bridge::maintenance::forget(
            state.store.clone(),
            up,
            up_id,
        ));
    }
}

/// `node.pair.remove`: the device loses its node role (a node-only device
/// is removed). Its node sessions close with 4001 `device removed`; in
/// front-door mode the upstream forgets the node too (the whole identity
/// when the device is gone, else its node role there). Returns the number
/// of sessions closed.
pub async fn remove_node(
    state: &GatewayState,
    actor: &Actor,
    device_id: &str,
) -> Result<usize, OpError> {
    use super::pairing::RoleRemoval;
    use super::scopes::Role;
    let audit = actor.audit("node.remove", device_id, "ok", None);
    let upstream_id = state.upstream_ids.up_of(device_id);
    let outcome = audited!(
        state,
        actor,
        "node.remove",
        device_id,
        pairing::remove_role(&state.store, device_id.to_string(), Role::Node, audit)
    );
    let id = device_id.to_string();
    let deleted = matches!(outcome, RoleRemoval::Deleted(_));
    let closed = state.registry.close_where(
        |s| s.device_id.as_deref() == Some(id.as_str()) && (deleted || s.role == Role::Node),
        4001,
        "device removed",
        None,
    );
    if deleted {
        forget_upstream_identity(state, &id, upstream_id);
        state.emit(
            AdminEventName::DeviceRemoved,
            json!({"deviceId": id, "closedSessions": closed, "ts": now_ms()}),
        );
    } else if let (Some(up_id), Some(up)) =
        (upstream_id, state.config.load().gateway.upstream.clone())
    {
        let store = state.store.clone();
        tokio::spawn(async move {
            let params = json!({"nodeId": up_id});
            if let Err(e) =
                super::bridge::maintenance::call(&store, &up, "node.pair.remove", params).await
            {
                tracing::warn!(upstream = %up.url, error = %e, "the upstream could not be told to forget a removed node; remove it there with `openclaw nodes remove`");
            }
        });
    }
    state.registry.broadcast(
        WsEvent::NodePairResolved,
        json!({"requestId": "", "nodeId": id, "decision": "removed", "ts": now_ms()}),
    );
    tracing::info!(device = %super::device::fingerprint(&id), actor = %actor.name, closed, deleted, "node removed");
    Ok(closed)
}

pub async fn rename_device(
    state: &GatewayState,
    actor: &Actor,
    device_id: &str,
    label: &str,
) -> Result<DeviceRecord, OpError> {
    let audit = actor.audit(
        "device.rename",
        device_id,
        "ok",
        Some(format!("label {label:?}")),
    );
    let d = audited!(
        state,
        actor,
        "device.rename",
        device_id,
        pairing::rename(
            &state.store,
            device_id.to_string(),
            label.to_string(),
            audit
        )
    );
    state
        .registry
        .broadcast(WsEvent::DevicePairChanged, json!({}));
    state.emit(
        AdminEventName::DeviceChanged,
        json!({"deviceId": d.device_id, "label": label, "ts": now_ms()}),
    );
    Ok(d)
}

/// Rotates a device token and closes that device's sessions of the role
/// (except `except`, the caller receiving the token in band).
pub async fn rotate_token(
    state: &GatewayState,
    actor: &Actor,
    device_id: &str,
    role: &str,
    scopes: Option<Vec<String>>,
    except: Option<&str>,
) -> Result<(TokenRecord, String, usize), OpError> {
    let target = format!("{device_id}/{role}");
    let audit = actor.audit("token.rotate", &target, "ok", None);
    let (rec, token) = audited!(
        state,
        actor,
        "token.rotate",
        &target,
        pairing::rotate(
            &state.store,
            state.token_key,
            device_id.to_string(),
            role.to_string(),
            scopes,
            audit
        )
    );
    let closed = state.registry.close_where(
        |s| s.device_id.as_deref() == Some(device_id) && s.role.as_str() == role,
        4001,
        "device removed",
        except,
    );
    state.emit(
        AdminEventName::TokenRotated,
        json!({"deviceId": device_id, "role": role, "closedSessions": closed, "ts": now_ms()}),
    );
    Ok((rec, token, closed))
}

pub async fn revoke_token(
    state: &GatewayState,
    actor: &Actor,
    device_id: &str,
    role: &str,
) -> Result<(u64, usize), OpError> {
    let target = format!("{device_id}/{role}");
    let audit = actor.audit("token.revoke", &target, "ok", None);
    let at = audited!(
        state,
        actor,
        "token.revoke",
        &target,
        pairing::revoke(&state.store, device_id.to_string(), role.to_string(), audit)
    );
    let closed = state.registry.close_where(
        |s| s.device_id.as_deref() == Some(device_id) && s.role.as_str() == role,
        4001,
        "device removed",
        None,
    );
    state.emit(
        AdminEventName::TokenRevoked,
        json!({"deviceId": device_id, "role": role, "closedSessions": closed, "ts": now_ms()}),
    );
    Ok((at, closed))
}
