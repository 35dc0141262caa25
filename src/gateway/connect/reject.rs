//! A refused connect: the error frame, the close, and why (a closed set of
//! wire codes).

use serde_json::json;

use crate::gateway::auth::{AuthReason, HintKind};
use crate::gateway::frames::ErrorShape;
use crate::gateway::trusted_proxy::Denied;
use crate::util::truncate_utf8;

/// A failed connect: the error `res` (if any) and the close frame.
#[derive(Debug)]
pub struct Rejection {
    /// Why, as a code from a closed set (metrics, the rejection log).
    pub reason: RejectReason,
    pub error: Option<ErrorShape>,
    pub close_code: u16,
    pub close_reason: String,
    /// Delay before answering (escalating delay for exempt clients).
    pub delay_ms: u64,
}

impl Rejection {
    pub(super) fn with_close(reason: RejectReason, error: ErrorShape, code: u16) -> Self {
        let close_reason = truncate_utf8(&error.message, 120).to_string();
        Rejection {
            reason,
            error: Some(error),
            close_code: code,
            close_reason,
            delay_ms: 0,
        }
    }
    pub(super) fn policy(reason: RejectReason, error: ErrorShape) -> Self {
        Self::with_close(reason, error, 1008)
    }
}

/// How a device proof failed (protocol §2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProof {
    PublicKeyInvalid,
    IdMismatch,
    SignatureExpired,
    NonceRequired,
    NonceMismatch,
    SignatureInvalid,
}

impl DeviceProof {
    /// The wire code, the message and `details.reason` (OpenClaw's).
    fn wording(self) -> (&'static str, &'static str, &'static str) {
        match self {
            DeviceProof::PublicKeyInvalid => (
                "DEVICE_AUTH_PUBLIC_KEY_INVALID",
                "device public key invalid",
                "device-public-key",
            ),
            DeviceProof::IdMismatch => (
                "DEVICE_AUTH_DEVICE_ID_MISMATCH",
                "device identity mismatch",
                "device-id-mismatch",
            ),
            DeviceProof::SignatureExpired => (
                "DEVICE_AUTH_SIGNATURE_EXPIRED",
                "device signature expired",
                "device-signature-stale",
            ),
            DeviceProof::NonceRequired => (
                "DEVICE_AUTH_NONCE_REQUIRED",
                "device nonce required",
                "device-nonce-missing",
            ),
            DeviceProof::NonceMismatch => (
                "DEVICE_AUTH_NONCE_MISMATCH",
                "device nonce mismatch",
                "device-nonce-mismatch",
            ),
            DeviceProof::SignatureInvalid => (
                "DEVICE_AUTH_SIGNATURE_INVALID",
                "device signature invalid",
                "device-signature",
            ),
        }
    }
}

/// Why a connect was refused; `code()` is the wire code the client sees
/// (`error.details.code`, or `error.code` where there is no detail code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// Malformed connect params, a first request that is not `connect`,
    /// an unknown role.
    InvalidRequest,
    ProtocolMismatch,
    OriginNotAllowed,
    ControlUiDeviceIdentityRequired,
    DeviceIdentityRequired,
    Auth(AuthReason),
    /// Trusted-proxy auth did not take the proxy's word.
    TrustedProxy(crate::gateway::trusted_proxy::ProxyDenial),
    Device(DeviceProof),
    PairingRequired,
    PairingQueueFull,
    /// Storage or another internal failure.
    Unavailable,
}

impl RejectReason {
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::InvalidRequest => "INVALID_REQUEST",
            RejectReason::ProtocolMismatch => "PROTOCOL_MISMATCH",
            RejectReason::OriginNotAllowed => "CONTROL_UI_ORIGIN_NOT_ALLOWED",
            RejectReason::ControlUiDeviceIdentityRequired => "CONTROL_UI_DEVICE_IDENTITY_REQUIRED",
            RejectReason::DeviceIdentityRequired => "DEVICE_IDENTITY_REQUIRED",
            RejectReason::Auth(r) => r.detail_code(),
            RejectReason::TrustedProxy(d) => d.code(),
            RejectReason::Device(d) => d.wording().0,
            RejectReason::PairingRequired => "PAIRING_REQUIRED",
            RejectReason::PairingQueueFull => "PAIRING_QUEUE_FULL",
            RejectReason::Unavailable => "UNAVAILABLE",
        }
    }

    /// The rejection log's reason: the wire code, except for trusted-proxy
    /// auth, whose wire code (mostly `AUTH_UNAUTHORIZED`) does not say which
    /// check failed; there it is OpenClaw's authReason without the header
    /// name (the message names it), so that `clawgate doctor` can explain it.
    pub fn log_code(self) -> &'static str {
        match self {
            RejectReason::TrustedProxy(d) => d.log_code(),
            other => other.code(),
        }
    }

    /// Whether the rejection log keeps it (a pairing wait is not a fault:
    /// it has its own pending request).
    pub fn logged(self) -> bool {
        !matches!(
            self,
            RejectReason::PairingRequired | RejectReason::PairingQueueFull
        )
    }
}

pub(super) fn invalid_params(msg: String) -> Rejection {
    Rejection::policy(
        RejectReason::InvalidRequest,
        ErrorShape::invalid(format!("invalid connect params: {msg}")),
    )
}

pub(super) fn auth_rejection(reason: AuthReason, hint: HintKind, can_retry: bool) -> Rejection {
    let next = if can_retry {
        "retry_with_device_token"
    } else {
        match reason {
            AuthReason::TokenMissing
            | AuthReason::PasswordMissing
            | AuthReason::TokenMissingConfig
            | AuthReason::PasswordMissingConfig => "update_auth_configuration",
            AuthReason::RateLimited => "wait_then_retry",
            AuthReason::ScopeMismatch => "review_auth_configuration",
            _ => "update_auth_credentials",
        }
    };
    let err = ErrorShape::invalid(reason.message(hint)).with_details(json!({
        "code": reason.detail_code(),
        "authReason": reason.as_str(),
        "canRetryWithDeviceToken": can_retry,
        "recommendedNextStep": next,
    }));
    Rejection::policy(RejectReason::Auth(reason), err)
}

/// Trusted-proxy auth refused the proxy's word: OpenClaw's codes, with a
/// message that names the failed check.
pub(super) fn proxy_rejection(d: &Denied) -> Rejection {
    let err = ErrorShape::invalid(d.message()).with_details(json!({
        "code": d.why.code(),
        "authReason": d.reason(),
        "canRetryWithDeviceToken": false,
        "recommendedNextStep": "review_auth_configuration",
    }));
    Rejection::policy(RejectReason::TrustedProxy(d.why), err)
}

pub(super) fn rate_limited(retry_after_ms: u64, hint: HintKind) -> Rejection {
    let mut r = auth_rejection(AuthReason::RateLimited, hint, false);
    if let Some(e) = r.error.as_mut() {
        e.retryable = Some(true);
        e.retry_after_ms = Some(retry_after_ms);
    }
    r
}

pub(super) fn device_error(why: DeviceProof) -> Rejection {
    let (code, message, reason) = why.wording();
    Rejection::policy(
        RejectReason::Device(why),
        ErrorShape::invalid(message).with_details(json!({"code": code, "reason": reason})),
    )
}

pub(super) fn internal(msg: &str) -> Rejection {
    tracing::error!(error = msg, "connect failed on an internal error");
    let mut err = ErrorShape::new("UNAVAILABLE", "gateway storage unavailable; retry shortly");
    err.retryable = Some(true);
    err.retry_after_ms = Some(1000);
    Rejection {
        reason: RejectReason::Unavailable,
        error: Some(err),
        close_code: 1011,
        close_reason: "gateway message handler unavailable".into(),
        delay_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_have_distinct_wire_codes() {
        use super::RejectReason as R;
        let all = [
            R::InvalidRequest,
            R::ProtocolMismatch,
            R::OriginNotAllowed,
            R::ControlUiDeviceIdentityRequired,
            R::DeviceIdentityRequired,
            R::Auth(AuthReason::TokenMismatch),
            R::TrustedProxy(crate::gateway::trusted_proxy::ProxyDenial::MissingHeader),
            R::Device(DeviceProof::PublicKeyInvalid),
            R::Device(DeviceProof::IdMismatch),
            R::Device(DeviceProof::SignatureExpired),
            R::Device(DeviceProof::NonceRequired),
            R::Device(DeviceProof::NonceMismatch),
            R::Device(DeviceProof::SignatureInvalid),
            R::PairingRequired,
            R::PairingQueueFull,
            R::Unavailable,
        ];
        let codes: std::collections::BTreeSet<&str> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            R::Auth(AuthReason::TokenMismatch).code(),
            "AUTH_TOKEN_MISMATCH"
        );
        assert!(!R::PairingRequired.logged() && R::ProtocolMismatch.logged());
        use crate::gateway::trusted_proxy::ProxyDenial as P;
        assert_eq!(
            R::TrustedProxy(P::MissingHeader).log_code(),
            "trusted_proxy_missing_header"
        );
        assert_eq!(
            R::TrustedProxy(P::UserMissing).log_code(),
            "trusted_proxy_user_missing"
        );
        assert_eq!(R::ProtocolMismatch.log_code(), "PROTOCOL_MISMATCH");
    }
}
