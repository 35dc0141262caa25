//! Configuration: the user's `openclaw.json` (JSON5) plus environment and flags,
//! layered through figment, validated strictly for `gateway.*`, and published as
//! one immutable [`RuntimeConfig`] snapshot behind an `ArcSwap`.

pub mod depth;
mod error;
pub mod explain;
mod locate;
pub mod overrides;
pub mod settings;
mod sources;
mod types;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use error::{ConfigCode, ConfigError, Issue};
pub use settings::KNOWN_KEYS;
pub use sources::{env_name_to_key, set_path};
pub use types::*;
pub use validate::parse_ip_or_cidr;

use serde_json::{json, Value};

/// Inputs to [`load`]: flags and a snapshot of the environment (injectable for tests).
/// `Debug` names the environment's variables but never prints their values.
#[derive(Clone, Default)]
pub struct LoadOptions {
    pub config_path: Option<PathBuf>,
    /// clawgate's own settings file (`--clawgate-config`).
    pub clawgate_config_path: Option<PathBuf>,
    /// `--upstream URL|auto`.
    pub upstream: Option<String>,
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

/// clawgate's own settings file, `clawgate.json` (JSON5, the same shape as
/// `openclaw.json`): `--clawgate-config` > `CLAWGATE_CONFIG` (both must
/// exist) > `clawgate.json` next to the OpenClaw config file >
/// `~/.openclaw/clawgate.json` (when it exists).
pub fn resolve_own_path(opts: &LoadOptions, main: Option<&Path>) -> Option<(PathBuf, bool)> {
    if let Some(p) = &opts.clawgate_config_path {
        return Some((p.clone(), true));
    }
    if let Some(p) = opts.env.get("CLAWGATE_CONFIG").filter(|s| !s.is_empty()) {
        return Some((PathBuf::from(p), true));
    }
    let candidates = [
        main.and_then(Path::parent).map(|d| d.join("clawgate.json")),
        home_dir(&opts.env).map(|h| h.join(".openclaw").join("clawgate.json")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .map(|p| (p, false))
}

/// The content hash of both files together (the `openclaw.json` hash alone
/// when there is no clawgate file, so that nothing changes for setups
/// without one).
pub fn combined_hash(main: Option<&FileLayer>, own: Option<&FileLayer>) -> Option<String> {
    match (main, own) {
        (m, None) => m.map(|f| f.hash.clone()),
        (m, Some(o)) => Some(sources::hash(
            format!("{}+{}", m.map_or("", |f| f.hash.as_str()), o.hash).as_bytes(),
        )),
    }
}

/// The config file as last read: path, text, parsed tree and content hash.
/// `Debug` shows the path and hash only (the text holds secrets).
#[derive(Clone)]
pub struct FileLayer {
    pub path: PathBuf,
    pub text: String,
    pub value: Value,
    /// SHA-256 (hex) of the raw bytes.
    pub hash: String,
}

/// What a [`RuntimeConfig`] was built from. The environment and the flags are
/// fixed for the life of the process; the file layer and the overrides change.
/// `Debug` redacts values, as its parts do.
#[derive(Clone, Default)]
pub struct Sources {
    pub opts: LoadOptions,
    /// The config file clawgate reads (watched for changes), when there is one.
    pub file_path: Option<PathBuf>,
    /// The last good file layer.
    pub file: Option<FileLayer>,
    /// clawgate's own settings file (watched too), when there is one.
    pub own_path: Option<PathBuf>,
    /// Its last good layer.
    pub own: Option<FileLayer>,
    /// The runtime overrides in force.
    pub overrides: Vec<crate::store::OverrideRecord>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("config_path", &self.config_path)
            .field("clawgate_config_path", &self.clawgate_config_path)
            .field("upstream", &self.upstream)
            .field("state_dir", &self.state_dir)
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("admin_port", &self.admin_port)
            .field(
                "env",
                &format_args!("<{} variables, values redacted>", self.env.len()),
            )
            .field("generate_token", &self.generate_token)
            .finish()
    }
}

impl std::fmt::Debug for FileLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLayer")
            .field("path", &self.path)
            .field(
                "text",
                &format_args!("<{} bytes redacted>", self.text.len()),
            )
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.overrides.iter().map(|o| o.key.as_str()).collect();
        f.debug_struct("Sources")
            .field("opts", &self.opts)
            .field("file_path", &self.file_path)
            .field("file", &self.file)
            .field("own_path", &self.own_path)
            .field("own", &self.own)
            .field("override_keys", &keys)
            .finish()
    }
}

/// Parses config text as if it were the file at `path`.
pub fn sources_parse(path: &Path, text: &str) -> Result<Value, ConfigError> {
    sources::parse_text(path, text)
}

/// SHA-256 (hex) of config content.
pub fn content_hash(bytes: &[u8]) -> String {
    sources::hash(bytes)
}

/// Reads and parses the config file named by `opts` (none when there is no file).
pub fn read_file_layer(path: Option<&Path>) -> Result<Option<FileLayer>, ConfigError> {
    let Some(path) = path else { return Ok(None) };
    let (value, text, hash) = sources::read_file(path)?;
    Ok(Some(FileLayer {
        path: path.to_path_buf(),
        text,
        value,
        hash,
    }))
}

/// Loads, merges and validates the configuration (file, environment, flags).
pub fn load(opts: &LoadOptions) -> Result<RuntimeConfig, ConfigError> {
    let file_path = resolve_config_path(opts).map(|(p, _)| p);
    let file = read_file_layer(file_path.as_deref())?;
    let own_path = resolve_own_path(opts, file_path.as_deref()).map(|(p, _)| p);
    let own = read_file_layer(own_path.as_deref())?;
    build(Sources {
        opts: opts.clone(),
        file_path,
        file,
        own_path,
        own,
        overrides: vec![],
    })
}

/// The command-line layer as a tree.
fn flags_tree(opts: &LoadOptions) -> Value {
    let mut flags = json!({});
    if let Some(port) = opts.port {
        sources::set_path(&mut flags, "gateway.port", json!(port));
    }
    if let Some(bind) = &opts.bind {
        sources::set_path(&mut flags, "gateway.bind", json!(bind));
    }
    if let Some(p) = opts.admin_port {
        sources::set_path(&mut flags, "gateway.admin.port", json!(p));
    }
    if let Some(u) = &opts.upstream {
        sources::set_path(&mut flags, "upstream.url", json!(u));
    }
    flags
}

/// `openclaw.json` as clawgate layers it: in front-door mode its listener
/// (`gateway.port`, `bind`, `customBindHost`) and its proxy trust
/// (`trustedProxies`, `allowRealIpFallback`) are the upstream's, not
/// clawgate's.
pub fn main_tree(src: &Sources, env: &Value, overrides: &Value) -> Option<Value> {
    let f = src.file.as_ref()?;
    let flags = flags_tree(&src.opts);
    let layers = [
        Some(&flags),
        Some(overrides),
        Some(env),
        src.own.as_ref().map(|o| &o.value),
        Some(&f.value),
    ];
    let front_door = layers
        .into_iter()
        .flatten()
        .find_map(|l| lookup(l, "upstream.url"))
        .is_some_and(|u| !u.is_null());
    let mut tree = f.value.clone();
    if front_door {
        if let Some(g) = tree.get_mut("gateway").and_then(Value::as_object_mut) {
            for k in settings::UPSTREAM_OWNED {
                g.remove(*k);
            }
        }
    }
    Some(tree)
}

/// Keys clawgate added that sit in `openclaw.json`, which OpenClaw refuses
/// to start on: still read, with a warning that says where they belong.
fn misplaced_keys(file: Option<&FileLayer>) -> Vec<String> {
    let Some(f) = file else { return vec![] };
    settings::SETTINGS
        .iter()
        .filter(|s| s.owner == settings::Owner::Clawgate && lookup(&f.value, s.key).is_some())
        .map(|s| {
            format!(
                "{key}: a clawgate setting in {file}, where OpenClaw 2026.9 refuses to start on it \
                 (Unrecognized key); move it to clawgate.json (same path, e.g. {{ {example} }}); \
                 clawgate still reads it here",
                key = s.key,
                file = f.path.display(),
                example = settings::nested_example(s.key),
            )
        })
        .collect()
}

/// Builds and validates a snapshot from its sources: defaults <
/// `openclaw.json` < `clawgate.json` < environment < runtime overrides <
/// flags.
pub fn build(src: Sources) -> Result<RuntimeConfig, ConfigError> {
    let state_dir = resolve_state_dir(&src.opts);
    let mut warnings = Vec::new();
    let (env_value, _) = sources::env_tree(&src.opts.env, &mut warnings);
    let override_value = overrides::layer(&src.overrides);
    let main = main_tree(&src, &env_value, &override_value);
    warnings.extend(misplaced_keys(src.file.as_ref()));
    let fig = sources::figment(
        src.file
            .as_ref()
            .map(|f| f.path.as_path())
            .zip(main.as_ref()),
        src.own.as_ref(),
        &env_value,
        &override_value,
        &flags_tree(&src.opts),
    );
    let merged = sources::extract(&fig)?;
    let own_ctx = src
        .own
        .as_ref()
        .map(|o| (o.path.clone(), o.text.as_str(), &o.value));
    let ctx = validate::Context {
        file: src.file.as_ref().map(|f| f.path.clone()),
        file_text: src.file.as_ref().map(|f| f.text.as_str()),
        own: own_ctx.clone(),
        openclaw: src.file.as_ref().map(|f| &f.value),
        env: &env_value,
        overrides: &override_value,
        state_dir: &state_dir,
        env_vars: &src.opts.env,
        generate_token: src.opts.generate_token,
    };
    let empty = json!({});
    let flags = flags_tree(&src.opts);
    // A bad value that a higher layer replaces is still an error: it would
    // apply as soon as the higher layer lets go of the key.
    let mut shadowed = vec![];
    if let (Some(f), Some(tree)) = (&src.file, &main) {
        let c = validate::Context {
            file: Some(f.path.clone()),
            file_text: Some(f.text.as_str()),
            own: None,
            openclaw: Some(&f.value),
            env: &empty,
            overrides: &empty,
            state_dir: &state_dir,
            env_vars: &src.opts.env,
            generate_token: false,
        };
        let own_value = src.own.as_ref().map_or(&empty, |o| &o.value);
        shadowed.extend(shadowed_issues(
            tree,
            &[own_value, &env_value, &override_value, &flags],
            &c,
        ));
    }
    if let Some(o) = &src.own {
        let c = validate::Context {
            file: None,
            file_text: None,
            own: own_ctx.clone(),
            openclaw: None,
            env: &empty,
            overrides: &empty,
            state_dir: &state_dir,
            env_vars: &src.opts.env,
            generate_token: false,
        };
        shadowed.extend(shadowed_issues(
            &o.value,
            &[&env_value, &override_value, &flags],
            &c,
        ));
    }
    let c = validate::Context {
        file: None,
        file_text: None,
        own: None,
        openclaw: None,
        env: &env_value,
        overrides: &empty,
        state_dir: &state_dir,
        env_vars: &src.opts.env,
        generate_token: false,
    };
    shadowed.extend(shadowed_issues(&env_value, &[&override_value, &flags], &c));
    let c = validate::Context {
        file: None,
        file_text: None,
        own: None,
        openclaw: None,
        env: &empty,
        overrides: &override_value,
        state_dir: &state_dir,
        env_vars: &src.opts.env,
        generate_token: false,
    };
    shadowed.extend(shadowed_issues(&override_value, &[&flags], &c));
    let (gateway, log_level) = match (
        validate::validate(&merged, &ctx, &mut warnings),
        validate::log_level(&merged, &ctx),
    ) {
        (Ok(g), Ok(l)) if shadowed.is_empty() => (g, l),
        (g, l) => {
            let mut issues = g.err().map(|e| e.issues).unwrap_or_default();
            issues.extend(l.err().map(|e| e.issues).unwrap_or_default());
            for i in shadowed {
                if !issues.iter().any(|x| x.path == i.path) {
                    issues.push(i);
                }
            }
            return Err(ConfigError { issues });
        }
    };
    let mut cfg = RuntimeConfig {
        gateway,
        file: src.file.as_ref().map(|f| f.path.clone()),
        own_file: src.own.as_ref().map(|f| f.path.clone()),
        source_hash: combined_hash(src.file.as_ref(), src.own.as_ref()),
        state_dir,
        warnings,
        log_level,
        sources: std::sync::Arc::new(Sources::default()),
    };
    let ignored_sections: Vec<&str> = merged
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !["gateway", "$schema", "logging", "upstream"].contains(&k.as_str()))
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    if !ignored_sections.is_empty() {
        tracing::info!(sections = %ignored_sections.join(", "), "config sections outside `gateway` are accepted and not used by clawgate");
    }
    let extra = overrides::apply_secrets(&mut cfg, &src.overrides, crate::util::now_ms());
    cfg.warnings.extend(extra);
    cfg.sources = std::sync::Arc::new(src);
    Ok(cfg)
}

fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(root, |cur, seg| cur.get(seg))
}

/// Value errors in one layer at keys that a higher layer also sets.
fn shadowed_issues(layer: &Value, higher: &[&Value], ctx: &validate::Context<'_>) -> Vec<Issue> {
    if layer.as_object().is_none_or(|m| m.is_empty()) {
        return vec![];
    }
    let mut ignored = vec![];
    let mut issues = vec![];
    if let Err(e) = validate::validate(layer, ctx, &mut ignored) {
        issues.extend(e.issues);
    }
    if let Err(e) = validate::log_level(layer, ctx) {
        issues.extend(e.issues);
    }
    issues
        .into_iter()
        .filter(|i| i.code == ConfigCode::InvalidValue || i.code == ConfigCode::Syntax)
        .filter(|i| {
            let base = i
                .path
                .split('.')
                .map(|seg| seg.split('[').next().unwrap_or(seg))
                .collect::<Vec<_>>()
                .join(".");
            !base.is_empty()
                && lookup(layer, &base).is_some()
                && higher.iter().any(|h| lookup(h, &base).is_some())
        })
        .map(|mut i| {
            i.message
                .push_str(" (a higher-precedence source currently replaces this value)");
            i
        })
        .collect()
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

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_secret_values() {
        let mut opts = LoadOptions::default();
        opts.env.insert(
            "OPENCLAW_GATEWAY_TOKEN".into(),
            "env-secret-0123456789".into(),
        );
        let src = Sources {
            opts,
            file_path: None,
            file: Some(FileLayer {
                path: "/x/openclaw.json".into(),
                text: "{ gateway: { auth: { token: 'file-secret-0123456789' } } }".into(),
                value: json!({"gateway": {"auth": {"token": "file-secret-0123456789"}}}),
                hash: "abc".into(),
            }),
            own_path: None,
            own: None,
            overrides: vec![],
        };
        let d = format!("{src:?}");
        assert!(
            !d.contains("env-secret") && !d.contains("file-secret"),
            "{d}"
        );
        assert!(
            d.contains("1 variables, values redacted") && d.contains("/x/openclaw.json"),
            "{d}"
        );
    }
}
