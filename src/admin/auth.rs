//! Admin credentials: the admin token (full rights) and scoped admin JWTs
//! (HS256, `kid` keyring in redb, `exp`, revocable `jti`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redb::{Durability, ReadableTable};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use crate::gateway::auth::{digest_eq, sha256};
use crate::store::{self, records, tables, AdminTokenRecord, AuditEvent, Store, StoreError};
use crate::util::now_ms;

pub const SCOPES: &[&str] = &[
    "pairing:read",
    "pairing:write",
    "devices:write",
    "tokens:write",
    "config:read",
    "config:write",
    "admin",
];

pub const AUDIENCE: &str = "clawgate-admin";

/// The authenticated caller of an admin request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// For the audit log: `admin-token` or `jwt:<jti> (<label>)`.
    pub name: String,
    pub jti: Option<String>,
    pub scopes: Vec<String>,
}

impl Principal {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "admin" || s == scope)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
    scopes: Vec<String>,
    #[serde(default)]
    label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyRecord {
    kid: String,
    secret: String,
    created_at_ms: u64,
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, detail).hint(
        "send Authorization: Bearer <token> with the admin token (gateway.admin.token, CLAWGATE_ADMIN_TOKEN, \
         or <state dir>/admin-token) or an admin JWT from POST /admin/v1/tokens",
    )
}

fn load_key(store: &Store, kid: &str) -> Result<Option<KeyRecord>, StoreError> {
    let txn = store.read()?;
    let table = txn.open_table(tables::ADMIN_KEYS)?;
    store::get_json(&table, kid)
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
    if token.matches('.').count() == 2 {
        return authenticate_jwt(store, token);
    }
    if digest_eq(admin_digest, &sha256(token)) {
        return Ok(Principal {
            name: "admin-token".into(),
            jti: None,
            scopes: vec!["admin".into()],
        });
    }
    Err(unauthorized("invalid admin token"))
}

fn authenticate_jwt(store: &Store, token: &str) -> Result<Principal, ApiError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed admin JWT"))?;
    if header.alg != Algorithm::HS256 {
        return Err(unauthorized("admin JWTs are HS256"));
    }
    let kid = header
        .kid
        .ok_or_else(|| unauthorized("admin JWT without kid"))?;
    let key = load_key(store, &kid)?
        .ok_or_else(|| unauthorized("admin JWT signed with an unknown key"))?;
    let secret = URL_SAFE_NO_PAD
        .decode(&key.secret)
        .map_err(|_| ApiError::new(Code::Internal, "admin key unreadable"))?;
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iat", "sub", "jti", "aud"]);
    v.leeway = 5;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret), &v)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("admin JWT expired"),
                _ => unauthorized("invalid admin JWT"),
            }
        })?;
    let c = data.claims;
    let rec = store
        .admin_token(&c.jti)?
        .ok_or_else(|| unauthorized("unknown admin JWT"))?;
    if rec.revoked_at_ms.is_some() {
        return Err(unauthorized("admin JWT revoked"));
    }
    Ok(Principal {
        name: if c.label.is_empty() {
            format!("jwt:{}", c.jti)
        } else {
            format!("jwt:{} ({})", c.jti, c.label)
        },
        jti: Some(c.jti),
        scopes: rec.scopes,
    })
}

/// Mints a scoped admin JWT; its metadata and the audit record commit together.
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
            let key = {
                let mut keys = txn.open_table(tables::ADMIN_KEYS)?;
                let mut newest: Option<KeyRecord> = None;
                for item in keys.iter()? {
                    let (_, v) = item?;
                    let k: KeyRecord = records::decode(v.value())?;
                    if newest
                        .as_ref()
                        .is_none_or(|n| k.created_at_ms > n.created_at_ms)
                    {
                        newest = Some(k);
                    }
                }
                match newest {
                    Some(k) => k,
                    None => {
                        let k = KeyRecord {
                            kid: format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
                            secret: URL_SAFE_NO_PAD.encode(crate::util::random_bytes()),
                            created_at_ms: now,
                        };
                        keys.insert(k.kid.as_str(), records::encode(&k).as_slice())?;
                        k
                    }
                }
            };
            let jti = uuid::Uuid::new_v4().to_string();
            let exp_ms = now + ttl_seconds * 1000;
            let claims = Claims {
                sub: "clawgate-admin".into(),
                aud: AUDIENCE.into(),
                iat: now / 1000,
                exp: exp_ms / 1000,
                jti: jti.clone(),
                scopes: scopes.clone(),
                label: label.clone(),
            };
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(key.kid.clone());
            let secret = URL_SAFE_NO_PAD
                .decode(&key.secret)
                .map_err(|_| ApiError::new(Code::Internal, "admin key unreadable"))?;
            let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                .map_err(|e| ApiError::new(Code::Internal, format!("could not sign: {e}")))?;
            let rec = AdminTokenRecord {
                jti: jti.clone(),
                kid: key.kid.clone(),
                label: label.clone(),
                scopes: scopes.clone(),
                issued_at_ms: now,
                expires_at_ms: exp_ms,
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

/// Revokes an admin JWT by `jti`.
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
