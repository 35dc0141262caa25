//! Applying configuration changes while running (design §6).
//!
//! Every change — a file edit, `SIGHUP`, `POST /admin/v1/config/reload`, an
//! admin API write — goes through one lock and one pipeline: read the file
//! (hash; unchanged = no-op) → parse → validate → build a new immutable
//! snapshot → start a new listener when the port or bind changed → swap →
//! bump the revision → close the sessions whose authority changed → log,
//! audit and publish an event. A snapshot that fails validation is never
//! applied; the last good one keeps serving and the error is reported.

use super::ops::AdminEventName;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::listener::{self, Listener, Retired};
use super::GatewayState;
use crate::config::{self, explain, settings, AuthMode, ConfigError, RuntimeConfig};
use crate::store;
use crate::util::now_ms;
use redb::Durability;

/// What a reload did (`result` in reports and the status; the wire strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// The new configuration is serving.
    Applied,
    /// Nothing changed.
    #[default]
    Unchanged,
    /// The new configuration was refused; the last good one keeps serving.
    Failed,
    /// A file change seen with `gateway.reload.mode: off`.
    NotApplied,
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A file event (after the settle window).
    File,
    /// The polling fallback.
    Poll,
    /// `SIGHUP`.
    Signal,
    /// `POST /admin/v1/config/reload`.
    Api,
    /// An admin API write (overrides changed); the file is not re-read.
    Write,
    /// A shared-token grace window ended.
    GraceEnd,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::File => "file",
            Trigger::Poll => "poll",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
            Trigger::Write => "write",
            Trigger::GraceEnd => "grace-end",
        }
    }
    /// File events and polling: subject to `gateway.reload.mode` and skipped
    /// when the content is unchanged.
    fn passive(self) -> bool {
        matches!(self, Trigger::File | Trigger::Poll)
    }
    fn reads_file(self) -> bool {
        matches!(
            self,
            Trigger::File | Trigger::Poll | Trigger::Signal | Trigger::Api
        )
    }
}

/// The outcome of one reload.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub result: ReloadOutcome,
    pub revision: u64,
    pub changed: Vec<&'static str>,
    /// File edits to keys a higher layer (override, env, flag) shadows.
    pub shadowed: Vec<Value>,
    pub restart_required: Vec<Value>,
    pub closed_sessions: usize,
    pub error: Option<Value>,
    pub listener_error: Option<String>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        json!({
            "result": self.result,
            "revision": self.revision,
            "changed": self.changed,
            "shadowed": self.shadowed,
            "restartRequired": self.restart_required,
            "closedSessions": self.closed_sessions,
            "error": self.error,
            "listenerError": self.listener_error,
        })
    }
}

/// A config problem as JSON (file, line, column, key, message).
pub fn error_json(e: &ConfigError) -> Value {
    json!({
        "message": e.to_string().trim_end(),
        "issues": e.issues.iter().map(|i| json!({
            "code": i.code.as_str(),
            "key": i.path,
            "message": i.message,
            "file": i.file.as_ref().map(|f| f.display().to_string()),
            "line": i.line,
            "column": i.column,
            "text": i.to_string(),
        })).collect::<Vec<_>>(),
    })
}

/// What was bound at start and can only change with a restart.
#[derive(Debug, Clone)]
struct Fixed {
    /// The configuration the process started with.
    start: Arc<RuntimeConfig>,
    /// The digest of the admin token in use (configured or generated).
    admin_token: [u8; 32],
}

const ADMIN_TOKEN: &str = "gateway.admin.token";

#[derive(Debug, Clone, Default)]
struct Status {
    revision: u64,
    loaded_at_ms: u64,
    last_trigger: &'static str,
    last_result: ReloadOutcome,
    last_attempt_at_ms: u64,
    last_changed: Vec<&'static str>,
    last_error: Option<Value>,
    last_error_at_ms: Option<u64>,
    file_pending: Option<Value>,
    shadowed_changes: Vec<Value>,
    restart_required: Vec<Value>,
    listener_error: Option<String>,
    watch: Value,
}

/// State only touched under the config lock.
#[derive(Default)]
pub struct Inner {
    active: Option<Listener>,
    retired: Vec<Retired>,
    /// Hash of the file content last looked at (good or bad), so a broken
    /// file is reported once, not at every poll.
    seen: Option<String>,
    fixed: Option<Fixed>,
}

/// Proof that the config lock is held.
pub struct ConfigGuard<'a>(tokio::sync::MutexGuard<'a, Inner>);

/// The reload machinery's shared state (inside [`GatewayState`]).
#[derive(Default)]
pub struct Control {
    inner: tokio::sync::Mutex<Inner>,
    status: Mutex<Status>,
}

impl Control {
    /// Takes the config lock: every config change holds it.
    pub async fn lock(&self) -> ConfigGuard<'_> {
        ConfigGuard(self.inner.lock().await)
    }

    /// Installs the first gateway listener and records what needs a restart
    /// to change.
    pub async fn install(&self, l: Listener, cfg: &RuntimeConfig, admin_token: [u8; 32]) {
        let mut inner = self.inner.lock().await;
        inner.seen = cfg.source_hash.clone();
        inner.fixed = Some(Fixed {
            start: Arc::new(cfg.clone()),
            admin_token,
        });
        inner.active = Some(l);
        let mut st = self.status.lock().expect("status lock");
        st.revision = 1;
        st.loaded_at_ms = now_ms();
        st.last_trigger = "start";
        st.last_result = ReloadOutcome::Applied;
    }

    /// Where the gateway listens now.
    pub async fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.lock().await.active.as_ref().map(|l| l.addr)
    }

    /// Stops the listener (for shutdown).
    pub async fn stop_listeners(&self) {
        let mut inner = self.inner.lock().await;
        if let Some(l) = inner.active.take() {
            l.stop().await;
        }
    }

    pub fn set_watch(&self, watch: Value) {
        self.status.lock().expect("status lock").watch = watch;
    }

    pub fn revision(&self) -> u64 {
        self.status.lock().expect("status lock").revision
    }

    /// `GET /admin/v1/config/status`.
    pub async fn status_json(&self, cfg: &RuntimeConfig) -> Value {
        let (addrs, retired) = {
            let inner = self.inner.lock().await;
            (
                inner.active.as_ref().map(|l| l.addr.to_string()),
                inner
                    .retired
                    .iter()
                    .map(|l| l.addr.to_string())
                    .collect::<Vec<_>>(),
            )
        };
        let st = self.status.lock().expect("status lock").clone();
        json!({
            "revision": st.revision,
            "loadedAtMs": st.loaded_at_ms,
            "lastTrigger": st.last_trigger,
            "lastResult": st.last_result,
            "lastAttemptAtMs": st.last_attempt_at_ms,
            "lastChanged": st.last_changed,
            "lastError": st.last_error,
            "lastErrorAtMs": st.last_error_at_ms,
            "file": cfg.file.as_ref().map(|f| f.display().to_string()),
            "clawgateFile": cfg.own_file.as_ref().map(|f| f.display().to_string()),
            "sourceHash": cfg.source_hash,
            "reloadMode": explain::value_of(cfg, "gateway.reload.mode"),
            "fileChangeNotApplied": st.file_pending,
            "shadowedChanges": st.shadowed_changes,
            "restartRequired": st.restart_required,
            "gatewayAddr": addrs,
            "drainingListeners": retired,
            "listenerError": st.listener_error,
            "watch": st.watch,
            "warnings": cfg.warnings,
        })
    }
}

/// The snapshot the running sources would give with other overrides and/or
/// another file layer (validation only; nothing is applied or created).
pub fn candidate(
    gw: &GatewayState,
    overrides: Option<Vec<crate::store::OverrideRecord>>,
    file: Option<config::FileLayer>,
) -> Result<RuntimeConfig, ConfigError> {
    let cur = gw.config.load_full();
    let mut src = (*cur.sources).clone();
    src.opts.generate_token = false;
    if let Some(o) = overrides {
        src.overrides = o;
    }
    if let Some(f) = file {
        src.file = Some(f);
    }
    let mut c = config::build(src)?;
    // Keep the generated token in force (validation does not generate one).
    if c.gateway.auth.token.is_none() && c.gateway.auth.mode == AuthMode::Token {
        c.gateway.auth.token = cur.gateway.auth.token.clone();
        c.gateway.auth.token_source = cur.gateway.auth.token_source.clone();
    }
    Ok(c)
}

/// Re-reads the file (for triggers that read it) and applies the result.
pub async fn reload(gw: &Arc<GatewayState>, trigger: Trigger, actor: &str) -> Report {
    let mut guard = gw.control.lock().await;
    rebuild(gw, &mut guard, trigger, actor).await
}

fn fail(gw: &GatewayState, trigger: Trigger, e: &ConfigError, passive: bool) -> Report {
    let err = error_json(e);
    let revision = {
        let mut st = gw.control.status.lock().expect("status lock");
        st.last_trigger = trigger.as_str();
        st.last_result = ReloadOutcome::Failed;
        st.last_attempt_at_ms = now_ms();
        st.last_error = Some(err.clone());
        st.last_error_at_ms = Some(now_ms());
        st.revision
    };
    let what = if passive {
        "config change not applied"
    } else {
        "config reload refused"
    };
    tracing::error!(
        trigger = trigger.as_str(),
        "{what}; the last good configuration keeps serving:\n{}",
        e.to_string().trim_end()
    );
    gw.emit(
        AdminEventName::ConfigReloadFailed,
        json!({"trigger": trigger.as_str(), "revision": revision, "error": err, "ts": now_ms()}),
    );
    Report {
        result: ReloadOutcome::Failed,
        revision,
        error: Some(err),
        ..Default::default()
    }
}

/// Builds a new snapshot from the file (when the trigger reads it), the
/// environment, the stored overrides and the flags, and applies it. The
/// caller holds the config lock.
pub async fn rebuild(
    gw: &Arc<GatewayState>,
    guard: &mut ConfigGuard<'_>,
    trigger: Trigger,
    actor: &str,
) -> Report {
    let inner = &mut guard.0;
    let cur = gw.config.load_full();
    let mut src = (*cur.sources).clone();
    if trigger.reads_file() {
        let read = config::read_file_layer(src.file_path.as_deref())
            .and_then(|f| config::read_file_layer(src.own_path.as_deref()).map(|o| (f, o)));
        let (file, own) = match read {
            Ok(f) => f,
            Err(e) => {
                let key = format!("error:{e}");
                if trigger.passive() && inner.seen.as_deref() == Some(key.as_str()) {
                    return unchanged(gw);
                }
                inner.seen = Some(key);
                return fail(gw, trigger, &e, trigger.passive());
            }
        };
        let hash = config::combined_hash(file.as_ref(), own.as_ref());
        let empty = [file.as_ref(), own.as_ref()]
            .into_iter()
            .flatten()
            .find(|f| f.text.trim().is_empty());
        if let Some(f) = empty {
            // Half of a truncate-then-write, or an accident: never "apply" an
            // empty file (it would drop the token and every other setting).
            if trigger.passive() && inner.seen == hash {
                return unchanged(gw);
            }
            inner.seen = hash.clone();
            let mut issue = config::Issue::new(
                config::ConfigCode::Syntax,
                "",
                "the file is empty (an editor may still be writing it); write {} to run on the defaults",
            );
            issue.file = Some(f.path.clone());
            return fail(gw, trigger, &ConfigError::single(issue), trigger.passive());
        }
        if trigger.passive() {
            if hash.is_some() && hash == inner.seen {
                return unchanged(gw);
            }
            inner.seen = hash.clone();
            if hash == cur.source_hash {
                // Back to the content in force (e.g. a broken edit undone).
                let mut st = gw.control.status.lock().expect("status lock");
                if st.last_error.take().is_some() {
                    tracing::info!("the config file is back to the content in force");
                }
                st.file_pending = None;
                drop(st);
                return unchanged(gw);
            }
        } else {
            inner.seen = hash.clone();
        }
        src.file = file;
        src.own = own;
    }
    src.overrides = match gw.store.overrides() {
        Ok(o) => o,
        Err(e) => {
            let e = ConfigError::single(config::Issue::new(
                config::ConfigCode::StateDir,
                "",
                format!("could not read the runtime overrides: {e}"),
            ));
            return fail(gw, trigger, &e, trigger.passive());
        }
    };
    if trigger.reads_file()
        && !trigger.passive()
        && config::combined_hash(src.file.as_ref(), src.own.as_ref()) == cur.source_hash
        && src.overrides == cur.sources.overrides
    {
        // An explicit reload of the content in force: nothing to do.
        let mut st = gw.control.status.lock().expect("status lock");
        st.last_error = None;
        st.file_pending = None;
        st.last_trigger = trigger.as_str();
        st.last_result = ReloadOutcome::Unchanged;
        st.last_attempt_at_ms = now_ms();
        drop(st);
        return unchanged(gw);
    }
    let new = match config::build(src) {
        Ok(c) => c,
        Err(e) => return fail(gw, trigger, &e, trigger.passive()),
    };
    let changed = explain::changed_keys(&cur, &new);
    let mut file_changed = explain::file_changed_keys(
        cur.sources.file.as_ref().map(|f| &f.value),
        new.sources.file.as_ref().map(|f| &f.value),
    );
    for k in explain::file_changed_keys(
        cur.sources.own.as_ref().map(|f| &f.value),
        new.sources.own.as_ref().map(|f| &f.value),
    ) {
        if !file_changed.contains(&k) {
            file_changed.push(k);
        }
    }
    if trigger.passive() && cur.gateway.reload_mode == config::ReloadMode::Off {
        let pending = json!({
            "detectedAtMs": now_ms(),
            "sourceHash": new.source_hash,
            "changed": changed,
            "hint": "gateway.reload.mode is off: apply with `clawgate config reload`, POST /admin/v1/config/reload or SIGHUP",
        });
        let revision = {
            let mut st = gw.control.status.lock().expect("status lock");
            st.file_pending = Some(pending.clone());
            st.last_trigger = trigger.as_str();
            st.last_result = ReloadOutcome::NotApplied;
            st.last_attempt_at_ms = now_ms();
            st.revision
        };
        tracing::warn!(changed = ?changed, "the config file changed; not applied because gateway.reload.mode is off");
        gw.emit(
            AdminEventName::ConfigChanged,
            json!({"revision": revision, "pending": pending, "ts": now_ms()}),
        );
        return Report {
            result: ReloadOutcome::NotApplied,
            revision,
            changed,
            ..Default::default()
        };
    }
    apply(gw, inner, cur, new, changed, file_changed, trigger, actor).await
}

fn unchanged(gw: &GatewayState) -> Report {
    let st = gw.control.status.lock().expect("status lock");
    Report {
        result: ReloadOutcome::Unchanged,
        revision: st.revision,
        ..Default::default()
    }
}

/// The restart-only settings (from the settings registry) whose configured
/// value differs from the one bound at start.
fn restart_required(fixed: Option<&Fixed>, new: &RuntimeConfig) -> Vec<Value> {
    let Some(f) = fixed else { return vec![] };
    let mut out = vec![];
    for s in settings::restart_only() {
        let entry = if s.key == ADMIN_TOKEN {
            // The running admin token may be a generated one; only a
            // configured token that differs from it needs a restart.
            let changed = new
                .gateway
                .admin
                .token
                .as_ref()
                .is_some_and(|t| t.digest() != &f.admin_token);
            changed.then(|| (json!(explain::REDACTED), json!("<changed>")))
        } else {
            let running = explain::value_of(&f.start, s.key);
            let configured = explain::value_of(new, s.key);
            (running != configured).then_some((running, configured))
        };
        if let Some((running, configured)) = entry {
            out.push(json!({"key": s.key, "running": running, "configured": configured}));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    gw: &Arc<GatewayState>,
    inner: &mut Inner,
    cur: Arc<RuntimeConfig>,
    new: RuntimeConfig,
    changed: Vec<&'static str>,
    file_changed: Vec<&'static str>,
    trigger: Trigger,
    actor: &str,
) -> Report {
    // File edits that a higher layer shadows: reported, never silently dropped.
    let prov = explain::Provenance::new(&new);
    let shadowed: Vec<Value> = file_changed
        .iter()
        .filter_map(|k| {
            let source = prov.source(k);
            (source["kind"] != "file" && source["kind"] != "default").then(|| {
                let release = explain::release_hint(k, &source);
                json!({"key": k, "source": source, "release": release})
            })
        })
        .collect();
    drop(prov);
    for s in &shadowed {
        tracing::warn!(
            key = s["key"].as_str().unwrap_or(""),
            "the config file changed this key, but {} sets it; to give the file control: {}",
            s["source"]["kind"].as_str().unwrap_or("another source"),
            s["release"].as_str().unwrap_or("")
        );
    }
    let restart = restart_required(inner.fixed.as_ref(), &new);
    for r in &restart {
        tracing::warn!(
            key = r["key"].as_str().unwrap_or(""),
            "this setting changes only at the next restart"
        );
    }

    // Port or bind: bind the new address before releasing the old one.
    let want = (new.gateway.bind, new.gateway.port);
    let mut listener_error = None;
    let mut started = None;
    if inner.active.as_ref().is_some_and(|l| l.spec != want) {
        let workers = listener::workers(new.gateway.limits.workers);
        match listener::start(gw.clone(), want.0, want.1, workers) {
            Ok(l) => started = Some(l),
            Err(e) => {
                let old = inner
                    .active
                    .as_ref()
                    .map(|l| l.addr.to_string())
                    .unwrap_or_default();
                let msg = format!(
                    "cannot listen on {}: {e}; still serving on {old}",
                    std::net::SocketAddr::new(want.0, want.1)
                );
                tracing::error!("{msg}");
                listener_error = Some(msg);
            }
        }
    }

    let new = Arc::new(new);
    gw.config.store(new.clone());
    let revision = {
        let mut st = gw.control.status.lock().expect("status lock");
        st.revision += 1;
        st.revision
    };

    let mut new_addr = None;
    if let Some(l) = started {
        new_addr = Some(l.addr);
        if let Some(old) = inner.active.replace(l) {
            tracing::info!(old = %old.addr, "stopping the old gateway listener; its sessions stay until they disconnect");
            inner.retired.push(old.retire().await);
            reap_when_idle(Arc::downgrade(gw));
        }
        if let Some(addr) = new_addr {
            tracing::info!(%addr, "gateway listening on the new address");
            crate::write_runtime_file(&new.state_dir, addr, gw.admin_addr());
        }
    }

    let closed = reauthorise(gw, &cur, &new);
    if let (Some((p, until)), prev) = (
        new.gateway.auth.previous_token,
        cur.gateway.auth.previous_token,
    ) {
        if prev != Some((p, until)) {
            schedule_grace_end(gw.clone(), until);
        }
    }
    if changed.contains(&"logging.level") {
        if let Some(f) = crate::logging::apply_level(new.log_level.as_deref()) {
            tracing::info!(filter = f, "log level changed");
        }
    }
    for w in new.warnings.iter().filter(|w| !cur.warnings.contains(w)) {
        tracing::warn!("{w}");
    }

    {
        let mut st = gw.control.status.lock().expect("status lock");
        st.loaded_at_ms = now_ms();
        st.last_trigger = trigger.as_str();
        st.last_result = ReloadOutcome::Applied;
        st.last_attempt_at_ms = now_ms();
        st.last_changed = changed.clone();
        st.last_error = None;
        st.file_pending = None;
        if trigger.reads_file() || !shadowed.is_empty() {
            st.shadowed_changes = shadowed.clone();
        }
        st.restart_required = restart.clone();
        if new_addr.is_some()
            || listener_error.is_some()
            || inner.active.as_ref().is_some_and(|l| l.spec == want)
        {
            st.listener_error = listener_error.clone();
        }
    }
    if !changed.is_empty() || trigger.reads_file() {
        tracing::info!(
            revision,
            trigger = trigger.as_str(),
            closed_sessions = closed,
            "configuration applied{}",
            if changed.is_empty() {
                " (no effective change)".to_string()
            } else {
                format!(": {}", changed.join(", "))
            }
        );
    }
    // Admin API writes audit their own action.
    if !changed.is_empty() && trigger != Trigger::Write {
        let detail = format!("revision {revision}: {}", changed.join(", "));
        let audit = crate::gateway::ops::Actor {
            name: actor.to_string(),
            client_addr: None,
        }
        .audit("config.reload", trigger.as_str(), "ok", Some(detail));
        if let Err(e) = gw
            .store
            .write(Durability::Immediate, move |txn| {
                store::append_audit(txn, &audit)
            })
            .await
        {
            tracing::warn!(error = %e, "could not record the config change in the audit log");
        }
    }
    gw.emit(
        AdminEventName::ConfigReloaded,
        json!({
            "revision": revision,
            "trigger": trigger.as_str(),
            "changed": changed,
            "shadowed": shadowed,
            "restartRequired": restart,
            "closedSessions": closed,
            "gatewayAddr": new_addr.map(|a| a.to_string()),
            "listenerError": listener_error,
            "ts": now_ms(),
        }),
    );
    Report {
        result: ReloadOutcome::Applied,
        revision,
        changed,
        shadowed,
        restart_required: restart,
        closed_sessions: closed,
        error: None,
        listener_error,
    }
}

/// Stops retired listeners once their last connection has gone.
fn reap_when_idle(gw: std::sync::Weak<GatewayState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(gw) = gw.upgrade() else { return };
            let idle: Vec<Retired> = {
                let mut inner = gw.control.inner.lock().await;
                let (idle, busy): (Vec<_>, Vec<_>) = inner
                    .retired
                    .drain(..)
                    .partition(|l| l.conns.load(std::sync::atomic::Ordering::SeqCst) == 0);
                inner.retired = busy;
                idle
            };
            for l in idle {
                tracing::info!(addr = %l.addr, "the old gateway address has no session left");
            }
            if gw.control.inner.lock().await.retired.is_empty() {
                return;
            }
        }
    });
}

/// Closes the sessions whose authority changed; returns how many.
pub fn reauthorise(gw: &GatewayState, old: &RuntimeConfig, new: &RuntimeConfig) -> usize {
    let mut closed = 0;
    for (code, reason) in [
        (4001, "gateway auth changed"),
        (1008, "origin not allowed"),
        (4001, "gateway policy changed"),
    ] {
        closed += gw.registry.close_where(
            |s| super::connect::verdict(old, new, s) == Some((code, reason)),
            code,
            reason,
            None,
        );
    }
    closed
}

/// Ends a shared-token grace window at `until_ms`: the previous token stops
/// working and the sessions that used it close 4001.
pub fn schedule_grace_end(gw: Arc<GatewayState>, until_ms: u64) {
    let weak = Arc::downgrade(&gw);
    drop(gw);
    tokio::spawn(async move {
        let wait = until_ms.saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(wait + 1)).await;
        let Some(gw) = weak.upgrade() else { return };
        let r = reload(&gw, Trigger::GraceEnd, "system").await;
        tracing::info!(
            closed = r.closed_sessions,
            "shared-token grace window ended"
        );
    });
}

#[cfg(test)]
mod tests {
    use super::ReloadOutcome;

    #[test]
    fn reload_outcomes_keep_their_wire_strings() {
        for (o, wire) in [
            (ReloadOutcome::Applied, "applied"),
            (ReloadOutcome::Unchanged, "unchanged"),
            (ReloadOutcome::Failed, "failed"),
            (ReloadOutcome::NotApplied, "not_applied"),
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), serde_json::json!(wire));
        }
    }
}
