//! Paired devices and their tokens.

use super::*;

// ---------------------------------------------------------------- devices

pub(super) fn device_view(gw: &GatewayState, d: &DeviceRecord) -> dto::Device {
    let sessions = gw
        .registry
        .list()
        .iter()
        .filter(|s| s.device_id.as_deref() == Some(d.device_id.as_str()))
        .count();
    device_view_with(d, sessions)
}

/// The admin form of a device: the OpenClaw paired record plus admin fields.
fn device_view_with(d: &DeviceRecord, connected_sessions: usize) -> dto::Device {
    dto::Device {
        paired: dto::PairedDevice::of(d, None),
        fingerprint: fingerprint(&d.device_id),
        label: d.label.clone(),
        approved_by: d.approved_by.clone(),
        paired_at_ms: d.created_at_ms,
        last_seen_address: d.last_seen_ip.clone(),
        connected_sessions,
        upstream: None,
    }
}

/// Front-door mode: how the upstream sees a node device (`node.describe`
/// over clawgate's maintenance session).
async fn upstream_node(gw: &GatewayState, d: &DeviceRecord) -> Option<dto::UpstreamNode> {
    let up = gw.config.load().gateway.upstream.clone()?;
    if !d
        .roles
        .iter()
        .any(|r| r == crate::gateway::scopes::Role::Node.as_str())
    {
        return None;
    }
    let Some(node_id) = gw.upstream_ids.up_of(&d.device_id) else {
        return Some(dto::UpstreamNode {
            approval_state: Some("unknown".into()),
            ..Default::default()
        });
    };
    use crate::gateway::bridge::maintenance::{call, CallError};
    let answer = call(
        &gw.store,
        &up,
        "node.describe",
        serde_json::json!({ "nodeId": node_id }),
    )
    .await;
    let mut out = dto::UpstreamNode {
        node_id: Some(node_id),
        ..Default::default()
    };
    match answer {
        Ok(v) => {
            out.approval_state = v["approvalState"].as_str().map(str::to_string);
            out.connected = v["connected"].as_bool();
            out.pending_request_id = v["pendingRequestId"].as_str().map(str::to_string);
        }
        Err(CallError::Refused(e))
            if e["message"]
                .as_str()
                .is_some_and(|m| m.contains("unknown nodeId")) =>
        {
            out.approval_state = Some("unknown".into());
        }
        Err(e) => out.error = Some(e.to_string()),
    }
    Some(out)
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
    let out: Vec<dto::Device> = devices
        .iter()
        .map(|d| device_view_with(d, counts.get(d.device_id.as_str()).copied().unwrap_or(0)))
        .collect();
    let next = more
        .then(|| devices.last().map(|d| d.device_id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(dto::DeviceList {
        devices: out,
        next_after: next,
    }))
}

fn load_device(s: &AdminState, id: &str) -> ApiResult<DeviceRecord> {
    s.gw.store
        .device(id)?
        .ok_or_else(|| ApiError::not_found(format!("no paired device {id}")))
}

pub async fn get_device(s: Data, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let d = load_device(&s, &path.into_inner())?;
    let mut view = device_view(&s.gw, &d);
    view.upstream = upstream_node(&s.gw, &d).await;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn patch_device(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let b: dto::RenameBody = typed(body).await?;
    let label = device_label(b.label)?.ok_or_else(|| {
        ApiError::new(
            Code::Invalid,
            "label is required: a string of 1 to 64 characters",
        )
    })?;
    let d = ops::rename_device(&s.gw, &actor(&req), &id, &label)
        .await
        .map_err(|e| device_err(e, &id))?;
    Ok(HttpResponse::Ok().json(device_view(&s.gw, &d)))
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
    Ok(HttpResponse::Ok().json(dto::Removed {
        device_id: d.device_id,
        removed: true,
        closed_sessions: closed,
    }))
}

pub async fn rotate_device_token(
    s: Data,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (id, role) = path.into_inner();
    let b: dto::RotateDeviceTokenBody = typed(body).await?;
    let (rec, _token, closed) =
        ops::rotate_token(&s.gw, &actor(&req), &id, &role, b.scopes, None).await?;
    Ok(HttpResponse::Ok().json(dto::DeviceTokenRotated {
        device_id: id,
        role,
        scopes: rec.scopes,
        rotated_at_ms: rec.rotated_at_ms.unwrap_or(rec.created_at_ms),
        token_delivery: "withheld".into(),
        closed_sessions: closed,
    }))
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
    Ok(HttpResponse::Ok().json(dto::DeviceTokenRevoked {
        device_id: id,
        role,
        revoked_at_ms: at,
        closed_sessions: closed,
    }))
}

fn device_err(e: ops::OpError, id: &str) -> ApiError {
    match e {
        ops::OpError::UnknownDevice => ApiError::not_found(format!("no paired device {id}"))
            .hint("list devices with GET /admin/v1/devices"),
        other => other.into(),
    }
}
