//! Admin credentials: the admin token (full rights) and scoped, expiring,
//! revocable admin tokens minted through the API (opaque, stored as digests).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use redb::Durability;

use super::error::{ApiError, Code};
use crate::gateway::auth::{digest_eq, sha256};
use crate::store::{self, records, tables, AdminTokenRecord, AuditEvent, Store};
use crate::util::now_ms;

/// An admin API scope (what a route needs, what a minted token holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminScope {
    PairingRead,
    PairingWrite,
    DevicesWrite,
    TokensWrite,
    ConfigRead,
    ConfigWrite,
    /// Every scope.
    Admin,
}

impl AdminScope {
    pub const ALL: [AdminScope; 7] = [
        AdminScope::PairingRead,
        AdminScope::PairingWrite,
        AdminScope::DevicesWrite,
        AdminScope::TokensWrite,
        AdminScope::ConfigRead,
        AdminScope::ConfigWrite,
        AdminScope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::PairingRead => "pairing:read",
            AdminScope::PairingWrite => "pairing:write",
            AdminScope::DevicesWrite => "devices:write",
            AdminScope::TokensWrite => "tokens:write",
            AdminScope::ConfigRead => "config:read",
            AdminScope::ConfigWrite => "config:write",
            AdminScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<AdminScope> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for AdminScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire names of every scope, for messages.
pub fn scope_names() -> String {
    AdminScope::ALL.map(AdminScope::as_str).join(", ")
}

/// The authenticated caller of an admin request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// For the audit log: `admin-token` or `token:<jti> (<label>)`.
    pub name: String,
    pub jti: Option<String>,
    pub scopes: Vec<AdminScope>,
}

impl Principal {
    pub fn allows(&self, scope: AdminScope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == AdminScope::Admin || *s == scope)
    }
}

/// Minted admin tokens: `cgadm_<jti>_<secret>`. Only the SHA-256 digest of
/// the whole token is stored, next to its scopes and expiry, and every use
/// checks that record: a copy of the database cannot forge one, and an
/// expired or revoked token stops working at once.
pub const TOKEN_PREFIX: &str = "cgadm_";

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, detail).hint(
        "send Authorization: Bearer <token> with the admin token (gateway.admin.token, CLAWGATE_ADMIN_TOKEN, \
         or <state dir>/admin-token) or a scoped admin token from POST /admin/v1/tokens",
    )
}

/// Authenticates a bearer credential.
pub fn authenticate(
    store: &Store,
    admin_digest: &[u8; 32],
    header: Option<&str>,
) -> Result<Principal, ApiError> {
    let Some(h) = header else {
        return Err(unauthorized("missing Authorization header"));
    };
    let Some(token) = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Err(unauthorized(
            "the Authorization header must be \"Bearer <token>\"",
        ));
    };
    if token.is_empty() {
        return Err(unauthorized("empty bearer token"));
    }
    if let Some(rest) = token.strip_prefix(TOKEN_PREFIX) {
        return authenticate_minted(store, token, rest);
    }
    if token.matches('.').count() == 2 {
        return Err(unauthorized(
            "admin JWTs are no longer accepted: clawgate now mints opaque admin tokens (cgadm_…); mint a new one with POST /admin/v1/tokens",
        ));
    }
    if digest_eq(admin_digest, &sha256(token)) {
        return Ok(Principal {
            name: "admin-token".into(),
            jti: None,
            scopes: vec![AdminScope::Admin],
        });
    }
    Err(unauthorized("invalid admin token"))
}

fn authenticate_minted(store: &Store, token: &str, rest: &str) -> Result<Principal, ApiError> {
    let Some((jti, _secret)) = rest.split_once('_') else {
        return Err(unauthorized("malformed admin token"));
    };
    let rec = store
        .admin_token(jti)?
        .ok_or_else(|| unauthorized("unknown admin token"))?;
    let want = hex::decode(&rec.digest)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| unauthorized("unknown admin token"))?;
    if !digest_eq(&want, &sha256(token)) {
        return Err(unauthorized("invalid admin token"));
    }
    if rec.revoked_at_ms.is_some() {
        return Err(unauthorized("admin token revoked"));
    }
    if rec.expires_at_ms <= now_ms() {
        return Err(unauthorized("admin token expired"));
    }
    Ok(Principal {
        name: if rec.label.is_empty() {
            format!("token:{}", rec.jti)
        } else {
            format!("token:{} ({})", rec.jti, rec.label)
        },
        jti: Some(rec.jti),
        // A stored scope this version does not know grants nothing.
        scopes: rec
            .scopes
            .iter()
            .filter_map(|s| AdminScope::parse(s))
            .collect(),
    })
}

/// Mints a scoped admin token; its record and the audit record commit together.
pub async fn mint(
    store: &Store,
    scopes: Vec<String>,
    ttl_seconds: u64,
    label: String,
    audit: AuditEvent,
) -> Result<(String, AdminTokenRecord), ApiError> {
    let created_by = audit.actor.clone();
    store
        .write(Durability::Immediate, move |txn| {
            let now = now_ms();
            let jti = uuid::Uuid::new_v4().to_string();
            let token = format!(
                "{TOKEN_PREFIX}{jti}_{}",
                URL_SAFE_NO_PAD.encode(crate::util::random_bytes())
            );
            let rec = AdminTokenRecord {
                jti: jti.clone(),
                digest: hex::encode(sha256(&token)),
                label: label.clone(),
                scopes: scopes.clone(),
                issued_at_ms: now,
                expires_at_ms: now + ttl_seconds * 1000,
                revoked_at_ms: None,
                created_by: created_by.clone(),
            };
            let mut t = txn.open_table(tables::ADMIN_TOKENS)?;
            t.insert(jti.as_str(), records::encode(&rec).as_slice())?;
            drop(t);
            let mut audit = audit.clone();
            audit.target = jti.clone();
            store::append_audit(txn, &audit)?;
            Ok((token, rec))
        })
        .await
}

/// Revokes a minted admin token by `jti`.
pub async fn revoke(
    store: &Store,
    jti: String,
    audit: AuditEvent,
) -> Result<AdminTokenRecord, ApiError> {
    store
        .write(Durability::Immediate, move |txn| {
            let mut t = txn.open_table(tables::ADMIN_TOKENS)?;
            let rec: Option<AdminTokenRecord> = store::get_json(&t, &jti)?;
            let Some(mut rec) = rec else {
                return Err(ApiError::not_found(format!(
                    "no admin token with jti {jti}"
                )));
            };
            if rec.revoked_at_ms.is_some() {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("admin token {jti} is already revoked"),
                ));
            }
            rec.revoked_at_ms = Some(now_ms());
            t.insert(jti.as_str(), records::encode(&rec).as_slice())?;
            drop(t);
            store::append_audit(txn, &audit)?;
            Ok(rec)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit() -> AuditEvent {
        AuditEvent {
            seq: 0,
            ts: now_ms(),
            actor: "admin-token".into(),
            action: "token.mint".into(),
            target: String::new(),
            client_addr: None,
            outcome: "ok".into(),
            detail: None,
        }
    }

    fn detail(r: Result<Principal, ApiError>) -> String {
        r.expect_err("refused").to_string()
    }

    #[tokio::test]
    async fn minted_tokens_are_checked_against_their_record_on_every_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let admin = sha256("the-admin-token");
        let (tok, rec) = mint(
            &store,
            vec!["pairing:read".into()],
            600,
            "ci".into(),
            audit(),
        )
        .await
        .unwrap();
        assert!(tok.starts_with(TOKEN_PREFIX));
        let h = |t: &str| format!("Bearer {t}");
        let p = authenticate(&store, &admin, Some(&h(&tok))).unwrap();
        assert_eq!(p.scopes, vec![AdminScope::PairingRead]);
        assert_eq!(p.name, format!("token:{} (ci)", rec.jti));
        // The database holds the digest, never the token.
        let stored = store.admin_token(&rec.jti).unwrap().unwrap();
        assert_eq!(stored.digest, hex::encode(sha256(&tok)));
        assert!(!format!("{stored:?}").contains(tok.rsplit('_').next().unwrap()));
        // A right id with a wrong secret.
        let forged = format!("{TOKEN_PREFIX}{}_{}", rec.jti, "A".repeat(43));
        assert!(
            detail(authenticate(&store, &admin, Some(&h(&forged)))).contains("invalid admin token")
        );
        // The stored expiry decides, whatever the token says.
        let jti = rec.jti.clone();
        store
            .write_blocking(Durability::Immediate, move |txn| {
                let mut t = txn.open_table(tables::ADMIN_TOKENS)?;
                let mut r = rec.clone();
                r.expires_at_ms = now_ms() - 1;
                t.insert(jti.as_str(), records::encode(&r).as_slice())?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        assert!(
            detail(authenticate(&store, &admin, Some(&h(&tok)))).contains("admin token expired")
        );
        // The old JWT form is refused with what to do.
        let e = detail(authenticate(&store, &admin, Some("Bearer aaa.bbb.ccc")));
        assert!(e.contains("no longer accepted"), "{e}");
    }
}
