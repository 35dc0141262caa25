//! The shared gateway token: rotation with a grace window.

use super::*;

// ---------------------------------------------------------------- gateway token

pub async fn rotate_gateway_token(
    s: Data,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let b: dto::RotateGatewayTokenBody = typed(body).await?;
    let grace = match b.grace_seconds {
        None => 0,
        Some(g) if g <= 86_400 => g,
        Some(_) => {
            return Err(ApiError::new(
                Code::Invalid,
                "graceSeconds must be a whole number from 0 to 86400",
            ))
        }
    };
    let mut guard = s.gw.control.lock().await;
    let cfg = s.gw.config.load_full();
    if cfg.gateway.auth.mode != AuthMode::Token {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "the gateway auth mode is {}, not token",
                cfg.gateway.auth.mode.as_str()
            ),
        ));
    }
    let previous = cfg.gateway.auth.token.as_ref().map(|t| *t.digest());
    let token = crate::util::random_token();
    let digest = gwauth::sha256(&token);
    let until = now_ms() + grace * 1000;
    let value = json!({
        "digest": hex::encode(digest),
        "previousDigest": previous.map(hex::encode),
        "previousValidUntil": until,
    });
    let a = actor(&req);
    let rec = OverrideRecord {
        key: SHARED_TOKEN.into(),
        value,
        set_by: a.name.clone(),
        set_at_ms: now_ms(),
    };
    let audit = a.audit(
        "gateway.token.rotate",
        "gateway.auth.token",
        "ok",
        Some(format!("grace {grace}s")),
    );
    s.gw.store
        .write(Durability::Immediate, move |txn| {
            store::put_override(txn, &rec)?;
            store::append_audit(txn, &audit)
        })
        .await?;
    let report = reload::rebuild(&s.gw, &mut guard, Trigger::Write, &a.name).await;
    drop(guard);
    write_outcome(&report)?;
    s.gw.emit(
        AdminEventName::GatewayTokenRotated,
        json!({"graceSeconds": grace, "previousValidUntil": until, "ts": now_ms()}),
    );
    tracing::info!(grace, "gateway shared token rotated through the admin API");
    Ok(HttpResponse::Ok().json(dto::GatewayTokenRotated {
        token,
        grace_seconds: grace,
        previous_valid_until: until,
    }))
}
