//! The admin API's request and response bodies, as types shared by the
//! server (which serializes responses and reads bodies) and the client side
//! (the CLI, doctor, tests and benchmarks, which read responses). Request
//! bodies refuse unknown fields; responses keep their wire names through
//! `rename_all = "camelCase"`.

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::gateway::wire::{PairedDevice, PendingPairing, TokenSummary};

// ---------------------------------------------------------------- errors

/// An RFC 9457 problem, as every admin error answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// The stable machine code (the error-code table in `admin/error.rs`).
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<serde_json::Value>,
}

// ---------------------------------------------------------------- request bodies

/// A request body: its fields (for the unknown-field refusal, which names
/// them) and an example (the refusal's hint).
pub trait Body: for<'de> Deserialize<'de> {
    const FIELDS: &'static [&'static str];
    const EXAMPLE: &'static str;
}

macro_rules! body {
    ($t:ty, [$($f:literal),*], $example:literal) => {
        impl Body for $t {
            const FIELDS: &'static [&'static str] = &[$($f),*];
            const EXAMPLE: &'static str = $example;
        }
    };
}

/// `POST /pairing/requests/{id}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApproveBody {
    /// Narrower scopes than the device asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
body!(
    ApproveBody,
    ["scopes", "label"],
    r#"{"scopes": ["operator.read"], "label": "laptop"}"#
);

/// A body with no fields (`reject`, `config/reload`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}
body!(EmptyBody, [], "{}");

/// `PATCH /devices/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenameBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
body!(RenameBody, ["label"], r#"{"label": "laptop"}"#);

/// `POST /devices/{id}/tokens/{role}/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateDeviceTokenBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}
body!(
    RotateDeviceTokenBody,
    ["scopes"],
    r#"{"scopes": ["operator.read"]}"#
);

/// `POST /gateway/token/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateGatewayTokenBody {
    #[serde(
        default,
        deserialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_seconds: Option<u64>,
}
body!(
    RotateGatewayTokenBody,
    ["graceSeconds"],
    r#"{"graceSeconds": 300}"#
);

/// `POST /tokens` (mint an admin token).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MintTokenBody {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "whole_seconds",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
body!(
    MintTokenBody,
    ["scopes", "ttlSeconds", "label"],
    r#"{"scopes": ["pairing:read"], "ttlSeconds": 3600, "label": "dashboard"}"#
);

/// `PUT /trusted-proxies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxiesBody {
    #[serde(default)]
    pub entries: Option<Vec<String>>,
}
body!(
    ProxiesBody,
    ["entries"],
    r#"{"entries": ["172.17.0.0/16"]}"#
);

/// `POST /trusted-proxies`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyEntryBody {
    #[serde(default)]
    pub entry: Option<String>,
}
body!(ProxyEntryBody, ["entry"], r#"{"entry": "172.17.0.1"}"#);

/// A whole, non-negative JSON number of seconds (`60`, `60.0` and `6e1` alike).
fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Number>::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{n} is not a whole number of seconds"))
            }),
    }
}

// ---------------------------------------------------------------- pairing requests

/// The client a pending request came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestClient {
    pub id: Option<String>,
    pub version: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub mode: Option<String>,
    pub display_name: Option<String>,
}

/// A pending pairing request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    /// Always `pending`.
    pub status: String,
    pub device_id: String,
    pub fingerprint: String,
    pub public_key: String,
    pub client: RequestClient,
    pub role: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub reason: String,
    pub is_repair: bool,
    pub is_upgrade: bool,
    pub peer_address: String,
    pub client_address: String,
    pub first_seen_at_ms: u64,
    pub last_seen_at_ms: u64,
    pub expires_at_ms: u64,
    pub attempts: u32,
}

/// A decided pairing request (kept so a second decision gets 409).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DecidedRequest {
    pub request_id: String,
    /// `approved` or `rejected`.
    pub status: String,
    pub device_id: String,
    pub fingerprint: String,
    pub decided_at_ms: u64,
    pub decided_by: String,
}

/// A pairing request in a list: pending or decided.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum RequestEntry {
    Pending(Box<PendingRequest>),
    Decided(DecidedRequest),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestList {
    pub requests: Vec<RequestEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Approved {
    pub request_id: String,
    /// `approved`.
    pub status: String,
    pub device: Box<Device>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub request_id: String,
    /// `rejected`.
    pub status: String,
    pub device_id: String,
}

// ---------------------------------------------------------------- devices

/// The admin form of a device: OpenClaw's record plus admin fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(flatten)]
    pub paired: PairedDevice,
    pub fingerprint: String,
    pub label: Option<String>,
    pub approved_by: Option<String>,
    pub paired_at_ms: u64,
    pub last_seen_address: Option<String>,
    pub connected_sessions: usize,
    /// Front-door mode, a node, `GET /admin/v1/devices/{id}` only: how the
    /// upstream sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamNode>,
}

/// A node as the upstream gateway knows it (its command surface is the
/// upstream's to approve: `openclaw nodes pending|approve`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamNode {
    /// The device id the upstream knows the node by (clawgate's identity for it).
    pub node_id: Option<String>,
    /// The upstream's `approvalState`: `approved`, `pending-approval`,
    /// `pending-reapproval`, `unapproved`; `unknown` when the upstream has
    /// not seen it yet.
    pub approval_state: Option<String>,
    pub connected: Option<bool>,
    pub pending_request_id: Option<String>,
    /// Why the upstream could not be asked.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceList {
    pub devices: Vec<Device>,
    /// The cursor of the next page (`?after=`), when there is one.
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    pub device_id: String,
    pub removed: bool,
    pub closed_sessions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceTokenRotated {
    pub device_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub rotated_at_ms: u64,
    /// `withheld`: the new token reaches the device at its next connect.
    pub token_delivery: String,
    pub closed_sessions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceTokenRevoked {
    pub device_id: String,
    pub role: String,
    pub revoked_at_ms: u64,
    pub closed_sessions: usize,
}

// ---------------------------------------------------------------- gateway token, proxies

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTokenRotated {
    /// The new shared token, shown once.
    pub token: String,
    pub grace_seconds: u64,
    pub previous_valid_until: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxyList {
    pub entries: Vec<String>,
}

/// The answer to a trusted-proxy edit (or its dry run).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxyChange {
    pub entries: Vec<String>,
    pub applied: bool,
    pub changed: bool,
}

// ---------------------------------------------------------------- sessions, audit, rejections

/// A live authenticated gateway session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub conn_id: String,
    pub device_id: Option<String>,
    pub fingerprint: Option<String>,
    pub role: String,
    pub scopes: Vec<String>,
    pub auth_method: String,
    /// Trusted-proxy mode: the user the proxy vouched for.
    #[serde(default)]
    pub user: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub peer_address: String,
    pub client_address: String,
    pub connected_at_ms: u64,
    /// Front-door mode: the session continues on the upstream gateway.
    pub bridged: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionClosed {
    pub conn_id: String,
    pub closed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<crate::store::AuditEvent>,
    /// The `after` of the next page.
    pub next: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardedHeader {
    pub name: String,
    pub value: String,
}

/// A refused connection (the rejection log).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub ts: u64,
    pub peer_address: String,
    pub client_address: String,
    pub forwarded_headers: Vec<ForwardedHeader>,
    pub reason: String,
    pub hint: String,
    /// The browser's `Origin`, when the request had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RejectionList {
    pub rejections: Vec<Rejection>,
}

// ---------------------------------------------------------------- admin tokens

/// A minted admin token's metadata (never its digest).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AdminToken {
    pub jti: String,
    pub label: String,
    pub scopes: Vec<String>,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    pub created_by: String,
    /// The token itself: only in the answer to the mint, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl AdminToken {
    pub fn of(r: &crate::store::AdminTokenRecord) -> Self {
        AdminToken {
            jti: r.jti.clone(),
            label: r.label.clone(),
            scopes: r.scopes.clone(),
            issued_at_ms: r.issued_at_ms,
            expires_at_ms: r.expires_at_ms,
            revoked_at_ms: r.revoked_at_ms,
            created_by: r.created_by.clone(),
            token: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdminTokenList {
    pub tokens: Vec<AdminToken>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_match<T: Body + Default + Serialize>() {
        // Every listed field is one serde accepts, and no other is.
        for f in T::FIELDS {
            let v = json!({ *f: null });
            assert!(serde_json::from_value::<T>(v).is_ok(), "{f}");
        }
        assert!(serde_json::from_value::<T>(json!({"surelyNotAField": 1})).is_err());
        assert!(
            serde_json::from_str::<T>(T::EXAMPLE).is_ok(),
            "{}",
            T::EXAMPLE
        );
    }

    #[test]
    fn body_field_lists_agree_with_serde() {
        fields_match::<ApproveBody>();
        fields_match::<EmptyBody>();
        fields_match::<RenameBody>();
        fields_match::<RotateDeviceTokenBody>();
        fields_match::<RotateGatewayTokenBody>();
        fields_match::<MintTokenBody>();
        fields_match::<ProxiesBody>();
        fields_match::<ProxyEntryBody>();
    }

    #[test]
    fn seconds_are_whole_numbers() {
        let g = |v| serde_json::from_value::<RotateGatewayTokenBody>(v).map(|b| b.grace_seconds);
        assert_eq!(g(json!({"graceSeconds": 60})).unwrap(), Some(60));
        assert_eq!(g(json!({"graceSeconds": 60.0})).unwrap(), Some(60));
        assert_eq!(g(json!({"graceSeconds": 6e1})).unwrap(), Some(60));
        assert_eq!(g(json!({})).unwrap(), None);
        assert!(g(json!({"graceSeconds": -1})).is_err());
        assert!(g(json!({"graceSeconds": 1.5})).is_err());
        assert!(g(json!({"graceSeconds": "60"})).is_err());
    }

    #[test]
    fn request_entries_tell_pending_from_decided() {
        let decided = DecidedRequest {
            request_id: "r".into(),
            status: "approved".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(RequestEntry::Decided(decided.clone())).unwrap();
        assert_eq!(
            serde_json::from_value::<RequestEntry>(v).unwrap(),
            RequestEntry::Decided(decided)
        );
        let pending = PendingRequest {
            request_id: "p".into(),
            status: "pending".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(RequestEntry::Pending(Box::new(pending.clone()))).unwrap();
        assert_eq!(
            serde_json::from_value::<RequestEntry>(v).unwrap(),
            RequestEntry::Pending(Box::new(pending))
        );
    }
}
