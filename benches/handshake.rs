//! Handshake benchmark for clawgate (design.md §8 budgets).
//!
//! `cargo bench --bench handshake` spawns the real server binary with a fresh
//! config + state dir and measures:
//!   1. start → first accepted handshake (spawn to first hello-ok);
//!   2. v3-signed handshakes/s and p50/p99/max latency at 1, 8 and 32
//!      concurrent clients (open WS, challenge, signed connect with
//!      `auth.token` + device, hello-ok, close);
//!   3. server memory per idle authenticated connection (VmRSS delta / N).
//!
//! Environment:
//!   BENCH_SECS        seconds per concurrency level (default 5)
//!   BENCH_LEVELS      comma-separated concurrency levels (default 1,8,32)
//!   BENCH_CLIENT      lean (default: raw TCP, hand-rolled framing) or full (tokio-tungstenite)
//!   BENCH_AUTH        token (default) or trusted-proxy: the server in
//!                     gateway.auth.mode "trusted-proxy" (trusting 127.0.0.1,
//!                     allowLoopback) and every measured upgrade carrying
//!                     X-Forwarded-For and X-Forwarded-User, as from an
//!                     identity-aware proxy, with no secret; the pool pairs
//!                     first as a local tool with the password (OpenClaw's
//!                     local fallback)
//!   BENCH_IDLE_CONNS  idle connections for the memory test (default 10000; 0 = skip)
//!   BENCH_OPEN_CONC   concurrent opens during the memory test (default 16)
//!   BENCH_SERVER_ADDR measure an already-running server at ip:port instead
//!   BENCH_TOKEN       shared token of that server (or OPENCLAW_GATEWAY_TOKEN)
//!   BENCH_SERVER_PID  its pid, to enable the RSS measurement
//!   BENCH_KEEP_TMP=1  keep the temp dir (config, state, server.log)
//!   BENCH_SERVER_LOG  server log filter (CLAWGATE_LOG; default info)
//!
//! Without `--bench` on the command line (e.g. `cargo test --benches`) it only
//! prints a note and exits 0.

#[path = "../tests/common/client.rs"]
mod client;
mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{http_get, ws_url, Conn, ConnectOpts, DeviceIdentity, OpenOpts};
use common::{
    env_levels, env_u64, hello_once, ms, proc_cpu_secs, random_token, read_runtime, round2,
    rss_kib, ServerProc, ServerSpec, Stats, STARTUP_DEADLINE,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

/// CPU time (user + system) consumed so far by this process, in seconds.
fn self_cpu_secs() -> f64 {
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

/// The server under test: either spawned here (killed on drop) or external.
struct Server {
    /// None for an external server (BENCH_SERVER_ADDR).
    proc: Option<ServerProc>,
    pid: Option<u32>,
    addr: String,
    token: String,
}

impl Server {
    fn log_tail(&self) -> String {
        self.proc
            .as_ref()
            .map(ServerProc::log_tail)
            .unwrap_or_default()
    }
}

struct Startup {
    runtime_json_ms: f64,
    first_hello_ms: f64,
    attempts: u32,
    healthz: Option<u16>,
}

/// `BENCH_AUTH=trusted-proxy`: the proxy's word instead of a shared token
/// (read once: `upgrade_headers` is asked on every measured handshake).
fn trusted_proxy() -> bool {
    static TP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TP.get_or_init(|| std::env::var("BENCH_AUTH").is_ok_and(|v| v == "trusted-proxy"))
}

/// `BENCH_AUTH` as reported.
fn auth_name() -> &'static str {
    if trusted_proxy() {
        "trusted-proxy"
    } else {
        "token"
    }
}

/// What an identity-aware proxy adds to each upgrade (trusted-proxy only).
fn upgrade_headers() -> &'static [(&'static str, &'static str)] {
    const PROXY: [(&str, &str); 2] = [
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-User", "bench@example.test"),
    ];
    if trusted_proxy() {
        &PROXY
    } else {
        &[]
    }
}

/// Spawn `clawgate serve` and return once `<state>/runtime.json` names the
/// listening address. `t0` is taken just before spawning.
fn spawn_server(token: &str) -> Result<(Server, Instant, Duration), String> {
    // admin.port 0: the admin listener (default 18788) must not collide with
    // another clawgate running on this machine.
    let gateway = if trusted_proxy() {
        json!({
            "auth": {"mode": "trusted-proxy", "trustedProxy": {
                "userHeader": "x-forwarded-user",
                "allowLoopback": true,
            }, "password": token},
            "trustedProxies": ["127.0.0.1"],
            "admin": {"port": 0},
        })
    } else {
        json!({
            "auth": {"mode": "token", "token": token},
            "admin": {"port": 0},
        })
    };
    let (mut proc, t0) = ServerProc::spawn(&ServerSpec {
        prefix: "clawgate-bench-",
        gateway,
        args: &["--bind", "127.0.0.1"],
        env_remove: &[],
        default_log: "info",
    })?;
    let pid = proc.pid;
    let runtime = proc.state.join("runtime.json");
    let addr = proc.wait_ready(
        t0,
        Duration::from_millis(1),
        &runtime.display().to_string(),
        |state| {
            let v = read_runtime(state)?;
            let addr = v.get("gatewayAddr").and_then(Value::as_str)?.to_string();
            if let Some(p) = v.get("pid").and_then(Value::as_u64) {
                if p as u32 != pid {
                    eprintln!("note: runtime.json pid {p} != spawned pid {pid}");
                }
            }
            Some(addr)
        },
    )?;
    let ready = t0.elapsed();
    let server = Server {
        proc: Some(proc),
        pid: Some(pid),
        addr,
        token: token.to_string(),
    };
    Ok((server, t0, ready))
}

// ---------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------

/// A measured connect: the shared token, or in trusted-proxy mode no secret
/// (the proxy's headers vouch for the user).
fn signed_opts(token: &str, dev: &DeviceIdentity) -> ConnectOpts {
    if trusted_proxy() {
        ConnectOpts::default().device(dev)
    } else {
        ConnectOpts::with_token(token).device(dev)
    }
}

/// The connect that pairs a pool device (and times the startup): locally,
/// without proxy headers; in trusted-proxy mode with the password.
fn pair_opts(token: &str, dev: &DeviceIdentity) -> ConnectOpts {
    if trusted_proxy() {
        ConnectOpts::default().password(token).device(dev)
    } else {
        signed_opts(token, dev)
    }
}

/// The load generator: `BENCH_CLIENT=lean` (default: raw TCP and hand-rolled
/// framing, ~3x less client CPU) or `full` (the tokio-tungstenite test client).
fn lean_client() -> bool {
    std::env::var("BENCH_CLIENT").map_or(true, |v| v != "full")
}

/// How long a handshake waits for the server's answer to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// One full handshake; returns the time from TCP connect to hello-ok, and
/// whether the server answered the client's close frame within `CLOSE_WAIT`.
async fn one_handshake(url: &str, opts: &ConnectOpts) -> Result<(Duration, bool), String> {
    let t = Instant::now();
    let mut conn = Conn::open(url, upgrade_headers())
        .await
        .map_err(|e| e.to_string())?;
    let hello = conn.connect(opts).await.map_err(|e| e.to_string())?;
    let lat = t.elapsed();
    if hello.get("type").and_then(Value::as_str) != Some("hello-ok") {
        return Err(format!("unexpected hello payload: {hello}"));
    }
    let closed_ok = conn.close_timeout(1000, "", CLOSE_WAIT).await;
    Ok((lat, closed_ok))
}

#[derive(Default)]
struct LevelResult {
    concurrency: usize,
    count: usize,
    errors: usize,
    close_timeouts: usize,
    first_error: Option<String>,
    elapsed: Duration,
    lat: Stats,
}

async fn run_level(
    url: &str,
    token: &str,
    pool: &[DeviceIdentity],
    concurrency: usize,
    secs: u64,
) -> LevelResult {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for i in 0..concurrency {
        let url = url.to_string();
        let dev = pool[i % pool.len()].clone();
        let opts = signed_opts(token, &dev);
        // The lean client's auth.token: none where the proxy vouches.
        let token = if trusted_proxy() { "" } else { token }.to_string();
        let lean = lean_client();
        let addr: Option<std::net::SocketAddr> = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()
            .ok();
        let request = addr.map(|a| common::lean::upgrade_request(a, upgrade_headers()));
        handles.push(tokio::spawn(async move {
            let mut lats = Vec::new();
            let mut errors = 0usize;
            let mut close_timeouts = 0usize;
            let mut first_error = None;
            while Instant::now() < deadline {
                let r = match (lean, addr, &request) {
                    (true, Some(a), Some(req)) => {
                        common::lean::handshake(a, req, &token, &dev, CLOSE_WAIT).await
                    }
                    _ => one_handshake(&url, &opts).await,
                };
                match r {
                    Ok((l, closed_ok)) => {
                        lats.push(l);
                        if !closed_ok {
                            close_timeouts += 1;
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lats, errors, close_timeouts, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut res = LevelResult {
        concurrency,
        ..Default::default()
    };
    for h in handles {
        if let Ok((lats, errors, close_timeouts, fe)) = h.await {
            all.extend(lats);
            res.errors += errors;
            res.close_timeouts += close_timeouts;
            if res.first_error.is_none() {
                res.first_error = fe;
            }
        }
    }
    res.elapsed = start.elapsed();
    res.count = all.len();
    res.lat = Stats::of(all);
    res
}

/// How long startup / pairing connects wait for the server's close reply.
const PAIR_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Connect until the first hello-ok (retrying on failure) — for startup timing.
async fn first_handshake(url: &str, opts: &ConnectOpts, deadline: Instant) -> Result<u32, String> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match hello_once(url, &[], opts, PAIR_CLOSE_WAIT).await {
            Ok(_) => return Ok(attempts),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("no hello-ok after {attempts} attempts: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await, // retry backoff
        }
    }
}

// ---------------------------------------------------------------------------
// Idle connections
// ---------------------------------------------------------------------------

struct IdleResult {
    requested: usize,
    opened: usize,
    failed: usize,
    first_error: Option<String>,
    open_secs: f64,
    rss_before: Option<u64>,
    rss_after: Option<u64>,
    closed_early: usize,
}

async fn run_idle(
    url: &str,
    token: &str,
    pool: &[DeviceIdentity],
    n: usize,
    open_conc: usize,
    pid: Option<u32>,
) -> IdleResult {
    let rss_before = pid.and_then(rss_kib);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<(u16, String)>();
    let sem = Arc::new(Semaphore::new(open_conc.max(1)));
    let t = Instant::now();
    let mut holders = Vec::with_capacity(n);
    for i in 0..n {
        let url = url.to_string();
        let opts = signed_opts(token, &pool[i % pool.len()]);
        let sem = sem.clone();
        let done_tx = done_tx.clone();
        let closed_tx = closed_tx.clone();
        let mut stop_rx = stop_rx.clone();
        holders.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await;
            let open_opts = OpenOpts {
                headers: upgrade_headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                read_buffer_size: Some(4096),
                ..Default::default()
            };
            let mut conn = match Conn::open_with(&url, &open_opts).await {
                Ok(c) => c,
                Err(e) => {
                    let _ = done_tx.send(Err(e.to_string()));
                    return;
                }
            };
            if let Err(e) = conn.connect(&opts).await {
                let _ = done_tx.send(Err(e.to_string()));
                return;
            }
            drop(permit);
            let _ = done_tx.send(Ok(()));
            // Hold the connection (answering pings) until told to stop.
            let closed = conn
                .idle_until(async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                })
                .await;
            match closed {
                Some(c) => {
                    let _ = closed_tx.send(c);
                }
                None if conn.ended => {
                    let _ = closed_tx.send((0, "eof".into()));
                }
                None => conn.close().await,
            }
        }));
    }
    drop(done_tx);
    drop(closed_tx);
    let mut opened = 0;
    let mut failed = 0;
    let mut first_error = None;
    let mut last_report = Instant::now();
    while let Some(r) = done_rx.recv().await {
        match r {
            Ok(()) => opened += 1,
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!("  idle: {opened} open, {failed} failed ...");
        }
        if opened + failed == n {
            break;
        }
    }
    let open_secs = t.elapsed().as_secs_f64();
    // Let the server settle (deferred frees, write buffers) before sampling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = pid.and_then(rss_kib);
    let mut closed_early = 0;
    while closed_rx.try_recv().is_ok() {
        closed_early += 1;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        for h in holders {
            let _ = h.await;
        }
    })
    .await;
    IdleResult {
        requested: n,
        opened,
        failed,
        first_error,
        open_secs,
        rss_before,
        rss_after,
        closed_early,
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() {
    if !common::invoked_as_bench("handshake") {
        return;
    }
    let idle_n = env_u64("BENCH_IDLE_CONNS", 10_000) as usize;
    let nofile = common::raise_nofile((2 * idle_n as u64 + 4096).max(65_536));
    if nofile < idle_n as u64 + 1024 {
        eprintln!(
            "warning: RLIMIT_NOFILE is {nofile}, too low for BENCH_IDLE_CONNS={idle_n} (could not raise it)"
        );
    }
    common::run_and_exit(run(idle_n, nofile));
}

async fn run(idle_n: usize, nofile: u64) -> i32 {
    let secs = env_u64("BENCH_SECS", 5).max(1);
    let open_conc = env_u64("BENCH_OPEN_CONC", 16) as usize;
    let levels = env_levels("BENCH_LEVELS", &[1, 8, 32]);
    let pool_size = levels.iter().copied().max().unwrap_or(1).max(1);
    let pool: Vec<DeviceIdentity> = (0..pool_size).map(|_| DeviceIdentity::generate()).collect();

    let mut report = json!({
        "bench": "handshake",
        "secs_per_level": secs,
        "nofile_limit": nofile,
        "auth": auth_name(),
    });

    // --- server: external or spawned ---------------------------------------
    let external = std::env::var("BENCH_SERVER_ADDR")
        .ok()
        .filter(|s| !s.is_empty());
    let mut startup: Option<Startup> = None;
    let mut server = if let Some(addr) = external {
        let token = std::env::var("BENCH_TOKEN")
            .or_else(|_| std::env::var("OPENCLAW_GATEWAY_TOKEN"))
            .unwrap_or_default();
        if token.is_empty() {
            eprintln!(
                "warning: BENCH_SERVER_ADDR set without BENCH_TOKEN; connects will likely fail"
            );
        }
        Server {
            proc: None,
            pid: std::env::var("BENCH_SERVER_PID")
                .ok()
                .and_then(|p| p.parse().ok()),
            addr,
            token,
        }
    } else {
        // (the password in trusted-proxy mode)
        let token = random_token();
        let (server, t0, ready) = match spawn_server(&token) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        let url = ws_url(&server.addr);
        let opts = pair_opts(&server.token, &pool[0]);
        let attempts = match first_handshake(&url, &opts, t0 + STARTUP_DEADLINE).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "error: first handshake: {e}\nserver log tail:\n{}",
                    server.log_tail()
                );
                return 1;
            }
        };
        let first = t0.elapsed();
        let healthz = http_get(&server.addr, "/healthz", &[], Duration::from_secs(5))
            .await
            .ok()
            .map(|r| r.0);
        startup = Some(Startup {
            runtime_json_ms: ms(ready),
            first_hello_ms: ms(first),
            attempts,
            healthz,
        });
        server
    };
    let url = ws_url(&server.addr);
    println!(
        "clawgate handshake bench — server {} (pid {:?}), {secs} s/level, RLIMIT_NOFILE {nofile}, client {}, auth {}",
        server.addr,
        server.pid,
        if lean_client() { "lean" } else { "full" },
        auth_name()
    );
    if let Some(s) = &startup {
        println!(
            "startup: runtime.json after {:.1} ms, first hello-ok after {:.1} ms ({} attempt{}), GET /healthz -> {}",
            s.runtime_json_ms,
            s.first_hello_ms,
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            s.healthz.map(|c| c.to_string()).unwrap_or_else(|| "error".into())
        );
        report["startup"] = json!({
            "runtime_json_ms": s.runtime_json_ms,
            "first_hello_ms": s.first_hello_ms,
            "attempts": s.attempts,
            "healthz_status": s.healthz,
        });
    }
    let rss_start = server.pid.and_then(rss_kib);

    // --- pair the device pool (silent local pairing on first connect) -------
    let t = Instant::now();
    let mut with_token = 0;
    for (i, dev) in pool.iter().enumerate() {
        let opts = pair_opts(&server.token, dev);
        match hello_once(&url, &[], &opts, PAIR_CLOSE_WAIT).await {
            Ok(hello) => {
                if hello
                    .pointer("/auth/deviceToken")
                    .and_then(Value::as_str)
                    .is_some()
                {
                    with_token += 1;
                }
            }
            Err(e) => {
                eprintln!(
                    "error: pairing device {i} failed: {e}\nserver log tail:\n{}",
                    server.log_tail()
                );
                return 1;
            }
        }
    }
    println!(
        "paired {} device identities in {:.1} ms ({} hello-ok carried auth.deviceToken)",
        pool.len(),
        ms(t.elapsed()),
        with_token
    );
    report["pool"] = json!({"devices": pool.len(), "with_device_token": with_token});
    if let Some(r) = rss_start {
        println!(
            "server RSS after startup + pairing: {:.1} MiB",
            r as f64 / 1024.0
        );
        report["server_rss_start_kib"] = json!(r);
    }

    // --- throughput / latency ----------------------------------------------
    println!();
    println!(
        "{:>5} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}",
        "conc", "count", "hs/s", "p50 ms", "p99 ms", "max ms", "errors", "srv us/hs", "cli us/hs"
    );
    let mut levels_json = Vec::new();
    for &c in &levels {
        let srv_cpu0 = server.pid.and_then(proc_cpu_secs);
        let cli_cpu0 = self_cpu_secs();
        let r = run_level(&url, &server.token, &pool, c, secs).await;
        let cli_cpu = self_cpu_secs() - cli_cpu0;
        let srv_cpu = match (srv_cpu0, server.pid.and_then(proc_cpu_secs)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let per_hs_us = |cpu: f64| {
            if r.count > 0 {
                (cpu * 1e6 / r.count as f64).round()
            } else {
                0.0
            }
        };
        let srv_us = srv_cpu.map(per_hs_us);
        let cli_us = per_hs_us(cli_cpu);
        let rate = r.count as f64 / r.elapsed.as_secs_f64();
        println!(
            "{:>5} {:>8} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>9} {:>9}",
            r.concurrency,
            r.count,
            rate,
            ms(r.lat.p50),
            ms(r.lat.p99),
            ms(r.lat.max),
            r.errors,
            srv_us
                .map(|u| format!("{u:.0}"))
                .unwrap_or_else(|| "-".into()),
            format!("{cli_us:.0}"),
        );
        if let Some(e) = &r.first_error {
            println!("      first error: {e}");
        }
        if r.close_timeouts > 0 {
            println!(
                "      {} handshakes: server did not answer the client's close frame within {:?}",
                r.close_timeouts, CLOSE_WAIT
            );
        }
        let _ = std::io::stdout().flush();
        levels_json.push(json!({
            "concurrency": r.concurrency,
            "count": r.count,
            "errors": r.errors,
            "close_timeouts": r.close_timeouts,
            "first_error": r.first_error,
            "elapsed_s": round2(r.elapsed.as_secs_f64()),
            "rate_per_s": round2(rate),
            "p50_ms": ms(r.lat.p50),
            "p99_ms": ms(r.lat.p99),
            "max_ms": ms(r.lat.max),
            "server_cpu_us_per_hs": srv_us,
            "client_cpu_us_per_hs": cli_us,
        }));
    }
    report["levels"] = Value::Array(levels_json);

    // --- idle memory ---------------------------------------------------------
    if idle_n > 0 {
        println!();
        let r = run_idle(&url, &server.token, &pool, idle_n, open_conc, server.pid).await;
        println!(
            "idle: {} of {} authenticated connections opened in {:.2} s ({} failed, {} closed by server while idle)",
            r.opened, r.requested, r.open_secs, r.failed, r.closed_early
        );
        if let Some(e) = &r.first_error {
            println!("      first error: {e}");
        }
        let per_conn = match (r.rss_before, r.rss_after) {
            (Some(b), Some(a)) if r.opened > 0 => {
                let per = (a as f64 - b as f64) / r.opened as f64;
                println!(
                    "      server RSS {:.1} MiB -> {:.1} MiB: {:.2} KiB per idle connection",
                    b as f64 / 1024.0,
                    a as f64 / 1024.0,
                    per
                );
                Some(round2(per))
            }
            _ => {
                println!("      (no server pid: RSS not measured; set BENCH_SERVER_PID)");
                None
            }
        };
        report["idle"] = json!({
            "requested": r.requested,
            "opened": r.opened,
            "failed": r.failed,
            "first_error": r.first_error,
            "closed_while_idle": r.closed_early,
            "open_secs": round2(r.open_secs),
            "rss_before_kib": r.rss_before,
            "rss_after_kib": r.rss_after,
            "kib_per_conn": per_conn,
        });
    }

    let alive = match server.proc.as_mut() {
        Some(p) => p.alive(),
        None => true,
    };
    if !alive {
        eprintln!(
            "warning: server process is gone; log tail:\n{}",
            server.log_tail()
        );
    }
    report["server_alive_at_end"] = json!(alive);
    println!();
    println!("{}", serde_json::to_string(&report).unwrap());
    drop(server);
    0
}
