//! Check 5: recent rejections, grouped by kind and explained.

use super::*;
use crate::gateway::trusted_proxy::ProxyDenial;

// ---------------------------------------------------------------- 5. rejections

/// One record of `GET /admin/v1/diagnostics/rejections`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub ts: u64,
    pub peer: String,
    pub client: String,
    /// Forwarded header names seen (lowercase, as recorded).
    pub headers: Vec<String>,
    pub reason: String,
    pub hint: String,
    pub origin: Option<String>,
}

pub(super) fn parse_rejections(v: &Value) -> Vec<Rejection> {
    v["rejections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| Rejection {
                    ts: r["ts"].as_u64().unwrap_or(0),
                    peer: r["peerAddress"].as_str().unwrap_or("?").to_string(),
                    client: r["clientAddress"].as_str().unwrap_or("?").to_string(),
                    headers: r["forwardedHeaders"]
                        .as_array()
                        .map(|h| {
                            h.iter()
                                .filter_map(|x| x["name"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default(),
                    reason: r["reason"].as_str().unwrap_or("").to_string(),
                    hint: r["hint"].as_str().unwrap_or("").to_string(),
                    origin: r["origin"].as_str().map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn check_rejections(ctx: &Ctx, admin: &Admin) -> Check {
    const ID: &str = "rejections";
    let v = match admin.get("/admin/v1/diagnostics/rejections") {
        Ok(v) => v,
        Err(e) => {
            let mut c = Check::new(
                ID,
                Status::Warn,
                format!(
                    "cannot read the recent rejections from {}: {}",
                    admin.base, e.message
                ),
            );
            match e.status {
                Some(401) | None => c.add_fix(format!(
                    "pass the admin token: --admin-token TOKEN (or CLAWGATE_ADMIN_TOKEN); it is in {}",
                    ctx.state_dir.join("admin-token").display()
                )),
                Some(403) => c.add_fix(
                    "use the admin token or a minted admin token with the config:read scope (`clawgate tokens mint --scope config:read`)",
                ),
                _ => {}
            }
            return c;
        }
    };
    let records = parse_rejections(&v);
    let trusted = admin.get("/admin/v1/trusted-proxies").ok().map(|t| {
        t["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().and_then(config::parse_ip_or_cidr))
                    .collect::<Vec<IpNet>>()
            })
            .unwrap_or_default()
    });
    let pending = admin.get("/admin/v1/pairing/requests").ok().map(|p| {
        p["requests"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["requestId"].as_str().map(str::to_string))
                    .collect::<BTreeSet<String>>()
            })
            .unwrap_or_default()
    });
    explain_rejections(
        &records,
        trusted.as_deref(),
        pending.as_ref(),
        &ctx.in_file(),
        crate::util::now_ms(),
    )
}

/// The kinds of refusal the doctor explains.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// Forwarded headers from a peer not in trustedProxies (by peer).
    UntrustedProxy(String),
    /// A trusted proxy sent no usable client address (by peer).
    ProxyWithoutClient(String),
    /// WebSocket handshakes that lost their Upgrade header (by peer: the proxy).
    UpgradeDropped(String),
    /// Trusted-proxy auth refused the proxy's word (by rule and peer).
    TrustedProxy(ProxyDenial, String),
    /// Shared-secret or device-token failures (by code and client).
    Auth(String, String),
    /// Devices waiting for approval (by client).
    Pairing(String),
    PairingQueueFull(String),
    /// Refused browser origins (by client and origin).
    Origin(String, Option<String>),
    Preauth(String),
    Protocol(String),
    Other(String, String),
}

#[derive(Default)]
pub(super) struct Group {
    pub(super) count: usize,
    pub(super) last: u64,
    pub(super) headers: BTreeSet<String>,
    pub(super) request_ids: BTreeSet<String>,
    pub(super) hint: String,
}

/// `x-forwarded-for` → `X-Forwarded-For`.
pub(super) fn header_name(h: &str) -> String {
    match h {
        "x-real-ip" => "X-Real-IP".into(),
        _ => h
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

/// The /16 (IPv4) or /64 (IPv6) range around an address; `None` for loopback.
pub(super) fn suggest_range(ip: &IpAddr) -> Option<String> {
    if ip.is_loopback() {
        return None;
    }
    let net = match ip {
        IpAddr::V4(_) => IpNet::new(*ip, 16).ok()?,
        IpAddr::V6(_) => IpNet::new(*ip, 64).ok()?,
    };
    Some(net.trunc().to_string())
}

pub(super) fn times(n: usize) -> String {
    plural(n, "connection")
}

/// What a recorded rejection is about, by its reason.
fn kind_of(r: &Rejection) -> Kind {
    if let Some(d) = ProxyDenial::from_log_code(&r.reason) {
        return Kind::TrustedProxy(d, r.peer.clone());
    }
    match r.reason.as_str() {
        "proxy_attribution_required" if r.hint.contains("not a trusted proxy") => {
            Kind::UntrustedProxy(r.peer.clone())
        }
        "proxy_attribution_required" => Kind::ProxyWithoutClient(r.peer.clone()),
        "pairing_required" => Kind::Pairing(r.client.clone()),
        "websocket_upgrade_missing" => Kind::UpgradeDropped(r.peer.clone()),
        "pairing_queue_full" => Kind::PairingQueueFull(r.client.clone()),
        "preauth_budget" => Kind::Preauth(r.client.clone()),
        "CONTROL_UI_ORIGIN_NOT_ALLOWED" => Kind::Origin(r.client.clone(), r.origin.clone()),
        "PROTOCOL_MISMATCH" => Kind::Protocol(r.client.clone()),
        code if code.starts_with("AUTH_") => Kind::Auth(code.to_string(), r.client.clone()),
        other => Kind::Other(other.to_string(), r.client.clone()),
    }
}

/// Explains the recorded rejections, grouped by kind, with the fix for each.
/// `trusted` is the current trustedProxies list and `pending` the pending
/// pairing request ids, when the admin token may read them.
pub(super) fn explain_rejections(
    records: &[Rejection],
    trusted: Option<&[IpNet]>,
    pending: Option<&BTreeSet<String>>,
    in_file: &str,
    now: u64,
) -> Check {
    const ID: &str = "rejections";
    if records.is_empty() {
        return Check::new(
            ID,
            Status::Ok,
            "no refused connections recorded since clawgate started",
        );
    }
    let mut groups: BTreeMap<Kind, Group> = BTreeMap::new();
    for r in records {
        let g = groups.entry(kind_of(r)).or_default();
        g.count += 1;
        g.last = g.last.max(r.ts);
        g.headers.extend(r.headers.iter().map(|h| header_name(h)));
        if let Some(rest) = r.hint.strip_prefix("approve request ") {
            if let Some(id) = rest.split_whitespace().next() {
                g.request_ids.insert(id.to_string());
            }
        }
        g.hint = r.hint.clone();
    }
    let mut c = Check::new(ID, Status::Ok, "");
    let mut open = 0usize;
    let mut resolved = 0usize;
    let mut kinds: Vec<String> = vec![];
    for (kind, g) in &groups {
        let n = times(g.count);
        let last = ago(g.last, now);
        let headers = if g.headers.is_empty() {
            "forwarded headers".to_string()
        } else {
            g.headers.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        match kind {
            Kind::UntrustedProxy(peer) => {
                let ip = peer.parse::<IpAddr>().ok();
                let now_trusted = match (ip, trusted) {
                    (Some(ip), Some(t)) => t.iter().any(|n| n.contains(&ip.to_canonical())),
                    _ => false,
                };
                if now_trusted {
                    resolved += g.count;
                    c.details.push(format!(
                        "resolved: {n} from {peer} carried {headers} before {peer} was trusted (most recent {last}); it is in trustedProxies now"
                    ));
                    continue;
                }
                open += g.count;
                c.raise(Status::Fail);
                kinds.push("untrusted proxy".into());
                c.details.push(format!(
                    "{n} from {peer} carried {headers} but {peer} is not a trusted proxy (most recent {last}); clawgate cannot tell who the client is behind it, so the upgrade was refused (HTTP 403)"
                ));
                let range = ip.as_ref().and_then(suggest_range);
                c.add_fix(match range {
                    Some(r) => format!(
                        "if {peer} is your reverse proxy (Docker, nginx, Caddy, ...), trust it: `clawgate proxies add {peer}` or its range `clawgate proxies add {r}` (or add it to gateway.trustedProxies {in_file})"
                    ),
                    None => format!(
                        "if {peer} is your reverse proxy (Docker, nginx, Caddy, ...), trust it: `clawgate proxies add {peer}` (or add it to gateway.trustedProxies {in_file})"
                    ),
                });
            }
            Kind::ProxyWithoutClient(peer) => {
                open += g.count;
                c.raise(Status::Fail);
                kinds.push("proxy without client address".into());
                c.details.push(format!(
                    "{n} through the trusted proxy {peer} carried no usable client address ({headers}; most recent {last})"
                ));
                if !g.hint.is_empty() {
                    c.details.push(format!("  hint: {}", g.hint));
                }
                c.add_fix(format!(
                    "make the proxy at {peer} send the client's address: nginx `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;`, Caddy and Traefik do it by default"
                ));
                if g.headers.iter().all(|h| h == "X-Real-IP") {
                    c.add_fix(format!(
                        "or accept X-Real-IP from trusted proxies: set gateway.allowRealIpFallback: true {in_file}"
                    ));
                }
            }
            Kind::UpgradeDropped(peer) => {
                open += g.count;
                c.raise(Status::Fail);
                kinds.push("proxy drops the WebSocket upgrade".into());
                c.details.push(format!(
                    "{n} through {peer} were WebSocket handshakes without `Upgrade: websocket` (most recent {last}): the proxy at {peer} does not pass the upgrade on, so no client can connect through it"
                ));
                c.add_fix("nginx: in the location that proxies to clawgate, `proxy_http_version 1.1;`, `proxy_set_header Upgrade $http_upgrade;`, `proxy_set_header Connection \"upgrade\";` (then `nginx -s reload`)");
                c.add_fix("HAProxy: `mode http` passes the upgrade; remove any `http-request del-header Upgrade|Connection`. Caddy: `reverse_proxy` passes it; remove any `header_up -Upgrade` / `header_up -Connection`");
            }
            Kind::TrustedProxy(check, peer) => {
                open += g.count;
                kinds.push(
                    explain_trusted_proxy(&mut c, *check, peer, g, &n, &last, in_file).into(),
                );
            }
            Kind::Auth(code, client) => {
                open += g.count;
                c.raise(Status::Warn);
                let (what, fix) = match code.as_str() {
                    "AUTH_TOKEN_MISMATCH" => (
                        "presented a wrong gateway token".to_string(),
                        format!("give the client at {client} the current gateway token (gateway.remote.token or OPENCLAW_GATEWAY_TOKEN on that machine, or the Control UI settings); if the token was rotated, clients still using the old one are refused"),
                    ),
                    "AUTH_TOKEN_MISSING" => (
                        "sent no gateway token".to_string(),
                        format!("configure the gateway token on the client at {client} (gateway.remote.token, OPENCLAW_GATEWAY_TOKEN, or paste it in the Control UI settings)"),
                    ),
                    "AUTH_PASSWORD_MISMATCH" | "AUTH_PASSWORD_MISSING" => (
                        "presented a wrong or no gateway password".to_string(),
                        format!("give the client at {client} the gateway password (gateway.remote.password or OPENCLAW_GATEWAY_PASSWORD)"),
                    ),
                    "AUTH_RATE_LIMITED" => (
                        "were locked out after repeated failed logins".to_string(),
                        format!("fix the credentials of the client at {client}; the lockout ends after gateway.auth.rateLimit.lockoutMs"),
                    ),
                    "AUTH_DEVICE_TOKEN_MISMATCH" => (
                        "presented a stale or revoked device token".to_string(),
                        "find the device with `clawgate devices list`, remove it (`clawgate devices remove <device>`) and approve its new pairing request (`clawgate devices approve <requestId>`)".to_string(),
                    ),
                    "AUTH_TOKEN_NOT_CONFIGURED" | "AUTH_PASSWORD_NOT_CONFIGURED" => {
                        c.raise(Status::Fail);
                        (
                            "were refused because the gateway has no shared secret configured".to_string(),
                            format!("set gateway.auth.token {in_file} (or OPENCLAW_GATEWAY_TOKEN) and restart clawgate"),
                        )
                    }
                    _ => (format!("failed authentication ({code})"), g.hint.clone()),
                };
                kinds.push(code.to_lowercase().replace("auth_", "").replace('_', " "));
                c.details.push(format!(
                    "{n} from {client} {what} ({code}; most recent {last})"
                ));
                if !fix.is_empty() {
                    c.add_fix(fix);
                }
            }
            Kind::Pairing(client) => {
                let waiting: Vec<&String> = match pending {
                    Some(p) => g.request_ids.iter().filter(|id| p.contains(*id)).collect(),
                    None => g.request_ids.iter().collect(),
                };
                if waiting.is_empty() && pending.is_some() {
                    resolved += g.count;
                    c.details.push(format!(
                        "resolved: {n} from {client} needed pairing (most recent {last}); the requests were decided since"
                    ));
                    continue;
                }
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("pairing required".into());
                c.details.push(format!(
                    "{n} from {client} need pairing: {} waiting for approval (most recent {last})",
                    plural(waiting.len().max(1), "request")
                ));
                c.add_fix("review the pending requests: `clawgate devices list`");
                for id in waiting.iter().take(5) {
                    c.add_fix(format!("approve: `clawgate devices approve {id}`"));
                }
            }
            Kind::PairingQueueFull(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("pairing queue full".into());
                c.details.push(format!(
                    "{n} from {client} could not even ask for pairing: the pending queue is full (most recent {last})"
                ));
                c.add_fix("approve or reject the pending requests: `clawgate devices list`, `clawgate devices approve <requestId>` / `clawgate devices reject <requestId>`");
                c.add_fix(format!(
                    "or raise gateway.pairing.maxPendingPerClient {in_file}"
                ));
            }
            Kind::Origin(client, origin) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("origin not allowed".into());
                match origin {
                    Some(o) => {
                        c.details.push(format!(
                            "{n} from {client} came from the browser origin {o}, which is not allowed (most recent {last})"
                        ));
                        c.add_fix(format!(
                            "if {o} is where you open the Control UI, add \"{o}\" to gateway.controlUi.allowedOrigins {in_file} (applies live)"
                        ));
                    }
                    None => {
                        c.details.push(format!(
                            "{n} from {client} came from a browser origin that is not allowed (most recent {last})"
                        ));
                        c.add_fix(format!(
                            "add the address the browser shows for the Control UI (e.g. \"https://gateway.example.com\") to gateway.controlUi.allowedOrigins {in_file}, or open the Control UI from the gateway host"
                        ));
                    }
                }
            }
            Kind::Preauth(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("too many unauthenticated sockets".into());
                c.details.push(format!(
                    "{n} from {client} were refused: too many sockets that never completed the handshake (most recent {last})"
                ));
                c.add_fix(format!(
                    "find what at {client} opens sockets without connecting, or raise gateway.limits.maxPreauthPerIp {in_file}; behind a proxy, trust it so that clients are counted separately"
                ));
            }
            Kind::Protocol(client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push("protocol mismatch".into());
                c.details.push(format!(
                    "{n} from {client} spoke an unsupported protocol version (most recent {last})"
                ));
                c.add_fix(format!(
                    "update the client at {client} (clawgate speaks gateway protocol {})",
                    crate::gateway::PROTOCOL_VERSION
                ));
            }
            Kind::Other(reason, client) => {
                open += g.count;
                c.raise(Status::Warn);
                kinds.push(reason.clone());
                c.details.push(format!(
                    "{n} from {client} refused: {reason} (most recent {last})"
                ));
                if !g.hint.is_empty() {
                    c.add_fix(g.hint.clone());
                }
            }
        }
    }
    kinds.dedup();
    c.summary = if open == 0 {
        format!("{} refused recently, all resolved since", times(resolved))
    } else {
        format!("{} refused recently: {}", times(open), kinds.join(", "))
    };
    c
}

/// A trusted-proxy refusal: what it means and the fix, by the rule that
/// failed. Returns the summary's label.
fn explain_trusted_proxy(
    c: &mut Check,
    check: ProxyDenial,
    peer: &str,
    g: &Group,
    n: &str,
    last: &str,
    in_file: &str,
) -> &'static str {
    const MOVE: &str = "run the identity-aware proxy on its own address (another host, container or network namespace) and trust that address";
    let (status, label, detail, fixes): (Status, &'static str, String, Vec<String>) = match check {
        ProxyDenial::UntrustedSource => (
            Status::Warn,
            "bypassed the identity-aware proxy",
            format!("{n} came straight from {peer}, not through a trusted proxy (most recent {last}): in trusted-proxy mode only the identity-aware proxy may connect"),
            vec![format!("connect through the identity-aware proxy; if {peer} is that proxy, trust it: `clawgate proxies add {peer}` (or gateway.trustedProxies {in_file})")],
        ),
        ProxyDenial::LoopbackSource => (
            Status::Fail,
            "identity-aware proxy on loopback",
            format!("{n} came from the trusted proxy at {peer}, a loopback address, which trusted-proxy auth refuses by default (most recent {last})"),
            vec![
                format!("{MOVE}: `clawgate proxies add <address>`"),
                format!("or, if the proxy on this host is the only way in, set gateway.auth.trustedProxy.allowLoopback: true {in_file} (then anything on this host can claim any user)"),
            ],
        ),
        ProxyDenial::LocalInterfaceSource => (
            Status::Fail,
            "identity-aware proxy on this host's own address",
            format!("{n} came from the trusted proxy at {peer}, one of this host's own addresses (most recent {last}): anything on this host can connect from it, so clawgate does not take its word"),
            vec![format!("{MOVE} instead of {peer}")],
        ),
        ProxyDenial::MissingHeader => (
            Status::Fail,
            "identity-aware proxy omits a required header",
            format!("{n} through the trusted proxy {peer} lacked a header listed in gateway.auth.trustedProxy.requiredHeaders (most recent {last})"),
            vec![format!("make the proxy at {peer} send it (nginx: `proxy_set_header X-Forwarded-Proto $scheme;` for X-Forwarded-Proto), or remove it from gateway.auth.trustedProxy.requiredHeaders {in_file}")],
        ),
        ProxyDenial::UserMissing => (
            Status::Fail,
            "identity-aware proxy sent no user",
            format!("{n} through the trusted proxy {peer} carried no user (most recent {last}): the proxy let them through without passing who signed in"),
            vec![
                format!("make the proxy at {peer} sign the user in and pass the user header on every request to clawgate; nginx with auth_request (oauth2-proxy --set-xauthrequest): `auth_request_set $user $upstream_http_x_auth_request_user;` and `proxy_set_header X-Forwarded-User $user;`; Caddy forward_auth: `copy_headers X-Forwarded-User`"),
                format!("or set gateway.auth.trustedProxy.userHeader {in_file} to the header your proxy sends"),
            ],
        ),
        ProxyDenial::UserNotAllowed => (
            Status::Warn,
            "user not allowed",
            format!("{n} through the trusted proxy {peer} were signed in as a user who is not in gateway.auth.trustedProxy.allowUsers (most recent {last})"),
            vec![format!("if that user should get in, add them to gateway.auth.trustedProxy.allowUsers {in_file} (applies live)")],
        ),
        // (logged as proxy_attribution_required, explained with the upgrade's)
        ProxyDenial::AttributionRequired => (
            Status::Warn,
            "trusted-proxy auth refused",
            format!("{n} through {peer} were refused by trusted-proxy auth: no client address (most recent {last})"),
            vec![],
        ),
    };
    c.raise(status);
    c.details.push(detail);
    if !g.hint.is_empty() {
        c.details.push(format!("  last refusal: {}", g.hint));
    }
    for f in fixes {
        c.add_fix(f);
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(check: &str, hint: &str) -> Rejection {
        Rejection {
            ts: 1_000,
            peer: "172.17.0.2".into(),
            client: "203.0.113.9".into(),
            headers: vec!["x-forwarded-for".into()],
            reason: check.into(),
            hint: hint.into(),
            origin: None,
        }
    }

    #[test]
    fn trusted_proxy_refusals_say_which_check_and_the_fix() {
        let recs = vec![
            tp(
                "trusted_proxy_user_missing",
                "unauthorized: trusted proxy: the proxy did not send the user header x-forwarded-user",
            ),
            tp("trusted_proxy_user_missing", "…"),
            tp("trusted_proxy_user_not_allowed", "user \"bob\" is not in …"),
        ];
        let c = explain_rejections(&recs, Some(&[]), None, "in x.json", 2_000);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(
            c.summary
                .contains("identity-aware proxy sent no user, user not allowed"),
            "{c:?}"
        );
        assert!(
            c.details[0]
                .starts_with("2 connections through the trusted proxy 172.17.0.2 carried no user"),
            "{c:?}"
        );
        assert!(
            c.fix
                .iter()
                .any(|f| f.contains("auth_request_set $user $upstream_http_x_auth_request_user;")),
            "{c:?}"
        );
        assert!(
            c.fix
                .iter()
                .any(|f| f.contains("add them to gateway.auth.trustedProxy.allowUsers in x.json")),
            "{c:?}"
        );
        assert!(
            c.details
                .iter()
                .any(|d| d == "  last refusal: user \"bob\" is not in …"),
            "{c:?}"
        );
    }

    #[test]
    fn a_proxy_on_loopback_or_this_host_is_told_to_move() {
        for (check, label) in [
            ("trusted_proxy_loopback_source", "on loopback"),
            ("trusted_proxy_local_interface_source", "own address"),
        ] {
            let c = explain_rejections(&[tp(check, "")], Some(&[]), None, "", 2_000);
            assert_eq!(c.status, Status::Fail, "{c:?}");
            assert!(c.summary.contains(label), "{c:?}");
            assert!(
                c.fix[0].starts_with("run the identity-aware proxy on its own address"),
                "{c:?}"
            );
        }
        let c = explain_rejections(
            &[tp("trusted_proxy_untrusted_source", "")],
            Some(&[]),
            None,
            "",
            2_000,
        );
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.fix[0].contains("`clawgate proxies add 172.17.0.2`"),
            "{c:?}"
        );
    }
}
