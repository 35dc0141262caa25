//! The accepted connect: the session's record in the registry and the
//! `hello-ok` payload (protocol §1.8) as a `Serialize` struct.

use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::AuthOutcome;
use super::params::Params;
use super::proof::Proven;
use super::{Accepted, ConnCtx};
use crate::config::RuntimeConfig;
use crate::gateway::auth::AuthMethod;
use crate::gateway::registry::SessionInfo;
use crate::gateway::scopes::Role;
use crate::gateway::{GatewayState, COMPAT_VERSION, PROTOCOL_VERSION};
use crate::net::Attribution;
use crate::util::now_ms;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub protocol: u64,
    pub server: Server<'a>,
    /// Pre-serialized once: the method and event lists never change.
    pub features: &'a RawValue,
    pub snapshot: Snapshot,
    pub auth: HelloAuth<'a>,
    pub policy: Policy,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Server<'a> {
    pub version: &'static str,
    pub conn_id: &'a str,
    pub build_id: &'static str,
    pub boot_id: &'a str,
    pub control_ui_build_source: &'static str,
}

/// The minimal snapshot of protocol §1.8: clients fetch `health` and
/// `system-presence` when they want them, and every byte of hello-ok stays
/// allocated in each connection's write buffer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub presence: [(); 0],
    pub health: Empty,
    pub state_version: StateVersion,
    pub uptime_ms: u64,
    pub auth_mode: &'static str,
}

#[derive(Serialize)]
pub struct Empty {}

#[derive(Serialize)]
pub struct StateVersion {
    pub presence: u64,
    pub health: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAuth<'a> {
    pub method: AuthMethod,
    pub role: Role,
    pub scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub max_payload: usize,
    pub max_buffered_bytes: usize,
    pub tick_interval_ms: u64,
}

fn features() -> &'static RawValue {
    static FEATURES: OnceLock<Box<RawValue>> = OnceLock::new();
    FEATURES.get_or_init(|| {
        serde_json::value::to_raw_value(&crate::gateway::features()).expect("features serialize")
    })
}

/// What an accepted connect is made of.
pub(super) struct Admitted<'a, 'p> {
    pub ctx: &'a ConnCtx,
    pub p: &'a Params<'p>,
    pub role: Role,
    pub device: Option<Proven>,
    pub auth: AuthOutcome,
    /// The device token `hello-ok` hands out, with its issue time.
    pub token: Option<(String, u64)>,
}

/// Registers nothing yet: builds the session record and `hello-ok`.
pub(super) fn accept(state: &GatewayState, cfg: &RuntimeConfig, a: Admitted<'_, '_>) -> Accepted {
    let Admitted {
        ctx,
        p,
        role,
        device,
        auth,
        token,
    } = a;
    let g = &cfg.gateway;
    let device_id = device.map(|d| d.device_id);
    if let Some(id) = &device_id {
        state.note_seen(id, &ctx.addr.client);
    }
    let hello = HelloOk {
        kind: "hello-ok",
        protocol: PROTOCOL_VERSION,
        server: Server {
            version: COMPAT_VERSION,
            conn_id: &ctx.conn_id,
            build_id: concat!("clawgate-", env!("CARGO_PKG_VERSION")),
            boot_id: &state.boot_id,
            control_ui_build_source: "configured",
        },
        features: features(),
        snapshot: Snapshot {
            presence: [],
            health: Empty {},
            state_version: StateVersion {
                presence: 1,
                health: 1,
            },
            uptime_ms: state.started.elapsed().as_millis() as u64,
            auth_mode: g.auth.mode.as_str(),
        },
        auth: HelloAuth {
            method: auth.method,
            role,
            scopes: &auth.scopes,
            device_token: token.as_ref().map(|(t, _)| t.as_str()),
            issued_at_ms: token.as_ref().map(|(_, at)| *at),
        },
        policy: Policy {
            max_payload: g.limits.max_payload,
            max_buffered_bytes: g.limits.max_buffered_bytes,
            tick_interval_ms: g.limits.tick_interval_ms,
        },
    };
    // Only a bridged session needs the auth object apart from hello-ok.
    let auth_json = g
        .upstream
        .is_some()
        .then(|| serde_json::to_value(&hello.auth).expect("auth serializes"));
    let hello = serde_json::to_string(&hello).expect("hello-ok serializes");
    let info = Arc::new(SessionInfo {
        conn_id: ctx.conn_id.clone(),
        device_id,
        role,
        scopes: auth.scopes,
        auth_method: auth.method,
        shared_digest: auth.shared_digest,
        client_id: p.client_id.to_string(),
        client_mode: p.client_mode.to_string(),
        client_version: p.client_version.to_string(),
        platform: p.client_platform.to_string(),
        instance_id: p.instance_id.map(str::to_string),
        peer: ctx.addr.peer,
        client_ip: ctx.addr.client,
        origin: ctx.origin.clone(),
        host: ctx.origin.as_ref().and(ctx.host.clone()),
        direct_local: ctx.addr.kind == Attribution::DirectLocal,
        forwarded: !ctx.addr.proxy_headers.is_empty(),
        connected_at_ms: now_ms(),
        bridged: cfg.gateway.upstream.is_some(),
        user: auth.user,
    });
    Accepted {
        info,
        hello,
        auth: auth_json,
    }
}
