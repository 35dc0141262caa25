//! Check 7 (front-door mode only): the upstream gateway. Where it listens
//! (only loopback, or remote clients reach it around clawgate), whether the
//! shared `openclaw.json` still holds only keys OpenClaw accepts, and a
//! real `connect` with the credential clawgate presents upstream.

use super::*;
use crate::config::UpstreamSecret;

const ID: &str = "upstream";

/// `None` in standalone mode.
pub(super) fn check_upstream(cfg: &RuntimeConfig) -> Option<Check> {
    let up = cfg.gateway.upstream.as_ref()?;
    let mut c = Check::new(ID, Status::Ok, "");
    // Where the upstream listens.
    let parsed = url::Url::parse(&up.url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()));
    let port = parsed.as_ref().and_then(url::Url::port_or_known_default);
    let loopback = host
        .as_deref()
        .is_some_and(|h| h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    if !loopback {
        c.raise(Status::Warn);
        c.details.push(format!(
            "the upstream {} is not on loopback: remote clients may reach it around clawgate",
            up.url
        ));
        c.add_fix("run the real gateway with gateway.bind \"loopback\" and point upstream.url at 127.0.0.1");
    }
    let bind = cfg
        .sources
        .file
        .as_ref()
        .and_then(|f| f.value.pointer("/gateway/bind"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("loopback");
    let exposed = match bind {
        "loopback" | "auto" | "localhost" => false,
        "lan" | "all" | "custom" | "tailnet" => true,
        ip => ip.parse::<IpAddr>().is_ok_and(|ip| !ip.is_loopback()),
    };
    if exposed {
        c.raise(Status::Fail);
        c.details.push(format!(
            "openclaw.json binds the real gateway to {bind:?}: remote clients can reach it around clawgate"
        ));
        c.add_fix("set gateway.bind to \"loopback\" in openclaw.json (clawgate's own listener is set in clawgate.json)");
    }
    // The real gateway must trust clawgate (on loopback) as its proxy, or it
    // refuses the remote clients' HTTP that clawgate relays with their address.
    let trusted: Vec<String> = cfg
        .sources
        .file
        .as_ref()
        .and_then(|f| f.value.pointer("/gateway/trustedProxies"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let trusts_clawgate = trusted.iter().any(|t| {
        crate::config::parse_ip_or_cidr(t)
            .is_some_and(|n| n.contains(&IpAddr::from([127, 0, 0, 1])))
    });
    if loopback && !trusts_clawgate {
        c.raise(Status::Warn);
        c.details.push(
            "openclaw.json's gateway.trustedProxies does not include 127.0.0.1: the real gateway refuses the HTTP requests clawgate relays for remote browsers (the Control UI files, its config, the HTTP APIs) with 403 proxy_attribution_required".into(),
        );
        c.add_fix("add \"127.0.0.1\" to gateway.trustedProxies in openclaw.json (the real gateway's file; clawgate's own trusted proxies go in clawgate.json)");
    }
    // The shared openclaw.json must stay valid for OpenClaw.
    let misplaced: Vec<&String> = cfg
        .warnings
        .iter()
        .filter(|w| w.contains("OpenClaw 2026.9 refuses to start on it"))
        .collect();
    if !misplaced.is_empty() {
        c.raise(Status::Warn);
        for w in &misplaced {
            c.details.push((*w).clone());
        }
        c.add_fix("move these keys from openclaw.json to clawgate.json (same paths)");
    }
    // A real connect with clawgate's upstream credential.
    let auth = match &up.secret {
        UpstreamSecret::Token(t) => json!({"token": t.expose().unwrap_or_default()}),
        UpstreamSecret::Password(p) => json!({"password": p.expose().unwrap_or_default()}),
        UpstreamSecret::None => json!({}),
    };
    let addr = host
        .as_deref()
        .zip(port)
        .and_then(|(h, p)| std::net::ToSocketAddrs::to_socket_addrs(&(h, p)).ok())
        .and_then(|mut a| a.next());
    let connected = match addr {
        None => {
            c.raise(Status::Fail);
            format!("{} names no address this machine can resolve", up.url)
        }
        Some(addr) => match ws_connect(addr, auth) {
            Handshake::Answered(v) if v["ok"] == true => format!(
                "the upstream accepted clawgate's credential (from {}): hello-ok, server {}",
                up.secret_from,
                v["payload"]["server"]["version"].as_str().unwrap_or("?")
            ),
            Handshake::Answered(v) => {
                let err = &v["error"];
                let code = err["details"]["code"]
                    .as_str()
                    .or(err["code"].as_str())
                    .unwrap_or("ERROR");
                let message = err["message"].as_str().unwrap_or("");
                if code == "UNAVAILABLE" {
                    c.raise(Status::Warn);
                    format!("the upstream is not ready: {message}")
                } else {
                    c.raise(Status::Fail);
                    c.add_fix(format!(
                        "give clawgate the upstream's shared secret: upstream.token in clawgate.json (now it comes from {})",
                        up.secret_from
                    ));
                    format!("the upstream refused clawgate's credential: {code}: {message}")
                }
            }
            Handshake::Http { status, body } => {
                c.raise(Status::Fail);
                format!(
                    "the upstream refused the WebSocket upgrade: HTTP {status}: {}",
                    body.trim()
                )
            }
            Handshake::Io(e) => {
                c.raise(Status::Fail);
                c.add_fix("start the real gateway (`openclaw gateway run`), or fix upstream.url");
                format!("the upstream {} is not reachable: {e}", up.url)
            }
        },
    };
    c.summary = connected;
    Some(c)
}
