//! Starts the real server in-process on port 0 with a temporary state dir.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use clawgate::config::{self, LoadOptions};
use clawgate::Running;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub config: Value,
}

/// A config with a token, one worker and the given extra `gateway` keys merged in.
pub fn config_with(extra_gateway: Value) -> Value {
    let mut gw = serde_json::json!({
        "auth": {"mode": "token", "token": TOKEN},
        "limits": {"workers": 1},
        "admin": {"port": 0},
    });
    if let (Some(base), Some(extra)) = (gw.as_object_mut(), extra_gateway.as_object()) {
        for (k, v) in extra {
            if let (Some(Value::Object(b)), Value::Object(e)) = (base.get_mut(k), v) {
                for (ik, iv) in e {
                    b.insert(ik.clone(), iv.clone());
                }
            } else {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::json!({ "gateway": gw })
}

/// Writes `cfg` as `<dir>/openclaw.json`; a top-level `"clawgate.json"` key
/// is written as the clawgate file next to it instead.
fn load(dir: &std::path::Path, cfg: &Value) -> clawgate::config::RuntimeConfig {
    let path = dir.join("openclaw.json");
    let mut cfg = cfg.clone();
    if let Some(own) = cfg.as_object_mut().and_then(|o| o.remove("clawgate.json")) {
        std::fs::write(dir.join("clawgate.json"), own.to_string()).unwrap();
    }
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    config::load(&test_opts(dir, BTreeMap::new())).expect("valid test config")
}

/// Load options for a test dir: `<dir>/openclaw.json`, `<dir>/state`, port 0 flags.
pub fn test_opts(dir: &std::path::Path, env: BTreeMap<String, String>) -> LoadOptions {
    LoadOptions {
        config_path: Some(dir.join("openclaw.json")),
        state_dir: Some(dir.join("state")),
        port: Some(0),
        bind: None,
        admin_port: Some(0),
        env,
        generate_token: true,
        ..Default::default()
    }
}

impl TestServer {
    pub async fn start(cfg: Value) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let running = clawgate::start(load(dir.path(), &cfg))
            .await
            .expect("server starts");
        let url = format!("ws://{}/", running.gateway_addr);
        TestServer {
            running: Some(running),
            dir,
            url,
            config: cfg,
        }
    }

    /// Starts with file watching on, from custom load options (the config
    /// file `<dir>/openclaw.json` is written from `cfg` first).
    pub async fn start_watching_with(
        cfg: Value,
        opts: impl FnOnce(&std::path::Path) -> LoadOptions,
    ) -> TestServer {
        Self::start_watching_in(tempfile::tempdir().unwrap(), cfg, opts).await
    }

    /// Like [`Self::start_watching_with`] in a prepared dir (`cfg` null = the
    /// config file is already there).
    pub async fn start_watching_in(
        dir: tempfile::TempDir,
        cfg: Value,
        opts: impl FnOnce(&std::path::Path) -> LoadOptions,
    ) -> TestServer {
        Self::start_in(dir, cfg, opts, false).await
    }

    /// Watching by polling only (as on a mount without file events).
    pub async fn start_polling(cfg: Value) -> TestServer {
        Self::start_in(
            tempfile::tempdir().unwrap(),
            cfg,
            |d| test_opts(d, BTreeMap::new()),
            true,
        )
        .await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        cfg: Value,
        opts: impl FnOnce(&std::path::Path) -> LoadOptions,
        poll_only: bool,
    ) -> TestServer {
        if !cfg.is_null() {
            std::fs::write(
                dir.path().join("openclaw.json"),
                serde_json::to_string_pretty(&cfg).unwrap(),
            )
            .unwrap();
        }
        let loaded = config::load(&opts(dir.path())).expect("valid test config");
        let running = clawgate::start_with(
            loaded,
            clawgate::StartOptions {
                watch: true,
                poll_only,
            },
        )
        .await
        .expect("server starts");
        let url = format!("ws://{}/", running.gateway_addr);
        TestServer {
            running: Some(running),
            dir,
            url,
            config: cfg,
        }
    }

    /// Starts with file watching on (port 0 flags).
    pub async fn start_watching(cfg: Value) -> TestServer {
        Self::start_watching_with(cfg, |d| test_opts(d, BTreeMap::new())).await
    }

    /// The config file.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("openclaw.json")
    }

    pub async fn default() -> TestServer {
        Self::start(config_with(serde_json::json!({}))).await
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Stops the server and starts it again on the same state dir and port 0.
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        let running = clawgate::start(load(self.dir.path(), &self.config))
            .await
            .expect("server restarts");
        self.url = format!("ws://{}/", running.gateway_addr);
        self.running = Some(running);
    }

    /// The generated admin token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("state/admin-token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    /// An admin API client with the admin token.
    pub fn admin(&self) -> super::http::Admin {
        super::http::Admin::new(self.running().admin_addr, &self.admin_token())
    }

    /// Waits (bounded) until the server's live-connection count is `n`.
    pub async fn wait_live(&self, n: usize) -> usize {
        let state = &self.running().state;
        for _ in 0..500 {
            if state.live_connections() == n {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        state.live_connections()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// A port that was free a moment ago (for tests that need a fixed one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
