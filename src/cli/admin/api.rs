//! The admin API as the commands see it: the shared client
//! (`admin::client`) with its failures worded for a person at a terminal.

use super::*;
use crate::admin::client::{Client, Transport};

/// A connection to the admin API.
pub struct Api {
    pub(super) client: Client,
    pub(super) origin: Origin,
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
        Api {
            client: Client::with(base, Some(token), Duration::from_secs(30), "clawgate-cli"),
            origin,
        }
    }

    fn base(&self) -> &str {
        self.client.base()
    }

    pub(super) fn unreachable(&self, why: &str) -> Failure {
        match &self.origin {
            Origin::Flag => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running there?",
                    self.base()
                ),
                "check --admin-url (the admin API has its own port, gateway.admin.port)",
            ),
            Origin::Runtime { file, pid } => Failure::unreachable(
                format!(
                    "cannot reach the admin API at {}: {why}; is clawgate running? (looked for runtime.json in {}{})",
                    self.base(),
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
        let sent = match body {
            Some(b) => self.client.send_json(method, path, b, if_match),
            None => self.client.send(
                method,
                path,
                &[("Accept", "application/json, application/problem+json")],
                None,
            ),
        };
        let answer = sent.map_err(|e| match e {
            Transport::BadUrl(e) => Failure::unreachable(
                format!("bad admin URL {}{path}: {e}", self.base()),
                "pass --admin-url like http://127.0.0.1:18790",
            ),
            other => self.unreachable(&other.to_string()),
        })?;
        if answer.ok() {
            let body = answer.json().map_err(|e| {
                Failure::refused(
                    format!("{method} {path}: the answer is not JSON ({e})"),
                    None,
                )
            })?;
            let etag = answer.header("etag").map(str::to_string);
            return Ok(Reply { body, etag });
        }
        let status = answer.status;
        match answer.problem() {
            Some(p) => Err(Failure::refused(
                format!("{} ({status} {})", p.detail, p.code),
                p.hint,
            )),
            None => {
                let snippet: String = answer.body.trim().chars().take(200).collect();
                Err(Failure::refused(
                    format!("{method} {path} answered HTTP {status}: {snippet}"),
                    Some(format!(
                        "is {} the clawgate admin API (not the gateway port)?",
                        self.base()
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

    /// A typed answer: `--json` output prints the raw one, the rest reads it.
    pub(super) fn typed<T: serde::de::DeserializeOwned>(&self, v: &Value) -> Res<T> {
        serde_json::from_value(v.clone()).map_err(|e| {
            Failure::refused(
                format!(
                    "the admin API at {} answered an unexpected shape: {e}",
                    self.base()
                ),
                Some("run the clawgate CLI of the same version as the server".into()),
            )
        })
    }
}
