//! Admin API integration tests: the real server on port 0.

mod common;

use std::time::Duration;

use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::http::{request, sse_event, Admin};
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);
const REMOTE: &[(&str, &str)] = &[("X-Forwarded-For", "203.0.113.7")];

async fn proxied() -> TestServer {
    TestServer::start(config_with(json!({"trustedProxies": ["127.0.0.1"]}))).await
}

/// A remote device that asked to pair; returns the device and its request id.
async fn pending_device(srv: &TestServer) -> (DeviceIdentity, String) {
    let dev = DeviceIdentity::generate();
    let mut c = Conn::open(&srv.url, REMOTE).await.unwrap();
    let f = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&dev)
                .scopes(&["operator.read", "operator.write"]),
        )
        .await
        .unwrap_err();
    let rid = f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    (dev, rid)
}

async fn connect_remote(
    srv: &TestServer,
    dev: &DeviceIdentity,
    scopes: &[&str],
) -> Result<(Conn, Value), common::client::ConnectFailure> {
    let mut c = Conn::open(&srv.url, REMOTE).await.unwrap();
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).device(dev).scopes(scopes))
        .await?;
    Ok((c, hello))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_request_hygiene() {
    let srv = TestServer::default().await;
    let admin = srv.admin();
    let base = admin.base.clone();
    // open probes
    assert_eq!(
        request("GET", &format!("{base}/healthz"), &[], None)
            .await
            .status,
        200
    );
    assert_eq!(
        request("GET", &format!("{base}/readyz"), &[], None)
            .await
            .status,
        200
    );
    // 401 without and with a bad token
    let r = request("GET", &format!("{base}/admin/v1/devices"), &[], None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(r.code(), "unauthorized");
    assert!(r.header("www-authenticate").is_some());
    assert!(r.json()["hint"].as_str().unwrap().contains("admin-token"));
    assert_eq!(
        admin
            .with_token("nope")
            .get("/admin/v1/devices")
            .await
            .status,
        401
    );
    assert_eq!(
        admin
            .with_token("a.b.c")
            .get("/admin/v1/devices")
            .await
            .status,
        401
    );
    // DNS rebinding and CSRF defences
    let r = admin
        .with_headers(
            "GET",
            "/admin/v1/devices",
            &[("Host", "evil.example")],
            None,
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "host_not_allowed"));
    let r = admin
        .with_headers(
            "GET",
            "/admin/v1/devices",
            &[("Origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "origin_not_allowed"));
    // mutations need JSON
    let r = admin
        .with_headers(
            "POST",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "text/plain")],
            Some("{\"entry\":\"10.0.0.1\"}"),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (415, "unsupported_media_type")
    );
    // malformed JSON names the position
    let r = admin
        .with_headers(
            "POST",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "application/json")],
            Some("{\"entry\": }"),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "malformed_json"));
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{}",
        r.body
    );
    // oversized body
    let big = json!({"entry": "x".repeat(70 * 1024)}).to_string();
    let r = admin
        .with_headers(
            "POST",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "application/json")],
            Some(&big),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"));
    // unknown fields and unknown routes
    let r = admin
        .post(
            "/admin/v1/trusted-proxies",
            &json!({"entry": "10.0.0.1", "bogus": 1}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json()["detail"].as_str().unwrap().contains("\"bogus\""));
    let r = admin.get("/admin/v1/nope").await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    // failed admin auth is audited, without the presented secret
    let audit = admin.get("/admin/v1/audit").await.json();
    let denied: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "admin.auth")
        .collect();
    // one record per client address and minute; the rest are counted
    assert_eq!(denied.len(), 1, "{audit}");
    assert!(denied
        .iter()
        .all(|e| e["outcome"] == "denied" && e["actor"] == "anonymous"));
    assert!(
        !audit.to_string().contains("nope\""),
        "no presented token in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_jwts_are_minted_checked_and_revoked() {
    let srv = proxied().await;
    let admin = srv.admin();
    let r = admin
        .post(
            "/admin/v1/tokens",
            &json!({"scopes": ["pairing:read"], "ttlSeconds": 600, "label": "dashboard"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let minted = r.json();
    let jwt = minted["token"].as_str().unwrap().to_string();
    let jti = minted["jti"].as_str().unwrap().to_string();
    assert_eq!(minted["scopes"], json!(["pairing:read"]));
    let reader = admin.with_token(&jwt);
    assert_eq!(reader.get("/admin/v1/devices").await.status, 200);
    assert_eq!(reader.get("/admin/v1/pairing/requests").await.status, 200);
    let (_dev, rid) = pending_device(&srv).await;
    let r = reader
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (403, "forbidden"));
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("pairing:write"));
    assert_eq!(
        reader.get("/admin/v1/tokens").await.status,
        403,
        "minting needs admin"
    );
    // validation
    assert_eq!(
        admin
            .post("/admin/v1/tokens", &json!({"scopes": ["root"]}))
            .await
            .status,
        422
    );
    assert_eq!(
        admin
            .post(
                "/admin/v1/tokens",
                &json!({"scopes": ["admin"], "ttlSeconds": 5})
            )
            .await
            .status,
        422
    );
    assert_eq!(
        admin
            .post("/admin/v1/tokens", &json!({"scopes": []}))
            .await
            .status,
        422
    );
    // list and revoke: the JWT stops working at once
    let list = admin.get("/admin/v1/tokens").await.json();
    let row = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["jti"] == jti.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["label"], "dashboard");
    assert!(row.get("token").is_none(), "a minted token is never listed");
    let r = admin.delete(&format!("/admin/v1/tokens/{jti}")).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["revokedAtMs"].as_u64().is_some());
    let r = reader.get("/admin/v1/devices").await;
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/tokens/{jti}"))
            .await
            .status,
        409
    );
    assert_eq!(admin.delete("/admin/v1/tokens/unknown").await.status, 404);
    // a pairing:write JWT can approve; the audit names it
    let w = admin
        .post(
            "/admin/v1/tokens",
            &json!({"scopes": ["pairing:write", "pairing:read"], "label": "approver"}),
        )
        .await
        .json();
    let writer = admin.with_token(w["token"].as_str().unwrap());
    assert_eq!(
        writer
            .post(
                &format!("/admin/v1/pairing/requests/{rid}/approve"),
                &json!({})
            )
            .await
            .status,
        200
    );
    let audit = admin.get("/admin/v1/audit?limit=1000").await.json();
    let approve = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pairing.approve")
        .unwrap()
        .clone();
    assert!(
        approve["actor"].as_str().unwrap().contains("(approver)"),
        "{approve}"
    );
    assert!(!audit.to_string().contains(&jwt), "no JWT in the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_workflow_over_http_with_events() {
    let srv = proxied().await;
    let admin = srv.admin();
    let sse = admin.sse();
    let (dev, rid) = pending_device(&srv).await;
    let ev = tokio::task::spawn_blocking(move || {
        let ev = sse_event(&sse, "pairing.requested", T);
        (ev, sse)
    })
    .await
    .unwrap();
    let (ev, sse) = ev;
    let ev = ev.expect("pairing.requested on the SSE stream");
    assert_eq!(ev["requestId"], rid.as_str());
    // the list shows what a human needs to decide
    let list = admin.get("/admin/v1/pairing/requests").await.json();
    let r = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["requestId"] == rid.as_str())
        .unwrap()
        .clone();
    assert_eq!(r["deviceId"], dev.device_id.as_str());
    assert_eq!(r["fingerprint"].as_str().unwrap().len(), 17);
    assert_eq!(r["client"]["id"], "cli");
    assert_eq!(r["client"]["version"], "2026.9.6");
    assert_eq!(r["client"]["platform"], "linux");
    assert_eq!(r["role"], "operator");
    assert_eq!(r["scopes"], json!(["operator.read", "operator.write"]));
    assert_eq!(r["peerAddress"], "127.0.0.1");
    assert_eq!(r["clientAddress"], "203.0.113.7");
    assert_eq!(r["isRepair"], false);
    assert_eq!(r["isUpgrade"], false);
    assert!(r["expiresAtMs"].as_u64().unwrap() > r["firstSeenAtMs"].as_u64().unwrap());
    assert_eq!(
        admin
            .get(&format!("/admin/v1/pairing/requests/{rid}"))
            .await
            .json()["status"],
        "pending"
    );
    // approve with narrowed scopes and a label
    let bad = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({"scopes": ["operator.admin"]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    let r = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({"scopes": ["operator.read"], "label": "laptop"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["device"]["label"], "laptop");
    assert_eq!(body["device"]["scopes"], json!(["operator.read"]));
    let resolved = tokio::task::spawn_blocking(move || sse_event(&sse, "pairing.resolved", T))
        .await
        .unwrap()
        .expect("resolved event");
    assert_eq!(resolved["decision"], "approved");
    // the device reconnects and gets a device token (within the narrowed scopes)
    let (_c, hello) = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .expect("approved device connects");
    assert!(hello["auth"]["deviceToken"].is_string());
    // decided requests: 409, unknown: 404
    let again = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!((again.status, again.code().as_str()), (409, "conflict"));
    assert_eq!(
        admin
            .post(
                &format!("/admin/v1/pairing/requests/{rid}/reject"),
                &json!({})
            )
            .await
            .status,
        409
    );
    assert_eq!(
        admin
            .get(&format!("/admin/v1/pairing/requests/{rid}"))
            .await
            .json()["status"],
        "approved"
    );
    assert_eq!(
        admin
            .post("/admin/v1/pairing/requests/nope/approve", &json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        admin.get("/admin/v1/pairing/requests/nope").await.status,
        404
    );
    // reject
    let (dev2, rid2) = pending_device(&srv).await;
    let r = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid2}/reject"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "rejected");
    let all = admin
        .get("/admin/v1/pairing/requests?status=all")
        .await
        .json();
    assert!(all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["requestId"] == rid2.as_str() && x["status"] == "rejected"));
    assert!(
        connect_remote(&srv, &dev2, &["operator.read"])
            .await
            .is_err(),
        "a rejected device is still not paired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_routes_close_sessions_and_never_show_tokens() {
    let srv = proxied().await;
    let admin = srv.admin();
    let (dev, rid) = pending_device(&srv).await;
    admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    let (mut live, hello) = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap();
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    let list = admin.get("/admin/v1/devices").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&token), "device tokens are never shown");
    let d = &list.json()["devices"][0];
    assert_eq!(d["deviceId"], dev.device_id.as_str());
    assert_eq!(d["connectedSessions"], 1);
    assert_eq!(d["approvedBy"], "admin-token");
    assert_eq!(d["tokens"][0]["role"], "operator");
    // get / patch
    let one = admin
        .get(&format!("/admin/v1/devices/{}", dev.device_id))
        .await;
    assert_eq!(one.json()["remoteIp"], "203.0.113.7");
    assert_eq!(admin.get("/admin/v1/devices/unknown").await.status, 404);
    let p = admin
        .send(
            "PATCH",
            &format!("/admin/v1/devices/{}", dev.device_id),
            &json!({"label": "kitchen tablet"}),
        )
        .await;
    assert_eq!(p.json()["label"], "kitchen tablet");
    assert_eq!(
        admin
            .send(
                "PATCH",
                &format!("/admin/v1/devices/{}", dev.device_id),
                &json!({"label": ""})
            )
            .await
            .status,
        422
    );
    assert_eq!(
        admin
            .send("PATCH", "/admin/v1/devices/unknown", &json!({"label": "x"}))
            .await
            .status,
        404
    );
    // rotate closes the session; the old token dies
    let r = admin
        .post(
            &format!("/admin/v1/devices/{}/tokens/operator/rotate", dev.device_id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["closedSessions"], 1);
    assert!(r.json().get("token").is_none());
    assert_eq!(
        live.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    let mut c = Conn::open(&srv.url, REMOTE).await.unwrap();
    let f = c
        .connect(&ConnectOpts::default().device(&dev).device_token(&token))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("AUTH_DEVICE_TOKEN_MISMATCH"));
    assert_eq!(
        admin
            .post(
                &format!("/admin/v1/devices/{}/tokens/node/rotate", dev.device_id),
                &json!({})
            )
            .await
            .status,
        404
    );
    // revoke: 200 then 409
    let (mut live, _) = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap();
    let r = admin
        .delete(&format!(
            "/admin/v1/devices/{}/tokens/operator",
            dev.device_id
        ))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        live.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    assert_eq!(
        admin
            .delete(&format!(
                "/admin/v1/devices/{}/tokens/operator",
                dev.device_id
            ))
            .await
            .status,
        409
    );
    // a revoked role must be approved again (a role-upgrade request)
    let f = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap_err();
    let err = f.error.unwrap();
    assert_eq!(err["details"]["reason"], "role-upgrade");
    let rid = err["details"]["requestId"].as_str().unwrap();
    let r = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // delete unpairs and closes
    let (mut live, _) = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap();
    let r = admin
        .delete(&format!("/admin/v1/devices/{}", dev.device_id))
        .await;
    assert_eq!(r.json()["closedSessions"], 1);
    assert_eq!(
        live.expect_close(Duration::from_secs(1)).await,
        Some((4001, "device removed".into()))
    );
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/devices/{}", dev.device_id))
            .await
            .status,
        404
    );
    let f = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_token_rotation_with_a_grace_window() {
    let mut srv = TestServer::default().await;
    let admin = srv.admin();
    let mut old_session = Conn::open(&srv.url, &[]).await.unwrap();
    old_session
        .connect(&ConnectOpts::with_token(TOKEN))
        .await
        .unwrap();
    // a device-token session is not affected by the shared secret
    let dev = DeviceIdentity::generate();
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let dtok = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap()["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    c.close().await;
    let mut dev_session = Conn::open(&srv.url, &[]).await.unwrap();
    dev_session
        .connect(&ConnectOpts::default().device(&dev).device_token(&dtok))
        .await
        .unwrap();

    let r = admin
        .post(
            "/admin/v1/gateway/token/rotate",
            &json!({"graceSeconds": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    let new_token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["graceSeconds"], 2);
    assert!(body["previousValidUntil"].as_u64().is_some());
    // inside the window both work
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("old token inside the grace window");
    let mut c2 = Conn::open(&srv.url, &[]).await.unwrap();
    c2.connect(&ConnectOpts::with_token(&new_token))
        .await
        .expect("new token");
    // at its end, sessions that used the old token close with 4001
    assert_eq!(
        old_session.expect_close(Duration::from_secs(5)).await,
        Some((4001, "gateway auth changed".into()))
    );
    assert_eq!(
        c.expect_close(Duration::from_secs(1)).await,
        Some((4001, "gateway auth changed".into()))
    );
    let mut after = Conn::open(&srv.url, &[]).await.unwrap();
    assert_eq!(
        after
            .connect(&ConnectOpts::with_token(TOKEN))
            .await
            .unwrap_err()
            .detail_code(),
        Some("AUTH_TOKEN_MISMATCH")
    );
    assert!(
        c2.rpc("health", json!({})).await.is_ok(),
        "new-token session untouched"
    );
    assert!(
        dev_session.rpc("health", json!({})).await.is_ok(),
        "device-token session untouched"
    );
    // the override survives a restart; the token is never shown again
    assert!(!admin.get("/admin/v1/audit").await.body.contains(&new_token));
    srv.restart().await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(&new_token))
        .await
        .expect("rotated token after restart");
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    assert!(c.connect(&ConnectOpts::with_token(TOKEN)).await.is_err());
    // no grace: old sessions close at once
    let admin = srv.admin();
    let mut s = Conn::open(&srv.url, &[]).await.unwrap();
    s.connect(&ConnectOpts::with_token(&new_token))
        .await
        .unwrap();
    let r = admin
        .post("/admin/v1/gateway/token/rotate", &json!({}))
        .await;
    assert_eq!(r.json()["graceSeconds"], 0);
    assert_eq!(
        s.expect_close(Duration::from_secs(1)).await,
        Some((4001, "gateway auth changed".into()))
    );
    assert_eq!(
        admin
            .post(
                "/admin/v1/gateway/token/rotate",
                &json!({"graceSeconds": -1})
            )
            .await
            .status,
        422
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_with_etags_and_dry_runs() {
    let mut srv = TestServer::default().await;
    let admin = srv.admin();
    // before: a proxied client is refused
    assert!(Conn::open(&srv.url, REMOTE).await.is_err());
    let g = admin.get("/admin/v1/trusted-proxies").await;
    assert_eq!(g.json()["entries"], json!([]));
    let tag = g.header("etag").unwrap();
    // PUT needs If-Match
    let r = admin
        .send(
            "PUT",
            "/admin/v1/trusted-proxies",
            &json!({"entries": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (428, "precondition_required")
    );
    let body = json!({"entries": ["127.0.0.1", "::ffff:10.0.0.0/104"]}).to_string();
    let r = admin
        .with_headers(
            "PUT",
            "/admin/v1/trusted-proxies",
            &[
                ("Content-Type", "application/json"),
                ("If-Match", "\"stale\""),
            ],
            Some(&body),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (412, "precondition_failed"));
    // bad entries are named
    let bad = json!({"entries": ["127.0.0.1", "10.0.0.0/33", "proxy.local"]}).to_string();
    let r = admin
        .with_headers(
            "PUT",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "application/json"), ("If-Match", &tag)],
            Some(&bad),
        )
        .await;
    assert_eq!(r.status, 422);
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("10.0.0.0/33") && detail.contains("proxy.local"),
        "{detail}"
    );
    // dry run shows the result without applying
    let r = admin
        .with_headers(
            "PUT",
            "/admin/v1/trusted-proxies?dryRun=true",
            &[("Content-Type", "application/json"), ("If-Match", &tag)],
            Some(&body),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"entries": ["127.0.0.1", "10.0.0.0/8"], "applied": false, "changed": true})
    );
    assert_eq!(
        admin.get("/admin/v1/trusted-proxies").await.json()["entries"],
        json!([])
    );
    // apply
    let r = admin
        .with_headers(
            "PUT",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "application/json"), ("If-Match", &tag)],
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tag2 = r.header("etag").unwrap();
    assert_ne!(tag, tag2);
    // the next connection uses the new list
    let mut c = Conn::open(&srv.url, REMOTE)
        .await
        .expect("proxy now trusted");
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap_err();
    assert_eq!(f.detail_code(), Some("PAIRING_REQUIRED"));
    // the old tag is stale now
    let r = admin
        .with_headers(
            "PUT",
            "/admin/v1/trusted-proxies",
            &[("Content-Type", "application/json"), ("If-Match", &tag)],
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 412);
    // add / remove one (a CIDR's slash percent-encoded)
    let r = admin
        .post(
            "/admin/v1/trusted-proxies",
            &json!({"entry": "172.17.0.0/16"}),
        )
        .await;
    assert_eq!(
        r.json()["entries"],
        json!(["127.0.0.1", "10.0.0.0/8", "172.17.0.0/16"])
    );
    assert_eq!(
        admin
            .post("/admin/v1/trusted-proxies", &json!({"entry": "nope"}))
            .await
            .status,
        422
    );
    assert_eq!(
        admin
            .delete("/admin/v1/trusted-proxies/10.0.0.0%2F8")
            .await
            .json()["entries"],
        json!(["127.0.0.1", "172.17.0.0/16"])
    );
    assert_eq!(
        admin
            .delete("/admin/v1/trusted-proxies/192.168.0.0%2F16")
            .await
            .status,
        404
    );
    let r = admin
        .with_headers(
            "DELETE",
            "/admin/v1/trusted-proxies/127.0.0.1",
            &[("If-Match", "\"stale\"")],
            None,
        )
        .await;
    assert_eq!(r.status, 412);
    // an override survives a restart
    srv.restart().await;
    let admin = srv.admin();
    assert_eq!(
        admin.get("/admin/v1/trusted-proxies").await.json()["entries"],
        json!(["127.0.0.1", "172.17.0.0/16"])
    );
    assert!(Conn::open(&srv.url, REMOTE).await.is_ok());
    let audit = admin.get("/admin/v1/audit").await.json();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"trustedProxies.replace")
            && actions.contains(&"trustedProxies.add")
            && actions.contains(&"trustedProxies.remove")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_audit_and_metrics() {
    let srv = TestServer::default().await;
    let admin = srv.admin();
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN)).await.unwrap();
    let mut bad = Conn::open(&srv.url, &[]).await.unwrap();
    let _ = bad.connect(&ConnectOpts::with_token("wrong")).await;
    let s = admin.get("/admin/v1/sessions").await.json();
    let list = s["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["authMethod"], "token");
    assert_eq!(list[0]["clientAddress"], "127.0.0.1");
    let conn_id = list[0]["connId"].as_str().unwrap().to_string();
    let m = admin.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("clawgate_connections{role=\"operator\"} 1"),
        "{}",
        m.body
    );
    assert!(m
        .body
        .contains("clawgate_handshakes_total{outcome=\"ok\"} 1"));
    assert!(m
        .body
        .contains("clawgate_handshakes_total{outcome=\"AUTH_TOKEN_MISMATCH\"} 1"));
    assert!(m.body.contains("clawgate_admin_requests_total{method=\"GET\",route=\"/admin/v1/sessions\",status=\"200\"} 1"));
    let r = admin.delete(&format!("/admin/v1/sessions/{conn_id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.expect_close(Duration::from_secs(1)).await,
        Some((4001, "client invalidated: closed by admin".into()))
    );
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/sessions/{conn_id}"))
            .await
            .status,
        404
    );
    // audit paging
    let all = admin.get("/admin/v1/audit").await.json();
    let n = all["events"].as_array().unwrap().len();
    assert!(n >= 1);
    let first = all["events"][0]["seq"].as_u64().unwrap();
    let page = admin
        .get(&format!("/admin/v1/audit?after={first}&limit=1"))
        .await
        .json();
    assert!(page["events"].as_array().unwrap().len() <= 1);
    assert_eq!(admin.get("/admin/v1/audit?limit=0").await.status, 422);
    assert_eq!(admin.get("/admin/v1/audit?after=x").await.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_stay_consistent() {
    let srv = TestServer::start(config_with(
        json!({"trustedProxies": ["127.0.0.1"], "pairing": {"maxPendingPerClient": 100}}),
    ))
    .await;
    let admin = srv.admin();
    let mut reqs = vec![];
    for _ in 0..10 {
        reqs.push(pending_device(&srv).await);
    }
    // 50 concurrent calls: 5 per request, approve and reject interleaved
    let mut tasks = vec![];
    for i in 0..50 {
        let a = admin.clone();
        let rid = reqs[i % 10].1.clone();
        let verb = if i % 2 == 0 { "approve" } else { "reject" };
        tasks.push(tokio::spawn(async move {
            (
                rid.clone(),
                verb,
                a.post(
                    &format!("/admin/v1/pairing/requests/{rid}/{verb}"),
                    &json!({}),
                )
                .await
                .status,
            )
        }));
    }
    let mut results = vec![];
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let audit = admin.get("/admin/v1/audit?limit=1000").await.json();
    let events = audit["events"].as_array().unwrap().clone();
    let devices = admin.get("/admin/v1/devices").await.json();
    for (dev, rid) in &reqs {
        let mine: Vec<&(String, &str, u16)> = results.iter().filter(|r| &r.0 == rid).collect();
        let wins: Vec<_> = mine.iter().filter(|r| r.2 == 200).collect();
        assert_eq!(wins.len(), 1, "exactly one decision for {rid}: {mine:?}");
        assert!(mine.iter().all(|r| r.2 == 200 || r.2 == 409), "{mine:?}");
        let ok_audits = events
            .iter()
            .filter(|e| e["target"] == rid.as_str() && e["outcome"] == "ok")
            .count();
        assert_eq!(ok_audits, 1);
        let conflicts = events
            .iter()
            .filter(|e| e["target"] == rid.as_str() && e["outcome"] == "conflict")
            .count();
        assert_eq!(conflicts, 4);
        let paired = devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["deviceId"] == dev.device_id.as_str());
        assert_eq!(
            paired,
            wins[0].1 == "approve",
            "final state matches the winning decision"
        );
    }
    // concurrent rotations of one device: all succeed, the last token stands
    let (dev, rid) = pending_device(&srv).await;
    admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    let mut tasks = vec![];
    for _ in 0..20 {
        let a = admin.clone();
        let id = dev.device_id.clone();
        tasks.push(tokio::spawn(async move {
            a.post(
                &format!("/admin/v1/devices/{id}/tokens/operator/rotate"),
                &json!({}),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let (_c, hello) = connect_remote(&srv, &dev, &["operator.read"])
        .await
        .unwrap();
    assert!(hello["auth"]["deviceToken"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_decision_through_websocket_and_http() {
    let srv = proxied().await;
    let admin = srv.admin();
    let (_dev, rid) = pending_device(&srv).await;
    let mut op = Conn::open(&srv.url, &[]).await.unwrap();
    op.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.admin"]))
        .await
        .unwrap();
    op.rpc("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap();
    // the HTTP API sees the WebSocket decision
    let r = admin
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 409);
    let audit = admin.get("/admin/v1/audit").await.json();
    let e = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pairing.approve" && e["outcome"] == "ok")
        .unwrap()
        .clone();
    assert!(e["actor"].as_str().unwrap().starts_with("ws:"), "{e}");
    // and the WebSocket sees the HTTP one
    let (_dev2, rid2) = pending_device(&srv).await;
    assert_eq!(
        admin
            .post(
                &format!("/admin/v1/pairing/requests/{rid2}/reject"),
                &json!({})
            )
            .await
            .status,
        200
    );
    assert_eq!(
        op.rpc("device.pair.approve", json!({"requestId": rid2}))
            .await
            .unwrap_err()["message"],
        "unknown requestId"
    );
    let ev = op.next_event("device.pair.resolved", T).await.unwrap();
    assert!(ev["payload"]["decision"].is_string());
    let _ = Admin::new(srv.running().admin_addr, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_rejections_explain_themselves() {
    let srv = TestServer::default().await;
    let admin = srv.admin();
    assert!(Conn::open(&srv.url, REMOTE).await.is_err());
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let _ = c
        .connect(&ConnectOpts::with_token("wrong"))
        .await
        .unwrap_err();
    let r = admin.get("/admin/v1/diagnostics/rejections").await;
    assert_eq!(r.status, 200);
    let list = r.json()["rejections"].as_array().unwrap().clone();
    let proxy = list
        .iter()
        .find(|x| x["reason"] == "proxy_attribution_required")
        .expect("the 403 is recorded");
    assert_eq!(proxy["peerAddress"], "127.0.0.1");
    assert_eq!(proxy["forwardedHeaders"][0]["name"], "x-forwarded-for");
    assert!(proxy["hint"]
        .as_str()
        .unwrap()
        .contains("gateway.trustedProxies"));
    let auth = list
        .iter()
        .find(|x| x["reason"] == "AUTH_TOKEN_MISMATCH")
        .expect("the auth failure is recorded");
    assert!(
        !auth.to_string().contains("\"wrong\""),
        "the presented secret is not kept"
    );
    let reader = admin
        .post("/admin/v1/tokens", &json!({"scopes": ["pairing:read"]}))
        .await
        .json();
    assert_eq!(
        admin
            .with_token(reader["token"].as_str().unwrap())
            .get("/admin/v1/diagnostics/rejections")
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_pages_in_id_order() {
    let srv = TestServer::default().await;
    // five locally (silently) paired devices
    for _ in 0..5 {
        let dev = DeviceIdentity::generate();
        let mut c = Conn::open(&srv.url, &[]).await.unwrap();
        c.connect(&ConnectOpts::with_token(TOKEN).device(&dev))
            .await
            .unwrap();
        c.close().await;
    }
    let admin = srv.admin();
    let all = admin.get("/admin/v1/devices").await.json();
    let mut ids: Vec<String> = all["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(all["nextAfter"].is_null());
    ids.sort();
    let mut seen = vec![];
    let mut path = "/admin/v1/devices?limit=2".to_string();
    let mut pages = 0;
    loop {
        let page = admin.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        let got: Vec<String> = page["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deviceId"].as_str().unwrap().to_string())
            .collect();
        assert!(got.len() <= 2);
        seen.extend(got);
        pages += 1;
        match page["nextAfter"].as_str() {
            Some(next) => path = format!("/admin/v1/devices?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "pages cover every device once, in id order");
    for bad in ["limit=0", "limit=1001", "limit=two"] {
        let r = admin.get(&format!("/admin/v1/devices?{bad}")).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_refuse_query_parameters_they_do_not_take() {
    let srv = TestServer::default().await;
    let admin = srv.admin();
    // No dry run on a token rotation: refused, and nothing rotated.
    let r = admin
        .post("/admin/v1/gateway/token/rotate?dryRun=true", &json!({}))
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("unknown query parameter \\\"dryRun\\\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("no dry run"), "{}", r.body);
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN))
        .await
        .expect("old token still valid");
    // Routes with a dry run take it, and nothing else.
    let r = admin
        .post(
            "/admin/v1/trusted-proxies?dryRun=true",
            &json!({"entry": "10.0.0.1"}),
        )
        .await;
    assert!(r.status < 300, "{} {}", r.status, r.body);
    let r = admin
        .post(
            "/admin/v1/trusted-proxies?force=1",
            &json!({"entry": "10.0.0.1"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("this route takes: dryRun"), "{}", r.body);
}
