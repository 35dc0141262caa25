#![allow(dead_code)]
//! Reusable async WebSocket test client for the OpenClaw gateway protocol
//! (protocol.md §1.3 frames, §2 handshake, §2.4 signature payloads).
//!
//! Used by the integration tests (`mod common;` → `common::client`) and by the
//! handshake benchmark (`#[path = "../tests/common/client.rs"] mod client;`).
//! Every wait is bounded by a timeout; nothing sleeps for synchronisation.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket stream type used by [`Conn`].
pub type Ws = WebSocketStream<TcpStream>;

/// How long `Conn::open` waits for `connect.challenge`.
pub const CHALLENGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `connect`/`rpc` wait for their `res` frame.
pub const RES_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `connect` waits for the close frame that follows a failing `res`.
pub const FAIL_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `ws://<addr>/` for an `ip:port` address.
pub fn ws_url(addr: &str) -> String {
    format!("ws://{addr}/")
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------
// Device identity and signature payloads (§2.3, §2.4)
// ---------------------------------------------------------------------------

/// An Ed25519 device identity as the CLI / Control UI hold it.
#[derive(Clone, Debug)]
pub struct DeviceIdentity {
    pub signing_key: SigningKey,
    /// Lowercase hex SHA-256 of the raw 32-byte public key.
    pub device_id: String,
    /// Raw 32-byte public key, base64url without padding.
    pub public_key: String,
}

impl DeviceIdentity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_seed(clawgate::util::random_bytes())
    }

    /// The identity whose private key seed is `seed` (PKCS#8 seed / noble "privateKey").
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing_key = SigningKey::from_bytes(&seed);
        let pk = signing_key.verifying_key().to_bytes();
        DeviceIdentity {
            device_id: hex::encode(Sha256::digest(pk)),
            public_key: b64url(&pk),
            signing_key,
        }
    }

    /// Raw public key bytes.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// Ed25519 signature over the UTF-8 bytes of `payload`, base64url without padding.
    pub fn sign(&self, payload: &str) -> String {
        b64url(&self.signing_key.sign(payload.as_bytes()).to_bytes())
    }
}

/// §2.4 metadata normalisation: trim, then lowercase ASCII letters only.
pub fn normalize_meta(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// `v3|deviceId|clientId|clientMode|role|scopesCsv|signedAtMs|token|nonce|platform|deviceFamily`
#[allow(clippy::too_many_arguments)]
pub fn payload_v3(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: u64,
    token: &str,
    nonce: &str,
    platform: &str,
    device_family: &str,
) -> String {
    format!(
        "v3|{device_id}|{client_id}|{client_mode}|{role}|{}|{signed_at_ms}|{token}|{nonce}|{}|{}",
        scopes.join(","),
        normalize_meta(platform),
        normalize_meta(device_family)
    )
}

/// `v2|deviceId|clientId|clientMode|role|scopesCsv|signedAtMs|token|nonce`
#[allow(clippy::too_many_arguments)]
pub fn payload_v2(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: u64,
    token: &str,
    nonce: &str,
) -> String {
    format!(
        "v2|{device_id}|{client_id}|{client_mode}|{role}|{}|{signed_at_ms}|{token}|{nonce}",
        scopes.join(",")
    )
}

// ---------------------------------------------------------------------------
// Connect options
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigVersion {
    V3,
    V2,
}

/// Everything that goes into a `connect` request. `Default` is a local CLI:
/// `cli`/`cli`, version `2026.9.6`, platform `linux`, role `operator`,
/// scopes `["operator.read"]`, protocol 4..4, v3 signature, no credentials, no device.
#[derive(Clone, Debug)]
pub struct ConnectOpts {
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub platform: String,
    /// `client.deviceFamily`; `None` = omitted (signed as "").
    pub device_family: Option<String>,
    /// `None` = omit `role` (server default `operator`; signed as `operator`).
    pub role: Option<String>,
    pub scopes: Vec<String>,
    /// `auth.token`
    pub token: Option<String>,
    /// `auth.password`
    pub password: Option<String>,
    /// `auth.deviceToken`
    pub device_token: Option<String>,
    /// Device identity; `None` = no `device` block.
    pub device: Option<DeviceIdentity>,
    pub sig_version: SigVersion,
    pub min_protocol: u32,
    pub max_protocol: u32,
    /// `device.signedAt` (and the signed value); default = `challenge.ts`.
    pub signed_at_override: Option<u64>,
    /// `device.nonce` (and the signed value); default = the challenge nonce.
    pub nonce_override: Option<String>,
    /// Merged into `params` last (top-level keys overwrite what was built).
    pub extra_params: Map<String, Value>,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            client_id: "cli".into(),
            client_mode: "cli".into(),
            client_version: "2026.9.6".into(),
            platform: "linux".into(),
            device_family: None,
            role: Some("operator".into()),
            scopes: vec!["operator.read".into()],
            token: None,
            password: None,
            device_token: None,
            device: None,
            sig_version: SigVersion::V3,
            min_protocol: 4,
            max_protocol: 4,
            signed_at_override: None,
            nonce_override: None,
            extra_params: Map::new(),
        }
    }
}

impl ConnectOpts {
    /// Default options with `auth.token = token`.
    pub fn with_token(token: &str) -> Self {
        ConnectOpts {
            token: Some(token.into()),
            ..Default::default()
        }
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.into());
        self
    }
    pub fn device_token(mut self, device_token: &str) -> Self {
        self.device_token = Some(device_token.into());
        self
    }
    pub fn device(mut self, device: &DeviceIdentity) -> Self {
        self.device = Some(device.clone());
        self
    }
    pub fn role(mut self, role: &str) -> Self {
        self.role = Some(role.into());
        self
    }
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn client(mut self, id: &str, mode: &str) -> Self {
        self.client_id = id.into();
        self.client_mode = mode.into();
        self
    }
    pub fn extra(mut self, key: &str, value: Value) -> Self {
        self.extra_params.insert(key.into(), value);
        self
    }
    /// The token that goes into the signature payload:
    /// `auth.token ?? auth.deviceToken ?? ""`.
    pub fn signature_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .unwrap_or("")
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum OpenError {
    /// The server answered the upgrade with a non-101 status.
    /// `body` is what arrived with the response head (enough for small JSON bodies).
    Http { status: u16, body: String },
    /// TCP / WebSocket / timeout / missing challenge.
    Io(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Http { status, body } => write!(f, "HTTP {status}: {body}"),
            OpenError::Io(e) => write!(f, "io: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Why `connect` did not produce a hello-ok.
#[derive(Debug, Clone, Default)]
pub struct ConnectFailure {
    /// `res.error` of the failing connect response (None if no `res` arrived).
    pub error: Option<Value>,
    /// The close frame that followed (None on timeout / EOF without close frame).
    pub close: Option<(u16, String)>,
}

impl ConnectFailure {
    /// `error.code`
    pub fn code(&self) -> Option<&str> {
        self.error.as_ref()?.get("code")?.as_str()
    }
    /// `error.details.code`
    pub fn detail_code(&self) -> Option<&str> {
        self.error.as_ref()?.get("details")?.get("code")?.as_str()
    }
    /// `error.message`
    pub fn message(&self) -> Option<&str> {
        self.error.as_ref()?.get("message")?.as_str()
    }
    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| c.0)
    }
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connect failed: error={:?} close={:?}",
            self.error, self.close
        )
    }
}

impl std::error::Error for ConnectFailure {}

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------

/// Options for [`Conn::open_with`].
#[derive(Clone, Debug)]
pub struct OpenOpts {
    /// Extra request headers (Origin, X-Forwarded-For, Host, ...).
    pub headers: Vec<(String, String)>,
    /// How long to wait for TCP + upgrade + `connect.challenge`.
    pub timeout: Duration,
    /// tungstenite read buffer size (default 128 KiB; small values save memory
    /// when holding thousands of idle connections).
    pub read_buffer_size: Option<usize>,
    /// Wait for `connect.challenge` (true) or return right after the upgrade.
    pub wait_challenge: bool,
}

impl Default for OpenOpts {
    fn default() -> Self {
        OpenOpts {
            headers: Vec::new(),
            timeout: CHALLENGE_TIMEOUT,
            read_buffer_size: None,
            wait_challenge: true,
        }
    }
}

pub struct Conn {
    /// The underlying stream (public for tests that need raw access).
    pub ws: Ws,
    /// Payload of the `connect.challenge` event (`{nonce, ts, capabilities}`);
    /// `Value::Null` if opened with `wait_challenge: false`.
    pub challenge: Value,
    /// Event frames (full frames: `{type:"event",event,payload,seq?,...}`) that
    /// arrived while waiting for something else; `next_event` consumes them.
    pub events: Vec<Value>,
    /// `res` frames that arrived for an id nobody was waiting for.
    pub stray_responses: Vec<Value>,
    /// The close frame received from the server, once seen.
    pub closed: Option<(u16, String)>,
    /// True once the stream ended (close frame, EOF or error).
    pub ended: bool,
    /// HTTP headers of the 101 response.
    pub response_headers: Vec<(String, String)>,
    next_id: u64,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("challenge", &self.challenge)
            .field("events", &self.events.len())
            .field("closed", &self.closed)
            .field("ended", &self.ended)
            .finish()
    }
}

/// Result of reading one message from the stream.
enum Incoming {
    Json(Value),
    Close(Option<(u16, String)>),
    Other,
    End,
    Timeout,
}

fn parse_http_error(e: WsError) -> OpenError {
    match e {
        WsError::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            OpenError::Http { status, body }
        }
        other => OpenError::Io(other.to_string()),
    }
}

impl Conn {
    /// Open a WebSocket to `url` with extra request `headers` and wait (≤ 5 s)
    /// for `connect.challenge`. A non-101 upgrade answer → `OpenError::Http`.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Conn, OpenError> {
        let opts = OpenOpts {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        Self::open_with(url, &opts).await
    }

    /// `open` with full options.
    pub async fn open_with(url: &str, opts: &OpenOpts) -> Result<Conn, OpenError> {
        match tokio::time::timeout(opts.timeout, Self::open_inner(url, opts)).await {
            Ok(r) => r,
            Err(_) => Err(OpenError::Io(format!(
                "timeout after {:?} (upgrade or connect.challenge)",
                opts.timeout
            ))),
        }
    }

    async fn open_inner(url: &str, opts: &OpenOpts) -> Result<Conn, OpenError> {
        let mut req = url
            .into_client_request()
            .map_err(|e| OpenError::Io(format!("bad url {url}: {e}")))?;
        let mut seen: Vec<HeaderName> = Vec::new();
        for (k, v) in &opts.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| OpenError::Io(format!("bad header name {k}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| OpenError::Io(format!("bad header value {v}: {e}")))?;
            // The first occurrence replaces a default (e.g. a custom Host);
            // repeated names are appended (e.g. two X-Forwarded-For lines).
            if seen.contains(&name) {
                req.headers_mut().append(name, value);
            } else {
                seen.push(name.clone());
                req.headers_mut().insert(name, value);
            }
        }
        let host = req
            .uri()
            .host()
            .ok_or_else(|| OpenError::Io(format!("no host in {url}")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = req.uri().port_u16().unwrap_or(80);
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| OpenError::Io(format!("tcp connect {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let config = opts.read_buffer_size.map(|n| {
            WebSocketConfig::default()
                .read_buffer_size(n)
                .write_buffer_size(0)
        });
        let (ws, resp) = tokio_tungstenite::client_async_with_config(req, tcp, config)
            .await
            .map_err(parse_http_error)?;
        let response_headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut conn = Conn {
            ws,
            challenge: Value::Null,
            events: Vec::new(),
            stray_responses: Vec::new(),
            closed: None,
            ended: false,
            response_headers,
            next_id: 0,
        };
        if opts.wait_challenge {
            loop {
                match conn.read_one(None).await {
                    Incoming::Json(v) => {
                        if v.get("type").and_then(Value::as_str) == Some("event")
                            && v.get("event").and_then(Value::as_str) == Some("connect.challenge")
                        {
                            conn.challenge = v.get("payload").cloned().unwrap_or(Value::Null);
                            break;
                        }
                        conn.stash(v);
                    }
                    Incoming::Other => {}
                    Incoming::Close(c) => {
                        return Err(OpenError::Io(format!(
                            "closed before connect.challenge: {c:?}"
                        )))
                    }
                    Incoming::End | Incoming::Timeout => {
                        return Err(OpenError::Io(
                            "stream ended before connect.challenge".into(),
                        ))
                    }
                }
            }
        }
        Ok(conn)
    }

    /// Open and complete a handshake in one call.
    pub async fn open_connect(
        url: &str,
        opts: &ConnectOpts,
    ) -> Result<(Conn, Value), Box<dyn std::error::Error + Send + Sync>> {
        let mut c = Conn::open(url, &[]).await?;
        let hello = c.connect(opts).await?;
        Ok((c, hello))
    }

    /// The challenge nonce (empty if none).
    pub fn nonce(&self) -> &str {
        self.challenge
            .get("nonce")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The challenge `ts` (None if absent / not an unsigned integer).
    pub fn challenge_ts(&self) -> Option<u64> {
        self.challenge.get("ts").and_then(Value::as_u64)
    }

    /// A fresh request id.
    pub fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}:{}", self.next_id, uuid::Uuid::new_v4())
    }

    /// The `device` block for `opts` (None if `opts.device` is None).
    pub fn device_block(&self, opts: &ConnectOpts) -> Option<Value> {
        let dev = opts.device.as_ref()?;
        let signed_at = opts
            .signed_at_override
            .or_else(|| self.challenge_ts())
            .unwrap_or_else(now_ms);
        let nonce = opts
            .nonce_override
            .clone()
            .unwrap_or_else(|| self.nonce().to_string());
        let role = opts.role.as_deref().unwrap_or("operator");
        let token = opts.signature_token();
        let payload = match opts.sig_version {
            SigVersion::V3 => payload_v3(
                &dev.device_id,
                &opts.client_id,
                &opts.client_mode,
                role,
                &opts.scopes,
                signed_at,
                token,
                &nonce,
                &opts.platform,
                opts.device_family.as_deref().unwrap_or(""),
            ),
            SigVersion::V2 => payload_v2(
                &dev.device_id,
                &opts.client_id,
                &opts.client_mode,
                role,
                &opts.scopes,
                signed_at,
                token,
                &nonce,
            ),
        };
        Some(json!({
            "id": dev.device_id,
            "publicKey": dev.public_key,
            "signature": dev.sign(&payload),
            "signedAt": signed_at,
            "nonce": nonce,
        }))
    }

    /// The `params` object of a connect request.
    pub fn build_connect_params(&self, opts: &ConnectOpts) -> Map<String, Value> {
        let mut client = Map::new();
        client.insert("id".into(), json!(opts.client_id));
        client.insert("version".into(), json!(opts.client_version));
        client.insert("platform".into(), json!(opts.platform));
        client.insert("mode".into(), json!(opts.client_mode));
        if let Some(df) = &opts.device_family {
            client.insert("deviceFamily".into(), json!(df));
        }
        let mut params = Map::new();
        params.insert("minProtocol".into(), json!(opts.min_protocol));
        params.insert("maxProtocol".into(), json!(opts.max_protocol));
        params.insert("client".into(), Value::Object(client));
        if let Some(role) = &opts.role {
            params.insert("role".into(), json!(role));
        }
        params.insert("scopes".into(), json!(opts.scopes));
        let mut auth = Map::new();
        if let Some(t) = &opts.token {
            auth.insert("token".into(), json!(t));
        }
        if let Some(p) = &opts.password {
            auth.insert("password".into(), json!(p));
        }
        if let Some(d) = &opts.device_token {
            auth.insert("deviceToken".into(), json!(d));
        }
        if !auth.is_empty() {
            params.insert("auth".into(), Value::Object(auth));
        }
        if let Some(dev) = self.device_block(opts) {
            params.insert("device".into(), dev);
        }
        for (k, v) in &opts.extra_params {
            params.insert(k.clone(), v.clone());
        }
        params
    }

    /// The full connect request frame `{type:"req",id,method:"connect",params}`.
    /// Signs with `signedAt = challenge.ts` (or override) and the challenge
    /// nonce (or override); signature token = `token ?? device_token ?? ""`.
    pub fn build_connect(&self, opts: &ConnectOpts) -> Value {
        json!({
            "type": "req",
            "id": format!("c-{}", uuid::Uuid::new_v4()),
            "method": "connect",
            "params": Value::Object(self.build_connect_params(opts)),
        })
    }

    /// Send a connect request and wait for its `res`. Ok = hello-ok payload.
    /// On `ok:false` the error object is returned together with the close
    /// frame that follows (waited for ≤ 3 s).
    pub async fn connect(&mut self, opts: &ConnectOpts) -> Result<Value, ConnectFailure> {
        let frame = self.build_connect(opts);
        self.connect_frame(&frame).await
    }

    /// Send an arbitrary (pre-built, possibly tampered) connect frame and wait
    /// for its result like `connect`.
    pub async fn connect_frame(&mut self, frame: &Value) -> Result<Value, ConnectFailure> {
        let id = frame.get("id").cloned().unwrap_or(Value::Null);
        self.send_json(frame).await;
        match self.wait_res(&id, RES_TIMEOUT).await {
            Some(res) => {
                if res.get("ok").and_then(Value::as_bool) == Some(true) {
                    Ok(res.get("payload").cloned().unwrap_or(Value::Null))
                } else {
                    let error = res.get("error").cloned();
                    let close = self.expect_close(FAIL_CLOSE_TIMEOUT).await;
                    Err(ConnectFailure { error, close })
                }
            }
            None => Err(ConnectFailure {
                error: None,
                close: self.closed.clone(),
            }),
        }
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, s: &str) {
        let _ = self.ws.send(Message::text(s.to_string())).await;
    }

    pub async fn send_binary(&mut self, b: Vec<u8>) {
        let _ = self.ws.send(Message::binary(b)).await;
    }

    /// Send any message, reporting the error (e.g. to test writes after close).
    pub async fn try_send(&mut self, m: Message) -> Result<(), String> {
        self.ws.send(m).await.map_err(|e| e.to_string())
    }

    /// Send a request and wait (≤ 10 s) for its response. Events that arrive
    /// meanwhile are stashed in `self.events`. `Err` carries `res.error`, or a
    /// synthetic `{code:"CLIENT_CLOSED"|"CLIENT_TIMEOUT", message, close?}`.
    pub async fn rpc(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.rpc_timeout(method, params, RES_TIMEOUT).await
    }

    pub async fn rpc_timeout(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, Value> {
        let id = self.new_id();
        let mut frame = json!({"type": "req", "id": id, "method": method});
        if !params.is_null() {
            frame["params"] = params;
        }
        self.send_json(&frame).await;
        match self.wait_res(&json!(id), timeout).await {
            Some(res) => {
                if res.get("ok").and_then(Value::as_bool) == Some(true) {
                    Ok(res.get("payload").cloned().unwrap_or(Value::Null))
                } else {
                    Err(res.get("error").cloned().unwrap_or(Value::Null))
                }
            }
            None if self.ended => Err(json!({
                "code": "CLIENT_CLOSED",
                "message": format!("connection ended before response to {method}"),
                "close": self.closed.as_ref().map(|(c, r)| json!([c, r])),
            })),
            None => Err(json!({
                "code": "CLIENT_TIMEOUT",
                "message": format!("no response to {method} within {timeout:?}"),
            })),
        }
    }

    /// Wait for the `res` frame with `id`; events are stashed, other
    /// responses go to `stray_responses`. None on close/EOF/timeout.
    pub async fn wait_res(&mut self, id: &Value, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.recv_frame_until(deadline).await?;
            if v.get("type").and_then(Value::as_str) == Some("res") && v.get("id") == Some(id) {
                return Some(v);
            }
            self.stash(v);
        }
    }

    fn stash(&mut self, v: Value) {
        match v.get("type").and_then(Value::as_str) {
            Some("event") => self.events.push(v),
            Some("res") => self.stray_responses.push(v),
            _ => {}
        }
    }

    async fn read_one(&mut self, deadline: Option<Instant>) -> Incoming {
        if self.ended {
            return Incoming::End;
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), self.ws.next()).await {
                Ok(n) => n,
                Err(_) => return Incoming::Timeout,
            },
            None => self.ws.next().await,
        };
        match next {
            None | Some(Err(_)) => {
                self.ended = true;
                Incoming::End
            }
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => Incoming::Json(v),
                Err(_) => Incoming::Other,
            },
            Some(Ok(Message::Binary(b))) => match serde_json::from_slice::<Value>(&b) {
                Ok(v) => Incoming::Json(v),
                Err(_) => Incoming::Other,
            },
            Some(Ok(Message::Close(cf))) => {
                let c = cf.map(|f| (u16::from(f.code), f.reason.as_str().to_string()));
                // A close frame without a code is reported as 1005 (no status).
                self.closed = Some(c.clone().unwrap_or((1005, String::new())));
                self.ended = true;
                Incoming::Close(c)
            }
            Some(Ok(_)) => Incoming::Other,
        }
    }

    async fn recv_frame_until(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            match self.read_one(Some(deadline)).await {
                Incoming::Json(v) => return Some(v),
                Incoming::Other => continue,
                Incoming::Close(_) | Incoming::End | Incoming::Timeout => return None,
            }
        }
    }

    /// Next JSON frame (text, or binary holding JSON). None on close/EOF/timeout.
    /// Does not look at stashed events.
    pub async fn recv_frame(&mut self, timeout: Duration) -> Option<Value> {
        self.recv_frame_until(Instant::now() + timeout).await
    }

    /// Next event frame named `name` (the full frame, including `seq`);
    /// stashed events are checked first. Other frames are stashed.
    pub async fn next_event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        if let Some(pos) = self
            .events
            .iter()
            .position(|e| e.get("event").and_then(Value::as_str) == Some(name))
        {
            return Some(self.events.remove(pos));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.recv_frame_until(deadline).await?;
            if v.get("type").and_then(Value::as_str) == Some("event")
                && v.get("event").and_then(Value::as_str) == Some(name)
            {
                return Some(v);
            }
            self.stash(v);
        }
    }

    /// Skip frames until the server's Close frame; `(code, reason)`.
    /// A close frame without a status is reported as `(1005, "")`.
    /// None on timeout or EOF without close frame. Events are stashed.
    pub async fn expect_close(&mut self, timeout: Duration) -> Option<(u16, String)> {
        if let Some(c) = &self.closed {
            return Some(c.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_one(Some(deadline)).await {
                Incoming::Json(v) => self.stash(v),
                Incoming::Other => {}
                Incoming::Close(_) => return self.closed.clone(),
                Incoming::End | Incoming::Timeout => return None,
            }
        }
    }

    /// True if the stream ends (close frame or EOF) within `timeout`.
    pub async fn expect_end(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_one(Some(deadline)).await {
                Incoming::Json(v) => self.stash(v),
                Incoming::Other => {}
                Incoming::Close(_) | Incoming::End => return true,
                Incoming::Timeout => return false,
            }
        }
    }

    /// Read (answering pings, discarding frames) until `stop` completes or the
    /// stream ends. Returns the close frame if the server closed. For holding
    /// idle connections without growing `events`.
    pub async fn idle_until<F: Future<Output = ()>>(&mut self, stop: F) -> Option<(u16, String)> {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return None,
                m = self.ws.next() => match m {
                    Some(Ok(Message::Close(cf))) => {
                        let c = cf
                            .map(|f| (u16::from(f.code), f.reason.as_str().to_string()))
                            .unwrap_or((1005, String::new()));
                        self.closed = Some(c.clone());
                        self.ended = true;
                        return Some(c);
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => {
                        self.ended = true;
                        return None;
                    }
                },
            }
        }
    }

    /// Close with 1000 and wait (≤ 2 s) for the server's close reply (or EOF).
    pub async fn close(self) {
        self.close_with(1000, "").await;
    }

    pub async fn close_with(self, code: u16, reason: &str) {
        self.close_timeout(code, reason, Duration::from_secs(2))
            .await;
    }

    /// Send a close frame and wait ≤ `timeout` for the server's close reply
    /// (or EOF), then drop the socket. Returns true if the reply / EOF came in
    /// time (or the stream had already ended).
    pub async fn close_timeout(mut self, code: u16, reason: &str, timeout: Duration) -> bool {
        if self.ended {
            return true;
        }
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        };
        if self.ws.close(Some(frame)).await.is_err() {
            return true;
        }
        tokio::time::timeout(timeout, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .is_ok()
    }
}

// ---------------------------------------------------------------------------
// Minimal HTTP/1.1 helper (healthz, upgrade probes) without extra deps
// ---------------------------------------------------------------------------

/// `GET path` on `addr` (`ip:port`) with `Connection: close`; returns
/// `(status, headers, body)`. Bounded by `timeout`.
pub async fn http_get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, Vec<(String, String)>, String), String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        let hdrs = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect::<Vec<_>>();
        let chunked = hdrs
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, hdrs, body))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {timeout:?}")),
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, rest)) = s.split_once("\r\n") {
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        let (Some(chunk), Some(tail)) = (rest.get(..size), rest.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        s = tail.trim_start_matches("\r\n");
    }
    out
}
