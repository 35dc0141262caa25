//! Configuration sources: the JSON5 file, the environment and command-line flags,
//! layered with figment (defaults < file < environment < flags).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::{json, Value};

use super::error::{ConfigCode, ConfigError, Issue};

/// A figment provider holding an already-parsed JSON tree, with a name and source
/// for provenance.
pub struct JsonTree {
    name: &'static str,
    source: Option<PathBuf>,
    value: Value,
}

impl Provider for JsonTree {
    fn metadata(&self) -> Metadata {
        let md = Metadata::named(self.name);
        match &self.source {
            Some(p) => md.source(figment::Source::File(p.clone())),
            None => md,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::globals(&self.value).data()
    }
}

use super::settings::KNOWN_KEYS;
use super::settings::{self, Kind};

/// `CLAWGATE_*` variables that are not config keys (read elsewhere).
const CLAWGATE_NON_KEYS: &[&str] = &[
    "CLAWGATE_STATE_DIR",
    "CLAWGATE_CONFIG",
    "CLAWGATE_LOG",
    "CLAWGATE_LOG_FORMAT",
];

fn normalize_segment(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// Maps `CLAWGATE_GATEWAY__TRUSTED_PROXIES` to `gateway.trustedProxies`.
pub fn env_name_to_key(name: &str) -> Option<&'static str> {
    let rest = name.strip_prefix("CLAWGATE_")?;
    let want: Vec<String> = rest.split("__").map(normalize_segment).collect();
    KNOWN_KEYS.iter().copied().find(|key| {
        let segs: Vec<String> = key.split('.').map(normalize_segment).collect();
        segs == want
    })
}

/// Sets `a.b.c` in a tree, creating objects on the way.
pub fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut cur = root;
    let segs: Vec<&str> = path.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let obj = cur.as_object_mut().expect("object");
        if i == segs.len() - 1 {
            obj.insert((*seg).to_string(), value);
            return;
        }
        cur = obj.entry((*seg).to_string()).or_insert_with(|| json!({}));
    }
}

fn env_value(key: &str, raw: &str) -> Value {
    if settings::find(key).is_some_and(|s| s.kind == Kind::List) {
        let t = raw.trim();
        if t.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Value>(t) {
                return v;
            }
        }
        return Value::Array(
            t.split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        );
    }
    // Scalars stay strings; the validator accepts "18789" or "true" where a number
    // or boolean is expected, and a secret stays a string even when it looks numeric.
    Value::String(raw.to_string())
}

/// Builds the environment layer and reports unknown `CLAWGATE_*` variables.
/// Also returns which variable set which key.
pub fn env_tree(
    env: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> (Value, Vec<(String, &'static str)>) {
    let mut tree = json!({});
    let mut used = Vec::new();
    for (name, key) in settings::env_aliases() {
        if let Some(v) = env.get(name) {
            set_path(&mut tree, key, env_value(key, v));
            used.push((name.to_string(), key));
        }
    }
    for (name, raw) in env {
        if !name.starts_with("CLAWGATE_")
            || CLAWGATE_NON_KEYS.contains(&name.as_str())
            || settings::env_aliases().any(|(n, _)| n == name)
        {
            continue;
        }
        match env_name_to_key(name) {
            Some(key) => {
                set_path(&mut tree, key, env_value(key, raw));
                used.push((name.clone(), key));
            }
            None => warnings.push(format!(
                "environment variable {name} is not a clawgate setting and is ignored \
                 (nested keys are written like CLAWGATE_GATEWAY__TRUSTED_PROXIES)"
            )),
        }
    }
    for legacy in ["CLAWDBOT_GATEWAY_TOKEN", "MOLTBOT_GATEWAY_TOKEN"] {
        if env.contains_key(legacy) {
            warnings.push(format!(
                "{legacy} is a retired name and is ignored; use OPENCLAW_GATEWAY_TOKEN"
            ));
        }
    }
    (tree, used)
}

/// SHA-256 (hex) of a file's bytes.
pub fn hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Reads and parses a JSON5 config file: (tree, text, content hash). Errors
/// name the file, line and column.
pub fn read_file(path: &Path) -> Result<(Value, String, String), ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::single(unreadable(path, &e)))?;
    let digest = hash(&bytes);
    let text = String::from_utf8(bytes).map_err(|e| {
        let mut issue = Issue::new(
            ConfigCode::Syntax,
            "",
            format!(
                "the file is not valid UTF-8 (invalid byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        );
        issue.file = Some(path.to_path_buf());
        ConfigError::single(issue)
    })?;
    let value = parse_text(path, &text)?;
    Ok((value, text, digest))
}

/// Parses JSON5 config text; errors name `path`, the line and the column.
pub fn parse_text(path: &Path, text: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    if let Err(at) = super::depth::check(text, super::depth::MAX_DEPTH) {
        let mut issue = Issue::new(
            ConfigCode::Syntax,
            "",
            format!(
                "invalid JSON5: nested deeper than {} levels",
                super::depth::MAX_DEPTH
            ),
        );
        issue.file = Some(path.to_path_buf());
        issue.line = Some(at.line);
        issue.column = Some(at.column);
        return Err(ConfigError::single(issue));
    }
    match json5::from_str::<Value>(text) {
        Ok(v) => {
            if !v.is_object() {
                let mut issue = Issue::new(
                    ConfigCode::InvalidValue,
                    "",
                    "the top level must be an object, e.g. { gateway: { port: 18789 } }",
                );
                issue.file = Some(path.to_path_buf());
                return Err(ConfigError::single(issue));
            }
            Ok(v)
        }
        Err(e) => {
            let mut issue = Issue::new(
                ConfigCode::Syntax,
                "",
                format!("invalid JSON5: {}", strip_position(&e.to_string())),
            );
            issue.file = Some(path.to_path_buf());
            if let Some(pos) = e.position() {
                issue.line = Some(pos.line + 1);
                issue.column = Some(pos.column + 1);
            }
            Err(ConfigError::single(issue))
        }
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// An "unreadable file" issue with owner, mode and the process uid.
pub fn unreadable(path: &Path, e: &std::io::Error) -> Issue {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::geteuid().as_raw();
    let detail = match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => format!("{} is a directory, not a file", path.display()),
        Ok(md) => format!(
            "{e} (file owner uid {}, mode {:04o}; clawgate runs as uid {uid}). \
             Fix: chmod 600 {} && chown {uid} {}",
            md.uid(),
            md.mode() & 0o7777,
            path.display(),
            path.display()
        ),
        Err(_) => format!("{e}; check the path (clawgate runs as uid {uid})"),
    };
    let mut issue = Issue::new(
        ConfigCode::Unreadable,
        "",
        format!("cannot read the config file: {detail}"),
    );
    issue.file = Some(path.to_path_buf());
    issue
}

/// Provider names, which provenance maps back to sources.
pub const FILE: &str = "JSON5 file";
pub const OWN_FILE: &str = "clawgate file";
pub const ENV: &str = "environment";
pub const OVERRIDE: &str = "runtime override";
pub const FLAGS: &str = "command line";

/// Layers the sources with figment: `openclaw.json` < `clawgate.json` <
/// environment < overrides < flags. `file` is the `openclaw.json` tree as
/// clawgate reads it (in front-door mode without the upstream's listener).
pub fn figment(
    file: Option<(&Path, &Value)>,
    own: Option<&super::FileLayer>,
    env: &Value,
    overrides: &Value,
    flags: &Value,
) -> Figment {
    let mut fig = Figment::new();
    if let Some((path, value)) = file {
        fig = fig.merge(JsonTree {
            name: FILE,
            source: Some(path.to_path_buf()),
            value: value.clone(),
        });
    }
    if let Some(f) = own {
        fig = fig.merge(JsonTree {
            name: OWN_FILE,
            source: Some(f.path.clone()),
            value: f.value.clone(),
        });
    }
    fig.merge(JsonTree {
        name: ENV,
        source: None,
        value: env.clone(),
    })
    .merge(JsonTree {
        name: OVERRIDE,
        source: None,
        value: overrides.clone(),
    })
    .merge(JsonTree {
        name: FLAGS,
        source: None,
        value: flags.clone(),
    })
}

/// The merged tree.
pub fn extract(fig: &Figment) -> Result<Value, ConfigError> {
    fig.extract::<Value>().map_err(|e| {
        ConfigError::single(Issue::new(
            ConfigCode::InvalidValue,
            "",
            format!("could not merge configuration sources: {e}"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_read_elsewhere_are_not_called_unknown() {
        let mut env = BTreeMap::new();
        for n in CLAWGATE_NON_KEYS {
            env.insert(n.to_string(), "/x".to_string());
        }
        env.insert("CLAWGATE_NOPE".to_string(), "1".to_string());
        let mut warnings = vec![];
        env_tree(&env, &mut warnings);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("CLAWGATE_NOPE"), "{warnings:?}");
    }

    #[test]
    fn env_names_map_to_camel_case_keys() {
        assert_eq!(
            env_name_to_key("CLAWGATE_GATEWAY__TRUSTED_PROXIES"),
            Some("gateway.trustedProxies")
        );
        assert_eq!(
            env_name_to_key("CLAWGATE_GATEWAY__TRUSTEDPROXIES"),
            Some("gateway.trustedProxies")
        );
        assert_eq!(
            env_name_to_key("CLAWGATE_GATEWAY__NODES__PAIRING__AUTO_APPROVE_LOCAL"),
            Some("gateway.nodes.pairing.autoApproveLocal")
        );
        assert_eq!(env_name_to_key("CLAWGATE_GATEWAY__NOPE"), None);
    }

    #[test]
    fn env_lists_and_unknown_names() {
        let mut env = BTreeMap::new();
        env.insert(
            "CLAWGATE_GATEWAY__TRUSTED_PROXIES".to_string(),
            "10.0.0.0/8, 127.0.0.1".to_string(),
        );
        env.insert("OPENCLAW_GATEWAY_TOKEN".to_string(), "123456".to_string());
        env.insert("CLAWGATE_BOGUS".to_string(), "x".to_string());
        let mut warnings = vec![];
        let (tree, used) = env_tree(&env, &mut warnings);
        assert!(used.contains(&("OPENCLAW_GATEWAY_TOKEN".to_string(), "gateway.auth.token")));
        assert_eq!(
            tree["gateway"]["trustedProxies"],
            json!(["10.0.0.0/8", "127.0.0.1"])
        );
        assert_eq!(tree["gateway"]["auth"]["token"], json!("123456"));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("CLAWGATE_BOGUS"));
    }

    #[test]
    fn json5_syntax_error_has_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("openclaw.json");
        std::fs::write(&p, "{\n  gateway: {\n    port: 18789,,\n  }\n}\n").unwrap();
        let err = read_file(&p).unwrap_err();
        let issue = &err.issues[0];
        assert_eq!(issue.code, ConfigCode::Syntax);
        assert_eq!(issue.line, Some(3));
        assert!(issue.column.is_some());
        assert!(err.to_string().contains("openclaw.json:3:"), "{err}");
    }
}
