//! Minted admin tokens.

use super::*;

// ---------------------------------------------------------------- admin tokens

pub async fn mint_token(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    let b: dto::MintTokenBody = typed(body).await?;
    let scopes = b
        .scopes
        .ok_or_else(|| ApiError::new(Code::Invalid, "scopes (a list) is required"))?;
    if scopes.is_empty() {
        return Err(ApiError::new(Code::Invalid, "scopes must not be empty"));
    }
    if let Some(bad) = scopes.iter().find(|x| auth::AdminScope::parse(x).is_none()) {
        return Err(ApiError::new(
            Code::Invalid,
            format!("unknown scope {bad:?}; known: {}", auth::scope_names()),
        ));
    }
    let ttl = match b.ttl_seconds {
        None => 3600,
        Some(t) if (60..=31_536_000).contains(&t) => t,
        Some(_) => {
            return Err(ApiError::new(
                Code::Invalid,
                "ttlSeconds must be from 60 to 31536000",
            ))
        }
    };
    let label = match b.label {
        None => String::new(),
        Some(l) if l.chars().count() <= 64 => l,
        Some(_) => {
            return Err(ApiError::new(
                Code::Invalid,
                "label must be a string of at most 64 characters",
            ))
        }
    };
    let audit = actor(&req).audit(
        "admin.token.mint",
        "",
        "ok",
        Some(format!(
            "scopes {} ttl {ttl}s label {label:?}",
            scopes.join(",")
        )),
    );
    let (token, rec) = auth::mint(&s.gw.store, scopes, ttl, label, audit).await?;
    let mut v = dto::AdminToken::of(&rec);
    v.token = Some(token);
    Ok(HttpResponse::Created().json(v))
}

pub async fn list_tokens(s: Data) -> ApiResult<HttpResponse> {
    let mut t = s.gw.store.admin_tokens()?;
    t.sort_by_key(|r| r.issued_at_ms);
    Ok(HttpResponse::Ok().json(dto::AdminTokenList {
        tokens: t.iter().map(dto::AdminToken::of).collect(),
    }))
}

pub async fn revoke_token(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let jti = path.into_inner();
    let audit = actor(&req).audit("admin.token.revoke", &jti, "ok", None);
    let rec = auth::revoke(&s.gw.store, jti, audit).await?;
    Ok(HttpResponse::Ok().json(dto::AdminToken::of(&rec)))
}
