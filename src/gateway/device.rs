//! Device identity: Ed25519 keys, device ids and the v2/v3 signature payloads
//! (protocol §2.3–§2.5).

use base64::alphabet;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD_NO_PAD, URL_SAFE_NO_PAD,
};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

const LENIENT_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410).
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Decodes a public key given as raw base64url, standard/padded base64, or an
/// SPKI PEM, to its 32 raw bytes.
pub fn decode_public_key(input: &str) -> Option<[u8; 32]> {
    if input.len() > 4096 {
        return None;
    }
    let t = input.trim();
    if t.starts_with("-----BEGIN") {
        let body: String = t
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .ok()?;
        if der.len() == 44 && der[..12] == SPKI_ED25519_PREFIX {
            return der[12..].try_into().ok();
        }
        return None;
    }
    // Map the standard alphabet to the URL-safe one and decode leniently.
    let mapped: String = t
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = LENIENT_URL.decode(mapped.as_bytes()).ok()?;
    let raw: [u8; 32] = match bytes.len() {
        32 => bytes.try_into().ok()?,
        44 if bytes[..12] == SPKI_ED25519_PREFIX => bytes[12..].try_into().ok()?,
        _ => return None,
    };
    Some(raw)
}

/// The normalized (raw base64url) form of a public key.
pub fn normalize_public_key(raw: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// Device id = lowercase hex SHA-256 of the raw public key.
pub fn device_id(raw: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// A short human fingerprint of a device id (`56475aa7-5463474c`).
pub fn fingerprint(device_id: &str) -> String {
    let d = device_id.get(..16).unwrap_or(device_id);
    format!("{}-{}", &d[..d.len().min(8)], d.get(8..).unwrap_or(""))
}

fn norm_meta(s: &str) -> String {
    s.trim().chars().map(|c| c.to_ascii_lowercase()).collect()
}

pub struct PayloadFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: u64,
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: &'a str,
    pub device_family: &'a str,
}

pub fn payload_v2(f: &PayloadFields<'_>) -> String {
    format!(
        "v2|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce
    )
}

pub fn payload_v3(f: &PayloadFields<'_>) -> String {
    format!(
        "{}|{}|{}",
        payload_v2(f).replacen("v2|", "v3|", 1),
        norm_meta(f.platform),
        norm_meta(f.device_family)
    )
}

/// Decodes a base64url (lenient padding; standard alphabet accepted) signature.
pub fn decode_signature(sig: &str) -> Option<Signature> {
    let mapped: String = sig
        .trim()
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = LENIENT_URL
        .decode(mapped.as_bytes())
        .or_else(|_| STANDARD_NO_PAD.decode(sig.trim()))
        .ok()?;
    let arr: [u8; 64] = bytes.try_into().ok()?;
    Some(Signature::from_bytes(&arr))
}

/// Which payload version verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    V3,
    V2,
}

/// Verifies `signature` over the v3 payload, then the v2 payload.
pub fn verify(
    key: &VerifyingKey,
    sig: &Signature,
    f: &PayloadFields<'_>,
) -> Option<PayloadVersion> {
    if key.is_weak() {
        return None;
    }
    if key.verify_strict(payload_v3(f).as_bytes(), sig).is_ok() {
        return Some(PayloadVersion::V3);
    }
    if key.verify_strict(payload_v2(f).as_bytes(), sig).is_ok() {
        return Some(PayloadVersion::V2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPES: &[&str] = &[
        "operator.admin",
        "operator.read",
        "operator.write",
        "operator.approvals",
        "operator.pairing",
    ];
    const NONCE: &str = "3f2c6a4e-8d1b-4c2e-9f0a-1b2c3d4e5f60";

    fn vector_key() -> VerifyingKey {
        let raw = decode_public_key("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg").unwrap();
        VerifyingKey::from_bytes(&raw).unwrap()
    }

    #[test]
    fn protocol_vector_device_id() {
        let raw = decode_public_key("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg").unwrap();
        assert_eq!(
            device_id(&raw),
            "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
        );
        // The seed 0..31 gives this key.
        let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        assert_eq!(sk.verifying_key().to_bytes(), raw);
    }

    #[test]
    fn protocol_vector_v3_signature() {
        let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
        let id = "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c";
        let f = PayloadFields {
            device_id: id,
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1760000000000,
            token: "shared-secret-token",
            nonce: NONCE,
            platform: "linux",
            device_family: "",
        };
        assert_eq!(
            payload_v3(&f),
            format!("v3|{id}|cli|cli|operator|operator.admin,operator.read,operator.write,operator.approvals,operator.pairing|1760000000000|shared-secret-token|{NONCE}|linux|")
        );
        let sig = decode_signature("M4Z-F8PzOvKBjm8eKDKkC4vn3Smu5ynDSq9JRrIlGbMN1fNdb4oO6PLIc5boytQNYtHYYDBJQzGKxawCE2HhAQ").unwrap();
        assert_eq!(verify(&vector_key(), &sig, &f), Some(PayloadVersion::V3));
        // Any change to a signed field breaks it.
        let g = PayloadFields {
            platform: "darwin",
            ..f
        };
        assert_eq!(verify(&vector_key(), &sig, &g), None);
    }

    #[test]
    fn protocol_vector_v2_signature() {
        let scopes: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
        let f = PayloadFields {
            device_id: "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c",
            client_id: "openclaw-control-ui",
            client_mode: "webchat",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1760000000000,
            token: "shared-secret-token",
            nonce: NONCE,
            platform: "whatever",
            device_family: "",
        };
        let sig = decode_signature("ROM7XqJEgHwlOuYKqi2rNMEKmtdgt4Je25iHUj_UaN3-6oPuwIAtFhs-X60FE8-Fz5oaPj7I58GHHYkgksh2Cg").unwrap();
        assert_eq!(verify(&vector_key(), &sig, &f), Some(PayloadVersion::V2));
    }

    #[test]
    fn upstream_payload_vectors_and_unicode_lowercasing() {
        let s1: Vec<String> = vec!["operator.admin".into(), "operator.read".into()];
        let f = PayloadFields {
            device_id: "dev-1",
            client_id: "openclaw-macos",
            client_mode: "ui",
            role: "operator",
            scopes: &s1,
            signed_at_ms: 1700000000000,
            token: "",
            nonce: "nonce-abc",
            platform: "",
            device_family: "",
        };
        assert_eq!(payload_v2(&f), "v2|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000||nonce-abc");
        let s2: Vec<String> = vec!["operator.read".into()];
        let f = PayloadFields {
            device_id: "dev-2",
            client_id: "openclaw-ios",
            client_mode: "ui",
            scopes: &s2,
            signed_at_ms: 1700000000001,
            nonce: "nonce-def",
            ..f
        };
        assert_eq!(
            payload_v3(&f),
            "v3|dev-2|openclaw-ios|ui|operator|operator.read|1700000000001||nonce-def||"
        );
        assert_eq!(norm_meta("  İOS  "), "İos");
    }

    #[test]
    fn public_key_encodings() {
        let raw = decode_public_key("A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg").unwrap();
        let std_b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(decode_public_key(&std_b64), Some(raw));
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        assert_eq!(decode_public_key(&pem), Some(raw));
        assert_eq!(
            normalize_public_key(&raw),
            "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
        );
        assert_eq!(decode_public_key("not base64!"), None);
        assert_eq!(decode_public_key("AAAA"), None);
    }
}
