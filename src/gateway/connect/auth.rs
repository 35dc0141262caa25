//! Who the connect is (protocol §3): the failed-auth limiter around the
//! whole step (§7), the shared secret, the missing-device policy (§3.7) and
//! the device-token fallback (§3.6). The result is an [`AuthOutcome`].

use serde_json::json;

use super::locality::{locality, Locality};
use super::params::{is_control_ui, ClientKind, Params, Presented};
use super::proof::Proven;
use super::reject::{
    auth_rejection, internal, proxy_rejection, rate_limited, RejectReason, Rejection,
};
use super::secret::{self, SharedSecret};
use super::ConnCtx;
use crate::config::{AuthMode, GatewayConfig};
use crate::gateway::auth::{AuthMethod, AuthReason, HintKind, LimitCheck, LimitKey};
use crate::gateway::frames::ErrorShape;
use crate::gateway::pairing::{self, TokenCheck};
use crate::gateway::scopes::Role;
use crate::gateway::trusted_proxy;
use crate::gateway::GatewayState;
use crate::net::Attribution;
use crate::store::DeviceRecord;

/// The failed-auth limiter for one connect: which bucket it counts in, and
/// the wording its refusals use.
pub(super) struct Gate {
    key: LimitKey,
    exempt: bool,
    hint: HintKind,
    pub now: u64,
}

impl Gate {
    /// Picks the bucket and refuses a locked one before any secret is looked at.
    pub(super) fn enter(
        state: &GatewayState,
        g: &GatewayConfig,
        ctx: &ConnCtx,
        p: &Params<'_>,
        now: u64,
    ) -> Result<Gate, Rejection> {
        let browser = ctx.origin.is_some() || is_control_ui(p);
        let hint = if is_control_ui(p) {
            HintKind::Ui
        } else if ctx.addr.kind == Attribution::DirectLocal {
            HintKind::CliLocal
        } else {
            HintKind::CliRemote
        };
        let (key, exempt) = match (&ctx.origin, browser) {
            (Some(o), true) if ctx.addr.client.is_loopback() => {
                (LimitKey::LoopbackOrigin(o.to_lowercase()), false)
            }
            (_, true) => (LimitKey::Browser(ctx.addr.client), false),
            _ => (
                LimitKey::SharedSecret(ctx.addr.client),
                g.auth.rate_limit.exempt_loopback && ctx.addr.client.is_loopback(),
            ),
        };
        if p.presented.any() {
            if let LimitCheck::Locked { retry_after_ms } = state.limiter.check(&key, now) {
                return Err(rate_limited(retry_after_ms, hint));
            }
        }
        Ok(Gate {
            key,
            exempt,
            hint,
            now,
        })
    }

    /// A refusal for `reason`, counted against the bucket when it is a failure.
    fn fail(
        &self,
        state: &GatewayState,
        g: &GatewayConfig,
        reason: AuthReason,
        can_retry: bool,
    ) -> Rejection {
        let mut delay = 0;
        if reason.counts_as_failure() {
            let (check, d) =
                state
                    .limiter
                    .record_failure(&self.key, self.now, &g.auth.rate_limit, self.exempt);
            delay = d;
            if let LimitCheck::Locked { retry_after_ms } = check {
                return rate_limited(retry_after_ms, self.hint);
            }
        }
        let mut r = auth_rejection(reason, self.hint, can_retry);
        r.delay_ms = delay;
        r
    }

    /// The connect proved a credential: its bucket starts over.
    pub(super) fn passed(&self, state: &GatewayState, auth: &AuthOutcome) {
        if auth.proved_credential {
            state.limiter.reset(&self.key);
        }
    }
}

/// Whether the pairing decision runs for an authenticated connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairingStep {
    /// A proven device: paired, or asked to pair.
    Decide,
    /// No device identity (§3.7), or `allowInsecureAuth` with the shared
    /// secret: admitted as it is, no device token.
    Skip,
}

/// How a connect authenticated.
pub(super) struct AuthOutcome {
    pub method: AuthMethod,
    /// The scopes the session gets (a device-less operator may lose them).
    pub scopes: Vec<String>,
    /// The digest of the shared secret that matched.
    pub shared_digest: Option<[u8; 32]>,
    /// A presented device token that verified, with its issue time.
    pub device_token: Option<(String, u64)>,
    pub locality: Locality,
    pub pairing: PairingStep,
    /// A secret or a device token matched (resets the limiter).
    proved_credential: bool,
    /// The user a trusted proxy vouched for.
    pub user: Option<String>,
}

pub(super) struct AuthInput<'a, 'p> {
    pub ctx: &'a ConnCtx,
    pub p: &'a Params<'p>,
    pub role: Role,
    pub gate: &'a Gate,
    /// The proven device and its stored record, if the connect has one.
    pub device: Option<(&'a Proven, Option<&'a DeviceRecord>)>,
}

pub(super) fn authenticate(
    state: &GatewayState,
    g: &GatewayConfig,
    input: AuthInput<'_, '_>,
) -> Result<AuthOutcome, Rejection> {
    let AuthInput {
        ctx,
        p,
        role,
        gate,
        device,
    } = input;
    let presented = p.presented;
    let mut secret = secret::check(&g.auth, presented.token, presented.password, gate.now);
    if g.auth.mode == AuthMode::TrustedProxy && ctx.addr.kind != Attribution::DirectLocal {
        // The password is OpenClaw's fallback for local tools only.
        secret = SharedSecret {
            ok: false,
            reason: None,
            digest: None,
        };
    }
    let auth_none = g.auth.mode == AuthMode::None;
    // Trusted-proxy mode (§3.4): the proxy's word, else (on loopback only)
    // the password, else a device token; a refusal names the failed check.
    let proxy = proxy_check(g, ctx);
    let (user, denied) = match proxy {
        Some(Ok(user)) => (Some(user), None),
        Some(Err(d)) => (None, Some(d)),
        None => (None, None),
    };
    if let Some(d) = &denied {
        let local_password = ctx.addr.kind == Attribution::DirectLocal
            && g.auth.password.is_some()
            && presented.password.is_some();
        if local_password && !secret.ok {
            return Err(gate.fail(state, g, AuthReason::PasswordMismatch, false));
        }
        if !local_password && device.is_none() {
            return Err(proxy_rejection(d));
        }
    }
    let shared_ok = secret.ok || user.is_some();
    let loc = locality(ctx, p, shared_ok);
    let insecure_bypass = g.control_ui.allow_insecure_auth && secret.ok;
    let mut out = AuthOutcome {
        method: if user.is_some() {
            AuthMethod::TrustedProxy
        } else if secret.ok && g.auth.mode == AuthMode::TrustedProxy {
            AuthMethod::Password
        } else if secret.ok {
            AuthMethod::for_mode(g.auth.mode)
        } else {
            AuthMethod::None
        },
        scopes: p.scopes.clone(),
        shared_digest: secret.digest,
        device_token: None,
        locality: loc,
        pairing: if insecure_bypass {
            PairingStep::Skip
        } else {
            PairingStep::Decide
        },
        proved_credential: shared_ok,
        user,
    };
    let Some((proven, record)) = device else {
        out.pairing = PairingStep::Skip;
        let shared = SharedSecret {
            ok: shared_ok,
            reason: secret.reason,
            digest: secret.digest,
        };
        deviceless(state, g, ctx, p, role, gate, &shared, &presented, &mut out)?;
        if !shared_ok && !auth_none {
            // Every device-less admission above needs the secret or no auth.
            return Err(internal(
                "a connect reached acceptance without an auth method",
            ));
        }
        return Ok(out);
    };
    if !shared_ok && !auth_none {
        // Device-token fallback (§3.6).
        let candidate = presented.device_token.or(presented.token);
        let check = candidate.map(|c| {
            pairing::verify_token(record, &proven.public_key, role.as_str(), c, &p.scopes)
        });
        match (check, candidate) {
            (Some(TokenCheck::Ok { issued_at_ms }), Some(c)) => {
                out.method = AuthMethod::DeviceToken;
                out.device_token = Some((c.to_string(), issued_at_ms));
                out.proved_credential = true;
            }
            (other, _) => {
                if other == Some(TokenCheck::ScopeMismatch) {
                    return Err(gate.fail(state, g, AuthReason::ScopeMismatch, false));
                }
                if presented.device_token.is_some() {
                    return Err(gate.fail(state, g, AuthReason::DeviceTokenMismatch, false));
                }
                if let Some(d) = &denied {
                    return Err(proxy_rejection(d));
                }
                let reason = secret.reason.unwrap_or(AuthReason::TokenMissing);
                let can_retry = reason == AuthReason::TokenMismatch;
                return Err(gate.fail(state, g, reason, can_retry));
            }
        }
    }
    Ok(out)
}

/// The trusted-proxy verdict, in that mode only.
fn proxy_check(g: &GatewayConfig, ctx: &ConnCtx) -> Option<Result<String, trusted_proxy::Denied>> {
    if g.auth.mode != AuthMode::TrustedProxy {
        return None;
    }
    let t = g.auth.trusted_proxy.as_ref()?;
    Some(trusted_proxy::authorize(
        &g.trusted_proxies,
        t,
        &trusted_proxy::Request {
            peer: ctx.addr.peer,
            attribution: ctx.addr.kind,
            headers: &ctx.identity,
        },
        trusted_proxy::is_own_address,
    ))
}

/// What the missing-device policy (§3.7) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deviceless {
    /// Admitted with the scopes it asked for.
    Admit,
    /// Admitted without scopes: a device-less operator outside the CLI's
    /// local cases.
    AdmitWithoutScopes,
    /// Refused as an authentication failure.
    AuthFailed(AuthReason),
    ControlUiIdentityRequired,
    IdentityRequired,
}

/// What the missing-device policy looks at.
#[derive(Debug, Clone, Copy)]
pub(super) struct DevicelessCase {
    /// `gateway-client` in `backend` mode (the gateway's own tools).
    pub backend_client: bool,
    /// `cli` in `cli` mode.
    pub cli_client: bool,
    pub control_ui: bool,
    pub origin: bool,
    pub locality: Locality,
    pub role: Role,
    pub secret_ok: bool,
    pub secret_reason: Option<AuthReason>,
    /// A token or password was presented.
    pub presented_secret: bool,
    pub auth_none: bool,
    /// `gateway.controlUi.allowInsecureAuth`.
    pub allow_insecure_auth: bool,
    /// A trusted proxy vouched for the user.
    pub proxy_ok: bool,
}

pub(super) fn deviceless_decision(c: &DevicelessCase) -> Deviceless {
    let backend_self = c.backend_client
        && matches!(
            c.locality,
            Locality::DirectLocal | Locality::SharedSecretLoopbackLocal
        )
        && !c.origin
        && (c.secret_ok || c.auth_none);
    if c.control_ui && c.proxy_ok && c.role == Role::Operator {
        // A browser that cannot make a device identity, vouched for by the
        // proxy: in without scopes (then identityScopes, §3.4).
        return Deviceless::AdmitWithoutScopes;
    }
    if backend_self || (c.allow_insecure_auth && c.secret_ok) {
        // allowInsecureAuth: the shared token is enough; scopes kept.
        return Deviceless::Admit;
    }
    if c.control_ui {
        let failed = c
            .secret_reason
            .filter(|_| !c.secret_ok && (c.presented_secret || !c.auth_none));
        if let Some(reason) = failed {
            // A tokenless browser gets AUTH_TOKEN_MISSING so the login form appears.
            let missing = matches!(
                reason,
                AuthReason::TokenMissing | AuthReason::PasswordMissing
            );
            if missing || reason.counts_as_failure() {
                return Deviceless::AuthFailed(reason);
            }
        }
        return Deviceless::ControlUiIdentityRequired;
    }
    if c.role == Role::Operator && c.secret_ok {
        let keep = c.cli_client
            && matches!(
                c.locality,
                Locality::DirectLocal | Locality::CliContainerLocal
            );
        return if keep {
            Deviceless::Admit
        } else {
            Deviceless::AdmitWithoutScopes
        };
    }
    match c.secret_reason.filter(|r| r.counts_as_failure()) {
        Some(reason) => Deviceless::AuthFailed(reason),
        None => Deviceless::IdentityRequired,
    }
}

/// Carries out the missing-device policy for a connect.
#[allow(clippy::too_many_arguments)]
fn deviceless(
    state: &GatewayState,
    g: &GatewayConfig,
    ctx: &ConnCtx,
    p: &Params<'_>,
    role: Role,
    gate: &Gate,
    secret: &SharedSecret,
    presented: &Presented<'_>,
    out: &mut AuthOutcome,
) -> Result<(), Rejection> {
    let case = DevicelessCase {
        backend_client: p.kind == ClientKind::Backend,
        cli_client: p.kind == ClientKind::Cli,
        control_ui: is_control_ui(p),
        origin: ctx.origin.is_some(),
        locality: out.locality,
        role,
        secret_ok: secret.ok,
        secret_reason: secret.reason,
        presented_secret: presented.token.is_some() || presented.password.is_some(),
        auth_none: g.auth.mode == AuthMode::None,
        allow_insecure_auth: g.control_ui.allow_insecure_auth,
        proxy_ok: out.user.is_some(),
    };
    match deviceless_decision(&case) {
        Deviceless::Admit => Ok(()),
        Deviceless::AdmitWithoutScopes => {
            out.scopes.clear();
            Ok(())
        }
        Deviceless::AuthFailed(reason) => Err(gate.fail(state, g, reason, false)),
        Deviceless::ControlUiIdentityRequired => {
            let msg = "control ui requires device identity (use HTTPS or localhost secure context)";
            let why = RejectReason::ControlUiDeviceIdentityRequired;
            Err(Rejection::policy(
                why,
                ErrorShape::invalid(msg).with_details(json!({"code": why.code()})),
            ))
        }
        Deviceless::IdentityRequired => {
            let why = RejectReason::DeviceIdentityRequired;
            let err = ErrorShape::new("NOT_PAIRED", "device identity required")
                .with_details(json!({"code": why.code()}));
            Err(Rejection::policy(why, err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthReason::{PasswordMissing, TokenMismatch, TokenMissing};
    use Deviceless::*;
    use Locality::{CliContainerLocal, DirectLocal, Remote, SharedSecretLoopbackLocal};

    /// A connect without a device: the CLI, by default local, with the
    /// right token.
    fn cli(locality: Locality) -> DevicelessCase {
        DevicelessCase {
            backend_client: false,
            cli_client: true,
            control_ui: false,
            origin: false,
            locality,
            role: Role::Operator,
            secret_ok: true,
            secret_reason: None,
            presented_secret: true,
            auth_none: false,
            allow_insecure_auth: false,
            proxy_ok: false,
        }
    }

    fn wrong_secret(mut c: DevicelessCase, reason: AuthReason) -> DevicelessCase {
        c.secret_ok = false;
        c.secret_reason = Some(reason);
        c
    }

    #[test]
    fn missing_device_table() {
        let backend = |loc| DevicelessCase {
            backend_client: true,
            cli_client: false,
            ..cli(loc)
        };
        let ui = |loc| DevicelessCase {
            cli_client: false,
            control_ui: true,
            origin: true,
            ..cli(loc)
        };
        let node = |loc| DevicelessCase {
            role: Role::Node,
            cli_client: false,
            ..cli(loc)
        };
        let insecure = |c: DevicelessCase| DevicelessCase {
            allow_insecure_auth: true,
            ..c
        };
        let no_auth = |c: DevicelessCase| DevicelessCase {
            secret_ok: false,
            secret_reason: None,
            presented_secret: false,
            auth_none: true,
            ..c
        };
        let tokenless = |c: DevicelessCase| DevicelessCase {
            presented_secret: false,
            ..wrong_secret(c, TokenMissing)
        };
        let table: &[(&str, DevicelessCase, Deviceless)] = &[
            // The CLI keeps its scopes only where it is local.
            ("local cli", cli(DirectLocal), Admit),
            ("container cli", cli(CliContainerLocal), Admit),
            ("remote cli", cli(Remote), AdmitWithoutScopes),
            (
                "remote cli, wrong token",
                wrong_secret(cli(Remote), TokenMismatch),
                AuthFailed(TokenMismatch),
            ),
            (
                "remote cli, no token",
                tokenless(cli(Remote)),
                IdentityRequired,
            ),
            // The gateway's own backend client, only locally.
            ("local backend", backend(DirectLocal), Admit),
            (
                "loopback backend",
                backend(SharedSecretLoopbackLocal),
                Admit,
            ),
            ("remote backend", backend(Remote), AdmitWithoutScopes),
            (
                "local backend, no auth",
                no_auth(backend(DirectLocal)),
                Admit,
            ),
            (
                "backend with an origin",
                DevicelessCase {
                    origin: true,
                    ..backend(DirectLocal)
                },
                AdmitWithoutScopes,
            ),
            // The Control UI needs a device unless allowInsecureAuth.
            ("ui with token", ui(Remote), ControlUiIdentityRequired),
            ("ui insecure with token", insecure(ui(Remote)), Admit),
            (
                "ui insecure wrong token",
                insecure(wrong_secret(ui(Remote), TokenMismatch)),
                AuthFailed(TokenMismatch),
            ),
            (
                "tokenless ui: login form",
                tokenless(ui(Remote)),
                AuthFailed(TokenMissing),
            ),
            (
                "passwordless ui: login form",
                wrong_secret(ui(Remote), PasswordMissing),
                AuthFailed(PasswordMissing),
            ),
            (
                "ui on a no-auth gateway",
                no_auth(ui(DirectLocal)),
                ControlUiIdentityRequired,
            ),
            // Other roles always need a device.
            ("node with token", node(DirectLocal), IdentityRequired),
            (
                "node wrong token",
                wrong_secret(node(DirectLocal), TokenMismatch),
                AuthFailed(TokenMismatch),
            ),
            (
                "node on a no-auth gateway",
                no_auth(node(DirectLocal)),
                IdentityRequired,
            ),
            ("insecure node with token", insecure(node(Remote)), Admit),
        ];
        for (name, case, want) in table {
            assert_eq!(deviceless_decision(case), *want, "{name}");
        }
    }
}
