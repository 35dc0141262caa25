//! The WebSocket transport of a session, on the raw TCP stream handed over
//! by actix-http's upgrade hook: frames are decoded and encoded with
//! actix-http's WebSocket codec, with buffers that are small while a
//! connection is idle (actix's dispatcher would keep 8 KiB read and write
//! buffers for the life of every WebSocket).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{CloseReason, Codec, Frame, Message, ProtocolError};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Read at least this much spare room before each read.
const READ_CHUNK: usize = 1024;
/// An empty read buffer larger than this is released between frames.
const KEEP_IDLE: usize = 4096;

/// After an abort, a write in progress gets this long to finish (so that a
/// close frame queued behind it can still go out to a peer that reads).
const ABORT_GRACE: Duration = Duration::from_millis(500);

/// The payload length a frame header announces, once enough of the header is
/// buffered (RFC 6455 §5.2). actix-http's codec checks its `max_size` only
/// when the whole frame has arrived, so a header that claims a huge payload
/// would otherwise be buffered byte by byte.
fn announced_len(buf: &[u8]) -> Option<u64> {
    let b1 = *buf.get(1)?;
    match b1 & 0x7f {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let b: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(b))
        }
        n => Some(u64::from(n)),
    }
}

/// Incoming frames.
pub struct WsReader {
    io: OwnedReadHalf,
    buf: BytesMut,
    codec: Codec,
    max_frame: usize,
    eof: bool,
}

impl WsReader {
    /// `early` holds bytes read past the upgrade request.
    pub fn new(io: OwnedReadHalf, early: BytesMut, max_frame: usize) -> Self {
        WsReader {
            io,
            buf: early,
            codec: Codec::new().max_size(max_frame),
            max_frame,
            eof: false,
        }
    }

    /// Sets the largest accepted frame payload.
    pub fn set_max_frame(&mut self, max: usize) {
        self.codec = Codec::new().max_size(max);
        self.max_frame = max;
    }

    /// The next frame; `None` at the end of the stream.
    pub async fn recv(&mut self) -> Option<Result<Frame, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() && self.buf.capacity() > KEEP_IDLE {
                        self.buf = BytesMut::new();
                    }
                    return Some(Ok(frame));
                }
                Ok(None) => {
                    // Refuse an oversized frame on its header, before its payload.
                    if announced_len(&self.buf).is_some_and(|n| n > self.max_frame as u64) {
                        self.buf = BytesMut::new();
                        self.eof = true;
                        return Some(Err(ProtocolError::Overflow));
                    }
                }
                Err(e) => return Some(Err(e)),
            }
            if self.eof {
                return None;
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK {
                self.buf.reserve(READ_CHUNK);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    if self.buf.is_empty() {
                        return None;
                    }
                }
                Ok(_) => {}
            }
        }
    }
}

/// A signal that tells a session's writer to give up on a blocked write (an
/// admin close, a slow consumer): once fired, stays fired.
#[derive(Default)]
pub struct Abort {
    fired: AtomicBool,
    notify: Notify,
}

impl Abort {
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    async fn fired(&self) {
        loop {
            let n = self.notify.notified();
            if self.is_fired() {
                return;
            }
            n.await;
        }
    }
}

/// Outgoing frames, written straight to the socket. Every write is bounded:
/// by a time limit, by an absolute deadline (the handshake's), and by an
/// abort signal; a write that misses its bound closes the writer, so a peer
/// that does not read cannot hold a session (or its slot) open.
pub struct WsWriter {
    io: OwnedWriteHalf,
    codec: Codec,
    buf: BytesMut,
    closed: bool,
    write_timeout: Duration,
    deadline: Option<Instant>,
    abort: Option<Arc<Abort>>,
}

/// The peer is gone or the session was closed.
#[derive(Debug)]
pub struct Closed;

impl WsWriter {
    pub fn new(io: OwnedWriteHalf) -> Self {
        WsWriter {
            io,
            codec: Codec::new(),
            buf: BytesMut::new(),
            closed: false,
            write_timeout: Duration::from_secs(15),
            deadline: None,
            abort: None,
        }
    }

    /// The longest one frame may take to be written.
    pub fn set_write_timeout(&mut self, t: Duration) {
        self.write_timeout = t;
    }

    /// No write may finish later than this (`None`: no absolute deadline).
    pub fn set_deadline(&mut self, d: Option<Instant>) {
        self.deadline = d;
    }

    /// Blocked writes give up once `abort` fires.
    pub fn set_abort(&mut self, abort: Arc<Abort>) {
        self.abort = Some(abort);
    }

    async fn send(&mut self, msg: Message) -> Result<(), Closed> {
        if self.closed {
            return Err(Closed);
        }
        self.codec.encode(msg, &mut self.buf).map_err(|_| Closed)?;
        let mut until = Instant::now() + self.write_timeout;
        if let Some(d) = self.deadline {
            until = until.min(d);
        }
        let abort = self.abort.as_deref();
        let aborted = async {
            match abort {
                Some(a) => {
                    a.fired().await;
                    tokio::time::sleep(ABORT_GRACE).await;
                }
                None => std::future::pending().await,
            }
        };
        let r = tokio::select! {
            biased;
            r = self.io.write_all(&self.buf) => r.is_ok(),
            _ = tokio::time::sleep_until(until) => false,
            _ = aborted => false,
        };
        self.buf.clear();
        if self.buf.capacity() > KEEP_IDLE {
            self.buf = BytesMut::new();
        }
        if r {
            Ok(())
        } else {
            self.closed = true;
            Err(Closed)
        }
    }

    pub async fn text(&mut self, s: impl Into<String>) -> Result<(), Closed> {
        self.send(Message::Text(s.into().into())).await
    }

    pub async fn ping(&mut self, b: &[u8]) -> Result<(), Closed> {
        self.send(Message::Ping(bytes::Bytes::copy_from_slice(b)))
            .await
    }

    pub async fn pong(&mut self, b: &[u8]) -> Result<(), Closed> {
        self.send(Message::Pong(bytes::Bytes::copy_from_slice(b)))
            .await
    }

    /// Sends a close frame (once) and shuts the write side down.
    pub async fn close(&mut self, reason: Option<CloseReason>) {
        if self.closed {
            return;
        }
        let sent = self.send(Message::Close(reason)).await.is_ok();
        self.closed = true;
        if sent {
            // Bounded like a write: a FIN never blocks for long, but a peer
            // that does not read must not hold the task.
            let _ = tokio::time::timeout(self.write_timeout, self.io.shutdown()).await;
        }
    }
}
