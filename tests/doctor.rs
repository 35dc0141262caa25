//! `clawgate doctor` run as the real binary: against an in-process server
//! (port 0, its own state dir) or against a config with no server at all.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::bin::{doctor_in, run_in, Out};
use common::client::{Conn, OpenError};
use common::server::{TestServer, TOKEN};
use serde_json::{json, Value};

/// Runs the binary with a clean environment (HOME in `home`).
async fn run(home: &Path, args: Vec<String>, env: Vec<(&str, &str)>) -> Out {
    let env = env
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_in(home, args, env).await
}

async fn doctor(srv: &TestServer, env: Vec<(&str, &str)>) -> Out {
    doctor_in(srv.dir.path(), env).await
}

/// The check with this id from `--json` output.
fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} check in {report:#}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn any_contains(v: &Value, needle: &str) -> bool {
    strings(v).iter().any(|s| s.contains(needle))
}

fn write_config(dir: &Path, text: &str) {
    let path = dir.join("openclaw.json");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_gateway_passes_every_check() {
    // The recommended layout: OpenClaw's keys in openclaw.json, clawgate's
    // in clawgate.json next to it.
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &json!({"gateway": {"auth": {"mode": "token", "token": TOKEN}}}).to_string(),
    );
    let own = dir.path().join("clawgate.json");
    std::fs::write(
        &own,
        json!({"gateway": {"limits": {"workers": 1}, "admin": {"port": 0}}}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600)).unwrap();
    let srv = TestServer::start_watching_in(dir, Value::Null, |d| {
        common::server::test_opts(d, Default::default())
    })
    .await;
    let cfg = srv.dir.path().join("openclaw.json");

    let out = doctor(&srv, vec![]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], true, "{v:#}");
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "config",
            "permissions",
            "listeners",
            "reload",
            "handshake",
            "rejections"
        ]
    );
    for c in v["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c:#}");
        assert!(strings(&c["fix"]).is_empty(), "{c:#}");
    }
    let handshake = check(&v, "handshake")["summary"].as_str().unwrap();
    assert!(handshake.contains("hello-ok"), "{handshake}");
    assert!(
        handshake.contains(&format!("gateway.auth.token in {}", cfg.display())),
        "{handshake}"
    );
    let listeners = check(&v, "listeners")["summary"].as_str().unwrap();
    assert!(
        listeners.contains(&srv.running().gateway_addr.to_string())
            && listeners.contains(&srv.running().admin_addr.to_string()),
        "{listeners}"
    );
    // The doctor's handshake was accepted: the server recorded no refusal.
    let rej = srv.admin().get("/admin/v1/diagnostics/rejections").await;
    assert_eq!(rej.json()["rejections"], json!([]), "{rej:?}");

    // The human form says the same and exits 0 as well.
    let human = run(
        srv.dir.path(),
        vec![
            "doctor".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--state-dir".into(),
            srv.dir.path().join("state").display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(human.code, 0, "{human:?}");
    assert!(human.stdout.contains("✔ handshake"), "{human:?}");
    assert!(!human.stdout.contains('✘'), "{human:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "{\n  gateway: {\n    port: 18789,,\n  },\n}\n");
    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(v["ok"], false);
    let c = check(&v, "config");
    assert_eq!(c["status"], "fail", "{c:#}");
    let path = dir.path().join("openclaw.json").display().to_string();
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("{path}:3:17: invalid JSON5")),
        "{summary}"
    );
    assert!(
        any_contains(&c["fix"], &format!("edit {path} at line 3, column 17")),
        "{c:#}"
    );
    // Without a config the ports and the secret are unknown.
    assert_eq!(check(&v, "listeners")["status"], "skip");
    assert_eq!(check(&v, "handshake")["status"], "skip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // The tests run as root, which reads any file whatever its mode: a
    // directory in place of the file is unreadable for everyone.
    let path = dir.path().join("openclaw.json");
    std::fs::create_dir(&path).unwrap();
    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    let c = check(&v, "config");
    assert_eq!(c["status"], "fail", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(summary.contains("cannot read the config file"), "{summary}");
    assert!(
        summary.contains(&format!("{} is a directory", path.display())),
        "{summary}"
    );
    assert!(
        any_contains(
            &c["fix"],
            &format!("--config {}", path.join("openclaw.json").display())
        ),
        "{c:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_proxy_rejections_name_the_peer_and_the_fix() {
    let srv = TestServer::default().await;
    // A reverse proxy on this host that clawgate does not trust.
    for _ in 0..3 {
        match Conn::open(&srv.url, &[("X-Forwarded-For", "203.0.113.9")]).await {
            Err(OpenError::Http { status: 403, .. }) => {}
            other => panic!("expected a 403 refusal, got {other:?}"),
        }
    }
    let out = doctor(&srv, vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    // The handshake itself is fine: it is the rejections that fail.
    assert_eq!(check(&v, "handshake")["status"], "ok", "{v:#}");
    let c = check(&v, "rejections");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        any_contains(
            &c["details"],
            "3 connections from 127.0.0.1 carried X-Forwarded-For but 127.0.0.1 is not a trusted proxy"
        ),
        "{c:#}"
    );
    assert!(
        any_contains(&c["fix"], "`clawgate proxies add 127.0.0.1`"),
        "{c:#}"
    );

    // Applying the fix the doctor printed clears the failure.
    let add = run(
        srv.dir.path(),
        vec![
            "proxies".into(),
            "add".into(),
            "127.0.0.1".into(),
            "--state-dir".into(),
            srv.dir.path().join("state").display().to_string(),
        ],
        vec![],
    )
    .await;
    assert_eq!(add.code, 0, "{add:?}");
    let out = doctor(&srv, vec![]).await;
    let v = out.json();
    let c = check(&v, "rejections");
    assert_eq!(c["status"], "ok", "{c:#}");
    assert!(any_contains(&c["details"], "resolved"), "{c:#}");
    assert!(strings(&c["fix"]).is_empty(), "{c:#}");
    // Only a permissions warning (the test config is mode 0644) is left.
    assert_eq!(out.code, 0, "{out:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_fails_the_handshake() {
    let srv = TestServer::default().await;
    let wrong = "another-token-0123456789abcdef";
    assert_ne!(wrong, TOKEN);
    let out = doctor(&srv, vec![("OPENCLAW_GATEWAY_TOKEN", wrong)]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(check(&v, "listeners")["status"], "ok", "{v:#}");
    let c = check(&v, "handshake");
    assert_eq!(c["status"], "fail", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.contains("rejected the configured token (AUTH_TOKEN_MISMATCH)"),
        "{summary}"
    );
    assert!(
        any_contains(
            &c["details"],
            "came from the environment variable OPENCLAW_GATEWAY_TOKEN"
        ),
        "{c:#}"
    );
    assert!(
        any_contains(&c["fix"], "unset OPENCLAW_GATEWAY_TOKEN"),
        "{c:#}"
    );
    // The rejections are read before the doctor's own handshake.
    assert_eq!(check(&v, "rejections")["status"], "ok", "{v:#}");
    let rej = srv.admin().get("/admin/v1/diagnostics/rejections").await;
    let list = rej.json()["rejections"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    assert_eq!(list[0]["reason"], "AUTH_TOKEN_MISMATCH");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_gateway_token_is_explained() {
    let srv = TestServer::default().await;
    let r = srv
        .admin()
        .post("/admin/v1/gateway/token/rotate", &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // The config file still holds the old token.
    let out = doctor(&srv, vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    let c = check(&v, "handshake");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        any_contains(&c["details"], "rotated through the admin API"),
        "{c:#}"
    );
    assert!(
        any_contains(&c["fix"], "`clawgate tokens rotate-gateway`"),
        "{c:#}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_is_named_with_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    write_config(
        dir.path(),
        &json!({"gateway": {"port": port, "auth": {"token": TOKEN}}}).to_string(),
    );
    std::fs::write(
        dir.path().join("clawgate.json"),
        json!({"gateway": {"admin": {"port": 0}}}).to_string(),
    )
    .unwrap();
    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    assert_eq!(check(&v, "config")["status"], "ok", "{v:#}");
    let c = check(&v, "listeners");
    assert_eq!(c["status"], "fail", "{c:#}");
    let summary = c["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!(
            "gateway port {port} on 127.0.0.1 is in use by another process (pid {}",
            std::process::id()
        )),
        "{summary}"
    );
    assert!(
        any_contains(&c["fix"], &format!("kill {}", std::process::id())),
        "{c:#}"
    );
    assert!(any_contains(&c["fix"], "gateway.port"), "{c:#}");
    assert!(any_contains(&c["fix"], "--port <N>"), "{c:#}");
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_gateway_with_free_ports_is_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    write_config(
        dir.path(),
        &json!({"gateway": {"port": port, "auth": {"token": TOKEN}}}).to_string(),
    );
    std::fs::write(
        dir.path().join("clawgate.json"),
        json!({"gateway": {"admin": {"port": 0}}}).to_string(),
    )
    .unwrap();
    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    let c = check(&v, "listeners");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .starts_with("clawgate is not running"),
        "{c:#}"
    );
    assert!(any_contains(&c["fix"], "clawgate serve --config"), "{c:#}");
    assert_eq!(check(&v, "handshake")["status"], "skip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_runtime_file_with_a_reused_pid_is_not_taken_for_clawgate() {
    let dir = tempfile::tempdir().unwrap();
    let free = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (gw, admin, port) = (free(), free(), free().port());
    write_config(
        dir.path(),
        &json!({"gateway": {"port": port, "auth": {"token": TOKEN}, "admin": {"port": 0}}})
            .to_string(),
    );
    // Left behind by a clawgate killed with -9; its pid now belongs to this
    // test process, which answers on neither address.
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        state.join("runtime.json"),
        json!({"gatewayAddr": gw.to_string(), "adminAddr": admin.to_string(), "pid": std::process::id()})
            .to_string(),
    )
    .unwrap();
    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    let c = check(&v, "listeners");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .starts_with("clawgate is not running"),
        "{c:#}"
    );
    assert!(
        any_contains(
            &c["details"],
            &format!("names pid {}, which is now", std::process::id())
        ),
        "{c:#}"
    );
    assert!(!any_contains(&c["fix"], "kill"), "{c:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_permissions_are_warnings_with_the_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    write_config(
        dir.path(),
        &json!({"gateway": {"port": port, "auth": {"token": TOKEN}, "admin": {"port": 0}}})
            .to_string(),
    );
    let cfg = dir.path().join("openclaw.json");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let admin_token = state.join("admin-token");
    std::fs::write(&admin_token, "secret-admin-token").unwrap();
    std::fs::set_permissions(&admin_token, std::fs::Permissions::from_mode(0o640)).unwrap();

    let out = doctor_in(dir.path(), vec![]).await;
    assert_eq!(out.code, 0, "warnings only: {out:?}");
    let v = out.json();
    let c = check(&v, "permissions");
    assert_eq!(c["status"], "warn", "{c:#}");
    assert_eq!(c["summary"], "3 permission problems", "{c:#}");
    assert!(
        any_contains(
            &c["details"],
            &format!(
                "{} (mode 0644) is readable by group and others and holds gateway.auth.token",
                cfg.display()
            )
        ),
        "{c:#}"
    );
    assert_eq!(
        strings(&c["fix"]),
        vec![
            format!("chmod 600 {}", cfg.display()),
            format!("chmod 700 {}", state.display()),
            format!("chmod 600 {}", admin_token.display()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_change_the_gateway_did_not_apply_is_reported() {
    // This server does not watch its file (like a container whose bind mount
    // no longer shows the host's file).
    let srv = TestServer::default().await;
    let cfg = srv.dir.path().join("openclaw.json");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut edited = srv.config.clone();
    edited["gateway"]["trustedProxies"] = json!(["10.0.0.1"]);
    std::fs::write(&cfg, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let v = doctor(&srv, vec![]).await.json();
    let r = check(&v, "reload");
    assert_eq!(r["status"], "warn", "{r:#}");
    assert!(
        any_contains(&r["details"], "differs from what the gateway loaded"),
        "{r:#}"
    );
    assert!(
        strings(&r["fix"]).contains(&"clawgate config reload".to_string()),
        "{r:#}"
    );

    // a broken edit that the gateway refused: a failure with the line
    std::fs::write(&cfg, "{\n  gateway: {,\n}\n").unwrap();
    let resp = srv
        .admin()
        .post("/admin/v1/config/reload", &json!({}))
        .await;
    assert_eq!(resp.status, 422);
    let out = doctor(&srv, vec![]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let v = out.json();
    let r = check(&v, "reload");
    assert_eq!(r["status"], "fail", "{r:#}");
    assert!(any_contains(&r["details"], "openclaw.json:2:"), "{r:#}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn front_door_upstream_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = gone.local_addr().unwrap().port();
    drop(gone);
    // The real gateway's file: exposed on the LAN, and holding a key
    // OpenClaw refuses.
    write_config(
        dir.path(),
        &json!({"gateway": {"port": up_port, "bind": "lan", "auth": {"token": TOKEN}, "admin": {"port": 0}}})
            .to_string(),
    );
    std::fs::write(
        dir.path().join("clawgate.json"),
        json!({"upstream": {"url": "auto"}, "gateway": {"port": 0}}).to_string(),
    )
    .unwrap();
    let out = doctor_in(dir.path(), vec![]).await;
    let v = out.json();
    let c = check(&v, "upstream");
    assert_eq!(c["status"], "fail", "{c:#}");
    assert!(
        c["summary"].as_str().unwrap().contains("not reachable"),
        "{c:#}"
    );
    assert!(
        any_contains(&c["details"], "remote clients can reach it around clawgate"),
        "{c:#}"
    );
    assert!(any_contains(&c["details"], "gateway.admin.port"), "{c:#}");
    assert!(any_contains(&c["fix"], "\"loopback\""), "{c:#}");
    assert!(any_contains(&c["fix"], "clawgate.json"), "{c:#}");
    // The real gateway does not trust clawgate as its proxy.
    assert!(
        any_contains(&c["details"], "does not include 127.0.0.1"),
        "{c:#}"
    );
    assert!(
        any_contains(
            &c["fix"],
            "add \"127.0.0.1\" to gateway.trustedProxies in openclaw.json"
        ),
        "{c:#}"
    );
    // Trusting it (a range will do) clears that.
    write_config(
        dir.path(),
        &json!({"gateway": {"port": up_port, "bind": "loopback", "auth": {"token": TOKEN}, "trustedProxies": ["127.0.0.0/8"]}})
            .to_string(),
    );
    let v = doctor_in(dir.path(), vec![]).await.json();
    let c = check(&v, "upstream");
    assert!(
        !any_contains(&c["details"], "does not include 127.0.0.1"),
        "{c:#}"
    );
    // Standalone reports have no upstream check.
    let standalone = tempfile::tempdir().unwrap();
    write_config(
        standalone.path(),
        &json!({"gateway": {"auth": {"token": TOKEN}}}).to_string(),
    );
    let v = doctor_in(standalone.path(), vec![]).await.json();
    assert!(
        !v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "upstream"),
        "{v:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loose_clawgate_file_is_a_warning_too() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &json!({"gateway": {"auth": {"token": TOKEN}}}).to_string(),
    );
    let cfg = dir.path().join("openclaw.json");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let own = dir.path().join("clawgate.json");
    std::fs::write(
        &own,
        r#"{ gateway: { admin: { port: 0 } }, upstream: { url: "ws://127.0.0.1:1", token: "the-upstream-token-0123456789" } }"#,
    )
    .unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o666)).unwrap();
    let v = doctor_in(dir.path(), vec![]).await.json();
    let c = check(&v, "permissions");
    assert_eq!(c["status"], "warn", "{c:#}");
    let o = own.display();
    assert!(
        any_contains(
            &c["details"],
            &format!("{o} (mode 0666) is readable by group and others and holds upstream.token")
        ),
        "{c:#}"
    );
    assert!(
        any_contains(
            &c["details"],
            &format!("{o} (mode 0666) is writable by group and others")
        ),
        "{c:#}"
    );
    assert_eq!(strings(&c["fix"]), vec![format!("chmod 600 {o}")], "{c:#}");
    // Fixed, it is named among what is fine.
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600)).unwrap();
    let v = doctor_in(dir.path(), vec![]).await.json();
    let c = check(&v, "permissions");
    assert!(
        c["summary"]
            .as_str()
            .unwrap()
            .contains("clawgate.json mode 0600"),
        "{c:#}"
    );
}
