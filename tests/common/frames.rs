//! Raw WebSocket client frames, for tests that send what a library would not.
#![allow(dead_code)]

/// A masked client frame header (FIN set) announcing `len` payload bytes.
pub fn frame_header(opcode: u8, len: u64) -> Vec<u8> {
    frame_header_fin(true, opcode, len)
}

/// A masked client frame header, FIN as given.
pub fn frame_header_fin(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0, 0, 0, 0]); // zero mask: payload goes as is
    h
}

/// A whole masked client text frame.
pub fn text_frame(s: &str) -> Vec<u8> {
    let mut f = frame_header(0x1, s.len() as u64);
    f.extend_from_slice(s.as_bytes());
    f
}

/// A whole masked client frame with raw payload bytes.
pub fn raw_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header_fin(fin, opcode, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

/// `n` masked 125-byte pings back to back, for floods.
pub fn ping_batch(n: usize) -> Vec<u8> {
    let mut ping = frame_header(0x9, 125);
    ping.extend_from_slice(&[b'p'; 125]);
    ping.iter().copied().cycle().take(ping.len() * n).collect()
}
