//! Strict validation of `gateway.*`, with messages that say what to write instead.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use serde_json::{Map, Value};

use super::error::{ConfigCode, ConfigError, Issue};
use super::locate::Positions;
use super::types::*;
use super::{describe, settings};

mod auth;
mod sections;

pub struct Context<'a> {
    pub file: Option<PathBuf>,
    pub file_text: Option<&'a str>,
    /// clawgate's own file: path, text, tree (positions of the keys it sets).
    pub own: Option<(PathBuf, &'a str, &'a Value)>,
    /// `openclaw.json` as the real gateway reads it (for `upstream.url: "auto"`).
    pub openclaw: Option<&'a Value>,
    pub env: &'a Value,
    pub overrides: &'a Value,
    pub state_dir: &'a Path,
    /// The process environment (the real gateway's secret variables).
    pub env_vars: &'a std::collections::BTreeMap<String, String>,
    pub generate_token: bool,
}

struct V<'a, 'b> {
    ctx: &'b Context<'a>,
    issues: Vec<Issue>,
    warnings: &'b mut Vec<String>,
    /// Key positions in the file text, read at the first issue.
    positions: std::cell::OnceCell<Positions>,
    /// The same for clawgate's own file.
    own_positions: std::cell::OnceCell<Positions>,
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
        } else if let Some((file, text, _)) = self
            .ctx
            .own
            .as_ref()
            .filter(|(_, _, tree)| lookup(tree, &base).is_some())
        {
            issue.file = Some(file.clone());
            if let Some((line, col)) = self
                .own_positions
                .get_or_init(|| Positions::of(text))
                .get(path)
            {
                issue.line = Some(line);
                issue.column = Some(col);
            }
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

    /// Warns about keys of the object at `path` that clawgate neither reads
    /// nor knows to ignore (both lists come from the settings registry).
    fn unknown_keys(&mut self, path: &str, m: &Map<String, Value>) {
        let known = settings::children(path);
        let ignored = settings::ignored_children(path);
        for k in m.keys() {
            if known.contains(&k.as_str()) || ignored.contains(&k.as_str()) {
                continue;
            }
            let hint = closest(k, &known)
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
    closest(key, settings::KNOWN_KEYS)
}

fn is_loopback(ip: &IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

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
        own_positions: Default::default(),
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
        own_positions: Default::default(),
    };
    let empty = Map::new();
    let g = v
        .object(
            "gateway",
            root.get("gateway"),
            "gateway: { port: 18789, auth: { mode: \"token\", token: \"...\" } }",
        )
        .unwrap_or(&empty);
    v.unknown_keys("gateway", g);

    let port = v.number("gateway.port", g.get("port"), 18789, 0, 65535) as u16;

    let (bind_spec, bind) = sections::bind(&mut v, g);
    let front_door = root.pointer("/upstream/url").is_some_and(|u| !u.is_null());
    let auth = auth::auth(&mut v, front_door, g, bind, port);
    let (trusted_proxies, allow_real_ip_fallback) = sections::proxies(&mut v, g);
    if auth.mode == AuthMode::TrustedProxy && trusted_proxies.is_empty() {
        v.issue(
            ConfigCode::Contradiction,
            "gateway.trustedProxies",
            "gateway auth mode=trusted-proxy requires gateway.trustedProxies to be configured with at least one proxy IP (the address your identity-aware proxy connects from, or its network)".into(),
        );
    }
    let control_ui = sections::control_ui(&mut v, g);
    let node_pairing = sections::node_pairing(&mut v, g);
    let (reload_mode, reload_poll_ms) = sections::reload(&mut v, g);
    let admin = sections::admin(&mut v, g);
    let pairing = sections::pairing(&mut v, g);
    let limits = sections::limits(&mut v, g);
    let upstream = sections::upstream(&mut v, root, port, bind);
    if !v.issues.is_empty() {
        return Err(ConfigError { issues: v.issues });
    }
    Ok(GatewayConfig {
        port,
        bind,
        bind_spec,
        auth,
        trusted_proxies,
        allow_real_ip_fallback,
        control_ui,
        node_pairing,
        reload_mode,
        reload_poll_ms,
        admin,
        pairing,
        limits,
        upstream,
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
            closest("trustedProxy", &settings::children("gateway")),
            Some("trustedProxies")
        );
        assert_eq!(closest("zzzzzzzz", &settings::children("gateway")), None);
    }
}
