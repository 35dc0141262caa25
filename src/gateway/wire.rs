//! OpenClaw's pairing records as they go over the wire (`device.pair.list`,
//! `device.pair.requested`), built from the stored records. The admin API's
//! device form (`admin::dto::Device`) extends [`PairedDevice`].

use serde::{Deserialize, Serialize};

use crate::store::{DeviceRecord, PendingRecord, TokenRecord};

/// A pending request as OpenClaw publishes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingPairing {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub silent: bool,
    pub is_repair: bool,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
}

impl PendingPairing {
    pub fn of(p: &PendingRecord) -> Self {
        PendingPairing {
            request_id: p.request_id.clone(),
            device_id: p.device_id.clone(),
            public_key: p.public_key.clone(),
            role: p.role.clone(),
            roles: p.roles.clone(),
            scopes: p.scopes.clone(),
            silent: p.silent,
            is_repair: p.is_repair,
            ts: p.ts,
            display_name: p.display_name.clone(),
            platform: p.platform.clone(),
            device_family: p.device_family.clone(),
            client_id: p.client_id.clone(),
            client_mode: p.client_mode.clone(),
            remote_ip: p.remote_ip.clone(),
        }
    }
}

/// A role's device token, without token material.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenSummary {
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
}

impl TokenSummary {
    pub fn of(t: &TokenRecord) -> Self {
        TokenSummary {
            role: t.role.clone(),
            scopes: t.scopes.clone(),
            created_at_ms: t.created_at_ms,
            rotated_at_ms: t.rotated_at_ms,
            revoked_at_ms: t.revoked_at_ms,
            last_used_at_ms: t.last_used_at_ms,
        }
    }
}

/// A paired device as OpenClaw lists it, redacted (no token material).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub approved_via: String,
    pub created_at_ms: u64,
    pub approved_at_ms: u64,
    pub tokens: Vec<TokenSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The operator-set label (rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
}

impl PairedDevice {
    pub fn of(d: &DeviceRecord, connected: Option<bool>) -> Self {
        PairedDevice {
            device_id: d.device_id.clone(),
            public_key: d.public_key.clone(),
            roles: d.roles.clone(),
            scopes: d.scopes.clone(),
            approved_via: d.approved_via.clone(),
            created_at_ms: d.created_at_ms,
            approved_at_ms: d.approved_at_ms,
            tokens: d.tokens.values().map(TokenSummary::of).collect(),
            display_name: d.display_name.clone(),
            operator_label: d.label.clone(),
            platform: d.platform.clone(),
            device_family: d.device_family.clone(),
            client_id: d.client_id.clone(),
            client_mode: d.client_mode.clone(),
            role: d.role.clone(),
            remote_ip: d.remote_ip.clone(),
            last_seen_reason: d.last_seen_reason.clone(),
            last_seen_at_ms: d.last_seen_at_ms,
            connected,
        }
    }
}
