//! The one list of settings clawgate reads. Everything that needs to know
//! "which keys exist" derives from [`SETTINGS`]: the known keys and their
//! `CLAWGATE_*` environment names, OpenClaw's environment aliases, which keys
//! hold secrets, which take lists, which a runtime override may set, which
//! change only at a restart, which have a command-line flag, and the known
//! children of each object (for the unknown-key warnings).
//!
//! Adding a key: a row here, its parse in `validate/`, its field in
//! `types.rs`, its value in `explain::value_of`.

/// What a setting's value is, as far as the sources need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A scalar (number, boolean, string): an environment value stays a
    /// string and the validator reads it.
    Scalar,
    /// A list: an environment value may be a JSON array or a comma list.
    List,
    /// A secret: never shown, never stored as an override.
    Secret,
}

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Applied live (hot reload).
    Live,
    /// Bound at start: a new value is reported as `restartRequired`.
    Restart,
}

/// Whether `PATCH /admin/v1/config` may set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    Allowed,
    /// Refused, with the reason the API answers.
    Refused(&'static str),
}

/// Who defines the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// OpenClaw's own key (the real gateway reads it too).
    OpenClaw,
    /// A key clawgate added under `gateway.*`.
    Clawgate,
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    pub change: Change,
    pub overridable: Override,
    pub owner: Owner,
    /// Environment names besides `CLAWGATE_<KEY>` (OpenClaw's own).
    pub env: &'static [&'static str],
    /// The `clawgate serve` flag that sets it.
    pub flag: Option<&'static str>,
}

const fn s(key: &'static str, owner: Owner) -> Setting {
    Setting {
        key,
        kind: Kind::Scalar,
        change: Change::Live,
        overridable: Override::Allowed,
        owner,
        env: &[],
        flag: None,
    }
}

impl Setting {
    const fn list(mut self) -> Self {
        self.kind = Kind::List;
        self
    }
    const fn secret(mut self, why: &'static str) -> Self {
        self.kind = Kind::Secret;
        self.overridable = Override::Refused(why);
        self
    }
    const fn no_override(mut self, why: &'static str) -> Self {
        self.overridable = Override::Refused(why);
        self
    }
    const fn restart(mut self) -> Self {
        self.change = Change::Restart;
        self
    }
    const fn env(mut self, names: &'static [&'static str]) -> Self {
        self.env = names;
        self
    }
    const fn flag(mut self, flag: &'static str) -> Self {
        self.flag = Some(flag);
        self
    }
}

use Owner::{Clawgate as C, OpenClaw as O};

const NO_SECRET_OVERRIDES: &str =
    "secrets are not stored as overrides; set them in the config file or the environment";

/// Every leaf key clawgate understands, in its canonical (camelCase) spelling.
pub const SETTINGS: &[Setting] = &[
    s("gateway.port", O).env(&["OPENCLAW_GATEWAY_PORT"]).flag("--port"),
    s("gateway.bind", O).flag("--bind"),
    s("gateway.customBindHost", O),
    s("gateway.auth.mode", O),
    s("gateway.auth.token", O)
        .secret("the shared token is changed with POST /admin/v1/gateway/token/rotate (stored as a digest, shown once)")
        .env(&["OPENCLAW_GATEWAY_TOKEN"]),
    s("gateway.auth.password", O)
        .secret(NO_SECRET_OVERRIDES)
        .env(&["OPENCLAW_GATEWAY_PASSWORD"]),
    s("gateway.auth.rateLimit.maxAttempts", O),
    s("gateway.auth.rateLimit.windowMs", O),
    s("gateway.auth.rateLimit.lockoutMs", O),
    s("gateway.auth.rateLimit.exemptLoopback", O),
    s("gateway.auth.trustedProxy.userHeader", O),
    s("gateway.auth.trustedProxy.requiredHeaders", O).list(),
    s("gateway.auth.trustedProxy.allowUsers", O).list(),
    s("gateway.auth.trustedProxy.allowLoopback", O),
    s("gateway.auth.trustedProxy.deviceAutoApprove.enabled", O),
    s("gateway.auth.trustedProxy.deviceAutoApprove.scopes", O).list(),
    s("gateway.auth.identityScopes", O).no_override(
        "per-user scopes (a map) are set in the config file only",
    ),
    s("gateway.trustedProxies", O).list(),
    s("gateway.allowRealIpFallback", O),
    s("gateway.controlUi.enabled", O),
    s("gateway.controlUi.basePath", O),
    s("gateway.controlUi.root", O).no_override(
        "the folder served to browsers is set in the config file only, never over the API",
    ),
    s("gateway.controlUi.allowInsecureAuth", O),
    s("gateway.controlUi.dangerouslyDisableDeviceAuth", O),
    s("gateway.controlUi.allowedOrigins", O).list(),
    s("gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback", O),
    s("gateway.nodes.pairing.autoApproveLocal", O),
    s("gateway.nodes.pairing.autoApproveCidrs", O).list(),
    s("gateway.reload.mode", O),
    s("gateway.reload.pollIntervalMs", C),
    s("gateway.admin.bind", C).restart(),
    s("gateway.admin.port", C).restart().flag("--admin-port"),
    s("gateway.admin.token", C)
        .secret(NO_SECRET_OVERRIDES)
        .restart()
        .env(&["CLAWGATE_ADMIN_TOKEN"]),
    s("gateway.admin.allowRemote", C).restart(),
    s("gateway.pairing.pendingTtlMs", C),
    s("gateway.pairing.maxPendingPerClient", C),
    s("gateway.pairing.maxPendingTotal", C),
    s("gateway.limits.handshakeTimeoutMs", C).env(&["OPENCLAW_HANDSHAKE_TIMEOUT_MS"]),
    s("gateway.limits.maxPreauthPayload", C),
    s("gateway.limits.maxPayload", C),
    s("gateway.limits.maxPreauthPerIp", C).env(&["OPENCLAW_MAX_PREAUTH_CONNECTIONS_PER_IP"]),
    s("gateway.limits.tickIntervalMs", C),
    s("gateway.limits.pingIntervalMs", C),
    s("gateway.limits.workers", C).restart(),
    s("gateway.limits.maxHttpBodyBytes", C),
    s("logging.level", O),
    s("upstream.url", C).flag("--upstream"),
    s("upstream.token", C).secret(NO_SECRET_OVERRIDES),
    s("upstream.password", C).secret(NO_SECRET_OVERRIDES),
    s("upstream.connectTimeoutMs", C),
];

/// The keys of `openclaw.json` that, in front-door mode, are the upstream's
/// rather than clawgate's: its listener, and whom it trusts as a proxy
/// (clawgate, on loopback). clawgate's own go in `clawgate.json`.
pub const UPSTREAM_OWNED: &[&str] = &[
    "port",
    "bind",
    "customBindHost",
    "trustedProxies",
    "allowRealIpFallback",
];

/// `gateway.admin.port` → `gateway: { admin: { port: … } }`, for messages.
pub fn nested_example(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            out.push_str(&format!("{p}: …"));
        } else {
            out.push_str(&format!("{p}: {{ "));
        }
    }
    for _ in 1..parts.len() {
        out.push_str(" }");
    }
    out
}

const fn keys_of<const N: usize>(settings: &[Setting]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = settings[i].key;
        i += 1;
    }
    out
}

const KEYS: [&str; SETTINGS.len()] = keys_of(SETTINGS);

/// The known keys, in [`SETTINGS`] order.
pub const KNOWN_KEYS: &[&str] = &KEYS;

/// OpenClaw keys clawgate accepts and does not act on, by object.
const IGNORED: &[(&str, &[&str])] = &[
    (
        "gateway",
        &[
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
        ],
    ),
    ("gateway.auth", &["allowTailscale"]),
    ("gateway.auth.trustedProxy", &["cloudflareAccessOidc"]),
    (
        "gateway.controlUi",
        &[
            "environment",
            "github",
            "sessionObserver",
            "embedSandbox",
            "allowExternalEmbedUrls",
            "automaticallyFetchFavicons",
            "experimental",
            "communityInvite",
        ],
    ),
    ("gateway.nodes.pairing", &["sshVerify"]),
];

pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

pub fn is_secret(key: &str) -> bool {
    find(key).is_some_and(|s| s.kind == Kind::Secret)
}

/// Why an override may not set `key` (`None`: it may, or it is unknown).
pub fn not_overridable(key: &str) -> Option<&'static str> {
    match find(key)?.overridable {
        Override::Allowed => None,
        Override::Refused(why) => Some(why),
    }
}

pub fn flag_for(key: &str) -> Option<&'static str> {
    find(key)?.flag
}

/// Keys bound at start.
pub fn restart_only() -> impl Iterator<Item = &'static Setting> {
    SETTINGS.iter().filter(|s| s.change == Change::Restart)
}

/// `(variable, key)` for OpenClaw's environment names.
pub fn env_aliases() -> impl Iterator<Item = (&'static str, &'static str)> {
    SETTINGS
        .iter()
        .flat_map(|s| s.env.iter().map(move |n| (*n, s.key)))
}

/// The known children of the object at `path` (`"gateway.auth"` →
/// `mode`, `token`, `password`, `rateLimit`), in first-seen order.
pub fn children(path: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec![];
    for s in SETTINGS {
        let Some(rest) = s.key.strip_prefix(path).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let child = rest.split('.').next().unwrap_or(rest);
        if !out.contains(&child) {
            out.push(child);
        }
    }
    out
}

/// The OpenClaw keys under `path` that clawgate accepts and ignores.
pub fn ignored_children(path: &str) -> &'static [&'static str] {
    IGNORED
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, keys)| keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_derived_lists_agree() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.key), "{} listed twice", s.key);
        }
        assert_eq!(KNOWN_KEYS.len(), SETTINGS.len());
        assert!(is_secret("gateway.admin.token") && !is_secret("gateway.port"));
        assert_eq!(flag_for("gateway.admin.port"), Some("--admin-port"));
        assert!(not_overridable("gateway.auth.token")
            .unwrap()
            .contains("rotate"));
        assert_eq!(not_overridable("gateway.trustedProxies"), None);
        assert_eq!(
            children("gateway.auth"),
            [
                "mode",
                "token",
                "password",
                "rateLimit",
                "trustedProxy",
                "identityScopes"
            ]
        );
        assert_eq!(children("gateway.reload"), ["mode", "pollIntervalMs"]);
        let restart: Vec<_> = restart_only().map(|s| s.key).collect();
        assert_eq!(
            restart,
            [
                "gateway.admin.bind",
                "gateway.admin.port",
                "gateway.admin.token",
                "gateway.admin.allowRemote",
                "gateway.limits.workers"
            ]
        );
        assert!(
            env_aliases().any(|(n, k)| n == "OPENCLAW_GATEWAY_TOKEN" && k == "gateway.auth.token")
        );
    }

    #[test]
    fn every_object_with_ignored_keys_is_one_clawgate_reads() {
        for (path, _) in IGNORED {
            assert!(!children(path).is_empty(), "{path}");
        }
    }
}
