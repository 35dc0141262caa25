//! Standalone mode: the Control UI served from `gateway.controlUi.root`
//! (a small stand-in folder with the shape of `openclaw/dist/control-ui`).

mod common;

use std::path::Path;

use clawgate::admin::client::{Answer, Client};
use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const INDEX: &str = "<!doctype html>\n<html data-openclaw-control-ui-build-id=\"2026.9.6-test\" lang=\"en\">\n<head>\n\
<link rel=\"icon\" type=\"image/svg+xml\" href=\"./favicon.svg\" />\n\
<script data-cfasync=\"false\">globalThis.theme = 1;</script>\n\
<script data-cfasync=\"false\" type=\"module\" crossorigin src=\"./assets/index-A1.js\"></script>\n\
</head>\n<body><openclaw-app></openclaw-app>\n<script data-cfasync=\"false\">\n  fallback();\n</script>\n</body>\n</html>\n";

/// A UI folder: index.html, a fingerprinted asset with its precompressed
/// copies, a root file, a font.
fn ui_root(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("control-ui");
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::create_dir_all(root.join("fonts")).unwrap();
    std::fs::write(root.join("index.html"), INDEX).unwrap();
    std::fs::write(root.join("assets/index-A1.js"), "console.log('plain')").unwrap();
    std::fs::write(root.join("assets/index-A1.js.br"), "BROTLI-COPY").unwrap();
    std::fs::write(root.join("assets/index-A1.js.gz"), "GZIP-COPY").unwrap();
    std::fs::write(root.join("favicon.svg"), "<svg/>").unwrap();
    std::fs::write(root.join("fonts/a.woff2"), "woff2").unwrap();
    std::fs::write(dir.join("secret.txt"), "not for browsers").unwrap();
    root
}

async fn start(dir: &Path, control_ui: Value) -> TestServer {
    let mut ui = control_ui;
    if ui.get("root").is_none() {
        ui["root"] = json!(ui_root(dir).display().to_string());
    }
    TestServer::start(config_with(json!({"controlUi": ui}))).await
}

fn http(srv: &TestServer) -> Client {
    common::http::gateway_client(&srv.url)
}

async fn get(c: &Client, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    common::http::send(c, method, path, headers).await
}

fn sha(body: &str) -> String {
    use base64::Engine;
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_its_assets_and_the_spa_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), json!({})).await;
    let c = http(&srv);

    let a = get(&c, "GET", "/", &[("Accept", "text/html")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(a.header("cache-control"), Some("no-cache"));
    assert!(a.body.contains("src=\"/assets/index-A1.js\""), "{}", a.body);
    assert!(a.body.contains("href=\"/favicon.svg?v=2026.9.6-test\""));
    assert!(a.body.contains(
        "data-openclaw-control-ui-base-path=\"\" data-openclaw-terminal-enabled=\"false\""
    ));
    let csp = a.header("content-security-policy").unwrap();
    assert!(csp.contains(&sha("globalThis.theme = 1;")), "{csp}");
    assert!(csp.contains(&sha("\n  fallback();\n")), "{csp}");
    assert!(csp.contains("connect-src 'self' ws: wss:"), "{csp}");
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(a.header(h), Some(v), "{h}");
    }

    // A deep link is the app; a missing file is not.
    let deep = get(&c, "GET", "/settings/devices", &[("Accept", "text/html")]).await;
    assert_eq!(deep.status, 200);
    assert!(deep.body.contains("<openclaw-app>"));
    assert_eq!(
        get(
            &c,
            "GET",
            "/settings/devices",
            &[("Accept", "application/json")]
        )
        .await
        .status,
        404
    );
    assert_eq!(get(&c, "GET", "/missing.js", &[]).await.status, 404);
    assert_eq!(
        get(&c, "GET", "/assets/index-A1.js.br", &[]).await.status,
        404
    );
    assert_eq!(get(&c, "GET", "/api/users/x/avatar", &[]).await.status, 404);

    // Fingerprinted assets: precompressed by Accept-Encoding, immutable.
    let br = get(
        &c,
        "GET",
        "/assets/index-A1.js",
        &[("Accept-Encoding", "gzip, br")],
    )
    .await;
    assert_eq!(br.status, 200);
    assert_eq!(br.body, "BROTLI-COPY");
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(
        br.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
            || br
                .header("content-type")
                .unwrap()
                .starts_with("application/javascript")
    );
    assert_eq!(
        br.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    let gz = get(
        &c,
        "GET",
        "/assets/index-A1.js",
        &[("Accept-Encoding", "gzip, br;q=0")],
    )
    .await;
    assert_eq!(gz.body, "GZIP-COPY");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let plain = get(&c, "GET", "/settings/assets/index-A1.js", &[]).await;
    assert_eq!(
        plain.body, "console.log('plain')",
        "/assets/ from any depth"
    );
    assert_eq!(plain.header("content-encoding"), None);

    // Other files by path, revalidated.
    let icon = get(&c, "GET", "/favicon.svg?v=2026.9.6-test", &[]).await;
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert_eq!(icon.header("cache-control"), Some("no-cache"));
    assert!(icon.header("last-modified").is_some());
    assert_eq!(get(&c, "GET", "/fonts/a.woff2", &[]).await.body, "woff2");

    // Nothing outside the root, however it is spelled.
    for p in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/fonts/%2e%2e/%2e%2e/secret.txt",
    ] {
        let a = get(&c, "GET", p, &[("Accept", "text/html")]).await;
        assert!(!a.body.contains("not for browsers"), "{p}: {a:?}");
    }
    // The WebSocket is where it was.
    let mut ws = Conn::open(&srv.url, &[]).await.unwrap();
    ws.connect(&ConnectOpts::with_token(TOKEN)).await.unwrap();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_config_needs_a_credential() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), json!({})).await;
    let c = http(&srv);
    let a = get(&c, "GET", "/control-ui-config.json", &[]).await;
    assert_eq!(a.status, 401, "{a:?}");
    let a = get(
        &c,
        "GET",
        "/control-ui-config.json",
        &[("Authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(a.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let a = get(
        &c,
        "GET",
        "/control-ui-config.json",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["basePath"], "");
    assert_eq!(v["terminalEnabled"], false);
    assert!(v.get("serverBuildId").is_none());
    // A device token clawgate issued works too, and ?token=.
    let mut ws = Conn::open(&srv.url, &[]).await.unwrap();
    let hello = ws
        .connect(&ConnectOpts::with_token(TOKEN).device(&DeviceIdentity::generate()))
        .await
        .unwrap();
    let dt = hello["auth"]["deviceToken"].as_str().unwrap();
    let a = get(
        &c,
        "GET",
        "/__openclaw__/control-ui-config.json",
        &[("Authorization", &format!("Bearer {dt}"))],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = get(
        &c,
        "GET",
        &format!("/control-ui-config.json?token={TOKEN}"),
        &[],
    )
    .await;
    assert_eq!(a.status, 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_path_a_missing_root_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), json!({"basePath": "openclaw/"})).await;
    let c = http(&srv);
    let a = get(&c, "GET", "/openclaw", &[]).await;
    assert_eq!(a.status, 302);
    assert_eq!(a.header("location"), Some("/openclaw/"));
    let a = get(&c, "GET", "/openclaw/", &[("Accept", "text/html")]).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("src=\"/openclaw/assets/index-A1.js\""));
    assert!(a
        .body
        .contains("data-openclaw-control-ui-base-path=\"/openclaw\""));
    let a = get(&c, "GET", "/openclaw/assets/index-A1.js", &[]).await;
    assert_eq!(a.body, "console.log('plain')");
    // Outside the mount: the gateway's own answer.
    assert_eq!(get(&c, "GET", "/", &[]).await.status, 426);
    let bearer = format!("Bearer {TOKEN}");
    let a = get(
        &c,
        "GET",
        "/openclaw/control-ui-config.json",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&a.body).unwrap()["basePath"],
        "/openclaw"
    );
    srv.stop().await;

    // A root without index.html: 503 that says what to do.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let srv = start(dir.path(), json!({"root": empty.display().to_string()})).await;
    let a = get(&http(&srv), "GET", "/", &[("Accept", "text/html")]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert!(a.body.contains("dist/control-ui"), "{}", a.body);
    srv.stop().await;

    // Disabled: not served.
    let srv = start(dir.path(), json!({"enabled": false})).await;
    assert_eq!(get(&http(&srv), "GET", "/", &[]).await.status, 426);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_trusted_proxy_mode_the_runtime_config_takes_the_proxys_word() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = json!({"gateway": {
        "auth": {
            "mode": "trusted-proxy",
            "trustedProxy": {"userHeader": "x-forwarded-user", "allowLoopback": true},
        },
        "trustedProxies": ["127.0.0.1"],
        "controlUi": {"root": ui_root(dir.path()).display().to_string()},
        "limits": {"workers": 1},
        "admin": {"port": 0},
    }});
    let srv = TestServer::start(cfg).await;
    let c = http(&srv);
    let xff = ("X-Forwarded-For", "203.0.113.7");
    let a = get(
        &c,
        "GET",
        "/control-ui-config.json",
        &[xff, ("X-Forwarded-User", "alice@example.test")],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    // Without the user header: 401 that says what is missing.
    let a = get(&c, "GET", "/control-ui-config.json", &[xff]).await;
    assert_eq!(a.status, 401, "{a:?}");
    assert!(
        a.body.contains("user header x-forwarded-user"),
        "{}",
        a.body
    );
    // The page itself needs no credential, as before.
    assert_eq!(get(&c, "GET", "/", &[xff]).await.status, 200);
    srv.stop().await;
}
