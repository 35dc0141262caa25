//! Sessions, the audit log, rejections, the event stream and metrics.

use super::*;

// ---------------------------------------------------------------- sessions

pub async fn list_sessions(s: Data) -> HttpResponse {
    let mut list: Vec<dto::Session> =
        s.gw.registry
            .list()
            .iter()
            .map(|x| dto::Session {
                conn_id: x.conn_id.clone(),
                device_id: x.device_id.clone(),
                fingerprint: x.device_id.as_deref().map(fingerprint),
                role: x.role.as_str().to_string(),
                scopes: x.scopes.clone(),
                auth_method: x.auth_method.as_str().to_string(),
                user: x.user.clone(),
                client_id: x.client_id.clone(),
                client_mode: x.client_mode.clone(),
                client_version: x.client_version.clone(),
                peer_address: x.peer.to_string(),
                client_address: x.client_ip.to_string(),
                connected_at_ms: x.connected_at_ms,
                bridged: x.bridged,
            })
            .collect();
    list.sort_by_key(|v| v.connected_at_ms);
    HttpResponse::Ok().json(dto::SessionList { sessions: list })
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
    Ok(HttpResponse::Ok().json(dto::SessionClosed {
        conn_id: id,
        closed: true,
    }))
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
    Ok(HttpResponse::Ok().json(dto::AuditPage { events, next }))
}

/// The last 256 refused connections, newest last: peer and resolved address,
/// forwarded headers seen, reason code and a one-line hint.
pub async fn rejections(s: Data) -> HttpResponse {
    let list: Vec<dto::Rejection> =
        s.gw.recent_rejections()
            .into_iter()
            .map(|r| dto::Rejection {
                ts: r.ts,
                peer_address: r.peer,
                client_address: r.client,
                forwarded_headers: r
                    .forwarded_headers
                    .into_iter()
                    .map(|(name, value)| dto::ForwardedHeader { name, value })
                    .collect(),
                reason: r.reason,
                hint: r.hint,
                origin: r.origin,
            })
            .collect();
    HttpResponse::Ok().json(dto::RejectionList { rejections: list })
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
    {
        use std::sync::atomic::Ordering::Relaxed;
        let u = &s.gw.upstream;
        let _ = writeln!(out, "# HELP clawgate_upstream_sessions Sessions bridged to the upstream gateway.\n# TYPE clawgate_upstream_sessions gauge\nclawgate_upstream_sessions {}", u.bridged_sessions());
        let _ = writeln!(out, "# HELP clawgate_upstream_connects_total Upstream sessions opened, by outcome.\n# TYPE clawgate_upstream_connects_total counter\nclawgate_upstream_connects_total{{outcome=\"ok\"}} {}\nclawgate_upstream_connects_total{{outcome=\"failed\"}} {}", u.connects_ok.load(Relaxed), u.connects_failed.load(Relaxed));
        let _ = writeln!(out, "# HELP clawgate_upstream_connect_seconds_total Time spent opening upstream sessions (challenge to hello-ok).\n# TYPE clawgate_upstream_connect_seconds_total counter\nclawgate_upstream_connect_seconds_total {:.6}", u.connect_us_total.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "# HELP clawgate_relayed_frames_total Frames relayed, by direction.\n# TYPE clawgate_relayed_frames_total counter\nclawgate_relayed_frames_total{{direction=\"up\"}} {}\nclawgate_relayed_frames_total{{direction=\"down\"}} {}", u.frames_up.load(Relaxed), u.frames_down.load(Relaxed));
        let _ = writeln!(out, "# HELP clawgate_relayed_bytes_total Bytes relayed, by direction.\n# TYPE clawgate_relayed_bytes_total counter\nclawgate_relayed_bytes_total{{direction=\"up\"}} {}\nclawgate_relayed_bytes_total{{direction=\"down\"}} {}", u.bytes_up.load(Relaxed), u.bytes_down.load(Relaxed));
    }
    let _ = writeln!(out, "# HELP clawgate_admin_requests_total Admin API requests by route and status.\n# TYPE clawgate_admin_requests_total counter");
    for ((method, route, status), n) in s.metrics.requests.lock().expect("metrics lock").iter() {
        let _ = writeln!(out, "clawgate_admin_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}

// ---------------------------------------------------------------- upstream

/// `GET /admin/v1/upstream`: the mode, the upstream's URL and whether it
/// accepts connections now, what its last `hello-ok` said, the bridged
/// sessions and the last failure.
pub async fn get_upstream(s: Data) -> HttpResponse {
    let cfg = s.gw.config.load_full();
    let Some(up) = &cfg.gateway.upstream else {
        return HttpResponse::Ok().json(json!({"mode": "standalone", "url": null}));
    };
    let reachable = crate::gateway::bridge::status::reachable(&up.url).await;
    let mut v = s.gw.upstream.to_json();
    v["mode"] = json!("front-door");
    v["url"] = json!(up.url);
    v["derived"] = json!(up.derived);
    v["secretFrom"] = json!(up.secret_from);
    v["reachable"] = json!(reachable.is_ok());
    v["unreachableBecause"] = json!(reachable.err());
    HttpResponse::Ok().json(v)
}
