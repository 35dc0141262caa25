//! Trusted proxies, and the ETag / If-Match rules shared with the config routes.

use super::*;

// ---------------------------------------------------------------- trusted proxies

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
            .json(dto::ProxyChange {
                changed: entries != before,
                entries,
                applied: false,
            }));
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
        .json(dto::ProxyChange {
            changed: entries != before,
            entries,
            applied: true,
        }))
}

pub async fn get_proxies(s: Data) -> HttpResponse {
    let entries = current_entries(&s);
    HttpResponse::Ok()
        .insert_header(("ETag", etag(&entries)))
        .json(dto::ProxyList { entries })
}

pub async fn put_proxies(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    dry_run(&req)?;
    let b: dto::ProxiesBody = typed(body).await?;
    let entries = b
        .entries
        .ok_or_else(|| ApiError::new(Code::Invalid, "entries (a list) is required"))?;
    let mut g = s.gw.control.lock().await;
    check_if_match(&req, &etag(&current_entries(&s)), true, &PROXY_LIST)?;
    let entries = validate_entries(&entries)?;
    apply_proxies(&s, &mut g, &req, entries, "trustedProxies.replace").await
}

pub async fn add_proxy(s: Data, req: HttpRequest, body: web::Payload) -> ApiResult<HttpResponse> {
    dry_run(&req)?;
    let b: dto::ProxyEntryBody = typed(body).await?;
    let entry = b
        .entry
        .ok_or_else(|| ApiError::new(Code::Invalid, "entry (a string) is required"))?;
    let mut g = s.gw.control.lock().await;
    let mut current = current_entries(&s);
    check_if_match(&req, &etag(&current), false, &PROXY_LIST)?;
    let new = validate_entries(&[entry])?;
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
