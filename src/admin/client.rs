//! The one admin API client in the tree (blocking, on ureq): the CLI
//! (`clawgate devices|tokens|proxies|config`), `clawgate doctor`, the
//! integration tests and the benchmarks all send their requests through it.
//! It never follows redirects or an environment proxy, treats every HTTP
//! status as an answer, and names transport failures by kind so that each
//! caller can word them for its reader.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::dto::Problem;

/// The largest answer read into memory (a full audit page is far smaller).
const MAX_ANSWER: u64 = 256 << 20;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The URL (base + path) is not one ureq can send to.
    BadUrl(String),
    Refused,
    ConnectFailed,
    HostNotFound,
    TimedOut,
    /// The answer could not be read.
    Read(String),
    Other(String),
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::BadUrl(e) => write!(f, "bad URL: {e}"),
            Transport::Refused => f.write_str("connection refused"),
            Transport::ConnectFailed => f.write_str("connection failed"),
            Transport::HostNotFound => f.write_str("host not found"),
            Transport::TimedOut => f.write_str("timed out"),
            Transport::Read(e) => write!(f, "reading the answer: {e}"),
            Transport::Other(e) => f.write_str(e),
        }
    }
}

impl From<ureq::Error> for Transport {
    fn from(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                Transport::Refused
            }
            ureq::Error::ConnectionFailed => Transport::ConnectFailed,
            ureq::Error::HostNotFound => Transport::HostNotFound,
            ureq::Error::Timeout(_) => Transport::TimedOut,
            e => Transport::Other(e.to_string()),
        }
    }
}

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The body as JSON (`Null` for an empty body).
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        if self.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&self.body)
    }
    /// The body as a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
    /// The RFC 9457 problem of an error answer, when it is one of ours.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A client for one admin API (or any clawgate HTTP listener).
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// `base` is `http://host:port` (see [`normalize_base`]); the token is
    /// sent as a bearer on every request that does not set its own
    /// `Authorization`.
    pub fn new(base: impl Into<String>, token: Option<String>) -> Client {
        Self::with(base, token, Duration::from_secs(30), "clawgate")
    }

    /// Same, with a per-request timeout and a `User-Agent` product name.
    pub fn with(
        base: impl Into<String>,
        token: Option<String>,
        timeout: Duration,
        product: &str,
    ) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .proxy(None)
            .max_redirects(0)
            .user_agent(format!("{product}/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Client {
            base: base.into(),
            token,
            agent,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same API with another bearer.
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            base: self.base.clone(),
            token,
            agent: self.agent.clone(),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::request::Builder, Transport> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        let own_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(t), false) = (&self.token, own_auth) {
            b = b.header("Authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        Ok(b)
    }

    /// Sends one request with a raw body (set its content type in `headers`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Answer, Transport> {
        let b = self.request(method, path, headers)?;
        let sent = match body {
            Some(bytes) => b
                .body(bytes.to_vec())
                .map(|r| self.agent.run(r))
                .map_err(|e| Transport::BadUrl(e.to_string()))?,
            None => b
                .body(())
                .map(|r| self.agent.run(r))
                .map_err(|e| Transport::BadUrl(e.to_string()))?,
        };
        let mut resp = sent?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| Transport::Read(e.to_string()))?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub fn get(&self, path: &str) -> Result<Answer, Transport> {
        self.send("GET", path, &[("Accept", ACCEPT)], None)
    }

    pub fn delete(&self, path: &str) -> Result<Answer, Transport> {
        self.send("DELETE", path, &[("Accept", ACCEPT)], None)
    }

    /// Sends `body` as JSON, with `If-Match` when given.
    pub fn send_json<T: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: &T,
        if_match: Option<&str>,
    ) -> Result<Answer, Transport> {
        let bytes = serde_json::to_vec(body).map_err(|e| Transport::Other(e.to_string()))?;
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", ACCEPT)];
        if let Some(tag) = if_match {
            headers.push(("If-Match", tag));
        }
        self.send(method, path, &headers, Some(&bytes))
    }

    pub fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> Result<Answer, Transport> {
        self.send_json("POST", path, body, None)
    }

    /// Opens a streamed answer (the SSE event stream): its status and its
    /// lines as they arrive.
    pub fn stream(&self, path: &str) -> Result<(u16, Box<dyn BufRead + Send>), Transport> {
        let b = self.request("GET", path, &[("Accept", "text/event-stream")])?;
        let resp = b
            .body(())
            .map(|r| self.agent.run(r))
            .map_err(|e| Transport::BadUrl(e.to_string()))??;
        let status = resp.status().as_u16();
        Ok((
            status,
            Box::new(BufReader::new(resp.into_body().into_reader())),
        ))
    }
}

const ACCEPT: &str = "application/json, application/problem+json";

/// Why an admin URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadBase {
    Https,
    OtherScheme,
}

/// `http://host:port` without a trailing slash, from what a person typed
/// (`127.0.0.1:18788` gets `http://`); plain HTTP only.
pub fn normalize_base(url: &str) -> Result<String, BadBase> {
    let url = url.trim().trim_end_matches('/');
    if url.starts_with("https://") {
        Err(BadBase::Https)
    } else if url.starts_with("http://") {
        Ok(url.to_string())
    } else if url.contains("://") {
        Err(BadBase::OtherScheme)
    } else {
        Ok(format!("http://{url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_normalized() {
        assert_eq!(
            normalize_base(" 127.0.0.1:1/ ").unwrap(),
            "http://127.0.0.1:1"
        );
        assert_eq!(normalize_base("http://h:2").unwrap(), "http://h:2");
        assert_eq!(normalize_base("https://h:2"), Err(BadBase::Https));
        assert_eq!(normalize_base("ftp://h"), Err(BadBase::OtherScheme));
    }

    #[test]
    fn a_closed_port_is_refused_not_an_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = Client::with(format!("http://{addr}"), None, Duration::from_secs(5), "t");
        assert!(matches!(
            c.get("/healthz"),
            Err(Transport::Refused | Transport::ConnectFailed)
        ));
    }
}
