//! `gateway.auth.mode: "trusted-proxy"` (protocol §3.4) end to end on the
//! real server: the config rules, who gets in and with which scopes, the
//! refusals that say which check failed, deviceAutoApprove, the user in the
//! sessions and the audit log, a live `allowUsers` change, and HTTP.
//!
//! The tests connect from 127.0.0.1, so the proxy is "on loopback":
//! `allowLoopback: true` except where the loopback rule itself is tested.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::server::{test_opts, TestServer};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);
const ORIGIN: &str = "https://gw.example.test";

/// A trusted-proxy config; `extra` is merged into `gateway.auth.trustedProxy`.
fn config(extra: Value) -> Value {
    let mut tp = json!({
        "userHeader": "x-forwarded-user",
        "requiredHeaders": ["x-forwarded-proto"],
        "allowLoopback": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        tp[k] = v.clone();
    }
    json!({"gateway": {
        "auth": {
            "mode": "trusted-proxy",
            "trustedProxy": tp,
            "identityScopes": {"Admin@Example.test": ["operator.admin"]},
        },
        "trustedProxies": ["127.0.0.1"],
        "controlUi": {"allowedOrigins": [ORIGIN]},
        "limits": {"workers": 1},
        "admin": {"port": 0},
    }})
}

/// What the proxy adds for a signed-in user (from a remote browser).
fn vouched(user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Forwarded-For", "203.0.113.7".into()),
        ("X-Forwarded-Proto", "https".into()),
        ("X-Forwarded-User", user.into()),
    ]
}

async fn open(srv: &TestServer, headers: &[(&str, String)]) -> Conn {
    let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Conn::open(&srv.url, &h).await.expect("upgrade")
}

fn ui() -> ConnectOpts {
    ConnectOpts::default()
        .client("openclaw-control-ui", "webchat")
        .scopes(&["operator.read", "operator.write"])
}

fn with_origin(mut h: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    h.push(("Origin", ORIGIN.into()));
    h
}

/// Loads `cfg` from a fresh dir: the first config issue, if any.
fn load_error(cfg: &Value) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openclaw.json"), cfg.to_string()).unwrap();
    clawgate::config::load(&test_opts(dir.path(), BTreeMap::new()))
        .err()
        .map(|e| e.to_string())
}

#[test]
fn config_rules_follow_openclaw() {
    assert_eq!(load_error(&config(json!({}))), None);
    let mut no_section = config(json!({}));
    no_section["gateway"]["auth"]
        .as_object_mut()
        .unwrap()
        .remove("trustedProxy");
    let e = load_error(&no_section).expect("refused");
    assert!(
        e.contains("gateway.auth.trustedProxy") && e.contains("userHeader"),
        "{e}"
    );
    let e = load_error(&config(json!({"userHeader": "  "}))).expect("refused");
    assert!(e.contains("userHeader is required"), "{e}");
    let mut no_proxies = config(json!({}));
    no_proxies["gateway"]["trustedProxies"] = json!([]);
    let e = load_error(&no_proxies).expect("refused");
    assert!(e.contains("requires gateway.trustedProxies"), "{e}");
    let mut with_token = config(json!({}));
    with_token["gateway"]["auth"]["token"] = json!("a-shared-token-0123456789");
    let e = load_error(&with_token).expect("refused");
    assert!(e.contains("takes no shared token"), "{e}");
    let e = load_error(&config(json!({"requiredHeaders": ["bad header"]}))).expect("refused");
    assert!(e.contains("not an HTTP header name"), "{e}");
    let mut bad_scope = config(json!({}));
    bad_scope["gateway"]["auth"]["identityScopes"] = json!({"a@b.c": ["admin"]});
    let e = load_error(&bad_scope).expect("refused");
    assert!(e.contains("not an operator scope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_which_check_failed() {
    let srv = TestServer::start(config(json!({"allowUsers": ["alice@example.test"]}))).await;
    /// name, upgrade headers, detail code, part of the message
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no user header",
            vouched("alice@example.test")[..2].to_vec(),
            "AUTH_UNAUTHORIZED",
            "did not send the user header x-forwarded-user",
        ),
        (
            "no required header",
            vec![
                ("X-Forwarded-For", "203.0.113.7".into()),
                ("X-Forwarded-User", "alice@example.test".into()),
            ],
            "AUTH_IDENTITY_HEADER_REQUIRED",
            "required header x-forwarded-proto",
        ),
        (
            "user not allowed",
            vouched("mallory@example.test"),
            "AUTH_UNAUTHORIZED",
            "\"mallory@example.test\" is not in gateway.auth.trustedProxy.allowUsers",
        ),
    ];
    for (name, headers, code, text) in cases {
        let mut c = open(&srv, &headers).await;
        let f = c.connect(&ConnectOpts::default()).await.expect_err(name);
        assert_eq!(f.detail_code(), Some(code), "{name}: {f:?}");
        assert!(f.message().unwrap_or("").contains(text), "{name}: {f:?}");
        assert_eq!(f.close_code(), Some(1008), "{name}");
    }
    // Forwarded headers without a client address are refused at the upgrade.
    let h: Vec<(&str, &str)> = vec![
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-User", "alice@example.test"),
    ];
    match Conn::open(&srv.url, &h).await {
        Err(common::client::OpenError::Http { status, body }) => {
            assert_eq!(status, 403);
            assert!(body.contains("no usable client address"), "{body}");
        }
        Ok(_) => panic!("upgraded without a client address"),
        Err(e) => panic!("{e:?}"),
    }
    // The rejection log keeps which check failed, for `clawgate doctor`.
    let log = srv
        .admin()
        .get("/admin/v1/diagnostics/rejections")
        .await
        .json();
    assert!(log.to_string().contains("mallory@example.test"), "{log}");
    let reasons: Vec<&str> = log["rejections"]
        .as_array()
        .expect("rejections")
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for r in [
        "trusted_proxy_user_missing",
        "trusted_proxy_missing_header",
        "trusted_proxy_user_not_allowed",
    ] {
        assert!(reasons.contains(&r), "{r} not in {log:#}");
    }
    let out = common::bin::doctor_in(srv.dir.path(), vec![]).await;
    let v = out.json();
    let c = v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == "rejections"))
        .unwrap_or_else(|| panic!("no rejections check: {v:#}"));
    assert_eq!(c["status"], "fail", "{c:#}");
    let text = c.to_string();
    for part in [
        "identity-aware proxy sent no user",
        "identity-aware proxy omits a required header",
        "user not allowed",
        "proxy_set_header X-Forwarded-User $user;",
        "add them to gateway.auth.trustedProxy.allowUsers",
    ] {
        assert!(text.contains(part), "{part:?} not in {c:#}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_and_untrusted_sources_are_refused() {
    // OpenClaw's rule: a proxy on loopback needs allowLoopback.
    let srv = TestServer::start(config(json!({"allowLoopback": false}))).await;
    let mut c = open(&srv, &vouched("alice@example.test")).await;
    let f = c
        .connect(&ConnectOpts::default())
        .await
        .expect_err("loopback");
    assert!(f.message().unwrap().contains("allowLoopback"), "{f:?}");
    srv.stop().await;
    // A peer that is not a trusted proxy, with forwarded headers: refused at
    // the upgrade, naming the peer.
    let mut cfg = config(json!({}));
    cfg["gateway"]["trustedProxies"] = json!(["10.9.9.9"]);
    let srv = TestServer::start(cfg.clone()).await;
    let h: Vec<(&str, String)> = vouched("alice@example.test");
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    match Conn::open(&srv.url, &h).await {
        Err(common::client::OpenError::Http { status, body }) => {
            assert_eq!(status, 403);
            assert!(
                body.contains("127.0.0.1, which is not a trusted proxy"),
                "{body}"
            );
        }
        Ok(_) => panic!("an untrusted proxy upgraded"),
        Err(e) => panic!("{e:?}"),
    }
    srv.stop().await;
    // With a user header that is not a forwarding header, the connect is
    // what refuses, and says so.
    cfg["gateway"]["auth"]["trustedProxy"]["userHeader"] = json!("x-remote-user");
    cfg["gateway"]["auth"]["trustedProxy"]["requiredHeaders"] = json!([]);
    let srv = TestServer::start(cfg).await;
    let mut c = open(&srv, &[("X-Remote-User", "alice@example.test".into())]).await;
    let f = c
        .connect(&ConnectOpts::default())
        .await
        .expect_err("untrusted");
    let m = f.message().unwrap();
    assert!(
        m.contains("127.0.0.1") && m.contains("not in gateway.trustedProxies"),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deviceless_control_ui_gets_identity_scopes_capped_by_the_proxy() {
    let srv = TestServer::start(config(json!({}))).await;
    // Without an identityScopes entry: in, without scopes.
    let mut c = open(&srv, &with_origin(vouched("bob@example.test"))).await;
    let hello = c.connect(&ui()).await.expect("device-less UI");
    assert_eq!(hello["auth"]["method"], "trusted-proxy");
    assert_eq!(hello["auth"]["scopes"], json!([]));
    assert!(hello["auth"].get("deviceToken").is_none());
    // With one (an email matches case-insensitively): the grant.
    let mut c = open(&srv, &with_origin(vouched("admin@example.TEST"))).await;
    let hello = c.connect(&ui()).await.expect("admin UI");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.admin"]));
    let sessions = srv.admin().get("/admin/v1/sessions").await.json();
    assert!(
        sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["user"] == "admin@example.TEST" && s["authMethod"] == "trusted-proxy"),
        "{sessions}"
    );
    // x-openclaw-scopes narrows, never widens.
    let mut h = with_origin(vouched("admin@example.TEST"));
    h.push(("X-OpenClaw-Scopes", "operator.read".into()));
    let mut c = open(&srv, &h).await;
    assert_eq!(c.connect(&ui()).await.unwrap()["auth"]["scopes"], json!([]));
    // A device-less CLI through the proxy: in, scopes cleared (then granted).
    let mut c = open(&srv, &vouched("admin@example.test")).await;
    let hello = c.connect(&ConnectOpts::default()).await.expect("cli");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.admin"]));
    // A node always needs a device.
    let mut c = open(&srv, &vouched("admin@example.test")).await;
    let f = c
        .connect(
            &ConnectOpts::default()
                .role("node")
                .client("node-host", "node")
                .scopes(&[]),
        )
        .await
        .expect_err("node");
    assert_eq!(f.detail_code(), Some("DEVICE_IDENTITY_REQUIRED"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pairs_as_usual_and_its_approver_is_audited() {
    let srv = TestServer::start(config(json!({}))).await;
    let admin = srv.admin();
    // A remote CLI device behind the proxy: pairing required.
    let dev = DeviceIdentity::generate();
    let opts = ConnectOpts::default().device(&dev);
    let mut c = open(&srv, &vouched("carol@example.test")).await;
    let f = c.connect(&opts).await.expect_err("pairing");
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
    // An admin signed in at the proxy approves it over the WebSocket.
    let mut adm = open(&srv, &vouched("admin@example.test")).await;
    adm.connect(&ConnectOpts::default()).await.unwrap();
    let pending = adm.rpc("device.pair.list", json!({})).await.unwrap();
    let rid = pending["pending"][0]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    adm.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .expect("approve");
    let audit = admin.get("/admin/v1/audit?limit=1000").await.json();
    let ev = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pairing.approve")
        .unwrap_or_else(|| panic!("{audit}"))
        .clone();
    assert_eq!(ev["actor"], "ws:user:admin@example.test", "{ev}");
    // The CLI (not a browser) gets its device token, as from OpenClaw.
    let mut c = open(&srv, &vouched("carol@example.test")).await;
    let hello = c.connect(&opts).await.expect("paired");
    assert_eq!(hello["auth"]["method"], "trusted-proxy");
    assert!(hello["auth"]["deviceToken"].is_string(), "{hello}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_auto_approve_enrolls_ui_devices_only() {
    let srv = TestServer::start(config(json!({"deviceAutoApprove": {"enabled": true}}))).await;
    let admin = srv.admin();
    // A browser device of a vouched user: in at once, no device token.
    let dev = DeviceIdentity::generate();
    let mut c = open(&srv, &with_origin(vouched("dave@example.test"))).await;
    let hello = c
        .connect(
            &ui()
                .scopes(&["operator.admin", "operator.read"])
                .device(&dev),
        )
        .await
        .expect("auto-approved");
    // Admin is not in the default list; questions is added (OpenClaw's rule).
    assert_eq!(
        hello["auth"]["scopes"],
        json!(["operator.questions", "operator.read"])
    );
    assert!(hello["auth"].get("deviceToken").is_none(), "{hello}");
    let d = admin
        .get(&format!("/admin/v1/devices/{}", dev.device_id))
        .await
        .json();
    assert_eq!(d["approvedVia"], "trusted-proxy", "{d}");
    let audit = admin.get("/admin/v1/audit?limit=1000").await.json();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "pairing.approve"
                && e["actor"] == "trusted-proxy:dave@example.test"
                && e["target"] == dev.device_id.as_str()),
        "{audit}"
    );
    // A CLI device is not a UI: it still waits for approval.
    let cli = DeviceIdentity::generate();
    let mut c = open(&srv, &vouched("dave@example.test")).await;
    let f = c
        .connect(&ConnectOpts::default().device(&cli))
        .await
        .expect_err("cli pairs");
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_taken_out_of_allow_users_is_disconnected() {
    let srv = TestServer::start(config(json!({
        "allowUsers": ["erin@example.test", "admin@example.test"]
    })))
    .await;
    let mut c = open(&srv, &vouched("erin@example.test")).await;
    c.connect(&ConnectOpts::default()).await.expect("erin");
    let r = srv
        .admin()
        .send(
            "PATCH",
            "/admin/v1/config",
            &json!({"gateway": {"auth": {"trustedProxy": {"allowUsers": ["admin@example.test"]}}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, reason) = c.expect_close(T).await.expect("closed");
    assert_eq!((code, reason.as_str()), (4001, "gateway auth changed"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_a_fallback_for_local_tools_only() {
    let mut cfg = config(json!({}));
    cfg["gateway"]["auth"]["password"] = json!("a-local-password-0123456789");
    let srv = TestServer::start(cfg).await;
    let dev = DeviceIdentity::generate();
    let opts = ConnectOpts::default()
        .password("a-local-password-0123456789")
        .device(&dev);
    // Through the proxy without an identity, the password does not help.
    let mut c = open(&srv, &vouched("x")[..2]).await;
    let f = c.connect(&opts).await.expect_err("remote password");
    assert!(f.message().unwrap_or("").contains("user header"), "{f:?}");
    // Straight from loopback it does (and the local device pairs silently).
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let hello = c.connect(&opts).await.expect("local password");
    assert_eq!(hello["auth"]["method"], "password");
    srv.stop().await;
}
