//! Paired devices and their tokens.

use super::*;

// ---------------------------------------------------------------- devices

pub(super) fn device_json(gw: &GatewayState, d: &DeviceRecord) -> Value {
    let sessions = gw
        .registry
        .list()
        .iter()
        .filter(|s| s.device_id.as_deref() == Some(d.device_id.as_str()))
        .count();
    device_json_with(d, sessions)
}

/// The admin form of a device: the OpenClaw paired record plus admin fields.
fn device_json_with(d: &DeviceRecord, connected_sessions: usize) -> Value {
    let mut v = pairing::paired_json(d, None);
    let o = v.as_object_mut().expect("object");
    o.insert("fingerprint".into(), json!(fingerprint(&d.device_id)));
    o.insert("label".into(), json!(d.label));
    o.insert("approvedBy".into(), json!(d.approved_by));
    o.insert("pairedAtMs".into(), json!(d.created_at_ms));
    o.insert("lastSeenAddress".into(), json!(d.last_seen_ip));
    o.insert("connectedSessions".into(), json!(connected_sessions));
    v
}

/// Largest page of `GET /admin/v1/devices`.
const MAX_PAGE: usize = 1000;

pub async fn list_devices(s: Data, req: HttpRequest) -> ApiResult<HttpResponse> {
    let q = query(&req);
    let limit = match q.get("limit") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Some(n),
            _ => {
                return Err(ApiError::new(
                    Code::Invalid,
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                ))
            }
        },
    };
    let after = q.get("after").map(String::as_str);
    let (devices, more) = match (limit, after) {
        (None, None) => (s.gw.store.devices()?, false),
        (l, a) => s.gw.store.devices_page(a, l.unwrap_or(MAX_PAGE))?,
    };
    let sessions = s.gw.registry.list();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for x in &sessions {
        if let Some(d) = &x.device_id {
            *counts.entry(d.as_str()).or_insert(0) += 1;
        }
    }
    let out: Vec<Value> = devices
        .iter()
        .map(|d| device_json_with(d, counts.get(d.device_id.as_str()).copied().unwrap_or(0)))
        .collect();
    let next = more
        .then(|| devices.last().map(|d| d.device_id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"devices": out, "nextAfter": next})))
}

fn load_device(s: &AdminState, id: &str) -> ApiResult<DeviceRecord> {
    s.gw.store
        .device(id)?
        .ok_or_else(|| ApiError::not_found(format!("no paired device {id}")))
}

pub async fn get_device(s: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let d = load_device(&s, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(device_json(&s.gw, &d)))
}

pub async fn patch_device(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let m = object(read_json(body).await?, &["label"])?;
    let label = device_label(&m)?.ok_or_else(|| {
        ApiError::new(
            Code::Invalid,
            "label is required: a string of 1 to 64 characters",
        )
    })?;
    let d = ops::rename_device(&s.gw, &actor(&req), &id, &label)
        .await
        .map_err(|e| device_err(e, &id))?;
    Ok(HttpResponse::Ok().json(device_json(&s.gw, &d)))
}

pub async fn delete_device(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (d, closed) = ops::remove_device(&s.gw, &actor(&req), &id)
        .await
        .map_err(|e| device_err(e, &id))?;
    Ok(HttpResponse::Ok()
        .json(json!({"deviceId": d.device_id, "removed": true, "closedSessions": closed})))
}

pub async fn rotate_device_token(
    s: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (id, role) = path.into_inner();
    let m = object(read_json(body).await?, &["scopes"])?;
    let scopes = string_list(&m, "scopes")?;
    let (rec, _token, closed) =
        ops::rotate_token(&s.gw, &actor(&req), &id, &role, scopes, None).await?;
    Ok(HttpResponse::Ok().json(json!({
        "deviceId": id, "role": role, "scopes": rec.scopes,
        "rotatedAtMs": rec.rotated_at_ms.unwrap_or(rec.created_at_ms),
        "tokenDelivery": "withheld", "closedSessions": closed,
    })))
}

pub async fn revoke_device_token(
    s: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (id, role) = path.into_inner();
    let (at, closed) = ops::revoke_token(&s.gw, &actor(&req), &id, &role)
        .await
        .map_err(|e| device_err(e, &id))?;
    Ok(HttpResponse::Ok()
        .json(json!({"deviceId": id, "role": role, "revokedAtMs": at, "closedSessions": closed})))
}

fn device_err(e: ops::OpError, id: &str) -> ApiError {
    match e {
        ops::OpError::UnknownDevice => ApiError::not_found(format!("no paired device {id}"))
            .hint("list devices with GET /admin/v1/devices"),
        other => other.into(),
    }
}
