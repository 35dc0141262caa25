//! Pairing and device-token operations on the store (protocol §3.6, §5).
//! Every decision runs as one write transaction on the store's writer thread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use redb::Durability;
use serde_json::Value;

use super::scopes::{self, Role};
use super::wire;
use crate::store::{
    self, AuditEvent, DecidedRecord, DeviceRecord, PendingRecord, Store, StoreError, TokenRecord,
};
use crate::util::now_ms;

/// Errors of pairing operations, with the wire message of protocol §5.6.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PairingError {
    #[error("unknown requestId")]
    UnknownRequest,
    #[error("unknown deviceId")]
    UnknownDevice,
    #[error("unknown role: {0}")]
    UnknownRole(String),
    #[error("request {} was already {} (by {})", .0.request_id, .0.decision, .0.actor)]
    AlreadyDecided(DecidedRecord),
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

/// Derives a device token from the server's token key and a per-token salt, so
/// the store holds only a digest yet the same token can be handed back on every
/// connect (OpenClaw reuses device tokens across connects).
pub fn derive_token(key: &[u8; 32], device_id: &str, role: &str, salt: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(b"clawgate-device-token-v1\0");
    mac.update(device_id.as_bytes());
    mac.update(b"\0");
    mac.update(role.as_bytes());
    mac.update(b"\0");
    mac.update(salt);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

pub fn token_digest_hex(token: &str) -> String {
    hex::encode(super::auth::sha256(token))
}

fn mint(
    key: &[u8; 32],
    device_id: &str,
    role: &str,
    scopes: Vec<String>,
    now: u64,
    prev: Option<&TokenRecord>,
) -> (TokenRecord, String) {
    let salt = crate::util::random_bytes();
    let token = derive_token(key, device_id, role, &salt);
    let rec = TokenRecord {
        role: role.to_string(),
        scopes,
        digest: token_digest_hex(&token),
        salt: URL_SAFE_NO_PAD.encode(salt),
        created_at_ms: prev.map(|p| p.created_at_ms).unwrap_or(now),
        rotated_at_ms: prev.map(|_| now),
        revoked_at_ms: None,
        last_used_at_ms: None,
    };
    (rec, token)
}

/// Recomputes a stored token's string.
pub fn token_string(key: &[u8; 32], device_id: &str, t: &TokenRecord) -> Option<String> {
    let salt = URL_SAFE_NO_PAD.decode(&t.salt).ok()?;
    let token = derive_token(key, device_id, &t.role, &salt);
    (token_digest_hex(&token) == t.digest).then_some(token)
}

/// Public (API) form of a pending record.
pub fn pending_json(p: &PendingRecord) -> Value {
    serde_json::to_value(wire::PendingPairing::of(p)).unwrap_or_default()
}

/// Redacted paired-device form: no token material.
pub fn paired_json(d: &DeviceRecord, connected: Option<bool>) -> Value {
    serde_json::to_value(wire::PairedDevice::of(d, connected)).unwrap_or_default()
}

/// What a connecting device asks for.
#[derive(Debug, Clone)]
pub struct PairingAsk {
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
    pub client_key: String,
    pub peer_ip: String,
    pub reason: PairingReason,
}

/// Why a device must be (re-)approved (`details.reason` of
/// `PAIRING_REQUIRED`, and a pending request's `reason`; the wire strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairingReason {
    /// The device has never been approved.
    NotPaired,
    /// It asks for a role it does not hold (or whose token was revoked).
    RoleUpgrade,
    /// It asks for more scopes than approved.
    ScopeUpgrade,
    /// Its platform or device family changed.
    MetadataUpgrade,
}

impl PairingReason {
    /// The reason a stored wire string names.
    pub fn parse(s: &str) -> Option<PairingReason> {
        [
            PairingReason::NotPaired,
            PairingReason::RoleUpgrade,
            PairingReason::ScopeUpgrade,
            PairingReason::MetadataUpgrade,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
        }
    }

    /// The `PAIRING_REQUIRED` message and remediation hint (OpenClaw's).
    pub fn wording(self) -> (&'static str, &'static str) {
        match self {
            PairingReason::RoleUpgrade => (
                "pairing required: device is asking for a higher role than currently approved",
                "Review the requested role upgrade, then approve the pending request.",
            ),
            PairingReason::ScopeUpgrade => (
                "pairing required: device is asking for more scopes than currently approved",
                "Review the requested scopes, then approve the pending upgrade.",
            ),
            PairingReason::MetadataUpgrade => (
                "pairing required: device identity changed and must be re-approved",
                "Review the refreshed device details, then approve the pending request.",
            ),
            PairingReason::NotPaired => (
                "pairing required: device is not approved yet",
                "Approve this device from the pending pairing requests.",
            ),
        }
    }
}

impl std::fmt::Display for PairingReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub struct PendingOutcome {
    pub request: PendingRecord,
    pub created: bool,
    pub superseded: Vec<(String, String)>,
}

/// Creates or refreshes the pending request for a device (protocol §5.2), with
/// caps per client address and in total. Pending requests are cheap to lose (the
/// device asks again), so this commits without an fsync.
pub async fn request_pairing(
    store: &Store,
    ask: PairingAsk,
    ttl_ms: u64,
    max_per_client: usize,
    max_total: usize,
) -> Result<PendingOutcome, PairingError> {
    store
        .write(Durability::None, move |txn| {
            let now = now_ms();
            let mut all = store::pending_in(txn)?;
            // Prune expired requests.
            for p in all.iter().filter(|p| p.expires_at(ttl_ms) <= now) {
                store::delete_pending(txn, &p.request_id)?;
            }
            all.retain(|p| p.expires_at(ttl_ms) > now);
            let mine: Vec<&PendingRecord> = all
                .iter()
                .filter(|p| p.device_id == ask.device_id)
                .collect();
            let is_repair = store::device_in(txn, &ask.device_id)?.is_some();
            if mine.len() == 1 {
                let p = mine[0];
                let same_key = p.public_key == ask.public_key;
                let covered = p.roles.contains(&ask.role) && scopes::covers(&p.scopes, &ask.scopes);
                if same_key && covered {
                    let mut r = p.clone();
                    r.refreshed_at_ms = now;
                    r.attempts = r.attempts.saturating_add(1);
                    r.platform = ask.platform.clone();
                    r.device_family = ask.device_family.clone();
                    r.display_name = ask.display_name.clone().or(r.display_name);
                    r.client_version = Some(ask.client_version.clone());
                    r.remote_ip = ask.remote_ip.clone();
                    r.peer_ip = ask.peer_ip.clone();
                    store::put_pending(txn, &r)?;
                    return Ok(PendingOutcome {
                        request: r,
                        created: false,
                        superseded: vec![],
                    });
                }
            }
            // Merge with and replace this device's earlier requests.
            let mut roles = vec![ask.role.clone()];
            let mut merged_scopes = ask.scopes.clone();
            let mut superseded = vec![];
            for p in &mine {
                if p.public_key == ask.public_key {
                    for r in &p.roles {
                        if !roles.contains(r) {
                            roles.push(r.clone());
                        }
                    }
                    merged_scopes = scopes::union(&merged_scopes, &p.scopes);
                }
                store::delete_pending(txn, &p.request_id)?;
                superseded.push((p.request_id.clone(), p.device_id.clone()));
            }
            let others: Vec<&PendingRecord> = all
                .iter()
                .filter(|p| p.device_id != ask.device_id)
                .collect();
            let from_client = others
                .iter()
                .filter(|p| p.client_key == ask.client_key)
                .count();
            if from_client >= max_per_client {
                return Err(PairingError::ClientQueueFull(max_per_client));
            }
            if others.len() >= max_total {
                return Err(PairingError::QueueFull(max_total));
            }
            let rec = PendingRecord {
                request_id: uuid::Uuid::new_v4().to_string(),
                device_id: ask.device_id.clone(),
                public_key: ask.public_key.clone(),
                display_name: ask.display_name.clone(),
                platform: ask.platform.clone(),
                device_family: ask.device_family.clone(),
                client_id: Some(ask.client_id.clone()),
                client_mode: Some(ask.client_mode.clone()),
                client_version: Some(ask.client_version.clone()),
                role: ask.role.clone(),
                roles,
                scopes: merged_scopes,
                remote_ip: ask.remote_ip.clone(),
                client_key: ask.client_key.clone(),
                peer_ip: ask.peer_ip.clone(),
                silent: false,
                is_repair,
                reason: ask.reason.as_str().to_string(),
                ts: now,
                refreshed_at_ms: now,
                attempts: 1,
            };
            store::put_pending(txn, &rec)?;
            Ok(PendingOutcome {
                request: rec,
                created: true,
                superseded,
            })
        })
        .await
}

/// Silently approves a local device in the handshake (approvedVia "silent").
/// `via` is the record's `approvedVia`; `audit`, when given, is written in
/// the same transaction.
pub async fn approve_silently(
    store: &Store,
    ask: PairingAsk,
    via: &'static str,
    audit: Option<AuditEvent>,
) -> Result<DeviceRecord, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let prev =
                store::device_in(txn, &ask.device_id)?.filter(|d| d.public_key == ask.public_key);
            let mut d = prev.clone().unwrap_or_else(|| DeviceRecord {
                device_id: ask.device_id.clone(),
                public_key: ask.public_key.clone(),
                created_at_ms: now,
                ..Default::default()
            });
            if !d.roles.contains(&ask.role) {
                d.roles.push(ask.role.clone());
            }
            d.role = Some(d.role.clone().unwrap_or(ask.role.clone()));
            d.scopes = scopes::union(&d.scopes, &ask.scopes);
            d.platform = ask.platform.clone();
            d.device_family = ask.device_family.clone();
            d.display_name = ask.display_name.clone().or(d.display_name);
            d.client_id = Some(ask.client_id.clone());
            d.client_mode = Some(ask.client_mode.clone());
            d.remote_ip = ask.remote_ip.clone();
            d.approved_via = via.into();
            d.approved_at_ms = now;
            d.last_seen_at_ms = Some(now);
            d.last_seen_reason = Some("connect".into());
            if prev.is_none() {
                d.tokens.clear();
            }
            // Drop pending requests this approval answers.
            for p in store::pending_in(txn)?
                .into_iter()
                .filter(|p| p.device_id == ask.device_id)
            {
                store::delete_pending(txn, &p.request_id)?;
            }
            if let Some(ev) = &audit {
                store::append_audit(txn, ev)?;
            }
            store::put_device(txn, &d)?;
            Ok(d)
        })
        .await
}

/// The result of an approval.
pub struct Approved {
    pub request: PendingRecord,
    pub device: DeviceRecord,
}

/// Approves a pending request (protocol §5.6 approval effects).
#[allow(clippy::too_many_arguments)]
pub async fn approve(
    store: &Store,
    key: [u8; 32],
    request_id: String,
    ttl_ms: u64,
    narrowed: Option<Vec<String>>,
    label: Option<String>,
    approved_by: Option<String>,
    audit: AuditEvent,
) -> Result<Approved, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let table = txn
                .open_table(store::tables::PENDING)
                .map_err(StoreError::from)?;
            let p: Option<PendingRecord> = store::get_json(&table, &request_id)?;
            drop(table);
            let p = match p {
                Some(p) if p.expires_at(ttl_ms) > now => p,
                _ => return Err(decided_or_unknown(txn, &request_id)?),
            };
            let scopes_req = match &narrowed {
                Some(n) => {
                    if let Some(bad) = n.iter().find(|s| !scopes::satisfies(&p.scopes, s)) {
                        return Err(PairingError::Invalid(format!(
                            "scope {bad} was not requested by the device"
                        )));
                    }
                    scopes::normalize(n)
                }
                None => p.scopes.clone(),
            };
            store::delete_pending(txn, &request_id)?;
            let prev =
                store::device_in(txn, &p.device_id)?.filter(|d| d.public_key == p.public_key);
            let mut d = prev.clone().unwrap_or_else(|| DeviceRecord {
                device_id: p.device_id.clone(),
                public_key: p.public_key.clone(),
                created_at_ms: now,
                ..Default::default()
            });
            if prev.is_none() {
                d.tokens.clear();
            }
            for r in &p.roles {
                if !d.roles.contains(r) {
                    d.roles.push(r.clone());
                }
            }
            d.role = Some(d.role.clone().unwrap_or(p.role.clone()));
            d.scopes = scopes::union(&d.scopes, &scopes_req);
            d.platform = p.platform.clone();
            d.device_family = p.device_family.clone();
            d.display_name = p.display_name.clone().or(d.display_name);
            d.client_id = p.client_id.clone();
            d.client_mode = p.client_mode.clone();
            d.remote_ip = p.remote_ip.clone();
            d.approved_via = "owner".into();
            d.approved_by = approved_by.clone();
            d.approved_at_ms = now;
            if label.is_some() {
                d.label = label.clone();
            }
            if label.is_some() {
                d.label = label.clone();
            }
            for role in &p.roles {
                let prev_tok = d.tokens.get(role).cloned();
                let role_scopes = if Role::parse(role) == Some(Role::Operator) {
                    scopes::normalize(&scopes_req)
                } else {
                    scopes::for_role(role, &scopes_req)
                };
                let tok_scopes = match &prev_tok {
                    Some(t) if t.revoked_at_ms.is_none() => scopes::union(&t.scopes, &role_scopes),
                    _ => role_scopes,
                };
                let (rec, _) = mint(&key, &d.device_id, role, tok_scopes, now, prev_tok.as_ref());
                d.tokens.insert(role.clone(), rec);
            }
            store::put_device(txn, &d)?;
            store::put_decided(
                txn,
                &DecidedRecord {
                    request_id: p.request_id.clone(),
                    device_id: p.device_id.clone(),
                    decision: "approved".into(),
                    decided_at_ms: now,
                    actor: audit.actor.clone(),
                },
            )?;
            store::append_audit(txn, &audit)?;
            Ok(Approved {
                request: p,
                device: d,
            })
        })
        .await
}

/// Rejects a pending request.
pub async fn reject(
    store: &Store,
    request_id: String,
    ttl_ms: u64,
    audit: AuditEvent,
) -> Result<PendingRecord, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            match store::delete_pending(txn, &request_id)? {
                Some(p) if p.expires_at(ttl_ms) > now => {
                    store::put_decided(
                        txn,
                        &DecidedRecord {
                            request_id: p.request_id.clone(),
                            device_id: p.device_id.clone(),
                            decision: "rejected".into(),
                            decided_at_ms: now,
                            actor: audit.actor.clone(),
                        },
                    )?;
                    store::append_audit(txn, &audit)?;
                    Ok(p)
                }
                _ => Err(decided_or_unknown(txn, &request_id)?),
            }
        })
        .await
}

/// `AlreadyDecided` when the request was decided before, else `UnknownRequest`.
fn decided_or_unknown(
    txn: &redb::WriteTransaction,
    request_id: &str,
) -> Result<PairingError, StoreError> {
    let table = txn.open_table(store::tables::DECIDED)?;
    let d: Option<DecidedRecord> = store::get_json(&table, request_id)?;
    Ok(match d {
        Some(d) => PairingError::AlreadyDecided(d),
        None => PairingError::UnknownRequest,
    })
}

/// Removes a paired device and its pending requests.
pub async fn remove(
    store: &Store,
    device_id: String,
    audit: AuditEvent,
) -> Result<DeviceRecord, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let d = store::delete_device(txn, &device_id)?.ok_or(PairingError::UnknownDevice)?;
            forget_device_in(txn, &device_id)?;
            store::append_audit(txn, &audit)?;
            Ok(d)
        })
        .await
}

/// What goes with a removed device: its upstream identity (a device that
/// pairs again gets a new one) and its pending requests.
fn forget_device_in(txn: &redb::WriteTransaction, device_id: &str) -> Result<(), PairingError> {
    store::delete_upstream_identity(txn, device_id)?;
    for p in store::pending_in(txn)?
        .into_iter()
        .filter(|p| p.device_id == device_id)
    {
        store::delete_pending(txn, &p.request_id)?;
    }
    Ok(())
}

/// What removing one role did to a device.
#[derive(Debug)]
pub enum RoleRemoval {
    /// The device keeps its other roles.
    Narrowed(DeviceRecord),
    /// That was its only role: the device is gone (as with `remove`).
    Deleted(DeviceRecord),
}

/// Removes `role` and its token from a device (OpenClaw's `node.pair.remove`);
/// a device left without a role is deleted.
pub async fn remove_role(
    store: &Store,
    device_id: String,
    role: Role,
    audit: AuditEvent,
) -> Result<RoleRemoval, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let mut d = store::device_in(txn, &device_id)?.ok_or(PairingError::UnknownDevice)?;
            if !d.roles.iter().any(|r| Role::parse(r) == Some(role)) {
                return Err(PairingError::UnknownRole(role.as_str().to_string()));
            }
            d.roles.retain(|r| Role::parse(r) != Some(role));
            let out = if d.roles.is_empty() {
                store::delete_device(txn, &device_id)?;
                forget_device_in(txn, &device_id)?;
                RoleRemoval::Deleted(d)
            } else {
                d.tokens.remove(role.as_str());
                if d.role.as_deref().and_then(Role::parse) == Some(role) {
                    d.role = d.roles.first().cloned();
                }
                store::put_device(txn, &d)?;
                RoleRemoval::Narrowed(d)
            };
            store::append_audit(txn, &audit)?;
            Ok(out)
        })
        .await
}

pub async fn rename(
    store: &Store,
    device_id: String,
    label: String,
    audit: AuditEvent,
) -> Result<DeviceRecord, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let mut d = store::device_in(txn, &device_id)?.ok_or(PairingError::UnknownDevice)?;
            d.label = Some(label);
            store::put_device(txn, &d)?;
            store::append_audit(txn, &audit)?;
            Ok(d)
        })
        .await
}

/// Rotates the token of (device, role). Returns the new record and token.
pub async fn rotate(
    store: &Store,
    key: [u8; 32],
    device_id: String,
    role: String,
    scopes_req: Option<Vec<String>>,
    audit: AuditEvent,
) -> Result<(TokenRecord, String), PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let mut d = store::device_in(txn, &device_id)?.ok_or(PairingError::UnknownDevice)?;
            let prev = d.tokens.get(&role).cloned();
            if prev.is_none() && !d.roles.contains(&role) {
                return Err(PairingError::UnknownRole(role));
            }
            let new_scopes = match scopes_req {
                Some(s) => {
                    let s = scopes::normalize(&s);
                    if !scopes::covers(&d.scopes, &s) {
                        return Err(PairingError::Invalid(
                            "scope-outside-approved-baseline".into(),
                        ));
                    }
                    s
                }
                None => prev.as_ref().map(|t| t.scopes.clone()).unwrap_or_else(|| {
                    if Role::parse(&role) == Some(Role::Operator) {
                        d.scopes.clone()
                    } else {
                        scopes::for_role(&role, &d.scopes)
                    }
                }),
            };
            let (rec, token) = mint(&key, &device_id, &role, new_scopes, now, prev.as_ref());
            d.tokens.insert(role.clone(), rec.clone());
            store::put_device(txn, &d)?;
            store::append_audit(txn, &audit)?;
            Ok((rec, token))
        })
        .await
}

pub async fn revoke(
    store: &Store,
    device_id: String,
    role: String,
    audit: AuditEvent,
) -> Result<u64, PairingError> {
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let mut d = store::device_in(txn, &device_id)?.ok_or(PairingError::UnknownDevice)?;
            let t = d
                .tokens
                .get_mut(&role)
                .ok_or_else(|| PairingError::UnknownRole(role.clone()))?;
            if t.revoked_at_ms.is_some() {
                return Err(PairingError::AlreadyRevoked(role.clone()));
            }
            t.revoked_at_ms = Some(now);
            store::put_device(txn, &d)?;
            store::append_audit(txn, &audit)?;
            Ok(now)
        })
        .await
}

/// Returns the device token for (device, role) covering `scopes`, reusing the
/// existing one when it covers them, minting a new one otherwise. `None` when
/// the requested scopes are outside the device's approved baseline.
pub async fn ensure_token(
    store: &Store,
    key: [u8; 32],
    device: &DeviceRecord,
    role: &str,
    requested: &[String],
) -> Result<Option<(String, u64)>, PairingError> {
    let baseline = if Role::parse(role) == Some(Role::Operator) {
        device.scopes.clone()
    } else {
        scopes::for_role(role, &device.scopes)
    };
    if !scopes::covers(&baseline, requested) && Role::parse(role) == Some(Role::Operator) {
        return Ok(None);
    }
    if let Some(t) = device.tokens.get(role) {
        if t.revoked_at_ms.is_none() && scopes::covers(&t.scopes, requested) {
            if let Some(tok) = token_string(&key, &device.device_id, t) {
                return Ok(Some((tok, t.rotated_at_ms.unwrap_or(t.created_at_ms))));
            }
        }
    }
    let device_id = device.device_id.clone();
    let role = role.to_string();
    let requested = requested.to_vec();
    let public_key = device.public_key.clone();
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let mut d = match store::device_in(txn, &device_id)? {
                Some(d) if d.public_key == public_key => d,
                _ => return Ok(None),
            };
            let prev = d.tokens.get(&role).cloned();
            let scopes_new = match &prev {
                Some(t) if t.revoked_at_ms.is_none() => scopes::union(&t.scopes, &requested),
                _ => scopes::normalize(&requested),
            };
            let prev_live = prev.filter(|t| t.revoked_at_ms.is_none());
            let (rec, token) = mint(&key, &device_id, &role, scopes_new, now, prev_live.as_ref());
            let issued = rec.rotated_at_ms.unwrap_or(rec.created_at_ms);
            d.tokens.insert(role.clone(), rec);
            store::put_device(txn, &d)?;
            Ok(Some((token, issued)))
        })
        .await
}

/// Result of checking a presented device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Ok { issued_at_ms: u64 },
    Mismatch,
    ScopeMismatch,
}

/// Verifies a device token for (device, role) and the requested scopes.
pub fn verify_token(
    device: Option<&DeviceRecord>,
    public_key: &str,
    role: &str,
    presented: &str,
    requested: &[String],
) -> TokenCheck {
    let Some(d) = device.filter(|d| d.public_key == public_key) else {
        return TokenCheck::Mismatch;
    };
    if !d.roles.iter().any(|r| r == role) {
        return TokenCheck::Mismatch;
    }
    let Some(t) = d.tokens.get(role) else {
        return TokenCheck::Mismatch;
    };
    if t.revoked_at_ms.is_some() {
        return TokenCheck::Mismatch;
    }
    let want = hex::decode(&t.digest)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    let Some(want) = want else {
        return TokenCheck::Mismatch;
    };
    if !super::auth::digest_eq(&want, &super::auth::sha256(presented)) {
        return TokenCheck::Mismatch;
    }
    if !scopes::covers(&t.scopes, requested) {
        return TokenCheck::ScopeMismatch;
    }
    TokenCheck::Ok {
        issued_at_ms: t.rotated_at_ms.unwrap_or(t.created_at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_tokens_are_stable_and_distinct() {
        let key = [7u8; 32];
        let a = derive_token(&key, "dev", "operator", b"salt");
        assert_eq!(a.len(), 43);
        assert_eq!(a, derive_token(&key, "dev", "operator", b"salt"));
        assert_ne!(a, derive_token(&key, "dev", "node", b"salt"));
        assert_ne!(a, derive_token(&[8u8; 32], "dev", "operator", b"salt"));
    }

    #[test]
    fn verify_token_rules() {
        let key = [1u8; 32];
        let (rec, tok) = mint(&key, "d", "operator", vec!["operator.read".into()], 5, None);
        let mut d = DeviceRecord {
            device_id: "d".into(),
            public_key: "pk".into(),
            roles: vec!["operator".into()],
            scopes: vec!["operator.read".into()],
            ..Default::default()
        };
        d.tokens.insert("operator".into(), rec.clone());
        let read = vec!["operator.read".to_string()];
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", &tok, &read),
            TokenCheck::Ok { issued_at_ms: 5 }
        );
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", "nope", &read),
            TokenCheck::Mismatch
        );
        assert_eq!(
            verify_token(Some(&d), "other", "operator", &tok, &read),
            TokenCheck::Mismatch
        );
        assert_eq!(
            verify_token(
                Some(&d),
                "pk",
                "operator",
                &tok,
                &["operator.admin".to_string()]
            ),
            TokenCheck::ScopeMismatch
        );
        assert_eq!(token_string(&key, "d", &rec).as_deref(), Some(tok.as_str()));
        d.tokens.get_mut("operator").unwrap().revoked_at_ms = Some(9);
        assert_eq!(
            verify_token(Some(&d), "pk", "operator", &tok, &read),
            TokenCheck::Mismatch
        );
    }

    #[test]
    fn pairing_reasons_keep_their_wire_strings() {
        for (r, wire) in [
            (PairingReason::NotPaired, "not-paired"),
            (PairingReason::RoleUpgrade, "role-upgrade"),
            (PairingReason::ScopeUpgrade, "scope-upgrade"),
            (PairingReason::MetadataUpgrade, "metadata-upgrade"),
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(wire));
            assert_eq!(r.to_string(), wire);
            assert_eq!(PairingReason::parse(wire), Some(r));
            assert!(r.wording().0.starts_with("pairing required: "));
        }
    }
}
