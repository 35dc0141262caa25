//! A lean load-generating client for the handshake benchmark: raw TCP, a
//! pre-built upgrade request and hand-rolled WebSocket framing, so that the
//! load generator (which shares the machine's two cores with the server)
//! spends as little CPU per handshake as it can. It sends exactly what the
//! full test client sends for a v3-signed connect (same params, same
//! signature payload) and checks for `hello-ok`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{payload_v3, DeviceIdentity};

/// The HTTP upgrade request for `addr` (fixed key: the server's accept value
/// is not checked here, only the 101).
pub fn upgrade_request(addr: SocketAddr, headers: &[(&str, &str)]) -> Vec<u8> {
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed by the server".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Reads one (unmasked, unfragmented) server frame at `buf[*pos..]`;
/// returns (opcode, payload).
async fn read_frame(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    pos: &mut usize,
) -> Result<(u8, Vec<u8>), String> {
    loop {
        let b = &buf[*pos..];
        if b.len() >= 2 {
            let op = b[0] & 0x0f;
            let (len, hdr) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => (usize::MAX, 0),
                n => (n as usize, 2),
            };
            if len != usize::MAX && b.len() >= hdr + len {
                let payload = b[hdr..hdr + len].to_vec();
                *pos += hdr + len;
                return Ok((op, payload));
            }
        }
        fill(s, buf).await?;
    }
}

fn masked(op: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(0x80 | op);
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)? + key.len();
    let rest = &text[i..];
    let end = rest.find(['"', ',', '}'])?;
    Some(&rest[..end])
}

/// One v3-signed handshake: returns the time from TCP connect to hello-ok,
/// and whether the server answered the close frame within `close_wait`.
pub async fn handshake(
    addr: SocketAddr,
    request: &[u8],
    token: &str,
    dev: &DeviceIdentity,
    close_wait: Duration,
) -> Result<(Duration, bool), String> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.write_all(request).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(&mut s, &mut buf).await?;
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(String::from_utf8_lossy(&buf[..head_end]).into_owned());
    }
    let mut pos = head_end;
    let (_, challenge) = read_frame(&mut s, &mut buf, &mut pos).await?;
    let challenge = String::from_utf8(challenge).map_err(|e| e.to_string())?;
    let nonce = field(&challenge, "\"nonce\":\"").ok_or("no nonce")?;
    let ts: u64 = field(&challenge, "\"ts\":")
        .and_then(|v| v.parse().ok())
        .ok_or("no ts")?;
    let scopes = ["operator.read".to_string()];
    let signed = payload_v3(
        &dev.device_id,
        "cli",
        "cli",
        "operator",
        &scopes,
        ts,
        token,
        nonce,
        "linux",
        "",
    );
    let sig = dev.sign(&signed);
    let connect = format!(
        concat!(
            r#"{{"type":"req","id":"c-1","method":"connect","params":{{"minProtocol":4,"maxProtocol":4,"#,
            r#""client":{{"id":"cli","version":"2026.9.6","platform":"linux","mode":"cli"}},"#,
            r#""role":"operator","scopes":["operator.read"],"auth":{{"token":"{token}"}},"#,
            r#""device":{{"id":"{id}","publicKey":"{pk}","signature":"{sig}","signedAt":{ts},"nonce":"{nonce}"}}}}}}"#
        ),
        token = token,
        id = dev.device_id,
        pk = dev.public_key,
        sig = sig,
        ts = ts,
        nonce = nonce
    );
    s.write_all(&masked(0x1, connect.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    let (_, res) = read_frame(&mut s, &mut buf, &mut pos).await?;
    let lat = t.elapsed();
    let res = String::from_utf8_lossy(&res);
    if !res.contains("\"ok\":true") || !res.contains("\"type\":\"hello-ok\"") {
        return Err(format!("unexpected answer: {}", &res[..res.len().min(300)]));
    }
    let _ = s.write_all(&masked(0x8, &1000u16.to_be_bytes())).await;
    let closed_ok = matches!(
        tokio::time::timeout(close_wait, read_frame(&mut s, &mut buf, &mut pos)).await,
        Ok(Ok((0x8, _)))
    );
    Ok((lat, closed_ok))
}
