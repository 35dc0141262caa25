//! clawgate: an OpenClaw-compatible gateway.
//!
//! `lib.rs` builds the application so the binary and the tests share it:
//! [`start`] opens the store, binds the gateway listener and returns a
//! [`Running`] handle.

pub mod admin;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod logging;
pub mod net;
pub mod store;
pub mod util;

use crate::gateway::registry::WsEvent;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    watcher: Option<gateway::watch::Watcher>,
}

impl Running {
    /// Tells sessions the gateway is going away (1012), stops the listeners
    /// and waits for the workers to finish.
    pub async fn stop(self) {
        drop(self.watcher);
        self.state.registry.broadcast(
            WsEvent::Shutdown,
            serde_json::json!({"reason": "service restart"}),
        );
        self.state
            .registry
            .close_where(|_| true, 1012, "service restart", None);
        self.state.control.stop_listeners().await;
        self.admin.stop().await;
        // Sessions run on their own runtime: give them the shutdown timeout
        // to send their close frames.
        if !self.state.connections_gone(Duration::from_secs(2)).await {
            tracing::warn!(
                left = self.state.live_connections(),
                "stopping with WebSocket connections still closing"
            );
        }
        let _ = self.state.flush_last_seen().await;
        let runtime = self.state.config.load().state_dir.join("runtime.json");
        if std::fs::read_to_string(&runtime)
            .is_ok_and(|t| t.contains(&format!("\"pid\":{}", std::process::id())))
        {
            let _ = std::fs::remove_file(runtime);
        }
        // Close the database now (other handles may linger in tasks that are
        // winding down): a gateway started next on this state dir opens it.
        self.state.store.close().await;
    }

    /// Where the gateway listens now (it moves when `gateway.port` changes).
    pub async fn current_gateway_addr(&self) -> SocketAddr {
        self.state
            .control
            .gateway_addr()
            .await
            .unwrap_or(self.gateway_addr)
    }
}

/// Writes `<state dir>/runtime.json` (where the listeners are, for the CLI).
pub fn write_runtime_file(
    state_dir: &std::path::Path,
    gateway: SocketAddr,
    admin: Option<SocketAddr>,
) {
    let runtime = serde_json::json!({
        "gatewayAddr": gateway.to_string(),
        "adminAddr": admin.map(|a| a.to_string()),
        "pid": std::process::id(),
    });
    let _ = util::write_private_file(
        &state_dir.join("runtime.json"),
        runtime.to_string().as_bytes(),
    );
}

/// The admin token: from the config (or `CLAWGATE_ADMIN_TOKEN`), else the one
/// generated once into `<state dir>/admin-token` (mode 0600).
fn admin_token(cfg: &RuntimeConfig) -> Result<([u8; 32], Option<std::path::PathBuf>), StoreError> {
    if let Some(t) = &cfg.gateway.admin.token {
        return Ok((*t.digest(), None));
    }
    let path = cfg.state_dir.join("admin-token");
    // Only a missing (or empty) file means "generate": a file that cannot be
    // read (permissions, I/O) is an error, never silently replaced, so the
    // token in use elsewhere keeps working once the problem is fixed.
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StoreError::Io(format!(
                "cannot read the admin token file {}: {e} (fix its permissions, or remove it to generate a new token)",
                path.display()
            )));
        }
        Ok(_) | Err(_) => {
            let t = util::random_token();
            util::write_private_file(&path, t.as_bytes())?;
            t
        }
    };
    Ok((gateway::auth::sha256(&token), Some(path)))
}

/// Options for [`start`] beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Watch the config file and apply edits (polling, plus file events
    /// unless `poll_only`).
    pub watch: bool,
    /// Only poll (as on a mount that delivers no file events).
    pub poll_only: bool,
}

/// Opens the state and binds the gateway and admin listeners (no file watching).
pub async fn start(cfg: RuntimeConfig) -> Result<Running, StartError> {
    start_with(cfg, StartOptions::default()).await
}

/// Opens the state, applies the stored overrides, binds the gateway and
/// admin listeners and (optionally) starts watching the config file.
pub async fn start_with(mut cfg: RuntimeConfig, opts: StartOptions) -> Result<Running, StartError> {
    let state_dir = cfg.state_dir.clone();
    let store = Store::open(&state_dir)?;
    let token_key = store::load_or_create_key(&state_dir, "device-token.key")?;
    let stored = store.overrides()?;
    if !stored.is_empty() {
        let mut src = (*cfg.sources).clone();
        src.overrides = stored;
        match config::build(src) {
            Ok(c) => cfg = c,
            Err(e) => tracing::error!(
                "the stored runtime overrides make the configuration invalid; starting without them \
                 (see GET /admin/v1/config/status):\n{}",
                e.to_string().trim_end()
            ),
        }
    }
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let (admin_digest, admin_token_file) = admin_token(&cfg)?;
    let admin_bind = cfg.gateway.admin.bind;
    let admin_port = cfg.gateway.admin.port;
    let admin_remote = cfg.gateway.admin.allow_remote;
    let grace = cfg.gateway.auth.previous_token;
    let bind = cfg.gateway.bind;
    let port = cfg.gateway.port;
    let workers = gateway::listener::workers(cfg.gateway.limits.workers);
    let snapshot = cfg.clone();
    let state = Arc::new(GatewayState::new(cfg, store, token_key));
    let listener =
        gateway::listener::start(state.clone(), bind, port, workers).map_err(|e| StartError::Bind {
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
    let gateway_addr = listener.addr;
    state
        .control
        .install(listener, &snapshot, admin_digest)
        .await;
    let admin = match admin::start(
        state.clone(),
        admin_digest,
        admin_bind,
        admin_port,
        admin_remote,
    ) {
        Ok(a) => a,
        Err(e) => {
            state.control.stop_listeners().await;
            return Err(StartError::Bind {
                addr: SocketAddr::new(admin_bind, admin_port).to_string(),
                hint: if e.kind() == std::io::ErrorKind::AddrInUse {
                    " (the admin port is taken; set gateway.admin.port)"
                } else {
                    ""
                },
                source: e,
            });
        }
    };
    let admin_addr = admin.addr;
    state.set_admin_addr(admin_addr);
    if let Some((_, until)) = grace {
        gateway::reload::schedule_grace_end(state.clone(), until);
    }
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
    write_runtime_file(&state_dir, gateway_addr, Some(admin_addr));
    let watcher = if opts.watch {
        Some(gateway::watch::Watcher::start(
            state.clone(),
            !opts.poll_only,
        ))
    } else {
        None
    };
    Ok(Running {
        gateway_addr,
        admin_addr,
        admin_token_file,
        admin,
        state,
        watcher,
    })
}
