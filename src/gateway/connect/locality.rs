//! Pairing locality (protocol §4.3): whether a connect counts as local for
//! silent pairing, from its attribution, Host, Origin and client kind.

use super::origin::{host_of, is_loopback_host, is_private_host};
use super::params::{is_control_ui, ClientKind, Params};
use super::ConnCtx;
use crate::net::{is_private_or_loopback, Attribution};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Locality {
    DirectLocal,
    BrowserContainerLocal,
    CliContainerLocal,
    SharedSecretLoopbackLocal,
    Remote,
}

/// `shared_ok`: the connect proved the shared secret (the container-local
/// cases need it).
pub(super) fn locality(ctx: &ConnCtx, p: &Params<'_>, shared_ok: bool) -> Locality {
    if ctx.addr.kind == Attribution::DirectLocal {
        return Locality::DirectLocal;
    }
    let no_proxy = ctx.addr.proxy_headers.is_empty();
    let host = ctx.host.as_deref().map(host_of).unwrap_or_default();
    if shared_ok && no_proxy && ctx.addr.kind == Attribution::DirectRemote {
        if is_control_ui(p) {
            if let Some(origin) = &ctx.origin {
                if is_private_or_loopback(&ctx.addr.peer)
                    && is_loopback_host(&host)
                    && is_loopback_host(&host_of(origin))
                {
                    return Locality::BrowserContainerLocal;
                }
            }
        } else if ctx.origin.is_none() && ctx.addr.peer.is_loopback() && is_private_host(&host) {
            return if p.kind == ClientKind::Cli {
                Locality::CliContainerLocal
            } else {
                Locality::SharedSecretLoopbackLocal
            };
        }
    }
    Locality::Remote
}
