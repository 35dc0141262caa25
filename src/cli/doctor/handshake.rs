//! Check 4: a real `connect` with the shared secret this config resolves to.

use super::*;

// ---------------------------------------------------------------- 4. handshake

/// How the handshake went.
#[derive(Debug)]
pub(super) enum Handshake {
    /// The `res` frame answering `connect`.
    Answered(Value),
    /// The upgrade was refused with an HTTP status.
    Http { status: u16, body: String },
    /// TCP, WebSocket or timeout trouble.
    Io(String),
}

/// Opens the gateway WebSocket, waits for `connect.challenge`, sends `connect`
/// and returns the answer.
pub(super) fn ws_connect(addr: SocketAddr, auth: Value) -> Handshake {
    use tungstenite::handshake::HandshakeError;
    use tungstenite::{Error as WsError, Message};
    let stream = match TcpStream::connect_timeout(&addr, HTTP_TIMEOUT) {
        Ok(s) => s,
        Err(e) => return Handshake::Io(format!("cannot connect to {addr}: {e}")),
    };
    let _ = stream.set_read_timeout(Some(WS_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WS_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{addr}/");
    let mut ws = match tungstenite::client(url.as_str(), stream) {
        Ok((ws, _)) => ws,
        Err(HandshakeError::Failure(WsError::Http(resp))) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Handshake::Http {
                status: resp.status().as_u16(),
                body,
            };
        }
        Err(HandshakeError::Failure(e)) => {
            return Handshake::Io(format!("WebSocket upgrade failed: {e}"))
        }
        Err(HandshakeError::Interrupted(_)) => {
            return Handshake::Io("WebSocket upgrade timed out".into())
        }
    };
    let mut sent = false;
    let req = json!({
        "type": "req",
        "id": "doctor-1",
        "method": "connect",
        "params": {
            "minProtocol": crate::gateway::PROTOCOL_VERSION,
            "maxProtocol": crate::gateway::PROTOCOL_VERSION,
            "client": {
                "id": "cli",
                "displayName": "clawgate doctor",
                "version": env!("CARGO_PKG_VERSION"),
                "platform": std::env::consts::OS,
                "mode": "cli",
            },
            "role": "operator",
            "scopes": ["operator.read"],
            "auth": auth,
        }
    });
    let result = loop {
        let msg = match ws.read() {
            Ok(m) => m,
            Err(WsError::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                break Handshake::Io(if sent {
                    "no answer to connect (timed out)".into()
                } else {
                    "no connect.challenge from the gateway (timed out)".into()
                })
            }
            Err(e) => break Handshake::Io(format!("the connection ended: {e}")),
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(f) => {
                break Handshake::Io(match f {
                    Some(f) => format!(
                        "the gateway closed the connection: {} {}",
                        u16::from(f.code),
                        f.reason
                    ),
                    None => "the gateway closed the connection".into(),
                })
            }
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if !sent && v["type"] == "event" && v["event"] == "connect.challenge" {
            if let Err(e) = ws.send(Message::text(req.to_string())) {
                break Handshake::Io(format!("cannot send connect: {e}"));
            }
            sent = true;
        } else if sent && v["type"] == "res" && v["id"] == "doctor-1" {
            break Handshake::Answered(v);
        }
    };
    // Close politely: send our close frame and wait (briefly) for the
    // server's; the server keeps the TCP connection for a while after it.
    if ws.close(None).is_ok() {
        let _ = ws.get_ref().set_read_timeout(Some(Duration::from_secs(1)));
        for _ in 0..16 {
            match ws.read() {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    result
}

pub(super) fn token_origin(cfg: &RuntimeConfig) -> String {
    match &cfg.gateway.auth.token_source {
        SecretSource::File => match &cfg.file {
            Some(f) => format!("gateway.auth.token in {}", f.display()),
            None => "gateway.auth.token".into(),
        },
        SecretSource::Env(v) => format!("the environment variable {v}"),
        SecretSource::Generated(p) => format!("the generated token in {}", p.display()),
        SecretSource::Flag => "the command line".into(),
        SecretSource::Override => "an admin API override".into(),
        SecretSource::None => "nowhere (no token is configured)".into(),
    }
}

pub(super) fn check_handshake(
    ctx: &Ctx,
    gateway: Option<SocketAddr>,
    cfg: Option<&RuntimeConfig>,
    admin: Option<&Admin>,
) -> Check {
    const ID: &str = "handshake";
    let Some(addr) = gateway else {
        return Check::new(
            ID,
            Status::Skip,
            "skipped: the gateway is not reachable (see listeners)",
        );
    };
    let Some(cfg) = cfg else {
        return Check::new(
            ID,
            Status::Skip,
            "skipped: the config did not load, so the gateway's secret is unknown",
        );
    };
    let a = &cfg.gateway.auth;
    let (auth, secret_from) = match a.mode {
        AuthMode::Token => (
            match a.token.as_ref().and_then(|t| t.expose()) {
                Some(t) => json!({ "token": t }),
                None => json!({}),
            },
            token_origin(cfg),
        ),
        AuthMode::TrustedProxy if a.password.is_none() => {
            return Check::new(
                ID,
                Status::Skip,
                "skipped: in trusted-proxy mode a connect needs your proxy's identity headers \
                 (a local check would use gateway.auth.password, which is not set)",
            );
        }
        AuthMode::Password | AuthMode::TrustedProxy => (
            match a.password.as_ref().and_then(|t| t.expose()) {
                Some(p) => json!({ "password": p }),
                None => json!({}),
            },
            format!(
                "gateway.auth.password {} (or OPENCLAW_GATEWAY_PASSWORD)",
                ctx.in_file()
            ),
        ),
        AuthMode::None => (json!({}), "none (auth mode none)".into()),
    };
    let secret = if matches!(a.mode, AuthMode::Password | AuthMode::TrustedProxy) {
        "password"
    } else {
        "token"
    };
    match ws_connect(addr, auth) {
        Handshake::Answered(v) if v["ok"] == true => {
            let p = &v["payload"];
            Check::new(
                ID,
                Status::Ok,
                format!(
                    "connect on ws://{addr} with the {secret} from {secret_from}: hello-ok (protocol {}, server {})",
                    p["protocol"],
                    p["server"]["version"].as_str().unwrap_or("?")
                ),
            )
        }
        Handshake::Answered(v) => {
            let err = &v["error"];
            let code = err["details"]["code"]
                .as_str()
                .or(err["code"].as_str())
                .unwrap_or("ERROR")
                .to_string();
            let message = err["message"].as_str().unwrap_or("").to_string();
            explain_connect_error(ctx, cfg, admin, addr, &code, &message, secret, &secret_from)
        }
        Handshake::Http { status, body } => {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let msg = v["error"]["message"].as_str().unwrap_or(body.trim());
            let mut c = Check::new(
                ID,
                Status::Fail,
                format!("the gateway refused the WebSocket upgrade from this machine: HTTP {status}: {msg}"),
            );
            if let Some(h) = v["error"]["hint"].as_str().filter(|h| !h.is_empty()) {
                c = c.fix(h);
            }
            c
        }
        Handshake::Io(e) => Check::new(ID, Status::Fail, format!("handshake with ws://{addr} failed: {e}"))
            .fix("the listener answered /healthz but not the WebSocket: check clawgate's log, or restart it"),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn explain_connect_error(
    ctx: &Ctx,
    cfg: &RuntimeConfig,
    admin: Option<&Admin>,
    addr: SocketAddr,
    code: &str,
    message: &str,
    secret: &str,
    secret_from: &str,
) -> Check {
    const ID: &str = "handshake";
    let file = ctx.in_file();
    match code {
        "AUTH_TOKEN_MISMATCH" | "AUTH_PASSWORD_MISMATCH" => {
            let mut c = Check::new(
                ID,
                Status::Fail,
                format!("the gateway at ws://{addr} rejected the configured {secret} ({code})"),
            )
            .detail(format!("the {secret} tried came from {secret_from}"));
            let rotated = if secret == "token" {
                admin.and_then(Admin::last_gateway_rotation)
            } else {
                None
            };
            if let Some((ts, actor)) = &rotated {
                c.details.push(format!(
                    "the shared token was rotated through the admin API {} (by {actor}); the gateway accepts only the new token since",
                    ago(*ts, crate::util::now_ms())
                ));
                c.add_fix(format!(
                    "put the new token (printed once by `clawgate tokens rotate-gateway`) into gateway.auth.token {file} or OPENCLAW_GATEWAY_TOKEN, and into every client (gateway.remote.token)"
                ));
                c.add_fix("if the new token is lost, rotate again and keep the output: `clawgate tokens rotate-gateway`");
                return c;
            }
            match (&cfg.gateway.auth.token_source, secret) {
                (SecretSource::Env(var), "token") => {
                    c.add_fix(format!(
                        "set {var} to the token the running gateway was started with, or unset it (`unset {var}`) to use gateway.auth.token {file}"
                    ));
                }
                (SecretSource::File, _) | (_, "password") => {
                    c.add_fix(format!(
                        "the running gateway uses another {secret}: if you changed it {file} after clawgate started, restart clawgate (`{}`)",
                        ctx.serve_cmd
                    ));
                    c.add_fix(format!(
                        "if clawgate was started with OPENCLAW_GATEWAY_{} or another config, use that same value here",
                        secret.to_uppercase()
                    ));
                }
                (SecretSource::Generated(p), _) => {
                    c.add_fix(format!(
                        "the running gateway was not started with the generated token in {}: set gateway.auth.token {file} (or OPENCLAW_GATEWAY_TOKEN) to the token it was started with, or restart it without one (`{}`)",
                        p.display(),
                        ctx.serve_cmd
                    ));
                }
                _ => c.add_fix(format!(
                    "configure the gateway's token here: gateway.auth.token {file} or OPENCLAW_GATEWAY_TOKEN"
                )),
            }
            c
        }
        "AUTH_TOKEN_MISSING" | "AUTH_PASSWORD_MISSING" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} requires a {secret}, but none is configured here"),
        )
        .detail(message.to_string())
        .fix(format!(
            "set gateway.auth.{secret} {file} or OPENCLAW_GATEWAY_{} to the gateway's {secret}, or pass the --config/--state-dir the gateway runs with",
            secret.to_uppercase()
        )),
        "AUTH_RATE_LIMITED" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} locked this address out after repeated failed logins"),
        )
        .detail(message.to_string())
        .fix("wait for the lockout to end (gateway.auth.rateLimit.lockoutMs), then fix the credentials of whatever kept failing (see rejections)"),
        "DEVICE_IDENTITY_REQUIRED" if cfg.gateway.auth.mode == AuthMode::None => Check::new(
            ID,
            Status::Ok,
            format!("ws://{addr} answered connect (auth mode none: clients need a device identity, which the doctor does not send)"),
        ),
        "PROTOCOL_MISMATCH" => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} speaks another protocol version: {message}"),
        )
        .fix("run the doctor of the same clawgate version as the gateway"),
        _ => Check::new(
            ID,
            Status::Fail,
            format!("the gateway at ws://{addr} refused connect: {code}: {message}"),
        ),
    }
}

pub(super) use crate::cli::text::ago;
