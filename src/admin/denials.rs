//! Failed admin authentication, aggregated. Each refusal stays visible (the
//! audit log, `/metrics`), but an attacker's request never costs an fsync:
//! per client address, the first refusal of a window is audited (without
//! fsync; the store's periodic flush makes it durable), the others are
//! counted and reported with the next audited one. The table of addresses is
//! capped; past the cap, refusals are counted in one shared bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One audit record per address per window.
pub const WINDOW_MS: u64 = 60_000;
/// Addresses tracked at once; more share one bucket.
pub const MAX_ADDRS: usize = 1024;
/// The request target kept in an audit record, at most.
pub const MAX_TARGET: usize = 200;

#[derive(Default)]
struct Entry {
    window_start_ms: u64,
    /// Refusals since the last audited one (not audited themselves).
    suppressed: u64,
}

#[derive(Default)]
pub struct Denials {
    by_addr: Mutex<HashMap<Option<IpAddr>, Entry>>,
    /// Every refusal, for `/metrics`.
    pub total: AtomicU64,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write an audit record; `suppressed` earlier refusals were not written.
    Audit { suppressed: u64 },
    /// Counted only.
    Count,
}

impl Denials {
    pub fn record(&self, addr: Option<IpAddr>, now_ms: u64) -> Verdict {
        self.total.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_addr.lock().expect("denials lock");
        if map.len() >= MAX_ADDRS && !map.contains_key(&addr) {
            // Drop windows that are over; if none is, share the None bucket.
            map.retain(|_, e| now_ms.saturating_sub(e.window_start_ms) < WINDOW_MS);
        }
        let key = if map.len() >= MAX_ADDRS && !map.contains_key(&addr) {
            None
        } else {
            addr
        };
        let e = map.entry(key).or_default();
        if e.window_start_ms == 0 || now_ms.saturating_sub(e.window_start_ms) >= WINDOW_MS {
            e.window_start_ms = now_ms.max(1);
            let suppressed = std::mem::take(&mut e.suppressed);
            Verdict::Audit { suppressed }
        } else {
            e.suppressed += 1;
            Verdict::Count
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audit_per_address_per_window_with_the_count() {
        let d = Denials::default();
        let a = Some("203.0.113.7".parse().unwrap());
        assert_eq!(d.record(a, 1_000), Verdict::Audit { suppressed: 0 });
        for i in 0..500 {
            assert_eq!(d.record(a, 1_001 + i), Verdict::Count);
        }
        // Another address has its own window.
        let b = Some("203.0.113.8".parse().unwrap());
        assert_eq!(d.record(b, 2_000), Verdict::Audit { suppressed: 0 });
        // The next window audits again and reports what was only counted.
        assert_eq!(
            d.record(a, 1_000 + WINDOW_MS),
            Verdict::Audit { suppressed: 500 }
        );
        assert_eq!(d.total.load(Ordering::Relaxed), 503);
    }

    #[test]
    fn the_address_table_is_capped() {
        let d = Denials::default();
        for i in 0..(MAX_ADDRS as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            d.record(Some(ip), 5_000);
        }
        assert!(d.by_addr.lock().unwrap().len() <= MAX_ADDRS + 1);
    }

    #[test]
    fn clip_keeps_utf8_whole() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("ééé", 3), "é…");
    }
}
