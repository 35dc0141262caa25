//! Live sessions, keyed by connection id. Used to deliver events (scope-gated)
//! and to close sessions whose authority changed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::scopes;
use super::ws::Abort;

/// What a connection task is told to do.
#[derive(Debug)]
pub enum Control {
    /// Send an event (name, payload) with this socket's next `seq`.
    Event(WsEvent, Arc<Value>),
    /// Close with code and reason.
    Close(u16, String),
}

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub conn_id: String,
    pub device_id: Option<String>,
    pub role: super::scopes::Role,
    pub scopes: Vec<String>,
    pub auth_method: super::auth::AuthMethod,
    /// SHA-256 of the shared secret this session authenticated with.
    pub shared_digest: Option<[u8; 32]>,
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub platform: String,
    pub instance_id: Option<String>,
    pub peer: IpAddr,
    pub client_ip: IpAddr,
    pub origin: Option<String>,
    /// The Host header, kept only for sessions with an Origin (re-checked on reload).
    pub host: Option<String>,
    /// Whether the client connected directly from loopback.
    pub direct_local: bool,
    /// Whether the upgrade carried forwarding headers.
    pub forwarded: bool,
    pub connected_at_ms: u64,
    /// Front-door mode: the session continues on the upstream gateway.
    pub bridged: bool,
    /// Trusted-proxy mode: the user the proxy vouched for.
    pub user: Option<String>,
}

/// A session's inbox: a queue and a wake-up. Much smaller than a channel
/// (nothing is allocated until something is sent), which matters with tens of
/// thousands of idle sessions.
///
/// A close also fires the session's [`Abort`], so that a session blocked
/// writing to a peer that does not read still ends. A queue that grows past
/// [`MAX_QUEUED`] (the session cannot keep up with its events) is dropped and
/// replaced by a slow-consumer close.
#[derive(Default)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Control>>,
    notify: Notify,
    abort: Arc<Abort>,
}

/// Events a session may have waiting before it counts as a slow consumer.
pub const MAX_QUEUED: usize = 1024;

impl Mailbox {
    pub fn send(&self, c: Control) {
        {
            let mut q = self.queue.lock().expect("mailbox lock");
            match c {
                // Closing: no more events are delivered.
                Control::Event(..) if self.abort.is_fired() => return,
                Control::Event(..) if q.len() >= MAX_QUEUED => {
                    *q = VecDeque::from([Control::Close(1008, "slow consumer".into())]);
                    self.abort.fire();
                }
                Control::Close(..) => {
                    q.push_back(c);
                    self.abort.fire();
                }
                c => q.push_back(c),
            }
        }
        self.notify.notify_one();
    }

    /// Fired when the session must end even if its peer does not read.
    pub fn abort(&self) -> Arc<Abort> {
        self.abort.clone()
    }

    pub fn try_recv(&self) -> Option<Control> {
        self.queue.lock().expect("mailbox lock").pop_front()
    }

    /// Waits for the next message.
    pub async fn recv(&self) -> Control {
        loop {
            if let Some(c) = self.try_recv() {
                return c;
            }
            self.notify.notified().await;
        }
    }
}

struct Entry {
    info: Arc<SessionInfo>,
    tx: Arc<Mailbox>,
}

#[derive(Default)]
pub struct Registry {
    map: RwLock<HashMap<String, Entry>>,
}

/// Which scope an event needs (protocol §5.5). `None`: everyone; unknown events
/// are dropped.
/// The events clawgate sends on the gateway WebSocket (`hello-ok.features.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsEvent {
    Tick,
    Health,
    Shutdown,
    DevicePairRequested,
    DevicePairResolved,
    DevicePairChanged,
    /// A node's device lost its node role (`node.pair.remove`).
    NodePairResolved,
}

impl WsEvent {
    pub const ALL: [WsEvent; 7] = [
        WsEvent::Tick,
        WsEvent::Health,
        WsEvent::Shutdown,
        WsEvent::DevicePairRequested,
        WsEvent::DevicePairResolved,
        WsEvent::DevicePairChanged,
        WsEvent::NodePairResolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WsEvent::Tick => "tick",
            WsEvent::Health => "health",
            WsEvent::Shutdown => "shutdown",
            WsEvent::DevicePairRequested => "device.pair.requested",
            WsEvent::DevicePairResolved => "device.pair.resolved",
            WsEvent::DevicePairChanged => "device.pair.changed",
            WsEvent::NodePairResolved => "node.pair.resolved",
        }
    }

    /// The operator scope a session needs to receive it (`None`: everyone).
    fn required_scope(self) -> Option<&'static str> {
        match self {
            WsEvent::Tick | WsEvent::Health | WsEvent::Shutdown => None,
            WsEvent::DevicePairRequested
            | WsEvent::DevicePairResolved
            | WsEvent::DevicePairChanged
            | WsEvent::NodePairResolved => Some(scopes::PAIRING),
        }
    }
}

impl Registry {
    pub fn insert(&self, info: Arc<SessionInfo>, tx: Arc<Mailbox>) {
        let mut map = self.map.write().expect("registry lock");
        map.insert(info.conn_id.clone(), Entry { info, tx });
    }

    pub fn remove(&self, conn_id: &str) {
        let mut map = self.map.write().expect("registry lock");
        map.remove(conn_id);
    }

    pub fn len(&self) -> usize {
        self.map.read().expect("registry lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn list(&self) -> Vec<Arc<SessionInfo>> {
        self.map
            .read()
            .expect("registry lock")
            .values()
            .map(|e| e.info.clone())
            .collect()
    }

    pub fn is_device_connected(&self, device_id: &str) -> bool {
        self.map
            .read()
            .expect("registry lock")
            .values()
            .any(|e| e.info.device_id.as_deref() == Some(device_id))
    }

    /// Delivers an event to every session allowed to see it.
    pub fn broadcast(&self, event: WsEvent, payload: Value) -> usize {
        let required = event.required_scope();
        let payload = Arc::new(payload);
        let map = self.map.read().expect("registry lock");
        let mut n = 0;
        for e in map.values() {
            let allowed = match required {
                None => true,
                Some(scope) => {
                    e.info.role == scopes::Role::Operator
                        && scopes::satisfies(&e.info.scopes, scope)
                }
            };
            if allowed {
                e.tx.send(Control::Event(event, payload.clone()));
                n += 1;
            }
        }
        n
    }

    /// Closes every session matching `pred`, except `except` (a connection id).
    pub fn close_where(
        &self,
        pred: impl Fn(&SessionInfo) -> bool,
        code: u16,
        reason: &str,
        except: Option<&str>,
    ) -> usize {
        let map = self.map.read().expect("registry lock");
        let mut n = 0;
        for e in map.values() {
            if Some(e.info.conn_id.as_str()) == except {
                continue;
            }
            if pred(&e.info) {
                e.tx.send(Control::Close(code, reason.to_string()));
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod event_tests {
    use super::WsEvent;

    #[test]
    fn ws_events_keep_their_wire_names_and_pairing_events_need_the_pairing_scope() {
        let names: Vec<&str> = WsEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "tick",
                "health",
                "shutdown",
                "device.pair.requested",
                "device.pair.resolved",
                "device.pair.changed",
                "node.pair.resolved"
            ]
        );
        for e in WsEvent::ALL {
            let pairing = e.as_str().contains(".pair.");
            assert_eq!(e.required_scope().is_some(), pairing, "{e:?}");
        }
    }
}
