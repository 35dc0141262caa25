//! Support code shared by the benches (`mod common;` in each): env knobs,
//! statistics, /proc sampling and spawning the server binary.
//!
//! Each bench declares `#[path = "../tests/common/client.rs"] mod client;` at
//! its crate root; the connect helper here uses it as `crate::client`.
//!
//! Lives in a subdirectory so that Cargo does not take it for a bench target.

// Each bench uses a subset.
#![allow(dead_code)]

pub mod lean;

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Conn, ConnectOpts};

/// Upper bound on server start → `runtime.json` ready.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

/// True when run as `cargo bench --bench <name>`. Otherwise (e.g. `cargo test
/// --benches`) prints a note and returns false: the caller exits 0.
pub fn invoked_as_bench(name: &str) -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    println!("{name} bench: skipped (not invoked with --bench; run `cargo bench --bench {name}`)");
    false
}

/// Run `fut` on a multi-thread tokio runtime and exit with the code it returns.
pub fn run_and_exit(fut: impl Future<Output = i32>) -> ! {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(fut);
    drop(rt);
    std::process::exit(code);
}

// ---------------------------------------------------------------------------
// Env knobs, numbers, statistics
// ---------------------------------------------------------------------------

pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Comma-separated positive levels from `name`; unset: `default`; set but
/// blank: none (that part of the bench is skipped).
pub fn env_levels(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Err(_) => default.to_vec(),
        Ok(s) if s.trim().is_empty() => vec![],
        Ok(s) => {
            let v: Vec<usize> = s
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .filter(|&x| x > 0)
                .collect();
            if v.is_empty() {
                default.to_vec()
            } else {
                v
            }
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1]
}

/// Count and p50/p99/max of a set of latencies.
#[derive(Clone, Copy, Default)]
pub struct Stats {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut v: Vec<Duration>) -> Stats {
        v.sort_unstable();
        Stats {
            n: v.len(),
            p50: percentile(&v, 50.0),
            p99: percentile(&v, 99.0),
            max: v.last().copied().unwrap_or_default(),
        }
    }

    pub fn json(&self) -> Value {
        json!({"n": self.n, "p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "max_ms": ms(self.max)})
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// CPU time (user + system) consumed so far by process `pid`, in seconds.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    Some((utime + stime) as f64 / tck)
}

/// VmRSS of `pid` in KiB.
/// Raises RLIMIT_NOFILE (soft, and the hard limit as root) to `want`, or to
/// the hard limit when that is all it may; returns the soft limit now. The
/// server a bench spawns inherits it.
pub fn raise_nofile(want: u64) -> u64 {
    unsafe {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < want as libc::rlim_t {
            let target = libc::rlimit {
                rlim_cur: want as libc::rlim_t,
                rlim_max: (want as libc::rlim_t).max(rl.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &target) != 0 {
                let fallback = libc::rlimit {
                    rlim_cur: rl.rlim_max,
                    rlim_max: rl.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &fallback);
            }
        }
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut now);
        now.rlim_cur
    }
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

/// A random 32-character shared token (hex).
pub fn random_token() -> String {
    hex::encode(&clawgate::util::random_bytes()[..16])
}

/// What differs between the benches' server launches.
pub struct ServerSpec<'a> {
    /// Prefix of the temp dir (config, state, server.log).
    pub prefix: &'a str,
    /// The `gateway` section of the config file.
    pub gateway: Value,
    /// Arguments after `serve --config C --state-dir S --port 0`.
    pub args: &'a [&'a str],
    /// Environment variables to remove besides the common OPENCLAW_* ones.
    pub env_remove: &'a [&'a str],
    /// Server log filter (CLAWGATE_LOG / RUST_LOG) when BENCH_SERVER_LOG is unset.
    pub default_log: &'a str,
}

/// A spawned `clawgate serve`: killed on drop; BENCH_KEEP_TMP=1 keeps its
/// temp dir.
pub struct ServerProc {
    child: Option<Child>,
    pub pid: u32,
    /// The server's `--state-dir`.
    pub state: PathBuf,
    log: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var("BENCH_KEEP_TMP").as_deref() == Ok("1") {
            if let Some(t) = self.tmp.take() {
                let p = t.keep();
                eprintln!("kept temp dir {}", p.display());
            }
        }
    }
}

impl ServerProc {
    /// Write a fresh config and spawn `clawgate serve` with a temp state dir;
    /// the returned instant is taken just before spawning.
    pub fn spawn(spec: &ServerSpec) -> Result<(ServerProc, Instant), String> {
        let tmp = tempfile::Builder::new()
            .prefix(spec.prefix)
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let config = tmp.path().join("openclaw.json");
        let state = tmp.path().join("state");
        let log = tmp.path().join("server.log");
        let cfg = json!({ "gateway": spec.gateway });
        fs::write(&config, serde_json::to_vec_pretty(&cfg).unwrap())
            .map_err(|e| format!("write config: {e}"))?;
        let log_file = fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let log_err = log_file.try_clone().map_err(|e| format!("log file: {e}"))?;

        // Server log level (the server reads CLAWGATE_LOG); the log goes to
        // <tmp>/server.log, printed on failure (BENCH_KEEP_TMP=1 keeps it).
        let log_level =
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| spec.default_log.into());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state)
            .arg("--port")
            .arg("0")
            .args(spec.args);
        for var in [
            "OPENCLAW_GATEWAY_TOKEN",
            "OPENCLAW_GATEWAY_PASSWORD",
            "OPENCLAW_GATEWAY_PORT",
            "OPENCLAW_CONFIG_PATH",
            "OPENCLAW_STATE_DIR",
            "CLAWGATE_STATE_DIR",
        ]
        .iter()
        .chain(spec.env_remove)
        {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", &log_level)
            .env("CLAWGATE_LOG", &log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        {
            use std::os::unix::process::CommandExt as _;
            // Kill the server if the spawning thread dies without cleaning up.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let t0 = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", env!("CARGO_BIN_EXE_clawgate")))?;
        let server = ServerProc {
            pid: child.id(),
            child: Some(child),
            state,
            log,
            tmp: Some(tmp),
        };
        Ok((server, t0))
    }

    /// Poll `ready(state dir)` every `poll` until it yields a value; fail if the
    /// server exits or `STARTUP_DEADLINE` (from `t0`) passes first. `what`
    /// names the awaited files in the timeout error.
    pub fn wait_ready<T>(
        &mut self,
        t0: Instant,
        poll: Duration,
        what: &str,
        mut ready: impl FnMut(&Path) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            if let Some(v) = ready(&self.state) {
                return Ok(v);
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "server exited during startup ({status}); log tail:\n{}",
                    self.log_tail()
                ));
            }
            if t0.elapsed() > STARTUP_DEADLINE {
                return Err(format!(
                    "no {what} after {STARTUP_DEADLINE:?}; log tail:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(poll);
        }
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// `<state>/runtime.json`, parsed (None while absent or partly written).
pub fn read_runtime(state: &Path) -> Option<Value> {
    let s = fs::read_to_string(state.join("runtime.json")).ok()?;
    serde_json::from_str(&s).ok()
}

// ---------------------------------------------------------------------------
// Gateway connections
// ---------------------------------------------------------------------------

/// Open a WS connection (with `headers` on the upgrade), connect with `opts` and close,
/// waiting ≤ `close_wait` for the server's close reply; returns the hello.
pub async fn hello_once(
    url: &str,
    headers: &[(&str, &str)],
    opts: &ConnectOpts,
    close_wait: Duration,
) -> Result<Value, String> {
    let mut c = Conn::open(url, headers).await.map_err(|e| e.to_string())?;
    let hello = c.connect(opts).await.map_err(|e| e.to_string())?;
    c.close_timeout(1000, "", close_wait).await;
    Ok(hello)
}
