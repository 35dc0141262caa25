//! Front-door mode, HTTP: requests on the gateway port go to the upstream,
//! streamed, with clawgate's forwarded headers, no hop-by-hop headers, and
//! credentials checked and replaced.

mod common;

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clawgate::admin::client::Client;
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const UPSTREAM_TOKEN: &str = "the-upstream-token-0123456789";

/// One request as the fake upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Releases the second chunk of `/stream`.
    release: Arc<tokio::sync::Notify>,
}

/// A minimal HTTP/1.1 upstream: answers, then closes each connection.
async fn fake() -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(vec![]));
    let release = Arc::new(tokio::sync::Notify::new());
    let (s, r) = (seen.clone(), release.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let (s, r) = (s.clone(), r.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let mut lines = head.split("\r\n");
                let target = lines
                    .next()
                    .unwrap_or("")
                    .split(' ')
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                let headers: Vec<(String, String)> = lines
                    .take_while(|l| !l.is_empty())
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                let req = Seen {
                    target: target.clone(),
                    headers,
                };
                s.lock().unwrap().push(req.clone());
                let path = target.split('?').next().unwrap_or("").to_string();
                let simple = |ct: &str, body: String| {
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nkeep-alive: timeout=5\r\nx-upstream: yes\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                match path.as_str() {
                    "/" | "/index.html" => {
                        let _ = tcp
                            .write_all(
                                simple("text/html", "<title>OpenClaw Control</title>".into())
                                    .as_bytes(),
                            )
                            .await;
                    }
                    "/assets/app.js" => {
                        let _ = tcp
                            .write_all(
                                simple("application/javascript", "console.log(1)".into())
                                    .as_bytes(),
                            )
                            .await;
                    }
                    "/stream" => {
                        let _ = tcp
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")
                            .await;
                        let _ = tcp.write_all(b"a\r\nchunk-one\n\r\n").await;
                        let _ = tcp.flush().await;
                        // The second chunk only once the client has read the first.
                        r.notified().await;
                        let _ = tcp.write_all(b"a\r\nchunk-two\n\r\n0\r\n\r\n").await;
                    }
                    "/distrust" => {
                        let body = r#"{"error":{"message":"Proxy client attribution is required.","type":"proxy_attribution_required"}}"#;
                        let _ = tcp
                            .write_all(format!("HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                    }
                    "/forbidden" => {
                        let body = r#"{"error":"nope"}"#;
                        let _ = tcp
                            .write_all(format!("HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                    }
                    "/upload" => {
                        // Reads the whole body (declared length or chunked), then answers its size.
                        let len = req
                            .header("content-length")
                            .and_then(|v| v.parse::<usize>().ok());
                        let start = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        let mut body = buf[start..].to_vec();
                        let done = |b: &[u8]| match len {
                            Some(n) => b.len() >= n,
                            None => b.ends_with(b"0\r\n\r\n"),
                        };
                        while !done(&body) {
                            match tcp.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => body.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let answer = simple("text/plain", body.len().to_string());
                        let _ = tcp.write_all(answer.as_bytes()).await;
                    }
                    _ => {
                        let echo =
                            json!({"target": req.target, "headers": req.headers}).to_string();
                        let _ = tcp
                            .write_all(simple("application/json", echo).as_bytes())
                            .await;
                    }
                }
                let _ = tcp.shutdown().await;
            });
        }
    });
    Fake {
        addr,
        seen,
        release,
    }
}

async fn front_door(upstream: SocketAddr) -> TestServer {
    let mut cfg = config_with(json!({}));
    cfg["upstream"] = json!({"url": format!("ws://{upstream}"), "token": UPSTREAM_TOKEN});
    TestServer::start(cfg).await
}

fn http(srv: &TestServer) -> Client {
    common::http::gateway_client(&srv.url)
}

async fn get(c: &Client, path: &str, headers: &[(&str, &str)]) -> clawgate::admin::client::Answer {
    common::http::send(c, "GET", path, headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_ui_and_other_http_come_from_the_upstream() {
    let fake = fake().await;
    let srv = front_door(fake.addr).await;
    let c = http(&srv);
    let a = get(&c, "/", &[]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, "<title>OpenClaw Control</title>");
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert_eq!(a.header("x-upstream"), Some("yes"));
    assert_eq!(
        a.header("keep-alive"),
        None,
        "hop-by-hop headers stop at clawgate"
    );
    let a = get(&c, "/assets/app.js", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "console.log(1)"));
    // clawgate's own health endpoints are not proxied
    let before = fake.seen.lock().unwrap().len();
    let a = get(&c, "/healthz", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(fake.seen.lock().unwrap().len(), before);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_hop_by_hop_headers_and_credentials() {
    let fake = fake().await;
    let srv = front_door(fake.addr).await;
    let c = http(&srv);
    let last = |f: &Fake| f.seen.lock().unwrap().last().cloned().unwrap();

    // clawgate's shared token is checked and replaced by the upstream's;
    // hop-by-hop headers (and those Connection names) do not pass.
    let bearer = format!("Bearer {TOKEN}");
    let a = get(
        &c,
        "/v1/models?x=1",
        &[
            ("Authorization", &bearer),
            ("Connection", "keep-alive, x-secret-hop"),
            ("X-Secret-Hop", "1"),
            ("Te", "trailers"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let s = last(&fake);
    assert_eq!(
        s.header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str()),
        "{s:?}"
    );
    assert_eq!(s.header("x-secret-hop"), None, "{s:?}");
    assert_eq!(s.header("te"), None, "{s:?}");
    // A client on this host goes upstream as a local request: no forwarded
    // chain of loopback hops (the real gateway refuses one).
    for h in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        assert_eq!(s.header(h), None, "{h}: {s:?}");
    }
    assert_eq!(s.target, "/v1/models?x=1");
    assert!(
        !format!("{s:?}").contains(TOKEN),
        "the downstream token stays downstream"
    );

    // ?token= likewise
    let a = get(&c, &format!("/api/thing?token={TOKEN}&a=b"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        last(&fake).target,
        format!("/api/thing?token={UPSTREAM_TOKEN}&a=b")
    );

    // a token clawgate cannot check: 401 here, the upstream never asked
    let before = fake.seen.lock().unwrap().len();
    let a = get(
        &c,
        "/v1/models",
        &[("Authorization", "Bearer not-a-token-of-this-gateway")],
    )
    .await;
    assert_eq!(a.status, 401, "{a:?}");
    let a = get(&c, "/v1/models?token=nope", &[]).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert_eq!(fake.seen.lock().unwrap().len(), before);

    // no credential: passes without one
    let a = get(&c, "/avatar/1.png", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(last(&fake).header("authorization"), None);

    // forwarded headers from an untrusted peer: refused, as for the WebSocket
    let a = get(&c, "/", &[("X-Forwarded-For", "203.0.113.7")]).await;
    assert_eq!(a.status, 403, "{a:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_passes_as_it_comes() {
    let fake = fake().await;
    let srv = front_door(fake.addr).await;
    let c = http(&srv);
    let release = fake.release.clone();
    let got = tokio::task::spawn_blocking(move || {
        let (status, mut r) = c.stream("/stream").unwrap();
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        // The first chunk arrived while the upstream holds back the second:
        // nothing waited for the whole answer.
        release.notify_one();
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        (status, first, rest)
    })
    .await
    .unwrap();
    assert_eq!(
        got,
        (200, "chunk-one\n".to_string(), "chunk-two\n".to_string())
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_not_there_is_a_502() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap();
    drop(gone);
    let srv = front_door(addr).await;
    let a = get(&http(&srv), "/", &[]).await;
    assert_eq!(a.status, 502, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["error"]["type"], "upstream_unavailable");
    srv.stop().await;
}

/// One raw HTTP/1.1 exchange: `head` (and `body` parts, written one by one)
/// sent, the whole answer read until the server closes.
async fn raw(addr: &str, head: &str, body: &[Vec<u8>]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    for part in body {
        if tcp.write_all(part).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_and_a_huge_header_are_refused() {
    let fake = fake().await;
    let mut cfg = config_with(json!({"limits": {"maxHttpBodyBytes": 4096}}));
    cfg["upstream"] = json!({"url": format!("ws://{}", fake.addr), "token": UPSTREAM_TOKEN});
    let srv = TestServer::start(cfg).await;
    let addr = srv.running().gateway_addr.to_string();
    let head = |extra: &str| {
        format!("POST /upload HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n{extra}\r\n")
    };
    // Under the limit: relayed whole.
    let a = raw(&addr, &head("content-length: 100\r\n"), &[vec![b'a'; 100]]).await;
    assert_eq!(status_of(&a), 200, "{a}");
    assert!(a.ends_with("\r\n\r\n100"), "{a}");
    // A declared length over it: refused before anything goes upstream.
    let before = fake.seen.lock().unwrap().len();
    let a = raw(&addr, &head("content-length: 5000\r\n"), &[]).await;
    assert_eq!(status_of(&a), 413, "{a}");
    assert!(
        a.contains("gateway.limits.maxHttpBodyBytes (4096 bytes)"),
        "{a}"
    );
    assert_eq!(fake.seen.lock().unwrap().len(), before);
    // A chunked body that grows over it: cut off, 413.
    let chunk = |n: usize| {
        let mut c = format!("{n:x}\r\n").into_bytes();
        c.extend(std::iter::repeat_n(b'b', n));
        c.extend_from_slice(b"\r\n");
        c
    };
    let mut parts: Vec<Vec<u8>> = (0..10).map(|_| chunk(1000)).collect();
    parts.push(b"0\r\n\r\n".to_vec());
    let a = raw(&addr, &head("transfer-encoding: chunked\r\n"), &parts).await;
    assert_eq!(status_of(&a), 413, "{a}");
    // A chunked body under it passes.
    let a = raw(
        &addr,
        &head("transfer-encoding: chunked\r\n"),
        &[chunk(1000), b"0\r\n\r\n".to_vec()],
    )
    .await;
    assert_eq!(status_of(&a), 200, "{a}");

    // A head far over what the server reads: refused, and the server goes on.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: gw\r\nconnection: close\r\nx-big: {}\r\n\r\n",
        "h".repeat(300_000)
    );
    let a = raw(&addr, &big, &[]).await;
    let st = status_of(&a);
    assert_eq!(st, 431, "{a:.200}");
    let a = get(&http(&srv), "/", &[]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(srv.admin().get("/readyz").await.json()["sessions"], 0);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_client_goes_upstream_with_its_address_and_a_distrusting_upstream_is_named() {
    let fake = fake().await;
    // clawgate trusts the local proxy in front of it (its own file); the
    // upstream's trust is openclaw.json's, which clawgate does not take.
    let mut cfg = config_with(json!({"trustedProxies": ["10.9.9.9"]}));
    cfg["upstream"] = json!({"url": format!("ws://{}", fake.addr), "token": UPSTREAM_TOKEN});
    cfg["clawgate.json"] = json!({"gateway": {"trustedProxies": ["127.0.0.1"]}});
    let srv = TestServer::start(cfg).await;
    let c = http(&srv);
    let a = get(
        &c,
        "/v1/models",
        &[
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "gw.example"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let s = fake.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(s.header("x-forwarded-for"), Some("203.0.113.7"), "{s:?}");
    assert_eq!(s.header("x-forwarded-proto"), Some("https"));
    assert_eq!(s.header("x-forwarded-host"), Some("gw.example"));
    // The upstream refusing clawgate's forwarded headers is said for what it is.
    let a = get(&c, "/distrust", &[("X-Forwarded-For", "203.0.113.7")]).await;
    assert_eq!(a.status, 502, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["error"]["type"], "upstream_distrusts_clawgate");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(
            "add \"127.0.0.1\" to gateway.trustedProxies in the real gateway's openclaw.json"
        ),
        "{v}"
    );
    // Another 403 of the upstream passes as it is.
    let a = get(&c, "/forbidden", &[("X-Forwarded-For", "203.0.113.7")]).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.body, "{\"error\":\"nope\"}");
    srv.stop().await;

    // openclaw.json's trustedProxies are the real gateway's in front-door
    // mode: alone, they do not make clawgate trust anyone.
    let mut cfg = config_with(json!({"trustedProxies": ["127.0.0.1"]}));
    cfg["upstream"] = json!({"url": format!("ws://{}", fake.addr), "token": UPSTREAM_TOKEN});
    let srv = TestServer::start(cfg).await;
    let a = get(
        &http(&srv),
        "/v1/models",
        &[("X-Forwarded-For", "203.0.113.7")],
    )
    .await;
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("proxy_attribution_required"), "{}", a.body);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_auth_vouches_for_http_with_the_upstreams_secret() {
    let fake = fake().await;
    // As the README says: openclaw.json (the real gateway's) stays in token
    // mode; clawgate's own mode and trusted proxies are in clawgate.json.
    let mut cfg = config_with(json!({}));
    cfg["upstream"] = json!({"url": format!("ws://{}", fake.addr), "token": UPSTREAM_TOKEN});
    cfg["clawgate.json"] = json!({"gateway": {
        "auth": {
            "mode": "trusted-proxy",
            "trustedProxy": {"userHeader": "x-forwarded-user", "allowLoopback": true},
        },
        "trustedProxies": ["127.0.0.1"],
    }});
    let srv = TestServer::start(cfg).await;
    let c = http(&srv);
    let last = |f: &Fake| f.seen.lock().unwrap().last().cloned().unwrap();
    let vouched = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-User", "alice@example.test"),
    ];
    // A request the proxy vouches for goes up with the upstream's secret.
    let a = get(&c, "/v1/models", &vouched).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        last(&fake).header("authorization"),
        Some(format!("Bearer {UPSTREAM_TOKEN}").as_str())
    );
    // Without the user header: no credential is added (the upstream decides).
    let a = get(&c, "/v1/models", &vouched[..1]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(last(&fake).header("authorization"), None);
    // A scope cap clawgate could not honour is refused, not widened.
    let before = fake.seen.lock().unwrap().len();
    let mut capped = vouched.to_vec();
    capped.push(("X-OpenClaw-Scopes", "operator.read"));
    let a = get(&c, "/v1/models", &capped).await;
    assert_eq!(a.status, 403, "{a:?}");
    assert!(a.body.contains("scope_cap_unsupported"), "{}", a.body);
    assert_eq!(fake.seen.lock().unwrap().len(), before);
    srv.stop().await;
}
