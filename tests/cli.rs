//! The management commands (`clawgate devices|tokens|proxies …`) run as the
//! real binary against an in-process server's admin API.

mod common;

use common::bin::{run_in, Out};
use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::server::{config_with, TestServer, TOKEN};
use serde_json::{json, Value};

const REMOTE: &[(&str, &str)] = &[("X-Forwarded-For", "203.0.113.7")];

fn admin_token(srv: &TestServer) -> String {
    std::fs::read_to_string(srv.dir.path().join("state/admin-token"))
        .unwrap()
        .trim()
        .to_string()
}

/// `clawgate <args> --admin-url … --admin-token …`.
async fn cli(srv: &TestServer, args: &[&str]) -> Out {
    cli_token(srv, &admin_token(srv), args).await
}

async fn cli_token(srv: &TestServer, token: &str, args: &[&str]) -> Out {
    let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    v.extend([
        "--admin-url".into(),
        format!("http://{}", srv.running().admin_addr),
        // `=` form: a token may start with "-"
        format!("--admin-token={token}"),
    ]);
    run_in(srv.dir.path(), v, vec![]).await
}

fn fp(dev: &DeviceIdentity) -> String {
    format!("{}-{}", &dev.device_id[..8], &dev.device_id[8..16])
}

async fn proxied_server() -> TestServer {
    TestServer::start(config_with(json!({"trustedProxies": ["127.0.0.1"]}))).await
}

fn remote_opts(dev: &DeviceIdentity) -> ConnectOpts {
    ConnectOpts::with_token(TOKEN)
        .device(dev)
        .scopes(&["operator.read"])
}

/// A remote device asks to pair; returns the request id.
async fn ask_pairing(srv: &TestServer, dev: &DeviceIdentity) -> String {
    let mut c = Conn::open(&srv.url, REMOTE).await.expect("open remote");
    let f = c.connect(&remote_opts(dev)).await.unwrap_err();
    assert_eq!(f.code(), Some("NOT_PAIRED"));
    f.error.unwrap()["details"]["requestId"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn remote_connect(srv: &TestServer, dev: &DeviceIdentity) -> Result<Value, String> {
    let mut c = Conn::open(&srv.url, REMOTE).await.expect("open remote");
    let r = c
        .connect(&remote_opts(dev))
        .await
        .map_err(|f| f.to_string());
    if r.is_ok() {
        c.close().await;
    }
    r
}

/// A local device paired over the shared token; returns its device token.
async fn local_device(srv: &TestServer, dev: &DeviceIdentity) -> String {
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let hello = c
        .connect(&ConnectOpts::with_token(TOKEN).device(dev))
        .await
        .expect("local device pairs silently");
    c.close().await;
    hello["auth"]["deviceToken"].as_str().unwrap().to_string()
}

async fn device_token_works(srv: &TestServer, dev: &DeviceIdentity, token: &str) -> bool {
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    let ok = c
        .connect(&ConnectOpts::default().device(dev).device_token(token))
        .await
        .is_ok();
    if ok {
        c.close().await;
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_pending_request_and_approve_lets_the_device_connect() {
    let srv = proxied_server().await;
    let empty = cli(&srv, &["devices", "list"]).await.ok();
    assert!(
        empty.stdout.contains("No pending pairing requests."),
        "{empty:?}"
    );
    assert!(empty.stdout.contains("No paired devices."), "{empty:?}");

    let dev = DeviceIdentity::generate();
    let rid = ask_pairing(&srv, &dev).await;
    let out = cli(&srv, &["devices", "list"]).await.ok();
    assert!(
        out.stdout.contains("Pending pairing requests (1):"),
        "{out:?}"
    );
    assert!(out.stdout.contains(&rid), "{out:?}");
    assert!(out.stdout.contains(&fp(&dev)), "{out:?}");
    assert!(out.stdout.contains("203.0.113.7"), "{out:?}");
    assert!(out.stdout.contains("operator.read"), "{out:?}");
    assert!(
        !out.stdout.contains(&dev.device_id),
        "short fingerprints only: {out:?}"
    );

    let out = cli(&srv, &["devices", "list", "--pending", "--json"])
        .await
        .ok();
    let v = out.json();
    assert_eq!(v["requests"][0]["requestId"], rid.as_str());
    assert_eq!(v["requests"][0]["deviceId"], dev.device_id.as_str());
    assert!(v.get("devices").is_none());

    // not yet approved
    assert!(remote_connect(&srv, &dev).await.is_err());
    let out = cli(
        &srv,
        &["devices", "approve", &rid, "--label", "Kitchen tablet"],
    )
    .await
    .ok();
    assert!(out.stdout.contains("approved request"), "{out:?}");
    assert!(out.stdout.contains(&fp(&dev)), "{out:?}");
    assert!(out.stdout.contains("Kitchen tablet"), "{out:?}");
    let hello = remote_connect(&srv, &dev)
        .await
        .expect("approved device connects");
    assert!(hello["auth"]["deviceToken"].as_str().is_some());

    let out = cli(&srv, &["devices", "list"]).await.ok();
    assert!(
        out.stdout.contains("No pending pairing requests."),
        "{out:?}"
    );
    assert!(out.stdout.contains("Paired devices (1):"), "{out:?}");
    assert!(out.stdout.contains("Kitchen tablet"), "{out:?}");
    assert!(
        out.stdout.contains("just now") || out.stdout.contains(" ago"),
        "relative ages: {out:?}"
    );

    let v = cli(&srv, &["devices", "list", "--all", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v["devices"][0]["deviceId"], dev.device_id.as_str());
    assert_eq!(v["devices"][0]["label"], "Kitchen tablet");
    assert!(v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["requestId"] == rid.as_str() && r["status"] == "approved"));

    // approving again: the API's detail on stderr, non-zero exit
    let out = cli(&srv, &["devices", "approve", &rid]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already approved"), "{out:?}");
    assert!(out.stderr.contains("409 conflict"), "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_with_scopes_and_json() {
    let srv = proxied_server().await;
    let dev = DeviceIdentity::generate();
    let rid = ask_pairing(&srv, &dev).await;
    // a unique prefix of the request id is enough
    let v = cli(
        &srv,
        &[
            "devices",
            "approve",
            &rid[..8],
            "--scope",
            "operator.read",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(v["requestId"], rid.as_str());
    assert_eq!(v["status"], "approved");
    assert_eq!(v["device"]["scopes"], json!(["operator.read"]));
    assert!(remote_connect(&srv, &dev).await.is_ok());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_rename_and_remove() {
    let srv = proxied_server().await;
    let refused = DeviceIdentity::generate();
    let rid = ask_pairing(&srv, &refused).await;
    let out = cli(&srv, &["devices", "reject", &rid]).await.ok();
    assert!(out.stdout.contains("rejected request"), "{out:?}");
    assert!(out.stdout.contains(&fp(&refused)), "{out:?}");
    let v = cli(&srv, &["devices", "list", "--pending", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v["requests"], json!([]));
    let out = cli(&srv, &["devices", "list", "--all"]).await.ok();
    assert!(out.stdout.contains("rejected"), "{out:?}");

    let dev = DeviceIdentity::generate();
    let rid = ask_pairing(&srv, &dev).await;
    cli(&srv, &["devices", "approve", &rid]).await.ok();
    // rename by fingerprint
    let out = cli(&srv, &["devices", "rename", &fp(&dev), "work laptop"])
        .await
        .ok();
    assert!(out.stdout.contains("work laptop"), "{out:?}");
    let v = cli(&srv, &["devices", "list", "--json"]).await.ok().json();
    assert_eq!(v["devices"][0]["label"], "work laptop");
    // an invalid label is refused by the API
    let out = cli(
        &srv,
        &["devices", "rename", &dev.device_id, &"x".repeat(65)],
    )
    .await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("label"), "{out:?}");

    // remove by full id (and by label it would resolve too)
    let v = cli(&srv, &["devices", "remove", &dev.device_id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v["removed"], true);
    assert_eq!(v["deviceId"], dev.device_id.as_str());
    let v = cli(&srv, &["devices", "list", "--json"]).await.ok().json();
    assert_eq!(v["devices"], json!([]));
    // removed: it has to pair again
    let err = remote_connect(&srv, &dev).await.unwrap_err();
    assert!(
        err.contains("NOT_PAIRED") || err.contains("pairing"),
        "{err}"
    );
    // removing it again: 404 detail, non-zero exit
    let out = cli(&srv, &["devices", "remove", &dev.device_id]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("404 not_found"), "{out:?}");
    assert!(out.stderr.contains(&dev.device_id), "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_token_rotate_and_revoke() {
    let srv = TestServer::default().await;
    let dev = DeviceIdentity::generate();
    let token = local_device(&srv, &dev).await;
    assert!(device_token_works(&srv, &dev, &token).await);

    let out = cli(
        &srv,
        &[
            "tokens",
            "rotate",
            "--device",
            &fp(&dev),
            "--role",
            "operator",
        ],
    )
    .await
    .ok();
    assert!(out.stdout.contains("rotated the operator token"), "{out:?}");
    assert!(out.stdout.contains(&fp(&dev)), "{out:?}");
    assert!(!device_token_works(&srv, &dev, &token).await);
    // the device picks up its new token over the shared token
    let token2 = local_device(&srv, &dev).await;
    assert_ne!(token, token2);
    assert!(device_token_works(&srv, &dev, &token2).await);

    let v = cli(
        &srv,
        &[
            "tokens",
            "revoke",
            "--device",
            &dev.device_id,
            "--role",
            "operator",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(v["role"], "operator");
    assert!(v["revokedAtMs"].as_u64().is_some());
    assert!(!device_token_works(&srv, &dev, &token2).await);

    // an unknown role: the API's detail, non-zero exit
    let out = cli(
        &srv,
        &[
            "tokens",
            "rotate",
            "--device",
            &dev.device_id,
            "--role",
            "bogus",
        ],
    )
    .await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.starts_with("clawgate: "), "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_gateway_prints_a_token_that_works() {
    let srv = TestServer::default().await;
    let out = cli(&srv, &["tokens", "rotate-gateway"]).await.ok();
    let token = out.stdout.trim().to_string();
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the token on stdout: {out:?}"
    );
    assert!(token.len() >= 32, "{out:?}");
    assert!(out.stderr.contains("shown only this once"), "{out:?}");
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(&token))
        .await
        .expect("the new token works");
    c.close().await;
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    assert!(c.connect(&ConnectOpts::with_token(TOKEN)).await.is_err());

    // with a grace window, as JSON
    let v = cli(
        &srv,
        &["tokens", "rotate-gateway", "--grace", "60", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(v["graceSeconds"], 60);
    let token3 = v["token"].as_str().unwrap();
    for t in [token.as_str(), token3] {
        let mut c = Conn::open(&srv.url, &[]).await.unwrap();
        c.connect(&ConnectOpts::with_token(t))
            .await
            .expect("new and (during grace) previous token work");
        c.close().await;
    }
    let out = cli(&srv, &["tokens", "rotate-gateway", "--grace", "999999"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("graceSeconds"), "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mint_scoped_admin_token() {
    let srv = TestServer::default().await;
    let out = cli(
        &srv,
        &[
            "tokens",
            "mint",
            "--scope",
            "pairing:read",
            "--scope",
            "config:read",
            "--ttl",
            "600",
            "--label",
            "ci",
        ],
    )
    .await
    .ok();
    let jwt = out.stdout.trim().to_string();
    assert!(jwt.starts_with("cgadm_"), "{out:?}");
    assert!(out.stderr.contains("pairing:read,config:read"), "{out:?}");
    // the minted token reads …
    cli_token(&srv, &jwt, &["devices", "list"]).await.ok();
    cli_token(&srv, &jwt, &["proxies", "list"]).await.ok();
    // … but may not write
    let out = cli_token(&srv, &jwt, &["proxies", "add", "10.0.0.1"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("config:write"), "{out:?}");
    assert!(out.stderr.contains("403"), "{out:?}");

    let v = cli(&srv, &["tokens", "mint", "--scope", "admin", "--json"])
        .await
        .ok()
        .json();
    assert!(v["token"].as_str().is_some());
    assert_eq!(v["scopes"], json!(["admin"]));
    assert!(v["jti"].as_str().is_some());

    let out = cli(&srv, &["tokens", "mint", "--scope", "everything"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown scope"), "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_add_list_remove() {
    let srv = TestServer::default().await;
    let out = cli(&srv, &["proxies", "list"]).await.ok();
    assert!(out.stdout.contains("No trusted proxies"), "{out:?}");

    let out = cli(&srv, &["proxies", "add", "10.0.0.0/8"]).await.ok();
    assert!(out.stdout.contains("added 10.0.0.0/8"), "{out:?}");
    cli(&srv, &["proxies", "add", "192.168.1.7"]).await.ok();
    cli(&srv, &["proxies", "add", "fd00::/8"]).await.ok();
    let out = cli(&srv, &["proxies", "add", "192.168.1.7"]).await.ok();
    assert!(out.stdout.contains("already trusted"), "{out:?}");

    let out = cli(&srv, &["proxies", "list"]).await.ok();
    for e in ["10.0.0.0/8", "192.168.1.7", "fd00::/8"] {
        assert!(out.stdout.contains(e), "{out:?}");
    }
    let v = cli(&srv, &["proxies", "list", "--json"]).await.ok().json();
    assert_eq!(
        v["entries"],
        json!(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
    );

    // dry run: shown, not applied
    let v = cli(
        &srv,
        &["proxies", "add", "172.17.0.0/16", "--dry-run", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(v["applied"], false);
    assert_eq!(v["changed"], true);
    let out = cli(&srv, &["proxies", "add", "172.17.0.0/16", "--dry-run"])
        .await
        .ok();
    assert!(out.stdout.contains("dry run"), "{out:?}");
    let v = cli(&srv, &["proxies", "list", "--json"]).await.ok().json();
    assert_eq!(v["entries"].as_array().unwrap().len(), 3);

    // removing CIDR ranges (a '/' in the path) and a single address
    let out = cli(&srv, &["proxies", "remove", "10.0.0.0/8"]).await.ok();
    assert!(out.stdout.contains("removed 10.0.0.0/8"), "{out:?}");
    cli(&srv, &["proxies", "remove", "fd00::/8"]).await.ok();
    let v = cli(&srv, &["proxies", "remove", "192.168.1.7", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v["entries"], json!([]));
    assert_eq!(v["applied"], true);

    // a bad entry: non-zero exit, the message names it
    let out = cli(&srv, &["proxies", "add", "not-an-ip"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not-an-ip"), "{out:?}");
    assert!(out.stderr.contains("hint:"), "{out:?}");
    let out = cli(&srv, &["proxies", "add", "10.0.0.0/33"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("10.0.0.0/33"), "{out:?}");
    // removing what is not there
    let out = cli(&srv, &["proxies", "remove", "10.9.9.9"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("10.9.9.9"), "{out:?}");
    let v = cli(&srv, &["proxies", "list", "--json"]).await.ok().json();
    assert_eq!(v["entries"], json!([]));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_exits_with_the_401_detail() {
    let srv = TestServer::default().await;
    for args in [
        &["devices", "list"][..],
        &["proxies", "add", "10.0.0.1"][..],
        &["tokens", "rotate-gateway"][..],
    ] {
        let out = cli_token(&srv, "not-the-admin-token", args).await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(out.stderr.contains("invalid admin token"), "{out:?}");
        assert!(out.stderr.contains("401"), "{out:?}");
        assert!(out.stderr.contains("hint:"), "{out:?}");
    }
    // nothing changed
    let mut c = Conn::open(&srv.url, &[]).await.unwrap();
    c.connect(&ConnectOpts::with_token(TOKEN)).await.unwrap();
    c.close().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_machine_discovery_through_the_state_dir() {
    let mut srv = TestServer::default().await;
    let state = srv.dir.path().join("state");
    let state_s = state.to_str().unwrap().to_string();
    // --state-dir: runtime.json and admin-token from there
    let out = run_in(
        srv.dir.path(),
        vec![
            "devices".into(),
            "list".into(),
            "--state-dir".into(),
            state_s.clone(),
        ],
        vec![],
    )
    .await
    .ok();
    assert!(out.stdout.contains("No paired devices."), "{out:?}");
    // --state-dir before the subcommand works too
    let out = run_in(
        srv.dir.path(),
        vec![
            "--state-dir".into(),
            state_s.clone(),
            "proxies".into(),
            "add".into(),
            "10.1.2.3".into(),
        ],
        vec![],
    )
    .await
    .ok();
    assert!(out.stdout.contains("added 10.1.2.3"), "{out:?}");
    // CLAWGATE_STATE_DIR
    let out = run_in(
        srv.dir.path(),
        vec!["proxies".into(), "list".into(), "--json".into()],
        vec![("CLAWGATE_STATE_DIR".into(), state_s.clone())],
    )
    .await
    .ok();
    assert_eq!(out.json()["entries"], json!(["10.1.2.3"]));
    // CLAWGATE_ADMIN_TOKEN overrides the file
    let out = run_in(
        srv.dir.path(),
        vec!["proxies".into(), "list".into()],
        vec![
            ("CLAWGATE_STATE_DIR".into(), state_s.clone()),
            ("CLAWGATE_ADMIN_TOKEN".into(), "wrong".into()),
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("invalid admin token"), "{out:?}");

    // no server in that state dir: a clear message naming where it looked
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_in(
        elsewhere.path(),
        vec![
            "devices".into(),
            "list".into(),
            "--state-dir".into(),
            elsewhere.path().to_str().unwrap().into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is clawgate running?"), "{out:?}");
    assert!(
        out.stderr.contains(elsewhere.path().to_str().unwrap()),
        "{out:?}"
    );
    // the default is ~/.openclaw/clawgate
    let out = run_in(
        elsewhere.path(),
        vec!["proxies".into(), "list".into()],
        vec![],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains(".openclaw/clawgate"), "{out:?}");

    // the server stopped cleanly: it removed runtime.json
    let dir = srv.dir.path().to_path_buf();
    srv.running.take().expect("running").stop().await;
    assert!(!dir.join("state/runtime.json").exists());
    let out = run_in(
        &dir,
        vec![
            "devices".into(),
            "list".into(),
            "--state-dir".into(),
            state_s,
        ],
        vec![],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("found none"), "{out:?}");
    assert!(out.stderr.contains("is clawgate running?"), "{out:?}");
    // a stale file (a crashed server) is reported as refused
    std::fs::write(
        dir.join("state/runtime.json"),
        r#"{"gatewayAddr":"127.0.0.1:9","adminAddr":"127.0.0.1:9","pid":1}"#,
    )
    .unwrap();
    let out = run_in(
        &dir,
        vec![
            "devices".into(),
            "list".into(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("connection refused"), "{out:?}");
    assert!(out.stderr.contains("runtime.json"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_url_that_refuses_connections() {
    // a port that was just free
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let out = run_in(
        home.path(),
        vec![
            "devices".into(),
            "list".into(),
            "--admin-url".into(),
            format!("127.0.0.1:{port}"),
            "--admin-token".into(),
            "x".into(),
        ],
        vec![],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is clawgate running"), "{out:?}");
    assert!(out.stderr.contains(&format!("127.0.0.1:{port}")), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_explain_and_reload() {
    let srv = TestServer::start(config_with(json!({"trustedProxies": ["10.1.2.3"]}))).await;
    let out = cli(&srv, &["config", "show", "--explain"]).await.ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("gateway.trustedProxies"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(line.contains("10.1.2.3"), "{line}");
    assert!(line.contains("openclaw.json:"), "{line}");
    let port = out
        .stdout
        .lines()
        .find(|l| l.starts_with("gateway.port "))
        .unwrap();
    assert!(port.ends_with("flag --port"), "{port}");
    assert!(!out.stdout.contains(TOKEN));
    let j = cli(&srv, &["config", "show", "--explain", "--json"])
        .await
        .ok()
        .json();
    assert!(j["keys"].as_array().unwrap().len() > 30);
    // reload after an edit (this server does not watch the file)
    let mut cfg = config_with(json!({"trustedProxies": ["10.9.9.9"]}));
    cfg["gateway"]["auth"]["token"] = json!(TOKEN);
    std::fs::write(
        srv.dir.path().join("openclaw.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let out = cli(&srv, &["config", "reload"]).await.ok();
    assert!(
        out.stdout.contains("changed gateway.trustedProxies"),
        "{out:?}"
    );
    let out = cli(&srv, &["config", "reload"]).await.ok();
    assert!(out.stdout.starts_with("unchanged"), "{out:?}");
    // a broken file: exit 1 with line and column, nothing applied
    std::fs::write(
        srv.dir.path().join("openclaw.json"),
        "{\n  gateway: {,\n}\n",
    )
    .unwrap();
    let out = cli(&srv, &["config", "reload"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("openclaw.json:2:"), "{out:?}");
    let j = cli(&srv, &["proxies", "list", "--json"]).await.ok().json();
    assert_eq!(j["entries"], json!(["10.9.9.9"]));
    srv.stop().await;
}
