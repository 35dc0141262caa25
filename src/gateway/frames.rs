//! Wire frames and error shapes (protocol §1.3, §1.4).

use serde_json::{json, Value};

/// An error object `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone)]
pub struct ErrorShape {
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retryable: Option<bool>,
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ErrorShape {
            code,
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("INVALID_REQUEST", message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({"code": self.code, "message": self.message});
        let o = v.as_object_mut().expect("object");
        if let Some(d) = &self.details {
            o.insert("details".into(), d.clone());
        }
        if let Some(r) = self.retryable {
            o.insert("retryable".into(), json!(r));
        }
        if let Some(ms) = self.retry_after_ms {
            o.insert("retryAfterMs".into(), json!(ms));
        }
        v
    }
}

pub fn res_ok(id: &Value, payload: Value) -> String {
    json!({"type": "res", "id": id, "ok": true, "payload": payload}).to_string()
}

pub fn res_err(id: &Value, err: &ErrorShape) -> String {
    json!({"type": "res", "id": id, "ok": false, "error": err.to_json()}).to_string()
}

pub fn event(name: &str, payload: &Value, seq: Option<u64>) -> String {
    match seq {
        Some(seq) => {
            json!({"type": "event", "event": name, "payload": payload, "seq": seq}).to_string()
        }
        None => json!({"type": "event", "event": name, "payload": payload}).to_string(),
    }
}

/// A successful response whose payload is already serialized JSON.
pub fn res_ok_raw(id: &Value, payload_json: &str) -> String {
    format!(r#"{{"type":"res","id":{id},"ok":true,"payload":{payload_json}}}"#)
}
