//! Pending pairing requests: list, show, approve, reject.

use super::*;

// ---------------------------------------------------------------- pairing

fn request_json(p: &PendingRecord, ttl: u64) -> Value {
    json!({
        "requestId": p.request_id,
        "status": "pending",
        "deviceId": p.device_id,
        "fingerprint": fingerprint(&p.device_id),
        "publicKey": p.public_key,
        "client": {
            "id": p.client_id,
            "version": p.client_version,
            "platform": p.platform,
            "deviceFamily": p.device_family,
            "mode": p.client_mode,
            "displayName": p.display_name,
        },
        "role": p.role,
        "roles": p.roles,
        "scopes": p.scopes,
        "reason": p.reason,
        "isRepair": p.is_repair,
        "isUpgrade": crate::gateway::pairing::PairingReason::parse(&p.reason)
            != Some(crate::gateway::pairing::PairingReason::NotPaired),
        "peerAddress": p.peer_ip,
        "clientAddress": p.client_key,
        "firstSeenAtMs": p.ts,
        "lastSeenAtMs": p.refreshed_at_ms,
        "expiresAtMs": p.expires_at(ttl),
        "attempts": p.attempts,
    })
}

pub(super) fn live_pending(s: &AdminState) -> ApiResult<(Vec<PendingRecord>, u64)> {
    let ttl = s.gw.config.load().gateway.pairing.pending_ttl_ms;
    let now = now_ms();
    let mut v: Vec<PendingRecord> =
        s.gw.store
            .pending()?
            .into_iter()
            .filter(|p| p.expires_at(ttl) > now)
            .collect();
    v.sort_by_key(|p| p.ts);
    Ok((v, ttl))
}

pub async fn list_requests(s: Data, req: HttpRequest) -> ApiResult<HttpResponse> {
    let q = query(&req);
    let status = q.get("status").map(String::as_str).unwrap_or("pending");
    if !matches!(status, "pending" | "all") {
        return Err(ApiError::new(
            Code::Invalid,
            format!("status must be \"pending\" or \"all\", not {status:?}"),
        ));
    }
    let (pending, ttl) = live_pending(&s)?;
    let mut out: Vec<Value> = pending.iter().map(|p| request_json(p, ttl)).collect();
    if status == "all" {
        let txn = s.gw.store.read()?;
        let table = txn
            .open_table(store::tables::DECIDED)
            .map_err(store::StoreError::from)?;
        let decided: Vec<store::DecidedRecord> = store::all_json(&table)?;
        out.extend(decided.iter().map(decided_json));
    }
    Ok(HttpResponse::Ok().json(json!({"requests": out})))
}

fn decided_json(d: &store::DecidedRecord) -> Value {
    json!({"requestId": d.request_id, "status": d.decision, "deviceId": d.device_id, "fingerprint": fingerprint(&d.device_id), "decidedAtMs": d.decided_at_ms, "decidedBy": d.actor})
}

pub async fn get_request(s: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (pending, ttl) = live_pending(&s)?;
    if let Some(p) = pending.iter().find(|p| p.request_id == id) {
        return Ok(HttpResponse::Ok().json(request_json(p, ttl)));
    }
    if let Some(d) = s.gw.store.decided(&id)? {
        return Ok(HttpResponse::Ok().json(decided_json(&d)));
    }
    Err(ApiError::not_found(format!(
        "no pending pairing request {id} (unknown or expired)"
    )))
}

pub async fn approve_request(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let m = object(read_json(body).await?, &["scopes", "label"])?;
    let scopes = string_list(&m, "scopes")?;
    let label = device_label(&m)?;
    let a = ops::approve(&s.gw, &actor(&req), &id, scopes, label)
        .await
        .map_err(|e| request_err(e, &id))?;
    Ok(HttpResponse::Ok().json(json!({"requestId": a.request.request_id, "status": "approved", "device": device_json(&s.gw, &a.device)})))
}

pub async fn reject_request(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    object(read_json(body).await?, &[])?;
    let p = ops::reject(&s.gw, &actor(&req), &id)
        .await
        .map_err(|e| request_err(e, &id))?;
    Ok(HttpResponse::Ok()
        .json(json!({"requestId": p.request_id, "status": "rejected", "deviceId": p.device_id})))
}

fn request_err(e: ops::OpError, id: &str) -> ApiError {
    match e {
        ops::OpError::UnknownRequest => ApiError::not_found(format!("no pending pairing request {id} (unknown or expired)"))
            .hint("list pending requests with GET /admin/v1/pairing/requests; a device asks again when it reconnects"),
        other => other.into(),
    }
}
