//! Admin API benchmark for clawgate.
//!
//! `cargo bench --bench admin` spawns the real server binary (twice, each with
//! a fresh config + state dir) and measures:
//!   1. admin approve → device reconnect accepted: a remote device (connecting
//!      through the trusted proxy 127.0.0.1 with `X-Forwarded-For`) gets
//!      PAIRING_REQUIRED (setup, untimed); then the time from sending
//!      `POST /admin/v1/pairing/requests/{id}/approve` until the device's next
//!      connect gets hello-ok (p50/p99/max), plus the approve HTTP latency alone;
//!   2. `GET /admin/v1/devices` with N devices stored (populated by silent
//!      local pairing, bounded concurrency): requests/s and p50/p99 latency at
//!      1 and 4 concurrent clients, response size, and the population rate.
//!
//! Environment:
//!   BENCH_APPROVALS    approvals to time (default 1000; 0 = skip part 1)
//!   BENCH_DEVICES      devices stored for the list benchmark (default 10000; 0 = skip part 2)
//!   BENCH_SECS         seconds per list concurrency level (default 5)
//!   BENCH_LIST_LEVELS  comma-separated concurrency levels for the list (default 1,4)
//!   BENCH_POP_CONC     concurrent connects while populating (default 16, max 16)
//!   BENCH_KEEP_TMP=1   keep the temp dirs (config, state, server.log)
//!   BENCH_SERVER_LOG   server log filter (CLAWGATE_LOG; default warn)
//!
//! Without `--bench` on the command line (e.g. `cargo test --benches`) it only
//! prints a note and exits 0.

#[path = "../tests/common/client.rs"]
mod client;
mod common;

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clawgate::admin::client::Client;
use client::{ws_url, Conn, ConnectOpts, DeviceIdentity};
use common::{
    env_levels, env_u64, hello_once, ms, proc_cpu_secs, random_token, read_runtime, round2,
    rss_kib, ServerProc, ServerSpec, Stats,
};
use serde_json::{json, Value};

/// Per-request HTTP timeout (the admin client's global timeout).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on the whole approval phase.
const APPROVAL_PHASE_LIMIT: Duration = Duration::from_secs(600);
/// Upper bound on the device population phase.
const POPULATE_PHASE_LIMIT: Duration = Duration::from_secs(900);
/// The remote client address the trusted proxy (loopback) forwards for.
const REMOTE_IP: &str = "203.0.113.7";
/// The server caps unauthenticated sockets per address at 32.
const MAX_POP_CONC: usize = 16;

// ---------------------------------------------------------------------------
// Process helpers
// ---------------------------------------------------------------------------

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A spawned `clawgate serve` (killed on drop).
struct Server {
    proc: ServerProc,
    pid: u32,
    gateway_addr: String,
    admin_addr: String,
    token: String,
    admin_token: String,
}

impl Server {
    fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    fn alive(&mut self) -> bool {
        self.proc.alive()
    }

    fn url(&self) -> String {
        ws_url(&self.gateway_addr)
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.admin_token)
    }
}

/// Spawn `clawgate serve` and return once `<state>/runtime.json` names both
/// listeners and `<state>/admin-token` exists.
fn spawn_server(tag: &str) -> Result<Server, String> {
    let token = random_token();
    let (mut proc, t0) = ServerProc::spawn(&ServerSpec {
        prefix: &format!("clawgate-admin-bench-{tag}-"),
        gateway: json!({
            "auth": {"mode": "token", "token": token},
            "trustedProxies": ["127.0.0.1"],
            "pairing": {"maxPendingPerClient": 100_000, "maxPendingTotal": 100_000},
        }),
        args: &["--admin-port", "0"],
        env_remove: &["CLAWGATE_ADMIN_TOKEN"],
        default_log: "warn",
    })?;
    let what = format!(
        "runtime.json with gatewayAddr/adminAddr and admin-token in {}",
        proc.state.display()
    );
    let mut gateway_addr = String::new();
    let mut admin_addr = String::new();
    let mut admin_token = String::new();
    proc.wait_ready(t0, Duration::from_millis(2), &what, |state| {
        if gateway_addr.is_empty() {
            if let Some(v) = read_runtime(state) {
                if let (Some(g), Some(a)) = (
                    v.get("gatewayAddr").and_then(Value::as_str),
                    v.get("adminAddr").and_then(Value::as_str),
                ) {
                    gateway_addr = g.to_string();
                    admin_addr = a.to_string();
                }
            }
        }
        if admin_token.is_empty() {
            if let Ok(t) = fs::read_to_string(state.join("admin-token")) {
                admin_token = t.trim().to_string();
            }
        }
        (!gateway_addr.is_empty() && !admin_token.is_empty()).then_some(())
    })?;
    Ok(Server {
        pid: proc.pid,
        proc,
        gateway_addr,
        admin_addr,
        token,
        admin_token,
    })
}

// ---------------------------------------------------------------------------
// HTTP (the crate's blocking admin client)
// ---------------------------------------------------------------------------

/// The crate's admin client (one keep-alive agent each).
fn agent() -> Client {
    Client::with("", None, HTTP_TIMEOUT, "clawgate-bench")
}

/// One request; returns (status, body bytes).
fn http(
    agent: &Client,
    method: &str,
    url: &str,
    bearer: &str,
    body: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let mut headers = vec![("Authorization", bearer)];
    let body = match method {
        "GET" => None,
        "POST" => {
            headers.push(("Content-Type", "application/json"));
            Some(body.unwrap_or("{}").as_bytes())
        }
        m => return Err(format!("unsupported method {m}")),
    };
    let a = agent
        .send(method, url, &headers, body)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    Ok((a.status, a.body.into_bytes()))
}

fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.chars().take(300).collect()
}

// ---------------------------------------------------------------------------
// Part 1: approve → reconnect accepted
// ---------------------------------------------------------------------------

struct ApprovalResult {
    requested: usize,
    done: usize,
    errors: usize,
    first_error: Option<String>,
    total: Stats,
    approve_http: Stats,
    reconnect: Stats,
    setup_secs: f64,
    wall_secs: f64,
    hello_with_device_token: usize,
}

fn remote_headers() -> [(&'static str, &'static str); 1] {
    [("X-Forwarded-For", REMOTE_IP)]
}

/// Setup: a fresh remote device connects and must get PAIRING_REQUIRED.
async fn pairing_request(url: &str, opts: &ConnectOpts) -> Result<String, String> {
    let mut c = Conn::open(url, &remote_headers())
        .await
        .map_err(|e| format!("setup open: {e}"))?;
    match c.connect(opts).await {
        Ok(hello) => Err(format!(
            "remote device was accepted without approval (hello: {})",
            snippet(hello.to_string().as_bytes())
        )),
        Err(f) => {
            if f.detail_code() != Some("PAIRING_REQUIRED") {
                return Err(format!("setup: expected PAIRING_REQUIRED, got {f}"));
            }
            f.error
                .as_ref()
                .and_then(|e| e.pointer("/details/requestId"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("setup: PAIRING_REQUIRED without details.requestId: {f}"))
        }
    }
}

async fn run_approvals(server: &Server, n: usize) -> ApprovalResult {
    let url = server.url();
    let agent = agent();
    let bearer = server.bearer();
    let mut totals = Vec::with_capacity(n);
    let mut https = Vec::with_capacity(n);
    let mut reconnects = Vec::with_capacity(n);
    let mut errors = 0usize;
    let mut first_error: Option<String> = None;
    let mut setup = Duration::ZERO;
    let mut with_token = 0usize;
    let start = Instant::now();
    let mut last_report = Instant::now();
    for i in 0..n {
        if start.elapsed() > APPROVAL_PHASE_LIMIT {
            eprintln!("  approvals: phase limit {APPROVAL_PHASE_LIMIT:?} reached after {i}");
            break;
        }
        // Stop early on a persistent failure rather than burning timeouts.
        if errors >= 20 && errors * 2 > i {
            eprintln!("  approvals: too many errors ({errors} of {i}), stopping");
            break;
        }
        let dev = DeviceIdentity::generate();
        let opts = ConnectOpts::with_token(&server.token).device(&dev);

        let ts = Instant::now();
        let rid = match pairing_request(&url, &opts).await {
            Ok(r) => r,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
                continue;
            }
        };
        setup += ts.elapsed();

        let approve_url = server.admin_url(&format!("/admin/v1/pairing/requests/{rid}/approve"));
        // --- timed from here ---
        let t0 = Instant::now();
        let r =
            tokio::task::block_in_place(|| http(&agent, "POST", &approve_url, &bearer, Some("{}")));
        let t_http = t0.elapsed();
        match r {
            Ok((200, _)) => {}
            Ok((status, body)) => {
                errors += 1;
                first_error.get_or_insert(format!("approve -> {status}: {}", snippet(&body)));
                continue;
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
                continue;
            }
        }
        let t1 = Instant::now();
        let res = async {
            let mut c = Conn::open(&url, &remote_headers())
                .await
                .map_err(|e| format!("reconnect open: {e}"))?;
            let hello = c
                .connect(&opts)
                .await
                .map_err(|e| format!("reconnect after approve: {e}"))?;
            Ok::<_, String>((c, hello))
        }
        .await;
        let total = t0.elapsed();
        let reconnect = t1.elapsed();
        // --- timed until here ---
        match res {
            Ok((c, hello)) if hello.get("type").and_then(Value::as_str) == Some("hello-ok") => {
                if hello
                    .pointer("/auth/deviceToken")
                    .and_then(Value::as_str)
                    .is_some()
                {
                    with_token += 1;
                }
                totals.push(total);
                https.push(t_http);
                reconnects.push(reconnect);
                c.close_timeout(1000, "", Duration::from_secs(1)).await;
            }
            Ok((_, hello)) => {
                errors += 1;
                first_error.get_or_insert(format!(
                    "reconnect: unexpected hello payload {}",
                    snippet(hello.to_string().as_bytes())
                ));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!("  approvals: {} done, {errors} errors ...", totals.len());
        }
    }
    ApprovalResult {
        requested: n,
        done: totals.len(),
        errors,
        first_error,
        total: Stats::of(totals),
        approve_http: Stats::of(https),
        reconnect: Stats::of(reconnects),
        setup_secs: setup.as_secs_f64(),
        wall_secs: start.elapsed().as_secs_f64(),
        hello_with_device_token: with_token,
    }
}

// ---------------------------------------------------------------------------
// Part 2: populate, then GET /admin/v1/devices
// ---------------------------------------------------------------------------

struct PopulateResult {
    requested: usize,
    paired: usize,
    failed: usize,
    retries: usize,
    first_error: Option<String>,
    secs: f64,
    concurrency: usize,
}

/// Pair `n` fresh identities by connecting from loopback (silent pairing).
async fn populate(server: &Server, n: usize, conc: usize) -> PopulateResult {
    let url = Arc::new(server.url());
    let token = Arc::new(server.token.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let paired = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let deadline = start + POPULATE_PHASE_LIMIT;
    let mut workers = Vec::new();
    for _ in 0..conc {
        let (url, token, next, paired, failed, retries, first_error) = (
            url.clone(),
            token.clone(),
            next.clone(),
            paired.clone(),
            failed.clone(),
            retries.clone(),
            first_error.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                if Instant::now() > deadline || next.fetch_add(1, Ordering::Relaxed) >= n {
                    break;
                }
                let dev = DeviceIdentity::generate();
                let opts = ConnectOpts::with_token(&token).device(&dev);
                let mut ok = false;
                for attempt in 0..3 {
                    if attempt > 0 {
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                    }
                    match hello_once(&url, &[], &opts, Duration::from_secs(1)).await {
                        Ok(h) if h.get("type").and_then(Value::as_str) == Some("hello-ok") => {
                            ok = true;
                            break;
                        }
                        Ok(h) => {
                            first_error.lock().unwrap().get_or_insert(format!(
                                "unexpected hello {}",
                                snippet(h.to_string().as_bytes())
                            ));
                        }
                        Err(e) => {
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                }
                if ok {
                    paired.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let progress = {
        let (paired, failed) = (paired.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                eprintln!(
                    "  populate: {} paired, {} failed ...",
                    paired.load(Ordering::Relaxed),
                    failed.load(Ordering::Relaxed)
                );
            }
        })
    };
    for w in workers {
        let _ = w.await;
    }
    progress.abort();
    let secs = start.elapsed().as_secs_f64();
    let first_error = first_error.lock().unwrap().take();
    PopulateResult {
        requested: n,
        paired: paired.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        first_error,
        secs,
        concurrency: conc,
    }
}

struct ListLevel {
    concurrency: usize,
    count: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    lat: Stats,
    bytes_min: usize,
    bytes_max: usize,
    server_cpu_ms_per_req: Option<f64>,
}

/// `conc` OS threads, each with its own keep-alive agent, issue
/// `GET /admin/v1/devices` back to back for `secs` seconds.
fn run_list_level(server: &Server, conc: usize, secs: u64) -> ListLevel {
    let url = server.admin_url("/admin/v1/devices");
    let bearer = server.bearer();
    let cpu0 = proc_cpu_secs(server.pid);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..conc)
        .map(|_| {
            let (url, bearer) = (url.clone(), bearer.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut lats = Vec::new();
                let mut errors = 0usize;
                let mut first_error = None;
                let (mut bmin, mut bmax) = (usize::MAX, 0usize);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match http(&agent, "GET", &url, &bearer, None) {
                        Ok((200, body)) => {
                            lats.push(t.elapsed());
                            bmin = bmin.min(body.len());
                            bmax = bmax.max(body.len());
                        }
                        Ok((status, body)) => {
                            errors += 1;
                            first_error.get_or_insert(format!(
                                "GET devices -> {status}: {}",
                                snippet(&body)
                            ));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (lats, errors, first_error, bmin, bmax)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut res = ListLevel {
        concurrency: conc,
        count: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        lat: Stats::default(),
        bytes_min: usize::MAX,
        bytes_max: 0,
        server_cpu_ms_per_req: None,
    };
    for h in handles {
        match h.join() {
            Ok((lats, errors, fe, bmin, bmax)) => {
                all.extend(lats);
                res.errors += errors;
                if res.first_error.is_none() {
                    res.first_error = fe;
                }
                res.bytes_min = res.bytes_min.min(bmin);
                res.bytes_max = res.bytes_max.max(bmax);
            }
            Err(_) => {
                res.errors += 1;
                res.first_error
                    .get_or_insert("client thread panicked".into());
            }
        }
    }
    res.elapsed = start.elapsed();
    res.count = all.len();
    if res.bytes_min == usize::MAX {
        res.bytes_min = 0;
    }
    if let (Some(a), Some(b)) = (cpu0, proc_cpu_secs(server.pid)) {
        if res.count > 0 {
            res.server_cpu_ms_per_req = Some(round2((b - a) * 1000.0 / res.count as f64));
        }
    }
    res.lat = Stats::of(all);
    res
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() {
    if !common::invoked_as_bench("admin") {
        return;
    }
    common::run_and_exit(run());
}

async fn run() -> i32 {
    let approvals = env_u64("BENCH_APPROVALS", 1000) as usize;
    let devices = env_u64("BENCH_DEVICES", 10_000) as usize;
    let secs = env_u64("BENCH_SECS", 5).max(1);
    let pop_conc = (env_u64("BENCH_POP_CONC", MAX_POP_CONC as u64) as usize).clamp(1, MAX_POP_CONC);
    let levels = env_levels("BENCH_LIST_LEVELS", &[1, 4]);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load_start = loadavg();
    println!(
        "clawgate admin bench — approvals {approvals}, devices {devices}, {secs} s/level, {cores} cores, loadavg {load_start}"
    );
    let mut report = json!({
        "bench": "admin",
        "approvals": approvals,
        "devices": devices,
        "secs_per_level": secs,
        "cores": cores,
        "loadavg_start": load_start,
    });
    let mut code = 0;

    // --- part 1 ----------------------------------------------------------------
    if approvals > 0 {
        let mut server = match spawn_server("approve") {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        println!(
            "\n[1] approve → reconnect accepted (server pid {}, gateway {}, admin {}, remote via XFF {REMOTE_IP})",
            server.pid, server.gateway_addr, server.admin_addr
        );
        let r = run_approvals(&server, approvals).await;
        println!(
            "    {} of {} approvals timed in {:.2} s wall ({:.2} s untimed setup), {} errors, {} hello-ok carried auth.deviceToken",
            r.done, r.requested, r.wall_secs, r.setup_secs, r.errors, r.hello_with_device_token
        );
        println!(
            "    {:<36} {:>9} {:>9} {:>9}",
            "interval", "p50 ms", "p99 ms", "max ms"
        );
        for (name, s) in [
            ("approve sent → hello-ok (total)", &r.total),
            ("approve HTTP (POST .../approve)", &r.approve_http),
            ("reconnect (open → hello-ok)", &r.reconnect),
        ] {
            println!(
                "    {:<36} {:>9.3} {:>9.3} {:>9.3}",
                name,
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            );
        }
        let target_ok = r.done > 0 && r.total.p99 <= Duration::from_millis(10);
        println!(
            "    design target p99 ≤ 10 ms: {}",
            if target_ok { "met" } else { "NOT met" }
        );
        if let Some(e) = &r.first_error {
            println!("    first error: {e}");
        }
        let alive = server.alive();
        if !alive {
            eprintln!("warning: server gone; log tail:\n{}", server.log_tail());
            code = 1;
        }
        if r.done == 0 {
            eprintln!(
                "error: no approval succeeded; server log tail:\n{}",
                server.log_tail()
            );
            code = 1;
        }
        report["approve"] = json!({
            "requested": r.requested,
            "done": r.done,
            "errors": r.errors,
            "first_error": r.first_error,
            "wall_s": round2(r.wall_secs),
            "setup_s": round2(r.setup_secs),
            "total": r.total.json(),
            "approve_http": r.approve_http.json(),
            "reconnect": r.reconnect.json(),
            "target_p99_10ms_met": target_ok,
            "hello_with_device_token": r.hello_with_device_token,
            "server_alive_at_end": alive,
            "loadavg": loadavg(),
        });
        drop(server);
    }

    // --- part 2 ----------------------------------------------------------------
    if devices > 0 {
        let mut server = match spawn_server("devices") {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        };
        println!(
            "\n[2] GET /admin/v1/devices (server pid {}, gateway {}, admin {})",
            server.pid, server.gateway_addr, server.admin_addr
        );
        let rss0 = rss_kib(server.pid);
        let p = populate(&server, devices, pop_conc).await;
        let rate = p.paired as f64 / p.secs.max(1e-9);
        println!(
            "    populate: {} of {} devices paired from loopback in {:.2} s = {:.1} pairings/s (concurrency {}, {} failed, {} retries)",
            p.paired, p.requested, p.secs, rate, p.concurrency, p.failed, p.retries
        );
        if let Some(e) = &p.first_error {
            println!("    populate first error: {e}");
        }
        let rss1 = rss_kib(server.pid);
        if let (Some(a), Some(b)) = (rss0, rss1) {
            println!(
                "    server RSS {:.1} MiB -> {:.1} MiB after population",
                a as f64 / 1024.0,
                b as f64 / 1024.0
            );
        }
        report["populate"] = json!({
            "requested": p.requested,
            "paired": p.paired,
            "failed": p.failed,
            "retries": p.retries,
            "first_error": p.first_error,
            "secs": round2(p.secs),
            "pairings_per_s": round2(rate),
            "concurrency": p.concurrency,
            "rss_before_kib": rss0,
            "rss_after_kib": rss1,
        });

        // Sanity: one request, parsed, must list what was paired.
        let check = {
            let agent = agent();
            let url = server.admin_url("/admin/v1/devices");
            let bearer = server.bearer();
            tokio::task::block_in_place(|| {
                let t = Instant::now();
                http(&agent, "GET", &url, &bearer, None).map(|(s, b)| (s, b, t.elapsed()))
            })
        };
        let listed = match &check {
            Ok((200, body, t)) => {
                let n = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v.get("devices").and_then(Value::as_array).map(Vec::len));
                println!(
                    "    check: GET /admin/v1/devices -> 200, {} devices listed, {} bytes ({:.1} KiB/device), first request {:.2} ms",
                    n.map(|x| x.to_string()).unwrap_or_else(|| "?".into()),
                    body.len(),
                    body.len() as f64 / 1024.0 / n.unwrap_or(1).max(1) as f64,
                    ms(*t)
                );
                if n != Some(p.paired) {
                    println!("    warning: listed {n:?} devices, expected {}", p.paired);
                }
                n
            }
            Ok((status, body, _)) => {
                println!(
                    "    check: GET /admin/v1/devices -> {status}: {}",
                    snippet(body)
                );
                code = 1;
                None
            }
            Err(e) => {
                println!("    check: {e}");
                code = 1;
                None
            }
        };

        println!();
        println!(
            "    {:>5} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
            "conc", "count", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "bytes", "srv ms/req"
        );
        let mut levels_json = Vec::new();
        for &c in &levels {
            let r = tokio::task::block_in_place(|| run_list_level(&server, c, secs));
            let rps = r.count as f64 / r.elapsed.as_secs_f64();
            println!(
                "    {:>5} {:>8} {:>9.1} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>11} {:>11}",
                r.concurrency,
                r.count,
                rps,
                ms(r.lat.p50),
                ms(r.lat.p99),
                ms(r.lat.max),
                r.errors,
                r.bytes_max,
                r.server_cpu_ms_per_req
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "-".into()),
            );
            if let Some(e) = &r.first_error {
                println!("          first error: {e}");
            }
            levels_json.push(json!({
                "concurrency": r.concurrency,
                "count": r.count,
                "errors": r.errors,
                "first_error": r.first_error,
                "elapsed_s": round2(r.elapsed.as_secs_f64()),
                "req_per_s": round2(rps),
                "p50_ms": ms(r.lat.p50),
                "p99_ms": ms(r.lat.p99),
                "max_ms": ms(r.lat.max),
                "bytes_min": r.bytes_min,
                "bytes_max": r.bytes_max,
                "server_cpu_ms_per_req": r.server_cpu_ms_per_req,
                "loadavg": loadavg(),
            }));
        }
        let alive = server.alive();
        if !alive {
            eprintln!("warning: server gone; log tail:\n{}", server.log_tail());
            code = 1;
        }
        report["list"] = json!({
            "devices_listed": listed,
            "levels": levels_json,
            "server_alive_at_end": alive,
        });
        drop(server);
    }

    let load_end = loadavg();
    report["loadavg_end"] = json!(load_end);
    println!("\nloadavg at end: {load_end}");
    println!("{}", serde_json::to_string(&report).unwrap());
    code
}
