//! Management commands: `clawgate devices …`, `clawgate tokens …` and
//! `clawgate proxies …`, thin clients of the admin API.
//!
//! Finding the server: `--admin-url` (or `CLAWGATE_ADMIN_URL`), else the
//! `adminAddr` in `<state dir>/runtime.json`, which a running `clawgate serve`
//! writes. The credential: `--admin-token` (or `CLAWGATE_ADMIN_TOKEN`), else
//! `gateway.admin.token` from the config, else `<state dir>/admin-token`.
//!
//! Output: tables for people by default, the API's JSON with `--json`.
//! Exit status: 0 on success, 1 when the API refused the request (its
//! `detail` and `hint` go to stderr), 2 when the admin API could not be found
//! or reached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::admin::dto;
use crate::config::{self, LoadOptions};

// ---------------------------------------------------------------- arguments

/// How to reach the admin API (accepted after any management subcommand).
#[derive(Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Admin API base URL, e.g. http://127.0.0.1:18790 (default: the adminAddr in <state dir>/runtime.json).
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_URL",
        value_name = "URL",
        help_heading = "Admin API"
    )]
    pub admin_url: Option<String>,
    /// Admin token or a minted admin token (default: gateway.admin.token, else <state dir>/admin-token).
    #[arg(
        long,
        global = true,
        env = "CLAWGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Admin API"
    )]
    pub admin_token: Option<String>,
    /// Print the API's JSON instead of tables (for scripts).
    #[arg(long, global = true, help_heading = "Admin API")]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DevicesArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: DevicesCommand,
}

#[derive(Subcommand, Debug)]
pub enum DevicesCommand {
    /// List paired devices and pending pairing requests.
    List {
        /// Only the pending pairing requests.
        #[arg(long, conflicts_with = "all")]
        pending: bool,
        /// Also the decided (approved or rejected) pairing requests.
        #[arg(long)]
        all: bool,
    },
    /// Approve a pending pairing request.
    Approve {
        /// The request id (or a unique prefix of it, or the device fingerprint).
        request_id: String,
        /// Grant these scopes instead of the requested ones (repeatable).
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
        /// A label for the device (1 to 64 characters).
        #[arg(long)]
        label: Option<String>,
    },
    /// Reject a pending pairing request.
    Reject {
        /// The request id (or a unique prefix of it, or the device fingerprint).
        request_id: String,
    },
    /// Remove a paired device (its sessions are closed and its tokens revoked).
    Remove {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        device_id: String,
    },
    /// Set the label of a paired device.
    Rename {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        device_id: String,
        /// The new label (1 to 64 characters).
        label: String,
    },
}

#[derive(Args, Debug)]
pub struct TokensArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Rotate a device's token for a role (the device gets the new one when it next connects).
    Rotate {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        #[arg(long)]
        device: String,
        /// The role: operator or node.
        #[arg(long)]
        role: String,
        /// Narrow the token to these scopes (repeatable; default: unchanged).
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// Revoke a device's token for a role (its sessions with that role are closed).
    Revoke {
        /// The device id (or its fingerprint, a unique prefix, or its label).
        #[arg(long)]
        device: String,
        /// The role: operator or node.
        #[arg(long)]
        role: String,
    },
    /// Replace the gateway's shared token; prints the new token once.
    RotateGateway {
        /// Keep accepting the previous token for this many seconds (0 to 86400; default 0).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Mint a scoped admin token (opaque, stored as a digest); prints it once.
    Mint {
        /// Admin scopes (repeatable): pairing:read, pairing:write, devices:write,
        /// tokens:write, config:read, config:write, admin.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_delimiter = ',',
            required = true
        )]
        scopes: Vec<String>,
        /// Lifetime in seconds (60 to 31536000; default 3600).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// A label for the audit log.
        #[arg(long)]
        label: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ProxiesArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(subcommand)]
    pub command: ProxiesCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProxiesCommand {
    /// List the trusted reverse proxies.
    List,
    /// Trust a proxy address or CIDR range.
    Add {
        /// An IP address (172.17.0.1) or a CIDR range (172.17.0.0/16).
        entry: String,
        /// Show the resulting list without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop trusting a proxy address or CIDR range.
    Remove {
        /// The entry as listed by `clawgate proxies list`.
        entry: String,
    },
}

/// `clawgate config show|reload` (the parts of `config` that talk to the API).
#[derive(Debug, Clone)]
pub enum ConfigOp {
    Show { explain: bool },
    Reload,
}

/// A management command with its connection arguments.
#[derive(Debug)]
pub enum Managed {
    Devices(DevicesArgs),
    Tokens(TokensArgs),
    Proxies(ProxiesArgs),
    Config(ConfigOp, ConnArgs),
}

impl Managed {
    fn conn(&self) -> &ConnArgs {
        match self {
            Managed::Devices(a) => &a.conn,
            Managed::Tokens(a) => &a.conn,
            Managed::Proxies(a) => &a.conn,
            Managed::Config(_, c) => c,
        }
    }
}

// ---------------------------------------------------------------- errors

/// Why a command failed: printed to stderr, with an exit status.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hint: Option<String>,
    pub exit: u8,
}

impl Failure {
    fn unreachable(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
            exit: 2,
        }
    }

    fn refused(message: impl Into<String>, hint: Option<String>) -> Self {
        Failure {
            message: message.into(),
            hint,
            exit: 1,
        }
    }

    fn report(&self) -> ExitCode {
        eprintln!("clawgate: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("hint: {h}");
        }
        ExitCode::from(self.exit)
    }
}

type Res<T> = Result<T, Failure>;

mod api;
mod configuration;
mod devices;
mod discovery;
mod format;
mod proxies;
mod resolve;
mod tokens;

use api::*;
use configuration::*;
use devices::*;
use discovery::*;
use format::*;
use proxies::*;
use resolve::*;
use tokens::*;

// ---------------------------------------------------------------- commands

/// Runs a management command and reports its outcome.
/// `opts` says where the config and state are (the global flags: an
/// `--upstream` or `--clawgate-config` counts when `config show` explains
/// the files of a clawgate that is not running).
pub async fn run(cmd: Managed, opts: LoadOptions) -> ExitCode {
    let joined = tokio::task::spawn_blocking(move || execute(cmd, opts)).await;
    match joined {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => f.report(),
        Err(e) => {
            eprintln!("clawgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// Finds the admin API and runs `cmd` against it (blocking).
pub fn execute(cmd: Managed, mut opts: LoadOptions) -> Res<()> {
    opts.generate_token = false;
    let state = config::resolve_state_dir(&opts);
    let conn = cmd.conn().clone();
    let found = (|| -> Res<(String, Origin, String)> {
        let (base, origin) = match non_empty(&conn.admin_url) {
            Some(u) => (normalize_url(u)?, Origin::Flag),
            None => runtime_addr(&state)?,
        };
        let token = match non_empty(&conn.admin_token) {
            Some(t) => t.to_string(),
            None => discover_token(&opts, &state)?,
        };
        Ok((base, origin, token))
    })();
    let (base, origin, token) = match (found, &cmd) {
        (Ok(x), _) => x,
        // Not running: `config show` explains the file, environment and defaults.
        (Err(f), Managed::Config(ConfigOp::Show { explain }, _)) if f.exit == 2 => {
            return config_show_local(&opts, *explain, conn.json, &f)
        }
        (Err(f), _) => return Err(f),
    };
    let api = Api::new(base, token, origin);
    let json = conn.json;
    match cmd {
        Managed::Devices(a) => devices(&api, a.command, json),
        Managed::Tokens(a) => tokens(&api, a.command, json),
        Managed::Proxies(a) => proxies(&api, a.command, json),
        Managed::Config(op, _) => config_cmd(&api, op, json, &opts),
    }
}

/// Adds "where to find the ids" to a bare 404 (the API's detail, e.g.
/// "unknown deviceId", does not repeat the id).
fn hint_ids<T>(r: Res<T>, given: &str) -> Res<T> {
    r.map_err(|mut f| {
        if f.hint.is_none() && f.message.contains("(404 ") {
            if !given.is_empty() && !f.message.contains(given) {
                f.message = f
                    .message
                    .replacen(" (404 ", &format!(" {given:?} (404 "), 1);
            }
            f.hint = Some(
                "see the ids with `clawgate devices list` (`--all` for decided requests)".into(),
            );
        }
        f
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_path_segments() {
        assert_eq!(enc("10.0.0.0/8"), "10.0.0.0%2F8");
        assert_eq!(enc("fd00::/8"), "fd00::%2F8");
        assert_eq!(enc("a b%"), "a%20b%25");
    }

    #[test]
    fn normalizes_urls() {
        assert_eq!(normalize_url("127.0.0.1:1/").unwrap(), "http://127.0.0.1:1");
        assert_eq!(
            normalize_url("http://localhost:2").unwrap(),
            "http://localhost:2"
        );
        assert!(normalize_url("https://x").is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn resolves_short_references() {
        let items = vec![
            json!({"deviceId": "abcdef0123456789", "fingerprint": "abcdef01-23456789", "label": "laptop"}),
            json!({"deviceId": "abcdff0000000000", "fingerprint": "abcdff00-00000000"}),
        ];
        let r = |a: &str| resolve(a, &items, "deviceId", &["label"], "device");
        assert_eq!(r("abcdef01-23456789").unwrap(), "abcdef0123456789");
        assert_eq!(r("laptop").unwrap(), "abcdef0123456789");
        assert_eq!(r("abcdff").unwrap(), "abcdff0000000000");
        assert!(r("abcd").is_err());
        assert_eq!(r("zzzz").unwrap(), "zzzz");
    }
}
