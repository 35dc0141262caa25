//! Watching the config file: file events on its parent directory (editors
//! replace files by rename; Kubernetes swaps a `..data` symlink), a ~200 ms
//! settle window, and polling as the fallback for mounts that deliver no
//! events (a Docker single-file bind mount, NFS, Docker Desktop).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use notify::Watcher as _;
use serde_json::json;
use tokio::sync::mpsc;

use super::reload::{self, Trigger};
use super::GatewayState;

/// Quiet time after the last file event before the file is read.
pub const SETTLE: Duration = Duration::from_millis(200);
/// A stream of events never delays a reload longer than this.
const SETTLE_MAX: Duration = Duration::from_secs(2);

/// Stops watching when dropped.
pub struct Watcher {
    _inner: Option<notify::RecommendedWatcher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The directories to watch and the names in them that matter.
fn targets(files: &[PathBuf]) -> (Vec<PathBuf>, BTreeSet<OsString>) {
    let mut dirs = vec![];
    let mut names = BTreeSet::new();
    let mut add = |p: &Path| {
        if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir.to_path_buf()
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
            names.insert(name.to_os_string());
        }
    };
    for file in files {
        add(file);
        // A symlinked config (dotfiles, Kubernetes): also watch where it points.
        if let Ok(real) = std::fs::canonicalize(file) {
            if &real != file {
                add(&real);
            }
        }
    }
    (dirs, names)
}

fn relevant(event: &notify::Event, names: &BTreeSet<OsString>) -> bool {
    if matches!(event.kind, notify::EventKind::Access(_)) {
        return false;
    }
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
    })
}

impl Watcher {
    /// Starts watching the config file of the running snapshot (if any):
    /// polling, and file events when `events` is set.
    pub fn start(gw: Arc<GatewayState>, events: bool) -> Watcher {
        let cfg = gw.config.load_full();
        let weak = Arc::downgrade(&gw);
        let mut tasks = vec![];
        let mut inner = None;
        let mut watched = vec![];
        let mut watch_error = None;
        let files = watched_files(&cfg.sources);
        if !files.is_empty() {
            let (dirs, names) = targets(&files);
            let (tx, rx) = mpsc::unbounded_channel::<()>();
            let handler = move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if relevant(&ev, &names) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "file watch error"),
            };
            let watcher = if events {
                notify::recommended_watcher(handler)
            } else {
                Err(notify::Error::generic("file events are turned off"))
            };
            match watcher {
                Ok(mut w) => {
                    for d in &dirs {
                        match w.watch(d, notify::RecursiveMode::NonRecursive) {
                            Ok(()) => watched.push(d.display().to_string()),
                            Err(e) => {
                                watch_error = Some(format!("cannot watch {}: {e}", d.display()));
                                tracing::warn!(
                                    "cannot watch {} for config changes ({e}); polling only",
                                    d.display()
                                );
                            }
                        }
                    }
                    inner = Some(w);
                }
                Err(e) => {
                    watch_error = Some(format!("file events unavailable: {e}"));
                    tracing::warn!("file events unavailable ({e}); polling only");
                }
            }
            tasks.push(tokio::spawn(settle_loop(weak.clone(), rx)));
            tasks.push(tokio::spawn(poll_loop(weak.clone())));
            for file in &files {
                tracing::info!(file = %file.display(), "watching the config file for changes");
            }
        }
        gw.control.set_watch(json!({
            "file": cfg.sources.file_path.as_ref().map(|p| p.display().to_string()),
            "clawgateFile": cfg.sources.own_path.as_ref().map(|p| p.display().to_string()),
            "events": !watched.is_empty(),
            "directories": watched,
            "error": watch_error,
            "pollIntervalMs": cfg.gateway.reload_poll_ms,
            "settleMs": SETTLE.as_millis() as u64,
        }));
        Watcher {
            _inner: inner,
            tasks,
        }
    }
}

async fn settle_loop(gw: Weak<GatewayState>, mut rx: mpsc::UnboundedReceiver<()>) {
    while rx.recv().await.is_some() {
        let first = Instant::now();
        loop {
            let left = SETTLE_MAX.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(SETTLE.min(left), rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let Some(gw) = gw.upgrade() else { return };
        reload::reload(&gw, Trigger::File, "file").await;
    }
}

/// `openclaw.json` and `clawgate.json`, those that are in use.
fn watched_files(src: &crate::config::Sources) -> Vec<PathBuf> {
    [src.file_path.clone(), src.own_path.clone()]
        .into_iter()
        .flatten()
        .collect()
}

/// The files' content hashes (or read errors), to notice a change cheaply.
fn fingerprint(files: &[PathBuf]) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    let mut out = String::new();
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => out.push_str(&crate::config::content_hash(&bytes)),
            Err(e) => out.push_str(&format!("error:{e}")),
        }
        out.push('+');
    }
    Some(out)
}

async fn poll_loop(gw: Weak<GatewayState>) {
    let mut last = gw
        .upgrade()
        .and_then(|g| fingerprint(&watched_files(&g.config.load().sources)));
    loop {
        let every = match gw.upgrade() {
            Some(g) => g.config.load().gateway.reload_poll_ms,
            None => return,
        };
        if every == 0 {
            // Polling is off; look again later in case it is turned on.
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(every)).await;
        let Some(g) = gw.upgrade() else { return };
        let files = watched_files(&g.config.load().sources);
        let now = fingerprint(&files);
        if now == last {
            continue;
        }
        // Changed: let a writer finish (the same settle window as for file
        // events), then reload; the pipeline skips content already seen.
        drop(g);
        tokio::time::sleep(SETTLE).await;
        last = fingerprint(&files);
        let Some(g) = gw.upgrade() else { return };
        reload::reload(&g, Trigger::Poll, "file").await;
    }
}
