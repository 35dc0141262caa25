//! `clawgate doctor`: the usual self-hosting checklist, automated.
//!
//! Checks, in order, each with a status (`ok`, `warn`, `fail`, or `skip` when
//! it cannot run), a one-line finding, details and the exact fix:
//!
//! 1. `config`: the config loads and validates exactly as `clawgate serve`
//!    would load it (same flags and environment; no token is generated);
//! 2. `permissions`: owner and mode of the config file and the state dir and
//!    of the secret files in it, with the `chmod`/`chown` that fixes them;
//! 3. `listeners`: when `<state dir>/runtime.json` names a live clawgate, both
//!    listeners must answer `GET /healthz`; otherwise the configured ports must
//!    be free (a port held by another process is named with its pid);
//! 4. `handshake`: a real `connect` on the gateway WebSocket with the shared
//!    secret this config resolves to (file, environment or generated token);
//! 5. `rejections`: `GET /admin/v1/diagnostics/rejections`, grouped by kind
//!    and explained (untrusted proxy, wrong or missing token, pending pairing,
//!    origin, ...). They are read before the doctor's own handshake, so that a
//!    failing doctor handshake does not show up as a past rejection.
//!
//! Exit status: 0 when no check failed (warnings allowed), 1 otherwise.
//! `--json` prints `{"ok", "checks": [{"id","status","summary","details","fix"}]}`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;
use serde_json::{json, Value};

use super::ServeArgs;
use crate::config::{self, AuthMode, ConfigCode, ConfigError, LoadOptions, RuntimeConfig};
use crate::config::{Issue, SecretSource};

/// How long a health probe or an admin call may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the WebSocket handshake may take (challenge and answer).
const WS_TIMEOUT: Duration = Duration::from_secs(10);
/// Files in the state dir that hold secrets (tokens, keys, the token keyring).
const SECRET_FILES: &[&str] = &[
    "admin-token",
    "gateway-token",
    "device-token.key",
    "clawgate.redb",
];

#[derive(Args, Debug, Clone, Default)]
pub struct DoctorArgs {
    /// Print the findings as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Check this gateway port instead of the configured one (as `serve --port`).
    #[arg(long)]
    pub port: Option<u16>,
    /// Check this gateway bind instead of the configured one (as `serve --bind`).
    #[arg(long)]
    pub bind: Option<String>,
    /// Check this admin port instead of the configured one (as `serve --admin-port`).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Admin API base URL (default: the adminAddr in <state dir>/runtime.json).
    #[arg(long, env = "CLAWGATE_ADMIN_URL", value_name = "URL")]
    pub admin_url: Option<String>,
    /// Admin token or a minted admin token with config:read (default: gateway.admin.token, else <state dir>/admin-token).
    #[arg(
        long,
        env = "CLAWGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,
}

// ---------------------------------------------------------------- report

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Skip,
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Skip => "skip",
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
    fn marker(self) -> &'static str {
        match self {
            Status::Skip => "-",
            Status::Ok => "✔",
            Status::Warn => "!",
            Status::Fail => "✘",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    pub details: Vec<String>,
    pub fix: Vec<String>,
}

impl Check {
    fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Check {
        Check {
            id,
            status,
            summary: summary.into(),
            details: vec![],
            fix: vec![],
        }
    }
    fn detail(mut self, d: impl Into<String>) -> Check {
        self.details.push(d.into());
        self
    }
    fn fix(mut self, f: impl Into<String>) -> Check {
        self.add_fix(f);
        self
    }
    fn add_fix(&mut self, f: impl Into<String>) {
        let f = f.into();
        if !self.fix.contains(&f) {
            self.fix.push(f);
        }
    }
    fn raise(&mut self, s: Status) {
        self.status = self.status.max(s);
    }
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status.as_str(),
            "summary": self.summary,
            "details": self.details,
            "fix": self.fix,
        })
    }
}

/// All checks of one run.
#[derive(Debug)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>(),
        })
    }

    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:<width$}  {}\n",
                c.status.marker(),
                c.id,
                c.summary
            ));
            let pad = " ".repeat(width + 4);
            for d in &c.details {
                out.push_str(&format!("{pad}{d}\n"));
            }
            for f in &c.fix {
                out.push_str(&format!("{pad}fix: {f}\n"));
            }
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let mut parts = vec![];
        for (s, one, many) in [
            (Status::Fail, "failed", "failed"),
            (Status::Warn, "warning", "warnings"),
            (Status::Ok, "ok", "ok"),
            (Status::Skip, "skipped", "skipped"),
        ] {
            let n = count(s);
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        }
        out.push_str(&format!(
            "\n{}: {}\n",
            if self.ok() {
                "doctor: no problem that stops clawgate"
            } else {
                "doctor: something is wrong"
            },
            parts.join(", ")
        ));
        out
    }
}

// ---------------------------------------------------------------- entry point

/// Runs the checks and prints the report; exit 1 when a check failed.
pub async fn run(args: DoctorArgs, global: ServeArgs) -> ExitCode {
    let json = args.json;
    let report = match tokio::task::spawn_blocking(move || diagnose(args, global)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate: doctor: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        let v = report.to_json();
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    } else {
        print!("{}", report.render());
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// What the checks share.
struct Ctx {
    opts: LoadOptions,
    state_dir: PathBuf,
    config_path: Option<PathBuf>,
    euid: u32,
    /// `clawgate serve` with the flags this run was given.
    serve_cmd: String,
}

impl Ctx {
    /// "in <file>" or "in your config file".
    fn in_file(&self) -> String {
        match &self.config_path {
            Some(p) => format!("in {}", p.display()),
            None => "in ~/.openclaw/openclaw.json".into(),
        }
    }
}

/// Runs every check (blocking).
pub fn diagnose(args: DoctorArgs, global: ServeArgs) -> Report {
    let mut opts = LoadOptions::from_process_env();
    opts.config_path = global.config;
    opts.state_dir = global.state_dir;
    opts.port = args.port.or(global.port);
    opts.bind = args.bind.clone().or(global.bind);
    opts.admin_port = args.admin_port.or(global.admin_port);
    opts.generate_token = false;
    let mut serve_cmd = String::from("clawgate serve");
    if let Some(p) = &opts.config_path {
        serve_cmd.push_str(&format!(" --config {}", p.display()));
    }
    if let Some(d) = &opts.state_dir {
        serve_cmd.push_str(&format!(" --state-dir {}", d.display()));
    }
    let ctx = Ctx {
        state_dir: config::resolve_state_dir(&opts),
        config_path: config::resolve_config_path(&opts).map(|(p, _)| p),
        euid: rustix::process::geteuid().as_raw(),
        serve_cmd,
        opts,
    };
    let loaded = config::load(&ctx.opts);
    let mut checks = vec![check_config(&ctx, &loaded)];
    let cfg = loaded.ok();
    checks.push(check_permissions(&ctx));
    let (listeners, live) = check_listeners(&ctx, &args, cfg.as_ref());
    checks.push(listeners);
    let admin = live
        .admin
        .as_ref()
        .map(|base| Admin::new(base.clone(), admin_token(&ctx, &args, cfg.as_ref())));
    if let Some(a) = &admin {
        checks.push(check_reload(&ctx, a));
    }
    // Before the handshake: the doctor's own attempt must not count.
    let rejections = match &admin {
        Some(a) => check_rejections(&ctx, a),
        None => Check::new(
            "rejections",
            Status::Skip,
            "skipped: the admin API is not reachable (see listeners)",
        ),
    };
    checks.push(check_handshake(
        &ctx,
        live.gateway,
        cfg.as_ref(),
        admin.as_ref(),
    ));
    checks.push(rejections);
    Report { checks }
}

// ---------------------------------------------------------------- 1. config

fn check_config(ctx: &Ctx, loaded: &Result<RuntimeConfig, ConfigError>) -> Check {
    match loaded {
        Ok(cfg) => {
            let what = match &cfg.file {
                Some(f) => format!("{} is valid", f.display()),
                None => "no config file found; the embedded defaults apply".into(),
            };
            if cfg.warnings.is_empty() {
                return Check::new("config", Status::Ok, what);
            }
            let mut c = Check::new(
                "config",
                Status::Warn,
                format!("{what}, with {}", plural(cfg.warnings.len(), "warning")),
            );
            c.details = cfg.warnings.clone();
            c
        }
        Err(e) => config_failure(e, ctx.euid),
    }
}

fn issue_file(i: &Issue) -> String {
    i.file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "the config".into())
}

fn config_failure(e: &ConfigError, euid: u32) -> Check {
    let first = e.issues.first();
    let summary = match (e.issues.len(), first) {
        (1, Some(i)) => i.to_string(),
        (_, Some(i)) => format!(
            "{} has {}",
            issue_file(i),
            plural(e.issues.len(), "problem")
        ),
        _ => "the configuration could not be loaded".into(),
    };
    let mut c = Check::new("config", Status::Fail, summary);
    if e.issues.len() > 1 {
        c.details = e.issues.iter().map(|i| i.to_string()).collect();
    }
    for i in &e.issues {
        match (i.code, &i.file, i.line) {
            (ConfigCode::Unreadable, Some(f), _) => {
                for fix in unreadable_fix(f, euid) {
                    c.add_fix(fix);
                }
            }
            (ConfigCode::StateDir, _, _) => {
                c.add_fix("make the state dir writable by the user clawgate runs as (see permissions), or pick another one with --state-dir DIR");
            }
            (_, Some(f), Some(line)) => c.add_fix(match i.column {
                Some(col) => format!("edit {} at line {line}, column {col}", f.display()),
                None => format!("edit {} at line {line}", f.display()),
            }),
            (_, _, _) if !i.path.is_empty() => {
                c.add_fix(format!("change {} as described above", i.path))
            }
            _ => {}
        }
    }
    if !e.is_unreadable() {
        let file = first.and_then(|i| i.file.as_ref());
        c.add_fix(match file {
            Some(f) => format!(
                "then check again: `clawgate config validate --config {}`",
                f.display()
            ),
            None => "then check again: `clawgate config validate`".into(),
        });
    }
    c
}

/// The fix for a config file that cannot be read.
fn unreadable_fix(path: &Path, euid: u32) -> Vec<String> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => vec![format!(
            "{p} is a directory: point --config (or OPENCLAW_CONFIG_PATH) at the file, e.g. --config {}",
            path.join("openclaw.json").display(),
            p = path.display()
        )],
        Ok(md) => owner_mode_fix(path, md.uid(), md.mode(), euid),
        Err(e) if e.kind() == ErrorKind::NotFound => vec![format!(
            "create {} or correct the path given with --config / OPENCLAW_CONFIG_PATH",
            path.display()
        )],
        Err(_) => vec![format!(
            "make the directories above {} searchable by uid {euid} (chmod o+x on each, or run as their owner)",
            path.display()
        )],
    }
}

/// `chown`/`chmod` that make a file readable by `euid` and private.
fn owner_mode_fix(path: &Path, uid: u32, mode: u32, euid: u32) -> Vec<String> {
    let p = path.display();
    let mut fix = vec![];
    if uid != euid {
        fix.push(format!("sudo chown {euid} {p}"));
    }
    if uid != euid || mode & 0o400 == 0 || mode & 0o077 != 0 {
        fix.push(format!("chmod 600 {p}"));
    }
    fix
}

// ---------------------------------------------------------------- 2. permissions

/// Dotted paths of keys in the file that hold a literal secret (not a `${VAR}`
/// reference or an `{source: "env"}` object).
fn secret_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let lk = k.to_ascii_lowercase().replace(['_', '-'], "");
                let secretish = lk.contains("token")
                    || lk.contains("password")
                    || lk.contains("secret")
                    || lk.contains("apikey")
                    || lk == "key"
                    || lk.ends_with("privatekey");
                match child {
                    Value::String(s) if secretish => {
                        let s = s.trim();
                        let reference = s.starts_with("${") && s.ends_with('}');
                        if !s.is_empty() && !reference {
                            out.push(path);
                        }
                    }
                    _ => secret_keys(child, &path, out),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                secret_keys(child, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn mode_str(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

fn check_permissions(ctx: &Ctx) -> Check {
    let euid = ctx.euid;
    let mut c = Check::new("permissions", Status::Ok, "");
    let mut fine = vec![];
    // The config file.
    if let Some(path) = &ctx.config_path {
        let p = path.display();
        match std::fs::metadata(path) {
            Ok(md) if md.is_file() => {
                let mode = md.mode();
                let mut secrets = vec![];
                if let Some(v) = std::fs::read_to_string(path)
                    .ok()
                    .filter(|t| {
                        crate::config::depth::check(t, crate::config::depth::MAX_DEPTH).is_ok()
                    })
                    .and_then(|t| json5::from_str::<Value>(&t).ok())
                {
                    secret_keys(&v, "", &mut secrets);
                }
                let mut loose = false;
                if mode & 0o044 != 0 && !secrets.is_empty() {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{p} (mode {}) is readable by {} and holds {}",
                        mode_str(mode),
                        who(mode, 0o040, 0o004),
                        short_list(&secrets, 3)
                    ));
                    loose = true;
                }
                if mode & 0o022 != 0 {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{p} (mode {}) is writable by {}, who could change the gateway's auth settings",
                        mode_str(mode),
                        who(mode, 0o020, 0o002)
                    ));
                    loose = true;
                }
                if loose {
                    c.add_fix(format!("chmod 600 {p}"));
                }
                if md.uid() != euid {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{p} is owned by uid {}, but clawgate runs as uid {euid}",
                        md.uid()
                    ));
                    c.add_fix(format!("sudo chown {euid} {p}"));
                }
                if !loose && md.uid() == euid {
                    fine.push(format!("config file mode {}", mode_str(mode)));
                }
            }
            // Unreadable or missing: the config check reports it.
            _ => {}
        }
    }
    // The state dir and the secrets in it.
    let dir = &ctx.state_dir;
    let d = dir.display();
    match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => {
            let mode = md.mode();
            let mut dir_ok = true;
            if mode & 0o077 != 0 {
                c.raise(Status::Warn);
                c.details.push(format!(
                    "the state dir {d} (mode {}) is open to {}; it holds the gateway's tokens and keys",
                    mode_str(mode),
                    who(mode, 0o070, 0o007)
                ));
                c.add_fix(format!("chmod 700 {d}"));
                dir_ok = false;
            }
            if md.uid() != euid {
                c.raise(Status::Warn);
                c.details.push(format!(
                    "the state dir {d} is owned by uid {}, but clawgate runs as uid {euid}",
                    md.uid()
                ));
                c.add_fix(format!("sudo chown -R {euid} {d}"));
                dir_ok = false;
            }
            if dir_ok {
                fine.push(format!("state dir mode {}", mode_str(mode)));
            }
            let mut files_ok = true;
            for name in SECRET_FILES {
                let f = dir.join(name);
                let Ok(fm) = std::fs::metadata(&f) else {
                    continue;
                };
                if fm.mode() & 0o077 != 0 {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{} (mode {}) is open to {}",
                        f.display(),
                        mode_str(fm.mode()),
                        who(fm.mode(), 0o070, 0o007)
                    ));
                    c.add_fix(format!("chmod 600 {}", f.display()));
                    files_ok = false;
                }
                if fm.uid() != euid && md.uid() == euid {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{} is owned by uid {}, but clawgate runs as uid {euid}",
                        f.display(),
                        fm.uid()
                    ));
                    c.add_fix(format!("sudo chown {euid} {}", f.display()));
                    files_ok = false;
                }
            }
            if files_ok {
                fine.push("secret files 0600".into());
            }
        }
        Ok(_) => {
            c.raise(Status::Fail);
            c.details
                .push(format!("the state dir {d} exists but is not a directory"));
            c.add_fix(format!(
                "move {d} out of the way, or pick another state dir with --state-dir DIR"
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fine.push(format!(
                "state dir {d} not created yet (`clawgate serve` creates it with mode 0700)"
            ));
        }
        Err(e) => {
            c.raise(Status::Fail);
            c.details
                .push(format!("cannot inspect the state dir {d}: {e}"));
            c.add_fix(format!(
                "make the directories above {d} searchable by uid {euid}, or pick another state dir with --state-dir DIR"
            ));
        }
    }
    c.summary = match c.status {
        Status::Ok => fine.join(", "),
        _ if c.details.len() == 1 => c.details.remove(0),
        _ => plural(c.details.len(), "permission problem"),
    };
    c
}

/// "group and others" / "group" / "others" for the given mode bits.
fn who(mode: u32, group_bits: u32, other_bits: u32) -> &'static str {
    match (mode & group_bits != 0, mode & other_bits != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

fn short_list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

// ---------------------------------------------------------------- 3. listeners

/// Where a running clawgate answers (when it does).
#[derive(Default)]
struct Live {
    gateway: Option<SocketAddr>,
    /// Admin API base URL.
    admin: Option<String>,
}

struct RuntimeFile {
    gateway: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    pid: Option<u32>,
}

/// Reads `<state dir>/runtime.json`; `Err` carries why it could not be used.
fn read_runtime(state_dir: &Path) -> Result<Option<RuntimeFile>, String> {
    let file = state_dir.join("runtime.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let addr = |k: &str| v[k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
    Ok(Some(RuntimeFile {
        gateway: addr("gatewayAddr"),
        admin: addr("adminAddr"),
        pid: v["pid"].as_u64().and_then(|p| u32::try_from(p).ok()),
    }))
}

fn pid_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// An unspecified bind address (0.0.0.0 / ::) replaced by loopback.
fn connectable(mut a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => a.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    a
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .proxy(None)
        .max_redirects(0)
        .user_agent(format!("clawgate-doctor/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// `GET <base>/healthz` must answer 200.
fn healthz(agent: &ureq::Agent, base: &str) -> Result<(), String> {
    match agent.get(format!("{base}/healthz")).call() {
        Ok(r) if r.status().as_u16() == 200 => Ok(()),
        Ok(r) => Err(format!("answered HTTP {}", r.status().as_u16())),
        Err(ureq::Error::Io(e)) => Err(e.to_string()),
        Err(ureq::Error::Timeout(_)) => Err("no answer (timed out)".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

fn check_listeners(ctx: &Ctx, args: &DoctorArgs, cfg: Option<&RuntimeConfig>) -> (Check, Live) {
    let admin_flag = args
        .admin_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(normalize_url);
    let mut notes = vec![];
    let runtime = match read_runtime(&ctx.state_dir) {
        Ok(r) => r,
        Err(e) => {
            notes.push(e);
            None
        }
    };
    let runtime_file = ctx.state_dir.join("runtime.json");
    if let Some(rt) = runtime {
        match rt.pid {
            Some(pid) if !pid_alive(pid) => notes.push(format!(
                "{} names pid {pid}, which is not running (clawgate was killed or crashed; the file is rewritten at the next start)",
                runtime_file.display()
            )),
            _ => {
                let admin = admin_flag
                    .clone()
                    .or(rt.admin.map(|a| format!("http://{}", connectable(a))));
                let (c, live) = probe_running(
                    ctx,
                    rt.gateway.map(connectable),
                    admin,
                    rt.pid,
                    notes.clone(),
                );
                // Nothing answers and the pid now belongs to another program:
                // clawgate died without removing the file and the pid was reused.
                let other = rt
                    .pid
                    .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
                    .map(|n| n.trim().to_string())
                    .filter(|n| n != "clawgate");
                match other {
                    Some(name) if live.gateway.is_none() && live.admin.is_none() => {
                        notes.push(format!(
                            "{} names pid {}, which is now {name}, not clawgate (clawgate was killed or crashed; the file is rewritten at the next start)",
                            runtime_file.display(),
                            rt.pid.unwrap_or(0)
                        ));
                    }
                    _ => return (c, live),
                }
            }
        }
    }
    // Not running according to runtime.json. An explicit --admin-url still
    // names a running instance.
    if let Some(admin) = admin_flag {
        let gw = cfg.map(|c| connectable(SocketAddr::new(c.gateway.bind, c.gateway.port)));
        return probe_running(ctx, gw, Some(admin), None, notes);
    }
    let Some(cfg) = cfg else {
        let mut c = Check::new(
            "listeners",
            Status::Skip,
            format!(
                "skipped: clawgate is not running (no live runtime.json in {}) and the config did not load, so the ports are unknown",
                ctx.state_dir.display()
            ),
        );
        c.details = notes;
        return (c, Live::default());
    };
    let mut c = Check::new("listeners", Status::Ok, "");
    c.details = notes;
    let g = &cfg.gateway;
    let mut free = vec![];
    for (what, ip, port, key, flag) in [
        ("gateway", g.bind, g.port, "gateway.port", "--port"),
        (
            "admin API",
            g.admin.bind,
            g.admin.port,
            "gateway.admin.port",
            "--admin-port",
        ),
    ] {
        if port == 0 {
            c.details.push(format!(
                "the {what} port is 0: a free port is picked at start"
            ));
            continue;
        }
        let addr = SocketAddr::new(ip, port);
        match TcpListener::bind(addr) {
            Ok(l) => {
                drop(l);
                free.push(format!("{what} {addr}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                let (finding, fixes) = bind_failure(ctx, what, addr, key, flag, &e);
                if c.summary.is_empty() {
                    c.summary = finding.clone();
                } else {
                    c.details.push(finding);
                }
                for f in fixes {
                    c.add_fix(f);
                }
            }
        }
    }
    if c.status == Status::Ok {
        c.status = Status::Warn;
        c.summary = format!(
            "clawgate is not running (no live runtime.json in {}); its ports are free{}",
            ctx.state_dir.display(),
            if free.is_empty() {
                String::new()
            } else {
                format!(" ({})", free.join(", "))
            }
        );
        c.add_fix(format!("start it: `{}`", ctx.serve_cmd));
        c.add_fix(
            "if it runs with another state dir, pass that one: `clawgate doctor --state-dir DIR`",
        );
    }
    (c, Live::default())
}

/// Why a configured port cannot be bound, and how to fix it.
fn bind_failure(
    ctx: &Ctx,
    what: &str,
    addr: SocketAddr,
    key: &str,
    flag: &str,
    e: &std::io::Error,
) -> (String, Vec<String>) {
    let (ip, port) = (addr.ip(), addr.port());
    let other_port = format!(
        "or use another port: set {key} {} (or start with `clawgate serve {flag} <N>`)",
        ctx.in_file()
    );
    match e.kind() {
        ErrorKind::AddrInUse => match listener_owner(port) {
            Some((pid, name)) if name == "clawgate" => (
                format!(
                    "{what} port {port} on {ip} is in use by another clawgate (pid {pid}) that keeps its state elsewhere (this doctor looked in {})",
                    ctx.state_dir.display()
                ),
                vec![
                    format!("check that one: `clawgate doctor --state-dir <its state dir>`"),
                    format!("or stop it: `kill {pid}`"),
                    other_port,
                ],
            ),
            Some((pid, name)) => (
                format!("{what} port {port} on {ip} is in use by another process (pid {pid}, {name})"),
                vec![format!("stop that process (`kill {pid}`)"), other_port],
            ),
            None => (
                format!("{what} port {port} on {ip} is in use by another process"),
                vec![
                    format!("find it with `ss -ltnp 'sport = :{port}'` and stop it"),
                    other_port,
                ],
            ),
        },
        ErrorKind::AddrNotAvailable => (
            format!("cannot listen on {ip}: it is not an address of this machine"),
            vec![format!(
                "set gateway.bind {} to \"loopback\", \"lan\" or one of this machine's addresses",
                ctx.in_file()
            )],
        ),
        ErrorKind::PermissionDenied => (
            format!("{what} port {port} on {ip} needs privileges clawgate does not have (ports below 1024)"),
            vec![format!("use a port from 1024 up: set {key} {}", ctx.in_file())],
        ),
        _ => (
            format!("cannot listen on {addr} for the {what}: {e}"),
            vec![other_port],
        ),
    }
}

/// The process (pid, command name) listening on TCP `port`, from /proc.
fn listener_owner(port: u16) -> Option<(u32, String)> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(text.lines().skip(1).filter_map(|l| listen_inode(l, port)));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok());
            if inode.is_some_and(|i| inodes.contains(&i)) {
                let name = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some((pid, name));
            }
        }
    }
    None
}

/// The socket inode of a `/proc/net/tcp` line when it is a listener on `port`.
fn listen_inode(line: &str, port: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || f[3] != "0A" {
        return None;
    }
    let (_, p) = f[1].rsplit_once(':')?;
    if u16::from_str_radix(p, 16).ok()? != port {
        return None;
    }
    f[9].parse::<u64>().ok().filter(|i| *i != 0)
}

/// Both listeners of a running instance must answer `/healthz`.
fn probe_running(
    ctx: &Ctx,
    gateway: Option<SocketAddr>,
    admin: Option<String>,
    pid: Option<u32>,
    notes: Vec<String>,
) -> (Check, Live) {
    let agent = agent();
    let who = pid
        .map(|p| format!("clawgate (pid {p})"))
        .unwrap_or_else(|| "clawgate".into());
    let mut c = Check::new("listeners", Status::Ok, "");
    c.details = notes;
    let mut live = Live::default();
    let mut answered = vec![];
    match gateway {
        Some(g) => match healthz(&agent, &format!("http://{g}")) {
            Ok(()) => {
                live.gateway = Some(g);
                answered.push(format!("gateway ws://{g}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                c.details.push(format!(
                    "the gateway listener http://{g}/healthz does not answer: {e}"
                ));
            }
        },
        None => {
            c.raise(Status::Fail);
            c.details.push(format!(
                "{} has no usable gatewayAddr",
                ctx.state_dir.join("runtime.json").display()
            ));
        }
    }
    match &admin {
        Some(a) => match healthz(&agent, a) {
            Ok(()) => {
                live.admin = Some(a.clone());
                answered.push(format!("admin API {a}"));
            }
            Err(e) => {
                c.raise(Status::Fail);
                c.details
                    .push(format!("the admin API {a}/healthz does not answer: {e}"));
            }
        },
        None => {
            c.raise(Status::Fail);
            c.details.push(format!(
                "{} has no usable adminAddr",
                ctx.state_dir.join("runtime.json").display()
            ));
        }
    }
    if c.status == Status::Ok {
        c.summary = format!("{who} answers: {}", answered.join(", "));
    } else {
        c.summary = format!(
            "{who} is not answering on every listener{}",
            if answered.is_empty() {
                String::new()
            } else {
                format!(" (answers: {})", answered.join(", "))
            }
        );
        match pid {
            Some(p) => c.add_fix(format!(
                "look at the log of pid {p}; if it hangs, restart it: `kill {p}` then `{}`",
                ctx.serve_cmd
            )),
            None => c.add_fix(format!("restart clawgate: `{}`", ctx.serve_cmd)),
        }
    }
    (c, live)
}

// ---------------------------------------------------------------- admin API

/// A minimal admin API client.
struct Admin {
    base: String,
    /// The token and where it came from.
    token: Result<String, String>,
    agent: ureq::Agent,
}

/// Why an admin call did not give JSON.
#[derive(Debug)]
struct ApiError {
    status: Option<u16>,
    message: String,
}

fn admin_token(
    ctx: &Ctx,
    args: &DoctorArgs,
    cfg: Option<&RuntimeConfig>,
) -> Result<String, String> {
    if let Some(t) = args
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    if let Some(t) = cfg
        .and_then(|c| c.gateway.admin.token.as_ref())
        .and_then(|t| t.expose())
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    let file = ctx.state_dir.join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(format!("{} is empty", file.display())),
        Err(e) => Err(format!(
            "cannot read the admin token {}: {e}",
            file.display()
        )),
    }
}

impl Admin {
    fn new(base: String, token: Result<String, String>) -> Admin {
        Admin {
            base,
            token,
            agent: agent(),
        }
    }

    fn get(&self, path: &str) -> Result<Value, ApiError> {
        let token = self.token.as_ref().map_err(|e| ApiError {
            status: None,
            message: e.clone(),
        })?;
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .call();
        let mut resp = resp.map_err(|e| ApiError {
            status: None,
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(v);
        }
        Err(ApiError {
            status: Some(status),
            message: v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}")),
        })
    }

    /// The last `gateway.token.rotate` audit event: (time ms, actor).
    fn last_gateway_rotation(&self) -> Option<(u64, String)> {
        let mut after = 0u64;
        let mut found = None;
        for _ in 0..20 {
            let v = self
                .get(&format!("/admin/v1/audit?after={after}&limit=1000"))
                .ok()?;
            let events = v["events"].as_array()?;
            for e in events {
                if e["action"] == "gateway.token.rotate" && e["outcome"] == "ok" {
                    found = Some((
                        e["ts"].as_u64().unwrap_or(0),
                        e["actor"].as_str().unwrap_or("?").to_string(),
                    ));
                }
            }
            let next = v["next"].as_u64().unwrap_or(after);
            if events.len() < 1000 || next == after {
                break;
            }
            after = next;
        }
        found
    }
}

// ---------------------------------------------------------------- 4. handshake

/// How the handshake went.
#[derive(Debug)]
enum Handshake {
    /// The `res` frame answering `connect`.
    Answered(Value),
    /// The upgrade was refused with an HTTP status.
    Http { status: u16, body: String },
    /// TCP, WebSocket or timeout trouble.
    Io(String),
}

/// Opens the gateway WebSocket, waits for `connect.challenge`, sends `connect`
/// and returns the answer.
fn ws_connect(addr: SocketAddr, auth: Value) -> Handshake {
    use tungstenite::handshake::HandshakeError;
    use tungstenite::{Error as WsError, Message};
    let stream = match TcpStream::connect_timeout(&addr, HTTP_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return Handshake::Io(format!("cannot connect to {addr}: {e}")),
    };
    let _ = stream.set_read_timeout(Some(WS_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WS_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{addr}/");
    let mut ws = match tungstenite::client(url.as_str(), stream) {
        Ok((ws, _)) => ws,
        Err(HandshakeError::Failure(WsError::Http(resp))) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Handshake::Http {
                status: resp.status().as_u16(),
                body,
            };
        }
        Err(HandshakeError::Failure(e)) => {
            return Handshake::Io(format!("WebSocket upgrade failed: {e}"))
        }
        Err(HandshakeError::Interrupted(_)) => {
            return Handshake::Io("WebSocket upgrade timed out".into())
        }
    };
    let mut sent = false;
    let req = json!({
        "type": "req",
        "id": "doctor-1",
        "method": "connect",
        "params": {
            "minProtocol": crate::gateway::PROTOCOL_VERSION,
            "maxProtocol": crate::gateway::PROTOCOL_VERSION,
            "client": {
                "id": "cli",
                "displayName": "clawgate doctor",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": std::env::consts::OS,
                "mode": "cli",
            },
            "role": "operator",
            "scopes": ["operator.read"],
            "auth": auth,
        }
    });
    let result = loop {
        let msg = match ws.read() {
            Ok(m) => m,
            Err(WsError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                break Handshake::Io(if sent {
                    "no answer to connect (timed out)".into()
                } else {
                    "no connect.challenge from the gateway (timed out)".into()
                })
            }
            Err(e) => break Handshake::Io(format!("the connection ended: {e}")),
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(f) => {
                break Handshake::Io(match f {
                    Some(f) => format!(
                        "the gateway closed the connection: {} {}",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "the gateway closed the connection".into(),
                })
            }
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if !sent && v["type"] == "event" && v["event"] == "connect.challenge" {
            if let Err(e) = ws.send(Message::text(req.to_string())) {
                break Handshake::Io(format!("cannot send connect: {e}"));
            }
            sent = true;
        } else if sent && v["type"] == "res" && v["id"] == "doctor-1" {
            break Handshake::Answered(v);
        }
    };
    // Close politely: send our close frame and wait (briefly) for the
    // server's; the server keeps the TCP connection for a while after it.
    if ws.close(None).is_ok() {
        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(1)));
        for _ in 0..16 {
            match ws.read() {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    result
}

fn token_origin(cfg: &RuntimeConfig) -> String {
    match &cfg.gateway.auth.token_source {
        SecretSource::File => match &cfg.file {
            Some(f) => format!("gateway.auth.token in {}", f.display()),
            None => "gateway.auth.token".into(),
        },
        SecretSource::Env(v) => format!("the environment variable {v}"),
        SecretSource::Generated(p) => format!("the generated token in {}", p.display()),
        SecretSource::Flag => "the command line".into(),
        SecretSource::Override => "an admin API override".into(),
        SecretSource::None => "nowhere (no token is configured)".into(),
    }
}

fn check_handshake(
    ctx: &Ctx,
    gateway: Option<SocketAddr>,
    cfg: Option<&RuntimeConfig>,
    admin: Option<&Admin>,
) -> Check {
    const ID: &str = "handshake";
    let Some(addr) = gateway else {
        return Check::new(
            ID,
            Status::Skip,
            "skipped: the gateway is not reachable (see listeners)",
        );
    };
    let Some(cfg) = cfg else {
        return Check::new(
            ID,
            Status::Skip,
            "skipped: the config did not load, so the gateway's secret is unknown",
        );
    };
    let a = &cfg.gateway.auth;
    let (auth, secret_from) = match a.mode {
        AuthMode::Token => (
            match a.token.as_ref().and_then(|t| t.expose()) {
                Some(t) => json!({ "token": t }),
                None => json!({}),
            },
            token_origin(cfg),
        ),
        AuthMode::Password => (
            match a.password.as_ref().and_then(|t| t.expose()) {
                Some(p) => json!({ "password": p }),
                None => json!({}),
            },
            format!(
                "gateway.auth.password {} (or OPENCLAW_GATEWAY_PASSWORD)",
                ctx.in_file()
            ),
        ),
        AuthMode::None => (json!({}), "none (auth mode none)".into()),
    };
    let secret = if a.mode == AuthMode::Password {
        "password"
    } else {
        "token"
    };
    match ws_connect(addr, auth) {
        Handshake::Answered(v) if v["ok"] == true => {
            let p = &v["payload"];
            Check::new(
                ID,
                Status::Ok,
                format!(
                    "connect on ws://{addr} with the {secret} from {secret_from}: hello-ok (protocol {}, server {})",
                    p["protocol"],
                    p["server"]["version"].as_str().unwrap_or("?")
                ),
            )
        }
        Handshake::Answered(v) => {
            let err = &v["error"];
            let code = err["details"]["code"]
                .as_str()
                .or(err["code"].as_str())
                .unwrap_or("ERROR")
                .to_string();
            let message = err["message"].as_str().unwrap_or("").to_string();
            explain_connect_error(ctx, cfg, admin, addr, &code, &message, secret, &secret_from)
        }
        Handshake::Http { status, body } => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let msg = v["error"]["message"].as_str().unwrap_or(body.trim());
            let mut c = Check::new(
                ID,
                Status::Fail,
                format!("the gateway refused the WebSocket upgrade from this machine: HTTP {status}: {msg}"),
            );
            if let Some(h) = v["error"]["hint"].as_str().filter(|h| !h.is_empty()) {
                c = c.fix(h);
            }
            c
        }
        Handshake::Io(e) => Check::new(ID, Status::Fail, format!("handshake with ws://{addr} failed: {e}"))
            .fix("the listener answered /healthz but not the WebSocket: check clawgate's log, or restart it"),
    }
}

#[allow(clippy::too_many_arguments)]
fn explain_connect_error(
    ctx: &Ctx,
    cfg: &RuntimeConfig,
    admin: Option<&Admin>,
    addr: SocketAddr,
    code: &str,
    message: &str,
    secret: &str,
    secret_from: &str,
) -> Check {
    const ID: &str = "handshake";
    let file = ctx.in_file();
    match code {
        "AUTH_TOKEN_MISMATCH" | "AUTH_PASSWORD_MISMATCH" => {
            let mut c = Check::new(
                ID,
                Status::Fail,
                format!("the gateway at ws://{addr} rejected the configured {secret} ({code})"),
            )
            .detail(format!("the {secret} tried came from {secret_from}"));
            let rotated = if secret == "token" {
                admin.and_then(Admin::last_gateway_rotation)
            } else {
                None
            };
            if let Some((ts, actor)) = &rotated {
                c.details.push(format!(
                    "the shared token was rotated through the admin API {} (by {actor}); the gateway accepts only the new token since",
                    ago(*ts, crate::util::now_ms())
                ));
                c.add_fix(format!(
                    "put the new token (printed once by `clawgate tokens rotate-gateway`) into gateway.auth.token {file} or OPENCLAW_GATEWAY_TOKEN, and into every client (gateway.remote.token)"
                ));
                c.add_fix("if the new token is lost, rotate again and keep the output: `clawgate tokens rotate-gateway`");
                return c;
            }
            match (&cfg.gateway.auth.token_source, secret) {
                (SecretSource::Env(var), "token") => {
                    c.add_fix(format!(
                        "set {var} to the token the running gateway was started with, or unset it (`unset {var}`) to use gateway.auth.token {file}"
                    ));
                }
                (SecretSource::File, _) | (_, "password") => {
                    c.add_fix(format!(
                        "the running gateway uses another {secret}: if you changed it {file} after clawgate started, restart clawgate (`{}`)",
                        ctx.serve_cmd
                    ));
                    c.add_fix(format!(
                        "if clawgate was started with OPENCLAW_GATEWAY_{} or another config, use that same value here",
                        secret.to_uppercase()
                    ));
                }
                (SecretSource::Generated(p), _) => {
                    c.add_fix(format!(
                        "the running gateway was not started with the generated token in {}: set gateway.auth.token {file} (or OPENCLAW_GATEWAY_TOKEN) to the token it was started with, or restart it without one (`{}`)",
                        p.display(),
                        ctx.serve_cmd
                    ));
                }
                _ => c.add_fix(format!(
                    "configure the gateway's token here: gateway.auth.token {file} or OPENCLAW_GATEWAY_TOKEN"
                )),
            }
            c
        }
        "AUTH_TOKEN_MISSING" | "AUTH_PASSWORD_MISSING" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} requires a {secret}, but none is configured here"),
        )
        .detail(message.to_string())
        .fix(format!(
            "set gateway.auth.{secret} {file} or OPENCLAW_GATEWAY_{} to the gateway's {secret}, or pass the --config/--state-dir the gateway runs with",
            secret.to_uppercase()
        )),
        "AUTH_RATE_LIMITED" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} locked this address out after repeated failed logins"),
        )
        .detail(message.to_string())
        .fix("wait for the lockout to end (gateway.auth.rateLimit.lockoutMs), then fix the credentials of whatever kept failing (see rejections)"),
        "DEVICE_IDENTITY_REQUIRED" if cfg.gateway.auth.mode == AuthMode::None => Check::new(
            ID,
            Status::Ok,
            format!("ws://{addr} answered connect (auth mode none: clients need a device identity, which the doctor does not send)"),
        ),
        "PROTOCOL_MISMATCH" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} speaks another protocol version: {message}"),
        )
        .fix("run the doctor of the same clawgate version as the gateway"),
        _ => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} refused connect: {code}: {message}"),
        ),
    }
}

fn ago(ts: u64, now: u64) -> String {
    if ts > now {
        return "just now".into();
    }
    let s = (now - ts) / 1000;
    match s {
        0 => "just now".into(),
        1..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

// ---------------------------------------------------------------- 5. rejections

/// One record of `GET /admin/v1/diagnostics/rejections`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub ts: u64,
    pub peer: String,
    pub client: String,
    /// Forwarded header names seen (lowercase, as recorded).
    pub headers: Vec<String>,
    pub reason: String,
    pub hint: String,
}

fn parse_rejections(v: &Value) -> Vec<Rejection> {
    v["rejections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| Rejection {
                    ts: r["ts"].as_u64().unwrap_or(0),
                    peer: r["peerAddress"].as_str().unwrap_or("?").to_string(),
                    client: r["clientAddress"].as_str().unwrap_or("?").to_string(),
                    headers: r["forwardedHeaders"]
                        .as_array()
                        .map(|h| {
                            h.iter()
                                .filter_map(|x| x["name"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    reason: r["reason"].as_str().unwrap_or("").to_string(),
                    hint: r["hint"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- reload

/// Is the running gateway using the file as it is on disk?
fn check_reload(ctx: &Ctx, admin: &Admin) -> Check {
    const ID: &str = "reload";
    let st = match admin.get("/admin/v1/config/status") {
        Ok(v) => v,
        Err(e) => {
            return Check::new(
                ID,
                Status::Skip,
                format!("cannot read the reload status: {}", e.message),
            )
        }
    };
    let file = st["file"].as_str().map(str::to_string);
    let shown = file
        .clone()
        .unwrap_or_else(|| "the embedded defaults".into());
    let revision = st["revision"].as_u64().unwrap_or(0);
    let mut c = Check::new(
        ID,
        Status::Ok,
        format!("the running gateway uses revision {revision} of {shown}"),
    );
    if let Some(err) = st["lastError"].as_object() {
        let first = err
            .get("issues")
            .and_then(|i| i.get(0))
            .and_then(|i| i.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        c = Check::new(
            ID,
            Status::Fail,
            format!("the running gateway refused the last change of {shown}; it keeps serving revision {revision}"),
        )
        .detail(first.to_string())
        .fix("correct the file (check it with `clawgate config validate`); it is applied as soon as it is valid");
    }
    if let Some(p) = st["fileChangeNotApplied"].as_object() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{shown} changed, but gateway.reload.mode is off, so the change is not applied{}",
            p.get("changed")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| format!(
                    " ({})",
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        ));
        c.add_fix("clawgate config reload");
    }
    for r in st["restartRequired"].as_array().into_iter().flatten() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{} changes only at the next restart (running {}, configured {})",
            r["key"].as_str().unwrap_or(""),
            r["running"],
            r["configured"]
        ));
        c.add_fix(format!("restart clawgate ({})", ctx.serve_cmd));
    }
    for s in st["shadowedChanges"].as_array().into_iter().flatten() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{} was edited in the file, but {} sets it, so the edit has no effect",
            s["key"].as_str().unwrap_or(""),
            s["source"]["kind"].as_str().unwrap_or("another source")
        ));
        if let Some(r) = s["release"].as_str() {
            c.add_fix(r.to_string());
        }
    }
    if let Some(e) = st["listenerError"].as_str() {
        c.raise(Status::Fail);
        c.details.push(e.to_string());
        c.add_fix("free that port or set gateway.port to a free one");
    }
    // The file on disk vs what the gateway loaded (a change it has not seen).
    if let (Some(f), Some(loaded), true) = (
        file.as_ref(),
        st["sourceHash"].as_str(),
        st["lastError"].is_null() && st["fileChangeNotApplied"].is_null(),
    ) {
        if let Ok(bytes) = std::fs::read(f) {
            if config::content_hash(&bytes) != loaded {
                c.raise(Status::Warn);
                c.details.push(format!(
                    "{f} on disk differs from what the gateway loaded; it has not picked the change up (a file mounted into a container may not be the file you edited)"
                ));
                c.add_fix("clawgate config reload");
            }
        }
    }
    c
}

fn check_rejections(ctx: &Ctx, admin: &Admin) -> Check {
    const ID: &str = "rejections";
    let v = match admin.get("/admin/v1/diagnostics/rejections") {
        Ok(v) => v,
        Err(e) => {
            let mut c = Check::new(
                ID,
                Status::Warn,
                format!(
                    "cannot read the recent rejections from {}: {}",
                    admin.base, e.message
                ),
            );
            match e.status {
                Some(401) | None => c.add_fix(format!(
                    "pass the admin token: --admin-token TOKEN (or CLAWGATE_ADMIN_TOKEN); it is in {}",
                    ctx.state_dir.join("admin-token").display()
                )),
                Some(403) => c.add_fix(
                    "use the admin token or a minted admin token with the config:read scope (`clawgate tokens mint --scope config:read`)",
                ),
                _ => {}
            }
            return c;
        }
    };
    let records = parse_rejections(&v);
    let trusted = admin.get("/admin/v1/trusted-proxies").ok().map(|t| {
        t["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().and_then(config::parse_ip_or_cidr))
                    .collect::<Vec<IpNet>>()
            })
            .unwrap_or_default()
    });
    let pending = admin.get("/admin/v1/pairing/requests").ok().map(|p| {
        p["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["requestId"].as_str().map(str::to_string))
                    .collect::<BTreeSet<String>>()
            })
            .unwrap_or_default()
    });
    explain_rejections(
        &records,
        trusted.as_deref(),
        pending.as_ref(),
        &ctx.in_file(),
        crate::util::now_ms(),
    )
}

/// The kinds of refusal the doctor explains.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Forwarded headers from a peer not in trustedProxies (by peer).
    UntrustedProxy(String),
    /// A trusted proxy sent no usable client address (by peer).
    ProxyWithoutClient(String),
    /// Shared-secret or device-token failures (by code and client).
    Auth(String, String),
    /// Devices waiting for approval (by client).
    Pairing(String),
    PairingQueueFull(String),
    Origin(String),
    Preauth(String),
    Protocol(String),
    Other(String, String),
}

#[derive(Default)]
struct Group {
    count: usize,
    last: u64,
    headers: BTreeSet<String>,
    request_ids: BTreeSet<String>,
    hint: String,
}

/// `x-forwarded-for` → `X-Forwarded-For`.
fn header_name(h: &str) -> String {
    match h {
        "x-real-ip" => "X-Real-IP".into(),
        _ => h
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// The /16 (IPv4) or /64 (IPv6) range around an address; `None` for loopback.
fn suggest_range(ip: &IpAddr) -> Option<String> {
    if ip.is_loopback() {
        return None;
    }
    let net = match ip {
        IpAddr::V4(_) => IpNet::new(*ip, 16).ok()?,
        IpAddr::V6(_) => IpNet::new(*ip, 64).ok()?,
    };
    Some(net.trunc().to_string())
}

fn times(n: usize) -> String {
    plural(n, "connection")
}

/// Explains the recorded rejections, grouped by kind, with the fix for each.
/// `trusted` is the current trustedProxies list and `pending` the pending
/// pairing request ids, when the admin token may read them.
fn explain_rejections(
    records: &[Rejection],
    trusted: Option<&[IpNet]>,
    pending: Option<&BTreeSet<String>>,
    in_file: &str,
    now: u64,
) -> Check {
    const ID: &str = "rejections";
    if records.is_empty() {
        return Check::new(
            ID,
            Status::Ok,
            "no refused connections recorded since clawgate started",
        );
    }
    let mut groups: BTreeMap<Kind, Group> = BTreeMap::new();
    for r in records {
        let kind = match r.reason.as_str() {
            "proxy_attribution_required" if r.hint.contains("not a trusted proxy") => {
                Kind::UntrustedProxy(r.peer.clone())
            }
            "proxy_attribution_required" => Kind::ProxyWithoutClient(r.peer.clone()),
            "pairing_required" => Kind::Pairing(r.client.clone()),
            "pairing_queue_full" => Kind::PairingQueueFull(r.client.clone()),
            "preauth_budget" => Kind::Preauth(r.client.clone()),
            "CONTROL_UI_ORIGIN_NOT_ALLOWED" => Kind::Origin(r.client.clone()),
            "PROTOCOL_MISMATCH" => Kind::Protocol(r.client.clone()),
            code if code.starts_with("AUTH_") => Kind::Auth(code.to_string(), r.client.clone()),
            other => Kind::Other(other.to_string(), r.client.clone()),
        };
        let g = groups.entry(kind).or_default();
        g.count += 1;
        g.last = g.last.max(r.ts);
        g.headers.extend(r.headers.iter().map(|h| header_name(h)));
        if let Some(rest) = r.hint.strip_prefix("approve request ") {
            if let Some(id) = rest.split_whitespace().next() {
                g.request_ids.insert(id.to_string());
            }
        }
        g.hint = r.hint.clone();
    }
    let mut c = Check::new(ID, Status::Ok, "");
    let mut open = 0usize;
    let mut resolved = 0usize;
    let mut kinds: Vec<String> = vec![];
    for (kind, g) in &groups {
        let n = times(g.count);
        let last = ago(g.last, now);
        let headers = if g.headers.is_empty() {
            "forwarded headers".to_string()
        } else {
            g.headers.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        match kind {
            Kind::UntrustedProxy(peer) => {
                let ip = peer.parse::<IpAddr>().ok();
                let now_trusted = match (ip, trusted) {
                    (Some(ip), Some(t)) => t.iter().any(|n| n.contains(&ip.to_canonical())),
                    _ => false,
                };
                if now_trusted {
                    resolved += g.count;
                    c.details.push(format!(
                        "resolved: {n} from {peer} carried {headers} before {peer} was trusted (most recent {last}); it is in trustedProxies now"
                    ));
                    continue;
                }
                open += g.count;
                c.raise(Status::Fail);
                kinds.push("untrusted proxy".into());
                c.details.push(format!(
                    "{n} from {peer} carried {headers} but {peer} is not a trusted proxy (most recent {last}); clawgate cannot tell who the client is behind it, so the upgrade was refused (HTTP 403)"
                ));
                let range = ip.as_ref().and_then(suggest_range);
                c.add_fix(match range {
                    Some(r) => format!(
                        "if {peer} is your reverse proxy (Docker, nginx, Caddy, ...), trust it: `clawgate proxies add {peer}` or its range `clawgate proxies add {r}` (or add it to gateway.trustedProxies {in_file})"
                    ),
                    None => format!(
                        "if {peer} is your reverse proxy (Docker, nginx, Caddy, ...), trust it: `clawgate proxies add {peer}` (or add it to gateway.trustedProxies {in_file})"
                    ),
                });
            }
            Kind::ProxyWithoutClient(peer) => {
                open += g.count;
                c.raise(Status::Fail);
                kinds.push("proxy without client address".into());
                c.details.push(format!(
                    "{n} through the trusted proxy {peer} carried no usable client address ({headers}; most recent {last})"
                ));
                if !g.hint.is_empty() {
                    c.details.push(format!("  hint: {}", g.hint));
                }
                c.add_fix(format!(
                    "make the proxy at {peer} send the client's address: nginx `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`, Caddy and Traefik do it by default"
                ));
                if g.headers.iter().all(|h| h == "X-Real-IP") {
                    c.add_fix(format!(
                        "or accept X-Real-IP from trusted proxies: set gateway.allowRealIpFallback: true {in_file}"
                    ));
                }
            }
            Kind::Auth(code, client) => {
                open += g.count;
                c.raise(Status::Warn);
                let (what, fix) = match code.as_str() {
                    "AUTH_TOKEN_MISMATCH" => (
                        "presented a wrong gateway token".to_string(),
                        format!("give the client at {client} the current gateway token (gateway.remote.token or OPENCLAW_GATEWAY_TOKEN on that machine, or the Control UI settings); if the token was rotated, clients still using the old one are refused"),
                    ),
                    "AUTH_TOKEN_MISSING" => (
                        "sent no gateway token".to_string(),
                        format!("configure the gateway token on the client at {client} (gateway.remote.token, OPENCLAW_GATEWAY_TOKEN, or paste it in the Control UI settings)"),
                    ),
                    "AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING" => (
                        "presented a wrong or no gateway password".to_string(),
                        format!("give the client at {client} the gateway password (gateway.remote.password or OPENCLAW_GATEWAY_PASSWORD)"),
                    ),
                    "AUTH_RATE_LIMITED" => (
                        "were locked out after repeated failed logins".to_string(),
                        format!("fix the credentials of the client at {client}; the lockout ends after gateway.auth.rateLimit.lockoutMs"),
                    ),
                    "AUTH_DEVICE_TOKEN_MISMATCH" => (
                        "presented a stale or revoked device token".to_string(),
                        "find the device with `clawgate devices list`, remove it (`clawgate devices remove <device>`) and approve its new pairing request (`clawgate devices approve <requestId>`)".to_string(),
                    ),
                    "AUTH_TOKEN_NOT_CONFIGURED" | "AUTH_PASSWORD_NOT_CONFIGURED" => {
                        c.raise(Status::Fail);
                        (
                            "were refused because the gateway has no shared secret configured".to_string(),
                            format!("set gateway.auth.token {in_file} (or OPENCLAW_GATEWAY_TOKEN) and restart clawgate"),
                        )
                    }
                    _ => (format!("failed authentication ({code})"), g.hint.clone()),
                };
                kinds.push(code.to_lowercase().replace("auth_", "").replace('_', " "));
                c.details.push(format!(
                    "{n} from {client} {what} ({code}; most recent {last})"
                ));
                if !fix.is_empty() {
                    c.add_fix(fix);
                }
            }
            Kind::Pairing(client) => {
                let waiting: Vec<&String> = match pending {
                    Some(p) => g.request_ids.iter().filter(|id| p.contains(*id)).collect(),
                    None => g.request_ids.iter().collect(),
                };
                if waiting.is_empty() && pending.is_some() {
                    resolved += g.count;
                    c.details.push(format!(
                        "resolved: {n} from {client} needed pairing (most recent {last}); the requests were decided since"
                    ));
                    continue;
                }
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("pairing required".into());
                c.details.push(format!(
                    "{n} from {client} need pairing: {} waiting for approval (most recent {last})",
                    plural(waiting.len().max(1), "request")
                ));
                c.add_fix("review the pending requests: `clawgate devices list`");
                for id in waiting.iter().take(5) {
                    c.add_fix(format!("approve: `clawgate devices approve {id}`"));
                }
            }
            Kind::PairingQueueFull(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("pairing queue full".into());
                c.details.push(format!(
                    "{n} from {client} could not even ask for pairing: the pending queue is full (most recent {last})"
                ));
                c.add_fix("approve or reject the pending requests: `clawgate devices list`, `clawgate devices approve <requestId>` / `clawgate devices reject <requestId>`");
                c.add_fix(format!(
                    "or raise gateway.pairing.maxPendingPerClient {in_file}"
                ));
            }
            Kind::Origin(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("origin not allowed".into());
                c.details.push(format!(
                    "{n} from {client} came from a browser origin that is not allowed (most recent {last})"
                ));
                c.add_fix(format!(
                    "add the address the browser shows for the Control UI (e.g. \"https://gateway.example.com\") to gateway.controlUi.allowedOrigins {in_file}, or open the Control UI from the gateway host"
                ));
            }
            Kind::Preauth(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("too many unauthenticated sockets".into());
                c.details.push(format!(
                    "{n} from {client} were refused: too many sockets that never completed the handshake (most recent {last})"
                ));
                c.add_fix(format!(
                    "find what at {client} opens sockets without connecting, or raise gateway.limits.maxPreauthPerIp {in_file}; behind a proxy, trust it so that clients are counted separately"
                ));
            }
            Kind::Protocol(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("protocol mismatch".into());
                c.details.push(format!(
                    "{n} from {client} spoke an unsupported protocol version (most recent {last})"
                ));
                c.add_fix(format!(
                    "update the client at {client} (clawgate speaks gateway protocol {})",
                    crate::gateway::PROTOCOL_VERSION
                ));
            }
            Kind::Other(reason, client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push(reason.clone());
                c.details.push(format!(
                    "{n} from {client} refused: {reason} (most recent {last})"
                ));
                if !g.hint.is_empty() {
                    c.add_fix(g.hint.clone());
                }
            }
        }
    }
    kinds.dedup();
    c.summary = if open == 0 {
        format!("{} refused recently, all resolved since", times(resolved))
    } else {
        format!("{} refused recently: {}", times(open), kinds.join(", "))
    };
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rej(peer: &str, client: &str, headers: &[&str], reason: &str, hint: &str) -> Rejection {
        Rejection {
            ts: 1_000,
            peer: peer.into(),
            client: client.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            reason: reason.into(),
            hint: hint.into(),
        }
    }

    fn untrusted(peer: &str) -> Rejection {
        rej(
            peer,
            peer,
            &["x-forwarded-for"],
            "proxy_attribution_required",
            &format!("forwarded headers came from {peer}, which is not a trusted proxy; ..."),
        )
    }

    #[test]
    fn untrusted_proxy_names_the_peer_and_the_range() {
        let recs = vec![
            untrusted("172.17.0.1"),
            untrusted("172.17.0.1"),
            untrusted("172.17.0.1"),
        ];
        let c = explain_rejections(&recs, Some(&[]), None, "in x.json", 61_000);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.details[0].starts_with(
                "3 connections from 172.17.0.1 carried X-Forwarded-For but 172.17.0.1 is not a trusted proxy (most recent 1m ago)"
            ),
            "{c:?}"
        );
        assert!(
            c.fix[0].contains("`clawgate proxies add 172.17.0.1`"),
            "{c:?}"
        );
        assert!(
            c.fix[0].contains("`clawgate proxies add 172.17.0.0/16`"),
            "{c:?}"
        );
    }

    #[test]
    fn a_proxy_trusted_since_is_resolved() {
        let nets = vec![config::parse_ip_or_cidr("172.17.0.0/16").unwrap()];
        let c = explain_rejections(&[untrusted("172.17.0.1")], Some(&nets), None, "", 2_000);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.fix.is_empty());
        assert!(c.summary.contains("all resolved"), "{c:?}");
    }

    #[test]
    fn ipv6_ranges_are_slash_64_and_loopback_has_none() {
        let ip: IpAddr = "fd00:1:2:3:4:5:6:7".parse().unwrap();
        assert_eq!(suggest_range(&ip).unwrap(), "fd00:1:2:3::/64");
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(suggest_range(&ip).unwrap(), "10.1.0.0/16");
        assert_eq!(suggest_range(&"127.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn pairing_lists_only_pending_requests() {
        let recs = vec![
            rej(
                "10.0.0.5",
                "10.0.0.5",
                &[],
                "pairing_required",
                "approve request aaaa (clawgate devices approve / openclaw devices approve)",
            ),
            rej(
                "10.0.0.5",
                "10.0.0.5",
                &[],
                "pairing_required",
                "approve request bbbb (clawgate devices approve / openclaw devices approve)",
            ),
        ];
        let pending: BTreeSet<String> = ["bbbb".to_string()].into();
        let c = explain_rejections(&recs, None, Some(&pending), "", 2_000);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.fix
                .contains(&"approve: `clawgate devices approve bbbb`".to_string()),
            "{c:?}"
        );
        assert!(!c.fix.iter().any(|f| f.contains("aaaa")), "{c:?}");
        let none: BTreeSet<String> = BTreeSet::new();
        let c = explain_rejections(&recs, None, Some(&none), "", 2_000);
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }

    #[test]
    fn auth_failures_name_the_client() {
        let recs = vec![rej(
            "127.0.0.1",
            "203.0.113.4",
            &["x-forwarded-for"],
            "AUTH_TOKEN_MISMATCH",
            "unauthorized",
        )];
        let c = explain_rejections(&recs, None, None, "", 2_000);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.details[0]
                .starts_with("1 connection from 203.0.113.4 presented a wrong gateway token"),
            "{c:?}"
        );
        assert!(c.fix[0].contains("203.0.113.4"), "{c:?}");
    }

    #[test]
    fn unknown_reasons_pass_the_hint_on() {
        let recs = vec![rej(
            "10.0.0.9",
            "10.0.0.9",
            &[],
            "DEVICE_SIGNATURE_INVALID",
            "sign the payload again",
        )];
        let c = explain_rejections(&recs, None, None, "", 2_000);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.fix, vec!["sign the payload again".to_string()]);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(header_name("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(header_name("forwarded"), "Forwarded");
        assert_eq!(header_name("x-real-ip"), "X-Real-IP");
    }

    #[test]
    fn secret_keys_skip_references() {
        let v = json!({
            "gateway": {"auth": {"token": "abc"}, "remote": {"token": "${OPENCLAW_GATEWAY_TOKEN}"}},
            "models": {"providers": [{"apiKey": "sk-1"}]},
            "port": 1
        });
        let mut out = vec![];
        secret_keys(&v, "", &mut out);
        out.sort();
        assert_eq!(
            out,
            vec!["gateway.auth.token", "models.providers[0].apiKey"]
        );
    }

    #[test]
    fn unreadable_fix_has_chown_and_chmod() {
        let p = Path::new("/etc/openclaw.json");
        assert_eq!(
            owner_mode_fix(p, 0, 0o100600, 1000),
            vec![
                "sudo chown 1000 /etc/openclaw.json",
                "chmod 600 /etc/openclaw.json"
            ]
        );
        assert_eq!(
            owner_mode_fix(p, 1000, 0o100200, 1000),
            vec!["chmod 600 /etc/openclaw.json"]
        );
    }

    #[test]
    fn proc_net_tcp_lines() {
        let listen = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0";
        let estab = "   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 123457 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listen_inode(listen, 8080), Some(123456));
        assert_eq!(listen_inode(listen, 8081), None);
        assert_eq!(listen_inode(estab, 8080), None);
    }

    #[test]
    fn finds_the_owner_of_a_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (pid, _) = listener_owner(port).expect("owner found in /proc");
        assert_eq!(pid, std::process::id());
    }
}
