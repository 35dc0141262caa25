//! Front-door relay benchmark: the same client straight to a fast fake
//! upstream and through clawgate (`serve --upstream ws://…`).
//!
//! `cargo bench --bench relay` measures
//!   1. the RPC round trip (p50/p99) direct and through clawgate, and the
//!      difference: what the hop adds;
//!   2. relayed event throughput (frames/s) from the fake upstream through
//!      clawgate to one client, fake and client included on the same cores;
//!   3. server memory per bridged idle session (both of its sockets), at
//!      BENCH_IDLE levels (default 1000,10000).
//!
//! Environment: BENCH_SECS (per latency run, default 5), BENCH_EVENTS
//! (default 200000), BENCH_IDLE (comma list; empty = skip).
//! Not measured here: nginx as the hop (not installed on this machine).

#[path = "../tests/common/client.rs"]
mod client;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{ws_url, Conn, ConnectOpts, DeviceIdentity};
use common::{
    env_levels, env_u64, ms, read_runtime, round2, rss_kib, ServerProc, ServerSpec, Stats,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    if !common::invoked_as_bench("relay") {
        return;
    }
    common::run_and_exit(run());
}

/// A fast fake upstream: challenge, hello-ok, an immediate `res` for every
/// request, and `bench.events` → that many events as fast as it can.
async fn fake_upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                let ch = json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 1}});
                let _ = tx.send(Message::text(ch.to_string())).await;
                while let Some(Ok(Message::Text(t))) = rx.next().await {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    let id = v["id"].clone();
                    match v["method"].as_str().unwrap_or("") {
                        "connect" => {
                            let hello = json!({"type": "res", "id": id, "ok": true, "payload": {
                                "type": "hello-ok", "protocol": 4, "server": {"version": "fake"},
                                "features": {"methods": [], "events": []}, "snapshot": {},
                                "policy": {"maxPayload": 1 << 20, "maxBufferedBytes": 1 << 21, "tickIntervalMs": 30000}}});
                            let _ = tx.send(Message::text(hello.to_string())).await;
                        }
                        "bench.events" => {
                            let n = v["params"]["count"].as_u64().unwrap_or(0);
                            for seq in 1..=n {
                                let e = format!(
                                    r#"{{"type":"event","event":"bench","payload":{{"i":{seq}}},"seq":{seq}}}"#
                                );
                                if tx.feed(Message::text(e)).await.is_err() {
                                    return;
                                }
                            }
                            let r = json!({"type": "res", "id": id, "ok": true, "payload": {}});
                            let _ = tx.send(Message::text(r.to_string())).await;
                        }
                        _ => {
                            let r = json!({"type": "res", "id": id, "ok": true, "payload": {"pong": true}});
                            let _ = tx.send(Message::text(r.to_string())).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sequential round trips for `secs`: their latencies.
async fn round_trips(c: &mut Conn, secs: u64) -> Vec<Duration> {
    let mut out = vec![];
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        c.rpc("bench.ping", json!({})).await.expect("round trip");
        out.push(t.elapsed());
    }
    out
}

async fn run() -> i32 {
    common::raise_nofile(60_000);
    let secs = env_u64("BENCH_SECS", 5);
    let events = env_u64("BENCH_EVENTS", 200_000);
    let idle_levels = env_levels("BENCH_IDLE", &[1000, 10_000]);
    let up = fake_upstream().await;
    let token = common::random_token();
    let upstream_url = format!("ws://{up}");
    let args = [
        "--bind",
        "127.0.0.1",
        "--admin-port",
        "0",
        "--upstream",
        upstream_url.as_str(),
    ];
    let spec = ServerSpec {
        prefix: "clawgate-relay-bench",
        gateway: json!({"auth": {"mode": "token", "token": token}, "limits": {"workers": 1}}),
        args: &args,
        env_remove: &[],
        default_log: "warn",
    };
    let (mut server, t0) = match ServerProc::spawn(&spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let addr = match server.wait_ready(t0, Duration::from_millis(5), "runtime.json", |s| {
        read_runtime(s).and_then(|r| r["gatewayAddr"].as_str().map(str::to_string))
    }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let via_url = ws_url(&addr);
    println!(
        "clawgate relay bench: clawgate {addr} (pid {}) in front of a fake upstream {up}",
        server.pid
    );

    // 1. round trips
    let mut direct = Conn::open(&format!("ws://{up}/"), &[])
        .await
        .expect("direct");
    direct
        .connect(&ConnectOpts::with_token(&token))
        .await
        .expect("direct hello");
    let d = Stats::of(round_trips(&mut direct, secs).await);
    direct.close().await;
    let dev = DeviceIdentity::generate();
    let mut via = Conn::open(&via_url, &[]).await.expect("via");
    via.connect(&ConnectOpts::with_token(&token).device(&dev))
        .await
        .expect("bridged hello");
    let v = Stats::of(round_trips(&mut via, secs).await);
    println!("\nRPC round trip   count     p50 ms   p99 ms");
    println!(
        "  direct       {:>7}   {:>8.3} {:>8.3}",
        d.n,
        ms(d.p50),
        ms(d.p99)
    );
    println!(
        "  via clawgate {:>7}   {:>8.3} {:>8.3}",
        v.n,
        ms(v.p50),
        ms(v.p99)
    );
    let added_p50 = ms(v.p50) - ms(d.p50);
    let added_p99 = ms(v.p99) - ms(d.p99);
    println!(
        "  added by the hop: p50 {:.1} µs, p99 {:.1} µs",
        added_p50 * 1000.0,
        added_p99 * 1000.0
    );

    // 2. relayed events
    let t = Instant::now();
    let id = via.new_id();
    via.send_json(
        &json!({"type": "req", "id": id, "method": "bench.events", "params": {"count": events}}),
    )
    .await;
    let mut got = 0u64;
    let mut last_seq = 0u64;
    loop {
        let Some(f) = via.recv_frame(Duration::from_secs(30)).await else {
            eprintln!("relay stalled after {got} events");
            return 1;
        };
        if f["type"] == "event" {
            got += 1;
            last_seq = f["seq"].as_u64().unwrap_or(0);
        } else if f["type"] == "res" && f["id"] == json!(id) {
            break;
        }
    }
    let el = t.elapsed().as_secs_f64();
    let fps = got as f64 / el;
    println!("\nrelayed events: {got} in {el:.2} s = {fps:.0} frames/s (last seq {last_seq})");
    via.close().await;

    // 3. memory per bridged idle session
    let mut idle = vec![];
    for n in idle_levels {
        let before = rss_kib(server.pid).unwrap_or(0);
        let opened = Arc::new(AtomicUsize::new(0));
        let mut conns = Vec::with_capacity(n);
        let mut tasks = vec![];
        let sem = Arc::new(tokio::sync::Semaphore::new(16));
        for _ in 0..n {
            let (url, token, sem, opened) =
                (via_url.clone(), token.clone(), sem.clone(), opened.clone());
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let mut c = Conn::open(&url, &[]).await.ok()?;
                c.connect(&ConnectOpts::with_token(&token)).await.ok()?;
                opened.fetch_add(1, Ordering::Relaxed);
                Some(c)
            }));
        }
        for t in tasks {
            if let Ok(Some(c)) = t.await {
                conns.push(c);
            }
        }
        let after = rss_kib(server.pid).unwrap_or(0);
        let ok = opened.load(Ordering::Relaxed);
        let per = (after.saturating_sub(before)) as f64 / ok.max(1) as f64;
        println!("bridged idle sessions: {ok} of {n}: server RSS {before} KiB -> {after} KiB = {per:.2} KiB per session (both sockets)");
        idle.push(json!({"requested": n, "opened": ok, "kib_per_session": round2(per)}));
        for c in conns {
            c.close_timeout(1000, "", Duration::from_millis(200)).await;
        }
    }
    println!(
        "\n{}",
        json!({"bench": "relay", "direct": d.json(), "via": v.json(),
            "added_p50_us": round2(added_p50 * 1000.0), "added_p99_us": round2(added_p99 * 1000.0),
            "relayed_frames_per_s": fps.round(), "idle": idle, "server_alive": server.alive()})
    );
    0
}
