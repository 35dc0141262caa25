//! The admin API client the commands use.

use super::*;

// ---------------------------------------------------------------- HTTP

/// A connection to the admin API.
pub struct Api {
    pub(super) base: String,
    pub(super) token: String,
    pub(super) origin: Origin,
    pub(super) agent: ureq::Agent,
}

/// A successful answer.
pub(super) struct Reply {
    pub(super) body: Value,
    pub(super) etag: Option<String>,
}

/// Percent-encodes one path segment (keeps unreserved characters and `:`).
pub(super) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Api {
    pub(super) fn new(base: String, token: String, origin: Origin) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .proxy(None)
            .max_redirects(0)
            .user_agent(format!("clawgate-cli/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Api {
            base,
            token,
            origin,
            agent,
        }
    }

    pub(super) fn unreachable(&self, why: &str) -> Failure {
        match &self.origin {
            Origin::Flag => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running there?",
                    self.base
                ),
                "check --admin-url (the admin API has its own port, gateway.admin.port)",
            ),
            Origin::Runtime { file, pid } => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running? (looked for runtime.json in {}{})",
                    self.base,
                    file.parent().unwrap_or(Path::new(".")).display(),
                    pid.map(|p| format!("; it names pid {p}, which may have exited"))
                        .unwrap_or_default()
                ),
                "start it with `clawgate serve`, or point at a running one with --admin-url URL",
            ),
        }
    }

    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Res<Reply> {
        let url = format!("{}{path}", self.base);
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json, application/problem+json");
        if let Some(tag) = if_match {
            b = b.header("If-Match", tag);
        }
        let built = match body {
            Some(v) => b
                .header("Content-Type", "application/json")
                .body(v.to_string())
                .map(|r| self.agent.run(r)),
            None => b.body(()).map(|r| self.agent.run(r)),
        };
        let result = built.map_err(|e| {
            Failure::unreachable(
                format!("bad admin URL {url}: {e}"),
                "pass --admin-url like http://127.0.0.1:18790",
            )
        })?;
        let mut resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Err(self.unreachable("connection refused"))
            }
            Err(ureq::Error::ConnectionFailed) => return Err(self.unreachable("connection failed")),
            Err(ureq::Error::HostNotFound) => return Err(self.unreachable("host not found")),
            Err(ureq::Error::Timeout(_)) => return Err(self.unreachable("timed out")),
            Err(e) => return Err(self.unreachable(&e.to_string())),
        };
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(&format!("reading the answer: {e}")))?;
        if (200..300).contains(&status) {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    Failure::refused(
                        format!("{method} {path}: the answer is not JSON ({e})"),
                        None,
                    )
                })?
            };
            return Ok(Reply { body, etag });
        }
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match problem["detail"].as_str() {
            Some(detail) => {
                let code = problem["code"].as_str().unwrap_or("error");
                Err(Failure::refused(
                    format!("{detail} ({status} {code})"),
                    problem["hint"].as_str().map(str::to_string),
                ))
            }
            None => {
                let snippet: String = text.trim().chars().take(200).collect();
                Err(Failure::refused(
                    format!("{method} {path} answered HTTP {status}: {snippet}"),
                    Some(format!(
                        "is {} the clawgate admin API (not the gateway port)?",
                        self.base
                    )),
                ))
            }
        }
    }

    pub(super) fn get(&self, path: &str) -> Res<Value> {
        self.call("GET", path, None, None).map(|r| r.body)
    }

    pub(super) fn post(&self, path: &str, body: &Value) -> Res<Value> {
        self.call("POST", path, Some(body), None).map(|r| r.body)
    }
}
