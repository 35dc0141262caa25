//! `gateway.auth`: the mode and its secret, the rate limit, trusted-proxy
//! auth (`trustedProxy`) and the per-user `identityScopes`.

use super::*;

pub(super) fn auth(
    v: &mut V<'_, '_>,
    front_door: bool,
    g: &Map<String, Value>,
    bind: IpAddr,
    port: u16,
) -> AuthConfig {
    let ctx = v.ctx;
    // auth
    let mut auth_mode_explicit = None;
    let mut token = None;
    let mut password = None;
    let mut rate_limit = RateLimit::default();
    let mut trusted_proxy = None;
    let mut identity_scopes = vec![];
    match g.get("auth") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim() == "none" => v.err(
            "gateway.auth",
            "found the string \"none\", but auth is an object; to turn shared-secret auth off write \
             auth: { mode: \"none\" } (allowed only on a loopback bind)",
        ),
        Some(Value::String(s)) if ["token", "password"].contains(&s.trim()) => v.err(
            "gateway.auth",
            format!(
                "found the string {:?}, but auth is an object; write auth: {{ mode: {:?}, {}: \"<secret>\" }}",
                s.trim(),
                s.trim(),
                s.trim()
            ),
        ),
        Some(Value::Object(a)) => {
            v.unknown_keys("gateway.auth", a);
            if a.contains_key("type") {
                v.err("gateway.auth.type", "is not a key; the auth mode is gateway.auth.mode (\"token\", \"password\" or \"none\")");
            }
            match a.get("mode") {
                None | Some(Value::Null) => {}
                Some(Value::String(m)) => match m.trim() {
                    "token" => auth_mode_explicit = Some(AuthMode::Token),
                    "password" => auth_mode_explicit = Some(AuthMode::Password),
                    "none" => auth_mode_explicit = Some(AuthMode::None),
                    "trusted-proxy" => auth_mode_explicit = Some(AuthMode::TrustedProxy),
                    other => v.err("gateway.auth.mode", format!("{other:?} is not a mode; use \"token\", \"password\", \"none\" or \"trusted-proxy\"")),
                },
                Some(other) => v.err("gateway.auth.mode", format!("expected \"token\", \"password\", \"none\" or \"trusted-proxy\", found {}", describe(other))),
            }
            trusted_proxy = trusted_proxy_section(v, a.get("trustedProxy"));
            identity_scopes = identity_scopes_section(v, a.get("identityScopes"));
            token = v.secret("gateway.auth.token", a.get("token"));
            password = v.secret("gateway.auth.password", a.get("password"));
            if let Some(rl) = v.object("gateway.auth.rateLimit", a.get("rateLimit"), "rateLimit: { maxAttempts: 10, windowMs: 60000, lockoutMs: 300000 }") {
                rate_limit.max_attempts = v.number("gateway.auth.rateLimit.maxAttempts", rl.get("maxAttempts"), 10, 1, 1_000_000) as u32;
                rate_limit.window_ms = v.number("gateway.auth.rateLimit.windowMs", rl.get("windowMs"), 60_000, 1, u32::MAX as u64);
                rate_limit.lockout_ms = v.number("gateway.auth.rateLimit.lockoutMs", rl.get("lockoutMs"), 300_000, 1, u32::MAX as u64);
                rate_limit.exempt_loopback = v.boolean("gateway.auth.rateLimit.exemptLoopback", rl.get("exemptLoopback"), true);
            }
        }
        Some(other) => v.err(
            "gateway.auth",
            format!("expected an object, found {}; write auth: {{ mode: \"token\", token: \"<secret>\" }}", describe(other)),
        ),
    }
    let mut token_source = if token.is_some() {
        if v.set_by_env("gateway.auth.token") {
            SecretSource::Env("OPENCLAW_GATEWAY_TOKEN")
        } else {
            SecretSource::File
        }
    } else {
        SecretSource::None
    };
    let mode = match auth_mode_explicit {
        Some(m) => m,
        None if token.is_some() && password.is_some() => {
            v.issue(ConfigCode::Contradiction, "gateway.auth", "both a token and a password are set; choose one with gateway.auth.mode (\"token\" or \"password\")".into());
            AuthMode::Token
        }
        None if password.is_some() => AuthMode::Password,
        None => AuthMode::Token,
    };
    if mode == AuthMode::Token && token.is_none() {
        if auth_mode_explicit == Some(AuthMode::Token) {
            v.issue(
                ConfigCode::Contradiction,
                "gateway.auth.token",
                "gateway auth mode is token, but no token was configured (set gateway.auth.token or OPENCLAW_GATEWAY_TOKEN)".into(),
            );
        } else {
            match crate::config::generated_token(ctx.state_dir, ctx.generate_token) {
                Ok(Some(t)) => {
                    token = Some(Secret::new(t));
                    token_source = SecretSource::Generated(ctx.state_dir.join("gateway-token"));
                }
                Ok(None) => v.warnings.push(format!(
                    "gateway.auth.token: no token configured; `clawgate serve` generates one into {}",
                    ctx.state_dir.join("gateway-token").display()
                )),
                Err(e) => v.issue(
                    ConfigCode::StateDir,
                    "gateway.auth.token",
                    format!("no token configured and the generated one could not be stored in {}: {e}", ctx.state_dir.display()),
                ),
            }
        }
    }
    if mode == AuthMode::Password && password.is_none() {
        v.issue(
            ConfigCode::Contradiction,
            "gateway.auth.password",
            "gateway auth mode is password, but no password was configured (set gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD)".into(),
        );
    }
    if mode == AuthMode::TrustedProxy {
        if trusted_proxy.is_none() {
            v.issue(
                ConfigCode::Contradiction,
                "gateway.auth.trustedProxy",
                "gateway auth mode is trusted-proxy, but gateway.auth.trustedProxy is not set; write trustedProxy: { userHeader: \"x-forwarded-user\" } (the header your identity-aware proxy sets)".into(),
            );
        }
        if front_door {
            let upstream_mode = v
                .ctx
                .openclaw
                .and_then(|o| o.pointer("/gateway/auth/mode"))
                .and_then(Value::as_str)
                .map(str::trim);
            if upstream_mode == Some("trusted-proxy") {
                v.issue(
                    ConfigCode::Contradiction,
                    "gateway.auth.mode",
                    "in front-door mode openclaw.json's gateway.auth is the real gateway's, and clawgate reaches it with its token; keep openclaw.json in token mode and put gateway.auth.mode \"trusted-proxy\" and gateway.auth.trustedProxy in clawgate.json".into(),
                );
            }
        } else if token.is_some() {
            // In front-door mode the token is the upstream's credential.
            v.issue(
                ConfigCode::Contradiction,
                "gateway.auth.token",
                "gateway auth mode is trusted-proxy, which takes no shared token (the proxy vouches for each user); remove gateway.auth.token (and OPENCLAW_GATEWAY_TOKEN), or use mode \"token\"".into(),
            );
        }
    }
    if mode == AuthMode::None && !is_loopback(&bind) {
        v.issue(
            ConfigCode::Contradiction,
            "gateway.bind",
            format!("refusing to bind gateway to {bind}:{port} without auth; set gateway.auth.mode to \"token\" with a token, or bind to loopback"),
        );
    }

    AuthConfig {
        mode,
        token,
        previous_token: None,
        password,
        token_source,
        rate_limit,
        trusted_proxy,
        identity_scopes,
    }
}

/// `gateway.auth.trustedProxy` (protocol §3.4).
fn trusted_proxy_section(v: &mut V<'_, '_>, value: Option<&Value>) -> Option<TrustedProxyAuth> {
    const PATH: &str = "gateway.auth.trustedProxy";
    let t = v.object(
        PATH,
        value,
        "trustedProxy: { userHeader: \"x-forwarded-user\" }",
    )?;
    v.unknown_keys(PATH, t);
    let header = |v: &mut V<'_, '_>, path: &str, s: &str| {
        let h = s.trim().to_ascii_lowercase();
        let valid = !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid {
            v.err(
                path,
                format!("{s:?} is not an HTTP header name; e.g. \"x-forwarded-user\""),
            );
        }
        h
    };
    let user_header = match t.get("userHeader") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            header(v, &format!("{PATH}.userHeader"), s)
        }
        None | Some(Value::Null) | Some(Value::String(_)) => {
            v.issue(
                ConfigCode::Contradiction,
                &format!("{PATH}.userHeader"),
                "userHeader is required for trusted-proxy mode: the header your proxy puts the signed-in user in, e.g. \"x-forwarded-user\"".into(),
            );
            String::new()
        }
        Some(other) => {
            v.err(
                &format!("{PATH}.userHeader"),
                format!(
                    "expected a header name, found {}; e.g. \"x-forwarded-user\"",
                    describe(other)
                ),
            );
            String::new()
        }
    };
    let required_headers = v
        .string_list(
            &format!("{PATH}.requiredHeaders"),
            t.get("requiredHeaders"),
            r#"["x-forwarded-proto"]"#,
        )
        .into_iter()
        .map(|(p, h)| header(v, &p, &h))
        .collect();
    let allow_users = v
        .string_list(
            &format!("{PATH}.allowUsers"),
            t.get("allowUsers"),
            r#"["nick@example.com"]"#,
        )
        .into_iter()
        .map(|(_, u)| u)
        .filter(|u| !u.is_empty())
        .collect();
    let allow_loopback = v.boolean(
        &format!("{PATH}.allowLoopback"),
        t.get("allowLoopback"),
        false,
    );
    let mut auto_approve = false;
    let mut auto_approve_scopes = None;
    let aa_path = format!("{PATH}.deviceAutoApprove");
    if let Some(aa) = v.object(
        &aa_path,
        t.get("deviceAutoApprove"),
        "deviceAutoApprove: { enabled: true }",
    ) {
        v.unknown_keys(&aa_path, aa);
        auto_approve = v.boolean(&format!("{aa_path}.enabled"), aa.get("enabled"), false);
        if matches!(aa.get("scopes"), Some(x) if !x.is_null()) {
            auto_approve_scopes = Some(scope_list(
                v,
                &format!("{aa_path}.scopes"),
                aa.get("scopes"),
            ));
        }
    }
    if auto_approve
        && auto_approve_scopes
            .as_ref()
            .is_some_and(|s| s.iter().any(|x| x == "operator.admin"))
    {
        v.warn(
            &format!("{aa_path}.scopes"),
            "includes operator.admin: every user your proxy lets in can enroll a new device with full admin, without approval; grant admin per user with gateway.auth.identityScopes instead",
        );
    }
    Some(TrustedProxyAuth {
        user_header,
        required_headers,
        allow_users,
        allow_loopback,
        auto_approve,
        auto_approve_scopes,
    })
}

/// A list of operator scope names.
fn scope_list(v: &mut V<'_, '_>, path: &str, value: Option<&Value>) -> Vec<String> {
    let mut out = vec![];
    for (p, s) in v.string_list(path, value, r#"["operator.read", "operator.write"]"#) {
        if is_operator_scope(&s) {
            out.push(s);
        } else {
            v.err(
                &p,
                format!("{s:?} is not an operator scope; e.g. \"operator.read\""),
            );
        }
    }
    out
}

/// `gateway.auth.identityScopes`: user → operator scopes.
fn identity_scopes_section(v: &mut V<'_, '_>, value: Option<&Value>) -> Vec<(String, Vec<String>)> {
    const PATH: &str = "gateway.auth.identityScopes";
    let Some(m) = v.object(
        PATH,
        value,
        r#"identityScopes: { "admin@example.com": ["operator.admin"] }"#,
    ) else {
        return vec![];
    };
    m.iter()
        .map(|(user, scopes)| {
            let path = format!("{PATH}.{user}");
            (user.trim().to_string(), scope_list(v, &path, Some(scopes)))
        })
        .collect()
}

/// Whether `s` names an operator scope (`operator.<name>`).
fn is_operator_scope(s: &str) -> bool {
    s.strip_prefix("operator.").is_some_and(|rest| {
        !rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    })
}
