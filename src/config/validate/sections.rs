//! The sections of `gateway.*`, one function each: what the key accepts,
//! its default, and the message that says what to write instead.

use super::*;

pub(super) fn bind(v: &mut V<'_, '_>, g: &Map<String, Value>) -> (String, IpAddr) {
    // bind
    let bind_spec = match g.get("bind") {
        None | Some(Value::Null) => "loopback".to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => {
            v.err("gateway.bind", format!("expected \"loopback\", \"lan\", \"auto\", \"custom\" or an IP address, found {}", describe(other)));
            "loopback".to_string()
        }
    };
    match g.get("customBindHost") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => v.err(
            "gateway.customBindHost",
            format!(
                "expected an IP address as a string, e.g. \"192.168.1.10\", found {}",
                describe(other)
            ),
        ),
    }
    let bind: IpAddr = match bind_spec.as_str() {
        "loopback" | "auto" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "lan" | "all" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "custom" => match g
            .get("customBindHost")
            .and_then(Value::as_str)
            .map(str::parse::<IpAddr>)
        {
            Some(Ok(ip)) => ip,
            _ => {
                v.err("gateway.customBindHost", "bind is \"custom\", so customBindHost must be an IP address, e.g. \"192.168.1.10\"");
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
        "tailnet" => {
            v.err("gateway.bind", "\"tailnet\" is not supported by clawgate; bind to the tailnet IP address instead, e.g. \"100.64.0.5\"");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        other => match other.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                v.err("gateway.bind", format!("{other:?} is not a bind mode or an IP address; use \"loopback\", \"lan\", \"custom\" or an address like \"0.0.0.0\""));
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        },
    };

    (bind_spec, bind)
}

pub(super) fn proxies(v: &mut V<'_, '_>, g: &Map<String, Value>) -> (Vec<IpNet>, bool) {
    let trusted_proxies = v.cidrs("gateway.trustedProxies", g.get("trustedProxies"));
    for n in trusted_proxies.iter().filter(|n| n.prefix_len() == 0) {
        v.warn(
            "gateway.trustedProxies",
            format!(
                "{n} trusts every peer: any client can then claim any address in \
                 X-Forwarded-For (and pass as local). List only your proxy's address or \
                 its network, e.g. \"172.17.0.0/16\" for Docker's default bridge"
            ),
        );
    }
    let allow_real_ip_fallback = v.boolean(
        "gateway.allowRealIpFallback",
        g.get("allowRealIpFallback"),
        false,
    );

    (trusted_proxies, allow_real_ip_fallback)
}

pub(super) fn control_ui(v: &mut V<'_, '_>, g: &Map<String, Value>) -> ControlUiConfig {
    let mut control_ui = ControlUiConfig::default();
    if let Some(c) = v.object(
        "gateway.controlUi",
        g.get("controlUi"),
        "controlUi: { allowedOrigins: [\"https://gw.example.com\"] }",
    ) {
        v.unknown_keys("gateway.controlUi", c);
        control_ui.enabled = v.boolean("gateway.controlUi.enabled", c.get("enabled"), true);
        control_ui.base_path = match c.get("basePath") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => match normalize_base_path(s) {
                Ok(b) => b,
                Err(e) => {
                    v.err("gateway.controlUi.basePath", e);
                    String::new()
                }
            },
            Some(other) => {
                v.err(
                    "gateway.controlUi.basePath",
                    format!(
                        "expected a path like \"/openclaw\", found {}",
                        describe(other)
                    ),
                );
                String::new()
            }
        };
        control_ui.root = match c.get("root") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => {
                let s = s.trim();
                let p = match (s.strip_prefix("~/"), v.ctx.env_vars.get("HOME")) {
                    (Some(rest), Some(home)) => std::path::Path::new(home).join(rest),
                    _ => std::path::PathBuf::from(s),
                };
                // OpenClaw accepts the folder or its index.html.
                let dir = if p.file_name().is_some_and(|n| n == "index.html") {
                    p.parent().map(std::path::Path::to_path_buf).unwrap_or(p)
                } else {
                    p
                };
                if !dir.join("index.html").is_file() {
                    v.warn(
                        "gateway.controlUi.root",
                        format!(
                            "{} has no index.html: browsers get 503 until it does (point it at the \
                             dist/control-ui folder of an installed openclaw package)",
                            dir.display()
                        ),
                    );
                }
                Some(dir)
            }
            Some(other) => {
                v.err(
                    "gateway.controlUi.root",
                    format!(
                        "expected the path of a Control UI folder, found {}",
                        describe(other)
                    ),
                );
                None
            }
        };
        control_ui.allow_insecure_auth = v.boolean(
            "gateway.controlUi.allowInsecureAuth",
            c.get("allowInsecureAuth"),
            false,
        );
        control_ui.dangerously_disable_device_auth = v.boolean(
            "gateway.controlUi.dangerouslyDisableDeviceAuth",
            c.get("dangerouslyDisableDeviceAuth"),
            false,
        );
        control_ui.allowed_origins = v
            .string_list(
                "gateway.controlUi.allowedOrigins",
                c.get("allowedOrigins"),
                r#"["https://gw.example.com"]"#,
            )
            .into_iter()
            .map(|(_, s)| s.trim_end_matches('/').to_lowercase())
            .collect();
        control_ui.dangerously_allow_host_header_origin_fallback = v.boolean(
            "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
            c.get("dangerouslyAllowHostHeaderOriginFallback"),
            false,
        );
    }
    if control_ui.allow_insecure_auth {
        v.warn("gateway.controlUi.allowInsecureAuth", "is on: a client presenting the correct shared token is accepted without device pairing");
    }
    if control_ui.dangerously_disable_device_auth {
        v.warn("gateway.controlUi.dangerouslyDisableDeviceAuth", "is accepted for compatibility and ignored (as in OpenClaw 2026.9); use allowInsecureAuth to skip pairing for shared-token clients");
    }

    control_ui
}

/// `""`, `"/"` → `""`; `"openclaw/"` → `"/openclaw"`.
fn normalize_base_path(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    if t.is_empty() {
        return Ok(String::new());
    }
    let t = if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    };
    let bad = t
        .split('/')
        .skip(1)
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        || t.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?#%\\\"<>".contains(c));
    if bad {
        return Err(format!(
            "{s:?} is not a usable base path; use one like \"/openclaw\" (letters, digits, - _ . between slashes)"
        ));
    }
    Ok(t)
}

pub(super) fn node_pairing(v: &mut V<'_, '_>, g: &Map<String, Value>) -> NodePairingConfig {
    let mut node_pairing = NodePairingConfig {
        auto_approve_local: true,
        auto_approve_cidrs: vec![],
    };
    if let Some(n) = v.object(
        "gateway.nodes",
        g.get("nodes"),
        "nodes: { pairing: { autoApproveLocal: true } }",
    ) {
        if let Some(p) = v.object(
            "gateway.nodes.pairing",
            n.get("pairing"),
            "pairing: { autoApproveLocal: true }",
        ) {
            v.unknown_keys("gateway.nodes.pairing", p);
            node_pairing.auto_approve_local = v.boolean(
                "gateway.nodes.pairing.autoApproveLocal",
                p.get("autoApproveLocal"),
                true,
            );
            node_pairing.auto_approve_cidrs = v.cidrs(
                "gateway.nodes.pairing.autoApproveCidrs",
                p.get("autoApproveCidrs"),
            );
        }
    }

    node_pairing
}

pub(super) fn reload(v: &mut V<'_, '_>, g: &Map<String, Value>) -> (ReloadMode, u64) {
    let mut reload_mode = ReloadMode::Hybrid;
    let mut reload_poll_ms = 2_000;
    if let Some(r) = v.object(
        "gateway.reload",
        g.get("reload"),
        "reload: { mode: \"hybrid\" }",
    ) {
        v.unknown_keys("gateway.reload", r);
        reload_poll_ms = v.number(
            "gateway.reload.pollIntervalMs",
            r.get("pollIntervalMs"),
            2_000,
            0,
            3_600_000,
        );
        if reload_poll_ms > 0 && reload_poll_ms < 100 {
            v.err(
                "gateway.reload.pollIntervalMs",
                format!(
                    "{reload_poll_ms} is too short; use 0 (no polling) or at least 100, e.g. 2000"
                ),
            );
        }
        match r.get("mode") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s == "hybrid" => {}
            Some(Value::String(s)) if s == "off" => reload_mode = ReloadMode::Off,
            Some(other) => v.err(
                "gateway.reload.mode",
                format!(
                    "allowed values are \"hybrid\" and \"off\", found {}",
                    describe(other)
                ),
            ),
        }
    }

    (reload_mode, reload_poll_ms)
}

pub(super) fn admin(v: &mut V<'_, '_>, g: &Map<String, Value>) -> AdminConfig {
    let mut admin = AdminConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: 18788,
        token: None,
        allow_remote: false,
    };
    if let Some(a) = v.object("gateway.admin", g.get("admin"), "admin: { port: 18788 }") {
        v.unknown_keys("gateway.admin", a);
        admin.port = v.number("gateway.admin.port", a.get("port"), 18788, 0, 65535) as u16;
        admin.allow_remote = v.boolean("gateway.admin.allowRemote", a.get("allowRemote"), false);
        admin.token = v.secret("gateway.admin.token", a.get("token"));
        match a.get("bind") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match s.as_str() {
                "loopback" | "localhost" => {}
                "lan" => admin.bind = IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                s => match s.parse::<IpAddr>() {
                    Ok(ip) => admin.bind = ip,
                    Err(_) => v.err(
                        "gateway.admin.bind",
                        format!("{s:?} is not an IP address; e.g. \"127.0.0.1\""),
                    ),
                },
            },
            Some(other) => v.err(
                "gateway.admin.bind",
                format!(
                    "expected \"loopback\", \"lan\" or an IP address, found {}",
                    describe(other)
                ),
            ),
        }
        if !is_loopback(&admin.bind) && !admin.allow_remote {
            v.issue(
                ConfigCode::Contradiction,
                "gateway.admin.bind",
                format!("the admin API would listen on {}, which is not loopback; set gateway.admin.allowRemote: true to allow that", admin.bind),
            );
        }
    }

    admin
}

pub(super) fn pairing(v: &mut V<'_, '_>, g: &Map<String, Value>) -> PairingConfig {
    let mut pairing = PairingConfig {
        pending_ttl_ms: 300_000,
        max_pending_per_client: 16,
        max_pending_total: 1024,
    };
    if let Some(p) = v.object(
        "gateway.pairing",
        g.get("pairing"),
        "pairing: { pendingTtlMs: 300000 }",
    ) {
        v.unknown_keys("gateway.pairing", p);
        pairing.pending_ttl_ms = v.number(
            "gateway.pairing.pendingTtlMs",
            p.get("pendingTtlMs"),
            300_000,
            1_000,
            86_400_000,
        );
        pairing.max_pending_per_client = v.number(
            "gateway.pairing.maxPendingPerClient",
            p.get("maxPendingPerClient"),
            16,
            1,
            100_000,
        ) as usize;
        pairing.max_pending_total = v.number(
            "gateway.pairing.maxPendingTotal",
            p.get("maxPendingTotal"),
            1024,
            1,
            1_000_000,
        ) as usize;
    }

    pairing
}

pub(super) fn limits(v: &mut V<'_, '_>, g: &Map<String, Value>) -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    if let Some(l) = v.object(
        "gateway.limits",
        g.get("limits"),
        "limits: { handshakeTimeoutMs: 15000 }",
    ) {
        v.unknown_keys("gateway.limits", l);
        let d = LimitsConfig::default();
        limits.handshake_timeout_ms = v.number(
            "gateway.limits.handshakeTimeoutMs",
            l.get("handshakeTimeoutMs"),
            d.handshake_timeout_ms,
            100,
            600_000,
        );
        limits.max_preauth_payload = v.number(
            "gateway.limits.maxPreauthPayload",
            l.get("maxPreauthPayload"),
            d.max_preauth_payload as u64,
            1024,
            1 << 24,
        ) as usize;
        limits.max_payload = v.number(
            "gateway.limits.maxPayload",
            l.get("maxPayload"),
            d.max_payload as u64,
            1024,
            1 << 30,
        ) as usize;
        limits.max_preauth_per_ip = v.number(
            "gateway.limits.maxPreauthPerIp",
            l.get("maxPreauthPerIp"),
            d.max_preauth_per_ip as u64,
            1,
            1_000_000,
        ) as usize;
        limits.tick_interval_ms = v.number(
            "gateway.limits.tickIntervalMs",
            l.get("tickIntervalMs"),
            d.tick_interval_ms,
            100,
            3_600_000,
        );
        limits.ping_interval_ms = v.number(
            "gateway.limits.pingIntervalMs",
            l.get("pingIntervalMs"),
            d.ping_interval_ms,
            100,
            3_600_000,
        );
        limits.workers = v.number("gateway.limits.workers", l.get("workers"), 0, 0, 256) as usize;
        limits.max_http_body = v.number(
            "gateway.limits.maxHttpBodyBytes",
            l.get("maxHttpBodyBytes"),
            d.max_http_body,
            1024,
            1 << 32,
        );
    }
    limits
}

/// `upstream.*`: the real gateway clawgate fronts. `url: "auto"` takes the
/// port from `openclaw.json` (`gateway.port`, default 18789) on 127.0.0.1;
/// the secret defaults to the shared secret as the real gateway reads it.
/// `port` and `bind` are clawgate's own listener.
pub(super) fn upstream(
    v: &mut V<'_, '_>,
    root: &Value,
    port: u16,
    bind: IpAddr,
) -> Option<UpstreamConfig> {
    let u = v.object(
        "upstream",
        root.get("upstream"),
        "upstream: { url: \"auto\" }",
    )?;
    v.unknown_keys("upstream", u);
    let openclaw = v.ctx.openclaw;
    let (url, derived) = match u.get("url") {
        None | Some(Value::Null) => return None,
        Some(Value::String(s)) if s.trim() == "auto" => {
            let p = openclaw
                .and_then(|o| o.pointer("/gateway/port"))
                .and_then(|p| {
                    p.as_u64()
                        .or_else(|| p.as_str().and_then(|s| s.trim().parse().ok()))
                })
                .unwrap_or(18789);
            (format!("ws://127.0.0.1:{p}"), true)
        }
        Some(Value::String(s)) => match normalize_upstream(s.trim()) {
            Ok(u) => (u, false),
            Err(e) => {
                v.err("upstream.url", e);
                return None;
            }
        },
        Some(other) => {
            v.err(
                "upstream.url",
                format!(
                    "expected \"auto\" or a URL like \"ws://127.0.0.1:18790\", found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let parsed = url::Url::parse(&url).ok()?;
    let up_port = parsed.port_or_known_default().unwrap_or(0);
    let up_loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !up_loopback {
        v.warn(
            "upstream.url",
            format!(
                "{url} is not on loopback: bind the real gateway to 127.0.0.1 so that remote \
                 clients cannot reach it around clawgate"
            ),
        );
    }
    if up_loopback && up_port == port && (bind.is_loopback() || bind.is_unspecified()) {
        v.issue(
            ConfigCode::Contradiction,
            "upstream.url",
            format!(
                "clawgate and the upstream gateway would both listen on port {port}; move the real \
                 gateway to another port (gateway: {{ port: 18790, bind: \"loopback\" }} in \
                 openclaw.json) or set clawgate's own gateway.port in clawgate.json"
            ),
        );
    }
    // The secret: upstream.token / upstream.password, else the shared
    // secret the real gateway reads (its env first, then openclaw.json).
    let token = v.secret("upstream.token", u.get("token"));
    let password = v.secret("upstream.password", u.get("password"));
    let (secret, from) = match (token, password) {
        (Some(t), _) => (UpstreamSecret::Token(t), "upstream.token"),
        (None, Some(p)) => (UpstreamSecret::Password(p), "upstream.password"),
        (None, None) => openclaw_secret(v),
    };
    let connect_timeout_ms = v.number(
        "upstream.connectTimeoutMs",
        u.get("connectTimeoutMs"),
        UpstreamConfig::DEFAULT_CONNECT_TIMEOUT_MS,
        100,
        120_000,
    );
    Some(UpstreamConfig {
        url,
        secret,
        secret_from: from,
        derived,
        connect_timeout_ms,
    })
}

/// The shared secret as the real gateway reads it.
fn openclaw_secret(v: &mut V<'_, '_>) -> (UpstreamSecret, &'static str) {
    let env = |k: &str| {
        v.ctx
            .env_vars
            .get(k)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let auth = v.ctx.openclaw.and_then(|o| o.pointer("/gateway/auth"));
    let mode = auth
        .and_then(|a| a.get("mode"))
        .and_then(Value::as_str)
        .map(str::trim);
    let file_secret = |v: &mut V<'_, '_>, key: &str| {
        // Read like any secret (env references, ${VAR}); its problems are
        // reported where the key itself is validated.
        let mut scratch = vec![];
        let mut quiet = V {
            ctx: v.ctx,
            issues: vec![],
            warnings: &mut scratch,
            positions: Default::default(),
            own_positions: Default::default(),
        };
        quiet.secret(
            &format!("gateway.auth.{key}"),
            auth.and_then(|a| a.get(key)),
        )
    };
    if mode == Some("password") {
        if let Some(p) = env("OPENCLAW_GATEWAY_PASSWORD") {
            return (
                UpstreamSecret::Password(Secret::new(p)),
                "OPENCLAW_GATEWAY_PASSWORD",
            );
        }
        return match file_secret(v, "password") {
            Some(p) => (
                UpstreamSecret::Password(p),
                "openclaw.json gateway.auth.password",
            ),
            None => (UpstreamSecret::None, "none"),
        };
    }
    if mode == Some("none") {
        return (UpstreamSecret::None, "none");
    }
    if let Some(t) = env("OPENCLAW_GATEWAY_TOKEN") {
        return (
            UpstreamSecret::Token(Secret::new(t)),
            "OPENCLAW_GATEWAY_TOKEN",
        );
    }
    match file_secret(v, "token") {
        Some(t) => (UpstreamSecret::Token(t), "openclaw.json gateway.auth.token"),
        None => (UpstreamSecret::None, "none"),
    }
}

/// `ws://` / `wss://` (an `http(s)://` URL is taken as its WebSocket form),
/// with a host; the path is kept.
fn normalize_upstream(s: &str) -> Result<String, String> {
    let mut u = url::Url::parse(s).map_err(|e| {
        format!("{s:?} is not a URL ({e}); write it like \"ws://127.0.0.1:18790\" or \"auto\"")
    })?;
    let scheme = match u.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(format!(
                "the scheme {other:?} is not a gateway URL; use ws:// (or wss://), e.g. \"ws://127.0.0.1:18790\""
            ))
        }
    };
    if u.host().is_none() {
        return Err(format!(
            "{s:?} names no host; e.g. \"ws://127.0.0.1:18790\""
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("put the upstream's credential in upstream.token, not in the URL".into());
    }
    u.set_scheme(scheme).ok();
    Ok(u.to_string().trim_end_matches('/').to_string())
}
