//! The shared secret (protocol §3.2): the token or password a connect
//! presents, checked against the configured one (and a rotated-away token
//! within its grace window).

use crate::config::{AuthConfig, AuthMode};
use crate::gateway::auth::{self, AuthReason};

/// What the shared secret says about a connect.
pub(super) struct SharedSecret {
    /// The secret matched.
    pub ok: bool,
    /// Why not, when a secret is configured.
    pub reason: Option<AuthReason>,
    /// The digest of the secret that matched (kept by the session, so that a
    /// rotation can tell who authenticated with what).
    pub digest: Option<[u8; 32]>,
}

pub(super) fn check(
    a: &AuthConfig,
    token_field: Option<&str>,
    password_field: Option<&str>,
    now: u64,
) -> SharedSecret {
    let (ok, reason, digest) = match a.mode {
        AuthMode::None => (false, None, None),
        // Only the local password fallback (§3.4): the password field, when
        // a password is configured; the proxy's word is checked elsewhere.
        AuthMode::TrustedProxy => match (&a.password, password_field) {
            (Some(t), Some(s)) => password_matches(t.digest(), s),
            _ => (false, None, None),
        },
        AuthMode::Token => {
            let presented = token_field.or(password_field);
            match (&a.token, presented) {
                (None, _) => (false, Some(AuthReason::TokenMissingConfig), None),
                (Some(_), None) => (false, Some(AuthReason::TokenMissing), None),
                (Some(t), Some(s)) => {
                    let d = auth::sha256(s);
                    let in_grace = a
                        .previous_token
                        .is_some_and(|(p, until)| now < until && auth::digest_eq(&p, &d));
                    if auth::digest_eq(t.digest(), &d) || in_grace {
                        (true, None, Some(d))
                    } else {
                        (false, Some(AuthReason::TokenMismatch), None)
                    }
                }
            }
        }
        AuthMode::Password => {
            let presented = password_field.or(token_field);
            match (&a.password, presented) {
                (None, _) => (false, Some(AuthReason::PasswordMissingConfig), None),
                (Some(_), None) => (false, Some(AuthReason::PasswordMissing), None),
                (Some(t), Some(s)) => password_matches(t.digest(), s),
            }
        }
    };
    SharedSecret { ok, reason, digest }
}

/// The presented password against the configured one's digest.
fn password_matches(
    configured: &[u8; 32],
    presented: &str,
) -> (bool, Option<AuthReason>, Option<[u8; 32]>) {
    let d = auth::sha256(presented);
    if auth::digest_eq(configured, &d) {
        (true, None, Some(d))
    } else {
        (false, Some(AuthReason::PasswordMismatch), None)
    }
}
