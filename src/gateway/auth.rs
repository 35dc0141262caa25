//! Shared-secret auth and the failed-auth rate limiter (protocol §3.2, §3.10, §7).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use crate::config::RateLimit;

/// Constant-time comparison of SHA-256 digests.
pub fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

pub fn sha256(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// How a session authenticated (`hello-ok.auth.method`; the wire strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// `gateway.auth.mode: "none"`.
    None,
    /// The shared token.
    Token,
    /// The shared password.
    Password,
    /// A device token issued at pairing.
    DeviceToken,
    /// An identity-aware proxy vouched for the user (§3.4).
    TrustedProxy,
}

impl AuthMethod {
    /// The method a shared secret of `mode` authenticates with.
    pub fn for_mode(mode: crate::config::AuthMode) -> AuthMethod {
        use crate::config::AuthMode;
        match mode {
            AuthMode::Token => AuthMethod::Token,
            AuthMode::Password => AuthMethod::Password,
            AuthMode::None => AuthMethod::None,
            AuthMode::TrustedProxy => AuthMethod::TrustedProxy,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Token => "token",
            AuthMethod::Password => "password",
            AuthMethod::DeviceToken => "device-token",
            AuthMethod::TrustedProxy => "trusted-proxy",
        }
    }
}

/// How the client is addressed in auth hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintKind {
    CliLocal,
    CliRemote,
    Ui,
}

/// An auth failure reason (`details.authReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthReason {
    TokenMissing,
    TokenMismatch,
    TokenMissingConfig,
    PasswordMissing,
    PasswordMismatch,
    PasswordMissingConfig,
    DeviceTokenMismatch,
    ScopeMismatch,
    RateLimited,
}

impl AuthReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "token_missing",
            AuthReason::TokenMismatch => "token_mismatch",
            AuthReason::TokenMissingConfig => "token_missing_config",
            AuthReason::PasswordMissing => "password_missing",
            AuthReason::PasswordMismatch => "password_mismatch",
            AuthReason::PasswordMissingConfig => "password_missing_config",
            AuthReason::DeviceTokenMismatch => "device_token_mismatch",
            AuthReason::ScopeMismatch => "scope_mismatch",
            AuthReason::RateLimited => "rate_limited",
        }
    }

    pub fn detail_code(self) -> &'static str {
        match self {
            AuthReason::TokenMissing => "AUTH_TOKEN_MISSING",
            AuthReason::TokenMismatch => "AUTH_TOKEN_MISMATCH",
            AuthReason::TokenMissingConfig => "AUTH_TOKEN_NOT_CONFIGURED",
            AuthReason::PasswordMissing => "AUTH_PASSWORD_MISSING",
            AuthReason::PasswordMismatch => "AUTH_PASSWORD_MISMATCH",
            AuthReason::PasswordMissingConfig => "AUTH_PASSWORD_NOT_CONFIGURED",
            AuthReason::DeviceTokenMismatch => "AUTH_DEVICE_TOKEN_MISMATCH",
            AuthReason::ScopeMismatch => "AUTH_SCOPE_MISMATCH",
            AuthReason::RateLimited => "AUTH_RATE_LIMITED",
        }
    }

    pub fn message(self, hint: HintKind) -> String {
        let token_hint = match hint {
            HintKind::CliLocal => "use this gateway's gateway.auth.token or pair the device",
            HintKind::CliRemote => "set gateway.remote.token to match gateway.auth.token",
            HintKind::Ui => "open the dashboard URL and paste the token in Control UI settings",
        };
        let token_missing_hint = match hint {
            HintKind::Ui => {
                "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
            }
            _ => token_hint,
        };
        let password_hint = match hint {
            HintKind::CliLocal => "use this gateway's gateway.auth.password or pair the device",
            HintKind::CliRemote => "set gateway.remote.password to match gateway.auth.password",
            HintKind::Ui => "enter the password in Control UI settings",
        };
        match self {
            AuthReason::TokenMissing => format!("unauthorized: gateway token missing ({token_missing_hint})"),
            AuthReason::TokenMismatch => format!("unauthorized: gateway token mismatch ({token_hint})"),
            AuthReason::TokenMissingConfig => {
                "unauthorized: gateway token not configured on gateway (set gateway.auth.token)".into()
            }
            AuthReason::PasswordMissing => format!("unauthorized: gateway password missing ({password_hint})"),
            AuthReason::PasswordMismatch => format!("unauthorized: gateway password mismatch ({password_hint})"),
            AuthReason::PasswordMissingConfig => {
                "unauthorized: gateway password not configured on gateway (set gateway.auth.password)".into()
            }
            AuthReason::DeviceTokenMismatch => {
                "unauthorized: device token mismatch (rotate/reissue device token)".into()
            }
            AuthReason::ScopeMismatch => {
                "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)".into()
            }
            AuthReason::RateLimited => {
                "unauthorized: too many failed authentication attempts (retry later)".into()
            }
        }
    }

    /// Wrong credentials count against the limiter; missing ones do not.
    pub fn counts_as_failure(self) -> bool {
        matches!(
            self,
            AuthReason::TokenMismatch
                | AuthReason::PasswordMismatch
                | AuthReason::DeviceTokenMismatch
        )
    }
}

#[derive(Default)]
struct Entry {
    failures: VecDeque<u64>,
    locked_until: Option<u64>,
    /// Consecutive failures (for the escalating delay of exempt clients).
    streak: u32,
    /// When the last failure was recorded.
    last_ms: u64,
}

impl Entry {
    fn live(&self, now: u64, window_ms: u64) -> bool {
        self.locked_until.is_some_and(|u| u > now) || now.saturating_sub(self.last_ms) < window_ms
    }
}

/// Outcome of a limiter check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitCheck {
    Allowed,
    Locked { retry_after_ms: u64 },
}

/// Whose failures count together (protocol §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// Shared-secret failures of one client address.
    SharedSecret(IpAddr),
    /// Browser failures of one client address (no loopback exemption).
    Browser(IpAddr),
    /// Browser failures from a loopback peer, per normalised origin:
    /// OpenClaw's key, so that one evil page cannot lock out the real UI.
    LoopbackOrigin(String),
}

/// The escalating delay: 250 ms doubling per consecutive failure, at most 5 s.
fn escalation(streak: u32) -> u64 {
    (250u64 << streak.saturating_sub(1).min(5)).min(5_000)
}

/// Tracked addresses at most; past it (after pruning the stale ones, at most
/// once a second) a new address is not tracked and shares one delay.
const MAX_KEYS: usize = 10_000;
/// Tracked loopback browser origins at most; past it the origin failed
/// longest ago is forgotten.
const MAX_ORIGINS: usize = 64;

/// Consecutive failures, forgotten after a window without one.
#[derive(Default)]
struct Streak {
    n: u32,
    last_ms: u64,
}

impl Streak {
    /// Counts a failure; the delay to apply.
    fn fail(&mut self, now: u64, window_ms: u64) -> u64 {
        if now.saturating_sub(self.last_ms) >= window_ms {
            self.n = 0;
        }
        self.n = self.n.saturating_add(1);
        self.last_ms = now;
        escalation(self.n)
    }
}

#[derive(Default)]
struct Tables {
    by_addr: HashMap<LimitKey, Entry>,
    by_origin: HashMap<String, Entry>,
    /// Consecutive loopback browser failures whatever the origin: the delay
    /// a page that rotates its Origin cannot shed.
    loopback_browser_streak: Streak,
    /// Consecutive failures of addresses not tracked (the table was full).
    overflow_streak: Streak,
    last_prune_ms: u64,
}

/// Sliding-window failure counter per client key with a lockout.
///
/// OpenClaw's semantics (N failures in a window → a fixed lockout, success
/// resets, exempt loopback clients get an escalating delay instead) are a
/// failure counter rather than a token bucket, so this is a small map rather
/// than a GCRA limiter. Both of its tables are bounded, and no failure scans
/// more than the 64 tracked origins (address pruning runs at most once a
/// second).
#[derive(Default)]
pub struct AuthLimiter {
    tables: Mutex<Tables>,
}

impl AuthLimiter {
    pub fn check(&self, key: &LimitKey, now: u64) -> LimitCheck {
        let t = self.tables.lock().expect("limiter lock");
        let entry = match key {
            LimitKey::LoopbackOrigin(o) => t.by_origin.get(o),
            _ => t.by_addr.get(key),
        };
        match entry.and_then(|e| e.locked_until) {
            Some(until) if until > now => LimitCheck::Locked {
                retry_after_ms: until - now,
            },
            _ => LimitCheck::Allowed,
        }
    }

    /// Records a failure. Returns the lockout when this failure triggered it, and
    /// the delay to apply before answering.
    pub fn record_failure(
        &self,
        key: &LimitKey,
        now: u64,
        cfg: &RateLimit,
        exempt: bool,
    ) -> (LimitCheck, u64) {
        let mut guard = self.tables.lock().expect("limiter lock");
        let t = &mut *guard;
        let mut delay = 0;
        let e = match key {
            LimitKey::LoopbackOrigin(o) => {
                delay = t.loopback_browser_streak.fail(now, cfg.window_ms);
                if !t.by_origin.contains_key(o) && t.by_origin.len() >= MAX_ORIGINS {
                    let oldest = t
                        .by_origin
                        .iter()
                        .filter(|(_, e)| e.locked_until.is_none_or(|u| u <= now))
                        .min_by_key(|(_, e)| e.last_ms)
                        .map(|(k, _)| k.clone());
                    match oldest {
                        Some(k) => {
                            t.by_origin.remove(&k);
                        }
                        // every tracked origin is locked out: this one waits
                        None => return (LimitCheck::Allowed, delay),
                    }
                }
                t.by_origin.entry(o.clone()).or_default()
            }
            _ => {
                if !t.by_addr.contains_key(key) && t.by_addr.len() >= MAX_KEYS {
                    if now.saturating_sub(t.last_prune_ms) >= 1_000 {
                        t.last_prune_ms = now;
                        t.by_addr.retain(|_, e| e.live(now, cfg.window_ms));
                    }
                    if t.by_addr.len() >= MAX_KEYS {
                        let delay = t.overflow_streak.fail(now, cfg.window_ms);
                        return (LimitCheck::Allowed, delay);
                    }
                }
                t.by_addr.entry(key.clone()).or_default()
            }
        };
        e.last_ms = now;
        e.streak = e.streak.saturating_add(1);
        if exempt {
            return (LimitCheck::Allowed, escalation(e.streak));
        }
        while e
            .failures
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= cfg.window_ms)
        {
            e.failures.pop_front();
        }
        e.failures.push_back(now);
        if e.failures.len() > cfg.max_attempts as usize {
            e.failures.clear();
            e.locked_until = Some(now + cfg.lockout_ms);
            return (
                LimitCheck::Locked {
                    retry_after_ms: cfg.lockout_ms,
                },
                0,
            );
        }
        (LimitCheck::Allowed, delay)
    }

    /// Forgets a key's failures (after a success). Cheap when nothing is tracked,
    /// which is the common case on the handshake path.
    pub fn reset(&self, key: &LimitKey) {
        let mut t = self.tables.lock().expect("limiter lock");
        match key {
            LimitKey::LoopbackOrigin(o) => {
                t.loopback_browser_streak = Streak::default();
                if !t.by_origin.is_empty() {
                    t.by_origin.remove(o);
                }
            }
            _ => {
                if !t.by_addr.is_empty() {
                    t.by_addr.remove(key);
                }
            }
        }
    }

    /// Keys tracked (addresses and origins).
    pub fn tracked(&self) -> usize {
        let t = self.tables.lock().expect("limiter lock");
        t.by_addr.len() + t.by_origin.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_allowed_eleventh_locks() {
        let l = AuthLimiter::default();
        let k = LimitKey::SharedSecret([10, 0, 0, 1].into());
        let cfg = RateLimit::default();
        for i in 0..10 {
            assert_eq!(
                l.record_failure(&k, 1000 + i, &cfg, false).0,
                LimitCheck::Allowed
            );
            assert_eq!(l.check(&k, 1000 + i), LimitCheck::Allowed);
        }
        let (c, _) = l.record_failure(&k, 2000, &cfg, false);
        assert_eq!(
            c,
            LimitCheck::Locked {
                retry_after_ms: 300_000
            }
        );
        assert_eq!(
            l.check(&k, 3000),
            LimitCheck::Locked {
                retry_after_ms: 299_000
            }
        );
        assert_eq!(
            l.check(&LimitKey::SharedSecret([10, 0, 0, 2].into()), 3000),
            LimitCheck::Allowed
        );
        assert_eq!(l.check(&k, 2000 + 300_000), LimitCheck::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let l = AuthLimiter::default();
        let k = LimitKey::Browser([10, 0, 0, 1].into());
        let cfg = RateLimit::default();
        for i in 0..30u64 {
            let (c, _) = l.record_failure(&k, i * 10_000, &cfg, false);
            assert_eq!(c, LimitCheck::Allowed, "failure {i}");
        }
    }

    #[test]
    fn exempt_clients_get_escalating_delay_not_lockout() {
        let l = AuthLimiter::default();
        let lo = LimitKey::SharedSecret([127, 0, 0, 1].into());
        let cfg = RateLimit::default();
        let delays: Vec<u64> = (0..8)
            .map(|i| l.record_failure(&lo, i, &cfg, true).1)
            .collect();
        assert_eq!(delays, vec![250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(l.check(&lo, 10), LimitCheck::Allowed);
        l.reset(&lo);
        assert_eq!(l.record_failure(&lo, 11, &cfg, true).1, 250);
    }

    #[test]
    fn a_page_rotating_its_origin_keeps_its_delay_and_a_bounded_table() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        let delays: Vec<u64> = (0..1000u64)
            .map(|i| {
                let k = LimitKey::LoopbackOrigin(format!("http://localhost:{}", 1000 + i));
                l.record_failure(&k, i, &cfg, false).1
            })
            .collect();
        assert_eq!(&delays[..6], &[250, 500, 1000, 2000, 4000, 5000]);
        assert!(delays[6..].iter().all(|d| *d == 5000), "the delay stays");
        assert_eq!(l.tracked(), MAX_ORIGINS);
        // the real UI's origin is never locked out by another origin's
        // failures, and its success resets the shared delay
        let ui = LimitKey::LoopbackOrigin("http://127.0.0.1:18789".into());
        assert_eq!(l.check(&ui, 2000), LimitCheck::Allowed);
        l.reset(&ui);
        let next = LimitKey::LoopbackOrigin("http://localhost:9".into());
        assert_eq!(l.record_failure(&next, 2001, &cfg, false).1, 250);
    }

    #[test]
    fn one_origin_still_locks_after_its_attempts() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        let k = LimitKey::LoopbackOrigin("http://evil.localhost".into());
        for i in 0..10 {
            assert_eq!(l.record_failure(&k, i, &cfg, false).0, LimitCheck::Allowed);
        }
        assert!(matches!(
            l.record_failure(&k, 10, &cfg, false).0,
            LimitCheck::Locked { .. }
        ));
    }

    #[test]
    fn a_full_address_table_delays_new_addresses_without_growing() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        for i in 0..MAX_KEYS as u32 {
            let k = LimitKey::Browser(std::net::Ipv6Addr::from(u128::from(i) + 1).into());
            l.record_failure(&k, 5, &cfg, false);
        }
        assert_eq!(l.tracked(), MAX_KEYS);
        let fresh = |n: u128| LimitKey::Browser(std::net::Ipv6Addr::from(n << 64).into());
        assert_eq!(l.record_failure(&fresh(1), 6, &cfg, false).1, 250);
        assert_eq!(l.record_failure(&fresh(2), 7, &cfg, false).1, 500);
        assert_eq!(l.tracked(), MAX_KEYS, "the table does not grow");
        // once the window has passed, pruning makes room again
        let later = 6 + cfg.window_ms;
        assert_eq!(l.record_failure(&fresh(3), later, &cfg, false).1, 0);
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn auth_methods_keep_their_wire_strings() {
        for (m, wire) in [
            (AuthMethod::None, "none"),
            (AuthMethod::Token, "token"),
            (AuthMethod::Password, "password"),
            (AuthMethod::DeviceToken, "device-token"),
        ] {
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(wire));
            assert_eq!(m.as_str(), wire);
        }
    }
}
