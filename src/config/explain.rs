//! Where each effective value came from (provenance, from figment's metadata),
//! the config ETag, and what changed between two snapshots. Secrets are never
//! shown: they appear as `"<redacted>"`.

use serde_json::{json, Value};

use super::locate::Positions;
use super::overrides;
use super::settings::KNOWN_KEYS;
use super::settings::{flag_for, is_secret};
use super::sources::{self, set_path};
use super::types::{GatewayConfig, RuntimeConfig, SecretSource};

pub const REDACTED: &str = "<redacted>";

fn redacted<T>(s: &Option<T>) -> Value {
    match s {
        Some(_) => json!(REDACTED),
        None => Value::Null,
    }
}

fn nets(n: &[ipnet::IpNet]) -> Value {
    json!(n
        .iter()
        .map(|n| match n {
            ipnet::IpNet::V4(v) if v.prefix_len() == 32 => v.addr().to_string(),
            ipnet::IpNet::V6(v) if v.prefix_len() == 128 => v.addr().to_string(),
            n => n.to_string(),
        })
        .collect::<Vec<_>>())
}

/// The effective value of a known key (secrets redacted).
/// A `gateway.auth.trustedProxy` value (null when the section is not set).
fn tp(g: &GatewayConfig, f: impl Fn(&super::TrustedProxyAuth) -> Value) -> Value {
    g.auth.trusted_proxy.as_ref().map_or(Value::Null, f)
}

pub fn value_of(cfg: &RuntimeConfig, key: &str) -> Value {
    let g: &GatewayConfig = &cfg.gateway;
    match key {
        "gateway.port" => json!(g.port),
        "gateway.bind" => json!(g.bind_spec),
        "gateway.customBindHost" if g.bind_spec == "custom" => json!(g.bind.to_string()),
        "gateway.customBindHost" => Value::Null,
        "gateway.auth.mode" => json!(g.auth.mode.as_str()),
        "gateway.auth.token" => redacted(&g.auth.token),
        "gateway.auth.password" => redacted(&g.auth.password),
        "gateway.auth.rateLimit.maxAttempts" => json!(g.auth.rate_limit.max_attempts),
        "gateway.auth.rateLimit.windowMs" => json!(g.auth.rate_limit.window_ms),
        "gateway.auth.rateLimit.lockoutMs" => json!(g.auth.rate_limit.lockout_ms),
        "gateway.auth.rateLimit.exemptLoopback" => json!(g.auth.rate_limit.exempt_loopback),
        "gateway.auth.trustedProxy.userHeader" => tp(g, |t| json!(t.user_header)),
        "gateway.auth.trustedProxy.requiredHeaders" => tp(g, |t| json!(t.required_headers)),
        "gateway.auth.trustedProxy.allowUsers" => tp(g, |t| json!(t.allow_users)),
        "gateway.auth.trustedProxy.allowLoopback" => tp(g, |t| json!(t.allow_loopback)),
        "gateway.auth.trustedProxy.deviceAutoApprove.enabled" => tp(g, |t| json!(t.auto_approve)),
        "gateway.auth.trustedProxy.deviceAutoApprove.scopes" => {
            tp(g, |t| json!(t.auto_approve_scopes))
        }
        "gateway.auth.identityScopes" => Value::Object(
            g.auth
                .identity_scopes
                .iter()
                .map(|(u, s)| (u.clone(), json!(s)))
                .collect(),
        ),
        "gateway.trustedProxies" => nets(&g.trusted_proxies),
        "gateway.allowRealIpFallback" => json!(g.allow_real_ip_fallback),
        "gateway.controlUi.allowInsecureAuth" => json!(g.control_ui.allow_insecure_auth),
        "gateway.controlUi.dangerouslyDisableDeviceAuth" => {
            json!(g.control_ui.dangerously_disable_device_auth)
        }
        "gateway.controlUi.allowedOrigins" => json!(g.control_ui.allowed_origins),
        "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback" => {
            json!(g.control_ui.dangerously_allow_host_header_origin_fallback)
        }
        "gateway.nodes.pairing.autoApproveLocal" => json!(g.node_pairing.auto_approve_local),
        "gateway.controlUi.enabled" => json!(g.control_ui.enabled),
        "gateway.controlUi.basePath" => json!(g.control_ui.base_path),
        "gateway.controlUi.root" => {
            json!(g.control_ui.root.as_ref().map(|p| p.display().to_string()))
        }
        "gateway.nodes.pairing.autoApproveCidrs" => nets(&g.node_pairing.auto_approve_cidrs),
        "gateway.reload.mode" => json!(match g.reload_mode {
            super::ReloadMode::Hybrid => "hybrid",
            super::ReloadMode::Off => "off",
        }),
        "gateway.reload.pollIntervalMs" => json!(g.reload_poll_ms),
        "gateway.admin.bind" => json!(g.admin.bind.to_string()),
        "gateway.admin.port" => json!(g.admin.port),
        "gateway.admin.token" => redacted(&g.admin.token),
        "gateway.admin.allowRemote" => json!(g.admin.allow_remote),
        "gateway.pairing.pendingTtlMs" => json!(g.pairing.pending_ttl_ms),
        "gateway.pairing.maxPendingPerClient" => json!(g.pairing.max_pending_per_client),
        "gateway.pairing.maxPendingTotal" => json!(g.pairing.max_pending_total),
        "gateway.limits.handshakeTimeoutMs" => json!(g.limits.handshake_timeout_ms),
        "gateway.limits.maxPreauthPayload" => json!(g.limits.max_preauth_payload),
        "gateway.limits.maxPayload" => json!(g.limits.max_payload),
        "gateway.limits.maxPreauthPerIp" => json!(g.limits.max_preauth_per_ip),
        "gateway.limits.tickIntervalMs" => json!(g.limits.tick_interval_ms),
        "gateway.limits.pingIntervalMs" => json!(g.limits.ping_interval_ms),
        "gateway.limits.workers" => json!(g.limits.workers),
        "gateway.limits.maxHttpBodyBytes" => json!(g.limits.max_http_body),
        "logging.level" => json!(cfg.log_level),
        "upstream.url" => json!(g.upstream.as_ref().map(|u| &u.url)),
        "upstream.connectTimeoutMs" => json!(g.upstream.as_ref().map(|u| u.connect_timeout_ms)),
        "upstream.token" => match g.upstream.as_ref().map(|u| &u.secret) {
            Some(super::UpstreamSecret::Token(_)) => json!(REDACTED),
            _ => Value::Null,
        },
        "upstream.password" => match g.upstream.as_ref().map(|u| &u.secret) {
            Some(super::UpstreamSecret::Password(_)) => json!(REDACTED),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A value that changes whenever the key's effective value changes; for
/// secrets, their digest (never shown).
fn fingerprint(cfg: &RuntimeConfig, key: &str) -> Value {
    let a = &cfg.gateway.auth;
    match key {
        "gateway.auth.token" => json!([
            a.token.as_ref().map(|t| hex::encode(t.digest())),
            a.previous_token.map(|(d, until)| (hex::encode(d), until))
        ]),
        "gateway.auth.password" => json!(a.password.as_ref().map(|t| hex::encode(t.digest()))),
        "upstream.token" | "upstream.password" => {
            json!(cfg.gateway.upstream.as_ref().map(|u| match &u.secret {
                super::UpstreamSecret::Token(t) => format!("token:{}", hex::encode(t.digest())),
                super::UpstreamSecret::Password(p) => {
                    format!("password:{}", hex::encode(p.digest()))
                }
                super::UpstreamSecret::None => "none".into(),
            }))
        }
        "gateway.admin.token" => {
            json!(cfg
                .gateway
                .admin
                .token
                .as_ref()
                .map(|t| hex::encode(t.digest())))
        }
        _ => value_of(cfg, key),
    }
}

/// The effective configuration as a nested tree (secrets redacted).
pub fn tree(cfg: &RuntimeConfig) -> Value {
    let mut t = json!({});
    for key in KNOWN_KEYS {
        set_path(&mut t, key, value_of(cfg, key));
    }
    t
}

/// The ETag of the effective configuration.
pub fn etag(cfg: &RuntimeConfig) -> String {
    let all: Vec<Value> = KNOWN_KEYS.iter().map(|k| fingerprint(cfg, k)).collect();
    let h = sources::hash(json!(all).to_string().as_bytes());
    format!("\"{}\"", &h[..16])
}

/// Keys whose effective value differs between two snapshots.
pub fn changed_keys(old: &RuntimeConfig, new: &RuntimeConfig) -> Vec<&'static str> {
    KNOWN_KEYS
        .iter()
        .copied()
        .filter(|k| fingerprint(old, k) != fingerprint(new, k))
        .collect()
}

fn lookup<'v>(root: &'v Value, key: &str) -> Option<&'v Value> {
    key.split('.').try_fold(root, |cur, seg| cur.get(seg))
}

/// Keys whose value in the file differs between two file trees.
pub fn file_changed_keys(old: Option<&Value>, new: Option<&Value>) -> Vec<&'static str> {
    KNOWN_KEYS
        .iter()
        .copied()
        .filter(|k| old.and_then(|o| lookup(o, k)) != new.and_then(|n| lookup(n, k)))
        .collect()
}

/// How to give the file control of `key` back from `source` (the layer that
/// shadows it).
pub fn release_hint(key: &str, source: &Value) -> String {
    match source["kind"].as_str() {
        Some("override") => format!("DELETE /admin/v1/config/overrides/{key}"),
        Some("env") => format!(
            "unset the environment variable {}",
            source["variable"].as_str().unwrap_or("")
        ),
        Some("flag") => format!(
            "drop the {} flag",
            source["flag"].as_str().unwrap_or("command-line")
        ),
        Some("file") => format!(
            "remove {key} from {}",
            source["file"].as_str().unwrap_or("clawgate.json")
        ),
        _ => String::new(),
    }
}

/// Provenance of every key, computed from the snapshot's sources.
pub struct Provenance<'a> {
    cfg: &'a RuntimeConfig,
    fig: figment::Figment,
    env_used: Vec<(String, &'static str)>,
    /// Key positions in the config file.
    positions: Positions,
    /// Key positions in clawgate's own file.
    own_positions: Positions,
}

impl<'a> Provenance<'a> {
    pub fn new(cfg: &'a RuntimeConfig) -> Self {
        let src = &cfg.sources;
        let mut ignored = vec![];
        let (env, env_used) = sources::env_tree(&src.opts.env, &mut ignored);
        let layer = overrides::layer(&src.overrides);
        let main = super::main_tree(src, &env, &layer);
        let fig = sources::figment(
            src.file
                .as_ref()
                .map(|f| f.path.as_path())
                .zip(main.as_ref()),
            src.own.as_ref(),
            &env,
            &layer,
            &super::flags_tree(&src.opts),
        );
        let positions = src
            .file
            .as_ref()
            .map(|f| Positions::of(&f.text))
            .unwrap_or_default();
        let own_positions = src
            .own
            .as_ref()
            .map(|f| Positions::of(&f.text))
            .unwrap_or_default();
        Provenance {
            cfg,
            fig,
            env_used,
            positions,
            own_positions,
        }
    }

    fn override_source(&self, key: &str) -> Value {
        let rec = self.cfg.sources.overrides.iter().find(|o| o.key == key);
        json!({
            "kind": "override",
            "setBy": rec.map(|r| r.set_by.clone()),
            "setAtMs": rec.map(|r| r.set_at_ms),
            "release": format!("DELETE /admin/v1/config/overrides/{key}"),
        })
    }

    /// Where the effective value of `key` came from.
    pub fn source(&self, key: &str) -> Value {
        if key == "gateway.auth.token" {
            match &self.cfg.gateway.auth.token_source {
                SecretSource::Generated(p) => {
                    return json!({"kind": "generated", "file": p.display().to_string()})
                }
                SecretSource::Override => return self.override_source(key),
                _ => {}
            }
        }
        let Some(md) = self.fig.find_metadata(key) else {
            return json!({"kind": "default"});
        };
        match md.name.as_ref() {
            sources::FILE => {
                let file = self.cfg.sources.file.as_ref();
                let pos = self.positions.get(key);
                json!({
                    "kind": "file",
                    "file": file.map(|f| f.path.display().to_string()),
                    "line": pos.map(|p| p.0),
                    "column": pos.map(|p| p.1),
                })
            }
            sources::OWN_FILE => {
                let file = self.cfg.sources.own.as_ref();
                let pos = self.own_positions.get(key);
                json!({
                    "kind": "file",
                    "file": file.map(|f| f.path.display().to_string()),
                    "line": pos.map(|p| p.0),
                    "column": pos.map(|p| p.1),
                })
            }
            sources::ENV => json!({
                "kind": "env",
                "variable": self.env_used.iter().rev().find(|(_, k)| *k == key).map(|(n, _)| n.clone()),
            }),
            sources::OVERRIDE => self.override_source(key),
            sources::FLAGS => json!({"kind": "flag", "flag": flag_for(key)}),
            other => json!({"kind": other}),
        }
    }

    /// Every key with its effective value and source.
    pub fn entries(&self) -> Vec<Value> {
        KNOWN_KEYS
            .iter()
            .map(|k| json!({"key": k, "value": value_of(self.cfg, k), "source": self.source(k)}))
            .collect()
    }

    /// Keys written in a file (`openclaw.json` or `clawgate.json`) whose
    /// effective value comes from a higher layer.
    pub fn shadowed(&self) -> Vec<Value> {
        let src = &self.cfg.sources;
        let files = [
            src.file.as_ref().map(|f| (f, &self.positions)),
            src.own.as_ref().map(|f| (f, &self.own_positions)),
        ];
        let mut out = vec![];
        for (file, positions) in files.into_iter().flatten() {
            let path = file.path.display().to_string();
            for k in KNOWN_KEYS {
                let Some(in_file) = lookup(&file.value, k) else {
                    continue;
                };
                let source = self.source(k);
                if source["kind"] == "file" && source["file"] == path.as_str() {
                    continue;
                }
                let file_value = if is_secret(k) {
                    json!(REDACTED)
                } else {
                    in_file.clone()
                };
                let how = release_hint(k, &source);
                let pos = positions.get(k);
                out.push(json!({
                    "key": k,
                    "file": path,
                    "fileValue": file_value,
                    "fileLine": pos.map(|p| p.0),
                    "effectiveValue": value_of(self.cfg, k),
                    "source": source,
                    "release": how,
                }));
            }
        }
        out
    }
}

/// `GET /admin/v1/config?explain=true` (and `clawgate config show --explain`).
pub fn explain(cfg: &RuntimeConfig) -> Value {
    let p = Provenance::new(cfg);
    json!({
        "file": cfg.file.as_ref().map(|f| f.display().to_string()),
        "clawgateFile": cfg.own_file.as_ref().map(|f| f.display().to_string()),
        "mode": cfg.mode().as_str(),
        "sourceHash": cfg.source_hash,
        "keys": p.entries(),
        "shadowed": p.shadowed(),
        "warnings": cfg.warnings,
    })
}
