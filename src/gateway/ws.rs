//! The WebSocket transport of a session, on the raw TCP stream handed over
//! by actix-http's upgrade hook: frames are decoded and encoded with
//! actix-http's WebSocket codec, with buffers that are small while a
//! connection is idle (actix's dispatcher would keep 8 KiB read and write
//! buffers for the life of every WebSocket).

use actix_http::ws::{CloseReason, Codec, Frame, Message, ProtocolError};
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{Decoder, Encoder};

/// Read at least this much spare room before each read.
const READ_CHUNK: usize = 1024;
/// An empty read buffer larger than this is released between frames.
const KEEP_IDLE: usize = 4096;

/// Incoming frames.
pub struct WsReader {
    io: OwnedReadHalf,
    buf: BytesMut,
    codec: Codec,
    eof: bool,
}

impl WsReader {
    /// `early` holds bytes read past the upgrade request.
    pub fn new(io: OwnedReadHalf, early: BytesMut, max_frame: usize) -> Self {
        WsReader {
            io,
            buf: early,
            codec: Codec::new().max_size(max_frame),
            eof: false,
        }
    }

    /// Sets the largest accepted frame payload.
    pub fn set_max_frame(&mut self, max: usize) {
        self.codec = Codec::new().max_size(max);
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
                Ok(None) => {}
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

/// Outgoing frames, written straight to the socket.
pub struct WsWriter {
    io: OwnedWriteHalf,
    codec: Codec,
    buf: BytesMut,
    closed: bool,
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
        }
    }

    async fn send(&mut self, msg: Message) -> Result<(), Closed> {
        if self.closed {
            return Err(Closed);
        }
        self.codec.encode(msg, &mut self.buf).map_err(|_| Closed)?;
        let r = self.io.write_all(&self.buf).await;
        self.buf.clear();
        if self.buf.capacity() > KEEP_IDLE {
            self.buf = BytesMut::new();
        }
        r.map_err(|_| {
            self.closed = true;
            Closed
        })
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
        let _ = self.send(Message::Close(reason)).await;
        self.closed = true;
        let _ = self.io.shutdown().await;
    }
}
