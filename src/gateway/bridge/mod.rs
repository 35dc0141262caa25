//! Front-door mode: after clawgate accepts a `connect`, the session is
//! bridged to the user's real gateway (`upstream.url`). clawgate keeps what
//! it is the authority for (attribution, auth, device pairing and tokens:
//! the `device.*` methods and events); everything else is relayed by
//! request id, unchanged. The relay loop itself is in `session.rs`; this
//! module opens the upstream session and classifies frames.

pub mod http;
pub mod identity;
pub mod maintenance;
pub mod status;
pub mod upstream;

use serde_json::Value;

use super::frames::ErrorShape;
pub use identity::IdMap;
pub use upstream::{OpenError, Opened};

/// The method family clawgate answers itself: it is the device authority,
/// and the upstream's devices are clawgate's internal identities.
pub fn owned_method(method: &str) -> bool {
    method.starts_with("device.")
}

/// Upstream events that are about clawgate's internal identities, not the
/// client's devices: never forwarded (clawgate sends its own).
pub fn hidden_event(event: &str) -> bool {
    event.starts_with("device.pair.")
}

/// What a downstream frame is, as far as the relay cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Downstream {
    /// A request for clawgate itself (`device.*`, and `node.pair.remove`
    /// of one of clawgate's node devices).
    Own,
    /// Everything else: relayed as it is.
    Relay,
}

/// Classifies a client frame; `is_node_device(id)` says whether `id` is
/// one of clawgate's node devices (whose removal is clawgate's: their
/// device pairing is).
pub fn classify_downstream(text: &str, is_node_device: impl Fn(&str) -> bool) -> Downstream {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
        #[serde(borrow)]
        method: Option<&'a str>,
        #[serde(borrow)]
        params: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct NodeParam<'a> {
        #[serde(rename = "nodeId", borrow)]
        node_id: std::borrow::Cow<'a, str>,
    }
    let Ok(Head {
        kind: Some("req"),
        method: Some(m),
        params,
    }) = serde_json::from_str::<Head<'_>>(text)
    else {
        return Downstream::Relay;
    };
    if owned_method(m) {
        return Downstream::Own;
    }
    let ours = m == "node.pair.remove"
        && params
            .and_then(|p| serde_json::from_str::<NodeParam<'_>>(p.get()).ok())
            .is_some_and(|p| is_node_device(&p.node_id));
    if ours {
        Downstream::Own
    } else {
        Downstream::Relay
    }
}

/// Per-socket event numbering for the downstream socket, over relayed and
/// clawgate's own events together. An upstream gap stays a gap; an upstream
/// event clawgate holds back leaves none.
#[derive(Debug, Default)]
pub struct Seq {
    last: u64,
    /// Downstream number minus upstream number.
    offset: i64,
}

impl Seq {
    /// The downstream number of an upstream event numbered `up`.
    pub fn relayed(&mut self, up: u64) -> u64 {
        let want = (up as i64).saturating_add(self.offset);
        let out = if want <= self.last as i64 {
            // The upstream numbering went back (it cannot, on one socket):
            // stay monotonic.
            self.last + 1
        } else {
            want as u64
        };
        self.offset = out as i64 - up as i64;
        self.last = out;
        out
    }

    /// An upstream event numbered `up` that is not forwarded.
    pub fn hidden(&mut self, _up: u64) {
        // The next upstream event takes the number this one would have had
        // (a gap before it stays).
        self.offset -= 1;
    }

    /// The number of an event clawgate adds.
    pub fn own(&mut self) -> u64 {
        self.last += 1;
        self.offset += 1;
        self.last
    }
}

/// What becomes of an upstream frame.
#[derive(Debug, PartialEq, Eq)]
pub enum UpFrame {
    /// Passed to the client (renumbered if it is an event).
    Forward(String),
    /// An event about clawgate's internal identities: held back.
    Hidden,
    /// Not a JSON object: the real gateway never sends one, and a client
    /// must not get it as if the gateway had.
    Malformed,
}

/// An upstream frame as the downstream gets it: events renumbered, the
/// upstream's `device.pair.*` events held back, and every `nodeId` that is
/// one of clawgate's upstream identities shown as its downstream device.
pub fn upstream_frame(text: &str, seq: &mut Seq, ids: &IdMap) -> UpFrame {
    let has_event = text.contains("\"event\"");
    let has_node = text.contains("\"nodeId\"");
    // Cheap path first: the rest is checked to be one JSON object without
    // building it.
    if !has_event && !has_node {
        return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) if text.trim_start().starts_with('{') => UpFrame::Forward(text.to_string()),
            _ => UpFrame::Malformed,
        };
    }
    let Ok(mut v) = serde_json::from_str::<Value>(text) else {
        return UpFrame::Malformed;
    };
    if !v.is_object() {
        return UpFrame::Malformed;
    }
    let mut changed = has_node && rewrite_node_ids(&mut v, &|up| ids.down_of(up));
    if v["type"] == "event" {
        if v["event"].as_str().is_some_and(hidden_event) {
            if let Some(up) = v.get("seq").and_then(Value::as_u64) {
                seq.hidden(up);
            }
            return UpFrame::Hidden;
        }
        if let Some(up) = v.get("seq").and_then(Value::as_u64) {
            v["seq"] = Value::from(seq.relayed(up));
            changed = true;
        }
    }
    if changed {
        UpFrame::Forward(v.to_string())
    } else {
        UpFrame::Forward(text.to_string())
    }
}

/// A downstream request as the upstream gets it: a `params.nodeId` that is
/// one of clawgate's devices becomes that device's upstream identity (the
/// node id the upstream knows), so `node.invoke`, `node.rename`,
/// `node.invoke.result` and the rest address the right node.
pub fn downstream_frame(text: String, ids: &IdMap) -> String {
    if !text.contains("\"nodeId\"") {
        return text;
    }
    let Ok(mut v) = serde_json::from_str::<Value>(&text) else {
        return text;
    };
    if v["type"] != "req" {
        return text;
    }
    let Some(up) = v["params"]["nodeId"].as_str().and_then(|d| ids.up_of(d)) else {
        return text;
    };
    v["params"]["nodeId"] = Value::String(up);
    v.to_string()
}

/// Replaces, at any depth, each `"nodeId": "<x>"` for which `f(x)` has an
/// answer. Whether anything changed.
fn rewrite_node_ids(v: &mut Value, f: &impl Fn(&str) -> Option<String>) -> bool {
    match v {
        Value::Object(m) => {
            let mut changed = false;
            for (k, child) in m.iter_mut() {
                if k == "nodeId" {
                    if let Some(new) = child.as_str().and_then(f) {
                        *child = Value::String(new);
                        changed = true;
                        continue;
                    }
                }
                changed |= rewrite_node_ids(child, f);
            }
            changed
        }
        Value::Array(a) => a
            .iter_mut()
            .fold(false, |acc, c| rewrite_node_ids(c, f) | acc),
        _ => false,
    }
}

/// The downstream `hello-ok`: the upstream's, with clawgate's `auth`.
pub fn merge_hello(mut upstream_hello: Value, auth: &Value) -> Value {
    if let Some(o) = upstream_hello.as_object_mut() {
        o.insert("auth".into(), auth.clone());
    }
    upstream_hello
}

/// What the downstream client gets when no upstream session opens: the
/// upstream's own refusal, or what the real gateway sends while starting.
pub fn open_failure(e: &OpenError, url: &str) -> (Value, u16, String) {
    match e {
        OpenError::Refused { error, close } => {
            let (code, reason) = close
                .clone()
                .unwrap_or_else(|| (1008, error["message"].as_str().unwrap_or("").to_string()));
            (error.clone(), code, reason)
        }
        OpenError::Unreachable(why) | OpenError::Protocol(why) => {
            let mut err = ErrorShape::new(
                "UNAVAILABLE",
                format!("upstream gateway {url} unavailable ({why}); retry shortly"),
            );
            err.retryable = Some(true);
            err.retry_after_ms = Some(500);
            (err.to_json(), 1013, "upstream gateway unavailable".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership() {
        assert_eq!(
            classify_downstream(
                r#"{"type":"req","id":"1","method":"device.pair.list"}"#,
                |_| true
            ),
            Downstream::Own
        );
        assert_eq!(
            classify_downstream(
                r#"{"type":"req","id":"1","method":"sessions.list"}"#,
                |_| true
            ),
            Downstream::Relay
        );
        assert_eq!(classify_downstream("not json", |_| true), Downstream::Relay);
        // A node's removal is clawgate's when the node is one of its devices.
        let remove =
            r#"{"type":"req","id":"1","method":"node.pair.remove","params":{"nodeId":"mine"}}"#;
        assert_eq!(
            classify_downstream(remove, |id| id == "mine"),
            Downstream::Own
        );
        assert_eq!(classify_downstream(remove, |_| false), Downstream::Relay);
        let escaped = r#"{"type":"req","id":"1","method":"node.pair.remove","params":{"nodeId":"m\u0069ne"}}"#;
        assert_eq!(
            classify_downstream(escaped, |id| id == "mine"),
            Downstream::Own
        );
        let no_id = r#"{"type":"req","id":"1","method":"node.pair.remove","params":{}}"#;
        assert_eq!(classify_downstream(no_id, |_| true), Downstream::Relay);
        // Whatever its params, a device.* request is never relayed.
        let odd = r#"{"type":"req","id":"1","method":"device.pair.remove","params":"x"}"#;
        assert_eq!(classify_downstream(odd, |_| false), Downstream::Own);
    }

    #[test]
    fn seq_keeps_gaps_and_interleaves_own_events() {
        let mut s = Seq::default();
        assert_eq!(s.relayed(1), 1);
        assert_eq!(s.relayed(2), 2);
        assert_eq!(s.own(), 3);
        assert_eq!(s.relayed(3), 4);
        // upstream gap 3 → 7 stays a gap of the same size
        assert_eq!(s.relayed(7), 8);
        assert_eq!(s.own(), 9);
        assert_eq!(s.relayed(8), 10);
        // a held-back event after a gap: the gap stays, the event leaves none
        let mut s = Seq::default();
        assert_eq!(s.relayed(5), 5);
        s.hidden(8);
        assert_eq!(s.relayed(9), 8);
    }

    #[test]
    fn upstream_events() {
        let mut s = Seq::default();
        let seq_of = |f: UpFrame| match f {
            UpFrame::Forward(out) => serde_json::from_str::<Value>(&out).unwrap()["seq"].clone(),
            other => panic!("{other:?}"),
        };
        let ids = IdMap::default();
        let out = upstream_frame(
            r#"{"type":"event","event":"tick","payload":{},"seq":5}"#,
            &mut s,
            &ids,
        );
        assert_eq!(seq_of(out), 5);
        assert_eq!(
            upstream_frame(
                r#"{"type":"event","event":"device.pair.requested","payload":{},"seq":6}"#,
                &mut s,
                &ids
            ),
            UpFrame::Hidden
        );
        // The held-back event leaves no gap: upstream 7 is downstream 6.
        let out = upstream_frame(
            r#"{"type":"event","event":"tick","payload":{},"seq":7}"#,
            &mut s,
            &ids,
        );
        assert_eq!(seq_of(out), 6);
        let res = r#"{"type":"res","id":"1","ok":true,"payload":{"event":"x"}}"#;
        assert_eq!(
            upstream_frame(res, &mut s, &ids),
            UpFrame::Forward(res.into())
        );
    }

    #[test]
    fn garbage_from_the_upstream_is_not_passed_on() {
        let mut s = Seq::default();
        for bad in [
            "not json",
            "",
            "[1,2]",
            "42",
            r#"{"type":"res","id":"1""#,
            r#"{"event":"tick""#,
            r#"["event"]"#,
        ] {
            assert_eq!(
                upstream_frame(bad, &mut s, &IdMap::default()),
                UpFrame::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn node_ids_are_the_clients_on_each_side() {
        let ids = IdMap::default();
        ids.insert_for_test("down-1", "up-1");
        let mut s = Seq::default();
        // Upstream → client, at any depth, events and answers.
        let ev = r#"{"type":"event","event":"node.invoke.request","payload":{"id":"i","nodeId":"up-1"},"seq":1}"#;
        let UpFrame::Forward(out) = upstream_frame(ev, &mut s, &ids) else {
            panic!()
        };
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["payload"]["nodeId"],
            "down-1"
        );
        let res = r#"{"type":"res","id":"1","ok":true,"payload":{"nodes":[{"nodeId":"up-1"},{"nodeId":"someone-else"}]}}"#;
        let UpFrame::Forward(out) = upstream_frame(res, &mut s, &ids) else {
            panic!()
        };
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["payload"]["nodes"][0]["nodeId"], "down-1");
        assert_eq!(v["payload"]["nodes"][1]["nodeId"], "someone-else");
        // Client → upstream: the request's params.nodeId.
        let req = r#"{"type":"req","id":"2","method":"node.invoke.result","params":{"id":"i","nodeId":"down-1","ok":true}}"#;
        let v: Value = serde_json::from_str(&downstream_frame(req.into(), &ids)).unwrap();
        assert_eq!(v["params"]["nodeId"], "up-1");
        let other =
            r#"{"type":"req","id":"3","method":"node.describe","params":{"nodeId":"unknown"}}"#;
        assert_eq!(downstream_frame(other.into(), &ids), other);
    }
}
