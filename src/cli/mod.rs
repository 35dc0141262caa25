//! Command line: `clawgate [serve]`, `clawgate config validate`, and the
//! management commands (`devices`, `tokens`, `proxies`), which are thin clients
//! of the admin API (see [`admin`]).

pub mod admin;
pub mod doctor;
pub mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, LoadOptions, SecretSource};

#[derive(Parser, Debug)]
#[command(
    name = "clawgate",
    version,
    about = "An OpenClaw-compatible gateway with device pairing you can manage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Paired devices and pairing requests (through the admin API).
    Devices(admin::DevicesArgs),
    /// Device tokens, the gateway token and admin tokens (through the admin API).
    Tokens(admin::TokensArgs),
    /// Trusted reverse proxies (through the admin API).
    Proxies(admin::ProxiesArgs),
    /// Check config, permissions, listeners, a handshake and recent rejections; exit 1 when something is wrong.
    Doctor(doctor::DoctorArgs),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Check a config file; exit 0 when valid, 1 when invalid, 2 when unreadable.
    Validate {
        /// The config file (default: OPENCLAW_CONFIG_PATH or ~/.openclaw/openclaw.json).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Show the effective configuration; --explain adds where each value came from.
    Show {
        /// Show each key's source (file and line, env variable, override, flag, default).
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        conn: admin::ConnArgs,
    },
    /// Re-read the config file now (also when gateway.reload.mode is off).
    Reload {
        #[command(flatten)]
        conn: admin::ConnArgs,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// The OpenClaw config file (JSON5).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// clawgate's own settings file (JSON5, the shape of openclaw.json; default:
    /// clawgate.json next to the OpenClaw config file, when it exists).
    #[arg(long, global = true)]
    pub clawgate_config: Option<PathBuf>,
    /// Where clawgate keeps its state (default: ~/.openclaw/clawgate).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Gateway port (overrides gateway.port and OPENCLAW_GATEWAY_PORT; 0 picks a free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Gateway bind: loopback, lan, or an IP address.
    #[arg(long)]
    pub bind: Option<String>,
    /// Admin API port (overrides gateway.admin.port; 0 picks a free port).
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Front the real OpenClaw gateway at this URL (upstream.url): ws://HOST:PORT,
    /// or `auto` for 127.0.0.1 and the gateway.port of openclaw.json.
    #[arg(long, global = true)]
    pub upstream: Option<String>,
}

impl ServeArgs {
    /// What the flags say about where the config and state are (the
    /// environment fills in the rest).
    pub fn load_options(self) -> LoadOptions {
        let mut opts = LoadOptions::from_process_env();
        opts.config_path = self.config;
        opts.clawgate_config_path = self.clawgate_config;
        opts.upstream = self.upstream;
        opts.state_dir = self.state_dir;
        opts.port = self.port;
        opts.bind = self.bind;
        opts.admin_port = self.admin_port;
        opts
    }
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init();
    match cli.command {
        Some(Command::Serve(args)) => serve(merge(cli.serve, args)).await,
        Some(Command::Config(ConfigCommand::Validate { config })) => validate(ServeArgs {
            config: config.or(cli.serve.config),
            ..cli.serve
        }),
        Some(Command::Config(ConfigCommand::Show { explain, conn })) => {
            admin::run(
                admin::Managed::Config(admin::ConfigOp::Show { explain }, conn),
                cli.serve.load_options(),
            )
            .await
        }
        Some(Command::Config(ConfigCommand::Reload { conn })) => {
            admin::run(
                admin::Managed::Config(admin::ConfigOp::Reload, conn),
                cli.serve.load_options(),
            )
            .await
        }
        Some(Command::Devices(a)) => {
            admin::run(admin::Managed::Devices(a), cli.serve.load_options()).await
        }
        Some(Command::Tokens(a)) => {
            admin::run(admin::Managed::Tokens(a), cli.serve.load_options()).await
        }
        Some(Command::Proxies(a)) => {
            admin::run(admin::Managed::Proxies(a), cli.serve.load_options()).await
        }
        Some(Command::Doctor(a)) => doctor::run(a, cli.serve).await,
        None => serve(cli.serve).await,
    }
}

fn merge(global: ServeArgs, sub: ServeArgs) -> ServeArgs {
    ServeArgs {
        config: sub.config.or(global.config),
        clawgate_config: sub.clawgate_config.or(global.clawgate_config),
        upstream: sub.upstream.or(global.upstream),
        state_dir: sub.state_dir.or(global.state_dir),
        port: sub.port.or(global.port),
        bind: sub.bind.or(global.bind),
        admin_port: sub.admin_port.or(global.admin_port),
    }
}

fn validate(args: ServeArgs) -> ExitCode {
    let opts = args.load_options();
    match config::load(&opts) {
        Ok(cfg) => {
            match &cfg.file {
                Some(f) => println!("valid: {}", f.display()),
                None => println!("valid: no config file found; the embedded defaults apply"),
            }
            if let Some(f) = &cfg.own_file {
                println!("valid: {}", f.display());
            }
            match &cfg.gateway.upstream {
                Some(u) => println!("mode: front-door, upstream {}", u.url),
                None => println!("mode: standalone"),
            }
            for w in &cfg.warnings {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            if e.is_unreadable() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let mut opts = args.load_options();
    opts.generate_token = true;
    let cfg = match config::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprint!("clawgate: {e}");
            eprintln!("clawgate: not started; fix the configuration and run again (check it with `clawgate config validate`)");
            return ExitCode::from(2);
        }
    };
    crate::logging::apply_level(cfg.log_level.as_deref());
    let file = cfg.file.clone();
    let state_dir = cfg.state_dir.clone();
    let token_source = cfg.gateway.auth.token_source.clone();
    let mode = cfg.gateway.auth.mode;
    if let Some(u) = &cfg.gateway.upstream {
        tracing::info!(
            upstream = %u.url,
            secret = u.secret_from,
            "front-door mode: accepted sessions and plain HTTP requests are relayed to the upstream gateway"
        );
    }
    let running = match crate::start_with(
        cfg,
        crate::StartOptions {
            watch: true,
            poll_only: false,
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clawgate: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = running.gateway_addr;
    let admin_addr = running.admin_addr;
    tracing::info!(
        "clawgate {} listening on ws://{addr} (auth: {}, config: {}, state: {})",
        env!("CARGO_PKG_VERSION"),
        mode.as_str(),
        file.as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "embedded defaults".into()),
        state_dir.display()
    );
    tracing::info!("admin API listening on http://{admin_addr}");
    if let Some(path) = &running.admin_token_file {
        eprintln!(
            "clawgate: admin API on http://{admin_addr}; its token is in {} (mode 0600). List pending pairing requests with:\n  \
             curl -s -H \"Authorization: Bearer $(cat {})\" http://{admin_addr}/admin/v1/pairing/requests",
            path.display(),
            path.display()
        );
    }
    if let SecretSource::Generated(path) = &token_source {
        eprintln!(
            "clawgate: no gateway token was configured, so one was generated into {} (mode 0600).\n\
             clawgate: connect a client with:\n  openclaw gateway call health --url ws://{addr} --token \"$(cat {})\"",
            path.display(),
            path.display()
        );
    }
    // SIGHUP re-reads the config file (also when gateway.reload.mode is off).
    let hup_state = running.state.clone();
    let hup = tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            crate::gateway::reload::reload(
                &hup_state,
                crate::gateway::reload::Trigger::Signal,
                "signal",
            )
            .await;
        }
    });
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    };
    stop.await;
    tracing::info!("shutting down");
    hup.abort();
    let _ = hup.await;
    running.stop().await;
    ExitCode::SUCCESS
}
