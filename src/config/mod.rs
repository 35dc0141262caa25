//! Configuration: the user's `openclaw.json` (JSON5) plus environment and flags,
//! layered through figment, validated strictly for `gateway.*`, and published as
//! one immutable [`RuntimeConfig`] snapshot behind an `ArcSwap`.

mod error;
pub mod overrides;
mod sources;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::{ConfigCode, ConfigError, Issue};
pub use sources::{env_name_to_key, locate, KNOWN_KEYS};
pub use types::*;
pub use validate::parse_ip_or_cidr;

use serde_json::{json, Value};

/// Inputs to [`load`]: flags and a snapshot of the environment (injectable for tests).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub config_path: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub admin_port: Option<u16>,
    pub env: BTreeMap<String, String>,
    /// Whether a missing shared token may be generated into the state dir
    /// (true for `serve`, false for `config validate`).
    pub generate_token: bool,
}

impl LoadOptions {
    pub fn from_process_env() -> Self {
        LoadOptions {
            env: std::env::vars().collect(),
            ..Default::default()
        }
    }
}

fn home_dir(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// The state directory: `--state-dir` > `CLAWGATE_STATE_DIR` >
/// `$OPENCLAW_STATE_DIR/clawgate` > `~/.openclaw/clawgate`.
pub fn resolve_state_dir(opts: &LoadOptions) -> PathBuf {
    if let Some(p) = &opts.state_dir {
        return p.clone();
    }
    if let Some(p) = opts.env.get("CLAWGATE_STATE_DIR").filter(|s| !s.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = opts.env.get("OPENCLAW_STATE_DIR").filter(|s| !s.is_empty()) {
        return PathBuf::from(p).join("clawgate");
    }
    home_dir(&opts.env)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".openclaw")
        .join("clawgate")
}

/// The config file: `--config` > `OPENCLAW_CONFIG_PATH` >
/// `$OPENCLAW_STATE_DIR/openclaw.json` > `~/.openclaw/openclaw.json` (when it exists).
/// Returns the path and whether it was named explicitly (then it must exist).
pub fn resolve_config_path(opts: &LoadOptions) -> Option<(PathBuf, bool)> {
    if let Some(p) = &opts.config_path {
        return Some((p.clone(), true));
    }
    if let Some(p) = opts
        .env
        .get("OPENCLAW_CONFIG_PATH")
        .filter(|s| !s.is_empty())
    {
        return Some((PathBuf::from(p), true));
    }
    let candidates = [
        opts.env
            .get("OPENCLAW_STATE_DIR")
            .filter(|s| !s.is_empty())
            .map(|d| PathBuf::from(d).join("openclaw.json")),
        home_dir(&opts.env).map(|h| h.join(".openclaw").join("openclaw.json")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .map(|p| (p, false))
}

/// Loads, merges and validates the configuration.
pub fn load(opts: &LoadOptions) -> Result<RuntimeConfig, ConfigError> {
    let state_dir = resolve_state_dir(opts);
    let mut warnings = Vec::new();
    let file = resolve_config_path(opts);
    let mut file_text = None;
    let mut file_value = None;
    let mut source_hash = None;
    if let Some((path, _explicit)) = &file {
        let (value, text) = sources::read_file(path)?;
        use sha2::Digest;
        source_hash = Some(hex::encode(sha2::Sha256::digest(text.as_bytes())));
        file_value = Some(value);
        file_text = Some(text);
    }
    let (env_value, _) = sources::env_tree(&opts.env, &mut warnings);
    let mut flags = json!({});
    if let Some(port) = opts.port {
        flags["gateway"] = json!({});
        flags["gateway"]["port"] = json!(port);
    }
    if let Some(bind) = &opts.bind {
        if !flags["gateway"].is_object() {
            flags["gateway"] = json!({});
        }
        flags["gateway"]["bind"] = json!(bind);
    }
    if let Some(p) = opts.admin_port {
        if !flags["gateway"].is_object() {
            flags["gateway"] = json!({});
        }
        flags["gateway"]["admin"] = json!({"port": p});
    }
    let file_layer = match (&file, file_value) {
        (Some((p, _)), Some(v)) => Some((p.as_path(), v)),
        _ => None,
    };
    let merged = sources::merge(file_layer, env_value.clone(), flags)?;
    let ctx = validate::Context {
        file: file.as_ref().map(|(p, _)| p.clone()),
        file_text: file_text.as_deref(),
        env: &env_value,
        state_dir: &state_dir,
        generate_token: opts.generate_token,
    };
    let gateway = validate::validate(&merged, &ctx, &mut warnings)?;
    Ok(RuntimeConfig {
        gateway,
        file: file.map(|(p, _)| p),
        source_hash,
        state_dir,
        warnings,
    })
}

/// Reads the generated gateway token from the state dir, creating it (mode 0600)
/// when absent and `create` is set.
pub fn generated_token(state_dir: &Path, create: bool) -> std::io::Result<Option<String>> {
    let path = state_dir.join("gateway-token");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(Some(s.trim().to_string())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if !create {
        return Ok(None);
    }
    crate::store::ensure_state_dir(state_dir)?;
    let token = crate::util::random_token();
    crate::util::write_private_file(&path, token.as_bytes())?;
    Ok(Some(token))
}

/// Renders a value type for messages ("the string \"token\"").
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}
