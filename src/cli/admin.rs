//! Management commands: `clawgate devices …`, `clawgate tokens …` and
//! `clawgate proxies …`, thin clients of the admin API.
//!
//! Finding the server: `--admin-url` (or `CLAWGATE_ADMIN_URL`), else the
//! `adminAddr` in `<state dir>/runtime.json`, which a running `clawgate serve`
//! writes. The credential: `--admin-token` (or `CLAWGATE_ADMIN_TOKEN`), else
//! `gateway.admin.token` from the config, else `<state dir>/admin-token`.
//!
//! Output: tables for people by default, the API's JSON with `--json`.
//! Exit status: 0 on success, 1 when the API refused the request (its
//! `detail` and `hint` go to stderr), 2 when the admin API could not be found
//! or reached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::config::{self, LoadOptions};

// ---------------------------------------------------------------- arguments

/// How to reach the admin API (accepted after any management subcommand).
#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Admin API base URL, e.g. http://127.0.0.1:18790 (default: the adminAddr in <state dir>/runtime.json).
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_URL",
        value_name = "URL",
        help_heading = "Admin API"
    )]
    pub admin_url: Option<String>,
    /// Admin token or a minted admin token (default: gateway.admin.token, else <state dir>/admin-token).
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Admin API"
    )]
    pub admin_token: Option<String>,
    /// Print the API's JSON instead of tables (for scripts).
    #[arg(long, global = true, help_heading = "Admin API")]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: DevicesCommand,
}

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// List paired devices and pending pairing requests.
    List {
        /// Only the pending pairing requests.
        #[arg(long, conflicts_with = "all")]
        pending: bool,
        /// Also the decided (approved or rejected) pairing requests.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending pairing request.
    Approve {
        /// The request id (or a unique prefix of it, or the device fingerprint).
        request_id: String,
        /// Grant these scopes instead of the requested ones (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A label for the device (1 to 64 characters).
        #[arg(long)]
        label: Option<String>,
    },
    /// Reject a pending pairing request.
    Reject {
        /// The request id (or a unique prefix of it, or the device fingerprint).
        request_id: String,
    },
    /// Remove a paired device (its sessions are closed and its tokens revoked).
    Remove {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        device_id: String,
    },
    /// Set the label of a paired device.
    Rename {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        device_id: String,
        /// The new label (1 to 64 characters).
        label: String,
    },
}

#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Rotate a device's token for a role (the device gets the new one when it next connects).
    Rotate {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        #[arg(long)]
        device: String,
        /// The role: operator or node.
        #[arg(long)]
        role: String,
        /// Narrow the token to these scopes (repeatable; default: unchanged).
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Revoke a device's token for a role (its sessions with that role are closed).
    Revoke {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        #[arg(long)]
        device: String,
        /// The role: operator or node.
        #[arg(long)]
        role: String,
    },
    /// Replace the gateway's shared token; prints the new token once.
    RotateGateway {
        /// Keep accepting the previous token for this many seconds (0 to 86400; default 0).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Mint a scoped admin token (opaque, stored as a digest); prints it once.
    Mint {
        /// Admin scopes (repeatable): pairing:read, pairing:write, devices:write,
        /// tokens:write, config:read, config:write, admin.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_delimiter = ',',
            required = true
        )]
        scopes: Vec<String>,
        /// Lifetime in seconds (60 to 31536000; default 3600).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// A label for the audit log.
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ProxiesArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: ProxiesCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProxiesCommand {
    /// List the trusted reverse proxies.
    List,
    /// Trust a proxy address or CIDR range.
    Add {
        /// An IP address (172.17.0.1) or a CIDR range (172.17.0.0/16).
        entry: String,
        /// Show the resulting list without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop trusting a proxy address or CIDR range.
    Remove {
        /// The entry as listed by `clawgate proxies list`.
        entry: String,
    },
}

/// `clawgate config show|reload` (the parts of `config` that talk to the API).
#[derive(Debug, Clone)]
pub enum ConfigOp {
    Show { explain: bool },
    Reload,
}

/// A management command with its connection arguments.
#[derive(Debug)]
pub enum Managed {
    Devices(DevicesArgs),
    Tokens(TokensArgs),
    Proxies(ProxiesArgs),
    Config(ConfigOp, ConnArgs),
}

impl Managed {
    fn conn(&self) -> &ConnArgs {
        match self {
            Managed::Devices(a) => &a.conn,
            Managed::Tokens(a) => &a.conn,
            Managed::Proxies(a) => &a.conn,
            Managed::Config(_, c) => c,
        }
    }
}

// ---------------------------------------------------------------- errors

/// Why a command failed: printed to stderr, with an exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub exit: u8,
}

impl Failure {
    fn unreachable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
            exit: 2,
        }
    }

    fn refused(message: impl Into<String>, hint: Option<String>) -> Self {
        Failure {
            message: message.into(),
            hint,
            exit: 1,
        }
    }

    fn report(&self) -> ExitCode {
        eprintln!("clawgate: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("hint: {h}");
        }
        ExitCode::from(self.exit)
    }
}

type Res<T> = Result<T, Failure>;

// ---------------------------------------------------------------- discovery

/// Where the admin URL came from (for error messages).
#[derive(Debug, Clone)]
enum Origin {
    Flag,
    Runtime { file: PathBuf, pid: Option<u64> },
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `http://host:port` without a trailing slash; plain HTTP only.
fn normalize_url(url: &str) -> Res<String> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("https://") {
        return Err(Failure::unreachable(
            format!("--admin-url {url}: https is not supported by this client"),
            "the admin API listens on plain HTTP on loopback; use http://127.0.0.1:<admin port>",
        ));
    }
    if url.starts_with("http://") {
        Ok(url.to_string())
    } else if url.contains("://") {
        Err(Failure::unreachable(
            format!("--admin-url {url}: only http:// URLs are supported"),
            "for example --admin-url http://127.0.0.1:18790",
        ))
    } else {
        Ok(format!("http://{url}"))
    }
}

/// The admin address from `runtime.json`, with an unspecified bind address
/// (0.0.0.0 / ::) replaced by loopback, which the admin Host check accepts.
fn runtime_addr(state_dir: &Path) -> Res<(String, Origin)> {
    let file = state_dir.join("runtime.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::unreachable(
                format!(
                    "is clawgate running? (looked for runtime.json in {}, found none)",
                    state_dir.display()
                ),
                "start it with `clawgate serve`; if it keeps its state elsewhere pass --state-dir DIR, \
                 or point at its admin API with --admin-url URL",
            ))
        }
        Err(e) => {
            return Err(Failure::unreachable(
                format!("cannot read {}: {e}", file.display()),
                "pass --admin-url URL to name the admin API directly",
            ))
        }
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let pid = v["pid"].as_u64();
    let Some(mut addr) = v["adminAddr"]
        .as_str()
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return Err(Failure::unreachable(
            format!("{} has no usable adminAddr", file.display()),
            "restart clawgate so that it rewrites the file, or pass --admin-url URL",
        ));
    };
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    Ok((format!("http://{addr}"), Origin::Runtime { file, pid }))
}

fn discover_token(opts: &LoadOptions, state_dir: &Path) -> Res<String> {
    // A configured admin token wins over the file, as it does for the server.
    if let Ok(cfg) = config::load(opts) {
        if let Some(t) = cfg.gateway.admin.token.as_ref().and_then(|t| t.expose()) {
            if !t.trim().is_empty() {
                return Ok(t.trim().to_string());
            }
        }
    }
    let file = state_dir.join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(Failure::unreachable(
            format!("{} is empty", file.display()),
            "pass --admin-token TOKEN or set CLAWGATE_ADMIN_TOKEN",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::unreachable(
            format!(
                "no admin token: none given and {} does not exist",
                file.display()
            ),
            "pass --admin-token TOKEN or set CLAWGATE_ADMIN_TOKEN (or --state-dir DIR for the state dir clawgate uses)",
        )),
        Err(e) => Err(Failure::unreachable(
            format!("cannot read the admin token {}: {e}", file.display()),
            "run as the user that runs clawgate, or pass --admin-token TOKEN",
        )),
    }
}

// ---------------------------------------------------------------- HTTP

/// A connection to the admin API.
pub struct Api {
    base: String,
    token: String,
    origin: Origin,
    agent: ureq::Agent,
}

/// A successful answer.
struct Reply {
    body: Value,
    etag: Option<String>,
}

/// Percent-encodes one path segment (keeps unreserved characters and `:`).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    fn new(base: String, token: String, origin: Origin) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .max_redirects(0)
            .user_agent(format!("clawgate-cli/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Api {
            base,
            token,
            origin,
            agent,
        }
    }

    fn unreachable(&self, why: &str) -> Failure {
        match &self.origin {
            Origin::Flag => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running there?",
                    self.base
                ),
                "check --admin-url (the admin API has its own port, gateway.admin.port)",
            ),
            Origin::Runtime { file, pid } => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running? (looked for runtime.json in {}{})",
                    self.base,
                    file.parent().unwrap_or(Path::new(".")).display(),
                    pid.map(|p| format!("; it names pid {p}, which may have exited"))
                        .unwrap_or_default()
                ),
                "start it with `clawgate serve`, or point at a running one with --admin-url URL",
            ),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Res<Reply> {
        let url = format!("{}{path}", self.base);
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json, application/problem+json");
        if let Some(tag) = if_match {
            b = b.header("If-Match", tag);
        }
        let built = match body {
            Some(v) => b
                .header("Content-Type", "application/json")
                .body(v.to_string())
                .map(|r| self.agent.run(r)),
            None => b.body(()).map(|r| self.agent.run(r)),
        };
        let result = built.map_err(|e| {
            Failure::unreachable(
                format!("bad admin URL {url}: {e}"),
                "pass --admin-url like http://127.0.0.1:18790",
            )
        })?;
        let mut resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Err(self.unreachable("connection refused"))
            }
            Err(ureq::Error::ConnectionFailed) => return Err(self.unreachable("connection failed")),
            Err(ureq::Error::HostNotFound) => return Err(self.unreachable("host not found")),
            Err(ureq::Error::Timeout(_)) => return Err(self.unreachable("timed out")),
            Err(e) => return Err(self.unreachable(&e.to_string())),
        };
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(&format!("reading the answer: {e}")))?;
        if (200..300).contains(&status) {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    Failure::refused(
                        format!("{method} {path}: the answer is not JSON ({e})"),
                        None,
                    )
                })?
            };
            return Ok(Reply { body, etag });
        }
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match problem["detail"].as_str() {
            Some(detail) => {
                let code = problem["code"].as_str().unwrap_or("error");
                Err(Failure::refused(
                    format!("{detail} ({status} {code})"),
                    problem["hint"].as_str().map(str::to_string),
                ))
            }
            None => {
                let snippet: String = text.trim().chars().take(200).collect();
                Err(Failure::refused(
                    format!("{method} {path} answered HTTP {status}: {snippet}"),
                    Some(format!(
                        "is {} the clawgate admin API (not the gateway port)?",
                        self.base
                    )),
                ))
            }
        }
    }

    fn get(&self, path: &str) -> Res<Value> {
        self.call("GET", path, None, None).map(|r| r.body)
    }

    fn post(&self, path: &str, body: &Value) -> Res<Value> {
        self.call("POST", path, Some(body), None).map(|r| r.body)
    }
}

// ---------------------------------------------------------------- formatting

fn now_ms() -> u64 {
    crate::util::now_ms()
}

fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `5m ago`, `in 2h`, or `-` for a missing time.
fn age(v: &Value) -> String {
    let Some(t) = v.as_u64() else {
        return "-".into();
    };
    let now = now_ms();
    if t <= now {
        if now - t < 1000 {
            "just now".into()
        } else {
            format!("{} ago", span(now - t))
        }
    } else {
        format!("in {}", span(t - now))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".into(),
    }
}

fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

fn first_text(candidates: &[&Value]) -> String {
    candidates
        .iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()))
        .unwrap_or("-")
        .to_string()
}

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                let pad = widths[i] - c.chars().count() + 2;
                s.push_str(&" ".repeat(pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// A device's human name: label, else display name.
fn device_name(d: &Value) -> String {
    first_text(&[&d["label"], &d["operatorLabel"], &d["displayName"]])
}

fn client_desc(client_id: &Value, platform: &Value) -> String {
    match (client_id.as_str(), platform.as_str()) {
        (Some(c), Some(p)) if !p.is_empty() => format!("{c}/{p}"),
        (Some(c), _) => c.to_string(),
        _ => "-".into(),
    }
}

// ---------------------------------------------------------------- id resolution

fn is_device_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_request_id(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Resolves a short reference (fingerprint, unique id prefix, label) against
/// `items`; an unmatched reference is passed on as-is so the API answers it.
fn resolve(arg: &str, items: &[Value], id_key: &str, names: &[&str], what: &str) -> Res<String> {
    let needle = arg.trim().to_lowercase();
    let compact = needle.replace('-', "");
    let mut hits: Vec<&Value> = vec![];
    for it in items {
        let id = it[id_key].as_str().unwrap_or("").to_lowercase();
        let matches = id == needle
            || it["fingerprint"].as_str() == Some(needle.as_str())
            || (compact.len() >= 4 && id.replace('-', "").starts_with(&compact))
            || names.iter().any(|k| it[*k].as_str() == Some(arg.trim()));
        if matches && !hits.iter().any(|h| h[id_key] == it[id_key]) {
            hits.push(it);
        }
    }
    match hits.len() {
        0 => Ok(arg.trim().to_string()),
        1 => Ok(hits[0][id_key].as_str().unwrap_or(arg).to_string()),
        _ => Err(Failure::refused(
            format!(
                "{arg:?} matches several {what}s: {}",
                hits.iter()
                    .map(|h| text(&h[id_key]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(format!("give more of the {what} id")),
        )),
    }
}

fn resolve_device(api: &Api, arg: &str) -> Res<String> {
    if is_device_id(arg.trim()) {
        return Ok(arg.trim().to_lowercase());
    }
    match api.get("/admin/v1/devices") {
        Ok(v) => resolve(
            arg,
            v["devices"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "deviceId",
            &["label", "operatorLabel", "displayName"],
            "device",
        ),
        // Without pairing:read the id is passed on as given.
        Err(_) => Ok(arg.trim().to_string()),
    }
}

fn resolve_request(api: &Api, arg: &str) -> Res<String> {
    if is_request_id(arg.trim()) {
        return Ok(arg.trim().to_string());
    }
    match api.get("/admin/v1/pairing/requests") {
        Ok(v) => resolve(
            arg,
            v["requests"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "requestId",
            &[],
            "request",
        ),
        Err(_) => Ok(arg.trim().to_string()),
    }
}

// ---------------------------------------------------------------- commands

/// Runs a management command and reports its outcome.
pub async fn run(cmd: Managed, config: Option<PathBuf>, state_dir: Option<PathBuf>) -> ExitCode {
    let joined = tokio::task::spawn_blocking(move || execute(cmd, config, state_dir)).await;
    match joined {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => f.report(),
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Finds the admin API and runs `cmd` against it (blocking).
pub fn execute(cmd: Managed, config: Option<PathBuf>, state_dir: Option<PathBuf>) -> Res<()> {
    let mut opts = LoadOptions::from_process_env();
    opts.config_path = config;
    opts.state_dir = state_dir;
    opts.generate_token = false;
    let state = config::resolve_state_dir(&opts);
    let conn = cmd.conn().clone();
    let found = (|| -> Res<(String, Origin, String)> {
        let (base, origin) = match non_empty(&conn.admin_url) {
            Some(u) => (normalize_url(u)?, Origin::Flag),
            None => runtime_addr(&state)?,
        };
        let token = match non_empty(&conn.admin_token) {
            Some(t) => t.to_string(),
            None => discover_token(&opts, &state)?,
        };
        Ok((base, origin, token))
    })();
    let (base, origin, token) = match (found, &cmd) {
        (Ok(x), _) => x,
        // Not running: `config show` explains the file, environment and defaults.
        (Err(f), Managed::Config(ConfigOp::Show { explain }, _)) if f.exit == 2 => {
            return config_show_local(&opts, *explain, conn.json, &f)
        }
        (Err(f), _) => return Err(f),
    };
    let api = Api::new(base, token, origin);
    let json = conn.json;
    match cmd {
        Managed::Devices(a) => devices(&api, a.command, json),
        Managed::Tokens(a) => tokens(&api, a.command, json),
        Managed::Proxies(a) => proxies(&api, a.command, json),
        Managed::Config(op, _) => config_cmd(&api, op, json, &opts),
    }
}

fn source_text(src: &Value) -> String {
    match src["kind"].as_str().unwrap_or("") {
        "file" => {
            let file = src["file"].as_str().unwrap_or("file");
            match (src["line"].as_u64(), src["column"].as_u64()) {
                (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
                _ => file.to_string(),
            }
        }
        "env" => format!("env {}", src["variable"].as_str().unwrap_or("?")),
        "override" => format!(
            "override by {} {}",
            src["setBy"].as_str().unwrap_or("?"),
            src["setAtMs"]
                .as_u64()
                .map(|t| format!("({} ago)", ago(t)))
                .unwrap_or_default()
        ),
        "flag" => format!("flag {}", src["flag"].as_str().unwrap_or("?")),
        "generated" => format!("generated into {}", src["file"].as_str().unwrap_or("?")),
        other => other.to_string(),
    }
}

fn ago(t: u64) -> String {
    let s = now_ms().saturating_sub(t) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_config(body: &Value, explain: bool) {
    if !explain {
        println!(
            "{}",
            serde_json::to_string_pretty(&body["config"]).unwrap_or_default()
        );
        return;
    }
    let keys = body["keys"].as_array().cloned().unwrap_or_default();
    let width = keys
        .iter()
        .map(|k| k["key"].as_str().unwrap_or("").len())
        .max()
        .unwrap_or(10);
    let vwidth = keys
        .iter()
        .map(|k| short(&k["value"]).len().min(40))
        .max()
        .unwrap_or(5);
    println!("{:width$}  {:vwidth$}  SOURCE", "KEY", "VALUE");
    for k in &keys {
        println!(
            "{:width$}  {:vwidth$}  {}",
            k["key"].as_str().unwrap_or(""),
            short(&k["value"]),
            source_text(&k["source"])
        );
    }
    for s in body["shadowed"].as_array().into_iter().flatten() {
        println!(
            "shadowed: {} is {} in the file{} but {} sets it; to give the file control: {}",
            s["key"].as_str().unwrap_or(""),
            short(&s["fileValue"]),
            s["fileLine"]
                .as_u64()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default(),
            source_text(&s["source"]),
            s["release"].as_str().unwrap_or("")
        );
    }
    for w in body["warnings"].as_array().into_iter().flatten() {
        println!("warning: {}", w.as_str().unwrap_or(""));
    }
}

fn config_show_local(opts: &LoadOptions, explain: bool, json: bool, why: &Failure) -> Res<()> {
    let cfg = config::load(opts)
        .map_err(|e| Failure::refused(e.to_string().trim_end().to_string(), None))?;
    eprintln!(
        "clawgate: not running ({}); showing the file, environment and defaults (runtime overrides are not included)",
        why.message
    );
    let body = if explain {
        config::explain::explain(&cfg)
    } else {
        json!({"config": config::explain::tree(&cfg)})
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print_config(&body, explain);
    }
    Ok(())
}

fn config_cmd(api: &Api, op: ConfigOp, json: bool, _opts: &LoadOptions) -> Res<()> {
    match op {
        ConfigOp::Show { explain } => {
            let body = api.get(&format!("/admin/v1/config?explain={explain}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else {
                print_config(&body, explain);
            }
        }
        ConfigOp::Reload => {
            let r = api.post("/admin/v1/config/reload", &json!({}))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                return Ok(());
            }
            let changed: Vec<&str> = r["changed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match r["result"].as_str() {
                Some("unchanged") => println!(
                    "unchanged: the file matches the configuration in force (revision {})",
                    r["revision"]
                ),
                _ if changed.is_empty() => {
                    println!("reloaded: revision {}, no effective change", r["revision"])
                }
                _ => println!(
                    "reloaded: revision {}, changed {}; {} session(s) closed",
                    r["revision"],
                    changed.join(", "),
                    r["closedSessions"]
                ),
            }
            for s in r["shadowed"].as_array().into_iter().flatten() {
                println!(
                    "shadowed: {} changed in the file, but {} sets it; {}",
                    s["key"].as_str().unwrap_or(""),
                    source_text(&s["source"]),
                    s["release"].as_str().unwrap_or("")
                );
            }
            for s in r["restartRequired"].as_array().into_iter().flatten() {
                println!(
                    "restart required: {} (running {}, configured {})",
                    s["key"].as_str().unwrap_or(""),
                    s["running"],
                    s["configured"]
                );
            }
            if let Some(e) = r["listenerError"].as_str() {
                println!("listener: {e}");
            }
        }
    }
    Ok(())
}

/// Adds "where to find the ids" to a bare 404 (the API's detail, e.g.
/// "unknown deviceId", does not repeat the id).
fn hint_ids<T>(r: Res<T>, given: &str) -> Res<T> {
    r.map_err(|mut f| {
        if f.hint.is_none() && f.message.contains("(404 ") {
            if !given.is_empty() && !f.message.contains(given) {
                f.message = f
                    .message
                    .replacen(" (404 ", &format!(" {given:?} (404 "), 1);
            }
            f.hint = Some(
                "see the ids with `clawgate devices list` (`--all` for decided requests)".into(),
            );
        }
        f
    })
}

fn devices(api: &Api, cmd: DevicesCommand, json: bool) -> Res<()> {
    let given = match &cmd {
        DevicesCommand::List { .. } => String::new(),
        DevicesCommand::Approve { request_id, .. } | DevicesCommand::Reject { request_id } => {
            request_id.clone()
        }
        DevicesCommand::Remove { device_id } | DevicesCommand::Rename { device_id, .. } => {
            device_id.clone()
        }
    };
    hint_ids(devices_inner(api, cmd, json), &given)
}

fn devices_inner(api: &Api, cmd: DevicesCommand, json: bool) -> Res<()> {
    match cmd {
        DevicesCommand::List { pending, all } => {
            let status = if all { "all" } else { "pending" };
            let requests = api.get(&format!("/admin/v1/pairing/requests?status={status}"))?;
            let requests = requests["requests"].clone();
            let devices = if pending {
                None
            } else {
                Some(api.get("/admin/v1/devices")?["devices"].clone())
            };
            if json {
                let mut out = json!({ "requests": requests });
                if let Some(d) = &devices {
                    out["devices"] = d.clone();
                }
                print_json(&out);
                return Ok(());
            }
            print_devices_list(&requests, devices.as_ref(), all);
            Ok(())
        }
        DevicesCommand::Approve {
            request_id,
            scopes,
            label,
        } => {
            let id = resolve_request(api, &request_id)?;
            let mut body = json!({});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/approve", enc(&id)),
                &body,
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let d = &v["device"];
            let name = device_name(d);
            println!(
                "approved request {}: device {}{} may connect as {} with scopes {}",
                text(&v["requestId"]),
                text(&d["fingerprint"]),
                if name == "-" {
                    String::new()
                } else {
                    format!(" ({name})")
                },
                list(&d["roles"]),
                list(&d["scopes"]),
            );
            Ok(())
        }
        DevicesCommand::Reject { request_id } => {
            let id = resolve_request(api, &request_id)?;
            let v = api.post(
                &format!("/admin/v1/pairing/requests/{}/reject", enc(&id)),
                &json!({}),
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let dev = text(&v["deviceId"]);
            println!(
                "rejected request {} (device {})",
                text(&v["requestId"]),
                crate::gateway::device::fingerprint(&dev)
            );
            Ok(())
        }
        DevicesCommand::Remove { device_id } => {
            let id = resolve_device(api, &device_id)?;
            let v = api
                .call(
                    "DELETE",
                    &format!("/admin/v1/devices/{}", enc(&id)),
                    None,
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "removed device {} ({} closed); it must pair again to connect",
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        DevicesCommand::Rename { device_id, label } => {
            let id = resolve_device(api, &device_id)?;
            let v = api
                .call(
                    "PATCH",
                    &format!("/admin/v1/devices/{}", enc(&id)),
                    Some(&json!({ "label": label })),
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "device {} is now labelled {:?}",
                text(&v["fingerprint"]),
                first_text(&[&v["label"], &v["operatorLabel"]])
            );
            Ok(())
        }
    }
}

fn print_devices_list(requests: &Value, devices: Option<&Value>, all: bool) {
    let empty = vec![];
    let reqs = requests.as_array().unwrap_or(&empty);
    let pending: Vec<&Value> = reqs.iter().filter(|r| r["status"] == "pending").collect();
    let decided: Vec<&Value> = reqs.iter().filter(|r| r["status"] != "pending").collect();
    if pending.is_empty() {
        println!("No pending pairing requests.");
    } else {
        println!("Pending pairing requests ({}):", pending.len());
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                let c = &r["client"];
                vec![
                    text(&r["requestId"]),
                    text(&r["fingerprint"]),
                    first_text(&[&c["displayName"]]),
                    client_desc(&c["id"], &c["platform"]),
                    text(&r["role"]),
                    list(&r["scopes"]),
                    first_text(&[&r["clientAddress"], &r["peerAddress"]]),
                    text(&r["reason"]),
                    age(&r["firstSeenAtMs"]),
                    age(&r["expiresAtMs"]),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "REQUEST", "DEVICE", "NAME", "CLIENT", "ROLE", "SCOPES", "FROM", "REASON",
                    "ASKED", "EXPIRES"
                ],
                &rows
            )
        );
        println!("Approve with `clawgate devices approve <REQUEST>`, refuse with `clawgate devices reject <REQUEST>`.");
    }
    if all {
        println!();
        if decided.is_empty() {
            println!("No decided pairing requests.");
        } else {
            println!("Decided pairing requests ({}):", decided.len());
            let rows: Vec<Vec<String>> = decided
                .iter()
                .map(|r| {
                    vec![
                        text(&r["requestId"]),
                        text(&r["fingerprint"]),
                        text(&r["status"]),
                        text(&r["decidedBy"]),
                        age(&r["decidedAtMs"]),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["REQUEST", "DEVICE", "STATUS", "BY", "DECIDED"], &rows)
            );
        }
    }
    let Some(devices) = devices else { return };
    println!();
    let devs = devices.as_array().unwrap_or(&empty);
    if devs.is_empty() {
        println!("No paired devices.");
        return;
    }
    println!("Paired devices ({}):", devs.len());
    let rows: Vec<Vec<String>> = devs
        .iter()
        .map(|d| {
            vec![
                text(&d["fingerprint"]),
                device_name(d),
                client_desc(&d["clientId"], &d["platform"]),
                list(&d["roles"]),
                list(&d["scopes"]),
                text(&d["connectedSessions"]),
                age(&d["approvedAtMs"]),
                if d["lastSeenAtMs"].is_u64() {
                    age(&d["lastSeenAtMs"])
                } else {
                    "never".into()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "DEVICE",
                "NAME",
                "CLIENT",
                "ROLES",
                "SCOPES",
                "SESSIONS",
                "PAIRED",
                "LAST SEEN"
            ],
            &rows
        )
    );
}

fn tokens(api: &Api, cmd: TokensCommand, json: bool) -> Res<()> {
    match &cmd {
        TokensCommand::Rotate { device, .. } | TokensCommand::Revoke { device, .. } => {
            let given = device.clone();
            hint_ids(tokens_inner(api, cmd, json), &given)
        }
        _ => tokens_inner(api, cmd, json),
    }
}

fn tokens_inner(api: &Api, cmd: TokensCommand, json: bool) -> Res<()> {
    match cmd {
        TokensCommand::Rotate {
            device,
            role,
            scopes,
        } => {
            let id = resolve_device(api, &device)?;
            let mut body = json!({});
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            let v = api.post(
                &format!(
                    "/admin/v1/devices/{}/tokens/{}/rotate",
                    enc(&id),
                    enc(&role)
                ),
                &body,
            )?;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "rotated the {} token of device {} (scopes {}; {} closed); \
                 the device receives the new token when it next connects",
                text(&v["role"]),
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                list(&v["scopes"]),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        TokensCommand::Revoke { device, role } => {
            let id = resolve_device(api, &device)?;
            let v = api
                .call(
                    "DELETE",
                    &format!("/admin/v1/devices/{}/tokens/{}", enc(&id), enc(&role)),
                    None,
                    None,
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!(
                "revoked the {} token of device {} ({} closed)",
                text(&v["role"]),
                crate::gateway::device::fingerprint(&text(&v["deviceId"])),
                plural(v["closedSessions"].as_u64().unwrap_or(0), "session"),
            );
            Ok(())
        }
        TokensCommand::RotateGateway { grace } => {
            let mut body = json!({});
            if let Some(g) = grace {
                body["graceSeconds"] = json!(g);
            }
            let v = api.post("/admin/v1/gateway/token/rotate", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let Some(token) = v["token"].as_str() else {
                return Err(Failure::refused("the API answered without a token", None));
            };
            println!("{token}");
            let g = v["graceSeconds"].as_u64().unwrap_or(0);
            eprintln!("clawgate: the gateway token was rotated; the new token (above) is shown only this once.");
            if g > 0 {
                eprintln!(
                    "clawgate: the previous token keeps working for {g}s more; then its sessions are closed."
                );
            } else {
                eprintln!("clawgate: the previous token no longer works; sessions that used it were closed.");
            }
            eprintln!("clawgate: give the new token to your clients (gateway.remote.token / OPENCLAW_GATEWAY_TOKEN).");
            Ok(())
        }
        TokensCommand::Mint { scopes, ttl, label } => {
            let mut body = json!({ "scopes": scopes });
            if let Some(t) = ttl {
                body["ttlSeconds"] = json!(t);
            }
            if let Some(l) = label {
                body["label"] = json!(l);
            }
            let v = api.post("/admin/v1/tokens", &body)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            let Some(token) = v["token"].as_str() else {
                return Err(Failure::refused("the API answered without a token", None));
            };
            println!("{token}");
            eprintln!(
                "clawgate: minted admin token {} with scopes {}; it expires {}. It is shown only this once.",
                text(&v["jti"]),
                list(&v["scopes"]),
                age(&v["expiresAtMs"]),
            );
            Ok(())
        }
    }
}

fn entries_line(v: &Value) -> String {
    match v["entries"].as_array() {
        Some(a) if !a.is_empty() => list(&v["entries"]).replace(',', ", "),
        _ => "(none)".into(),
    }
}

fn proxies(api: &Api, cmd: ProxiesCommand, json: bool) -> Res<()> {
    const PATH: &str = "/admin/v1/trusted-proxies";
    match cmd {
        ProxiesCommand::List => {
            let v = api.get(PATH)?;
            if json {
                print_json(&v);
                return Ok(());
            }
            match v["entries"].as_array() {
                Some(a) if !a.is_empty() => {
                    println!("Trusted proxies ({}):", a.len());
                    for e in a {
                        println!("  {}", text(e));
                    }
                }
                _ => {
                    println!("No trusted proxies: X-Forwarded-For and similar headers are ignored.")
                }
            }
            Ok(())
        }
        ProxiesCommand::Add { entry, dry_run } => {
            let etag = api.call("GET", PATH, None, None)?.etag;
            let path = if dry_run {
                format!("{PATH}?dryRun=true")
            } else {
                PATH.to_string()
            };
            let v = api
                .call(
                    "POST",
                    &path,
                    Some(&json!({ "entry": entry })),
                    etag.as_deref(),
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            let changed = v["changed"].as_bool().unwrap_or(true);
            if dry_run {
                println!(
                    "dry run, nothing applied: {}; the list would be: {}",
                    if changed {
                        format!("{entry} would be added")
                    } else {
                        format!("{entry} is already trusted")
                    },
                    entries_line(&v)
                );
            } else if changed {
                println!("added {entry}; trusted proxies: {}", entries_line(&v));
            } else {
                println!(
                    "{entry} is already trusted; nothing changed (trusted proxies: {})",
                    entries_line(&v)
                );
            }
            Ok(())
        }
        ProxiesCommand::Remove { entry } => {
            let etag = api.call("GET", PATH, None, None)?.etag;
            let v = api
                .call(
                    "DELETE",
                    &format!("{PATH}/{}", enc(entry.trim())),
                    None,
                    etag.as_deref(),
                )?
                .body;
            if json {
                print_json(&v);
                return Ok(());
            }
            println!("removed {entry}; trusted proxies: {}", entries_line(&v));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("10.0.0.0/8"), "10.0.0.0%2F8");
        assert_eq!(enc("fd00::/8"), "fd00::%2F8");
        assert_eq!(enc("a b%"), "a%20b%25");
    }

    #[test]
    fn normalizes_urls() {
        assert_eq!(normalize_url("127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        assert_eq!(
            normalize_url("http://localhost:2").unwrap(),
            "http://localhost:2"
        );
        assert!(normalize_url("https://x").is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn resolves_short_references() {
        let items = vec![
            json!({"deviceId": "abcdef0123456789", "fingerprint": "abcdef01-23456789", "label": "laptop"}),
            json!({"deviceId": "abcdff0000000000", "fingerprint": "abcdff00-00000000"}),
        ];
        let r = |a: &str| resolve(a, &items, "deviceId", &["label"], "device");
        assert_eq!(r("abcdef01-23456789").unwrap(), "abcdef0123456789");
        assert_eq!(r("laptop").unwrap(), "abcdef0123456789");
        assert_eq!(r("abcdff").unwrap(), "abcdff0000000000");
        assert!(r("abcd").is_err());
        assert_eq!(r("zzzz").unwrap(), "zzzz");
    }
}
