//! Runtime overrides written by the admin API (stored in redb), applied on top
//! of the file and environment.

use super::types::{RuntimeConfig, Secret, SecretSource};
use super::validate::parse_ip_or_cidr;
use crate::store::OverrideRecord;

pub const TRUSTED_PROXIES: &str = "gateway.trustedProxies";
pub const SHARED_TOKEN: &str = "gateway.auth.token";

fn digest_from_hex(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

/// Applies stored overrides; returns warnings for entries that no longer apply.
pub fn apply(cfg: &mut RuntimeConfig, overrides: &[OverrideRecord], now_ms: u64) -> Vec<String> {
    let mut warnings = vec![];
    for o in overrides {
        match o.key.as_str() {
            TRUSTED_PROXIES => {
                let entries: Vec<String> = o
                    .value
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut nets = vec![];
                for e in &entries {
                    match parse_ip_or_cidr(e) {
                        Some(n) => nets.push(n),
                        None => warnings.push(format!(
                            "override {TRUSTED_PROXIES}: ignoring invalid entry {e:?}"
                        )),
                    }
                }
                cfg.gateway.trusted_proxies = nets;
            }
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
            other => warnings.push(format!(
                "override {other}: not a key clawgate can override, ignored"
            )),
        }
    }
    warnings
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
