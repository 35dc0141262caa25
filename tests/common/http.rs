//! The crate's admin client (`clawgate::admin::client`), run off the async
//! runtime, with the helpers the tests use.
#![allow(dead_code)]

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use clawgate::admin::client::Client;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    /// The problem `code` of an error response.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Sends one request through the crate's admin client. `body` is sent as
/// is (set the content type in `headers`).
pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// As `request`, with the transport error (no answer) as an `Err`.
pub async fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let method = method.to_string();
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let body = body.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let client = Client::with("", None, Duration::from_secs(20), "clawgate-tests");
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = client
            .send(&method, &url, &h, body.as_deref().map(str::as_bytes))
            .map_err(|e| e.to_string())?;
        Ok(Resp {
            status: a.status,
            headers: a.headers,
            body: a.body,
        })
    })
    .await
    .unwrap()
}

/// A client for plain HTTP on the gateway port of the server at `ws_url`.
pub fn gateway_client(ws_url: &str) -> Client {
    Client::with(
        ws_url
            .replace("ws://", "http://")
            .trim_end_matches('/')
            .to_string(),
        None,
        Duration::from_secs(10),
        "clawgate-tests",
    )
}

/// One request with `c` (blocking client, run off the async threads).
pub async fn send(
    c: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> clawgate::admin::client::Answer {
    let (c, method, path) = (c.clone(), method.to_string(), path.to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        c.send(&method, &path, &h, None).unwrap()
    })
    .await
    .unwrap()
}

/// An admin API client bound to a base URL and a bearer token.
#[derive(Clone)]
pub struct Admin {
    pub base: String,
    pub token: String,
}

impl Admin {
    pub fn new(addr: std::net::SocketAddr, token: &str) -> Admin {
        Admin {
            base: format!("http://{addr}"),
            token: token.to_string(),
        }
    }
    pub fn with_token(&self, token: &str) -> Admin {
        Admin {
            base: self.base.clone(),
            token: token.to_string(),
        }
    }
    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }
    pub async fn get(&self, path: &str) -> Resp {
        request(
            "GET",
            &format!("{}{path}", self.base),
            &[("Authorization", &self.auth())],
            None,
        )
        .await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        request(
            "DELETE",
            &format!("{}{path}", self.base),
            &[("Authorization", &self.auth())],
            None,
        )
        .await
    }
    pub async fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        let b = body.to_string();
        request(
            method,
            &format!("{}{path}", self.base),
            &[
                ("Authorization", &self.auth()),
                ("Content-Type", "application/json"),
            ],
            Some(&b),
        )
        .await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, body).await
    }
    /// A request that may get no answer (the server killed under it).
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        let b = body.map(Value::to_string);
        try_request(
            method,
            &format!("{}{path}", self.base),
            &[
                ("Authorization", &self.auth()),
                ("Content-Type", "application/json"),
            ],
            b.as_deref(),
        )
        .await
    }
    pub async fn with_headers(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let auth = self.auth();
        let mut h: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        request(method, &format!("{}{path}", self.base), &h, body).await
    }

    /// Opens the SSE stream and waits (bounded) until the server confirmed the
    /// subscription (`: connected`); later lines arrive on the returned channel.
    pub fn sse(&self) -> mpsc::Receiver<String> {
        let rx = self.sse_raw();
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("SSE stream opened");
        assert_eq!(first, ": connected");
        rx
    }

    fn sse_raw(&self) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel();
        let client = Client::with(
            self.base.clone(),
            Some(self.token.clone()),
            Duration::from_secs(3600),
            "clawgate-tests",
        );
        std::thread::spawn(move || {
            let Ok((_, reader)) = client.stream("/admin/v1/events") else {
                return;
            };
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        rx
    }
}

/// Waits (bounded) for an SSE `event: <name>` and returns its `data` JSON.
pub fn sse_event(rx: &mpsc::Receiver<String>, name: &str, timeout: Duration) -> Option<Value> {
    let deadline = std::time::Instant::now() + timeout;
    let mut current: Option<String> = None;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        if let Some(ev) = line.strip_prefix("event: ") {
            current = Some(ev.to_string());
        } else if let Some(data) = line.strip_prefix("data: ") {
            if current.as_deref() == Some(name) {
                return serde_json::from_str(data).ok();
            }
        } else if line.is_empty() {
            current = None;
        }
    }
}
