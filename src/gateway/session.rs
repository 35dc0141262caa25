//! One WebSocket connection: challenge, handshake under a deadline and a frame
//! limit, then the session loop (RPCs, events, ticks, pings).

use std::sync::Arc;
use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason, Frame, Item, ProtocolError};

use super::ws::{WsReader as MessageStream, WsWriter as Session};
use serde_json::{json, Value};
use tokio::time::{sleep_until, timeout_at, Instant};

use super::bridge::{self, upstream::UpWs};
use super::connect::{self, ConnCtx};
use super::frames::{self, ErrorShape};
use super::registry::{Control, Mailbox, WsEvent};
use super::{rpc, GatewayState, LiveGuard, PreauthGuard};
use crate::config::RuntimeConfig;
use crate::util::{now_ms, truncate_utf8};

async fn close(session: &mut Session, code: u16, reason: &str) {
    let reason = truncate_utf8(reason, 120);
    let cr = CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then(|| reason.to_string()),
    };
    session.close(Some(cr)).await;
}

/// Reassembles fragmented messages under a size limit.
#[derive(Default)]
struct Fragments {
    buf: Vec<u8>,
    active: bool,
    /// The message being assembled is a text message (its UTF-8 is checked
    /// as the real gateway's `ws` checks it).
    text: bool,
}

enum Got {
    Text(String),
    /// A text message that is not UTF-8: close 1007, as the real gateway
    /// does before and after auth.
    InvalidUtf8,
    Invalid,
    TooBig,
    Control(Frame),
    Pending,
}

impl Fragments {
    fn push(&mut self, msg: Frame, limit: usize) -> Got {
        match msg {
            Frame::Text(b) => match String::from_utf8(b.to_vec()) {
                Ok(s) => Got::Text(s),
                Err(_) => Got::InvalidUtf8,
            },
            Frame::Binary(b) => match String::from_utf8(b.to_vec()) {
                Ok(s) => Got::Text(s),
                Err(_) => Got::Invalid,
            },
            Frame::Continuation(item) => {
                let (first, last, bytes) = match item {
                    Item::FirstText(b) => {
                        self.text = true;
                        (true, false, b)
                    }
                    Item::FirstBinary(b) => {
                        self.text = false;
                        (true, false, b)
                    }
                    Item::Continue(b) => (false, false, b),
                    Item::Last(b) => (false, true, b),
                };
                if first {
                    self.buf.clear();
                    self.active = true;
                } else if !self.active {
                    return Got::Invalid;
                }
                if self.buf.len() + bytes.len() > limit {
                    self.buf = Vec::new();
                    self.active = false;
                    return Got::TooBig;
                }
                self.buf.extend_from_slice(&bytes);
                if last {
                    self.active = false;
                    let data = std::mem::take(&mut self.buf);
                    return match String::from_utf8(data) {
                        Ok(s) => Got::Text(s),
                        Err(_) if self.text => Got::InvalidUtf8,
                        Err(_) => Got::Invalid,
                    };
                }
                Got::Pending
            }
            other => Got::Control(other),
        }
    }
}

/// Runs one connection to completion.
pub async fn run(
    state: Arc<GatewayState>,
    cfg: Arc<RuntimeConfig>,
    ctx: ConnCtx,
    mut session: Session,
    stream: MessageStream,
    live: LiveGuard,
    mut preauth: PreauthGuard,
) {
    let _live = live;
    let limits = cfg.gateway.limits.clone();
    // Each phase is boxed: an idle session keeps only what phase 2 needs.
    let Some((accepted, stream, frags)) = Box::pin(handshake_phase(
        &state,
        &cfg,
        &ctx,
        &mut session,
        stream,
        &limits,
    ))
    .await
    else {
        return;
    };
    drop(ctx);
    let (connect_id, accepted, params) = accepted;
    preauth.release();
    let connect::Accepted {
        info,
        hello: own_hello,
        auth: own_auth,
    } = accepted;
    let rx = Arc::new(Mailbox::default());
    state.registry.insert(info.clone(), rx.clone());
    // A reload may have swapped the config while this handshake was judged
    // under the old one; the reload's sweep may have missed this session.
    {
        let now = state.config.load();
        if !Arc::ptr_eq(&now, &cfg) {
            if let Some((code, reason)) = connect::verdict(&cfg, &now, &info) {
                rx.send(Control::Close(code, reason.to_string()));
            }
        }
    }
    let upstream = cfg.gateway.upstream.clone();
    drop(cfg);
    struct Unregister(Arc<GatewayState>, String);
    impl Drop for Unregister {
        fn drop(&mut self) {
            self.0.registry.remove(&self.1);
        }
    }
    let _unregister = Unregister(state.clone(), info.conn_id.clone());
    // From here on a write may block for at most one ping interval (a peer
    // that reads nothing for that long fails the liveness check anyway), and
    // a close from the mailbox (admin, revoke, slow consumer) interrupts it.
    session.set_deadline(None);
    session.set_write_timeout(Duration::from_millis(limits.ping_interval_ms.max(1)));
    session.set_abort(rx.abort());
    if let Some(up) = upstream {
        // Front-door mode: the session continues on the upstream gateway.
        let t0 = std::time::Instant::now();
        let opened = open_upstream(&state, &up, &params, &info, limits.max_payload).await;
        drop(params);
        match opened {
            Ok(mut o) => {
                state.upstream.opened(
                    &o.hello["server"],
                    o.capabilities.take(),
                    t0.elapsed().as_micros() as u64,
                );
                drop(own_hello);
                let hello = bridge::merge_hello(o.hello, &own_auth.unwrap_or_default());
                if session
                    .text(frames::res_ok_raw(&connect_id, &hello.to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                tracing::debug!(conn = %info.conn_id, upstream = %up.url, "session bridged");
                Box::pin(relay_phase(
                    state, info, rx, session, stream, frags, limits, o.ws,
                ))
                .await;
            }
            Err(e) => {
                tracing::warn!(conn = %info.conn_id, upstream = %up.url, error = %e, "no upstream session");
                state.upstream.failed(&e.to_string());
                let (err, code, reason) = bridge::open_failure(&e, &up.url);
                let frame = json!({"type": "res", "id": connect_id, "ok": false, "error": err});
                let _ = session.text(frame.to_string()).await;
                close(&mut session, code, &reason).await;
            }
        }
        return;
    }
    drop(params);
    drop(own_auth);
    if session
        .text(frames::res_ok_raw(&connect_id, &own_hello))
        .await
        .is_err()
    {
        return;
    }
    drop(own_hello);
    tracing::debug!(conn = %info.conn_id, role = %info.role, method = info.auth_method.as_str(), "session started");

    Box::pin(session_phase(
        state, info, rx, session, stream, frags, limits,
    ))
    .await;
}

/// Phase 1: challenge, then frames until a `connect` is judged.
async fn handshake_phase(
    state: &Arc<GatewayState>,
    cfg: &RuntimeConfig,
    ctx: &ConnCtx,
    session: &mut Session,
    stream: MessageStream,
    limits: &crate::config::LimitsConfig,
) -> Option<((Value, connect::Accepted, Value), MessageStream, Fragments)> {
    let nonce = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    // Every write before `hello-ok` (the challenge, pongs, the rejection)
    // counts against the handshake deadline too.
    session.set_deadline(Some(deadline));
    // The capabilities the upstream advertises (OpenClaw's by default).
    let capabilities: std::borrow::Cow<'static, str> = if cfg.gateway.upstream.is_some() {
        serde_json::to_string(&state.upstream.capabilities())
            .unwrap_or_default()
            .into()
    } else {
        bridge::status::DEFAULT_CAPABILITIES_JSON.into()
    };
    let challenge = format!(
        r#"{{"type":"event","event":"connect.challenge","payload":{{"nonce":"{nonce}","ts":{},"capabilities":{capabilities}}}}}"#,
        now_ms()
    );
    if session.text(challenge).await.is_err() {
        return None;
    }
    let mut stream = stream;
    stream.set_max_frame(limits.max_preauth_payload);
    let mut frags = Fragments::default();

    // Phase 1: the handshake.
    let accepted = loop {
        let msg = match timeout_at(deadline, stream.recv()).await {
            Err(_) => {
                close(session, 1000, "").await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(ProtocolError::Overflow))) => {
                close(session, 1009, "").await;
                return None;
            }
            Ok(Some(Err(_))) => {
                close(session, 1002, "").await;
                return None;
            }
            Ok(Some(Ok(m))) => m,
        };
        let text = match frags.push(msg, limits.max_preauth_payload) {
            Got::Text(t) => t,
            Got::Pending => continue,
            Got::TooBig => {
                close(session, 1009, "preauth payload too large").await;
                return None;
            }
            Got::InvalidUtf8 => {
                close(session, 1007, "").await;
                return None;
            }
            Got::Invalid => {
                close(session, 1000, "").await;
                return None;
            }
            Got::Control(Frame::Ping(b)) => {
                let _ = session.pong(&b).await;
                continue;
            }
            Got::Control(Frame::Close(_)) => {
                session.close(None).await;
                return None;
            }
            Got::Control(_) => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            close(session, 1000, "").await;
            return None;
        };
        let is_req = v.get("type").and_then(Value::as_str) == Some("req");
        let id = v
            .get("id")
            .filter(|i| i.as_str().is_some_and(|s| !s.is_empty()))
            .cloned();
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty());
        let (Some(id), Some(method), true) = (id, method, is_req) else {
            close(session, 1008, "invalid request frame").await;
            return None;
        };
        if method != "connect" {
            let msg = "invalid handshake: first request must be connect";
            let _ = session
                .text(frames::res_err(&id, &ErrorShape::invalid(msg)))
                .await;
            close(session, 1008, msg).await;
            return None;
        }
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        // Boxed so the connection's own future stays small for its whole life.
        match Box::pin(connect::process_connect(state, cfg, ctx, &nonce, &params)).await {
            Ok(a) => {
                state.count_handshake("ok");
                break (id, a, params);
            }
            Err(rej) => {
                let code = rej.reason.code();
                state.count_handshake(code);
                if rej.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(rej.delay_ms)).await;
                }
                tracing::info!(conn = %ctx.conn_id, peer = %ctx.addr.peer, client = %ctx.addr.client, code, "connect rejected");
                if let Some(err) = &rej.error {
                    if rej.reason.logged() {
                        state.record_rejection_from(
                            &ctx.addr,
                            ctx.origin.as_deref(),
                            rej.reason.log_code(),
                            &err.message,
                        );
                    }
                    let _ = session.text(frames::res_err(&id, err)).await;
                }
                close(session, rej.close_code, &rej.close_reason).await;
                return None;
            }
        }
    };
    Some((accepted, stream, frags))
}

/// What one downstream message amounts to in the session loops.
enum Next {
    Text(String),
    /// Nothing to act on (a fragment, a ping answered, a pong noted).
    Skip,
    /// The session is over (closed here, or by the peer).
    End,
}

/// Reads one downstream message of an authenticated session: answers
/// pings, notes pongs, closes on a protocol error, an oversize message or
/// invalid UTF-8, and returns the text of a whole message.
async fn downstream(
    msg: Option<Result<Frame, ProtocolError>>,
    frags: &mut Fragments,
    session: &mut Session,
    limit: usize,
    awaiting_pong: &mut bool,
) -> Next {
    let msg = match msg {
        None => return Next::End,
        Some(Err(ProtocolError::Overflow)) => {
            close(session, 1009, "").await;
            return Next::End;
        }
        Some(Err(_)) => {
            close(session, 1002, "").await;
            return Next::End;
        }
        Some(Ok(m)) => m,
    };
    match frags.push(msg, limit) {
        Got::Text(t) => Next::Text(t),
        Got::Pending | Got::Invalid => Next::Skip,
        Got::TooBig => {
            close(session, 1009, "").await;
            Next::End
        }
        Got::InvalidUtf8 => {
            close(session, 1007, "").await;
            Next::End
        }
        Got::Control(Frame::Ping(b)) => {
            let _ = session.pong(&b).await;
            Next::Skip
        }
        Got::Control(Frame::Pong(_)) => {
            *awaiting_pong = false;
            Next::Skip
        }
        Got::Control(Frame::Close(reason)) => {
            session.close(reason).await;
            Next::End
        }
        Got::Control(_) => Next::Skip,
    }
}

/// Answers a request clawgate handles itself. The events it caused go out
/// before its response, as in OpenClaw, numbered by `next_seq`; a close it
/// caused follows the response. `false`: the session ends.
async fn answer_own(
    state: &Arc<GatewayState>,
    info: &Arc<super::registry::SessionInfo>,
    rx: &Mailbox,
    rpc_state: &mut rpc::ConnState,
    session: &mut Session,
    text: &str,
    next_seq: &mut (dyn FnMut() -> u64 + Send),
) -> bool {
    let outcome = Box::pin(rpc::handle(state, info, rpc_state, text)).await;
    let mut end = None;
    while let Some(ctl) = rx.try_recv() {
        match ctl {
            Control::Event(name, payload) => {
                let n = next_seq();
                if session
                    .text(frames::event(name.as_str(), &payload, Some(n)))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            Control::Close(code, reason) => {
                end = Some((code, reason));
                break;
            }
        }
    }
    let reply = match outcome {
        rpc::Outcome::None => None,
        rpc::Outcome::Reply(s) => Some(s),
        rpc::Outcome::ReplyAndClose(s, code, reason) => {
            end = end.or(Some((code, reason)));
            Some(s)
        }
    };
    if let Some(s) = reply {
        if session.text(s).await.is_err() && end.is_none() {
            return false;
        }
    }
    match end {
        Some((code, reason)) => {
            close(session, code, &reason).await;
            false
        }
        None => true,
    }
}

/// Phase 2: the authenticated session loop.
async fn session_phase(
    state: Arc<GatewayState>,
    info: Arc<super::registry::SessionInfo>,
    rx: Arc<Mailbox>,
    mut session: Session,
    stream: MessageStream,
    mut frags: Fragments,
    limits: crate::config::LimitsConfig,
) {
    let mut stream = stream;
    stream.set_max_frame(limits.max_payload);
    let tick_every = Duration::from_millis(limits.tick_interval_ms);
    let ping_every = Duration::from_millis(limits.ping_interval_ms);
    // One timer serves both the tick events and the WebSocket pings.
    let mut next_tick = Instant::now() + tick_every;
    let mut next_ping = Instant::now() + ping_every;
    let timer = sleep_until(next_tick.min(next_ping));
    tokio::pin!(timer);
    let mut seq: u64 = 0;
    let mut ticks: u64 = 0;
    let mut awaiting_pong = false;
    let mut rpc_state = rpc::ConnState::default();
    loop {
        tokio::select! {
            msg = stream.recv() => {
                let text = match downstream(msg, &mut frags, &mut session, limits.max_payload, &mut awaiting_pong).await {
                    Next::Text(t) => t,
                    Next::Skip => continue,
                    Next::End => break,
                };
                let mut next = || { seq += 1; seq };
                if !answer_own(&state, &info, &rx, &mut rpc_state, &mut session, &text, &mut next).await {
                    break;
                }
            }
            ctl = rx.recv() => {
                match ctl {
                    Control::Event(name, payload) => {
                        seq += 1;
                        if session.text(frames::event(name.as_str(), &payload, Some(seq))).await.is_err() { break; }
                    }
                    Control::Close(code, reason) => {
                        tracing::info!(conn = %info.conn_id, code, reason = %reason, "closing session");
                        close(&mut session, code, &reason).await;
                        break;
                    }
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                if now >= next_ping {
                    next_ping = now + ping_every;
                    if awaiting_pong {
                        // No pong within a ping interval: the peer is gone.
                        break;
                    }
                    awaiting_pong = true;
                    if session.ping(b"").await.is_err() { break; }
                }
                if now >= next_tick {
                    next_tick = now + tick_every;
                    ticks += 1;
                    seq += 1;
                    if session.text(frames::event(WsEvent::Tick.as_str(), &json!({"ts": now_ms()}), Some(seq))).await.is_err() { break; }
                    if ticks.is_multiple_of(2) {
                        seq += 1;
                        let health = rpc::health_payload(&state);
                        let frame = json!({"type": "event", "event": WsEvent::Health.as_str(), "payload": health, "seq": seq,
                            "stateVersion": {"presence": 1, "health": ticks / 2 + 1}});
                        if session.text(frame.to_string()).await.is_err() { break; }
                    }
                }
                timer.as_mut().reset(next_tick.min(next_ping));
            }
        }
    }
}

/// Opens the upstream session for an accepted downstream one.
async fn open_upstream(
    state: &GatewayState,
    up: &crate::config::UpstreamConfig,
    params: &Value,
    info: &super::registry::SessionInfo,
    max_payload: usize,
) -> Result<bridge::Opened, bridge::OpenError> {
    let identity = match &info.device_id {
        Some(d) => Some(
            bridge::identity::for_device(&state.store, &state.upstream_ids, d)
                .await
                .map_err(|e| bridge::OpenError::Unreachable(format!("storage: {e}")))?,
        ),
        None => None,
    };
    bridge::upstream::open(
        up,
        params,
        &bridge::upstream::Grant::of(info),
        identity.as_ref(),
        max_payload,
    )
    .await
}

/// Phase 2 in front-door mode: frames relayed between the client and the
/// upstream session, `device.*` answered by clawgate, events renumbered
/// per socket. Nothing is queued here: a slow side holds the other back
/// (TCP), and a write that stalls for a ping interval ends the session.
#[allow(clippy::too_many_arguments)]
async fn relay_phase(
    state: Arc<GatewayState>,
    info: Arc<super::registry::SessionInfo>,
    rx: Arc<Mailbox>,
    mut session: Session,
    stream: MessageStream,
    mut frags: Fragments,
    limits: crate::config::LimitsConfig,
    mut up: UpWs,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as UpCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;

    let _bridged = state.upstream.bridged();
    let mut stream = stream;
    stream.set_max_frame(limits.max_payload);
    let ping_every = Duration::from_millis(limits.ping_interval_ms);
    let write_limit = ping_every.max(Duration::from_millis(1));
    let mut next_ping = Instant::now() + ping_every;
    let timer = sleep_until(next_ping);
    tokio::pin!(timer);
    let mut awaiting_pong = false;
    let mut seq = bridge::Seq::default();
    let mut rpc_state = rpc::ConnState::default();
    // Why the upstream side ends, when clawgate ends it.
    let mut up_close: Option<(u16, String)> = Some((1000, String::new()));
    loop {
        tokio::select! {
            msg = stream.recv() => {
                let text = match downstream(msg, &mut frags, &mut session, limits.max_payload, &mut awaiting_pong).await {
                    Next::Text(t) => t,
                    Next::Skip => continue,
                    Next::End => break,
                };
                if bridge::classify_downstream(&text, |id| rpc::is_node_device(&state, id)) == bridge::Downstream::Own {
                    if !answer_own(&state, &info, &rx, &mut rpc_state, &mut session, &text, &mut || seq.own()).await {
                        break;
                    }
                    continue;
                }
                let text = bridge::downstream_frame(text, &state.upstream_ids);
                state.upstream.relayed_up(text.len());
                match tokio::time::timeout(write_limit, up.send(Message::text(text))).await {
                    Ok(Ok(())) => {}
                    _ => {
                        close(&mut session, 1011, "upstream gateway not reading").await;
                        up_close = None;
                        break;
                    }
                }
            }
            msg = up.next() => {
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        match bridge::upstream_frame(t.as_str(), &mut seq, &state.upstream_ids) {
                            bridge::UpFrame::Forward(out) => {
                                state.upstream.relayed_down(out.len());
                                if session.text(out).await.is_err() { break; }
                            }
                            bridge::UpFrame::Hidden => {}
                            bridge::UpFrame::Malformed => {
                                tracing::warn!(conn = %info.conn_id, "the upstream gateway sent a frame that is not a JSON object; session closed");
                                close(&mut session, 1011, "upstream gateway sent a malformed frame").await;
                                up_close = Some((1003, "malformed frame".into()));
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        // The gateway protocol is JSON text; a binary frame is not part of it.
                        tracing::warn!(conn = %info.conn_id, "the upstream gateway sent a binary frame; session closed");
                        close(&mut session, 1011, "upstream gateway sent a malformed frame").await;
                        up_close = Some((1003, "binary frame".into()));
                        break;
                    }
                    Some(Ok(Message::Ping(_))) => {
                        // tungstenite queues the pong; send it now.
                        let _ = up.flush().await;
                    }
                    Some(Ok(Message::Close(c))) => {
                        let (code, reason) = c
                            .map(|c| (u16::from(c.code), c.reason.to_string()))
                            .unwrap_or((1000, String::new()));
                        close(&mut session, code, &reason).await;
                        up_close = None;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                        // Over gateway.limits.maxPayload: not relayed, not buffered.
                        close(&mut session, 1011, "upstream frame over the size limit").await;
                        break;
                    }
                    Some(Err(_)) | None => {
                        close(&mut session, 1012, "upstream gateway connection lost").await;
                        up_close = None;
                        break;
                    }
                }
            }
            ctl = rx.recv() => {
                match ctl {
                    Control::Event(name, payload) => {
                        let n = seq.own();
                        if session.text(frames::event(name.as_str(), &payload, Some(n))).await.is_err() { break; }
                    }
                    Control::Close(code, reason) => {
                        tracing::info!(conn = %info.conn_id, code, reason = %reason, "closing bridged session");
                        close(&mut session, code, &reason).await;
                        up_close = Some((code, reason));
                        break;
                    }
                }
            }
            _ = &mut timer => {
                next_ping = Instant::now() + ping_every;
                if awaiting_pong {
                    break;
                }
                awaiting_pong = true;
                if session.ping(b"").await.is_err() { break; }
                timer.as_mut().reset(next_ping);
            }
        }
    }
    if let Some((code, reason)) = up_close {
        let frame = CloseFrame {
            code: UpCode::from(code),
            reason: truncate_utf8(&reason, 120).to_string().into(),
        };
        let _ = tokio::time::timeout(write_limit, up.close(Some(frame))).await;
    }
}
