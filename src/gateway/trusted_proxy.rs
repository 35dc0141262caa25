//! `gateway.auth.mode: "trusted-proxy"` (protocol §3.4): an identity-aware
//! proxy (oauth2-proxy, Authelia, Pomerium, forward auth) signs the user in
//! and names them in a header. The rules, in OpenClaw's order: the socket
//! peer is a trusted proxy, not loopback (unless allowed), not one of this
//! host's own addresses; the required headers and the user header are
//! there; the user is allowed; the client address was attributed through
//! the proxy. Then the scopes such a session gets: `identityScopes` for the
//! user, capped by the proxy's `x-openclaw-scopes`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::TrustedProxyAuth;
use crate::net::Attribution;

/// The header a proxy narrows a session's scopes with.
pub const SCOPES_HEADER: &str = "x-openclaw-scopes";

/// Why the proxy's word was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProxyDenial {
    /// The socket peer is not in `gateway.trustedProxies`.
    UntrustedSource,
    /// The peer is loopback and `allowLoopback` is off.
    LoopbackSource,
    /// The peer is one of this host's own (non-loopback) addresses.
    LocalInterfaceSource,
    /// A `requiredHeaders` entry is missing or blank.
    MissingHeader,
    /// The user header is missing or blank.
    UserMissing,
    /// `allowUsers` does not list the user.
    UserNotAllowed,
    /// The client address was not attributed through the proxy.
    AttributionRequired,
}

impl ProxyDenial {
    /// OpenClaw's reason (`missing_header` gets the header name appended).
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyDenial::UntrustedSource => "trusted_proxy_untrusted_source",
            ProxyDenial::LoopbackSource => "trusted_proxy_loopback_source",
            ProxyDenial::LocalInterfaceSource => "trusted_proxy_local_interface_source",
            ProxyDenial::MissingHeader => "trusted_proxy_missing_header_",
            ProxyDenial::UserMissing => "trusted_proxy_user_missing",
            ProxyDenial::UserNotAllowed => "trusted_proxy_user_not_allowed",
            ProxyDenial::AttributionRequired => "proxy_attribution_required",
        }
    }

    /// The rejection log's reason: [`Self::as_str`] without the header
    /// name a missing header would append.
    pub fn log_code(self) -> &'static str {
        match self {
            ProxyDenial::MissingHeader => "trusted_proxy_missing_header",
            other => other.as_str(),
        }
    }

    /// The denial a rejection-log reason names; `None` for any other reason,
    /// including `proxy_attribution_required`, which the upgrade's own
    /// refusal of a proxy without a client address shares.
    pub fn from_log_code(code: &str) -> Option<ProxyDenial> {
        [
            ProxyDenial::UntrustedSource,
            ProxyDenial::LoopbackSource,
            ProxyDenial::LocalInterfaceSource,
            ProxyDenial::MissingHeader,
            ProxyDenial::UserMissing,
            ProxyDenial::UserNotAllowed,
        ]
        .into_iter()
        .find(|d| d.log_code() == code)
    }

    /// The wire code (OpenClaw's: only a missing header has its own).
    pub fn code(self) -> &'static str {
        match self {
            ProxyDenial::MissingHeader => "AUTH_IDENTITY_HEADER_REQUIRED",
            _ => "AUTH_UNAUTHORIZED",
        }
    }
}

/// A refusal with what it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub why: ProxyDenial,
    /// The missing header, or the peer / user concerned.
    pub subject: String,
}

impl Denied {
    pub fn new(why: ProxyDenial, subject: impl Into<String>) -> Self {
        Denied {
            why,
            subject: subject.into(),
        }
    }

    /// OpenClaw's `authReason` string.
    pub fn reason(&self) -> String {
        match self.why {
            ProxyDenial::MissingHeader => format!("{}{}", self.why.as_str(), self.subject),
            _ => self.why.as_str().to_string(),
        }
    }

    /// What the client is told. OpenClaw says only "unauthorized"; clawgate
    /// says which check failed (nothing here is secret: the client sent it).
    pub fn message(&self) -> String {
        let s = &self.subject;
        let what = match self.why {
            ProxyDenial::UntrustedSource => format!(
                "the connection came from {s}, which is not in gateway.trustedProxies; connect through your identity-aware proxy"
            ),
            ProxyDenial::LoopbackSource => format!(
                "the proxy connected from loopback ({s}); set gateway.auth.trustedProxy.allowLoopback: true if a proxy on this host is the only way in"
            ),
            ProxyDenial::LocalInterfaceSource => format!(
                "the proxy connected from {s}, one of this host's own addresses, which anything on this host can use; put the proxy on its own address"
            ),
            ProxyDenial::MissingHeader => format!(
                "the proxy did not send the required header {s}"
            ),
            ProxyDenial::UserMissing => format!(
                "the proxy did not send the user header {s} (is the user signed in at the proxy?)"
            ),
            ProxyDenial::UserNotAllowed => format!(
                "user {s:?} is not in gateway.auth.trustedProxy.allowUsers"
            ),
            ProxyDenial::AttributionRequired => {
                "the proxy sent no usable client address (X-Forwarded-For)".to_string()
            }
        };
        format!("unauthorized: trusted proxy: {what}")
    }
}

/// What the proxy's request looks like.
pub struct Request<'a> {
    pub peer: IpAddr,
    pub attribution: Attribution,
    /// The identity headers of the upgrade (lowercase names).
    pub headers: &'a [(String, String)],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }
}

/// Whether `ip` is one of this host's own interface addresses.
pub fn is_own_address(ip: IpAddr) -> bool {
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs.iter().any(|i| i.ip().to_canonical() == ip),
        // As OpenClaw: when the interfaces cannot be listed, refuse.
        Err(_) => true,
    }
}

/// The user the proxy vouches for, or why not (§3.4, in order).
pub fn authorize(
    trusted_proxies: &[IpNet],
    t: &TrustedProxyAuth,
    req: &Request<'_>,
    own_address: impl Fn(IpAddr) -> bool,
) -> Result<String, Denied> {
    let peer = req.peer;
    if !trusted_proxies.iter().any(|n| n.contains(&peer)) {
        return Err(Denied::new(ProxyDenial::UntrustedSource, peer.to_string()));
    }
    if peer.is_loopback() {
        if !t.allow_loopback {
            return Err(Denied::new(ProxyDenial::LoopbackSource, peer.to_string()));
        }
    } else if own_address(peer) {
        return Err(Denied::new(
            ProxyDenial::LocalInterfaceSource,
            peer.to_string(),
        ));
    }
    if let Some(h) = t.required_headers.iter().find(|h| req.header(h).is_none()) {
        return Err(Denied::new(ProxyDenial::MissingHeader, h.clone()));
    }
    let Some(user) = req.header(&t.user_header).map(str::trim) else {
        return Err(Denied::new(ProxyDenial::UserMissing, t.user_header.clone()));
    };
    if !t.allow_users.is_empty() && !t.allow_users.iter().any(|u| u == user) {
        return Err(Denied::new(ProxyDenial::UserNotAllowed, user));
    }
    if req.attribution != Attribution::TrustedProxy {
        return Err(Denied::new(ProxyDenial::AttributionRequired, ""));
    }
    Ok(user.to_string())
}

/// `gateway.auth.identityScopes` for `user`: an exact key, else (for an
/// email) a key that matches it case-insensitively.
pub fn identity_scopes<'a>(map: &'a [(String, Vec<String>)], user: &str) -> &'a [String] {
    if let Some((_, s)) = map.iter().find(|(k, _)| k == user) {
        return s;
    }
    if !user.contains('@') {
        return &[];
    }
    map.iter()
        .find(|(k, _)| k.contains('@') && k.eq_ignore_ascii_case(user))
        .map_or(&[], |(_, s)| s.as_slice())
}

/// A session's scopes with the user's identity grant added (a plain set
/// union, as OpenClaw's: nothing implied is spelled out).
pub fn with_identity_scopes(scopes: &[String], grant: &[String]) -> Vec<String> {
    let mut v: Vec<String> = scopes.to_vec();
    for s in grant {
        if !v.contains(s) {
            v.push(s.clone());
        }
    }
    v
}

/// The proxy's cap (`x-openclaw-scopes`, a comma list): absent leaves the
/// scopes as they are, present-but-empty takes them all away.
pub fn cap(scopes: Vec<String>, header: Option<&str>) -> Vec<String> {
    let Some(h) = header else { return scopes };
    let allowed: Vec<&str> = h
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    scopes
        .into_iter()
        .filter(|s| allowed.contains(&s.as_str()))
        .collect()
}

/// The scopes a new device of this user is approved with under
/// `deviceAutoApprove` (OpenClaw's rule): the configured list (default
/// read, write, approvals, questions) when the client asked for none,
/// else what it asked for within that list (with the default list,
/// `operator.questions` is added as OpenClaw does for older UIs).
pub fn auto_approve_scopes(t: &TrustedProxyAuth, requested: &[String]) -> Vec<String> {
    const DEFAULT: [&str; 4] = [
        "operator.approvals",
        "operator.questions",
        "operator.read",
        "operator.write",
    ];
    // Sorted and unique only: no scope implies another here (OpenClaw's).
    let sorted = |v: &[String]| {
        let mut v: Vec<String> = v
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let configured: Vec<String> = match &t.auto_approve_scopes {
        Some(s) => sorted(s),
        None => DEFAULT.iter().map(|s| s.to_string()).collect(),
    };
    if requested.is_empty() {
        return configured;
    }
    let mut asked = requested.to_vec();
    if t.auto_approve_scopes.is_none() {
        asked.push("operator.questions".into());
    }
    sorted(&asked)
        .into_iter()
        .filter(|s| configured.contains(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProxyDenial::*;

    #[test]
    fn log_codes_name_their_denial_back() {
        for d in [
            UntrustedSource,
            LoopbackSource,
            LocalInterfaceSource,
            MissingHeader,
            UserMissing,
            UserNotAllowed,
        ] {
            assert_eq!(ProxyDenial::from_log_code(d.log_code()), Some(d));
        }
        // Shared with the upgrade's refusal: explained as that one.
        assert_eq!(
            ProxyDenial::from_log_code(AttributionRequired.log_code()),
            None
        );
        assert_eq!(ProxyDenial::from_log_code("AUTH_UNAUTHORIZED"), None);
    }

    fn tp() -> TrustedProxyAuth {
        TrustedProxyAuth {
            user_header: "x-forwarded-user".into(),
            required_headers: vec!["x-forwarded-proto".into()],
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rules_in_openclaws_order() {
        let full = headers(&[
            ("x-forwarded-user", " alice@example.com "),
            ("x-forwarded-proto", "https"),
        ]);
        let no_user = headers(&[("x-forwarded-proto", "https"), ("x-forwarded-user", "  ")]);
        let no_proto = headers(&[("x-forwarded-user", "alice@example.com")]);
        let allow = |mut t: TrustedProxyAuth, users: &[&str]| {
            t.allow_users = users.iter().map(|u| u.to_string()).collect();
            t
        };
        let loopback_ok = TrustedProxyAuth {
            allow_loopback: true,
            ..tp()
        };
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let own: IpAddr = "10.0.0.9".parse().unwrap();
        let tp_kind = Attribution::TrustedProxy;
        type Case<'a> = (
            &'a str,
            TrustedProxyAuth,
            IpAddr,
            Attribution,
            &'a [(String, String)],
            Result<&'a str, ProxyDenial>,
        );
        let table: Vec<Case> = vec![
            (
                "vouched",
                tp(),
                proxy,
                tp_kind,
                &full,
                Ok("alice@example.com"),
            ),
            (
                "untrusted peer",
                tp(),
                "10.0.1.1".parse().unwrap(),
                Attribution::DirectRemote,
                &full,
                Err(UntrustedSource),
            ),
            (
                "loopback refused",
                tp(),
                lo,
                tp_kind,
                &full,
                Err(LoopbackSource),
            ),
            // Loopback comes before the header checks.
            (
                "loopback before headers",
                tp(),
                lo,
                tp_kind,
                &no_user,
                Err(LoopbackSource),
            ),
            (
                "loopback allowed",
                loopback_ok,
                lo,
                tp_kind,
                &full,
                Ok("alice@example.com"),
            ),
            (
                "own address",
                tp(),
                own,
                tp_kind,
                &full,
                Err(LocalInterfaceSource),
            ),
            (
                "required header",
                tp(),
                proxy,
                tp_kind,
                &no_proto,
                Err(MissingHeader),
            ),
            (
                "blank user",
                tp(),
                proxy,
                tp_kind,
                &no_user,
                Err(UserMissing),
            ),
            (
                "allowed user",
                allow(tp(), &["alice@example.com"]),
                proxy,
                tp_kind,
                &full,
                Ok("alice@example.com"),
            ),
            (
                "user not allowed",
                allow(tp(), &["bob@example.com"]),
                proxy,
                tp_kind,
                &full,
                Err(UserNotAllowed),
            ),
            (
                "not attributed through the proxy",
                tp(),
                proxy,
                Attribution::DirectRemote,
                &full,
                Err(AttributionRequired),
            ),
        ];
        for (name, t, peer, attribution, hs, want) in table {
            let proxies: Vec<IpNet> = ["10.0.0.0/24", "127.0.0.1/32"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect();
            let got = authorize(
                &proxies,
                &t,
                &Request {
                    peer,
                    attribution,
                    headers: hs,
                },
                |ip| ip == own,
            );
            match (got, want) {
                (Ok(u), Ok(w)) => assert_eq!(u, w, "{name}"),
                (Err(d), Err(w)) => assert_eq!(d.why, w, "{name}"),
                (got, want) => panic!("{name}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_missing_header_is_named() {
        let d = Denied::new(MissingHeader, "x-forwarded-proto");
        assert_eq!(d.reason(), "trusted_proxy_missing_header_x-forwarded-proto");
        assert!(d.message().contains("x-forwarded-proto"), "{}", d.message());
        assert_eq!(d.why.code(), "AUTH_IDENTITY_HEADER_REQUIRED");
        assert_eq!(UserMissing.code(), "AUTH_UNAUTHORIZED");
    }

    #[test]
    fn identity_scopes_match_emails_case_insensitively() {
        let g: Vec<(String, Vec<String>)> = vec![
            ("Admin@Example.com".into(), vec!["operator.admin".into()]),
            ("svc".into(), vec!["operator.read".into()]),
        ];
        assert_eq!(identity_scopes(&g, "admin@example.COM"), ["operator.admin"]);
        assert_eq!(identity_scopes(&g, "svc"), ["operator.read"]);
        assert!(identity_scopes(&g, "SVC").is_empty());
        assert!(identity_scopes(&g, "nobody@example.com").is_empty());
    }

    #[test]
    fn the_scope_header_only_narrows() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let asked = s(&["operator.read", "operator.write"]);
        assert_eq!(cap(asked.clone(), None), asked);
        assert_eq!(
            cap(asked.clone(), Some("operator.read, operator.admin")),
            s(&["operator.read"])
        );
        assert!(cap(asked, Some(" , ")).is_empty());
    }

    #[test]
    fn auto_approve_scopes_follow_openclaw() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let default = tp();
        assert_eq!(
            auto_approve_scopes(&default, &[]),
            s(&[
                "operator.approvals",
                "operator.questions",
                "operator.read",
                "operator.write"
            ])
        );
        // Admin is never granted from the default list; questions is added.
        assert_eq!(
            auto_approve_scopes(&default, &s(&["operator.admin", "operator.read"])),
            s(&["operator.questions", "operator.read"])
        );
        let explicit = TrustedProxyAuth {
            auto_approve_scopes: Some(s(&["operator.read"])),
            ..tp()
        };
        assert_eq!(
            auto_approve_scopes(&explicit, &s(&["operator.read", "operator.write"])),
            s(&["operator.read"])
        );
        assert_eq!(auto_approve_scopes(&explicit, &[]), s(&["operator.read"]));
    }
}
