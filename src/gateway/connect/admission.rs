//! The pairing decision (protocol §5): whether a proven device must be
//! (re-)approved, and whether that approval is automatic. Pure functions of
//! the connect's situation, so the rules are tested as a table.

use super::Locality;
use crate::gateway::auth::AuthMethod;
use crate::gateway::pairing::PairingReason;
use crate::gateway::scopes::{self, Role};
use crate::store::DeviceRecord;

/// Why the device must be approved, or `None` when it is admitted as it
/// is. A valid device token admits by itself.
pub(super) fn requirement(
    record: Option<&DeviceRecord>,
    auth: Option<AuthMethod>,
    role: Role,
    platform: &str,
    device_family: Option<&str>,
    requested_scopes: &[String],
) -> Option<PairingReason> {
    if auth == Some(AuthMethod::DeviceToken) {
        return None;
    }
    let Some(r) = record else {
        return Some(PairingReason::NotPaired);
    };
    let norm = |s: Option<&str>| s.map(|x| x.trim().to_ascii_lowercase()).unwrap_or_default();
    if norm(r.platform.as_deref()) != norm(Some(platform))
        || norm(r.device_family.as_deref()) != norm(device_family)
    {
        Some(PairingReason::MetadataUpgrade)
    } else if !r.roles.iter().any(|x| x == role.as_str())
        || r.tokens
            .get(role.as_str())
            .is_some_and(|t| t.revoked_at_ms.is_some())
    {
        // A revoked role token takes the role away until it is approved
        // again, as in OpenClaw (a role-upgrade request).
        Some(PairingReason::RoleUpgrade)
    } else if !scopes::covers(&r.scopes, requested_scopes) {
        Some(PairingReason::ScopeUpgrade)
    } else {
        None
    }
}

/// What the approval decision looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Situation {
    pub locality: Locality,
    pub role: Role,
    /// How the connect authenticated so far (`None`: no secret matched).
    pub auth: Option<AuthMethod>,
    /// The device is already paired (this is an upgrade).
    pub paired: bool,
    /// A browser that is not the Control UI (an Origin from some page).
    pub browser: bool,
    /// The upgrade request carried an Origin.
    pub origin: bool,
    pub scopes_empty: bool,
    /// `gateway.nodes.pairing.autoApproveLocal`.
    pub auto_approve_local: bool,
    /// The client address is in `gateway.nodes.pairing.autoApproveCidrs`.
    pub in_auto_approve_cidr: bool,
}

/// How a required approval happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Approval {
    /// Approved on the spot: a local client (OpenClaw's silent local pairing).
    Silent,
    /// Approved on the spot: a new node from a trusted CIDR.
    TrustedCidr,
    /// A pending request that a person approves.
    Request,
}

impl Approval {
    /// `approvedVia` for an automatic approval.
    pub fn automatic(self) -> Option<&'static str> {
        match self {
            Approval::Silent => Some("silent"),
            Approval::TrustedCidr => Some("trusted-cidr"),
            Approval::Request => None,
        }
    }
}

pub(super) fn approval(reason: PairingReason, s: &Situation) -> Approval {
    // A scope upgrade is silent only for a connect that proved the shared
    // secret (or needs none), never on a device token's say-so.
    let scope_upgrade_ok = reason != PairingReason::ScopeUpgrade
        || matches!(
            s.auth,
            Some(AuthMethod::None | AuthMethod::Token | AuthMethod::Password)
        );
    let silent = s.auto_approve_local
        && s.locality != Locality::Remote
        && scope_upgrade_ok
        && !s.browser
        && !(s.paired && s.role != Role::Operator);
    if silent {
        return Approval::Silent;
    }
    let trusted_cidr = reason == PairingReason::NotPaired
        && s.role == Role::Node
        && s.scopes_empty
        && !s.origin
        && s.in_auto_approve_cidr;
    if trusted_cidr {
        Approval::TrustedCidr
    } else {
        Approval::Request
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Approval::{Request, Silent, TrustedCidr};
    use Locality::*;
    use PairingReason::*;

    fn situation(locality: Locality, role: Role, auth: Option<AuthMethod>) -> Situation {
        Situation {
            locality,
            role,
            auth,
            paired: false,
            browser: false,
            origin: false,
            scopes_empty: true,
            auto_approve_local: true,
            in_auto_approve_cidr: false,
        }
    }

    /// locality, auth, role, reason, paired, browser, in an auto-approve CIDR → approval
    type Row = (
        Locality,
        Option<AuthMethod>,
        Role,
        PairingReason,
        bool,
        bool,
        bool,
        Approval,
    );

    /// locality × auth × role × pairing state → approval.
    #[test]
    fn approval_table() {
        let tok = Some(AuthMethod::Token);
        let none = None;
        let dt = Some(AuthMethod::DeviceToken);
        let op = Role::Operator;
        let node = Role::Node;
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // locality, auth, role, reason, paired, browser, in CIDR → approval
            (DirectLocal, tok, op, NotPaired, false, false, false, Silent),
            (DirectLocal, none, op, NotPaired, false, false, false, Silent),
            (CliContainerLocal, tok, op, NotPaired, false, false, false, Silent),
            (BrowserContainerLocal, tok, op, NotPaired, false, false, false, Silent),
            (SharedSecretLoopbackLocal, tok, op, NotPaired, false, false, false, Silent),
            (Remote, tok, op, NotPaired, false, false, false, Request),
            (Remote, none, op, NotPaired, false, false, false, Request),
            // a page's Origin is never paired silently, even locally
            (DirectLocal, tok, op, NotPaired, false, true, false, Request),
            // scope upgrades: silent locally with the secret, not on a device token
            (DirectLocal, tok, op, ScopeUpgrade, true, false, false, Silent),
            (DirectLocal, dt, op, ScopeUpgrade, true, false, false, Request),
            (Remote, tok, op, ScopeUpgrade, true, false, false, Request),
            // an already paired non-operator is never re-approved silently
            (DirectLocal, tok, node, RoleUpgrade, true, false, false, Request),
            (DirectLocal, tok, node, NotPaired, false, false, false, Silent),
            // trusted CIDRs: new remote nodes only
            (Remote, tok, node, NotPaired, false, false, true, TrustedCidr),
            (Remote, tok, node, NotPaired, false, false, false, Request),
            (Remote, tok, op, NotPaired, false, false, true, Request),
            (Remote, tok, node, MetadataUpgrade, true, false, true, Request),
            (Remote, tok, node, RoleUpgrade, true, false, true, Request),
        ];
        for (i, &(loc, auth, role, reason, paired, browser, cidr, want)) in rows.iter().enumerate()
        {
            let mut s = situation(loc, role, auth);
            s.paired = paired;
            s.browser = browser;
            s.origin = browser;
            s.in_auto_approve_cidr = cidr;
            assert_eq!(approval(reason, &s), want, "row {i}: {s:?} {reason:?}");
        }
    }

    #[test]
    fn auto_approve_local_off_leaves_only_requests_and_cidrs() {
        let mut s = situation(DirectLocal, Role::Operator, Some(AuthMethod::Token));
        s.auto_approve_local = false;
        assert_eq!(approval(NotPaired, &s), Request);
        let mut s = situation(Remote, Role::Node, Some(AuthMethod::Token));
        s.auto_approve_local = false;
        s.in_auto_approve_cidr = true;
        assert_eq!(approval(NotPaired, &s), TrustedCidr);
        s.scopes_empty = false;
        assert_eq!(approval(NotPaired, &s), Request, "a node asking for scopes");
    }

    fn record(platform: &str, roles: &[&str], scopes: &[&str]) -> DeviceRecord {
        DeviceRecord {
            device_id: "d".into(),
            platform: Some(platform.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// pairing state × request → requirement.
    #[test]
    fn requirement_table() {
        let read = vec!["operator.read".to_string()];
        let admin = vec!["operator.admin".to_string()];
        let op = Role::Operator;
        let tok = Some(AuthMethod::Token);
        let paired = record("linux", &["operator"], &["operator.read"]);
        assert_eq!(
            requirement(None, tok, op, "linux", None, &read),
            Some(NotPaired)
        );
        assert_eq!(
            requirement(
                None,
                Some(AuthMethod::DeviceToken),
                op,
                "linux",
                None,
                &read
            ),
            None,
            "a valid device token admits by itself"
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "linux", None, &read),
            None
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, " Linux ", None, &read),
            None,
            "platform compared trimmed, case-insensitively"
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "darwin", None, &read),
            Some(MetadataUpgrade)
        );
        assert_eq!(
            requirement(Some(&paired), tok, Role::Node, "linux", None, &[]),
            Some(RoleUpgrade)
        );
        assert_eq!(
            requirement(Some(&paired), tok, op, "linux", None, &admin),
            Some(ScopeUpgrade)
        );
    }
}
