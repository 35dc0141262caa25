//! Finding the admin API: its URL (flag, runtime.json, config) and its token.

use super::*;

// ---------------------------------------------------------------- discovery

/// Where the admin URL came from (for error messages).
#[derive(Debug, Clone)]
pub(super) enum Origin {
    Flag,
    Runtime { file: PathBuf, pid: Option<u64> },
}

pub(super) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `http://host:port` without a trailing slash; plain HTTP only.
pub(super) fn normalize_url(url: &str) -> Res<String> {
    use crate::admin::client::{normalize_base, BadBase};
    let shown = url.trim().trim_end_matches('/');
    normalize_base(url).map_err(|e| match e {
        BadBase::Https => Failure::unreachable(
            format!("--admin-url {shown}: https is not supported by this client"),
            "the admin API listens on plain HTTP on loopback; use http://127.0.0.1:<admin port>",
        ),
        BadBase::OtherScheme => Failure::unreachable(
            format!("--admin-url {shown}: only http:// URLs are supported"),
            "for example --admin-url http://127.0.0.1:18790",
        ),
    })
}

/// The admin address from `runtime.json`, with an unspecified bind address
/// (0.0.0.0 / ::) replaced by loopback, which the admin Host check accepts.
pub(super) fn runtime_addr(state_dir: &Path) -> Res<(String, Origin)> {
    let file = state_dir.join("runtime.json");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::unreachable(
                format!(
                    "is clawgate running? (looked for runtime.json in {}, found none)",
                    state_dir.display()
                ),
                "start it with `clawgate serve`; if it keeps its state elsewhere pass --state-dir DIR, \
                 or point at its admin API with --admin-url URL",
            ))
        }
        Err(e) => {
            return Err(Failure::unreachable(
                format!("cannot read {}: {e}", file.display()),
                "pass --admin-url URL to name the admin API directly",
            ))
        }
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let pid = v["pid"].as_u64();
    let Some(mut addr) = v["adminAddr"]
        .as_str()
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        return Err(Failure::unreachable(
            format!("{} has no usable adminAddr", file.display()),
            "restart clawgate so that it rewrites the file, or pass --admin-url URL",
        ));
    };
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    Ok((format!("http://{addr}"), Origin::Runtime { file, pid }))
}

pub(super) fn discover_token(opts: &LoadOptions, state_dir: &Path) -> Res<String> {
    // A configured admin token wins over the file, as it does for the server.
    if let Ok(cfg) = config::load(opts) {
        if let Some(t) = cfg.gateway.admin.token.as_ref().and_then(|t| t.expose()) {
            if !t.trim().is_empty() {
                return Ok(t.trim().to_string());
            }
        }
    }
    let file = state_dir.join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(Failure::unreachable(
            format!("{} is empty", file.display()),
            "pass --admin-token TOKEN or set CLAWGATE_ADMIN_TOKEN",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::unreachable(
            format!(
                "no admin token: none given and {} does not exist",
                file.display()
            ),
            "pass --admin-token TOKEN or set CLAWGATE_ADMIN_TOKEN (or --state-dir DIR for the state dir clawgate uses)",
        )),
        Err(e) => Err(Failure::unreachable(
            format!("cannot read the admin token {}: {e}", file.display()),
            "run as the user that runs clawgate, or pass --admin-token TOKEN",
        )),
    }
}
