//! Hot-reload benchmark against the real binary (`clawgate serve`, which
//! watches its config file):
//!
//!   1. file write → new config active: p50/p99 over BENCH_EDITS edits
//!      (rename-replace writes; "active" = the `config.reloaded` SSE event,
//!      sent after the swap);
//!   2. reload cost with BENCH_SESSIONS sessions connected (90 % paired
//!      devices on their device tokens, 10 % on the shared token):
//!      a. an edit that changes no session's authority (tick interval):
//!      write → active, and no session closed;
//!      b. a shared-token change: write → active, and write → the last of the
//!      shared-token sessions has received its 4001 close; no device-token
//!      session closed.
//!
//! Knobs: BENCH_EDITS (default 100), BENCH_SESSIONS (default 10000),
//! BENCH_SERVER_LOG (default warn), BENCH_KEEP_TMP=1.
//! Without `--bench` on the command line it only prints a note and exits 0.

#[path = "../tests/common/client.rs"]
mod client;
mod common;
#[path = "../tests/common/http.rs"]
mod http;

use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{Conn, ConnectOpts, DeviceIdentity, OpenOpts};
use common::{env_u64, ms, random_token, read_runtime, round2, ServerProc, ServerSpec, Stats};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

fn main() {
    if !common::invoked_as_bench("reload") {
        return;
    }
    let sessions = env_u64("BENCH_SESSIONS", 10_000) as usize;
    common::raise_nofile((2 * sessions as u64 + 4096).max(65_536));
    common::run_and_exit(run(env_u64("BENCH_EDITS", 100) as usize, sessions));
}

fn config(token: &str, tick: u64) -> Value {
    json!({"gateway": {
        "auth": {"mode": "token", "token": token},
        "admin": {"port": 0},
        "limits": {"tickIntervalMs": tick},
    }})
}

/// Rename-replace write (what most editors do).
fn write_config(path: &std::path::Path, v: &Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes `v` and returns write → `config.reloaded` (with the event).
async fn timed_edit(
    rx: &Arc<std::sync::Mutex<std::sync::mpsc::Receiver<String>>>,
    path: &std::path::Path,
    v: &Value,
) -> Result<(Duration, Value), String> {
    let t = Instant::now();
    write_config(path, v);
    let rx = rx.clone();
    let ev = tokio::task::spawn_blocking(move || {
        http::sse_event(
            &rx.lock().unwrap(),
            "config.reloaded",
            Duration::from_secs(10),
        )
    })
    .await
    .unwrap()
    .ok_or("no config.reloaded event within 10 s")?;
    Ok((t.elapsed(), ev))
}

async fn run(edits: usize, sessions: usize) -> i32 {
    let token = random_token();
    let (mut proc, t0) = match ServerProc::spawn(&ServerSpec {
        prefix: "clawgate-reload-bench-",
        gateway: config(&token, 30_000)["gateway"].clone(),
        args: &["--admin-port", "0"],
        env_remove: &["CLAWGATE_ADMIN_TOKEN", "CLAWGATE_LOG"],
        default_log: "warn",
    }) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("reload bench: {e}");
            return 1;
        }
    };
    let ready = proc.wait_ready(t0, Duration::from_millis(5), "runtime.json", |state| {
        let v = read_runtime(state)?;
        let tok = std::fs::read_to_string(state.join("admin-token")).ok()?;
        Some((
            v["gatewayAddr"].as_str()?.to_string(),
            v["adminAddr"]
                .as_str()?
                .parse::<std::net::SocketAddr>()
                .ok()?,
            tok.trim().to_string(),
        ))
    });
    let (gateway, admin_addr, admin_token) = match ready {
        Ok(x) => x,
        Err(e) => {
            eprintln!("reload bench: {e}");
            return 1;
        }
    };
    let url = format!("ws://{gateway}/");
    let path = proc.state.parent().unwrap().join("openclaw.json");
    let admin = http::Admin::new(admin_addr, &admin_token);
    let rx = Arc::new(std::sync::Mutex::new(admin.sse()));
    let mut report = json!({"edits": edits, "sessions": sessions});

    // --- 1. write → active -----------------------------------------------------
    let mut lat = vec![];
    for i in 0..edits {
        let v = config(&token, 30_000 + 1 + i as u64);
        match timed_edit(&rx, &path, &v).await {
            Ok((d, _)) => lat.push(d),
            Err(e) => {
                eprintln!("reload bench: edit {i}: {e}\n{}", proc.log_tail());
                return 1;
            }
        }
        // Let the settle window of this edit pass fully before the next one,
        // so each edit is timed on its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = Stats::of(lat);
    println!(
        "file write -> new config active over {edits} edits: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (settle window 200 ms)",
        ms(s.p50),
        ms(s.p99),
        ms(s.max)
    );
    report["write_to_active"] = s.json();

    // --- 2. sessions -------------------------------------------------------------
    if sessions > 0 {
        let shared_n = sessions / 10;
        let device_n = sessions - shared_n;
        let t = Instant::now();
        // pair the devices (silently, local) and collect their device tokens
        let sem = Arc::new(Semaphore::new(32));
        let mut pairing = vec![];
        for _ in 0..device_n {
            let (url, token, sem) = (url.clone(), token.clone(), sem.clone());
            pairing.push(tokio::spawn(async move {
                let _p = sem.acquire_owned().await;
                let dev = DeviceIdentity::generate();
                let hello = common::hello_once(
                    &url,
                    &[],
                    &ConnectOpts::with_token(&token).device(&dev),
                    Duration::from_secs(1),
                )
                .await?;
                let tok = hello["auth"]["deviceToken"]
                    .as_str()
                    .ok_or("no device token")?
                    .to_string();
                Ok::<_, String>((dev, tok))
            }));
        }
        let mut devices = vec![];
        for p in pairing {
            match p.await.unwrap() {
                Ok(d) => devices.push(d),
                Err(e) => {
                    eprintln!("reload bench: pairing: {e}");
                    return 1;
                }
            }
        }
        eprintln!(
            "  paired {device_n} devices in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        let (stop_tx, stop_rx) = watch::channel(false);
        let (open_tx, mut open_rx) = mpsc::unbounded_channel::<Result<(), String>>();
        // (shared?, close code, when)
        let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<(bool, u16, Instant)>();
        let mut holders = vec![];
        let all: Vec<(bool, ConnectOpts)> = devices
            .iter()
            .map(|(dev, tok)| (false, ConnectOpts::default().device(dev).device_token(tok)))
            .chain((0..shared_n).map(|_| (true, ConnectOpts::with_token(&token))))
            .collect();
        let t = Instant::now();
        for (shared, opts) in all {
            let (url, sem, open_tx, closed_tx) =
                (url.clone(), sem.clone(), open_tx.clone(), closed_tx.clone());
            let mut stop_rx = stop_rx.clone();
            holders.push(tokio::spawn(async move {
                let permit = sem.acquire_owned().await;
                let oo = OpenOpts {
                    read_buffer_size: Some(4096),
                    ..Default::default()
                };
                let mut c = match Conn::open_with(&url, &oo).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = open_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                if let Err(e) = c.connect(&opts).await {
                    let _ = open_tx.send(Err(e.to_string()));
                    return;
                }
                drop(permit);
                let _ = open_tx.send(Ok(()));
                let closed = c
                    .idle_until(async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    })
                    .await;
                match closed {
                    Some((code, _)) => {
                        let _ = closed_tx.send((shared, code, Instant::now()));
                    }
                    None => c.close().await,
                }
            }));
        }
        drop(open_tx);
        drop(closed_tx);
        let mut opened = 0;
        while let Some(r) = open_rx.recv().await {
            match r {
                Ok(()) => opened += 1,
                Err(e) => {
                    eprintln!("reload bench: session: {e}");
                    return 1;
                }
            }
            if opened == sessions {
                break;
            }
        }
        eprintln!(
            "  {opened} sessions open ({device_n} device-token, {shared_n} shared-token) in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        // a. no authority change
        let (d, ev) = match timed_edit(&rx, &path, &config(&token, 45_000)).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("reload bench: {e}");
                return 1;
            }
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut closed_a = 0;
        while closed_rx.try_recv().is_ok() {
            closed_a += 1;
        }
        println!(
            "reload with {opened} sessions, no authority change: write -> active {:.1} ms; sessions closed: {closed_a} (server said {})",
            ms(d),
            ev["closedSessions"]
        );
        report["unchanged_authority"] =
            json!({"write_to_active_ms": round2(ms(d)), "closed": closed_a});

        // b. shared token changed
        let new_token = random_token();
        let t_write = Instant::now();
        let (d, ev) = match timed_edit(&rx, &path, &config(&new_token, 45_000)).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("reload bench: {e}");
                return 1;
            }
        };
        let mut shared_closed = 0;
        let mut other_closed = 0;
        let mut last = t_write;
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared_closed < shared_n && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), closed_rx.recv()).await {
                Ok(Some((shared, code, when))) => {
                    if shared && code == 4001 {
                        shared_closed += 1;
                        last = last.max(when);
                    } else {
                        other_closed += 1;
                    }
                }
                _ => continue,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok((shared, _, _)) = closed_rx.try_recv() {
            if !shared {
                other_closed += 1;
            }
        }
        let swap_to_last = last.saturating_duration_since(t_write + d);
        println!(
            "reload with {opened} sessions, shared token changed: write -> active {:.1} ms; {shared_closed}/{shared_n} shared-token sessions got 4001, the last {:.1} ms after the write ({:.1} ms after the swap event); other sessions closed: {other_closed} (server said {})",
            ms(d),
            ms(last - t_write),
            ms(swap_to_last),
            ev["closedSessions"]
        );
        report["token_change"] = json!({
            "write_to_active_ms": round2(ms(d)),
            "shared_closed": shared_closed,
            "shared_total": shared_n,
            "write_to_last_close_ms": round2(ms(last - t_write)),
            "other_closed": other_closed,
        });
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            for h in holders {
                let _ = h.await;
            }
        })
        .await;
    }
    println!(
        "{}",
        serde_json::to_string(&json!({"reload": report})).unwrap()
    );
    0
}
