//! Runtime overrides written by the admin API (stored in redb), applied on top
//! of the file and environment.

use serde_json::{json, Value};

use super::settings::KNOWN_KEYS;
use super::sources::set_path;
use super::types::{RuntimeConfig, Secret, SecretSource};
use crate::store::OverrideRecord;

pub const TRUSTED_PROXIES: &str = "gateway.trustedProxies";
pub const SHARED_TOKEN: &str = "gateway.auth.token";

fn digest_from_hex(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

pub use super::settings::not_overridable;

/// The override layer as a tree (the shared-token override, a digest, is
/// applied after validation by [`apply_secrets`]).
pub fn layer(overrides: &[OverrideRecord]) -> Value {
    let mut tree = json!({});
    for o in overrides {
        if o.key == SHARED_TOKEN || !KNOWN_KEYS.contains(&o.key.as_str()) {
            continue;
        }
        set_path(&mut tree, &o.key, o.value.clone());
    }
    tree
}

/// Applies the digest-only shared-token override; returns warnings for
/// entries that no longer apply.
pub fn apply_secrets(
    cfg: &mut RuntimeConfig,
    overrides: &[OverrideRecord],
    now_ms: u64,
) -> Vec<String> {
    let mut warnings = vec![];
    for o in overrides {
        match o.key.as_str() {
            SHARED_TOKEN => {
                let Some(d) = o
                    .value
                    .get("digest")
                    .and_then(|v| v.as_str())
                    .and_then(digest_from_hex)
                else {
                    warnings.push(format!("override {SHARED_TOKEN}: unreadable, ignored"));
                    continue;
                };
                cfg.gateway.auth.token = Some(Secret::from_digest(d));
                cfg.gateway.auth.token_source = SecretSource::Override;
                let prev = o
                    .value
                    .get("previousDigest")
                    .and_then(|v| v.as_str())
                    .and_then(digest_from_hex);
                let until = o
                    .value
                    .get("previousValidUntil")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                cfg.gateway.auth.previous_token = match prev {
                    Some(p) if until > now_ms => Some((p, until)),
                    _ => None,
                };
            }
            k if KNOWN_KEYS.contains(&k) => {}
            other => warnings.push(format!(
                "override {other}: not a key clawgate can override, ignored"
            )),
        }
    }
    warnings
}

/// One change a merge patch asks for: set a key, or (null) hand it back.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchOp {
    Set(&'static str, Value),
    Remove(&'static str),
}

/// Splits a JSON merge patch (RFC 7396) into per-key operations on known
/// leaf keys. Errors name the offending path.
pub fn decompose(patch: &Value) -> Result<Vec<PatchOp>, Vec<(String, String)>> {
    let mut ops = vec![];
    let mut errors = vec![];
    fn walk(prefix: &str, v: &Value, ops: &mut Vec<PatchOp>, errors: &mut Vec<(String, String)>) {
        let Some(m) = v.as_object() else {
            errors.push((
                prefix.to_string(),
                "expected an object of settings, e.g. {\"gateway\": {\"trustedProxies\": [\"172.17.0.0/16\"]}}".into(),
            ));
            return;
        };
        for (k, val) in m {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let Some(known) = KNOWN_KEYS.iter().copied().find(|x| *x == key) {
                if let Some(why) = not_overridable(known) {
                    errors.push((key, why.to_string()));
                } else if val.is_null() {
                    ops.push(PatchOp::Remove(known));
                } else {
                    ops.push(PatchOp::Set(known, val.clone()));
                }
            } else if KNOWN_KEYS.iter().any(|x| x.starts_with(&format!("{key}."))) {
                if val.is_null() {
                    for x in KNOWN_KEYS
                        .iter()
                        .filter(|x| x.starts_with(&format!("{key}.")))
                    {
                        if not_overridable(x).is_none() {
                            ops.push(PatchOp::Remove(x));
                        }
                    }
                } else {
                    walk(&key, val, ops, errors);
                }
            } else {
                let hint = super::validate::closest_known(&key)
                    .map(|c| format!(" (did you mean {c}?)"))
                    .unwrap_or_default();
                errors.push((key, format!("is not a setting clawgate knows{hint}")));
            }
        }
    }
    walk("", patch, &mut ops, &mut errors);
    if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    }
}

/// The trusted-proxy entries as strings (canonical form).
pub fn trusted_proxy_entries(cfg: &RuntimeConfig) -> Vec<String> {
    cfg.gateway
        .trusted_proxies
        .iter()
        .map(|n| match n {
            ipnet::IpNet::V4(v) if v.prefix_len() == 32 => v.addr().to_string(),
            ipnet::IpNet::V6(v) if v.prefix_len() == 128 => v.addr().to_string(),
            n => n.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_splits_into_known_keys() {
        let ops = decompose(&json!({
            "gateway": {"trustedProxies": ["10.0.0.0/8"], "limits": {"tickIntervalMs": 1000}, "pairing": null}
        }))
        .unwrap();
        assert!(ops.contains(&PatchOp::Set(
            "gateway.trustedProxies",
            json!(["10.0.0.0/8"])
        )));
        assert!(ops.contains(&PatchOp::Set("gateway.limits.tickIntervalMs", json!(1000))));
        assert!(ops.contains(&PatchOp::Remove("gateway.pairing.pendingTtlMs")));
        let errs = decompose(&json!({"gateway": {"trustedProxy": [], "auth": {"token": "x"}}}))
            .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs
            .iter()
            .any(|(k, m)| k == "gateway.trustedProxy" && m.contains("gateway.trustedProxies")));
        assert!(errs
            .iter()
            .any(|(k, m)| k == "gateway.auth.token" && m.contains("rotate")));
        assert!(decompose(&json!(["x"])).is_err());
    }

    #[test]
    fn override_layer_skips_the_token_digest() {
        let rec = |k: &str, v: Value| OverrideRecord {
            key: k.into(),
            value: v,
            set_by: "t".into(),
            set_at_ms: 1,
        };
        let tree = layer(&[
            rec("gateway.trustedProxies", json!(["10.0.0.1"])),
            rec(SHARED_TOKEN, json!({"digest": "00"})),
        ]);
        assert_eq!(tree, json!({"gateway": {"trustedProxies": ["10.0.0.1"]}}));
    }
}
