//! Front-door mode against a small recording fake upstream: what the
//! upstream receives (identity, scopes, client info, which methods), what
//! the client gets back (the upstream's hello with clawgate's auth, events
//! renumbered per socket), and each way an upstream session ends.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::{payload_v3, Conn, ConnectOpts, DeviceIdentity};
use common::server::{config_with, TestServer, TOKEN};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(5);
const UPSTREAM_TOKEN: &str = "the-upstream-token-0123456789";

/// What the fake upstream saw.
#[derive(Default)]
struct Seen {
    /// Each `connect`'s params and the nonce it was challenged with.
    connects: Vec<(Value, String)>,
    /// Every other request's method.
    methods: Vec<String>,
    /// And its params.
    params: Vec<Value>,
    /// Close codes received from clawgate.
    closes: Vec<u16>,
    /// Connections open right now.
    open: usize,
    /// The `Origin` of each upgrade.
    origins: Vec<Option<String>>,
}

/// The record, and a wake-up for each change to it.
#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
    changed: tokio::sync::Notify,
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap());
        self.changed.notify_waiters();
    }
}

struct Fake {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Fake {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.shared.seen.lock().unwrap()
    }
}

/// How the fake answers `connect`.
#[derive(Clone, Copy)]
enum Answer {
    Hello,
    /// What the real gateway answers while it starts.
    Starting,
    /// `hello-ok`, then one frame far over clawgate's limit.
    HelloThenHuge,
    /// `hello-ok`, then it never reads again.
    HelloThenDeaf,
    /// Chatters (ticks) but never answers `connect`.
    Silent,
}

async fn fake(answer: Answer) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let shared = Arc::new(Shared::default());
    let s = shared.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((tcp, _)) = l.accept().await {
            n += 1;
            tokio::spawn(serve(tcp, s.clone(), answer, n));
        }
    });
    Fake { addr, shared }
}

// The callback's error type is tungstenite's (an HTTP response): not ours to shrink.
#[allow(clippy::result_large_err)]
async fn serve(tcp: tokio::net::TcpStream, seen: Arc<Shared>, answer: Answer, n: u32) {
    let origin = Arc::new(Mutex::new(None::<String>));
    let o = origin.clone();
    let cb = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                   resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
        *o.lock().unwrap() = req
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
        return;
    };
    let origin = origin.lock().unwrap().clone();
    seen.record(|s| s.origins.push(origin));
    seen.record(|s| s.open += 1);
    let nonce = format!("nonce-{n}");
    let challenge = json!({"type": "event", "event": "connect.challenge",
        "payload": {"nonce": nonce, "ts": 1, "capabilities": ["model-catalog-snapshot", "fake-cap"]}});
    let _ = ws.send(Message::text(challenge.to_string())).await;
    while let Some(Ok(msg)) = ws.next().await {
        let v: Value = match msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(c) => {
                let code = c.map(|c| u16::from(c.code)).unwrap_or(1005);
                seen.record(|s| s.closes.push(code));
                break;
            }
            _ => continue,
        };
        let id = v["id"].clone();
        let method = v["method"].as_str().unwrap_or("").to_string();
        if method == "connect" {
            seen.record(|s| s.connects.push((v["params"].clone(), nonce.clone())));
            if let Answer::Silent = answer {
                loop {
                    let tick = json!({"type": "event", "event": "tick", "payload": {}});
                    if ws.send(Message::text(tick.to_string())).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
            if let Answer::Starting = answer {
                let err = json!({"type": "res", "id": id, "ok": false, "error": {"code": "UNAVAILABLE",
                    "message": "gateway starting; retry shortly", "retryable": true, "retryAfterMs": 500}});
                let _ = ws.send(Message::text(err.to_string())).await;
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(1013),
                        reason: "gateway starting".into(),
                    })))
                    .await;
                break;
            }
            let hello = json!({"type": "res", "id": id, "ok": true, "payload": {
                "type": "hello-ok", "protocol": 4,
                "server": {"version": "2026.9.6", "connId": format!("up-{n}")},
                "features": {"methods": ["sessions.list", "status"], "events": ["tick"]},
                "snapshot": {"presence": [], "health": {"upstream": true}},
                "auth": {"role": "operator", "scopes": v["params"]["scopes"]},
                "policy": {"maxPayload": 1000, "maxBufferedBytes": 2000, "tickIntervalMs": 30000}}});
            let _ = ws.send(Message::text(hello.to_string())).await;
            if v["params"]["role"] == "node" {
                // As the real gateway does for an invoke: addressed by the node id it knows.
                let e = json!({"type": "event", "event": "node.invoke.request", "seq": 1, "payload": {
                    "id": "inv-1", "nodeId": v["params"]["device"]["id"], "command": "system.which",
                    "paramsJSON": "{}", "timeoutMs": 1000}});
                let _ = ws.send(Message::text(e.to_string())).await;
            }
            match answer {
                Answer::HelloThenHuge => {
                    let _ = ws.send(Message::text("x".repeat(200_000))).await;
                }
                Answer::HelloThenDeaf => {
                    // Holds the socket open and reads nothing.
                    std::future::pending::<()>().await;
                }
                _ => {}
            }
            continue;
        }
        seen.record(|s| {
            s.methods.push(method.clone());
            s.params.push(v["params"].clone());
        });
        match method.as_str() {
            "node.describe" => {
                let r = json!({"type": "res", "id": id, "ok": true, "payload": {
                    "nodeId": v["params"]["nodeId"], "approvalState": "pending-approval",
                    "connected": true, "pendingRequestId": "surface-1"}});
                let _ = ws.send(Message::text(r.to_string())).await;
            }
            "node.list" => {
                let nodes: Vec<Value> = seen
                    .seen
                    .lock()
                    .unwrap()
                    .connects
                    .iter()
                    .filter(|(p, _)| p["role"] == "node")
                    .map(|(p, _)| json!({"nodeId": p["device"]["id"], "connected": true}))
                    .collect();
                let r = json!({"type": "res", "id": id, "ok": true, "payload": {"nodes": nodes}});
                let _ = ws.send(Message::text(r.to_string())).await;
            }
            "test.events" => {
                for (event, seq) in [("tick", 5), ("device.pair.requested", 6), ("tick", 7)] {
                    let e = json!({"type": "event", "event": event, "payload": {}, "seq": seq});
                    let _ = ws.send(Message::text(e.to_string())).await;
                }
                let r = json!({"type": "res", "id": id, "ok": true, "payload": {}});
                let _ = ws.send(Message::text(r.to_string())).await;
            }
            "test.garbage" => {
                let _ = ws.send(Message::text("this is not JSON")).await;
            }
            "test.binary" => {
                let _ = ws.send(Message::binary(vec![0u8, 1, 2])).await;
            }
            "test.close" => {
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(4000),
                        reason: "bye".into(),
                    })))
                    .await;
                break;
            }
            _ => {
                let r = json!({"type": "res", "id": id, "ok": true,
                    "payload": {"from": "upstream", "method": method}});
                let _ = ws.send(Message::text(r.to_string())).await;
            }
        }
    }
    seen.record(|s| s.open -= 1);
}

async fn front_door(upstream: SocketAddr) -> TestServer {
    let mut cfg = config_with(json!({}));
    cfg["upstream"] = json!({"url": format!("ws://{upstream}"), "token": UPSTREAM_TOKEN});
    TestServer::start(cfg).await
}

/// Waits (bounded) until `f` holds for the fake's record, woken by each
/// change to it.
async fn until(fake: &Fake, what: &str, f: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let changed = fake.shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if f(&fake.seen()) {
            return;
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }
}

fn verifies(params: &Value, nonce: &str) -> bool {
    let d = &params["device"];
    let key: [u8; 32] = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        d["publicKey"].as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let sig: [u8; 64] = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        d["signature"].as_str().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let c = &params["client"];
    let scopes: Vec<String> = serde_json::from_value(params["scopes"].clone()).unwrap();
    let payload = payload_v3(
        d["id"].as_str().unwrap(),
        c["id"].as_str().unwrap(),
        c["mode"].as_str().unwrap(),
        params["role"].as_str().unwrap(),
        &scopes,
        d["signedAt"].as_u64().unwrap(),
        params["auth"]["token"].as_str().unwrap_or(""),
        nonce,
        c["platform"].as_str().unwrap_or(""),
        c["deviceFamily"].as_str().unwrap_or(""),
    );
    d["nonce"] == nonce
        && VerifyingKey::from_bytes(&key)
            .unwrap()
            .verify(payload.as_bytes(), &Signature::from_bytes(&sig))
            .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_session_is_the_upstreams_with_clawgates_auth() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    let dev = DeviceIdentity::generate();
    let opts = ConnectOpts::with_token(TOKEN)
        .device(&dev)
        .scopes(&["operator.read"])
        .extra("caps", json!(["tool-events"]));
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let hello = c.connect(&opts).await.expect("bridged hello-ok");
    // The upstream's hello, with clawgate's auth (its device token).
    assert_eq!(hello["server"]["version"], "2026.9.6", "{hello}");
    assert_eq!(hello["server"]["connId"], "up-1");
    assert_eq!(
        hello["features"]["methods"],
        json!(["sessions.list", "status"])
    );
    assert_eq!(hello["snapshot"]["health"]["upstream"], true);
    assert!(hello["auth"]["deviceToken"].is_string(), "{hello}");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));

    let (params, nonce) = fake.seen().connects[0].clone();
    // The upstream's secret, clawgate's identity for the device (signed over
    // the upstream's nonce), the granted role and scopes, the client info.
    assert_eq!(params["auth"], json!({"token": UPSTREAM_TOKEN}));
    assert_ne!(params["device"]["id"], dev.device_id);
    assert_ne!(params["device"]["publicKey"], dev.public_key);
    assert!(verifies(&params, &nonce), "{params}");
    assert_eq!(params["role"], "operator");
    assert_eq!(params["scopes"], json!(["operator.read"]));
    assert_eq!(params["client"]["id"], hello_client_id());
    assert_eq!(params["caps"], json!(["tool-events"]));
    assert!(
        !params.to_string().contains(TOKEN),
        "the downstream token stays downstream"
    );

    // What the admin API says about the upstream now.
    let admin = srv.admin();
    let u = admin.get("/admin/v1/upstream").await.json();
    assert_eq!(u["mode"], "front-door", "{u}");
    assert_eq!(u["url"], format!("ws://{}", fake.addr));
    assert_eq!(u["reachable"], true, "{u}");
    assert_eq!(u["server"]["version"], "2026.9.6", "{u}");
    assert_eq!(u["bridgedSessions"], 1, "{u}");
    assert_eq!(u["connects"]["ok"], 1, "{u}");
    assert_eq!(u["secretFrom"], "upstream.token");
    assert!(!u.to_string().contains(UPSTREAM_TOKEN));
    let sessions = admin.get("/admin/v1/sessions").await.json();
    assert_eq!(sessions["sessions"][0]["bridged"], true, "{sessions}");
    let ready = admin.get("/readyz").await.json();
    assert_eq!(ready["upstream"]["reachable"], true, "{ready}");
    // The next challenge advertises what the upstream's did.
    let probe = Conn::open(&srv.url, &[]).await.unwrap();
    assert_eq!(
        probe.challenge["capabilities"],
        json!(["model-catalog-snapshot", "fake-cap"])
    );
    probe.close().await;

    // device.* is clawgate's; the rest goes upstream by id.
    // (clawgate's own scope rules: this session lacks operator.pairing)
    let e = c
        .rpc("device.pair.list", json!({}))
        .await
        .expect_err("clawgate's answer");
    assert_eq!(e["details"]["missingScope"], "operator.pairing", "{e}");
    let e = c
        .rpc("device.scopes.requestUpgrade", json!({}))
        .await
        .expect_err("clawgate's refusal");
    assert!(
        e["message"].as_str().unwrap().contains("device authority"),
        "{e}"
    );
    let r = c.rpc("sessions.list", json!({})).await.expect("relayed");
    assert_eq!(r, json!({"from": "upstream", "method": "sessions.list"}));
    let metrics = admin.get("/metrics").await.body;
    assert!(
        metrics.contains("clawgate_relayed_frames_total{direction=\"up\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clawgate_upstream_connects_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );
    assert_eq!(fake.seen().methods, vec!["sessions.list".to_string()]);

    // Upstream events reach the client renumbered for its socket; the
    // upstream's device.pair.* events about clawgate's identities do not.
    c.rpc("test.events", json!({})).await.unwrap();
    let e1 = c.next_event("tick", T).await.unwrap();
    let e2 = c.next_event("tick", T).await.unwrap();
    assert_eq!((e1["seq"].clone(), e2["seq"].clone()), (json!(5), json!(6)));
    // The response came after the events on the same socket: all are in.
    assert!(c
        .next_event("device.pair.requested", Duration::ZERO)
        .await
        .is_none());

    // The same device again: the same upstream identity; another: another.
    c.close().await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&opts).await.unwrap();
    let dev2 = DeviceIdentity::generate();
    let mut c2 = Conn::open(&srv.url, &[]).await.unwrap();
    c2.connect(&ConnectOpts::with_token(TOKEN).device(&dev2))
        .await
        .unwrap();
    let ids: Vec<Value> = fake
        .seen()
        .connects
        .iter()
        .map(|(p, _)| p["device"]["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], ids[1], "stable across reconnects");
    assert_ne!(ids[0], ids[2], "distinct per device");
    c.close().await;
    c2.close().await;
    until(&fake, "the upstream sides to close", |s| s.open == 0).await;
    srv.stop().await;
}

fn hello_client_id() -> Value {
    json!(ConnectOpts::with_token(TOKEN).client_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clawgate_scopes_bound_what_the_upstream_grants() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    let dev = DeviceIdentity::generate();
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let hello = c
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&dev)
                .scopes(&["operator.read"]),
        )
        .await
        .unwrap();
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    c.close().await;
    // With its device token alone, the device may not widen its scopes: the
    // upstream is never asked.
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let f = c
        .connect(
            &ConnectOpts::default()
                .device(&dev)
                .device_token(&token)
                .scopes(&["operator.read", "operator.admin"]),
        )
        .await
        .expect_err("refused by clawgate");
    assert!(f.error.is_some(), "{f}");
    assert_eq!(fake.seen().connects.len(), 1);
    for (p, _) in &fake.seen().connects {
        assert!(!p["scopes"].to_string().contains("operator.admin"), "{p}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_an_upstream_session_ends() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    // The upstream closes: the client gets the same code and reason.
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    c.send_json(&json!({"type": "req", "id": "x", "method": "test.close"}))
        .await;
    assert_eq!(c.expect_close(T).await, Some((4000, "bye".to_string())));

    // clawgate removes the device: both sides close (4001 downstream).
    let dev = DeviceIdentity::generate();
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&dev))
        .await
        .unwrap();
    let admin = srv.admin();
    let r = admin
        .delete(&format!("/admin/v1/devices/{}", dev.device_id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, _) = c.expect_close(T).await.expect("closed");
    assert_eq!(code, 4001);
    until(&fake, "the upstream side to be closed by clawgate", |s| {
        s.closes.contains(&4001)
    })
    .await;
    until(&fake, "no upstream session left", |s| s.open == 0).await;
    let ready = admin.get("/readyz").await.json();
    assert_eq!(ready["sessions"], 0, "no session left behind: {ready}");
    srv.stop().await;

    // The upstream is still starting: the client gets its answer as it is.
    let starting = fake_starting().await;
    let srv = front_door(starting).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .expect_err("upstream starting");
    assert_eq!(f.code(), Some("UNAVAILABLE"), "{f}");
    assert_eq!(f.error.as_ref().unwrap()["retryable"], true);
    assert_eq!(f.close, Some((1013, "gateway starting".to_string())));
    srv.stop().await;

    // Nothing listens upstream: UNAVAILABLE, retryable, close 1013; the
    // admin API keeps working.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let srv = front_door(addr).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .expect_err("no upstream");
    assert_eq!(f.code(), Some("UNAVAILABLE"), "{f}");
    assert_eq!(f.error.as_ref().unwrap()["retryable"], true);
    assert_eq!(f.close_code(), Some(1013));
    assert_eq!(
        srv.admin().get("/admin/v1/pairing/requests").await.status,
        200
    );
    srv.stop().await;
}

async fn fake_starting() -> SocketAddr {
    fake(Answer::Starting).await.addr
}

async fn front_door_with(upstream: SocketAddr, limits: Value) -> TestServer {
    let mut cfg = config_with(json!({"limits": limits}));
    cfg["upstream"] = json!({"url": format!("ws://{upstream}"), "token": UPSTREAM_TOKEN});
    TestServer::start(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_upstream_frame_closes_the_session_and_nothing_is_left() {
    let fake = fake(Answer::HelloThenHuge).await;
    let srv = front_door_with(fake.addr, json!({"workers": 1, "maxPayload": 65536})).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    let (code, reason) = c.expect_close(T).await.expect("closed");
    assert_eq!(
        (code, reason.as_str()),
        (1011, "upstream frame over the size limit")
    );
    until(&fake, "the upstream side to close", |s| s.open == 0).await;
    assert_eq!(srv.admin().get("/readyz").await.json()["sessions"], 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_faster_than_the_upstream_reads_is_bounded() {
    let fake = fake(Answer::HelloThenDeaf).await;
    let srv = front_door_with(fake.addr, json!({"workers": 1, "pingIntervalMs": 300})).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    // Far more than the socket buffers hold: clawgate queues none of it and
    // ends the session once a write upstream has stalled for a ping interval.
    let frame = json!({"type": "req", "id": "1", "method": "chat.send", "params": {"text": "y".repeat(60_000)}}).to_string();
    let mut sent = 0usize;
    let closed = loop {
        if c.try_send(tokio_tungstenite::tungstenite::Message::text(frame.clone()))
            .await
            .is_err()
        {
            break c.expect_close(T).await;
        }
        sent += 1;
        if sent > 20_000 {
            panic!("clawgate kept accepting: {sent} frames");
        }
        if sent.is_multiple_of(50) {
            if let Some(close) = c.expect_close(Duration::from_millis(1)).await {
                break Some(close);
            }
        }
    };
    let (code, reason) = closed.unwrap_or((1006, String::new()));
    assert!(
        code == 1011 || code == 1006,
        "closed with {code} {reason:?} after {sent} frames"
    );
    let ready = srv.admin().get("/readyz").await.json();
    assert_eq!(ready["sessions"], 0, "{ready}");
    srv.stop().await;
}

/// A front door to `upstream` with extra `upstream.*` settings.
async fn front_door_upstream(upstream: SocketAddr, extra: Value) -> TestServer {
    let mut cfg = config_with(json!({}));
    let mut u = json!({"url": format!("ws://{upstream}"), "token": UPSTREAM_TOKEN});
    u.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    cfg["upstream"] = u;
    TestServer::start(cfg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_connect_gets_no_longer_than_its_timeout() {
    // It chatters (events before any answer): the one deadline for opening
    // the session still holds.
    let fake = fake(Answer::Silent).await;
    let srv = front_door_upstream(fake.addr, json!({"connectTimeoutMs": 300})).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let f = c
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .expect_err("no hello from the upstream");
    assert_eq!(f.code(), Some("UNAVAILABLE"), "{f}");
    assert!(f.message().unwrap().contains("no answer in time"), "{f}");
    assert_eq!(f.close_code(), Some(1013));
    until(&fake, "the upstream side to be dropped", |s| s.open == 0).await;
    let u = srv.admin().get("/admin/v1/upstream").await.json();
    assert!(
        u["lastError"]
            .as_str()
            .unwrap_or("")
            .contains("no answer in time"),
        "{u}"
    );
    assert_eq!(srv.admin().get("/readyz").await.json()["sessions"], 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_upstream_closes_the_session_and_a_reused_id_is_relayed_as_is() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    // Two requests with one id in flight: clawgate keeps no table of ids,
    // both go upstream and both answers come back.
    for m in ["sessions.list", "status"] {
        c.send_json(&json!({"type": "req", "id": "same", "method": m}))
            .await;
    }
    let mut answers = vec![];
    for _ in 0..2 {
        let r = c.wait_res(&json!("same"), T).await.expect("an answer");
        answers.push(r["payload"]["method"].clone());
    }
    assert_eq!(answers, vec![json!("sessions.list"), json!("status")]);

    // A frame that is not JSON: the client is not handed it as if the
    // gateway had sent it.
    c.send_json(&json!({"type": "req", "id": "g", "method": "test.garbage"}))
        .await;
    assert_eq!(
        c.expect_close(T).await,
        Some((1011, "upstream gateway sent a malformed frame".to_string()))
    );
    until(&fake, "the upstream side to be closed with 1003", |s| {
        s.closes.contains(&1003)
    })
    .await;
    // A binary frame is not part of the protocol either.
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    c.send_json(&json!({"type": "req", "id": "b", "method": "test.binary"}))
        .await;
    assert_eq!(c.expect_close(T).await.map(|c| c.0), Some(1011));
    until(&fake, "no upstream session left", |s| s.open == 0).await;
    assert_eq!(srv.admin().get("/readyz").await.json()["sessions"], 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_change_of_the_upstream_applies_to_new_sessions() {
    let a = fake(Answer::Hello).await;
    let b = fake(Answer::Hello).await;
    let mut cfg = config_with(json!({}));
    cfg["upstream"] = json!({"url": format!("ws://{}", a.addr), "token": UPSTREAM_TOKEN});
    let srv = TestServer::start_watching(cfg.clone()).await;
    let admin = srv.admin();
    let mut old = Conn::open(&srv.url, &[]).await.unwrap();
    old.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();

    let rx = admin.sse();
    cfg["upstream"]["url"] = json!(format!("ws://{}", b.addr));
    std::fs::write(
        srv.config_path(),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let ev =
        tokio::task::spawn_blocking(move || common::http::sse_event(&rx, "config.reloaded", T))
            .await
            .unwrap()
            .expect("the edit is applied");
    assert!(
        ev["changed"]
            .as_array()
            .unwrap()
            .contains(&json!("upstream.url")),
        "{ev}"
    );
    let u = admin.get("/admin/v1/upstream").await.json();
    assert_eq!(u["url"], format!("ws://{}", b.addr), "{u}");

    // A new session goes to the new upstream ...
    let mut new = Conn::open(&srv.url, &[]).await.unwrap();
    new.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    assert_eq!(b.seen().connects.len(), 1);
    // ... and the one already open stays on the old one until it reconnects.
    old.rpc("agents.list", json!({})).await.unwrap();
    new.rpc("models.list", json!({})).await.unwrap();
    assert_eq!(a.seen().methods, vec!["agents.list".to_string()]);
    assert_eq!(b.seen().methods, vec!["models.list".to_string()]);
    assert_eq!(a.seen().connects.len(), 1);
    old.close().await;
    new.close().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_known_by_its_own_id_on_each_side_and_removal_makes_the_upstream_forget_it() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    let node_dev = DeviceIdentity::generate();
    let mut node = Conn::open(&srv.url, &[]).await.unwrap();
    let mut o = ConnectOpts::with_token(TOKEN)
        .device(&node_dev)
        .role("node")
        .client("node-host", "node")
        .scopes(&[]);
    o = o.extra("commands", json!(["system.which"]));
    node.connect(&o).await.expect("a local node pairs silently");
    let upstream_id = fake.seen().connects[0].0["device"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(upstream_id, node_dev.device_id);
    assert_eq!(fake.seen().connects[0].0["role"], "node");
    // The invoke the upstream addressed to its node id reaches the node
    // under the node's own id ...
    let ev = node
        .next_event("node.invoke.request", T)
        .await
        .expect("invoke");
    assert_eq!(ev["payload"]["nodeId"], json!(node_dev.device_id), "{ev}");
    // ... and the node's answer goes back under the id the upstream knows.
    let r = node
        .rpc(
            "node.invoke.result",
            json!({"id": "inv-1", "nodeId": node_dev.device_id, "ok": true, "payloadJSON": "{}"}),
        )
        .await
        .expect("relayed");
    assert_eq!(r["method"], "node.invoke.result");
    let sent = fake.seen().params.last().cloned().unwrap();
    assert_eq!(sent["nodeId"], json!(upstream_id), "{sent}");

    // An operator sees the node by its clawgate device id, and addresses it so.
    let mut op = Conn::open(&srv.url, &[]).await.unwrap();
    op.connect(
        &ConnectOpts::with_token(TOKEN)
            .device(&DeviceIdentity::generate())
            .scopes(&["operator.read", "operator.write"]),
    )
    .await
    .unwrap();
    let list = op.rpc("node.list", json!({})).await.unwrap();
    assert_eq!(
        list["nodes"][0]["nodeId"],
        json!(node_dev.device_id),
        "{list}"
    );
    let d = op
        .rpc("node.describe", json!({"nodeId": node_dev.device_id}))
        .await
        .unwrap();
    assert_eq!(d["nodeId"], json!(node_dev.device_id), "{d}");
    assert_eq!(
        fake.seen().params.last().unwrap()["nodeId"],
        json!(upstream_id)
    );
    // The admin API shows the node's role and how the upstream sees it.
    let v = srv
        .admin()
        .get(&format!("/admin/v1/devices/{}", node_dev.device_id))
        .await
        .json();
    assert_eq!(v["roles"], json!(["node"]), "{v}");
    assert_eq!(v["upstream"]["nodeId"], json!(upstream_id), "{v}");
    assert_eq!(v["upstream"]["approvalState"], "pending-approval", "{v}");
    assert_eq!(v["upstream"]["pendingRequestId"], "surface-1", "{v}");
    assert_eq!(v["upstream"]["connected"], true, "{v}");

    // Removing the device in clawgate closes the node (4001) and makes the
    // upstream forget the identity: clawgate's own session removes it there.
    let r = srv
        .admin()
        .delete(&format!("/admin/v1/devices/{}", node_dev.device_id))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(node.expect_close(T).await.map(|c| c.0), Some(4001));
    until(&fake, "device.pair.remove upstream", |s| {
        s.methods.iter().any(|m| m == "device.pair.remove")
    })
    .await;
    {
        let seen = fake.seen();
        let i = seen
            .methods
            .iter()
            .position(|m| m == "device.pair.remove")
            .unwrap();
        assert_eq!(seen.params[i]["deviceId"], json!(upstream_id));
        let maint = &seen.connects.last().unwrap().0;
        assert_eq!(
            maint["scopes"],
            json!(["operator.admin", "operator.pairing"])
        );
        assert_eq!(maint["auth"], json!({"token": UPSTREAM_TOKEN}));
        assert_ne!(maint["device"]["id"], json!(upstream_id));
    }
    op.close().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_reaches_the_upstream_with_an_origin_it_accepts() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    // A local browser (loopback origin): clawgate admits it; the upstream
    // refuses a browser client without an Origin, so it gets its own.
    let mut c = Conn::open(&srv.url, &[("Origin", "http://127.0.0.1:18789")])
        .await
        .unwrap();
    let mut o = ConnectOpts::with_token(TOKEN)
        .device(&DeviceIdentity::generate())
        .client("openclaw-control-ui", "webchat")
        .scopes(&["operator.read"]);
    o.sig_version = common::client::SigVersion::V2;
    c.connect(&o).await.expect("bridged browser");
    // A CLI session gets none.
    let mut cli = Conn::open(&srv.url, &[]).await.unwrap();
    cli.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    let origins = fake.seen().origins.clone();
    assert_eq!(
        origins,
        vec![Some(format!("http://{}", fake.addr)), None],
        "browser first, then the CLI"
    );
    c.close().await;
    cli.close().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_remove_of_one_of_clawgates_nodes_is_clawgates_and_other_node_ids_are_relayed() {
    let fake = fake(Answer::Hello).await;
    let srv = front_door(fake.addr).await;
    let node_opts = |d: &DeviceIdentity| {
        ConnectOpts::with_token(TOKEN)
            .device(d)
            .role("node")
            .client("node-host", "node")
            .scopes(&[])
    };
    let only_node = DeviceIdentity::generate();
    let mut node = Conn::open(&srv.url, &[]).await.unwrap();
    node.connect(&node_opts(&only_node))
        .await
        .expect("paired silently");
    let up_node = fake.seen().connects[0].0["device"]["id"].clone();
    // A device that is an operator and a node (the CLI and the node host of
    // one machine share their identity).
    let both = DeviceIdentity::generate();
    let mut both_op = Conn::open(&srv.url, &[]).await.unwrap();
    both_op
        .connect(
            &ConnectOpts::with_token(TOKEN)
                .device(&both)
                .scopes(&["operator.read", "operator.pairing"]),
        )
        .await
        .expect("operator, paired silently");
    // Its node role is a role upgrade, approved here with the admin API.
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let f = c.connect(&node_opts(&both)).await.unwrap_err();
    let rid = f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    let r = srv
        .admin()
        .post(
            &format!("/admin/v1/pairing/requests/{rid}/approve"),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut both_node = Conn::open(&srv.url, &[]).await.unwrap();
    both_node
        .connect(&node_opts(&both))
        .await
        .expect("and a node");
    let up_both = fake.seen().connects.last().unwrap().0["device"]["id"].clone();
    assert_eq!(fake.seen().connects.last().unwrap().0["role"], "node");

    let mut op = Conn::open(&srv.url, &[]).await.unwrap();
    op.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.pairing"]))
        .await
        .unwrap();
    let r = op
        .rpc("node.pair.remove", json!({"nodeId": only_node.device_id}))
        .await
        .unwrap();
    assert_eq!(r, json!({"nodeId": only_node.device_id}));
    assert_eq!(
        node.expect_close(T).await,
        Some((4001, "device removed".to_string()))
    );
    let ev = op
        .next_event("node.pair.resolved", T)
        .await
        .expect("announced");
    assert_eq!(ev["payload"]["decision"], "removed", "{ev}");
    assert_eq!(ev["payload"]["requestId"], "", "{ev}");
    assert_eq!(ev["payload"]["nodeId"], json!(only_node.device_id), "{ev}");
    // A node-only device is gone in clawgate, and the upstream forgot it.
    let got = srv
        .admin()
        .get(&format!("/admin/v1/devices/{}", only_node.device_id))
        .await;
    assert_eq!(got.status, 404, "{}", got.body);
    until(&fake, "device.pair.remove upstream", |s| {
        s.methods.iter().any(|m| m == "device.pair.remove")
    })
    .await;
    {
        let s = fake.seen();
        let i = s
            .methods
            .iter()
            .position(|m| m == "device.pair.remove")
            .unwrap();
        assert_eq!(s.params[i]["deviceId"], up_node);
        assert!(
            !s.methods.iter().any(|m| m == "node.pair.remove"),
            "{:?}",
            s.methods
        );
    }

    // The operator-and-node device keeps its operator role and session; only
    // the node session closes, and the upstream drops the node role there.
    op.rpc("node.pair.remove", json!({"nodeId": both.device_id}))
        .await
        .unwrap();
    assert_eq!(both_node.expect_close(T).await.map(|c| c.0), Some(4001));
    let v = srv
        .admin()
        .get(&format!("/admin/v1/devices/{}", both.device_id))
        .await
        .json();
    assert_eq!(v["roles"], json!(["operator"]), "{v}");
    assert!(
        both_op.rpc("status", json!({})).await.is_ok(),
        "operator session kept"
    );
    until(&fake, "node.pair.remove upstream", |s| {
        s.methods.iter().any(|m| m == "node.pair.remove")
    })
    .await;
    {
        let s = fake.seen();
        let i = s
            .methods
            .iter()
            .position(|m| m == "node.pair.remove")
            .unwrap();
        assert_eq!(s.params[i]["nodeId"], up_both);
    }
    // A node id that is none of clawgate's nodes (any more) is the
    // upstream's to answer.
    for other in ["not-one-of-ours", both.device_id.as_str()] {
        let r = op
            .rpc("node.pair.remove", json!({"nodeId": other}))
            .await
            .unwrap();
        assert_eq!(r["from"], "upstream", "{r}");
    }
    op.close().await;
    both_op.close().await;
    srv.stop().await;
}
