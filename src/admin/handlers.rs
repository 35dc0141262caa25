//! Admin API handlers.

use crate::gateway::ops::AdminEventName;
use std::collections::BTreeMap;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use redb::Durability;
use serde_json::{json, Map, Value};

use super::auth::{self, Principal};
use super::error::{ApiError, ApiResult, Code};
use super::AdminState;
use crate::config::overrides::{self, SHARED_TOKEN, TRUSTED_PROXIES};
use crate::config::{explain, parse_ip_or_cidr, AuthMode};
use crate::gateway::device::fingerprint;
use crate::gateway::ops::{self, Actor};
use crate::gateway::reload::{self, ConfigGuard, Trigger};
use crate::gateway::{auth as gwauth, pairing, GatewayState};
use crate::store::{self, DeviceRecord, OverrideRecord, PendingRecord};
use crate::util::now_ms;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

type Data = web::Data<AdminState>;

fn principal(req: &HttpRequest) -> Principal {
    req.extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal {
            name: "anonymous".into(),
            jti: None,
            scopes: vec![],
        })
}

fn actor(req: &HttpRequest) -> Actor {
    Actor {
        name: principal(req).name,
        client_addr: req.peer_addr().map(|a| a.ip().to_string()),
    }
}

/// The longest a request body may take to arrive, whole.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body: 413 over the limit, 408 when it has not all arrived within
/// [`BODY_TIMEOUT`] (a slow sender must not hold a worker).
async fn read_body(mut payload: web::Payload) -> ApiResult<web::BytesMut> {
    let read = async {
        let mut buf = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::new(Code::MalformedJson, format!("could not read the body: {e}"))
            })?;
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(ApiError::new(
                    Code::PayloadTooLarge,
                    format!("the body is larger than {MAX_BODY} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                Code::BodyTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ))
        })
}

/// Reads a JSON body: 413 over the limit, 408 too slow, 400 with the
/// position of a syntax error, `None` for an empty body.
async fn read_json(payload: web::Payload) -> ApiResult<Option<Value>> {
    let buf = read_body(payload).await?;
    // No body at all; anything else (even whitespace alone) must be JSON.
    if buf.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice::<Value>(&buf)
        .map(Some)
        .map_err(|e| {
            ApiError::new(
                Code::MalformedJson,
                format!(
                    "malformed JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })
}

fn object(body: Option<Value>, allowed: &[&str]) -> ApiResult<Map<String, Value>> {
    let m = match body {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(ApiError::new(
                Code::Invalid,
                "the body must be a JSON object",
            ))
        }
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::new(
            Code::Invalid,
            format!("unknown field {k:?}; allowed: {}", allowed.join(", ")),
        ));
    }
    Ok(m)
}

fn string_list(m: &Map<String, Value>, key: &str) -> ApiResult<Option<Vec<String>>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::new(Code::Invalid, format!("{key} must be a list of strings"))
                })
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::new(
            Code::Invalid,
            format!("{key} must be a list of strings"),
        )),
    }
}

/// A non-negative whole JSON number (`60`, `60.0` and `6e1` alike).
fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64)
            .map(|f| f as u64)
    })
}

/// `?dryRun=`: true/false/1/0; anything else is a 422.
fn dry_run(req: &HttpRequest) -> ApiResult<bool> {
    match query(req).get("dryRun").map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::new(
            Code::Invalid,
            format!("dryRun must be true or false, not {other:?}"),
        )),
    }
}

/// An optional device `label`: trimmed, 1 to 64 characters.
fn device_label(m: &Map<String, Value>) -> ApiResult<Option<String>> {
    match m.get("label") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(l)) if !l.trim().is_empty() && l.trim().chars().count() <= 64 => {
            Ok(Some(l.trim().to_string()))
        }
        Some(_) => Err(ApiError::new(
            Code::Invalid,
            "label must be a string of 1 to 64 characters",
        )),
    }
}

fn query(req: &HttpRequest) -> BTreeMap<String, String> {
    web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- health

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"ok": true}))
}

pub async fn readyz(s: Data) -> ApiResult<HttpResponse> {
    s.gw.store.check_ready()?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "sessions": s.gw.sessions()})))
}

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

fn live_pending(s: &AdminState) -> ApiResult<(Vec<PendingRecord>, u64)> {
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

fn device_err(e: ops::OpError, id: &str) -> ApiError {
    match e {
        ops::OpError::UnknownDevice => ApiError::not_found(format!("no paired device {id}"))
            .hint("list devices with GET /admin/v1/devices"),
        other => other.into(),
    }
}

// ---------------------------------------------------------------- devices

fn device_json(gw: &GatewayState, d: &DeviceRecord) -> Value {
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

// ---------------------------------------------------------------- gateway token

pub async fn rotate_gateway_token(
    s: Data,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let m = object(read_json(body).await?, &["graceSeconds"])?;
    let grace = match m.get("graceSeconds") {
        None | Some(Value::Null) => 0,
        Some(v) => match whole_number(v) {
            Some(g) if g <= 86_400 => g,
            _ => {
                return Err(ApiError::new(
                    Code::Invalid,
                    "graceSeconds must be a whole number from 0 to 86400",
                ))
            }
        },
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
    Ok(HttpResponse::Ok()
        .json(json!({"token": token, "graceSeconds": grace, "previousValidUntil": until})))
}

/// An admin write was stored; a failed rebuild means the stored state makes
/// the configuration invalid (reported, the last good config keeps serving).
fn write_outcome(report: &reload::Report) -> ApiResult<()> {
    match (&report.error, report.result) {
        (Some(err), _) => Err(ApiError::new(
            Code::Internal,
            format!(
                "the change was stored but the resulting configuration is invalid: {}",
                err["message"].as_str().unwrap_or("")
            ),
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- trusted proxies

fn etag(entries: &[String]) -> String {
    let d = gwauth::sha256(&serde_json::to_string(entries).unwrap_or_default());
    format!("\"{}\"", &hex::encode(d)[..16])
}

fn current_entries(s: &AdminState) -> Vec<String> {
    overrides::trusted_proxy_entries(&s.gw.config.load())
}

/// A resource guarded by an ETag: what it is called and where to read it.
struct Etagged {
    what: &'static str,
    read_at: &'static str,
}

const PROXY_LIST: Etagged = Etagged {
    what: "the trusted-proxy list",
    read_at: "GET /admin/v1/trusted-proxies",
};
const CONFIG: Etagged = Etagged {
    what: "the configuration",
    read_at: "GET /admin/v1/config",
};

/// `If-Match` against the current ETag (`*` matches; 428 when `required`
/// and absent, 412 when stale).
fn check_if_match(req: &HttpRequest, current: &str, required: bool, r: &Etagged) -> ApiResult<()> {
    match req.headers().get("if-match").and_then(|h| h.to_str().ok()) {
        None if required => Err(ApiError::new(
            Code::PreconditionRequired,
            format!("send If-Match with the ETag from {}", r.read_at),
        )),
        None => Ok(()),
        Some(tag)
            if tag.trim() == "*"
                || tag
                    .split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == current) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(
            Code::PreconditionFailed,
            format!("{} changed since you read it", r.what),
        )
        .hint(format!("{} again and retry with the new ETag", r.read_at))),
    }
}

fn validate_entries(entries: &[String]) -> ApiResult<Vec<String>> {
    let mut out = vec![];
    let mut bad = vec![];
    for e in entries {
        match parse_ip_or_cidr(e) {
            Some(n) => {
                let s = match n {
                    ipnet::IpNet::V4(v) if v.prefix_len() == 32 => v.addr().to_string(),
                    ipnet::IpNet::V6(v) if v.prefix_len() == 128 => v.addr().to_string(),
                    n => n.to_string(),
                };
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            None => bad.push(e.clone()),
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::new(
            Code::InvalidEntry,
            format!(
                "not an IP address or CIDR range: {}",
                bad.iter()
                    .map(|b| format!("{b:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("write an address like \"172.17.0.1\" or a range like \"172.17.0.0/16\""));
    }
    Ok(out)
}

async fn apply_proxies(
    s: &AdminState,
    guard: &mut ConfigGuard<'_>,
    req: &HttpRequest,
    entries: Vec<String>,
    action: &str,
) -> ApiResult<HttpResponse> {
    let dry = dry_run(req)?;
    let before = current_entries(s);
    if dry {
        // The ETag stays that of the list in force: nothing was applied.
        let tag = etag(&before);
        return Ok(HttpResponse::Ok()
            .insert_header(("ETag", tag))
            .json(json!({"entries": entries, "applied": false, "changed": entries != before})));
    }
    let a = actor(req);
    let rec = OverrideRecord {
        key: TRUSTED_PROXIES.into(),
        value: json!(entries),
        set_by: a.name.clone(),
        set_at_ms: now_ms(),
    };
    let audit = a.audit(
        action,
        TRUSTED_PROXIES,
        "ok",
        Some(format!("{} -> {}", before.join(","), entries.join(","))),
    );
    s.gw.store
        .write(Durability::Immediate, move |txn| {
            store::put_override(txn, &rec)?;
            store::append_audit(txn, &audit)
        })
        .await?;
    let report = reload::rebuild(&s.gw, guard, Trigger::Write, &a.name).await;
    write_outcome(&report)?;
    s.gw.emit(
        AdminEventName::TrustedProxiesChanged,
        json!({"entries": entries, "ts": now_ms()}),
    );
    let tag = etag(&entries);
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", tag))
        .json(json!({"entries": entries, "applied": true, "changed": entries != before})))
}

pub async fn get_proxies(s: Data) -> HttpResponse {
    let entries = current_entries(&s);
    HttpResponse::Ok()
        .insert_header(("ETag", etag(&entries)))
        .json(json!({"entries": entries}))
}

pub async fn put_proxies(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    dry_run(&req)?;
    let m = object(read_json(body).await?, &["entries"])?;
    let entries = string_list(&m, "entries")?
        .ok_or_else(|| ApiError::new(Code::Invalid, "entries (a list) is required"))?;
    let mut g = s.gw.control.lock().await;
    check_if_match(&req, &etag(&current_entries(&s)), true, &PROXY_LIST)?;
    let entries = validate_entries(&entries)?;
    apply_proxies(&s, &mut g, &req, entries, "trustedProxies.replace").await
}

pub async fn add_proxy(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    dry_run(&req)?;
    let m = object(read_json(body).await?, &["entry"])?;
    let entry = m
        .get("entry")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(Code::Invalid, "entry (a string) is required"))?;
    let mut g = s.gw.control.lock().await;
    let mut current = current_entries(&s);
    check_if_match(&req, &etag(&current), false, &PROXY_LIST)?;
    let new = validate_entries(&[entry.to_string()])?;
    for n in new {
        if !current.contains(&n) {
            current.push(n);
        }
    }
    apply_proxies(&s, &mut g, &req, current, "trustedProxies.add").await
}

pub async fn delete_proxy(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    dry_run(&req)?;
    let raw = path.into_inner();
    let mut g = s.gw.control.lock().await;
    let current = current_entries(&s);
    check_if_match(&req, &etag(&current), false, &PROXY_LIST)?;
    let target = validate_entries(std::slice::from_ref(&raw))?.remove(0);
    if !current.contains(&target) {
        return Err(ApiError::not_found(format!(
            "{raw:?} is not in the trusted-proxy list"
        )));
    }
    let rest: Vec<String> = current.into_iter().filter(|e| *e != target).collect();
    apply_proxies(&s, &mut g, &req, rest, "trustedProxies.remove").await
}

// ---------------------------------------------------------------- configuration

fn config_problem(e: &crate::config::ConfigError, what: &str) -> ApiError {
    let err = reload::error_json(e);
    let first = e.issues.first().map(|i| i.to_string()).unwrap_or_default();
    ApiError::new(Code::InvalidConfig, format!("{what}: {first}")).errors(err["issues"].clone())
}

fn flag(req: &HttpRequest, name: &str) -> ApiResult<bool> {
    match query(req).get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::new(
            Code::Invalid,
            format!("{name} must be true or false, not {other:?}"),
        )),
    }
}

/// `GET /admin/v1/config[?explain=true]`.
pub async fn get_config(s: Data, req: HttpRequest) -> ApiResult<HttpResponse> {
    let explain = flag(&req, "explain")?;
    let cfg = s.gw.config.load_full();
    let mut body = if explain {
        explain::explain(&cfg)
    } else {
        json!({"config": explain::tree(&cfg)})
    };
    body["revision"] = json!(s.gw.control.revision());
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", explain::etag(&cfg)))
        .json(body))
}

/// `PATCH /admin/v1/config`: a JSON merge patch stored as runtime overrides
/// (`null` hands a key back to the file).
pub async fn patch_config(
    s: Data,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let dry = dry_run(&req)?;
    let patch = read_json(body).await?.ok_or_else(|| {
        ApiError::new(
            Code::Invalid,
            "send a JSON merge patch, e.g. {\"gateway\": {\"trustedProxies\": [\"172.17.0.0/16\"]}}",
        )
    })?;
    let ops = overrides::decompose(&patch).map_err(|errs| {
        let list: Vec<Value> = errs
            .iter()
            .map(|(k, m)| json!({"key": k, "message": m, "text": format!("{k}: {m}")}))
            .collect();
        ApiError::new(Code::InvalidConfig, format!("{}: {}", errs[0].0, errs[0].1))
            .errors(json!(list))
    })?;
    let a = actor(&req);
    let mut g = s.gw.control.lock().await;
    let cur = s.gw.config.load_full();
    check_if_match(&req, &explain::etag(&cur), false, &CONFIG)?;
    let stored = s.gw.store.overrides()?;
    let mut next = stored.clone();
    for op in &ops {
        match op {
            overrides::PatchOp::Set(k, v) => {
                next.retain(|o| o.key != *k);
                next.push(OverrideRecord {
                    key: (*k).to_string(),
                    value: v.clone(),
                    set_by: a.name.clone(),
                    set_at_ms: now_ms(),
                });
            }
            overrides::PatchOp::Remove(k) => next.retain(|o| o.key != *k),
        }
    }
    let candidate = reload::candidate(&s.gw, Some(next.clone()), None)
        .map_err(|e| config_problem(&e, "the patched configuration is invalid"))?;
    let changed = explain::changed_keys(&cur, &candidate);
    if dry {
        return Ok(HttpResponse::Ok()
            .insert_header(("ETag", explain::etag(&cur)))
            .json(
                json!({"applied": false, "changed": changed, "revision": s.gw.control.revision()}),
            ));
    }
    let keys: Vec<String> = ops
        .iter()
        .map(|o| match o {
            overrides::PatchOp::Set(k, _) | overrides::PatchOp::Remove(k) => k.to_string(),
        })
        .collect();
    let audit = a.audit(
        "config.patch",
        &keys.join(","),
        "ok",
        Some(format!("changed: {}", changed.join(", "))),
    );
    let removed: Vec<String> = stored
        .iter()
        .filter(|o| !next.iter().any(|n| n.key == o.key))
        .map(|o| o.key.clone())
        .collect();
    let put: Vec<OverrideRecord> = next
        .iter()
        .filter(|n| !stored.iter().any(|o| o.key == n.key && o.value == n.value))
        .cloned()
        .collect();
    s.gw.store
        .write(Durability::Immediate, move |txn| {
            for k in &removed {
                store::delete_override(txn, k)?;
            }
            for r in &put {
                store::put_override(txn, r)?;
            }
            store::append_audit(txn, &audit)
        })
        .await?;
    let report = reload::rebuild(&s.gw, &mut g, Trigger::Write, &a.name).await;
    drop(g);
    write_outcome(&report)?;
    let now = s.gw.config.load_full();
    let mut body = report.to_json();
    body["applied"] = json!(true);
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", explain::etag(&now)))
        .json(body))
}

/// `DELETE /admin/v1/config/overrides/{key}`: gives the key back to the file.
pub async fn delete_override(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let key = path.into_inner();
    let a = actor(&req);
    let mut g = s.gw.control.lock().await;
    let stored = s.gw.store.overrides()?;
    if !stored.iter().any(|o| o.key == key) {
        return Err(
            ApiError::not_found(format!("no runtime override for {key:?}"))
                .hint("GET /admin/v1/config?explain=true lists where each key comes from"),
        );
    }
    let next: Vec<OverrideRecord> = stored.into_iter().filter(|o| o.key != key).collect();
    reload::candidate(&s.gw, Some(next), None)
        .map_err(|e| config_problem(&e, "without the override the configuration is invalid"))?;
    let audit = a.audit("config.override.delete", &key, "ok", None);
    let k = key.clone();
    s.gw.store
        .write(Durability::Immediate, move |txn| {
            store::delete_override(txn, &k)?;
            store::append_audit(txn, &audit)
        })
        .await?;
    let report = reload::rebuild(&s.gw, &mut g, Trigger::Write, &a.name).await;
    drop(g);
    write_outcome(&report)?;
    let now = s.gw.config.load_full();
    let source = explain::Provenance::new(&now).source(&key);
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", explain::etag(&now)))
        .json(json!({
            "key": key,
            "released": true,
            "value": explain::value_of(&now, &key),
            "source": source,
            "revision": report.revision,
            "closedSessions": report.closed_sessions,
        })))
}

/// `POST /admin/v1/config/validate`: checks a config file body (JSON, or
/// JSON5 with `Content-Type: application/json5`) against the running sources.
pub async fn validate_config(
    s: Data,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let buf = read_body(body).await?;
    let text = String::from_utf8(buf.to_vec())
        .map_err(|_| ApiError::new(Code::Invalid, "the body is not UTF-8"))?;
    let json5 = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json5")
        });
    // An `application/json` body is JSON: JSON5's extras (comments,
    // unquoted keys, form feeds as whitespace, …) need `application/json5`.
    // Empty, or JSON whitespace only, stands for an empty file.
    let blank = text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if !json5 && !blank {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            let mut issue = crate::config::Issue::new(
                crate::config::ConfigCode::Syntax,
                "",
                format!("not JSON ({e}); send JSON5 with Content-Type: application/json5"),
            );
            issue.line = Some(e.line());
            issue.column = Some(e.column());
            let err = crate::config::ConfigError::single(issue);
            return Err(config_problem(&err, "the configuration is invalid"));
        }
    }
    let cur = s.gw.config.load_full();
    let path = cur
        .sources
        .file_path
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("<request body>"));
    let value = crate::config::sources_parse(&path, &text)
        .map_err(|e| config_problem(&e, "the configuration is invalid"))?;
    let layer = crate::config::FileLayer {
        path,
        hash: crate::config::content_hash(text.as_bytes()),
        text,
        value,
    };
    let c = reload::candidate(&s.gw, None, Some(layer))
        .map_err(|e| config_problem(&e, "the configuration is invalid"))?;
    Ok(HttpResponse::Ok().json(json!({
        "valid": true,
        "warnings": c.warnings,
        "changed": explain::changed_keys(&cur, &c),
        "shadowed": explain::Provenance::new(&c).shadowed(),
    })))
}

/// `POST /admin/v1/config/reload`: re-reads the config file now.
pub async fn reload_config(
    s: Data,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    object(read_json(body).await?, &[])?;
    let a = actor(&req);
    let report = reload::reload(&s.gw, Trigger::Api, &a.name).await;
    if report.result == reload::ReloadOutcome::Failed {
        let err = report.error.clone().unwrap_or_default();
        let first = err["issues"][0]["text"].as_str().unwrap_or("").to_string();
        return Err(ApiError::new(
            Code::InvalidConfig,
            format!(
                "the config file is invalid; the last good configuration keeps serving: {first}"
            ),
        )
        .errors(err["issues"].clone()));
    }
    Ok(HttpResponse::Ok().json(report.to_json()))
}

/// `GET /admin/v1/config/status`.
pub async fn config_status(s: Data) -> HttpResponse {
    let cfg = s.gw.config.load_full();
    HttpResponse::Ok().json(s.gw.control.status_json(&cfg).await)
}

// ---------------------------------------------------------------- sessions

pub async fn list_sessions(s: Data) -> HttpResponse {
    let mut list: Vec<Value> = s
        .gw
        .registry
        .list()
        .iter()
        .map(|x| {
            json!({
                "connId": x.conn_id, "deviceId": x.device_id, "fingerprint": x.device_id.as_deref().map(fingerprint),
                "role": x.role, "scopes": x.scopes, "authMethod": x.auth_method,
                "clientId": x.client_id, "clientMode": x.client_mode, "clientVersion": x.client_version,
                "peerAddress": x.peer.to_string(), "clientAddress": x.client_ip.to_string(), "connectedAtMs": x.connected_at_ms,
            })
        })
        .collect();
    list.sort_by_key(|v| v["connectedAtMs"].as_u64());
    HttpResponse::Ok().json(json!({"sessions": list}))
}

pub async fn delete_session(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let n = s.gw.registry.close_where(
        |x| x.conn_id == id,
        4001,
        "client invalidated: closed by admin",
        None,
    );
    if n == 0 {
        return Err(ApiError::not_found(format!("no live session {id}")));
    }
    let _ =
        s.gw.store
            .audit_now(actor(&req).audit("session.close", &id, "ok", None))
            .await;
    Ok(HttpResponse::Ok().json(json!({"connId": id, "closed": true})))
}

// ---------------------------------------------------------------- audit, events, metrics

pub async fn audit(s: Data, req: HttpRequest) -> ApiResult<HttpResponse> {
    let q = query(&req);
    let after = match q.get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::new(Code::Invalid, "after must be a sequence number"))?,
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(ApiError::new(Code::Invalid, "limit must be from 1 to 1000")),
        },
    };
    let events = s.gw.store.audit(after, limit)?;
    let next = events.last().map(|e| e.seq).unwrap_or(after);
    Ok(HttpResponse::Ok().json(json!({"events": events, "next": next})))
}

/// The last 256 refused connections, newest last: peer and resolved address,
/// forwarded headers seen, reason code and a one-line hint.
pub async fn rejections(s: Data) -> HttpResponse {
    let list: Vec<Value> = s
        .gw
        .recent_rejections()
        .into_iter()
        .map(|r| {
            json!({
                "ts": r.ts, "peerAddress": r.peer, "clientAddress": r.client,
                "forwardedHeaders": r.forwarded_headers.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "reason": r.reason, "hint": r.hint,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"rejections": list}))
}

pub async fn events(s: Data) -> HttpResponse {
    let rx = s.gw.events.subscribe();
    let keepalive = s.sse_keepalive;
    let start = futures_util::stream::once(async {
        Ok::<_, actix_web::Error>(web::Bytes::from_static(b": connected\n\n"))
    });
    let stream = futures_util::stream::unfold((rx, 0u64), move |(mut rx, mut n)| async move {
        let frame = match tokio::time::timeout(keepalive, rx.recv()).await {
            Err(_) => ": keep-alive\n\n".to_string(),
            Ok(Ok(ev)) => {
                n += 1;
                format!(
                    "id: {n}\nevent: {}\ndata: {}\n\n",
                    ev.name.as_str(),
                    ev.data
                )
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(k))) => {
                format!("event: lagged\ndata: {{\"missed\":{k}}}\n\n")
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
        };
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(frame)), (rx, n)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(start.chain(stream))
}

pub async fn metrics(s: Data) -> ApiResult<HttpResponse> {
    use std::fmt::Write;
    let mut out = String::new();
    let mut roles: BTreeMap<&'static str, u64> = BTreeMap::new();
    for x in s.gw.registry.list() {
        *roles.entry(x.role.as_str()).or_insert(0) += 1;
    }
    let _ = writeln!(out, "# HELP clawgate_connections Authenticated gateway sessions by role.\n# TYPE clawgate_connections gauge");
    for role in ["operator", "node"] {
        let _ = writeln!(
            out,
            "clawgate_connections{{role=\"{role}\"}} {}",
            roles.get(role).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(out, "# HELP clawgate_open_sockets Open gateway WebSockets, authenticated or not.\n# TYPE clawgate_open_sockets gauge\nclawgate_open_sockets {}", s.gw.live_connections());
    let _ = writeln!(out, "# HELP clawgate_handshakes_total Connect attempts by outcome.\n# TYPE clawgate_handshakes_total counter");
    for (outcome, n) in s.gw.handshake_counts() {
        let _ = writeln!(
            out,
            "clawgate_handshakes_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    let (pending, _) = live_pending(&s)?;
    let _ = writeln!(out, "# HELP clawgate_pairing_pending Pending pairing requests.\n# TYPE clawgate_pairing_pending gauge\nclawgate_pairing_pending {}", pending.len());
    let _ = writeln!(
        out,
        "# HELP clawgate_admin_auth_failures_total Admin API requests refused for their credentials.\n# TYPE clawgate_admin_auth_failures_total counter\nclawgate_admin_auth_failures_total {}",
        s.denials.total.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(out, "# HELP clawgate_admin_requests_total Admin API requests by route and status.\n# TYPE clawgate_admin_requests_total counter");
    for ((method, route, status), n) in s.metrics.requests.lock().expect("metrics lock").iter() {
        let _ = writeln!(out, "clawgate_admin_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}

// ---------------------------------------------------------------- admin tokens

pub async fn mint_token(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    let m = object(read_json(body).await?, &["scopes", "ttlSeconds", "label"])?;
    let scopes = string_list(&m, "scopes")?
        .ok_or_else(|| ApiError::new(Code::Invalid, "scopes (a list) is required"))?;
    if scopes.is_empty() {
        return Err(ApiError::new(Code::Invalid, "scopes must not be empty"));
    }
    if let Some(bad) = scopes.iter().find(|x| !auth::SCOPES.contains(&x.as_str())) {
        return Err(ApiError::new(
            Code::Invalid,
            format!("unknown scope {bad:?}; known: {}", auth::SCOPES.join(", ")),
        ));
    }
    let ttl = match m.get("ttlSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => match whole_number(v) {
            Some(t) if (60..=31_536_000).contains(&t) => t,
            _ => {
                return Err(ApiError::new(
                    Code::Invalid,
                    "ttlSeconds must be from 60 to 31536000",
                ))
            }
        },
    };
    let label = match m.get("label") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(l)) if l.chars().count() <= 64 => l.clone(),
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
    let mut v = token_view(&rec);
    v["token"] = json!(token);
    Ok(HttpResponse::Created().json(v))
}

/// A minted admin token's metadata as the API shows it (without its digest).
fn token_view(rec: &crate::store::AdminTokenRecord) -> Value {
    let mut v = serde_json::to_value(rec).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.remove("digest");
    }
    v
}

pub async fn list_tokens(s: Data) -> ApiResult<HttpResponse> {
    let mut t = s.gw.store.admin_tokens()?;
    t.sort_by_key(|r| r.issued_at_ms);
    let t: Vec<Value> = t.iter().map(token_view).collect();
    Ok(HttpResponse::Ok().json(json!({"tokens": t})))
}

pub async fn revoke_token(
    s: Data,
    req: HttpRequest,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let jti = path.into_inner();
    let audit = actor(&req).audit("admin.token.revoke", &jti, "ok", None);
    let rec = auth::revoke(&s.gw.store, jti, audit).await?;
    Ok(HttpResponse::Ok().json(token_view(&rec)))
}
