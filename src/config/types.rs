//! The effective, validated configuration: one immutable snapshot.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

/// A secret value (shared token, password). Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: Option<String>,
    digest: [u8; 32],
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        let digest = Sha256::digest(value.as_bytes()).into();
        Secret {
            value: Some(value),
            digest,
        }
    }
    /// A secret known only by its digest (a runtime override).
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Secret {
            value: None,
            digest,
        }
    }
    /// The value, when it is known (not for digest-only overrides).
    pub fn expose(&self) -> Option<&str> {
        self.value.as_deref()
    }
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Token,
    Password,
    None,
    /// An identity-aware proxy vouches for the user in a header (§3.4).
    TrustedProxy,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::None => "none",
            AuthMode::TrustedProxy => "trusted-proxy",
        }
    }
}

/// Where the shared token came from (for start-up messages; never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File,
    Env(&'static str),
    Flag,
    Generated(PathBuf),
    /// Rotated through the admin API (stored as a digest).
    Override,
    None,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub max_attempts: u32,
    pub window_ms: u64,
    pub lockout_ms: u64,
    pub exempt_loopback: bool,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub token: Option<Secret>,
    /// The previous shared token during a rotation grace window: digest and
    /// the time (ms) until which it is still accepted.
    pub previous_token: Option<([u8; 32], u64)>,
    pub password: Option<Secret>,
    pub token_source: SecretSource,
    pub rate_limit: RateLimit,
    /// `gateway.auth.trustedProxy`: set (and required) in trusted-proxy mode.
    pub trusted_proxy: Option<TrustedProxyAuth>,
    /// `gateway.auth.identityScopes`: session-only operator scopes per
    /// verified user (keys as written; emails match case-insensitively).
    pub identity_scopes: Vec<(String, Vec<String>)>,
}

/// `gateway.auth.trustedProxy` (protocol §3.4).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxyAuth {
    /// The header with the user's identity, lowercased.
    pub user_header: String,
    /// Headers that must be present and non-blank, lowercased.
    pub required_headers: Vec<String>,
    /// When non-empty, the only users let in (exact match).
    pub allow_users: Vec<String>,
    /// Whether a proxy on loopback may vouch (off by default).
    pub allow_loopback: bool,
    /// `deviceAutoApprove.enabled`.
    pub auto_approve: bool,
    /// `deviceAutoApprove.scopes` as written (`None`: OpenClaw's default).
    pub auto_approve_scopes: Option<Vec<String>>,
}

impl TrustedProxyAuth {
    /// The headers a connect needs from its upgrade request.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.user_header.as_str())
            .chain(self.required_headers.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone)]
pub struct ControlUiConfig {
    /// `gateway.controlUi.enabled` (default true): serve the UI when a root is set.
    pub enabled: bool,
    /// `gateway.controlUi.basePath`, normalized: `""` (the root) or `/x`.
    pub base_path: String,
    /// `gateway.controlUi.root`: the folder with the UI's `index.html`
    /// (an installed `openclaw` package's `dist/control-ui`). Standalone mode
    /// serves it; in front-door mode the upstream serves its own.
    pub root: Option<std::path::PathBuf>,
    pub allow_insecure_auth: bool,
    pub dangerously_disable_device_auth: bool,
    /// Lowercased origins; may contain `*`.
    pub allowed_origins: Vec<String>,
    pub dangerously_allow_host_header_origin_fallback: bool,
}

impl Default for ControlUiConfig {
    fn default() -> Self {
        ControlUiConfig {
            enabled: true,
            base_path: String::new(),
            root: None,
            allow_insecure_auth: false,
            dangerously_disable_device_auth: false,
            allowed_origins: vec![],
            dangerously_allow_host_header_origin_fallback: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodePairingConfig {
    pub auto_approve_local: bool,
    pub auto_approve_cidrs: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    Hybrid,
    Off,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub bind: IpAddr,
    pub port: u16,
    pub token: Option<Secret>,
    pub allow_remote: bool,
}

#[derive(Debug, Clone)]
pub struct PairingConfig {
    pub pending_ttl_ms: u64,
    pub max_pending_per_client: usize,
    pub max_pending_total: usize,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub handshake_timeout_ms: u64,
    pub max_preauth_payload: usize,
    pub max_payload: usize,
    pub max_buffered_bytes: usize,
    pub max_preauth_per_ip: usize,
    pub tick_interval_ms: u64,
    pub ping_interval_ms: u64,
    /// HTTP worker threads (0 = number of cores).
    pub workers: usize,
    /// Front-door mode: the largest HTTP request body relayed upstream.
    pub max_http_body: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            handshake_timeout_ms: 15_000,
            max_preauth_payload: 65_536,
            max_payload: 26_214_400,
            max_buffered_bytes: 52_428_800,
            max_preauth_per_ip: 32,
            tick_interval_ms: 30_000,
            ping_interval_ms: 25_000,
            workers: 0,
            max_http_body: 20 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub port: u16,
    pub bind: IpAddr,
    /// The bind as written (`loopback`, `lan`, an address), for messages.
    pub bind_spec: String,
    pub auth: AuthConfig,
    pub trusted_proxies: Vec<IpNet>,
    pub allow_real_ip_fallback: bool,
    pub control_ui: ControlUiConfig,
    pub node_pairing: NodePairingConfig,
    pub reload_mode: ReloadMode,
    /// How often the config file is polled as a fallback to file events
    /// (`gateway.reload.pollIntervalMs`; 0 = never).
    pub reload_poll_ms: u64,
    pub admin: AdminConfig,
    pub pairing: PairingConfig,
    pub limits: LimitsConfig,
    /// The real gateway clawgate fronts (`upstream.*`); `None`: standalone.
    pub upstream: Option<UpstreamConfig>,
}

/// Whether clawgate answers by itself or fronts a real gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No upstream: clawgate answers its own methods (the embedded default).
    Standalone,
    /// In front of the real gateway at `upstream.url`.
    FrontDoor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::FrontDoor => "front-door",
        }
    }
}

/// The credential clawgate presents to the upstream gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSecret {
    None,
    Token(Secret),
    Password(Secret),
}

/// The real OpenClaw gateway behind clawgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `ws://` or `wss://`, normalized.
    pub url: String,
    pub secret: UpstreamSecret,
    /// Where the secret came from, for `explain` and the doctor.
    pub secret_from: &'static str,
    /// `upstream.url: "auto"`: the address comes from `openclaw.json`.
    pub derived: bool,
    /// `upstream.connectTimeoutMs`: how long opening an upstream session
    /// (TCP, upgrade, challenge, `hello-ok`) may take in all.
    pub connect_timeout_ms: u64,
}

impl UpstreamConfig {
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
}

/// The effective configuration snapshot swapped behind an `ArcSwap`.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub gateway: GatewayConfig,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// clawgate's own settings file that was read, if any.
    pub own_file: Option<PathBuf>,
    /// SHA-256 (hex) of the file content, if any.
    pub source_hash: Option<String>,
    pub state_dir: PathBuf,
    /// Warnings found while loading (shown once at start and on reload).
    pub warnings: Vec<String>,
    /// `logging.level` (OpenClaw's key), when set.
    pub log_level: Option<String>,
    /// The inputs this snapshot was built from, kept to rebuild it on reload
    /// and to explain where each value came from.
    pub sources: std::sync::Arc<super::Sources>,
}

impl RuntimeConfig {
    pub fn mode(&self) -> Mode {
        if self.gateway.upstream.is_some() {
            Mode::FrontDoor
        } else {
            Mode::Standalone
        }
    }

    pub fn is_trusted_proxy(&self, ip: &IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.gateway.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}
