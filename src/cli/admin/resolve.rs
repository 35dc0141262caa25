//! Resolving a device or request argument (id, prefix or name) to an id.

use super::*;

// ---------------------------------------------------------------- id resolution

pub(super) fn is_device_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub(super) fn is_request_id(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Resolves a short reference (fingerprint, unique id prefix, label) against
/// `items`; an unmatched reference is passed on as-is so the API answers it.
pub(super) fn resolve(
    arg: &str,
    items: &[Value],
    id_key: &str,
    names: &[&str],
    what: &str,
) -> Res<String> {
    let needle = arg.trim().to_lowercase();
    let compact = needle.replace('-', "");
    let mut hits: Vec<&Value> = vec![];
    for it in items {
        let id = it[id_key].as_str().unwrap_or("").to_lowercase();
        let matches = id == needle
            || it["fingerprint"].as_str() == Some(needle.as_str())
            || (compact.len() >= 4 && id.replace('-', "").starts_with(&compact))
            || names.iter().any(|k| it[*k].as_str() == Some(arg.trim()));
        if matches && !hits.iter().any(|h| h[id_key] == it[id_key]) {
            hits.push(it);
        }
    }
    match hits.len() {
        0 => Ok(arg.trim().to_string()),
        1 => Ok(hits[0][id_key].as_str().unwrap_or(arg).to_string()),
        _ => Err(Failure::refused(
            format!(
                "{arg:?} matches several {what}s: {}",
                hits.iter()
                    .map(|h| text(&h[id_key]))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(format!("give more of the {what} id")),
        )),
    }
}

pub(super) fn resolve_device(api: &Api, arg: &str) -> Res<String> {
    if is_device_id(arg.trim()) {
        return Ok(arg.trim().to_lowercase());
    }
    match api.get("/admin/v1/devices") {
        Ok(v) => resolve(
            arg,
            v["devices"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "deviceId",
            &["label", "operatorLabel", "displayName"],
            "device",
        ),
        // Without pairing:read the id is passed on as given.
        Err(_) => Ok(arg.trim().to_string()),
    }
}

pub(super) fn resolve_request(api: &Api, arg: &str) -> Res<String> {
    if is_request_id(arg.trim()) {
        return Ok(arg.trim().to_string());
    }
    match api.get("/admin/v1/pairing/requests") {
        Ok(v) => resolve(
            arg,
            v["requests"].as_array().map(Vec::as_slice).unwrap_or(&[]),
            "requestId",
            &[],
            "request",
        ),
        Err(_) => Ok(arg.trim().to_string()),
    }
}
