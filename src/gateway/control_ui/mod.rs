//! Standalone mode: the browser Control UI of an installed `openclaw`
//! package, served from `gateway.controlUi.root` as OpenClaw serves it
//! (control-ui.md §1): the SPA fallback, `/assets/` from any depth,
//! precompressed files per `Accept-Encoding`, immutable caching for the
//! fingerprinted assets, `index.html` rewritten for the base path with a
//! CSP that holds the hashes of its inline scripts, the security headers,
//! and `control-ui-config.json` behind a bearer. clawgate never bundles the
//! UI: it reads the folder the user points it at.
//!
//! In front-door mode none of this runs: the upstream serves its own UI
//! through the reverse proxy.

mod index;

use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::http::header::{self, ContentEncoding, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::{http_auth, GatewayState};
use crate::config::{ControlUiConfig, RuntimeConfig};

/// Prefixes that are never the UI at base path `""` (OpenClaw's other
/// routes; clawgate has none of them in standalone mode).
const RESERVED: &[&str] = &["/api/", "/j/", "/v1/", "/plugins/"];

/// What a request path is to the Control UI.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Not the UI's: the gateway's own answer applies.
    NotMine,
    /// A reserved path under the UI's mount: 404.
    Reserved,
    /// `<base>` without its slash.
    Redirect(String),
    /// The runtime config JSON.
    ConfigJson,
    /// A file below the root (relative, `/`-separated, not yet checked).
    File(String),
}

/// Where `path` (percent-decoded) goes for base path `base`.
pub fn route(base: &str, path: &str) -> Route {
    let rest = if base.is_empty() {
        if path == "/ui" || path.starts_with("/ui/") || RESERVED.iter().any(|p| path.starts_with(p))
        {
            return Route::Reserved;
        }
        if path == "/__openclaw__/control-ui-config.json" {
            return Route::ConfigJson;
        }
        path
    } else if path == base {
        return Route::Redirect(format!("{base}/"));
    } else if let Some(r) = path.strip_prefix(base).filter(|r| r.starts_with('/')) {
        r
    } else {
        return Route::NotMine;
    };
    match rest {
        "/control-ui-config.json" | "/__openclaw/control-ui-config.json" => Route::ConfigJson,
        "/" | "" => Route::File("index.html".into()),
        _ => {
            if let Some(i) = rest.find("/assets/") {
                return Route::File(format!("assets/{}", &rest[i + "/assets/".len()..]));
            }
            if let Some(f) = rest.strip_prefix("/__openclaw__/") {
                return Route::File(f.to_string());
            }
            if rest == "/share/card.png" {
                return Route::File("social-card.png".into());
            }
            Route::File(rest.trim_start_matches('/').to_string())
        }
    }
}

/// The request for the UI, or `None` when it is not the UI's to answer
/// (no root, disabled, another path, a method other than GET/HEAD).
pub async fn serve(
    state: &GatewayState,
    cfg: &RuntimeConfig,
    req: &HttpRequest,
) -> Option<HttpResponse> {
    let ui = &cfg.gateway.control_ui;
    let root = ui.root.as_ref().filter(|_| ui.enabled)?;
    let get = req.method() == actix_web::http::Method::GET;
    if !get && req.method() != actix_web::http::Method::HEAD {
        return None;
    }
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8()
        .ok()?
        .into_owned();
    let resp = match route(&ui.base_path, &path) {
        Route::NotMine => return None,
        Route::Reserved => not_found(),
        Route::Redirect(to) => HttpResponse::Found()
            .insert_header((header::LOCATION, to))
            .finish(),
        Route::ConfigJson => config_json(state, cfg, req, ui),
        Route::File(rel) => file(root, &rel, ui, req).await,
    };
    Some(with_security_headers(resp))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": {"message": "not found", "type": "not_found"}}))
}

/// `control-ui-config.json`: behind the shared secret or a device token.
fn config_json(
    state: &GatewayState,
    cfg: &RuntimeConfig,
    req: &HttpRequest,
    ui: &ControlUiConfig,
) -> HttpResponse {
    let query_token = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    let presented = http_auth::bearer(req).or(query_token);
    let known = presented.is_some_and(|t| http_auth::known(state, cfg, &t));
    let attribution = req
        .peer_addr()
        .map(|p| super::attribute(cfg, p.ip().to_canonical(), req.headers()).kind);
    let vouched = attribution.and_then(|a| http_auth::proxy_user(cfg, req, a));
    if let (false, Some(Err(d))) = (known, &vouched) {
        return HttpResponse::Unauthorized()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"error": {"message": d.message(), "type": "unauthorized", "reason": d.reason()}}));
    }
    if !known && !matches!(vouched, Some(Ok(_))) {
        return HttpResponse::Unauthorized()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"error": {"message": "unauthorized: send the gateway token or a device token as a bearer", "type": "unauthorized"}}));
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "basePath": ui.base_path,
            "serverVersion": env!("CARGO_PKG_VERSION"),
            "assistantName": "Assistant",
            "assistantAgentId": "main",
            "embedSandbox": "scripts",
            "allowExternalEmbedUrls": false,
            // No fetches to third-party hosts on clawgate's behalf.
            "automaticallyFetchFavicons": false,
            "communityInvite": false,
            // Must agree with <html data-openclaw-terminal-enabled> (index.rs).
            "terminalEnabled": false,
            "cliAgentsEnabled": false,
            "pluginAssetsRequireAuth": true,
            "pluginFrameGrants": [],
        }))
}

/// A path below `root` that is safe to open: no `..`, no hidden escape
/// through a symlink.
fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    if rel
        .split('/')
        .any(|s| s == ".." || s == "." || s.contains('\\') || s.contains('\0'))
        || rel.contains("//")
    {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let p = root.join(rel).canonicalize().ok()?;
    p.starts_with(&root).then_some(p)
}

/// Whether the last segment looks like a file (an extension): a missing
/// one is a 404, never the SPA page.
fn has_extension(rel: &str) -> bool {
    rel.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn accepts_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*"))
}

/// The encodings the client takes (`q=0` refuses one).
fn accepts(req: &HttpRequest, coding: &str) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
}

async fn file(root: &Path, rel: &str, ui: &ControlUiConfig, req: &HttpRequest) -> HttpResponse {
    if !root.join("index.html").is_file() {
        return HttpResponse::ServiceUnavailable().json(json!({"error": {
            "message": format!("Control UI assets not found at {} (gateway.controlUi.root): point it at the dist/control-ui folder of an installed openclaw package", root.display()),
            "type": "control_ui_unavailable"}}));
    }
    // Only the originals are served; their compressed copies go by
    // Accept-Encoding.
    if rel.ends_with(".br") || rel.ends_with(".gz") {
        return not_found();
    }
    if rel == "index.html" {
        return index_page(root, ui).await;
    }
    let Some(path) = resolve(root, rel).filter(|p| p.is_file()) else {
        if has_extension(rel) || !accepts_html(req) {
            return not_found();
        }
        // A deep link into the app (`/settings/devices`): the SPA page.
        return index_page(root, ui).await;
    };
    let fingerprinted = rel.starts_with("assets/");
    let mut named = None;
    if fingerprinted {
        for (coding, ext, enc) in [
            ("br", "br", ContentEncoding::Brotli),
            ("gzip", "gz", ContentEncoding::Gzip),
        ] {
            if !accepts(req, coding) {
                continue;
            }
            let mut name = path.clone().into_os_string();
            name.push(format!(".{ext}"));
            if let Ok(f) = NamedFile::open_async(PathBuf::from(name)).await {
                let mime = mime_guess::from_path(&path).first_or_octet_stream();
                named = Some(f.set_content_type(mime).set_content_encoding(enc));
                break;
            }
        }
    }
    let named = match named {
        Some(n) => n,
        None => match NamedFile::open_async(&path).await {
            Ok(n) => n,
            Err(_) => return not_found(),
        },
    };
    let mut resp = named
        .disable_content_disposition()
        .prefer_utf8(true)
        .into_response(req);
    let h = resp.headers_mut();
    if fingerprinted {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    resp
}

async fn index_page(root: &Path, ui: &ControlUiConfig) -> HttpResponse {
    let html = match tokio::fs::read_to_string(root.join("index.html")).await {
        Ok(h) => h,
        Err(e) => {
            return HttpResponse::ServiceUnavailable().json(json!({"error": {
                "message": format!("cannot read {}: {e}", root.join("index.html").display()),
                "type": "control_ui_unavailable"}}))
        }
    };
    let page = index::render(&html, &ui.base_path);
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, page.csp))
        .body(page.html)
}

/// The headers OpenClaw sends with every Control UI answer.
fn with_security_headers(mut resp: HttpResponse) -> HttpResponse {
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        (
            "permissions-policy",
            "camera=(self), microphone=*, geolocation=*, clipboard-write=*",
        ),
    ] {
        h.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_at_the_root() {
        let f = |s: &str| Route::File(s.into());
        assert_eq!(route("", "/"), f("index.html"));
        assert_eq!(route("", "/settings/devices"), f("settings/devices"));
        assert_eq!(route("", "/assets/index-A.js"), f("assets/index-A.js"));
        assert_eq!(
            route("", "/settings/assets/index-A.js"),
            f("assets/index-A.js")
        );
        assert_eq!(route("", "/__openclaw__/favicon.svg"), f("favicon.svg"));
        assert_eq!(route("", "/share/card.png"), f("social-card.png"));
        assert_eq!(route("", "/control-ui-config.json"), Route::ConfigJson);
        assert_eq!(
            route("", "/__openclaw__/control-ui-config.json"),
            Route::ConfigJson
        );
        for reserved in [
            "/ui",
            "/ui/x",
            "/api/users/x/avatar",
            "/v1/chat/completions",
            "/plugins/p",
        ] {
            assert_eq!(route("", reserved), Route::Reserved, "{reserved}");
        }
    }

    #[test]
    fn routes_under_a_base_path() {
        assert_eq!(route("/oc", "/oc"), Route::Redirect("/oc/".into()));
        assert_eq!(route("/oc", "/oc/"), Route::File("index.html".into()));
        assert_eq!(
            route("/oc", "/oc/assets/a.js"),
            Route::File("assets/a.js".into())
        );
        assert_eq!(
            route("/oc", "/oc/control-ui-config.json"),
            Route::ConfigJson
        );
        assert_eq!(
            route("/oc", "/oc/__openclaw/control-ui-config.json"),
            Route::ConfigJson
        );
        assert_eq!(route("/oc", "/"), Route::NotMine);
        assert_eq!(route("/oc", "/ocx"), Route::NotMine);
        assert_eq!(route("/oc", "/api/x"), Route::NotMine);
    }

    #[test]
    fn nothing_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ui");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.js"), "1").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        assert!(resolve(&root, "a.js").is_some());
        for bad in [
            "../secret",
            "x/../../secret",
            "link",
            "./a.js",
            "a\\b",
            "//etc/passwd",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
    }
}
