//! Strict validation of `gateway.*`, with messages that say what to write instead.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use serde_json::{Map, Value};

use super::error::{ConfigCode, ConfigError, Issue};
use super::locate::Positions;
use super::types::*;
use super::{describe, sources};

pub struct Context<'a> {
    pub file: Option<PathBuf>,
    pub file_text: Option<&'a str>,
    pub env: &'a Value,
    pub overrides: &'a Value,
    pub state_dir: &'a Path,
    pub generate_token: bool,
}

struct V<'a, 'b> {
    ctx: &'b Context<'a>,
    issues: Vec<Issue>,
    warnings: &'b mut Vec<String>,
    /// Key positions in the file text, read at the first issue.
    positions: std::cell::OnceCell<Positions>,
}

fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = root;
    for seg in path.split('.') {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

impl V<'_, '_> {
    fn base(path: &str) -> String {
        path.split('.')
            .map(|seg| seg.split('[').next().unwrap_or(seg))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn set_by_env(&self, path: &str) -> bool {
        lookup(self.ctx.env, &Self::base(path)).is_some()
    }

    fn issue(&mut self, code: ConfigCode, path: &str, message: String) {
        let mut issue = Issue::new(code, path, message);
        let base = Self::base(path);
        if lookup(self.ctx.overrides, &base).is_some() {
            issue.message.push_str(&format!(
                " (set by a runtime override; DELETE /admin/v1/config/overrides/{base} gives the key back to the file)"
            ));
        } else if self.set_by_env(path) {
            issue.message.push_str(" (set from the environment)");
        } else if let (Some(file), Some(text)) = (&self.ctx.file, self.ctx.file_text) {
            issue.file = Some(file.clone());
            if let Some((line, col)) = self.positions.get_or_init(|| Positions::of(text)).get(path)
            {
                issue.line = Some(line);
                issue.column = Some(col);
            }
        }
        self.issues.push(issue);
    }

    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.issue(ConfigCode::InvalidValue, path, message.into());
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(format!("{path}: {}", message.into()));
    }

    fn object<'v>(
        &mut self,
        path: &str,
        v: Option<&'v Value>,
        example: &str,
    ) -> Option<&'v Map<String, Value>> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.err(
                    path,
                    format!(
                        "expected an object, found {}; write it like {example}",
                        describe(other)
                    ),
                );
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, v: Option<&Value>, default: bool) -> bool {
        match v {
            None | Some(Value::Null) => default,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if matches!(s.trim(), "true" | "1" | "yes") => true,
            Some(Value::String(s)) if matches!(s.trim(), "false" | "0" | "no") => false,
            Some(other) => {
                self.err(
                    path,
                    format!("expected true or false, found {}", describe(other)),
                );
                default
            }
        }
    }

    fn number(&mut self, path: &str, v: Option<&Value>, default: u64, min: u64, max: u64) -> u64 {
        let n = match v {
            None | Some(Value::Null) => return default,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                let found = v.map(describe).unwrap_or_default();
                self.err(
                    path,
                    format!("expected a whole number from {min} to {max}, found {found}; e.g. {default}"),
                );
                default
            }
        }
    }

    fn string_list(
        &mut self,
        path: &str,
        v: Option<&Value>,
        example: &str,
    ) -> Vec<(String, String)> {
        match v {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(items)) => {
                let mut out = vec![];
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => {
                            out.push((format!("{path}[{i}]"), s.trim().to_string()))
                        }
                        other => self.err(
                            &format!("{path}[{i}]"),
                            format!(
                                "expected a string, found {}; e.g. {example}",
                                describe(other)
                            ),
                        ),
                    }
                }
                out
            }
            Some(Value::String(s)) => {
                self.err(
                    path,
                    format!(
                        "expected a list, found the string {s:?}; write [{s:?}] (e.g. {example})"
                    ),
                );
                vec![]
            }
            Some(other) => {
                self.err(
                    path,
                    format!("expected a list, found {}; e.g. {example}", describe(other)),
                );
                vec![]
            }
        }
    }

    fn cidrs(&mut self, path: &str, v: Option<&Value>) -> Vec<IpNet> {
        let entries = self.string_list(path, v, r#"["127.0.0.1", "10.0.0.0/8"]"#);
        let mut out = vec![];
        for (p, s) in entries {
            match parse_ip_or_cidr(&s) {
                Some(n) => out.push(n),
                None => self.err(
                    &p,
                    format!(
                        "{s:?} is neither an IP address nor a CIDR range; write an address like \
                         \"172.17.0.1\" or a range like \"172.17.0.0/16\""
                    ),
                ),
            }
        }
        out
    }

    fn unknown_keys(
        &mut self,
        path: &str,
        m: &Map<String, Value>,
        known: &[&str],
        ignored: &[&str],
    ) {
        for k in m.keys() {
            if known.contains(&k.as_str()) || ignored.contains(&k.as_str()) {
                continue;
            }
            let hint = closest(k, known)
                .map(|c| format!("; did you mean {path}.{c}?"))
                .unwrap_or_default();
            self.warn(
                &format!("{path}.{k}"),
                format!("unknown key, ignored{hint}"),
            );
        }
    }

    fn secret(&mut self, path: &str, v: Option<&Value>) -> Option<Secret> {
        let raw = match v {
            None | Some(Value::Null) => return None,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Object(m)) => {
                // SecretRef {source: "env", id: "VAR"}
                let source = m.get("source").and_then(Value::as_str);
                let id = m.get("id").and_then(Value::as_str);
                match (source, id) {
                    (Some("env"), Some(id)) => match std::env::var(id) {
                        Ok(v) => v,
                        Err(_) => {
                            self.err(
                                path,
                                format!(
                                    "refers to the environment variable {id}, which is not set"
                                ),
                            );
                            return None;
                        }
                    },
                    _ => {
                        self.err(
                            path,
                            "secret references other than {source: \"env\", id: \"VAR\"} are not supported; \
                             write the value, or \"${VAR}\"",
                        );
                        return None;
                    }
                }
            }
            Some(other) => {
                self.err(
                    path,
                    format!("expected a string, found {}", describe(other)),
                );
                return None;
            }
        };
        let value = match substitute_env(&raw) {
            Ok(v) => v,
            Err(var) => {
                self.err(
                    path,
                    format!("refers to ${{{var}}}, but the environment variable {var} is not set"),
                );
                return None;
            }
        };
        let t = value.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("undefined") || t.eq_ignore_ascii_case("null") {
            let shown = if t.is_empty() {
                "empty".to_string()
            } else {
                format!("the text {t:?}")
            };
            self.err(
                path,
                format!(
                    "is {shown}, which is what a missing value looks like after templating, not a token; \
                     set a real secret (e.g. the output of `openssl rand -hex 32`) or remove the key"
                ),
            );
            return None;
        }
        if ["__OPENCLAW_REDACTED__", "REDACTED", "***", "<redacted>"].contains(&t) {
            self.err(
                path,
                format!("is the redaction placeholder {t:?}, copied from a redacted config dump; put the real secret back"),
            );
            return None;
        }
        if t.len() < 16 {
            self.warn(
                path,
                format!(
                    "is only {} characters long; use at least 16 (32 random characters is better)",
                    t.len()
                ),
            );
        }
        Some(Secret::new(value))
    }
}

fn substitute_env(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        let Some(end) = rest[i..].find('}') else {
            break;
        };
        let name = &rest[i + 2..i + end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            out.push_str(&rest[..i + end + 1]);
            rest = &rest[i + end + 1..];
            continue;
        }
        out.push_str(&rest[..i]);
        out.push_str(&std::env::var(name).map_err(|_| name.to_string())?);
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses an exact IP (as /32 or /128) or a CIDR; IPv4-mapped IPv6 forms are
/// canonicalised to IPv4 (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
pub fn parse_ip_or_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        let ip = ip.to_canonical();
        return Some(IpNet::from(ip));
    }
    let net = s.parse::<IpNet>().ok()?;
    if let IpNet::V6(v6) = net {
        if let Some(v4) = v6.addr().to_ipv4_mapped() {
            if v6.prefix_len() >= 96 {
                return Some(IpNet::V4(
                    Ipv4Net::new(v4, v6.prefix_len() - 96).ok()?.trunc(),
                ));
            }
        }
    }
    Some(net.trunc())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// The known dotted key closest to `key` (for "did you mean").
pub fn closest_known(key: &str) -> Option<&'static str> {
    closest(key, sources::KNOWN_KEYS)
}

fn is_loopback(ip: &IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

const GATEWAY_KEYS: &[&str] = &[
    "port",
    "bind",
    "customBindHost",
    "auth",
    "trustedProxies",
    "allowRealIpFallback",
    "controlUi",
    "nodes",
    "reload",
    "admin",
    "pairing",
    "limits",
];
/// OpenClaw gateway keys clawgate accepts and does not act on.
const GATEWAY_IGNORED: &[&str] = &[
    "mode",
    "remote",
    "tls",
    "tailscale",
    "publicOrigin",
    "http",
    "tools",
    "push",
    "terminal",
    "roles",
    "cliAgents",
    "portals",
    "webchat",
    "canvas",
    "bonjour",
    "channelHealthCheckMinutes",
];

/// Log levels accepted in `logging.level` (OpenClaw's names).
pub const LOG_LEVELS: &[&str] = &["silent", "fatal", "error", "warn", "info", "debug", "trace"];

/// `logging.level`, when set (OpenClaw's key; the rest of `logging` is ignored).
pub fn log_level(root: &Value, ctx: &Context<'_>) -> Result<Option<String>, ConfigError> {
    let mut warnings = vec![];
    let mut v = V {
        ctx,
        issues: vec![],
        warnings: &mut warnings,
        positions: Default::default(),
    };
    let level = match root.get("logging").and_then(|l| l.get("level")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if LOG_LEVELS.contains(&s.trim().to_lowercase().as_str()) => {
            Some(s.trim().to_lowercase())
        }
        Some(other) => {
            v.err(
                "logging.level",
                format!(
                    "expected one of {}, found {}; e.g. logging: {{ level: \"debug\" }}",
                    LOG_LEVELS.join(", "),
                    describe(other)
                ),
            );
            None
        }
    };
    if v.issues.is_empty() {
        Ok(level)
    } else {
        Err(ConfigError { issues: v.issues })
    }
}

pub fn validate(
    root: &Value,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<GatewayConfig, ConfigError> {
    let mut v = V {
        ctx,
        issues: vec![],
        warnings,
        positions: Default::default(),
    };
    let empty = Map::new();
    let g = v
        .object(
            "gateway",
            root.get("gateway"),
            "gateway: { port: 18789, auth: { mode: \"token\", token: \"...\" } }",
        )
        .unwrap_or(&empty);
    v.unknown_keys("gateway", g, GATEWAY_KEYS, GATEWAY_IGNORED);

    let port = v.number("gateway.port", g.get("port"), 18789, 0, 65535) as u16;

    // bind
    let bind_spec = match g.get("bind") {
        None | Some(Value::Null) => "loopback".to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            v.err("gateway.bind", format!("expected \"loopback\", \"lan\", \"auto\", \"custom\" or an IP address, found {}", describe(other)));
            "loopback".to_string()
        }
    };
    match g.get("customBindHost") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => v.err(
            "gateway.customBindHost",
            format!(
                "expected an IP address as a string, e.g. \"192.168.1.10\", found {}",
                describe(other)
            ),
        ),
    }
    let bind: IpAddr = match bind_spec.as_str() {
        "loopback" | "auto" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "lan" | "all" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "custom" => match g
            .get("customBindHost")
            .and_then(Value::as_str)
            .map(str::parse::<IpAddr>)
        {
            Some(Ok(ip)) => ip,
            _ => {
                v.err("gateway.customBindHost", "bind is \"custom\", so customBindHost must be an IP address, e.g. \"192.168.1.10\"");
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
        "tailnet" => {
            v.err("gateway.bind", "\"tailnet\" is not supported by clawgate; bind to the tailnet IP address instead, e.g. \"100.64.0.5\"");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        other => match other.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                v.err("gateway.bind", format!("{other:?} is not a bind mode or an IP address; use \"loopback\", \"lan\", \"custom\" or an address like \"0.0.0.0\""));
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
    };

    // auth
    let mut auth_mode_explicit = None;
    let mut token = None;
    let mut password = None;
    let mut rate_limit = RateLimit::default();
    match g.get("auth") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim() == "none" => v.err(
            "gateway.auth",
            "found the string \"none\", but auth is an object; to turn shared-secret auth off write \
             auth: { mode: \"none\" } (allowed only on a loopback bind)",
        ),
        Some(Value::String(s)) if ["token", "password"].contains(&s.trim()) => v.err(
            "gateway.auth",
            format!(
                "found the string {:?}, but auth is an object; write auth: {{ mode: {:?}, {}: \"<secret>\" }}",
                s.trim(),
                s.trim(),
                s.trim()
            ),
        ),
        Some(Value::Object(a)) => {
            v.unknown_keys(
                "gateway.auth",
                a,
                &["mode", "token", "password", "rateLimit"],
                &["allowTailscale", "identityScopes", "trustedProxy"],
            );
            if a.contains_key("type") {
                v.err("gateway.auth.type", "is not a key; the auth mode is gateway.auth.mode (\"token\", \"password\" or \"none\")");
            }
            match a.get("mode") {
                None | Some(Value::Null) => {}
                Some(Value::String(m)) => match m.trim() {
                    "token" => auth_mode_explicit = Some(AuthMode::Token),
                    "password" => auth_mode_explicit = Some(AuthMode::Password),
                    "none" => auth_mode_explicit = Some(AuthMode::None),
                    "trusted-proxy" => v.err("gateway.auth.mode", "\"trusted-proxy\" auth is not supported by clawgate yet; use \"token\" and list the proxy in gateway.trustedProxies"),
                    other => v.err("gateway.auth.mode", format!("{other:?} is not a mode; use \"token\", \"password\" or \"none\"")),
                },
                Some(other) => v.err("gateway.auth.mode", format!("expected \"token\", \"password\" or \"none\", found {}", describe(other))),
            }
            token = v.secret("gateway.auth.token", a.get("token"));
            password = v.secret("gateway.auth.password", a.get("password"));
            if let Some(rl) = v.object("gateway.auth.rateLimit", a.get("rateLimit"), "rateLimit: { maxAttempts: 10, windowMs: 60000, lockoutMs: 300000 }") {
                rate_limit.max_attempts = v.number("gateway.auth.rateLimit.maxAttempts", rl.get("maxAttempts"), 10, 1, 1_000_000) as u32;
                rate_limit.window_ms = v.number("gateway.auth.rateLimit.windowMs", rl.get("windowMs"), 60_000, 1, u32::MAX as u64);
                rate_limit.lockout_ms = v.number("gateway.auth.rateLimit.lockoutMs", rl.get("lockoutMs"), 300_000, 1, u32::MAX as u64);
                rate_limit.exempt_loopback = v.boolean("gateway.auth.rateLimit.exemptLoopback", rl.get("exemptLoopback"), true);
            }
        }
        Some(other) => v.err(
            "gateway.auth",
            format!("expected an object, found {}; write auth: {{ mode: \"token\", token: \"<secret>\" }}", describe(other)),
        ),
    }
    let mut token_source = if token.is_some() {
        if v.set_by_env("gateway.auth.token") {
            SecretSource::Env("OPENCLAW_GATEWAY_TOKEN")
        } else {
            SecretSource::File
        }
    } else {
        SecretSource::None
    };
    let mode = match auth_mode_explicit {
        Some(m) => m,
        None if token.is_some() && password.is_some() => {
            v.issue(ConfigCode::Contradiction, "gateway.auth", "both a token and a password are set; choose one with gateway.auth.mode (\"token\" or \"password\")".into());
            AuthMode::Token
        }
        None if password.is_some() => AuthMode::Password,
        None => AuthMode::Token,
    };
    if mode == AuthMode::Token && token.is_none() {
        if auth_mode_explicit == Some(AuthMode::Token) {
            v.issue(
                ConfigCode::Contradiction,
                "gateway.auth.token",
                "gateway auth mode is token, but no token was configured (set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN)".into(),
            );
        } else {
            match super::generated_token(ctx.state_dir, ctx.generate_token) {
                Ok(Some(t)) => {
                    token = Some(Secret::new(t));
                    token_source = SecretSource::Generated(ctx.state_dir.join("gateway-token"));
                }
                Ok(None) => v.warnings.push(format!(
                    "gateway.auth.token: no token configured; `clawgate serve` generates one into {}",
                    ctx.state_dir.join("gateway-token").display()
                )),
                Err(e) => v.issue(
                    ConfigCode::StateDir,
                    "gateway.auth.token",
                    format!("no token configured and the generated one could not be stored in {}: {e}", ctx.state_dir.display()),
                ),
            }
        }
    }
    if mode == AuthMode::Password && password.is_none() {
        v.issue(
            ConfigCode::Contradiction,
            "gateway.auth.password",
            "gateway auth mode is password, but no password was configured (set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)".into(),
        );
    }
    if mode == AuthMode::None && !is_loopback(&bind) {
        v.issue(
            ConfigCode::Contradiction,
            "gateway.bind",
            format!("refusing to bind gateway to {bind}:{port} without auth; set gateway.auth.mode to \"token\" with a token, or bind to loopback"),
        );
    }

    let trusted_proxies = v.cidrs("gateway.trustedProxies", g.get("trustedProxies"));
    for n in trusted_proxies.iter().filter(|n| n.prefix_len() == 0) {
        v.warn(
            "gateway.trustedProxies",
            format!(
                "{n} trusts every peer: any client can then claim any address in \
                 X-Forwarded-For (and pass as local). List only your proxy's address or \
                 its network, e.g. \"172.17.0.0/16\" for Docker's default bridge"
            ),
        );
    }
    let allow_real_ip_fallback = v.boolean(
        "gateway.allowRealIpFallback",
        g.get("allowRealIpFallback"),
        false,
    );

    let mut control_ui = ControlUiConfig::default();
    if let Some(c) = v.object(
        "gateway.controlUi",
        g.get("controlUi"),
        "controlUi: { allowedOrigins: [\"https://gw.example.com\"] }",
    ) {
        v.unknown_keys(
            "gateway.controlUi",
            c,
            &[
                "allowInsecureAuth",
                "dangerouslyDisableDeviceAuth",
                "allowedOrigins",
                "dangerouslyAllowHostHeaderOriginFallback",
            ],
            &[
                "enabled",
                "basePath",
                "root",
                "environment",
                "github",
                "sessionObserver",
                "embedSandbox",
                "allowExternalEmbedUrls",
                "automaticallyFetchFavicons",
                "experimental",
                "communityInvite",
            ],
        );
        control_ui.allow_insecure_auth = v.boolean(
            "gateway.controlUi.allowInsecureAuth",
            c.get("allowInsecureAuth"),
            false,
        );
        control_ui.dangerously_disable_device_auth = v.boolean(
            "gateway.controlUi.dangerouslyDisableDeviceAuth",
            c.get("dangerouslyDisableDeviceAuth"),
            false,
        );
        control_ui.allowed_origins = v
            .string_list(
                "gateway.controlUi.allowedOrigins",
                c.get("allowedOrigins"),
                r#"["https://gw.example.com"]"#,
            )
            .into_iter()
            .map(|(_, s)| s.trim_end_matches('/').to_lowercase())
            .collect();
        control_ui.dangerously_allow_host_header_origin_fallback = v.boolean(
            "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
            c.get("dangerouslyAllowHostHeaderOriginFallback"),
            false,
        );
    }
    if control_ui.allow_insecure_auth {
        v.warn("gateway.controlUi.allowInsecureAuth", "is on: a client presenting the correct shared token is accepted without device pairing");
    }
    if control_ui.dangerously_disable_device_auth {
        v.warn("gateway.controlUi.dangerouslyDisableDeviceAuth", "is accepted for compatibility and ignored (as in OpenClaw 2026.9); use allowInsecureAuth to skip pairing for shared-token clients");
    }

    let mut node_pairing = NodePairingConfig {
        auto_approve_local: true,
        auto_approve_cidrs: vec![],
    };
    if let Some(n) = v.object(
        "gateway.nodes",
        g.get("nodes"),
        "nodes: { pairing: { autoApproveLocal: true } }",
    ) {
        if let Some(p) = v.object(
            "gateway.nodes.pairing",
            n.get("pairing"),
            "pairing: { autoApproveLocal: true }",
        ) {
            v.unknown_keys(
                "gateway.nodes.pairing",
                p,
                &["autoApproveLocal", "autoApproveCidrs"],
                &["sshVerify"],
            );
            node_pairing.auto_approve_local = v.boolean(
                "gateway.nodes.pairing.autoApproveLocal",
                p.get("autoApproveLocal"),
                true,
            );
            node_pairing.auto_approve_cidrs = v.cidrs(
                "gateway.nodes.pairing.autoApproveCidrs",
                p.get("autoApproveCidrs"),
            );
        }
    }

    let mut reload_mode = ReloadMode::Hybrid;
    let mut reload_poll_ms = 2_000;
    if let Some(r) = v.object(
        "gateway.reload",
        g.get("reload"),
        "reload: { mode: \"hybrid\" }",
    ) {
        v.unknown_keys("gateway.reload", r, &["mode", "pollIntervalMs"], &[]);
        reload_poll_ms = v.number(
            "gateway.reload.pollIntervalMs",
            r.get("pollIntervalMs"),
            2_000,
            0,
            3_600_000,
        );
        if reload_poll_ms > 0 && reload_poll_ms < 100 {
            v.err(
                "gateway.reload.pollIntervalMs",
                format!(
                    "{reload_poll_ms} is too short; use 0 (no polling) or at least 100, e.g. 2000"
                ),
            );
        }
        match r.get("mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "hybrid" => {}
            Some(Value::String(s)) if s == "off" => reload_mode = ReloadMode::Off,
            Some(other) => v.err(
                "gateway.reload.mode",
                format!(
                    "allowed values are \"hybrid\" and \"off\", found {}",
                    describe(other)
                ),
            ),
        }
    }

    let mut admin = AdminConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 18788,
        token: None,
        allow_remote: false,
    };
    if let Some(a) = v.object("gateway.admin", g.get("admin"), "admin: { port: 18788 }") {
        v.unknown_keys(
            "gateway.admin",
            a,
            &["bind", "port", "token", "allowRemote"],
            &[],
        );
        admin.port = v.number("gateway.admin.port", a.get("port"), 18788, 0, 65535) as u16;
        admin.allow_remote = v.boolean("gateway.admin.allowRemote", a.get("allowRemote"), false);
        admin.token = v.secret("gateway.admin.token", a.get("token"));
        match a.get("bind") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match s.as_str() {
                "loopback" | "localhost" => {}
                "lan" => admin.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                s => match s.parse::<IpAddr>() {
                    Ok(ip) => admin.bind = ip,
                    Err(_) => v.err(
                        "gateway.admin.bind",
                        format!("{s:?} is not an IP address; e.g. \"127.0.0.1\""),
                    ),
                },
            },
            Some(other) => v.err(
                "gateway.admin.bind",
                format!(
                    "expected \"loopback\", \"lan\" or an IP address, found {}",
                    describe(other)
                ),
            ),
        }
        if !is_loopback(&admin.bind) && !admin.allow_remote {
            v.issue(
                ConfigCode::Contradiction,
                "gateway.admin.bind",
                format!("the admin API would listen on {}, which is not loopback; set gateway.admin.allowRemote: true to allow that", admin.bind),
            );
        }
    }

    let mut pairing = PairingConfig {
        pending_ttl_ms: 300_000,
        max_pending_per_client: 16,
        max_pending_total: 1024,
    };
    if let Some(p) = v.object(
        "gateway.pairing",
        g.get("pairing"),
        "pairing: { pendingTtlMs: 300000 }",
    ) {
        v.unknown_keys(
            "gateway.pairing",
            p,
            &["pendingTtlMs", "maxPendingPerClient", "maxPendingTotal"],
            &[],
        );
        pairing.pending_ttl_ms = v.number(
            "gateway.pairing.pendingTtlMs",
            p.get("pendingTtlMs"),
            300_000,
            1_000,
            86_400_000,
        );
        pairing.max_pending_per_client = v.number(
            "gateway.pairing.maxPendingPerClient",
            p.get("maxPendingPerClient"),
            16,
            1,
            100_000,
        ) as usize;
        pairing.max_pending_total = v.number(
            "gateway.pairing.maxPendingTotal",
            p.get("maxPendingTotal"),
            1024,
            1,
            1_000_000,
        ) as usize;
    }

    let mut limits = LimitsConfig::default();
    if let Some(l) = v.object(
        "gateway.limits",
        g.get("limits"),
        "limits: { handshakeTimeoutMs: 15000 }",
    ) {
        v.unknown_keys(
            "gateway.limits",
            l,
            &[
                "handshakeTimeoutMs",
                "maxPreauthPayload",
                "maxPayload",
                "maxPreauthPerIp",
                "tickIntervalMs",
                "pingIntervalMs",
                "workers",
            ],
            &[],
        );
        let d = LimitsConfig::default();
        limits.handshake_timeout_ms = v.number(
            "gateway.limits.handshakeTimeoutMs",
            l.get("handshakeTimeoutMs"),
            d.handshake_timeout_ms,
            100,
            600_000,
        );
        limits.max_preauth_payload = v.number(
            "gateway.limits.maxPreauthPayload",
            l.get("maxPreauthPayload"),
            d.max_preauth_payload as u64,
            1024,
            1 << 24,
        ) as usize;
        limits.max_payload = v.number(
            "gateway.limits.maxPayload",
            l.get("maxPayload"),
            d.max_payload as u64,
            1024,
            1 << 30,
        ) as usize;
        limits.max_preauth_per_ip = v.number(
            "gateway.limits.maxPreauthPerIp",
            l.get("maxPreauthPerIp"),
            d.max_preauth_per_ip as u64,
            1,
            1_000_000,
        ) as usize;
        limits.tick_interval_ms = v.number(
            "gateway.limits.tickIntervalMs",
            l.get("tickIntervalMs"),
            d.tick_interval_ms,
            100,
            3_600_000,
        );
        limits.ping_interval_ms = v.number(
            "gateway.limits.pingIntervalMs",
            l.get("pingIntervalMs"),
            d.ping_interval_ms,
            100,
            3_600_000,
        );
        limits.workers = v.number("gateway.limits.workers", l.get("workers"), 0, 0, 256) as usize;
    }
    if !v.issues.is_empty() {
        return Err(ConfigError { issues: v.issues });
    }
    Ok(GatewayConfig {
        port,
        bind,
        bind_spec,
        auth: AuthConfig {
            mode,
            token,
            previous_token: None,
            password,
            token_source,
            rate_limit,
        },
        trusted_proxies,
        allow_real_ip_fallback,
        control_ui,
        node_pairing,
        reload_mode,
        reload_poll_ms,
        admin,
        pairing,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_accepts_ips_and_mapped_ranges() {
        assert_eq!(
            parse_ip_or_cidr("10.0.0.1").unwrap().to_string(),
            "10.0.0.1/32"
        );
        assert_eq!(
            parse_ip_or_cidr("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_or_cidr("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_or_cidr("::ffff:127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(
            parse_ip_or_cidr("fd00::/8").unwrap().to_string(),
            "fd00::/8"
        );
        assert!(parse_ip_or_cidr("not-an-ip").is_none());
        assert!(parse_ip_or_cidr("10.0.0.0/33").is_none());
    }

    #[test]
    fn env_substitution() {
        std::env::set_var("CLAWGATE_TEST_SUBST", "abc");
        assert_eq!(substitute_env("x${CLAWGATE_TEST_SUBST}y").unwrap(), "xabcy");
        assert_eq!(substitute_env("$${KEEP}").unwrap(), "${KEEP}");
        assert_eq!(
            substitute_env("${CLAWGATE_TEST_MISSING_VAR}").unwrap_err(),
            "CLAWGATE_TEST_MISSING_VAR"
        );
    }

    #[test]
    fn closest_key_suggestion() {
        assert_eq!(
            closest("trustedProxy", GATEWAY_KEYS),
            Some("trustedProxies")
        );
        assert_eq!(closest("zzzzzzzz", GATEWAY_KEYS), None);
    }
}
