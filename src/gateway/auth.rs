//! Shared-secret auth and the failed-auth rate limiter (protocol §3.2, §3.10, §7).

use std::collections::{HashMap, VecDeque};
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
}

/// Outcome of a limiter check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitCheck {
    Allowed,
    Locked { retry_after_ms: u64 },
}

/// Sliding-window failure counter per (scope, client key) with a lockout.
///
/// OpenClaw's semantics (N failures in a window → a fixed lockout, success
/// resets, exempt loopback clients get an escalating delay instead) are a
/// failure counter rather than a token bucket, so this is a small map rather
/// than a GCRA limiter.
#[derive(Default)]
pub struct AuthLimiter {
    entries: Mutex<HashMap<(&'static str, String), Entry>>,
}

const MAX_KEYS: usize = 10_000;

impl AuthLimiter {
    pub fn check(&self, scope: &'static str, key: &str, now: u64) -> LimitCheck {
        let map = self.entries.lock().expect("limiter lock");
        if let Some(e) = map.get(&(scope, key.to_string())) {
            if let Some(until) = e.locked_until {
                if until > now {
                    return LimitCheck::Locked {
                        retry_after_ms: until - now,
                    };
                }
            }
        }
        LimitCheck::Allowed
    }

    /// Records a failure. Returns the lockout when this failure triggered it, and
    /// the delay to apply before answering an exempt client.
    pub fn record_failure(
        &self,
        scope: &'static str,
        key: &str,
        now: u64,
        cfg: &RateLimit,
        exempt: bool,
    ) -> (LimitCheck, u64) {
        let mut map = self.entries.lock().expect("limiter lock");
        if map.len() >= MAX_KEYS {
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now)
                    || e.failures
                        .back()
                        .is_some_and(|t| now.saturating_sub(*t) < cfg.window_ms)
            });
        }
        let e = map.entry((scope, key.to_string())).or_default();
        e.streak = e.streak.saturating_add(1);
        if exempt {
            let delay = (250u64 << (e.streak - 1).min(5)).min(5_000);
            return (LimitCheck::Allowed, delay);
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
        (LimitCheck::Allowed, 0)
    }

    /// Forgets a key's failures (after a success). Cheap when nothing is tracked,
    /// which is the common case on the handshake path.
    pub fn reset(&self, scope: &'static str, key: &str) {
        let mut map = self.entries.lock().expect("limiter lock");
        if !map.is_empty() {
            map.remove(&(scope, key.to_string()));
        }
    }

    pub fn tracked(&self) -> usize {
        self.entries.lock().expect("limiter lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_allowed_eleventh_locks() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        for i in 0..10 {
            assert_eq!(
                l.record_failure("s", "k", 1000 + i, &cfg, false).0,
                LimitCheck::Allowed
            );
            assert_eq!(l.check("s", "k", 1000 + i), LimitCheck::Allowed);
        }
        let (c, _) = l.record_failure("s", "k", 2000, &cfg, false);
        assert_eq!(
            c,
            LimitCheck::Locked {
                retry_after_ms: 300_000
            }
        );
        assert_eq!(
            l.check("s", "k", 3000),
            LimitCheck::Locked {
                retry_after_ms: 299_000
            }
        );
        assert_eq!(l.check("s", "other", 3000), LimitCheck::Allowed);
        assert_eq!(l.check("s", "k", 2000 + 300_000), LimitCheck::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        for i in 0..30u64 {
            let (c, _) = l.record_failure("s", "k", i * 10_000, &cfg, false);
            assert_eq!(c, LimitCheck::Allowed, "failure {i}");
        }
    }

    #[test]
    fn exempt_clients_get_escalating_delay_not_lockout() {
        let l = AuthLimiter::default();
        let cfg = RateLimit::default();
        let delays: Vec<u64> = (0..8)
            .map(|i| l.record_failure("s", "lo", i, &cfg, true).1)
            .collect();
        assert_eq!(delays, vec![250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(l.check("s", "lo", 10), LimitCheck::Allowed);
        l.reset("s", "lo");
        assert_eq!(l.record_failure("s", "lo", 11, &cfg, true).1, 250);
    }
}
