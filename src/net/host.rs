//! The host named by an `Origin` or a `Host` header, parsed with the WHATWG
//! URL parser (the `url` crate, which browsers' parsing rules define), so
//! that what clawgate compares is what the browser meant: brackets dropped
//! from IPv6, domains lowercased, IPv4 in its canonical dotted form.

use url::{Host, Url};

/// The host of `scheme://host[:port][/…]` or of `host[:port]`, lowercased.
/// A value that does not parse is returned lowercased as it is, so that it
/// matches nothing but itself.
pub fn host_of(origin_or_host: &str) -> String {
    let s = origin_or_host.trim();
    let parsed = if s.contains("://") {
        Url::parse(s)
    } else {
        Url::parse(&format!("http://{s}"))
    };
    match parsed.as_ref().ok().and_then(Url::host) {
        Some(Host::Domain(d)) => d.to_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        None => s.to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_origins_and_host_headers() {
        assert_eq!(host_of("http://localhost:18789"), "localhost");
        assert_eq!(host_of("https://[::1]:8080/x"), "::1");
        assert_eq!(host_of("127.0.0.1:18789"), "127.0.0.1");
        assert_eq!(host_of("gw.example.com"), "gw.example.com");
        assert_eq!(host_of("GW.Example.COM:443"), "gw.example.com");
        assert_eq!(host_of("[::1]:18788"), "::1");
        // what a browser would connect to, not the raw text
        assert_eq!(host_of("http://0x7f.1:80"), "127.0.0.1");
        // not a host: kept as text, matching nothing else
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("a b"), "a b");
    }
}
