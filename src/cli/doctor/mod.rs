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
    let mut opts = global.load_options();
    opts.port = args.port.or(opts.port);
    opts.bind = args.bind.clone().or(opts.bind);
    opts.admin_port = args.admin_port.or(opts.admin_port);
    opts.generate_token = false;
    let mut serve_cmd = String::from("clawgate serve");
    if let Some(p) = &opts.config_path {
        serve_cmd.push_str(&format!(" --config {}", p.display()));
    }
    if let Some(p) = &opts.clawgate_config_path {
        serve_cmd.push_str(&format!(" --clawgate-config {}", p.display()));
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
    if let Some(c) = cfg.as_ref().and_then(check_upstream) {
        checks.push(c);
    }
    Report { checks }
}

mod admin;
mod config_check;
mod handshake;
mod listeners;
mod permissions;
mod rejections;
mod reload;
mod upstream;

use admin::*;
use config_check::*;
use handshake::*;
use listeners::*;
use permissions::*;
use rejections::*;
use reload::*;
use upstream::*;

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
            origin: None,
        }
    }

    #[test]
    fn a_refused_origin_is_named_in_the_fix() {
        let mut r = rej(
            "127.0.0.1",
            "203.0.113.9",
            &["x-forwarded-for"],
            "CONTROL_UI_ORIGIN_NOT_ALLOWED",
            "origin not allowed",
        );
        r.origin = Some("https://gw.example".into());
        let c = explain_rejections(&[r], Some(&[]), None, "in x.json", 2_000);
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.details[0].contains("came from the browser origin https://gw.example"),
            "{c:?}"
        );
        assert!(
            c.fix[0].contains(
                "add \"https://gw.example\" to gateway.controlUi.allowedOrigins in x.json"
            ),
            "{c:?}"
        );
    }

    #[test]
    fn a_proxy_that_drops_the_upgrade_is_named_with_its_fix() {
        let r = rej(
            "127.0.0.1",
            "203.0.113.9",
            &["x-forwarded-for"],
            "websocket_upgrade_missing",
            crate::gateway::UPGRADE_DROPPED_HINT,
        );
        let c = explain_rejections(&[r.clone(), r], Some(&[]), None, "in x.json", 2_000);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary.contains("proxy drops the WebSocket upgrade"),
            "{c:?}"
        );
        assert!(
            c.details[0].starts_with("2 connections through 127.0.0.1 were WebSocket handshakes without `Upgrade: websocket`"),
            "{c:?}"
        );
        assert!(
            c.fix[0].contains("proxy_set_header Upgrade $http_upgrade;"),
            "{c:?}"
        );
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
