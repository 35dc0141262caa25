//! Integration tests: the real server on port 0, driven by a Rust WebSocket client.

mod common;

use std::time::Duration;

use common::client::{Conn, ConnectOpts, DeviceIdentity, OpenError, SigVersion};
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(5);
const REMOTE: &[(&str, &str)] = &[("X-Forwarded-For", "203.0.113.7")];

async fn open(srv: &TestServer) -> Conn {
    Conn::open(&srv.url, &[]).await.expect("open")
}

async fn open_remote(srv: &TestServer) -> Conn {
    Conn::open(&srv.url, REMOTE).await.expect("open remote")
}

/// A server trusting 127.0.0.1 as a proxy, so `X-Forwarded-For` makes clients remote.
async fn proxied_server() -> TestServer {
    TestServer::start(config_with(json!({"trustedProxies": ["127.0.0.1"]}))).await
}

/// A node host's connect (shared token, role node, no scopes) for `dev`.
fn node_opts(dev: &DeviceIdentity) -> ConnectOpts {
    ConnectOpts::with_token(TOKEN)
        .client("node-host", "node")
        .role("node")
        .scopes(&[])
        .device(dev)
}

/// The rejection log's latest record with `reason` (panics when there is none).
async fn rejection(srv: &TestServer, reason: &str) -> Value {
    let log = srv
        .admin()
        .get("/admin/v1/diagnostics/rejections")
        .await
        .json();
    log["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["reason"] == reason)
        .cloned()
        .unwrap_or_else(|| panic!("no {reason} in {log}"))
}

/// An operator session with operator.pairing over the shared token (local CLI, no device).
async fn pairing_operator(srv: &TestServer) -> Conn {
    let mut c = open(srv).await;
    c.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.pairing", "operator.admin"]))
        .await
        .expect("operator connects");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_then_hello_for_local_token_client() {
    let srv = TestServer::default().await;
    let mut c = open(&srv).await;
    assert!(c.challenge["nonce"].as_str().is_some_and(|n| n.len() == 36));
    assert!(c.challenge["ts"].as_u64().is_some());
    assert_eq!(
        c.challenge["capabilities"],
        json!(["model-catalog-snapshot"])
    );
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("hello");
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    assert_eq!(hello["auth"]["method"], "token");
    assert_eq!(hello["auth"]["role"], "operator");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    assert!(
        hello["auth"].get("deviceToken").is_none(),
        "no token without a device"
    );
    assert_eq!(hello["policy"]["tickIntervalMs"], 30000);
    assert_eq!(hello["policy"]["maxPayload"], 26214400);
    assert_eq!(hello["server"]["controlUiBuildSource"], "configured");
    assert_eq!(hello["snapshot"]["authMode"], "token");
    let methods: Vec<&str> = hello["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for m in [
        "health",
        "device.pair.list",
        "device.pair.approve",
        "device.token.rotate",
        "device.token.revoke",
    ] {
        assert!(methods.contains(&m), "{m} advertised");
    }
    assert!(!methods.contains(&"connect"));
    let health = c.rpc("health", json!({})).await.expect("health");
    assert_eq!(health["ok"], true);
    // unknown method keeps the session open
    let e = c.rpc("nope.method", json!({})).await.unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST");
    let m = e["message"].as_str().unwrap();
    assert!(m.starts_with("unknown method: nope.method ("), "{e}");
    assert!(m.contains("set upstream.url"), "{e}");
    // node.* says what it needs
    let e = c.rpc("node.list", json!({})).await.unwrap_err();
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("node.list needs an OpenClaw gateway behind clawgate"),
        "{e}"
    );
    // a second connect is refused, session stays
    let e = c.rpc("connect", json!({})).await.unwrap_err();
    assert_eq!(e["message"], "connect is only valid as the first request");
    assert!(c.rpc("health", json!({})).await.is_ok());
    // a scoped method without the scope
    let e = c.rpc("device.pair.list", json!({})).await.unwrap_err();
    assert_eq!(e["code"], "FORBIDDEN");
    assert_eq!(e["message"], "missing scope: operator.pairing");
    assert_eq!(e["details"]["code"], "MISSING_SCOPE");
    assert_eq!(e["details"]["missingScope"], "operator.pairing");
    c.close().await;
    assert_eq!(srv.wait_live(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_match_the_reference() {
    let srv = TestServer::default().await;
    // wrong token, no device
    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token("wrong-token"))
        .await
        .unwrap_err();
    let msg = "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)";
    assert_eq!(f.code(), Some("INVALID_REQUEST"));
    assert_eq!(f.message(), Some(msg));
    let e = f.error.as_ref().unwrap();
    assert_eq!(
        e["details"],
        json!({"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch", "canRetryWithDeviceToken": false, "recommendedNextStep": "update_auth_credentials"})
    );
    assert_eq!(f.close, Some((1008, msg.to_string())));

    // missing token, device present
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::default().device(&dev))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_TOKEN_MISSING"));
    assert_eq!(f.message(), Some("unauthorized: gateway token missing (use this gateway's gateway.auth.token or pair the device)"));
    assert_eq!(
        f.error.as_ref().unwrap()["details"]["recommendedNextStep"],
        "update_auth_configuration"
    );
    assert_eq!(f.close_code(), Some(1008));

    // wrong token with a device: may retry with a device token
    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token("wrong-token").device(&dev))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_TOKEN_MISMATCH"));
    assert_eq!(
        f.error.as_ref().unwrap()["details"]["canRetryWithDeviceToken"],
        true
    );
    assert_eq!(
        f.error.as_ref().unwrap()["details"]["recommendedNextStep"],
        "retry_with_device_token"
    );

    // no token, no device
    let mut c = open(&srv).await;
    let f = c.connect(&ConnectOpts::default()).await.unwrap_err();
    assert_eq!(f.code(), Some("NOT_PAIRED"));
    assert_eq!(f.message(), Some("device identity required"));
    assert_eq!(f.detail_code(), Some("DEVICE_IDENTITY_REQUIRED"));
    assert_eq!(f.close, Some((1008, "device identity required".into())));

    // explicit device token that does not match
    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::default().device(&dev).device_token("bogus"))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_DEVICE_TOKEN_MISMATCH"));
    assert_eq!(
        f.message(),
        Some("unauthorized: device token mismatch (rotate/reissue device token)")
    );
    assert_eq!(srv.wait_live(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_mode_accepts_either_field() {
    let srv = TestServer::start(json!({"gateway": {"auth": {"mode": "password", "password": "correct horse battery"}, "limits": {"workers": 1}}})).await;
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::default().password("correct horse battery"))
        .await
        .expect("password");
    assert_eq!(hello["auth"]["method"], "password");
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token("correct horse battery"))
        .await
        .expect("password in token field");
    assert_eq!(hello["auth"]["method"], "password");
    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::default().password("nope"))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_PASSWORD_MISMATCH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_role_and_params_errors() {
    let srv = TestServer::default().await;
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN);
    o.min_protocol = 99;
    o.max_protocol = 99;
    let f = c.connect(&o).await.unwrap_err();
    assert_eq!(
        f.error.as_ref().unwrap()["details"],
        json!({"code": "PROTOCOL_MISMATCH", "clientMinProtocol": 99, "clientMaxProtocol": 99, "expectedProtocol": 4, "minimumProbeProtocol": 3})
    );
    assert_eq!(f.close, Some((1002, "protocol mismatch".into())));

    // protocol 3 is accepted for node clients
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN)
        .client("node-host", "node")
        .role("node")
        .scopes(&[])
        .device(&dev);
    o.min_protocol = 3;
    o.max_protocol = 3;
    c.connect(&o)
        .await
        .expect("legacy node envelope accepted (local node pairs silently)");

    let mut c = open(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).role("admin"))
        .await
        .unwrap_err();
    assert_eq!(f.message(), Some("invalid role"));
    assert_eq!(f.close, Some((1008, "invalid role".into())));

    let mut c = open(&srv).await;
    let f = c
        .connect_frame(
            &json!({"type": "req", "id": "x", "method": "connect", "params": {"minProtocol": 4}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        f.message(),
        Some("invalid connect params: at root: must have required property 'maxProtocol'")
    );
    assert_eq!(f.close_code(), Some(1008));

    // unknown fields are accepted
    let mut c = open(&srv).await;
    c.connect(
        &ConnectOpts::with_token(TOKEN)
            .extra("modelCatalog", json!({"x": 1}))
            .extra("bogus", json!(true)),
    )
    .await
    .expect("lenient about unknown fields");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_reference_close_codes_and_nothing_leaks() {
    let srv = TestServer::default().await;
    // first request not connect
    let mut c = open(&srv).await;
    c.send_json(&json!({"type": "req", "id": "1", "method": "health"}))
        .await;
    let f = c.recv_frame(T).await.expect("res");
    assert_eq!(
        f["error"]["message"],
        "invalid handshake: first request must be connect"
    );
    assert_eq!(
        c.expect_close(T).await,
        Some((
            1008,
            "invalid handshake: first request must be connect".into()
        ))
    );
    // not a request
    let mut c = open(&srv).await;
    c.send_json(&json!({"type": "event", "event": "x"})).await;
    assert_eq!(
        c.expect_close(T).await,
        Some((1008, "invalid request frame".into()))
    );
    // truncated JSON
    let mut c = open(&srv).await;
    c.send_text("{\"type\":\"req\",").await;
    assert_eq!(c.expect_close(T).await.map(|x| x.0), Some(1000));
    // random bytes in a binary frame (invalid UTF-8)
    let mut c = open(&srv).await;
    c.send_binary(vec![0xff, 0xfe, 0x00, 0x80, 0x13]).await;
    assert_eq!(c.expect_close(T).await.map(|x| x.0), Some(1000));
    // a binary frame holding a valid connect is accepted
    let mut c = open(&srv).await;
    let frame = c.build_connect(&ConnectOpts::with_token(TOKEN));
    c.send_binary(frame.to_string().into_bytes()).await;
    let res = c.recv_frame(T).await.expect("res");
    assert_eq!(res["ok"], true);
    c.close().await;
    // a huge pre-auth frame
    let mut c = open(&srv).await;
    c.send_text(&"x".repeat(70 * 1024)).await;
    assert_eq!(c.expect_close(T).await.map(|x| x.0), Some(1009));
    // a connect after a failed one never arrives: the socket is closed
    let mut c = open(&srv).await;
    let _ = c
        .connect(&ConnectOpts::with_token("bad"))
        .await
        .unwrap_err();
    assert!(
        c.try_send(Message::text(
            c.build_connect(&ConnectOpts::with_token(TOKEN)).to_string()
        ))
        .await
        .is_err()
            || c.expect_end(T).await
    );
    assert_eq!(srv.wait_live(0).await, 0, "every socket is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_hit_the_handshake_deadline() {
    let srv = TestServer::start(config_with(
        json!({"limits": {"handshakeTimeoutMs": 300, "maxPreauthPerIp": 200}}),
    ))
    .await;
    let mut conns = Vec::new();
    for _ in 0..100 {
        conns.push(open(&srv).await);
    }
    assert_eq!(srv.running().state.live_connections(), 100);
    for c in conns.iter_mut() {
        assert_eq!(c.expect_close(T).await, Some((1000, String::new())));
    }
    drop(conns);
    assert_eq!(srv.wait_live(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preauth_budget_per_address() {
    let srv = TestServer::start(config_with(json!({"limits": {"maxPreauthPerIp": 3}}))).await;
    let mut held = vec![];
    for _ in 0..3 {
        held.push(open(&srv).await);
    }
    match Conn::open(&srv.url, &[]).await {
        Err(OpenError::Http { status, body }) => {
            assert_eq!(status, 503);
            assert!(body.contains("Too many unauthenticated sockets"));
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // an authenticated socket frees its slot
    held[0]
        .connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("hello");
    let _ok = open(&srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_proof_errors() {
    let srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let other = DeviceIdentity::generate();
    type Tamper = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Tamper, &str, &str, &str)> = vec![
        (
            Box::new(|p: &mut Value| p["params"]["device"]["id"] = json!("0".repeat(64))),
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ),
        (
            Box::new(|p: &mut Value| p["params"]["device"]["signature"] = json!("AAAA")),
            "device signature invalid",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
        ),
        (
            Box::new(|p: &mut Value| p["params"]["device"]["publicKey"] = json!("not-a-key")),
            "device public key invalid",
            "DEVICE_AUTH_PUBLIC_KEY_INVALID",
            "device-public-key",
        ),
        (
            Box::new(|p: &mut Value| p["params"]["scopes"] = json!(["operator.admin"])),
            "device signature invalid",
            "DEVICE_AUTH_SIGNATURE_INVALID",
            "device-signature",
        ),
    ];
    for (tamper, msg, code, reason) in cases {
        let mut c = open(&srv).await;
        let mut frame = c.build_connect(&ConnectOpts::with_token(TOKEN).device(&dev));
        tamper(&mut frame);
        let f = c.connect_frame(&frame).await.unwrap_err();
        assert_eq!(f.message(), Some(msg));
        assert_eq!(
            f.error.as_ref().unwrap()["details"],
            json!({"code": code, "reason": reason})
        );
        assert_eq!(f.close, Some((1008, msg.to_string())));
    }
    // a forged signature: another key signs for this device id
    let mut c = open(&srv).await;
    let mut frame = c.build_connect(&ConnectOpts::with_token(TOKEN).device(&other));
    frame["params"]["device"]["id"] = json!(dev.device_id);
    frame["params"]["device"]["publicKey"] = json!(dev.public_key);
    assert_eq!(
        c.connect_frame(&frame).await.unwrap_err().detail_code(),
        Some("DEVICE_AUTH_SIGNATURE_INVALID")
    );
    // stale signature
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN).device(&dev);
    o.signed_at_override = Some(c.challenge_ts().unwrap() - 10 * 60 * 1000);
    let f = c.connect(&o).await.unwrap_err();
    assert_eq!(f.detail_code(), Some("DEVICE_AUTH_SIGNATURE_EXPIRED"));
    assert_eq!(f.message(), Some("device signature expired"));
    // empty nonce
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN).device(&dev);
    o.nonce_override = Some("  ".into());
    assert_eq!(
        c.connect(&o).await.unwrap_err().detail_code(),
        Some("DEVICE_AUTH_NONCE_REQUIRED")
    );
    // a nonce replayed from another connection
    let first = open(&srv).await;
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN).device(&dev);
    o.nonce_override = Some(first.nonce().to_string());
    let f = c.connect(&o).await.unwrap_err();
    assert_eq!(f.detail_code(), Some("DEVICE_AUTH_NONCE_MISMATCH"));
    assert_eq!(f.close, Some((1008, "device nonce mismatch".into())));
    // v2 (Control UI style) signatures verify too
    let mut c = open(&srv).await;
    let mut o = ConnectOpts::with_token(TOKEN).device(&dev);
    o.sig_version = SigVersion::V2;
    c.connect(&o).await.expect("v2 accepted");
    drop(first);
    assert_eq!(srv.wait_live(1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_device_pairs_silently_and_reuses_its_token() {
    let mut srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .expect("silent pairing");
    let token = hello["auth"]["deviceToken"]
        .as_str()
        .expect("device token issued")
        .to_string();
    assert_eq!(token.len(), 43);
    assert!(hello["auth"]["issuedAtMs"].as_u64().is_some());
    c.close().await;
    // same token on the next connect
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap();
    assert_eq!(hello["auth"]["deviceToken"], token.as_str());
    c.close().await;
    // the device token alone authenticates
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .expect("device token auth");
    assert_eq!(hello["auth"]["method"], "device-token");
    assert_eq!(hello["auth"]["deviceToken"], token.as_str());
    c.close().await;
    // the legacy shared-token fallback: the device token in auth.token
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(&token).device(&dev))
        .await
        .expect("fallback");
    assert_eq!(hello["auth"]["method"], "device-token");
    c.close().await;
    // asking for more scopes with only the device token: scope mismatch, no request
    let mut c = open(&srv).await;
    let f = c
        .connect(
            &ConnectOpts::default()
                .device(&dev)
                .device_token(&token)
                .scopes(&["operator.admin"]),
        )
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_SCOPE_MISMATCH"));
    // a restart keeps the pairing and the token
    srv.restart().await;
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .expect("token survives restart");
    assert_eq!(hello["auth"]["method"], "device-token");
    let list = pairing_operator(&srv)
        .await
        .rpc("device.pair.list", json!({}))
        .await
        .unwrap();
    let paired = list["paired"].as_array().unwrap();
    assert_eq!(paired.len(), 1);
    assert_eq!(paired[0]["approvedVia"], "silent");
    assert_eq!(paired[0]["connected"], true);
    assert!(
        paired[0]["tokens"][0].get("token").is_none() && !list.to_string().contains(&token),
        "tokens never listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_device_pairing_flow() {
    let srv = proxied_server().await;
    let mut op = pairing_operator(&srv).await;
    let dev = DeviceIdentity::generate();
    let opts = ConnectOpts::with_token(TOKEN)
        .device(&dev)
        .scopes(&["operator.read"]);
    let mut c = open_remote(&srv).await;
    let f = c.connect(&opts).await.unwrap_err();
    assert_eq!(f.code(), Some("NOT_PAIRED"));
    assert_eq!(
        f.message(),
        Some("pairing required: device is not approved yet")
    );
    let err = f.error.unwrap();
    let rid = err["details"]["requestId"].as_str().unwrap().to_string();
    assert_eq!(err["details"]["code"], "PAIRING_REQUIRED");
    assert_eq!(err["details"]["reason"], "not-paired");
    assert_eq!(err["details"]["deviceId"], dev.device_id.as_str());
    assert_eq!(err["details"]["requestedScopes"], json!(["operator.read"]));
    assert_eq!(
        err["details"]["remediationHint"],
        "Approve this device from the pending pairing requests."
    );
    assert_eq!(
        f.close,
        Some((
            1008,
            format!("pairing required: device is not approved yet (requestId: {rid})")
        ))
    );
    // the operator sees the request as an event and in the list
    let ev = op
        .next_event("device.pair.requested", T)
        .await
        .expect("requested event");
    assert_eq!(ev["payload"]["requestId"], rid.as_str());
    assert_eq!(ev["payload"]["remoteIp"], "203.0.113.7");
    assert!(ev["seq"].as_u64().is_some());
    // a retry refreshes the same request (no new event)
    let mut c = open_remote(&srv).await;
    let f = c.connect(&opts).await.unwrap_err();
    assert_eq!(f.error.unwrap()["details"]["requestId"], rid.as_str());
    let list = op.rpc("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"].as_array().unwrap().len(), 1);
    assert_eq!(list["pending"][0]["requestId"], rid.as_str());
    // approve
    let e = op
        .rpc("device.pair.approve", json!({"requestId": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(e["message"], "unknown requestId");
    let res = op
        .rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .expect("approve");
    assert_eq!(res["requestId"], rid.as_str());
    assert_eq!(res["device"]["approvedVia"], "owner");
    assert_eq!(res["device"]["scopes"], json!(["operator.read"]));
    let ev = op
        .next_event("device.pair.resolved", T)
        .await
        .expect("resolved event");
    assert_eq!(ev["payload"]["decision"], "approved");
    // the device reconnects and gets a token
    let mut c = open_remote(&srv).await;
    let hello = c.connect(&opts).await.expect("paired device connects");
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    c.close().await;
    // scope upgrade from remote: pending again, old approval still works
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&dev)
                .scopes(&["operator.read", "operator.write"]),
        )
        .await
        .unwrap_err();
    let err = f.error.unwrap();
    assert_eq!(err["details"]["reason"], "scope-upgrade");
    assert_eq!(err["details"]["approvedScopes"], json!(["operator.read"]));
    assert_eq!(
        err["message"],
        "pairing required: device is asking for more scopes than currently approved"
    );
    let (code, reason) = f.close.unwrap();
    assert_eq!(code, 1008);
    assert!(
        reason.len() <= 120
            && reason.starts_with("pairing required: device is asking for more scopes")
    );
    let mut c = open_remote(&srv).await;
    c.connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .expect("old approval in force");
    // reject the upgrade
    let rid2 = err["details"]["requestId"].as_str().unwrap().to_string();
    let res = op
        .rpc("device.pair.reject", json!({"requestId": rid2}))
        .await
        .unwrap();
    assert_eq!(res["deviceId"], dev.device_id.as_str());
    assert_eq!(
        op.rpc("device.pair.reject", json!({"requestId": rid2}))
            .await
            .unwrap_err()["message"],
        "unknown requestId"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_revoke_and_remove_close_live_sessions() {
    let srv = TestServer::default().await;
    let mut op = pairing_operator(&srv).await;
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let token = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap()["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut live = open(&srv).await;
    live.connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .unwrap();
    // rotate: withheld from another caller, live session closed 4001
    let res = op
        .rpc(
            "device.token.rotate",
            json!({"deviceId": dev.device_id, "role": "operator"}),
        )
        .await
        .unwrap();
    assert_eq!(res["tokenDelivery"], "withheld-cross-device");
    assert!(res.get("token").is_none());
    assert_eq!(
        live.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    assert_eq!(
        c.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    let mut x = open(&srv).await;
    let f = x
        .connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_DEVICE_TOKEN_MISMATCH"));
    // a fresh shared-token connect gets the rotated token, which works
    let mut c = open(&srv).await;
    let token2 = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap()["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(token, token2);
    // self-rotation with the device token is delivered in band
    let mut me = open(&srv).await;
    me.connect(
        &ConnectOpts::default()
            .device(&dev)
            .device_token(&token2)
            .scopes(&["operator.read"]),
    )
    .await
    .unwrap();
    let e = me
        .rpc(
            "device.token.rotate",
            json!({"deviceId": dev.device_id, "role": "operator"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["message"], "missing scope: operator.pairing");
    c.close().await;
    // revoke
    let res = op
        .rpc(
            "device.token.revoke",
            json!({"deviceId": dev.device_id, "role": "operator"}),
        )
        .await
        .unwrap();
    assert!(res["revokedAtMs"].as_u64().is_some());
    assert_eq!(
        me.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    // remove
    let mut c = open(&srv).await;
    c.connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap();
    let res = op
        .rpc("device.pair.remove", json!({"deviceId": dev.device_id}))
        .await
        .unwrap();
    assert_eq!(res["deviceId"], dev.device_id.as_str());
    assert_eq!(
        c.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    assert_eq!(
        op.rpc("device.pair.remove", json!({"deviceId": dev.device_id}))
            .await
            .unwrap_err()["message"],
        "unknown deviceId"
    );
    let list = op.rpc("device.pair.list", json!({})).await.unwrap();
    assert!(list["paired"].as_array().unwrap().is_empty());
    // rename + unknown params
    let e = op
        .rpc(
            "device.pair.rename",
            json!({"deviceId": "x", "label": "y", "extra": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e["message"],
        "invalid device.pair.rename params: at root: unexpected property 'extra'"
    );
    assert!(
        op.rpc("health", json!({})).await.is_ok(),
        "operator session untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_forwarded_headers_get_403_naming_the_peer() {
    let srv = TestServer::default().await;
    for headers in [
        vec![("X-Forwarded-For", "203.0.113.7")],
        vec![("Forwarded", "for=203.0.113.7")],
        vec![("X-Real-IP", "203.0.113.7")],
    ] {
        match Conn::open(&srv.url, &headers).await {
            Err(OpenError::Http { status, body }) => {
                assert_eq!(status, 403);
                let v: Value = serde_json::from_str(&body).expect("json body");
                assert_eq!(v["error"]["type"], "proxy_attribution_required");
                assert_eq!(v["error"]["peerAddress"], "127.0.0.1");
                assert!(v["error"]["hint"]
                    .as_str()
                    .unwrap()
                    .contains("gateway.trustedProxies"));
            }
            other => panic!("expected 403, got {other:?}"),
        }
    }
    // trusted, but only a loopback hop: still unattributable
    let srv = proxied_server().await;
    assert!(matches!(
        Conn::open(&srv.url, &[("X-Forwarded-For", "127.0.0.1")]).await,
        Err(OpenError::Http { status: 403, .. })
    ));
    // RFC 7239 Forwarded from a trusted proxy is parsed
    let mut c = Conn::open(
        &srv.url,
        &[("Forwarded", "for=\"[2001:db8::7]:443\";proto=https")],
    )
    .await
    .expect("forwarded parsed");
    let dev = DeviceIdentity::generate();
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap_err();
    assert_eq!(
        f.detail_code(),
        Some("PAIRING_REQUIRED"),
        "a proxied client is remote"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_deviceless_cli_has_scopes_cleared() {
    let srv = proxied_server().await;
    let mut c = open_remote(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.admin"]))
        .await
        .unwrap();
    assert_eq!(hello["auth"]["scopes"], json!([]));
    assert_eq!(
        c.rpc("device.pair.list", json!({})).await.unwrap_err()["code"],
        "FORBIDDEN"
    );
    // locally the same client keeps its scopes
    let mut c = open(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.admin"]))
        .await
        .unwrap();
    assert_eq!(hello["auth"]["scopes"], json!(["operator.admin"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_rate_limited_per_remote_address() {
    let srv = TestServer::start(config_with(
        json!({"trustedProxies": ["127.0.0.1"], "auth": {"rateLimit": {"maxAttempts": 3}}}),
    ))
    .await;
    for _ in 0..3 {
        let mut c = open_remote(&srv).await;
        assert_eq!(
            c.connect(&ConnectOpts::with_token("wrong"))
                .await
                .unwrap_err()
                .detail_code(),
            Some("AUTH_TOKEN_MISMATCH")
        );
    }
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token("wrong"))
        .await
        .unwrap_err();
    let e = f.error.as_ref().unwrap();
    assert_eq!(e["details"]["code"], "AUTH_RATE_LIMITED");
    assert_eq!(
        e["message"],
        "unauthorized: too many failed authentication attempts (retry later)"
    );
    assert_eq!(e["retryable"], true);
    assert!(e["retryAfterMs"].as_u64().unwrap() > 290_000);
    assert_eq!(e["details"]["recommendedNextStep"], "wait_then_retry");
    // even the right token is refused during the lockout
    let mut c = open_remote(&srv).await;
    assert_eq!(
        c.connect(&ConnectOpts::with_token(TOKEN))
            .await
            .unwrap_err()
            .detail_code(),
        Some("AUTH_RATE_LIMITED")
    );
    // another address is unaffected; loopback is exempt
    let mut c = Conn::open(&srv.url, &[("X-Forwarded-For", "198.51.100.4")])
        .await
        .unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("other address");
    let mut c = open(&srv).await;
    c.connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_are_capped() {
    let srv = TestServer::start(config_with(json!({"trustedProxies": ["127.0.0.1"], "pairing": {"maxPendingPerClient": 2, "maxPendingTotal": 3}}))).await;
    for i in 0..2 {
        let mut c = open_remote(&srv).await;
        let f = c
            .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
            .await
            .unwrap_err();
        assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"), "device {i}");
    }
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap_err();
    assert_eq!(f.code(), Some("UNAVAILABLE"));
    assert_eq!(f.detail_code(), Some("PAIRING_QUEUE_FULL"));
    assert_eq!(f.close_code(), Some(1008));
    // another address may still ask, up to the total cap
    let mut c = Conn::open(&srv.url, &[("X-Forwarded-For", "198.51.100.9")])
        .await
        .unwrap();
    assert_eq!(
        c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
            .await
            .unwrap_err()
            .detail_code(),
        Some("PAIRING_REQUIRED")
    );
    let mut c = Conn::open(&srv.url, &[("X-Forwarded-For", "198.51.100.10")])
        .await
        .unwrap();
    assert_eq!(
        c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
            .await
            .unwrap_err()
            .detail_code(),
        Some("PAIRING_QUEUE_FULL")
    );
    assert_eq!(srv.running().state.store.pending().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_insecure_auth_skips_pairing_for_the_shared_token() {
    let srv = TestServer::start(config_with(
        json!({"trustedProxies": ["127.0.0.1"], "controlUi": {"allowInsecureAuth": true}}),
    ))
    .await;
    let dev = DeviceIdentity::generate();
    let mut c = open_remote(&srv).await;
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .expect("no pairing needed");
    assert_eq!(hello["auth"]["method"], "token");
    // the device identity is still verified
    let mut c = open_remote(&srv).await;
    let mut frame = c.build_connect(&ConnectOpts::with_token(TOKEN).device(&dev));
    frame["params"]["device"]["signature"] = json!("AAAA");
    assert_eq!(
        c.connect_frame(&frame).await.unwrap_err().detail_code(),
        Some("DEVICE_AUTH_SIGNATURE_INVALID")
    );
    // a wrong token is still refused
    let mut c = open_remote(&srv).await;
    assert_eq!(
        c.connect(&ConnectOpts::with_token("wrong").device(&dev))
            .await
            .unwrap_err()
            .detail_code(),
        Some("AUTH_TOKEN_MISMATCH")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origin_policy() {
    let srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let ui = |o: ConnectOpts| {
        o.client("openclaw-control-ui", "webchat")
            .scopes(&["operator.read"])
    };
    // local browser on localhost: allowed
    let mut c = Conn::open(&srv.url, &[("Origin", "http://localhost:18789")])
        .await
        .unwrap();
    let mut o = ui(ConnectOpts::with_token(TOKEN).device(&dev));
    o.sig_version = SigVersion::V2;
    c.connect(&o).await.expect("local browser");
    // foreign origin
    let mut c = Conn::open(&srv.url, &[("Origin", "https://evil.example")])
        .await
        .unwrap();
    let f = c.connect(&o).await.unwrap_err();
    assert_eq!(f.detail_code(), Some("CONTROL_UI_ORIGIN_NOT_ALLOWED"));
    assert_eq!(f.close_code(), Some(1008));
    // The rejection log keeps the Origin (what to add to allowedOrigins).
    let r = rejection(&srv, "CONTROL_UI_ORIGIN_NOT_ALLOWED").await;
    assert_eq!(r["origin"], "https://evil.example", "{r}");
    // a tokenless browser gets AUTH_TOKEN_MISSING (login form)
    let mut c = Conn::open(&srv.url, &[("Origin", "http://localhost:18789")])
        .await
        .unwrap();
    assert_eq!(
        c.connect(&ui(ConnectOpts::default()))
            .await
            .unwrap_err()
            .detail_code(),
        Some("AUTH_TOKEN_MISSING")
    );
    // Control UI with a token but without a device identity
    let mut c = Conn::open(&srv.url, &[("Origin", "http://localhost:18789")])
        .await
        .unwrap();
    assert_eq!(
        c.connect(&ui(ConnectOpts::with_token(TOKEN)))
            .await
            .unwrap_err()
            .detail_code(),
        Some("CONTROL_UI_DEVICE_IDENTITY_REQUIRED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_events_reach_only_pairing_sessions() {
    let srv = proxied_server().await;
    let mut op = pairing_operator(&srv).await;
    let mut reader = open(&srv).await;
    reader
        .connect(&ConnectOpts::with_token(TOKEN))
        .await
        .unwrap();
    let mut c = open_remote(&srv).await;
    let _ = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap_err();
    assert!(op.next_event("device.pair.requested", T).await.is_some());
    // the reader gets nothing: its next frame is the answer to its own request
    let health = reader.rpc("health", json!({})).await.unwrap();
    assert_eq!(health["ok"], true);
    assert!(
        reader.events.is_empty(),
        "operator.read sessions get no pairing events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_and_pings_keep_the_session_alive() {
    let srv = TestServer::start(config_with(
        json!({"limits": {"tickIntervalMs": 200, "pingIntervalMs": 150}}),
    ))
    .await;
    let mut c = open(&srv).await;
    let hello = c.connect(&ConnectOpts::with_token(TOKEN)).await.unwrap();
    assert_eq!(hello["policy"]["tickIntervalMs"], 200);
    let t1 = c.next_event("tick", T).await.expect("tick");
    let t2 = c.next_event("tick", T).await.expect("second tick");
    assert!(t1["payload"]["ts"].as_u64().is_some());
    assert!(t2["seq"].as_u64().unwrap() > t1["seq"].as_u64().unwrap());
    let h = c.next_event("health", T).await.expect("health event");
    assert!(h["stateVersion"].is_object());
    // tungstenite answers pings automatically, so the session is still open
    assert!(c.rpc("health", json!({})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_limit_is_raised_after_hello() {
    let srv = TestServer::start(config_with(json!({"limits": {"maxPayload": 300000}}))).await;
    let mut c = open(&srv).await;
    c.connect(&ConnectOpts::with_token(TOKEN)).await.unwrap();
    // 100 KB is over the pre-auth limit but fine now
    let big = "y".repeat(100 * 1024);
    let e = c.rpc("nope", json!({"blob": big})).await.unwrap_err();
    assert!(e["message"]
        .as_str()
        .unwrap()
        .starts_with("unknown method: nope ("));
    c.send_text(&"z".repeat(400 * 1024)).await;
    assert_eq!(c.expect_close(T).await.map(|x| x.0), Some(1009));
    assert_eq!(srv.wait_live(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_and_metadata_upgrades_need_approval_when_remote() {
    let srv = proxied_server().await;
    let mut op = pairing_operator(&srv).await;
    let dev = DeviceIdentity::generate();
    let pair = |o: ConnectOpts| o.device(&dev);
    let mut c = open_remote(&srv).await;
    let rid = c
        .connect(&pair(ConnectOpts::with_token(TOKEN)))
        .await
        .unwrap_err()
        .error
        .unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    op.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap();
    // the same device as a node: role upgrade
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(&pair(
            ConnectOpts::with_token(TOKEN)
                .client("node-host", "node")
                .role("node")
                .scopes(&[]),
        ))
        .await
        .unwrap_err();
    let e = f.error.unwrap();
    assert_eq!(e["details"]["reason"], "role-upgrade");
    assert_eq!(e["details"]["approvedRoles"], json!(["operator"]));
    assert_eq!(
        e["details"]["remediationHint"],
        "Review the requested role upgrade, then approve the pending request."
    );
    let role_rid = e["details"]["requestId"].as_str().unwrap().to_string();
    // a different platform: metadata upgrade, which supersedes the role request
    let mut c = open_remote(&srv).await;
    let mut o = pair(ConnectOpts::with_token(TOKEN));
    o.platform = "darwin".into();
    let f = c.connect(&o).await.unwrap_err();
    let e = f.error.unwrap();
    assert_eq!(e["details"]["reason"], "metadata-upgrade");
    assert_eq!(
        e["message"],
        "pairing required: device identity changed and must be re-approved"
    );
    let mut saw_superseded = false;
    while let Some(ev) = op
        .next_event("device.pair.resolved", Duration::from_millis(500))
        .await
    {
        if ev["payload"]["requestId"] == role_rid.as_str() {
            assert_eq!(ev["payload"]["decision"], "rejected");
            saw_superseded = true;
        }
    }
    assert!(
        saw_superseded,
        "the superseded request was announced as rejected"
    );
    let list = op.rpc("device.pair.list", json!({})).await.unwrap();
    let pending = list["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]["roles"],
        json!(["operator", "node"]),
        "roles merged"
    );
    assert_eq!(pending[0]["isRepair"], true);
    // approving a node role needs operator.admin
    let mut weak = open(&srv).await;
    weak.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.pairing"]))
        .await
        .unwrap();
    let e = weak
        .rpc(
            "device.pair.approve",
            json!({"requestId": pending[0]["requestId"]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["message"], "device pairing approval denied");
    op.rpc(
        "device.pair.approve",
        json!({"requestId": pending[0]["requestId"]}),
    )
    .await
    .unwrap();
    let mut c = open_remote(&srv).await;
    let hello = c.connect(&o).await.expect("approved metadata");
    assert!(hello["auth"]["deviceToken"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_scope_upgrade_is_silent() {
    let srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let t1 = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap()["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = open(&srv).await;
    let hello = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&dev)
                .scopes(&["operator.read", "operator.pairing"]),
        )
        .await
        .expect("silent upgrade");
    assert_eq!(
        hello["auth"]["scopes"],
        json!(["operator.read", "operator.pairing"])
    );
    let t2 = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    assert_ne!(t1, t2, "a wider token was minted");
    let list = c.rpc("device.pair.list", json!({})).await.unwrap();
    assert_eq!(
        list["paired"][0]["scopes"],
        json!(["operator.pairing", "operator.read"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_need_a_device_and_role_floods_are_closed() {
    let srv = TestServer::default().await;
    let mut c = open(&srv).await;
    let f = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .client("node-host", "node")
                .role("node")
                .scopes(&[]),
        )
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("DEVICE_IDENTITY_REQUIRED"));
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    let hello = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .client("node-host", "node")
                .role("node")
                .scopes(&[])
                .device(&dev),
        )
        .await
        .unwrap();
    assert_eq!(hello["auth"]["role"], "node");
    for i in 0..10 {
        let e = c.rpc("device.pair.list", json!({})).await.unwrap_err();
        assert_eq!(e["message"], "unauthorized role: node", "call {i}");
    }
    let _ = c.rpc("device.pair.list", json!({})).await;
    assert_eq!(
        c.expect_close(T).await,
        Some((1008, "repeated unauthorized calls".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seen_is_recorded_without_blocking_the_handshake() {
    let mut srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    c.connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap();
    c.close().await;
    srv.restart().await;
    let d = srv
        .running()
        .state
        .store
        .device(&dev.device_id)
        .unwrap()
        .unwrap();
    assert!(d.last_seen_at_ms.is_some());
    assert_eq!(d.last_seen_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_scope_upgrade_needs_the_device_scopes_too() {
    let srv = proxied_server().await;
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv).await;
    c.connect(
        &ConnectOpts::with_token(TOKEN)
            .device(&dev)
            .scopes(&["operator.read"]),
    )
    .await
    .unwrap();
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&dev)
                .scopes(&["operator.pairing"]),
        )
        .await
        .unwrap_err();
    let rid = f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut weak = open(&srv).await;
    weak.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.pairing"]))
        .await
        .unwrap();
    let e = weak
        .rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap_err();
    assert_eq!(e["message"], "missing scope: operator.read");
    let mut strong = pairing_operator(&srv).await;
    strong
        .rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .expect("an admin may");
    // the resolved event reaches the approver before the response
    assert!(strong
        .events
        .iter()
        .any(|e| e["event"] == "device.pair.resolved"));
    let presence = strong.rpc("system-presence", json!({})).await.unwrap();
    assert_eq!(presence.as_array().unwrap().len(), 1);
    assert_eq!(presence[0]["mode"], "gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_role_means_approving_it_again() {
    let srv = proxied_server().await;
    let mut op = pairing_operator(&srv).await;
    let dev = DeviceIdentity::generate();
    let opts = ConnectOpts::with_token(TOKEN)
        .device(&dev)
        .scopes(&["operator.read"]);
    // Paired remotely by approval.
    let f = open_remote(&srv).await.connect(&opts).await.unwrap_err();
    let rid = f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    op.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap();
    let hello = open_remote(&srv).await.connect(&opts).await.unwrap();
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    // Revoked: the next shared-token connect is a role-upgrade request, as
    // the real gateway answers it (examples/20-...-role-upgrade.json).
    op.rpc(
        "device.token.revoke",
        json!({"deviceId": dev.device_id, "role": "operator"}),
    )
    .await
    .unwrap();
    let f = open_remote(&srv).await.connect(&opts).await.unwrap_err();
    assert_eq!(f.code(), Some("NOT_PAIRED"));
    assert_eq!(
        f.message(),
        Some("pairing required: device is asking for a higher role than currently approved")
    );
    let err = f.error.unwrap();
    assert_eq!(err["details"]["reason"], "role-upgrade");
    assert_eq!(err["details"]["approvedRoles"], json!(["operator"]));
    // The revoked token stays refused.
    let f = open_remote(&srv)
        .await
        .connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_DEVICE_TOKEN_MISMATCH"));
    // Approving the request restores the role, with a new token.
    let rid = err["details"]["requestId"].as_str().unwrap();
    op.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap();
    let hello = open_remote(&srv).await.connect(&opts).await.unwrap();
    let token2 = hello["auth"]["deviceToken"].as_str().unwrap();
    assert_ne!(token2, token);
    open_remote(&srv)
        .await
        .connect(&ConnectOpts::default().device(&dev).device_token(token2))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_browser_waiting_for_approval_is_told_to_keep_retrying() {
    let srv = TestServer::start(config_with(json!({
        "trustedProxies": ["127.0.0.1"],
        "controlUi": {"allowedOrigins": ["https://gw.example"]}
    })))
    .await;
    let mut headers = REMOTE.to_vec();
    headers.push(("Origin", "https://gw.example"));
    let mut c = Conn::open(&srv.url, &headers).await.unwrap();
    let mut o = ConnectOpts::with_token(TOKEN)
        .device(&DeviceIdentity::generate())
        .client("openclaw-control-ui", "webchat")
        .scopes(&["operator.read", "operator.pairing"]);
    o.sig_version = SigVersion::V2;
    let f = c.connect(&o).await.expect_err("pairing required");
    let d = &f.error.as_ref().unwrap()["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED", "{f}");
    // What makes the real Control UI retry on its own until approved.
    assert_eq!(d["recommendedNextStep"], "wait_then_retry", "{f}");
    assert_eq!(d["retryable"], true, "{f}");
    assert_eq!(d["pauseReconnect"], false, "{f}");
    assert!(d["requestId"].is_string(), "{f}");
    assert_eq!(f.close_code(), Some(1008));
    // The CLI is not told so (as OpenClaw: it waits for `devices approve`).
    let mut c = open_remote(&srv).await;
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .expect_err("pairing required");
    let d = &f.error.as_ref().unwrap()["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED", "{f}");
    assert!(d.get("recommendedNextStep").is_none(), "{f}");
    assert!(d.get("pauseReconnect").is_none(), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_a_remote_node_pairs_by_approval_and_nodes_remove_ends_it() {
    let srv = proxied_server().await;
    let dev = DeviceIdentity::generate();
    let node = || node_opts(&dev);
    let f = open_remote(&srv).await.connect(&node()).await.unwrap_err();
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
    let rid = f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut op = pairing_operator(&srv).await;
    op.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap();
    let mut c = open_remote(&srv).await;
    let hello = c.connect(&node()).await.expect("approved node connects");
    assert_eq!(hello["auth"]["role"], "node");
    assert!(hello["auth"]["deviceToken"].is_string());
    // Its commands are the gateway's: clawgate alone says so.
    let e = op
        .rpc("node.invoke", json!({"nodeId": dev.device_id}))
        .await
        .unwrap_err();
    assert!(
        e["message"].as_str().unwrap().contains("set upstream.url"),
        "{e}"
    );
    // An unknown node, then the node itself.
    let e = op
        .rpc("node.pair.remove", json!({"nodeId": "0".repeat(64)}))
        .await
        .unwrap_err();
    assert_eq!(e["message"], "unknown nodeId");
    let r = op
        .rpc("node.pair.remove", json!({"nodeId": dev.device_id}))
        .await
        .unwrap();
    assert_eq!(r, json!({"nodeId": dev.device_id}));
    assert_eq!(
        c.expect_close(T).await,
        Some((4001, "device removed".to_string()))
    );
    let list = op.rpc("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["paired"], json!([]), "{list}");
    // It must pair again.
    let f = open_remote(&srv).await.connect(&node()).await.unwrap_err();
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
    let audit = srv.admin().get("/admin/v1/audit").await.json();
    assert!(
        audit.to_string().contains("node.remove"),
        "the removal is audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_time_nodes_from_auto_approve_cidrs_get_in_and_operators_from_there_do_not() {
    let srv = TestServer::start(config_with(json!({
        "trustedProxies": ["127.0.0.1"],
        "nodes": {"pairing": {"autoApproveCidrs": ["203.0.113.0/24"]}},
    })))
    .await;
    let mut c = open_remote(&srv).await;
    let hello = c
        .connect(&node_opts(&DeviceIdentity::generate()))
        .await
        .expect("a node from the range is approved");
    assert_eq!(hello["auth"]["role"], "node");
    let f = open_remote(&srv)
        .await
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap_err();
    assert_eq!(
        f.detail_code(),
        Some("PAIRING_REQUIRED"),
        "operators are not"
    );
    let other = &[("X-Forwarded-For", "198.51.100.7")];
    let f = Conn::open(&srv.url, other)
        .await
        .unwrap()
        .connect(&node_opts(&DeviceIdentity::generate()))
        .await
        .unwrap_err();
    assert_eq!(
        f.detail_code(),
        Some("PAIRING_REQUIRED"),
        "nor nodes from elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_whose_upgrade_a_proxy_dropped_is_named_and_logged() {
    let srv = proxied_server().await;
    // What nginx sends without `proxy_set_header Upgrade/Connection`: the
    // WebSocket headers, but no Upgrade (HTTP/1.0, Connection: close).
    let c = common::http::gateway_client(&srv.url);
    let a = common::http::send(
        &c,
        "GET",
        "/",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ],
    )
    .await;
    assert_eq!(a.status, 426, "{}", a.body);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["error"]["type"], "upgrade_headers_missing", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("proxy_set_header Upgrade $http_upgrade"),
        "{v}"
    );
    let rec = rejection(&srv, "websocket_upgrade_missing").await;
    assert_eq!(rec["peerAddress"], "127.0.0.1", "{rec}");
    assert_eq!(rec["clientAddress"], "203.0.113.9", "{rec}");
    // A plain HTTP request without WebSocket headers is not that.
    let a = common::http::send(&c, "GET", "/", &[]).await;
    assert_eq!(a.status, 426);
    assert!(!a.body.contains("upgrade_headers_missing"), "{}", a.body);
}
