//! Small helpers shared by the modules: time, random tokens, private files.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// 32 random bytes, base64url without padding (43 characters). Never starts
/// with `-`, so a token pasted after a command-line flag is not read as one.
pub fn random_token() -> String {
    loop {
        let t = URL_SAFE_NO_PAD.encode(random_bytes());
        if !t.starts_with('-') {
            return t;
        }
    }
}

pub fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source");
    b
}

/// Writes a file readable only by its owner (mode 0600), atomically (temp + rename).
pub fn write_private_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Cuts a string to at most `max` UTF-8 bytes on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_utf8("abc", 120), "abc");
        let s = "é".repeat(100); // 200 bytes
        let t = truncate_utf8(&s, 120);
        assert_eq!(t.len(), 120);
        let t = truncate_utf8(&s, 121);
        assert_eq!(t.len(), 120);
    }

    #[test]
    fn tokens_are_43_chars() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert!((0..500).all(|_| !random_token().starts_with('-')));
        assert_ne!(t, random_token());
    }
}
