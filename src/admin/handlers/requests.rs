//! Pending pairing requests: list, show, approve, reject.

use super::*;

// ---------------------------------------------------------------- pairing

fn request_view(p: &PendingRecord, ttl: u64) -> dto::PendingRequest {
    dto::PendingRequest {
        request_id: p.request_id.clone(),
        status: "pending".into(),
        device_id: p.device_id.clone(),
        fingerprint: fingerprint(&p.device_id),
        public_key: p.public_key.clone(),
        client: dto::RequestClient {
            id: p.client_id.clone(),
            version: p.client_version.clone(),
            platform: p.platform.clone(),
            device_family: p.device_family.clone(),
            mode: p.client_mode.clone(),
            display_name: p.display_name.clone(),
        },
        role: p.role.clone(),
        roles: p.roles.clone(),
        scopes: p.scopes.clone(),
        reason: p.reason.clone(),
        is_repair: p.is_repair,
        is_upgrade: crate::gateway::pairing::PairingReason::parse(&p.reason)
            != Some(crate::gateway::pairing::PairingReason::NotPaired),
        peer_address: p.peer_ip.clone(),
        client_address: p.client_key.clone(),
        first_seen_at_ms: p.ts,
        last_seen_at_ms: p.refreshed_at_ms,
        expires_at_ms: p.expires_at(ttl),
        attempts: p.attempts,
    }
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
    let mut out: Vec<dto::RequestEntry> = pending
        .iter()
        .map(|p| dto::RequestEntry::Pending(Box::new(request_view(p, ttl))))
        .collect();
    if status == "all" {
        let txn = s.gw.store.read()?;
        let table = txn
            .open_table(store::tables::DECIDED)
            .map_err(store::StoreError::from)?;
        let decided: Vec<store::DecidedRecord> = store::all_json(&table)?;
        out.extend(
            decided
                .iter()
                .map(|d| dto::RequestEntry::Decided(decided_view(d))),
        );
    }
    Ok(HttpResponse::Ok().json(dto::RequestList { requests: out }))
}

fn decided_view(d: &store::DecidedRecord) -> dto::DecidedRequest {
    dto::DecidedRequest {
        request_id: d.request_id.clone(),
        status: d.decision.clone(),
        device_id: d.device_id.clone(),
        fingerprint: fingerprint(&d.device_id),
        decided_at_ms: d.decided_at_ms,
        decided_by: d.actor.clone(),
    }
}

pub async fn get_request(s: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (pending, ttl) = live_pending(&s)?;
    if let Some(p) = pending.iter().find(|p| p.request_id == id) {
        return Ok(HttpResponse::Ok().json(request_view(p, ttl)));
    }
    if let Some(d) = s.gw.store.decided(&id)? {
        return Ok(HttpResponse::Ok().json(decided_view(&d)));
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
    let b: dto::ApproveBody = typed(body).await?;
    let label = device_label(b.label)?;
    let a = ops::approve(&s.gw, &actor(&req), &id, b.scopes, label)
        .await
        .map_err(|e| request_err(e, &id))?;
    Ok(HttpResponse::Ok().json(dto::Approved {
        request_id: a.request.request_id,
        status: "approved".into(),
        device: Box::new(device_view(&s.gw, &a.device)),
    }))
}

pub async fn reject_request(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let _: dto::EmptyBody = typed(body).await?;
    let p = ops::reject(&s.gw, &actor(&req), &id)
        .await
        .map_err(|e| request_err(e, &id))?;
    Ok(HttpResponse::Ok().json(dto::Rejected {
        request_id: p.request_id,
        status: "rejected".into(),
        device_id: p.device_id,
    }))
}

fn request_err(e: ops::OpError, id: &str) -> ApiError {
    match e {
        ops::OpError::UnknownRequest => ApiError::not_found(format!("no pending pairing request {id} (unknown or expired)"))
            .hint("list pending requests with GET /admin/v1/pairing/requests; a device asks again when it reconnects"),
        other => other.into(),
    }
}
