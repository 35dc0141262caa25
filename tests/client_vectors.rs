//! Checks the test client's signing code against protocol.md §2.4.

mod common;

use common::client::{normalize_meta, payload_v2, payload_v3, ConnectOpts, DeviceIdentity};

const DEVICE_ID: &str = "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c";
const NONCE: &str = "3f2c6a4e-8d1b-4c2e-9f0a-1b2c3d4e5f60";
const TOKEN: &str = "shared-secret-token";
const SIGNED_AT: u64 = 1760000000000;

fn vector_identity() -> DeviceIdentity {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    DeviceIdentity::from_seed(seed)
}

fn vector_scopes() -> Vec<String> {
    [
        "operator.admin",
        "operator.read",
        "operator.write",
        "operator.approvals",
        "operator.pairing",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn identity_from_seed_matches_vector() {
    let id = vector_identity();
    assert_eq!(id.public_key, "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg");
    assert_eq!(id.device_id, DEVICE_ID);
}

#[test]
fn v3_payload_and_signature_match_vector() {
    let id = vector_identity();
    let payload = payload_v3(
        &id.device_id,
        "cli",
        "cli",
        "operator",
        &vector_scopes(),
        SIGNED_AT,
        TOKEN,
        NONCE,
        "linux",
        "",
    );
    assert_eq!(
        payload,
        format!(
            "v3|{DEVICE_ID}|cli|cli|operator|operator.admin,operator.read,operator.write,operator.approvals,operator.pairing|1760000000000|shared-secret-token|{NONCE}|linux|"
        )
    );
    assert_eq!(
        id.sign(&payload),
        "M4Z-F8PzOvKBjm8eKDKkC4vn3Smu5ynDSq9JRrIlGbMN1fNdb4oO6PLIc5boytQNYtHYYDBJQzGKxawCE2HhAQ"
    );
}

#[test]
fn v2_payload_and_signature_match_vector() {
    let id = vector_identity();
    let payload = payload_v2(
        &id.device_id,
        "openclaw-control-ui",
        "webchat",
        "operator",
        &vector_scopes(),
        SIGNED_AT,
        TOKEN,
        NONCE,
    );
    assert_eq!(
        payload,
        format!(
            "v2|{DEVICE_ID}|openclaw-control-ui|webchat|operator|operator.admin,operator.read,operator.write,operator.approvals,operator.pairing|1760000000000|shared-secret-token|{NONCE}"
        )
    );
    assert_eq!(
        id.sign(&payload),
        "ROM7XqJEgHwlOuYKqi2rNMEKmtdgt4Je25iHUj_UaN3-6oPuwIAtFhs-X60FE8-Fz5oaPj7I58GHHYkgksh2Cg"
    );
}

#[test]
fn upstream_unit_payload_shapes() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        payload_v2(
            "dev-1",
            "openclaw-macos",
            "ui",
            "operator",
            &s(&["operator.admin", "operator.read"]),
            1700000000000,
            "",
            "nonce-abc"
        ),
        "v2|dev-1|openclaw-macos|ui|operator|operator.admin,operator.read|1700000000000||nonce-abc"
    );
    assert_eq!(
        payload_v3(
            "dev-2",
            "openclaw-ios",
            "ui",
            "operator",
            &s(&["operator.read"]),
            1700000000001,
            "",
            "nonce-def",
            "",
            ""
        ),
        "v3|dev-2|openclaw-ios|ui|operator|operator.read|1700000000001||nonce-def||"
    );
    // empty scopes -> empty field
    assert_eq!(
        payload_v2("d", "cli", "cli", "operator", &[], 1, "t", "n"),
        "v2|d|cli|cli|operator||1|t|n"
    );
}

#[test]
fn v3_metadata_is_trimmed_and_ascii_lowercased() {
    assert_eq!(normalize_meta("  İOS  "), "İos");
    assert_eq!(normalize_meta(" Linux\t"), "linux");
    let p = payload_v3(
        "d",
        "cli",
        "cli",
        "operator",
        &[],
        1,
        "",
        "n",
        " Darwin ",
        "MacBookPro",
    );
    assert!(p.ends_with("|n|darwin|macbookpro"), "{p}");
}

#[test]
fn signature_token_precedence() {
    let mut o = ConnectOpts::default();
    assert_eq!(o.signature_token(), "");
    o.device_token = Some("dt".into());
    assert_eq!(o.signature_token(), "dt");
    o.token = Some("tok".into());
    assert_eq!(o.signature_token(), "tok");
    o.token = None;
    o.password = Some("pw".into());
    assert_eq!(o.signature_token(), "dt");
}

#[test]
fn generated_identities_are_consistent() {
    let a = DeviceIdentity::generate();
    let b = DeviceIdentity::generate();
    assert_ne!(a.device_id, b.device_id);
    assert_eq!(a.device_id.len(), 64);
    assert_eq!(a.public_key.len(), 43);
    let again = DeviceIdentity::from_seed(a.signing_key.to_bytes());
    assert_eq!(again.device_id, a.device_id);
    assert_eq!(again.sign("x"), a.sign("x"));
    assert_eq!(a.sign("x").len(), 86);
}
