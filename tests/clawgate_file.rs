//! clawgate's own settings file (`clawgate.json`) next to `openclaw.json`,
//! and the front-door settings (`upstream.*`): layering, provenance, the
//! keys that moved out of `openclaw.json`, live reload of either file.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clawgate::config::{self, LoadOptions, Mode, UpstreamSecret};
use common::http::sse_event;
use common::server::{test_opts, TestServer};
use serde_json::{json, Value};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn opts(&self, env: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            config_path: Some(self.0.path().join("openclaw.json")),
            state_dir: Some(self.0.path().join("state")),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }
}

const OPENCLAW: &str = r#"{
  gateway: {
    port: 18790,
    bind: "loopback",
    auth: { mode: "token", token: "the-shared-token-0123456789" },
  },
}"#;

fn key<'a>(explain: &'a Value, k: &str) -> &'a Value {
    explain["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == k)
        .unwrap_or_else(|| panic!("{k} missing"))
}

#[test]
fn the_clawgate_file_layers_over_openclaw_json_and_says_so() {
    let d = Dir::new();
    d.write(
        "openclaw.json",
        "{ gateway: { auth: { token: 'the-shared-token-0123456789' },\n  pairing: { pendingTtlMs: 60000 } } }",
    );
    let own = d.write(
        "clawgate.json",
        "// clawgate's own settings\n{\n  gateway: {\n    pairing: { pendingTtlMs: 120000 },\n  },\n}\n",
    );
    let cfg = config::load(&d.opts(&[])).unwrap();
    assert_eq!(cfg.own_file.as_deref(), Some(own.as_path()));
    assert_eq!(cfg.gateway.pairing.pending_ttl_ms, 120_000);
    assert_eq!(cfg.mode(), Mode::Standalone);
    let e = config::explain::explain(&cfg);
    let src = &key(&e, "gateway.pairing.pendingTtlMs")["source"];
    assert_eq!(src["kind"], "file");
    assert_eq!(src["file"], own.display().to_string());
    assert_eq!(src["line"], 4, "{src}");
    // The openclaw.json value is named as shadowed, with how to release it.
    let sh = e["shadowed"].as_array().unwrap();
    let s = sh
        .iter()
        .find(|x| x["key"] == "gateway.pairing.pendingTtlMs")
        .unwrap_or_else(|| panic!("{e}"));
    assert_eq!(s["fileValue"], 60_000);
    assert!(
        s["release"].as_str().unwrap().contains("clawgate.json"),
        "{s}"
    );
    // A clawgate key inside openclaw.json is read, with a warning that says
    // OpenClaw refuses it and where it belongs.
    let w = cfg
        .warnings
        .iter()
        .find(|w| w.starts_with("gateway.pairing.pendingTtlMs"))
        .unwrap_or_else(|| panic!("{:?}", cfg.warnings));
    assert!(
        w.contains("Unrecognized key") && w.contains("clawgate.json"),
        "{w}"
    );
    assert!(
        w.contains("gateway: { pairing: { pendingTtlMs: … } }"),
        "{w}"
    );
    // A clean openclaw.json gets no such warning.
    d.write("openclaw.json", OPENCLAW);
    let cfg = config::load(&d.opts(&[])).unwrap();
    assert!(
        !cfg.warnings.iter().any(|w| w.contains("Unrecognized key")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn upstream_auto_takes_the_port_and_the_secret_from_openclaw_json() {
    let d = Dir::new();
    d.write("openclaw.json", OPENCLAW);
    d.write(
        "clawgate.json",
        "{ upstream: { url: 'auto' }, gateway: { port: 18789, bind: 'lan' } }",
    );
    let cfg = config::load(&d.opts(&[])).unwrap();
    assert_eq!(cfg.mode(), Mode::FrontDoor);
    let u = cfg.gateway.upstream.as_ref().unwrap();
    assert_eq!(u.url, "ws://127.0.0.1:18790");
    assert!(u.derived);
    assert_eq!(u.secret_from, "openclaw.json gateway.auth.token");
    match &u.secret {
        UpstreamSecret::Token(t) => assert_eq!(t.expose(), Some("the-shared-token-0123456789")),
        other => panic!("{other:?}"),
    }
    // clawgate's own listener comes from clawgate.json, not from the
    // upstream's gateway.port / bind; clients keep the same shared token.
    assert_eq!(cfg.gateway.port, 18789);
    assert_eq!(cfg.gateway.bind.to_string(), "0.0.0.0");
    assert!(cfg.gateway.auth.token.is_some());
    let e = config::explain::explain(&cfg);
    assert_eq!(e["mode"], "front-door");
    assert_eq!(key(&e, "upstream.url")["value"], "ws://127.0.0.1:18790");
    assert_eq!(key(&e, "gateway.port")["source"]["kind"], "file");
    assert!(key(&e, "gateway.port")["source"]["file"]
        .as_str()
        .unwrap()
        .ends_with("clawgate.json"));
    // The real gateway's own environment variable wins, as it does there.
    let cfg =
        config::load(&d.opts(&[("OPENCLAW_GATEWAY_TOKEN", "from-the-env-0123456789")])).unwrap();
    let u = cfg.gateway.upstream.unwrap();
    assert_eq!(u.secret_from, "OPENCLAW_GATEWAY_TOKEN");
    // An explicit upstream.token wins over both.
    d.write(
        "clawgate.json",
        "{ upstream: { url: 'ws://127.0.0.1:18790', token: 'upstream-only-token-0123' }, gateway: { port: 18789 } }",
    );
    let u = config::load(&d.opts(&[]))
        .unwrap()
        .gateway
        .upstream
        .unwrap();
    assert_eq!((u.secret_from, u.derived), ("upstream.token", false));
}

#[test]
fn the_upstream_can_come_from_a_flag_or_the_environment() {
    let d = Dir::new();
    d.write("openclaw.json", OPENCLAW);
    let mut o = d.opts(&[]);
    o.upstream = Some("auto".into());
    o.port = Some(18789);
    let cfg = config::load(&o).unwrap();
    assert_eq!(cfg.gateway.upstream.unwrap().url, "ws://127.0.0.1:18790");
    let mut o = d.opts(&[("CLAWGATE_UPSTREAM__URL", "http://localhost:18790/")]);
    o.port = Some(18789);
    let cfg = config::load(&o).unwrap();
    assert_eq!(
        cfg.gateway.upstream.unwrap().url,
        "ws://localhost:18790",
        "http:// is taken as its WebSocket form"
    );
}

#[test]
fn a_listener_on_the_upstreams_port_and_bad_urls_are_refused() {
    let d = Dir::new();
    d.write(
        "openclaw.json",
        "{ gateway: { auth: { token: 'the-shared-token-0123456789' } } }",
    );
    let own = d.write(
        "clawgate.json",
        "{\n  upstream: {\n    url: 'auto',\n  },\n}\n",
    );
    let e = config::load(&d.opts(&[])).unwrap_err();
    let i = e.issues.iter().find(|i| i.path == "upstream.url").unwrap();
    assert!(i.message.contains("both listen on port 18789"), "{e}");
    assert_eq!(i.file.as_deref(), Some(own.as_path()));
    assert_eq!(i.line, Some(3), "{e}");
    for (url, says) in [
        ("ftp://127.0.0.1:1", "not a gateway URL"),
        ("ws://user:secret@127.0.0.1:1", "upstream.token"),
        ("not a url", "not a URL"),
    ] {
        d.write(
            "clawgate.json",
            &format!("{{ upstream: {{ url: {url:?} }} }}"),
        );
        let e = config::load(&d.opts(&[])).unwrap_err().to_string();
        assert!(e.contains(says), "{url}: {e}");
        assert!(
            !e.contains("secret@"),
            "the URL's credential is not echoed: {e}"
        );
    }
    d.write(
        "clawgate.json",
        "{ upstream: { url: 'ws://192.0.2.7:18790' } }",
    );
    let cfg = config::load(&d.opts(&[])).unwrap();
    assert!(
        cfg.warnings.iter().any(|w| w.contains("not on loopback")),
        "{:?}",
        cfg.warnings
    );
}

#[test]
fn an_explicit_clawgate_file_must_exist() {
    let d = Dir::new();
    d.write("openclaw.json", OPENCLAW);
    let mut o = d.opts(&[]);
    o.clawgate_config_path = Some(d.0.path().join("nope.json"));
    let e = config::load(&o).unwrap_err().to_string();
    assert!(e.contains("nope.json"), "{e}");
    let o = d.opts(&[(
        "CLAWGATE_CONFIG",
        d.0.path().join("missing.json").to_str().unwrap(),
    )]);
    assert!(config::load(&o).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_to_the_clawgate_file_apply_live_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("openclaw.json"),
        serde_json::to_string(&json!({"gateway": {"auth": {"mode": "token", "token": "the-shared-token-0123456789"}}})).unwrap(),
    )
    .unwrap();
    let own = dir.path().join("clawgate.json");
    std::fs::write(
        &own,
        "{ gateway: { limits: { workers: 1 }, pairing: { pendingTtlMs: 60000 } } }",
    )
    .unwrap();
    let srv =
        TestServer::start_watching_in(dir, Value::Null, |d| test_opts(d, BTreeMap::new())).await;
    let admin = srv.admin();
    let ttl = |e: Value| key(&e, "gateway.pairing.pendingTtlMs")["value"].clone();
    assert_eq!(
        ttl(admin.get("/admin/v1/config?explain=true").await.json()),
        60_000
    );

    let rx = admin.sse();
    std::fs::write(
        &own,
        "{ gateway: { limits: { workers: 1 }, pairing: { pendingTtlMs: 90000 } } }",
    )
    .unwrap();
    let ev = tokio::task::spawn_blocking(move || {
        sse_event(&rx, "config.reloaded", Duration::from_secs(5))
    })
    .await
    .unwrap()
    .expect("the clawgate.json edit is applied");
    assert!(
        ev["changed"]
            .as_array()
            .unwrap()
            .contains(&json!("gateway.pairing.pendingTtlMs")),
        "{ev}"
    );
    assert_eq!(
        ttl(admin.get("/admin/v1/config?explain=true").await.json()),
        90_000
    );

    // A broken edit is refused with its line in clawgate.json; the last
    // good configuration keeps serving.
    let rx = admin.sse();
    std::fs::write(
        &own,
        "{\n  gateway: {\n    pairing: { pendingTtlMs: 'soon' },\n  },\n}\n",
    )
    .unwrap();
    let ev = tokio::task::spawn_blocking(move || {
        sse_event(&rx, "config.reload_failed", Duration::from_secs(5))
    })
    .await
    .unwrap()
    .expect("the bad edit is reported");
    let issue = &ev["error"]["issues"][0];
    assert!(
        issue["file"].as_str().unwrap().ends_with("clawgate.json"),
        "{ev}"
    );
    assert_eq!(issue["line"], 3, "{ev}");
    assert_eq!(
        ttl(admin.get("/admin/v1/config?explain=true").await.json()),
        90_000
    );
    srv.stop().await;
}
