//! Client attribution: who is really connecting, given the TCP peer, the
//! forwarded headers and `gateway.trustedProxies`.
//!
//! Rules (protocol §4.1, with CIDRs and RFC 7239 `Forwarded` parsing):
//! - a loopback peer with no proxy headers is *direct local*;
//! - a peer in `trustedProxies`: `X-Forwarded-For` walked right to left (else
//!   `Forwarded: for=`, else `X-Real-IP` when `allowRealIpFallback`), skipping
//!   loopback and trusted hops; no usable hop → *unattributable*;
//! - proxy headers from any other peer → *unattributable* (HTTP 403);
//! - otherwise *direct remote*.

pub mod host;

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    DirectLocal,
    DirectRemote,
    TrustedProxy,
    Unattributable,
}

impl Attribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::DirectLocal => "direct-local",
            Attribution::DirectRemote => "direct-remote",
            Attribution::TrustedProxy => "trusted-proxy",
            Attribution::Unattributable => "unattributable-proxy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientAddr {
    pub kind: Attribution,
    /// The TCP peer (canonical form).
    pub peer: IpAddr,
    /// The resolved client address (the peer unless a trusted proxy vouched).
    pub client: IpAddr,
    /// Proxy headers seen (name: value), for diagnostics.
    pub proxy_headers: Vec<(String, String)>,
    /// Why attribution failed, when it did.
    pub reason: Option<Unattributed>,
}

/// Why a client address could not be attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unattributed {
    /// A trusted proxy sent a forwarded hop that is not an IP address.
    BadHop,
    /// A trusted proxy sent no usable client address.
    NoClientAddress,
    /// Forwarded headers came from a peer that is not a trusted proxy.
    UntrustedProxy,
}

impl Unattributed {
    pub fn as_str(self) -> &'static str {
        match self {
            Unattributed::BadHop => "a forwarded hop is not an IP address",
            Unattributed::NoClientAddress => "the trusted proxy sent no usable client address",
            Unattributed::UntrustedProxy => {
                "forwarded headers came from a peer that is not in gateway.trustedProxies"
            }
        }
    }
}

impl std::fmt::Display for Unattributed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ClientAddr {
    pub fn is_local(&self) -> bool {
        self.kind == Attribution::DirectLocal
    }
}

/// The settings attribution needs (a view of the runtime config).
pub struct ProxyPolicy<'a> {
    pub trusted: &'a [IpNet],
    pub allow_real_ip_fallback: bool,
}

impl ProxyPolicy<'_> {
    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }
}

fn is_proxy_header(name: &str) -> bool {
    name == "forwarded" || name == "x-real-ip" || name.starts_with("x-forwarded-")
}

fn is_tailscale_header(name: &str) -> bool {
    matches!(
        name,
        "tailscale-funnel-request"
            | "tailscale-headers-info"
            | "tailscale-user-login"
            | "tailscale-user-name"
            | "tailscale-user-profile-pic"
    )
}

/// Parses one forwarded hop: an IP, `ip:port`, `[v6]`, `[v6]:port`, optionally quoted.
pub fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"').trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
    }
    // v4 with port
    let (host, port) = s.rsplit_once(':')?;
    if port.chars().all(|c| c.is_ascii_digit()) {
        return host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// Extracts the `for=` values of an RFC 7239 `Forwarded` header, in order.
pub fn forwarded_for(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in value.split(',') {
        for pair in element.split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                if k.trim().eq_ignore_ascii_case("for") {
                    out.push(v.trim().to_string());
                }
            }
        }
    }
    out
}

/// Attributes a connection. `headers` are (lowercase name, value) pairs.
pub fn attribute(
    peer: IpAddr,
    headers: &[(String, String)],
    policy: &ProxyPolicy<'_>,
) -> ClientAddr {
    let peer = peer.to_canonical();
    let proxy_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| is_proxy_header(n) || is_tailscale_header(n))
        .cloned()
        .collect();
    let mk = |kind, client, reason| ClientAddr {
        kind,
        peer,
        client,
        proxy_headers: proxy_headers.clone(),
        reason,
    };
    if peer.is_loopback() && proxy_headers.is_empty() {
        return mk(Attribution::DirectLocal, peer, None);
    }
    if policy.trusted(&peer) {
        let get_all = |name: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let xff: Vec<String> = get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .collect();
        let hops: Vec<String> = if !xff.is_empty() {
            xff
        } else {
            get_all("forwarded")
                .iter()
                .flat_map(|v| forwarded_for(v))
                .collect()
        };
        let mut client = None;
        let mut bad_hop = false;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) if ip.is_loopback() || policy.trusted(&ip) => continue,
                Some(ip) => {
                    client = Some(ip);
                    break;
                }
                None => {
                    bad_hop = true;
                    break;
                }
            }
        }
        if client.is_none() && !bad_hop && policy.allow_real_ip_fallback {
            client = get_all("x-real-ip").first().and_then(|v| parse_hop(v));
        }
        return match client {
            Some(ip) if !ip.is_loopback() => mk(Attribution::TrustedProxy, ip, None),
            _ => mk(
                Attribution::Unattributable,
                peer,
                Some(if bad_hop {
                    Unattributed::BadHop
                } else {
                    Unattributed::NoClientAddress
                }),
            ),
        };
    }
    if !proxy_headers.is_empty() {
        return mk(
            Attribution::Unattributable,
            peer,
            Some(Unattributed::UntrustedProxy),
        );
    }
    mk(Attribution::DirectRemote, peer, None)
}

/// The JSON body of the HTTP 403 answer to an unattributable upgrade. It keeps
/// OpenClaw's `error.message`/`error.type` and adds the address to trust.
pub fn attribution_required_body(addr: &ClientAddr) -> serde_json::Value {
    let hint = match addr.reason {
        Some(Unattributed::UntrustedProxy) => format!(
            "forwarded headers came from {peer}, which is not a trusted proxy; if {peer} is your reverse proxy, \
             add it to gateway.trustedProxies (an address like \"{peer}\" or a range like \"{range}\")",
            peer = addr.peer,
            range = suggest_range(&addr.peer)
        ),
        Some(r) => format!(
            "{r}; make the proxy at {peer} send X-Forwarded-For with the client's address",
            peer = addr.peer
        ),
        None => String::new(),
    };
    serde_json::json!({
        "error": {
            "message": "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers.",
            "type": "proxy_attribution_required",
            "peerAddress": addr.peer.to_string(),
            "hint": hint,
        }
    })
}

fn suggest_range(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.0.0/16", o[0], o[1])
        }
        IpAddr::V6(_) => format!("{ip}/64"),
    }
}

/// Private, loopback, link-local, CGNAT or ULA address.
pub fn is_private_or_loopback(ip: &IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_ip_or_cidr;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn policy(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_ip_or_cidr(s).unwrap()).collect()
    }

    #[test]
    fn loopback_without_headers_is_local() {
        let nets = policy(&[]);
        let p = ProxyPolicy {
            trusted: &nets,
            allow_real_ip_fallback: false,
        };
        let a = attribute("127.0.0.1".parse().unwrap(), &[], &p);
        assert_eq!(a.kind, Attribution::DirectLocal);
        let a = attribute("::ffff:127.0.0.1".parse().unwrap(), &[], &p);
        assert_eq!(a.kind, Attribution::DirectLocal);
        let a = attribute("192.168.1.5".parse().unwrap(), &[], &p);
        assert_eq!(a.kind, Attribution::DirectRemote);
    }

    #[test]
    fn forwarded_headers_from_untrusted_peer_are_unattributable() {
        let nets = policy(&[]);
        let p = ProxyPolicy {
            trusted: &nets,
            allow_real_ip_fallback: false,
        };
        let a = attribute(
            "172.17.0.1".parse().unwrap(),
            &h(&[("x-forwarded-for", "203.0.113.7")]),
            &p,
        );
        assert_eq!(a.kind, Attribution::Unattributable);
        let body = attribution_required_body(&a);
        assert_eq!(body["error"]["type"], "proxy_attribution_required");
        assert_eq!(body["error"]["peerAddress"], "172.17.0.1");
        assert!(body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("172.17.0.0/16"));
        // Even from loopback: headers make it not local.
        let a = attribute(
            "127.0.0.1".parse().unwrap(),
            &h(&[("x-real-ip", "1.2.3.4")]),
            &p,
        );
        assert_eq!(a.kind, Attribution::Unattributable);
    }

    #[test]
    fn xff_walks_right_to_left_over_trusted_hops() {
        let nets = policy(&["10.0.0.0/8", "::ffff:172.16.0.0/108"]);
        let p = ProxyPolicy {
            trusted: &nets,
            allow_real_ip_fallback: false,
        };
        let a = attribute(
            "::ffff:10.1.2.3".parse().unwrap(),
            &h(&[(
                "x-forwarded-for",
                "198.51.100.1, 203.0.113.7, 172.16.5.5, 127.0.0.1",
            )]),
            &p,
        );
        assert_eq!(a.kind, Attribution::TrustedProxy);
        assert_eq!(a.client.to_string(), "203.0.113.7");
        // Only loopback hops → unattributable.
        let a = attribute(
            "10.0.0.1".parse().unwrap(),
            &h(&[("x-forwarded-for", "127.0.0.1")]),
            &p,
        );
        assert_eq!(a.kind, Attribution::Unattributable);
        // With ports and brackets.
        let a = attribute(
            "10.0.0.1".parse().unwrap(),
            &h(&[("x-forwarded-for", "[2001:db8::1]:4444")]),
            &p,
        );
        assert_eq!(a.client.to_string(), "2001:db8::1");
    }

    #[test]
    fn forwarded_header_and_real_ip_fallback() {
        let nets = policy(&["127.0.0.1"]);
        let p = ProxyPolicy {
            trusted: &nets,
            allow_real_ip_fallback: false,
        };
        let a = attribute(
            "127.0.0.1".parse().unwrap(),
            &h(&[(
                "forwarded",
                "for=198.51.100.9;proto=https, for=\"[2001:db8::5]:80\"",
            )]),
            &p,
        );
        assert_eq!(a.kind, Attribution::TrustedProxy);
        assert_eq!(a.client.to_string(), "2001:db8::5");
        let a = attribute(
            "127.0.0.1".parse().unwrap(),
            &h(&[("x-real-ip", "198.51.100.2")]),
            &p,
        );
        assert_eq!(a.kind, Attribution::Unattributable);
        let p2 = ProxyPolicy {
            trusted: &nets,
            allow_real_ip_fallback: true,
        };
        let a = attribute(
            "127.0.0.1".parse().unwrap(),
            &h(&[("x-real-ip", "198.51.100.2")]),
            &p2,
        );
        assert_eq!(a.kind, Attribution::TrustedProxy);
        assert_eq!(a.client.to_string(), "198.51.100.2");
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.1.1",
            "172.17.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(is_private_or_loopback(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.113.7", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_private_or_loopback(&ip.parse().unwrap()), "{ip}");
        }
    }
}
