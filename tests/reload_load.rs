//! Reload under load (its own test binary so that its CPU use does not slow
//! the timing-sensitive reload tests): while 50 clients handshake in a loop
//! and the file alternates between two valid configs 100 times, every
//! handshake is judged entirely by one of the two configs, and no session
//! whose authority did not change is dropped.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::http::sse_event;
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};

const TOKEN_B: &str = "second-config-token-0123456789";

/// Config A: token TOKEN, tick 30 000. Config B: token TOKEN_B, tick 31 000.
fn config(b: bool) -> Value {
    let mut c = config_with(
        json!({"limits": {"workers": 2, "tickIntervalMs": if b { 31_000 } else { 30_000 }}}),
    );
    if b {
        c["gateway"]["auth"]["token"] = json!(TOKEN_B);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshakes_are_judged_by_one_config_while_the_file_alternates() {
    let srv = TestServer::start_watching(config(false)).await;

    // Sessions whose authority never changes: paired devices on their device tokens.
    let mut steady = vec![];
    for _ in 0..5 {
        let dev = DeviceIdentity::generate();
        let mut c = Conn::open(&srv.url, &[]).await.unwrap();
        let hello = c
            .connect(&ConnectOpts::with_token(TOKEN).device(&dev))
            .await
            .unwrap();
        let tok = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
        c.close().await;
        let mut c = Conn::open(&srv.url, &[]).await.unwrap();
        c.connect(&ConnectOpts::default().device(&dev).device_token(&tok))
            .await
            .unwrap();
        steady.push(c);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let mut clients = vec![];
    for i in 0..50 {
        let (url, stop, accepted, refused) = (
            srv.url.clone(),
            stop.clone(),
            accepted.clone(),
            refused.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut mixes = vec![];
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let b = n % 2 == 0;
                let token = if b { TOKEN_B } else { TOKEN };
                let Ok(mut c) = Conn::open(&url, &[]).await else {
                    continue;
                };
                match c.connect(&ConnectOpts::with_token(token)).await {
                    Ok(hello) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let want = if b { 31_000 } else { 30_000 };
                        if hello["policy"]["tickIntervalMs"] != want {
                            mixes.push(format!(
                                "token {} got {}",
                                if b { "B" } else { "A" },
                                hello["policy"]
                            ));
                        }
                    }
                    Err(e) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        if e.detail_code() != Some("AUTH_TOKEN_MISMATCH") {
                            mixes.push(format!("unexpected refusal {:?}", e.detail_code()));
                        }
                    }
                }
                c.close().await;
            }
            mixes
        }));
    }

    let admin = srv.admin();
    let rx = admin.sse();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 1..=100 {
        let b = i % 2 == 1;
        let tmp = srv.dir.path().join("edit.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&config(b)).unwrap()).unwrap();
        std::fs::rename(&tmp, srv.config_path()).unwrap();
        let rx = rx.clone();
        let ev = tokio::task::spawn_blocking(move || {
            sse_event(
                &rx.lock().unwrap(),
                "config.reloaded",
                Duration::from_secs(10),
            )
        })
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("edit {i} applied"));
        assert!(
            ev["changed"]
                .as_array()
                .unwrap()
                .contains(&json!("gateway.auth.token")),
            "{ev}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut mixes = vec![];
    for c in clients {
        mixes.extend(c.await.unwrap());
    }
    assert!(
        mixes.is_empty(),
        "handshakes judged by a mix of configs: {mixes:?}"
    );
    assert!(
        accepted.load(Ordering::Relaxed) > 100,
        "accepted {}",
        accepted.load(Ordering::Relaxed)
    );
    assert!(refused.load(Ordering::Relaxed) > 0);
    // the device-token sessions were never dropped
    for c in &mut steady {
        c.rpc("health", json!({}))
            .await
            .expect("steady session alive");
    }
    let status = admin.get("/admin/v1/config/status").await.json();
    assert_eq!(status["revision"], 101);
    for c in steady {
        c.close().await;
    }
    srv.stop().await;
}
