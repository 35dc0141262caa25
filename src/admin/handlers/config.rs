//! The configuration: effective values, patches, overrides, validate, reload, status.

use super::*;

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
    // Empty, or whitespace only, is an empty file, which a reload refuses
    // (an editor may be half-way through writing it): refused here too.
    let json_blank = text
        .bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if json_blank || (json5 && text.trim().is_empty()) {
        let issue = crate::config::Issue::new(
            crate::config::ConfigCode::Syntax,
            "",
            "the body is empty, and an empty config file is refused (an editor may still be writing it); send {} to check the defaults",
        );
        let err = crate::config::ConfigError::single(issue);
        return Err(config_problem(&err, "the configuration is invalid"));
    }
    if !json5 {
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
    let _: dto::EmptyBody = typed(body).await?;
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
