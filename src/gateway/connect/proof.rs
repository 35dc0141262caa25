//! The device proof (protocol §2.5): the public key, the id derived from
//! it, the signature's age, the challenge nonce and the Ed25519 signature
//! over the v2/v3 payload.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::params::Params;
use super::reject::{device_error, DeviceProof, Rejection};
use crate::gateway::device::{self, PayloadFields};
use crate::gateway::scopes::Role;
use crate::gateway::GatewayState;

/// A device that proved it holds its key.
pub(super) struct Proven {
    pub device_id: String,
    /// The public key, normalised (base64url, no padding).
    pub public_key: String,
}

/// The proof of the connect's device, if it names one.
pub(super) fn verify(
    state: &Arc<GatewayState>,
    p: &Params<'_>,
    role: Role,
    nonce: &str,
    now: u64,
) -> Result<Option<Proven>, Rejection> {
    p.device
        .map(|d| verify_device(state, p, d, role, nonce, now))
        .transpose()
}

fn verify_device(
    state: &Arc<GatewayState>,
    p: &Params<'_>,
    d: &Map<String, Value>,
    role: Role,
    nonce: &str,
    now: u64,
) -> Result<Proven, Rejection> {
    let dstr = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let Some(raw_key) = device::decode_public_key(dstr("publicKey")) else {
        return Err(device_error(DeviceProof::PublicKeyInvalid));
    };
    let device_id = device::device_id(&raw_key);
    if device_id != dstr("id") {
        return Err(device_error(DeviceProof::IdMismatch));
    }
    let signed_at = d.get("signedAt").and_then(Value::as_u64).unwrap_or(0);
    if now.abs_diff(signed_at) > 120_000 {
        return Err(device_error(DeviceProof::SignatureExpired));
    }
    let dev_nonce = dstr("nonce").trim();
    if dev_nonce.is_empty() {
        return Err(device_error(DeviceProof::NonceRequired));
    }
    if dev_nonce != nonce {
        return Err(device_error(DeviceProof::NonceMismatch));
    }
    let Some(vk) = state.verifying_key(&raw_key) else {
        return Err(device_error(DeviceProof::PublicKeyInvalid));
    };
    let sig_token = p.presented.signature_token();
    let fields = PayloadFields {
        device_id: &device_id,
        client_id: p.client_id,
        client_mode: p.client_mode,
        role: role.as_str(),
        scopes: &p.scopes,
        signed_at_ms: signed_at,
        token: sig_token,
        nonce,
        platform: p.client_platform,
        device_family: p.device_family.unwrap_or(""),
    };
    let verified = device::decode_signature(dstr("signature"))
        .and_then(|sig| device::verify(&vk, &sig, &fields));
    if verified.is_none() {
        return Err(device_error(DeviceProof::SignatureInvalid));
    }
    Ok(Proven {
        device_id,
        public_key: device::normalize_public_key(&raw_key),
    })
}
