//! Stored records. Values are versioned byte blobs: one version byte followed by
//! JSON, so the encoding never depends on redb's own type encodings.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

pub const RECORD_V1: u8 = 1;

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![RECORD_V1];
    serde_json::to_writer(&mut out, v).expect("records serialize");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => {
            serde_json::from_slice(rest).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
        }
        Some((v, _)) => Err(StoreError::Corrupt(format!("unknown record version {v}"))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

/// A device token: only its SHA-256 digest is stored (plus the salt the token is
/// derived from with the server's token key; see `gateway::tokens`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub role: String,
    pub scopes: Vec<String>,
    /// hex SHA-256 of the token string.
    pub digest: String,
    /// base64url salt the token was derived from.
    pub salt: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    pub device_id: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Operator-set label (rename).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
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
    pub roles: Vec<String>,
    /// Approved scopes (normalized).
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    pub approved_via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    pub created_at_ms: u64,
    pub approved_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ip: Option<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenRecord>,
}

/// A pending pairing request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingRecord {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
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
    pub client_version: Option<String>,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Attributed client address (omitted for direct local clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
    /// The key used for per-client caps (the resolved client address).
    pub client_key: String,
    pub peer_ip: String,
    pub silent: bool,
    pub is_repair: bool,
    pub reason: String,
    pub ts: u64,
    pub refreshed_at_ms: u64,
    #[serde(default)]
    pub attempts: u32,
}

impl PendingRecord {
    pub fn expires_at(&self, ttl_ms: u64) -> u64 {
        self.refreshed_at_ms.max(self.ts) + ttl_ms
    }
}

/// A pairing request that was decided (kept so a second decision gets 409).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DecidedRecord {
    pub request_id: String,
    pub device_id: String,
    /// `approved` or `rejected`.
    pub decision: String,
    pub decided_at_ms: u64,
    pub actor: String,
}

/// One audit event (append-only; never holds a secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    #[serde(default)]
    pub seq: u64,
    pub ts: u64,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A minted admin token: its digest and metadata (the token itself is never stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdminTokenRecord {
    pub jti: String,
    /// SHA-256 (hex) of the whole token. Empty for the admin JWTs of older
    /// versions, which no longer authenticate.
    #[serde(default)]
    pub digest: String,
    pub label: String,
    pub scopes: Vec<String>,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    pub created_by: String,
}

/// A runtime config override written by the admin API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRecord {
    pub key: String,
    pub value: serde_json::Value,
    pub set_by: String,
    pub set_at_ms: u64,
}
