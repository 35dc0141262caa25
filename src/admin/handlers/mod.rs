//! Admin API handlers, one file per resource; the shared request helpers
//! (body reading, JSON objects, actors, query flags) live here.

use crate::gateway::ops::AdminEventName;
use std::collections::BTreeMap;

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use redb::Durability;
use serde_json::{json, Map, Value};

use super::auth::{self, Principal};
use super::dto::{self, Body};
use super::error::{ApiError, ApiResult, Code};
use super::AdminState;
use crate::config::overrides::{self, SHARED_TOKEN, TRUSTED_PROXIES};
use crate::config::{explain, parse_ip_or_cidr, AuthMode};
use crate::gateway::device::fingerprint;
use crate::gateway::ops::{self, Actor};
use crate::gateway::reload::{self, ConfigGuard, Trigger};
use crate::gateway::{auth as gwauth, GatewayState};
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

/// Reads a typed body. This is the admin API's one JSON error mapping:
/// 413/408/400 from [`read_json`], 422 naming an unknown field and the
/// allowed ones, 422 with the path of a field of the wrong type. Not
/// actix's `web::Json`: it has no deadline for a slow body (408 here, see
/// [`BODY_TIMEOUT`]) and refuses an empty body, which means `{}` here.
async fn typed<T: Body>(payload: web::Payload) -> ApiResult<T> {
    let m = object(read_json(payload).await?, T::FIELDS)?;
    serde_path_to_error::deserialize::<_, T>(Value::Object(m)).map_err(|e| {
        let path = e.path().to_string();
        ApiError::new(Code::Invalid, format!("{path}: {}", e.inner()))
            .hint(format!("for example {}", T::EXAMPLE))
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
fn device_label(label: Option<String>) -> ApiResult<Option<String>> {
    match label {
        None => Ok(None),
        Some(l) if !l.trim().is_empty() && l.trim().chars().count() <= 64 => {
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
    let mut v = json!({"ok": true, "sessions": s.gw.sessions()});
    // Front-door mode: whether the upstream accepts connections (reported;
    // clawgate stays ready: pairing and its admin API do not need it).
    let url =
        s.gw.config
            .load()
            .gateway
            .upstream
            .as_ref()
            .map(|u| u.url.clone());
    if let Some(url) = url {
        v["upstream"] = json!({
            "url": url,
            "reachable": crate::gateway::bridge::status::reachable(&url).await.is_ok(),
        });
    }
    Ok(HttpResponse::Ok().json(v))
}

// ---------------------------------------------------------------- shared by several resources

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

mod config;
mod devices;
mod gateway_token;
mod observe;
mod proxies;
mod requests;
mod tokens;

pub use config::*;
pub use devices::*;
pub use gateway_token::*;
pub use observe::*;
pub use proxies::*;
pub use requests::*;
pub use tokens::*;
