//! clawgate: an OpenClaw-compatible gateway.
//!
//! `lib.rs` builds the application so the binary and the tests share it:
//! [`start`] opens the store, binds the gateway listener and returns a
//! [`Running`] handle.

pub mod admin;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod net;
pub mod store;
pub mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};

use config::{ConfigError, RuntimeConfig};
use gateway::GatewayState;
use store::{Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: String,
        source: std::io::Error,
        hint: &'static str,
    },
}

impl StartError {
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Config(_) => "config_invalid",
            StartError::Store(e) => e.code(),
            StartError::Bind { .. } => "bind_failed",
        }
    }
}

/// A running gateway.
pub struct Running {
    pub gateway_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Where the generated admin token is stored, when it was generated.
    pub admin_token_file: Option<std::path::PathBuf>,
    pub state: Arc<GatewayState>,
    admin: admin::AdminServer,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Tells sessions the gateway is going away (1012), stops the listener and
    /// waits for the workers to finish.
    pub async fn stop(self) {
        self.state
            .registry
            .broadcast("shutdown", serde_json::json!({"reason": "service restart"}));
        self.state
            .registry
            .close_where(|_| true, 1012, "service restart", None);
        self.handle.stop(true).await;
        let _ = self.task.await;
        self.admin.stop().await;
        let _ = self.state.flush_last_seen().await;
        let runtime = self.state.config.load().state_dir.join("runtime.json");
        if std::fs::read_to_string(&runtime)
            .is_ok_and(|t| t.contains(&format!("\"pid\":{}", std::process::id())))
        {
            let _ = std::fs::remove_file(runtime);
        }
        // Worker threads drop their handles to the state as they wind down; wait
        // (bounded) so that the database is closed when `stop` returns.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.state) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the server stops by itself.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The admin token: from the config (or `CLAWGATE_ADMIN_TOKEN`), else the one
/// generated once into `<state dir>/admin-token` (mode 0600).
fn admin_token(cfg: &RuntimeConfig) -> Result<([u8; 32], Option<std::path::PathBuf>), StoreError> {
    if let Some(t) = &cfg.gateway.admin.token {
        return Ok((*t.digest(), None));
    }
    let path = cfg.state_dir.join("admin-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Ok(_) | Err(_) => {
            let t = util::random_token();
            util::write_private_file(&path, t.as_bytes())?;
            t
        }
    };
    Ok((gateway::auth::sha256(&token), Some(path)))
}

/// Opens the state and binds the gateway and admin listeners.
pub async fn start(mut cfg: RuntimeConfig) -> Result<Running, StartError> {
    let state_dir = cfg.state_dir.clone();
    let store = Store::open(&state_dir)?;
    let token_key = store::load_or_create_key(&state_dir, "device-token.key")?;
    for w in config::overrides::apply(&mut cfg, &store.overrides()?, util::now_ms()) {
        tracing::warn!("{w}");
    }
    let (admin_digest, admin_token_file) = admin_token(&cfg)?;
    let admin_bind = cfg.gateway.admin.bind;
    let admin_port = cfg.gateway.admin.port;
    let admin_remote = cfg.gateway.admin.allow_remote;
    let grace = cfg.gateway.auth.previous_token;
    let bind = cfg.gateway.bind;
    let port = cfg.gateway.port;
    let workers = match cfg.gateway.limits.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => n,
    };
    let state = Arc::new(GatewayState::new(cfg, store, token_key));
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_state.clone()))
            .configure(gateway::configure)
    })
    .workers(workers)
    .disable_signals()
    .backlog(4096)
    .max_connections(200_000)
    .client_request_timeout(Duration::from_secs(10))
    .client_disconnect_timeout(Duration::from_millis(200))
    .shutdown_timeout(2);
    let server = server.bind((bind, port)).map_err(|e| StartError::Bind {
        addr: SocketAddr::new(bind, port).to_string(),
        hint: if e.kind() == std::io::ErrorKind::AddrInUse {
            " (is another gateway running? stop it, or choose another port with --port or gateway.port)"
        } else if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need privileges; use a port above 1024)"
        } else {
            ""
        },
        source: e,
    })?;
    let gateway_addr = server.addrs()[0];
    let admin = admin::start(
        state.clone(),
        admin_digest,
        admin_bind,
        admin_port,
        admin_remote,
    )
    .map_err(|e| StartError::Bind {
        addr: SocketAddr::new(admin_bind, admin_port).to_string(),
        hint: if e.kind() == std::io::ErrorKind::AddrInUse {
            " (the admin port is taken; set gateway.admin.port)"
        } else {
            ""
        },
        source: e,
    })?;
    let admin_addr = admin.addr;
    if let Some((prev, until)) = grace {
        admin::schedule_grace_end(state.clone(), prev, until);
    }
    let server = server.run();
    let weak = Arc::downgrade(&state);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.tick().await;
        loop {
            every.tick().await;
            let Some(state) = weak.upgrade() else { break };
            if let Err(e) = state.flush_last_seen().await {
                tracing::warn!(error = %e, "could not record last-seen times");
            }
        }
    });
    let handle = server.handle();
    let task = tokio::spawn(server);
    let runtime = serde_json::json!({
        "gatewayAddr": gateway_addr.to_string(),
        "adminAddr": admin_addr.to_string(),
        "pid": std::process::id(),
    });
    let _ = util::write_private_file(
        &state_dir.join("runtime.json"),
        runtime.to_string().as_bytes(),
    );
    Ok(Running {
        gateway_addr,
        admin_addr,
        admin_token_file,
        admin,
        state,
        handle,
        task,
    })
}
