//! Fuzzing on stable Rust (issue 13). cargo-fuzz needs a nightly toolchain,
//! and this project's machines have exactly one (stable) toolchain and
//! cannot fetch another, so these are mutational fuzz tests written with
//! proptest: each case takes a seed from the committed corpus
//! (`tests/fuzz/corpus/<target>/`) and applies random mutations (bit
//! flips, inserted and deleted ranges, duplicated ranges, splices with
//! another seed, JSON-ish tokens), then feeds it to:
//!
//! - `frames_before_hello`: the real server's first frame (the `connect`
//!   frame and its params, through the WebSocket);
//! - `frames_after_hello`: requests on an accepted session;
//! - `config_files`: the config parser and validator (`config::load`);
//! - `forwarded_headers`: the forwarded-header parsers and attribution;
//! - `admin_bodies`: the admin API's JSON bodies, on its mutating routes.
//!
//! Each property: no panic, a clear answer (a `res` or a close with a code
//! on the wire; an error with a message; a 4xx with the error table's
//! `code`), and the server still serves afterwards. A failing case is
//! shrunk by proptest and its seed saved in `tests/fuzz/regressions.txt`
//! (commit it: it is replayed first from then on).
//!
//! CI runs `PROPTEST_CASES` (default 256) cases per target; a long run:
//! `PROPTEST_CASES=200000 cargo test --release --test fuzz`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::server::{config_with, TestServer, TOKEN};
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(5);

fn corpus(target: &str) -> &'static [Vec<u8>] {
    static ALL: OnceLock<std::collections::HashMap<String, Vec<Vec<u8>>>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
        let mut m = std::collections::HashMap::new();
        for t in ["frames", "config", "forwarded", "admin"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(t))
                .unwrap_or_else(|e| panic!("corpus {t}: {e}"))
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
            assert!(!seeds.is_empty(), "corpus {t} is empty");
            m.insert(t.to_string(), seeds);
        }
        m
    });
    &all[target]
}

const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-0",
    "1e999",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\u{feff}",
    "é",
    "//",
    "/*",
    "\n",
    "'",
    "..",
    "%2F",
    "::",
    "/",
    "0x7f",
    "[::1]",
    "for=",
    ";",
    "\"type\":\"req\"",
    "\"method\":\"connect\"",
    "\"params\":",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Splice(usize, usize, usize),
    Token(usize, usize),
    Nest(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Flip(a, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(a, b)| Mutation::Insert(a, b)),
        (any::<usize>(), 1usize..64).prop_map(|(a, b)| Mutation::Delete(a, b)),
        (any::<usize>(), 1usize..64).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        (any::<usize>(), any::<usize>(), 1usize..64)
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Token(a, b)),
        (any::<usize>(), 1usize..200).prop_map(|(a, b)| Mutation::Nest(a, b)),
    ]
}

fn apply(seeds: &[Vec<u8>], seed: usize, muts: &[Mutation]) -> Vec<u8> {
    let mut v = seeds[seed % seeds.len()].clone();
    for m in muts {
        let at = |i: usize, v: &Vec<u8>| if v.is_empty() { 0 } else { i % (v.len() + 1) };
        match m {
            Mutation::Flip(i, x) if !v.is_empty() => {
                let i = i % v.len();
                v[i] ^= x | 1;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, b) => {
                let i = at(*i, &v);
                v.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(*i, &v);
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Duplicate(i, n) => {
                let i = at(*i, &v);
                let end = (i + n).min(v.len());
                let part: Vec<u8> = v[i..end].to_vec();
                v.splice(end..end, part);
            }
            Mutation::Splice(i, other, n) => {
                let o = &seeds[other % seeds.len()];
                let i = at(*i, &v);
                let from = if o.is_empty() {
                    0
                } else {
                    (other / 7) % o.len()
                };
                let part = &o[from..(from + n).min(o.len())];
                v.splice(i..i, part.iter().copied());
            }
            Mutation::Token(i, t) => {
                let i = at(*i, &v);
                let t = TOKENS[t % TOKENS.len()].as_bytes();
                v.splice(i..i, t.iter().copied());
            }
            Mutation::Nest(i, depth) => {
                let i = at(*i, &v);
                let open = "[".repeat(*depth);
                v.splice(i..i, open.bytes());
            }
        }
        v.truncate(1 << 20);
    }
    v
}

fn input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    (any::<usize>(), proptest::collection::vec(mutation(), 0..6))
        .prop_map(move |(s, m)| apply(corpus(target), s, &m))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        // cargo runs tests in the package root
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/fuzz/regressions.txt"),
        )),
        ..ProptestConfig::default()
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One server for all the wire cases (trusting 127.0.0.1, so a fuzzed
/// X-Forwarded-For is read).
fn server() -> &'static TestServer {
    static SRV: OnceLock<TestServer> = OnceLock::new();
    SRV.get_or_init(|| {
        rt().block_on(TestServer::start(config_with(
            serde_json::json!({"trustedProxies": ["127.0.0.1"]}),
        )))
    })
}

fn as_message(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(s) => Message::text(s),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

/// After sending a fuzzed frame: the server answers (a text frame) or
/// closes with a code, within `T`; never a dropped TCP connection without
/// a close frame, never silence.
async fn answered(ws: &mut common::client::Ws) -> Result<(), String> {
    loop {
        match tokio::time::timeout(T, ws.next()).await {
            Err(_) => return Err("no answer and no close in time".into()),
            Ok(None) => return Err("the connection ended without a close frame".into()),
            Ok(Some(Err(e))) => return Err(format!("the connection failed: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str())
                    .map_err(|e| format!("the server sent a frame that is not JSON ({e}): {t}"))?;
                if v["type"] == "res" {
                    return Ok(());
                }
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                return match c {
                    Some(c) if u16::from(c.code) >= 1000 => Ok(()),
                    other => Err(format!("closed without a code: {other:?}")),
                };
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// The server still does a whole handshake.
async fn still_serves(srv: &TestServer) {
    let mut c = Conn::open(&srv.url, &[])
        .await
        .expect("open after the case");
    c.connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .expect("a valid connect after the case");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_before_hello(frame in input("frames"), xff in input("forwarded"), proxied in any::<bool>()) {
        let srv = server();
        let r: Result<(), String> = rt().block_on(async {
            let xff = String::from_utf8_lossy(&xff).replace(['\r', '\n'], "");
            // Half the cases through the trusted proxy (a fuzzed X-Forwarded-For).
            let headers: Vec<(&str, &str)> = if !proxied || xff.is_empty() || !xff.is_ascii() { vec![] } else { vec![("X-Forwarded-For", xff.as_str())] };
            // A header the server refuses (403/400) is an answer too.
            if let Ok(mut c) = Conn::open(&srv.url, &headers).await {
                c.ws.send(as_message(frame)).await.map_err(|e| e.to_string())?;
                answered(&mut c.ws).await?;
            }
            still_serves(srv).await;
            Ok(())
        });
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn frames_after_hello(frame in input("frames")) {
        let srv = server();
        let r: Result<(), String> = rt().block_on(async {
            let mut c = Conn::open(&srv.url, &[]).await.map_err(|e| format!("{e:?}"))?;
            c.connect(&ConnectOpts::with_token(TOKEN).scopes(&["operator.admin"])).await.map_err(|e| format!("{e:?}"))?;
            let ws = &mut c.ws;
            ws.send(as_message(frame)).await.map_err(|e| e.to_string())?;
            // A frame that is not a request gets no answer: then a ping
            // request must still be answered on the same session.
            let probe = serde_json::json!({"type": "req", "id": "probe", "method": "health", "params": {}});
            ws.send(Message::text(probe.to_string())).await.map_err(|e| e.to_string())?;
            answered(ws).await
        });
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn config_files(text in input("config")) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("openclaw.json");
        std::fs::write(&path, &text).unwrap();
        let opts = clawgate::config::LoadOptions {
            config_path: Some(path.clone()),
            state_dir: Some(dir.path().join("state")),
            ..Default::default()
        };
        if let Err(e) = clawgate::config::load(&opts) {
            let msg = e.to_string();
            prop_assert!(!msg.trim().is_empty(), "an error without a message");
        }
    }

    #[test]
    fn forwarded_headers(value in input("forwarded"), real_ip in input("forwarded")) {
        let value = String::from_utf8_lossy(&value).into_owned();
        let hops = clawgate::net::forwarded_for(&value);
        prop_assert!(hops.iter().map(|h| h.len()).sum::<usize>() <= value.len());
        for h in &hops {
            let _ = clawgate::net::parse_hop(h);
        }
        let _ = clawgate::net::parse_hop(&value);
        let nets: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let policy = clawgate::net::ProxyPolicy { trusted: &nets, allow_real_ip_fallback: true };
        let real_ip = String::from_utf8_lossy(&real_ip).into_owned();
        for name in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            let headers = vec![(name.to_string(), value.clone()), ("x-real-ip".to_string(), real_ip.clone())];
            for peer in ["127.0.0.1", "10.1.2.3", "203.0.113.9", "::1"] {
                let a = clawgate::net::attribute(peer.parse().unwrap(), &headers, &policy);
                let _ = a.is_local();
            }
        }
    }

    #[test]
    fn admin_bodies(route in 0usize..8, body in input("admin")) {
        let srv = server();
        let admin = srv.admin();
        let (method, path) = [
            ("POST", "/admin/v1/trusted-proxies"),
            ("PUT", "/admin/v1/trusted-proxies"),
            ("POST", "/admin/v1/tokens"),
            ("POST", "/admin/v1/pairing/requests/00000000-0000-4000-8000-000000000000/approve"),
            ("POST", "/admin/v1/pairing/requests/00000000-0000-4000-8000-000000000000/reject"),
            ("PATCH", "/admin/v1/devices/0000000000000000000000000000000000000000000000000000000000000000"),
            ("POST", "/admin/v1/devices/0000000000000000000000000000000000000000000000000000000000000000/tokens/operator/rotate"),
            ("POST", "/admin/v1/config/validate"),
        ][route];
        let r = rt().block_on(common::http::try_request(
            method,
            &format!("{}{path}", admin.base),
            &[("Authorization", &format!("Bearer {}", admin.token)), ("Content-Type", "application/json")],
            Some(&String::from_utf8_lossy(&body)),
        ));
        let r = r.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        prop_assert!(r.status < 500, "{method} {path}: {} {}", r.status, r.body);
        if r.status >= 400 {
            let v: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| TestCaseError::fail(format!("a {} that is not JSON ({e}): {}", r.status, r.body)))?;
            prop_assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()), "no error code: {}", r.body);
        }
    }
}
