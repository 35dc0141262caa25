//! Front-door relay benchmark: the same client three ways to a fast fake
//! upstream: straight, through clawgate (`serve --upstream ws://…`), and
//! through nginx configured as a plain WebSocket proxy (the hop users
//! already put there).
//!
//! `cargo bench --bench relay` measures
//!   1. the RPC round trip (p50/p99) direct, through clawgate and through
//!      nginx, and the differences: what each hop adds;
//!   2. relayed event throughput (frames/s) from the fake upstream through
//!      clawgate (and through nginx) to one client, fake and client included
//!      on the same cores;
//!   3. server memory per bridged idle session (both of its sockets), at
//!      BENCH_IDLE levels (default 1000,10000).
//!
//! Environment: BENCH_SECS (per latency run, default 5), BENCH_EVENTS
//! (default 200000), BENCH_IDLE (comma list; empty = skip), BENCH_NGINX (the
//! nginx binary, default /usr/sbin/nginx, Debian's `apt-get install
//! nginx-light`; `off` skips the nginx path).

#[path = "../tests/common/client.rs"]
mod client;
mod common;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
async fn fake_upstream() -> SocketAddr {
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

/// `bench.events` → `count` events relayed to `c`: (events received,
/// seconds, last `seq`).
async fn relayed_events(c: &mut Conn, count: u64) -> Result<(u64, f64, u64), String> {
    let t = Instant::now();
    let id = c.new_id();
    c.send_json(
        &json!({"type": "req", "id": id, "method": "bench.events", "params": {"count": count}}),
    )
    .await;
    let mut got = 0u64;
    let mut last_seq = 0u64;
    loop {
        let Some(f) = c.recv_frame(Duration::from_secs(30)).await else {
            return Err(format!("relay stalled after {got} events"));
        };
        if f["type"] == "event" {
            got += 1;
            last_seq = f["seq"].as_u64().unwrap_or(0);
        } else if f["type"] == "res" && f["id"] == json!(id) {
            break;
        }
    }
    Ok((got, t.elapsed().as_secs_f64(), last_seq))
}

// ---------------------------------------------------------------------------
// nginx as the hop
// ---------------------------------------------------------------------------

/// Where nginx is expected when BENCH_NGINX is unset (Debian's package).
const NGINX_DEFAULT: &str = "/usr/sbin/nginx";
/// Upper bound on nginx start → its port accepts.
const NGINX_DEADLINE: Duration = Duration::from_secs(10);

/// The nginx binary to use: None when BENCH_NGINX=off, an error saying how
/// to install it when it is missing.
fn nginx_binary() -> Result<Option<PathBuf>, String> {
    let bin = match std::env::var("BENCH_NGINX") {
        Ok(v) if v.trim() == "off" => return Ok(None),
        Ok(v) if !v.trim().is_empty() => PathBuf::from(v.trim()),
        _ => PathBuf::from(NGINX_DEFAULT),
    };
    if bin.is_file() {
        Ok(Some(bin))
    } else {
        Err(format!(
            "relay bench: nginx not found at {}: install Debian's nginx \
             (`apt-get install nginx-light`), point BENCH_NGINX at an nginx binary, \
             or set BENCH_NGINX=off to skip the nginx path",
            bin.display()
        ))
    }
}

/// The nginx.conf of a plain WebSocket proxy in front of `upstream`, listening
/// on `listen`, with every path it writes inside `dir`.
fn nginx_conf(dir: &Path, listen: SocketAddr, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    upstream openclaw {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://openclaw;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
            proxy_read_timeout 3600s;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

/// nginx as a child process (`daemon off; master_process off`) in its own
/// temp dir: killed on drop (and if the bench dies first, by the kernel).
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Write the config, start `bin` on a free loopback port in front of
    /// `upstream` and wait (≤ NGINX_DEADLINE) until that port accepts.
    fn start(bin: &Path, upstream: SocketAddr) -> Result<Nginx, String> {
        let dir = tempfile::Builder::new()
            .prefix("clawgate-relay-nginx")
            .tempdir()
            .map_err(|e| format!("nginx tempdir: {e}"))?;
        // A port that was free a moment ago; nginx exiting on a bind race is
        // reported below with its error log.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port for nginx: {e}"))?;
        let conf = dir.path().join("nginx.conf");
        fs::write(&conf, nginx_conf(dir.path(), addr, upstream))
            .map_err(|e| format!("write {}: {e}", conf.display()))?;
        let out = fs::File::create(dir.path().join("stderr.log"))
            .map_err(|e| format!("nginx log file: {e}"))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("nginx log file: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        {
            use std::os::unix::process::CommandExt as _;
            // Kill nginx if the bench dies without cleaning up.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut nginx = Nginx { child, addr, dir };
        nginx.wait_accepting()?;
        Ok(nginx)
    }

    fn wait_accepting(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + NGINX_DEADLINE;
        loop {
            if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "nginx exited during startup ({status}):\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx not accepting on {} after {NGINX_DEADLINE:?}:\n{}",
                    self.addr,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_tail(&self) -> String {
        let mut lines = vec![];
        for f in ["stderr.log", "error.log"] {
            let s = fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
            lines.extend(s.lines().map(str::to_string));
        }
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn version(bin: &Path) -> String {
        Command::new(bin)
            .arg("-v")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default()
    }
}

fn print_row(name: &str, s: &Stats) {
    println!(
        "  {name:<12} {:>7}   {:>8.3} {:>8.3}",
        s.n,
        ms(s.p50),
        ms(s.p99)
    );
}

/// What a hop adds to the direct round trip: (p50, p99) in µs.
fn added_us(direct: &Stats, hop: &Stats) -> (f64, f64) {
    (
        (ms(hop.p50) - ms(direct.p50)) * 1000.0,
        (ms(hop.p99) - ms(direct.p99)) * 1000.0,
    )
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

async fn run() -> i32 {
    common::raise_nofile(60_000);
    let secs = env_u64("BENCH_SECS", 5);
    let events = env_u64("BENCH_EVENTS", 200_000);
    let idle_levels = env_levels("BENCH_IDLE", &[1000, 10_000]);
    let nginx_bin = match nginx_binary() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
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
    let nginx = match &nginx_bin {
        None => {
            println!("nginx path: skipped (BENCH_NGINX=off)");
            None
        }
        Some(bin) => match Nginx::start(bin, up) {
            Ok(n) => {
                println!(
                    "nginx {} (pid {}, {}) in front of the same fake upstream",
                    n.addr,
                    n.child.id(),
                    Nginx::version(bin)
                );
                Some(n)
            }
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        },
    };

    // 1. round trips: the same client and loop, straight, via clawgate, via nginx
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
    let mut ng = None;
    if let Some(n) = &nginx {
        let mut c = Conn::open(&ws_url(&n.addr.to_string()), &[])
            .await
            .expect("via nginx");
        c.connect(&ConnectOpts::with_token(&token))
            .await
            .expect("hello through nginx");
        let s = Stats::of(round_trips(&mut c, secs).await);
        ng = Some((c, s));
    }
    let ng_stats = ng.as_ref().map(|(_, s)| *s);
    println!("\nRPC round trip   count     p50 ms   p99 ms");
    print_row("direct", &d);
    print_row("via clawgate", &v);
    if let Some(s) = &ng_stats {
        print_row("via nginx", s);
    }
    let (added_p50, added_p99) = added_us(&d, &v);
    println!("  added by clawgate: p50 {added_p50:.1} µs, p99 {added_p99:.1} µs");
    let added_nginx = ng_stats.map(|s| added_us(&d, &s));
    match added_nginx {
        Some((p50, p99)) => {
            println!("  added by nginx:    p50 {p50:.1} µs, p99 {p99:.1} µs");
            println!(
                "  target (added p50 <= 100 µs, no more than nginx adds): p50 <= 100 µs {}, \
                 p50 <= nginx {}, p99 <= nginx {}",
                yes_no(added_p50 <= 100.0),
                yes_no(added_p50 <= p50),
                yes_no(added_p99 <= p99)
            );
        }
        None => println!("  added by nginx:    skipped (BENCH_NGINX=off)"),
    }

    // 2. relayed events
    let (got, el, last_seq) = match relayed_events(&mut via, events).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("via clawgate: {e}");
            return 1;
        }
    };
    let fps = got as f64 / el;
    println!("\nrelayed events via clawgate: {got} in {el:.2} s = {fps:.0} frames/s (last seq {last_seq})");
    via.close().await;
    let mut nginx_fps = None;
    if let Some((mut c, _)) = ng.take() {
        let (got, el, last_seq) = match relayed_events(&mut c, events).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("via nginx: {e}");
                return 1;
            }
        };
        let fps = got as f64 / el;
        println!("relayed events via nginx:    {got} in {el:.2} s = {fps:.0} frames/s (last seq {last_seq})");
        nginx_fps = Some(fps.round());
        c.close().await;
    }
    // nginx is not part of the idle-session measurement.
    drop(nginx);

    // 3. memory per bridged idle session
    if idle_levels.is_empty() {
        println!("\nbridged idle sessions: skipped (BENCH_IDLE is empty)");
    }
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
            "nginx": ng_stats.map(|s| s.json()),
            "added_p50_us": round2(added_p50), "added_p99_us": round2(added_p99),
            "added_nginx_p50_us": added_nginx.map(|a| round2(a.0)),
            "added_nginx_p99_us": added_nginx.map(|a| round2(a.1)),
            "relayed_frames_per_s": fps.round(), "nginx_relayed_frames_per_s": nginx_fps,
            "idle": idle, "server_alive": server.alive()})
    );
    0
}
