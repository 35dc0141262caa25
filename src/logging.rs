//! Logging: `tracing` with a human format (default) or JSON
//! (`CLAWGATE_LOG_FORMAT=json`). The level comes from `CLAWGATE_LOG` (a
//! tracing filter such as `info,clawgate=debug`), else from the config's
//! `logging.level`, and follows config reloads.

use std::sync::OnceLock;

use tracing_subscriber::{layer::SubscriberExt, reload, util::SubscriberInitExt, EnvFilter};

type Handle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();
static CURRENT: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// A tracing filter for an OpenClaw level name. Levels more verbose than
/// `warn` apply to clawgate's own modules only: other crates stay at `warn`
/// (at `trace`, the file watcher's own logging of every inotify event would
/// otherwise feed itself when the log is written next to the config).
/// `CLAWGATE_LOG` can still open up any crate.
pub fn filter_for(level: Option<&str>) -> &'static str {
    match level.unwrap_or("info") {
        "silent" => "off",
        "fatal" | "error" => "error",
        "warn" => "warn",
        "debug" => "warn,clawgate=debug",
        "trace" => "warn,clawgate=trace",
        _ => DEFAULT,
    }
}

/// The filter when neither `CLAWGATE_LOG` nor `logging.level` says otherwise.
const DEFAULT: &str = "warn,clawgate=info";

fn env_filter() -> Option<EnvFilter> {
    std::env::var("CLAWGATE_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(v).ok())
}

/// Installs the global subscriber (once per process).
pub fn init() {
    let filter = env_filter().unwrap_or_else(|| EnvFilter::new(DEFAULT));
    let (filter, handle) = reload::Layer::new(filter);
    let json = std::env::var("CLAWGATE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let human = (!json).then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
    let machine = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    if tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(machine)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
    }
}

/// Applies the config's `logging.level` (unless `CLAWGATE_LOG` is set, which
/// wins). Returns the filter now in force when it changed.
pub fn apply_level(level: Option<&str>) -> Option<&'static str> {
    let handle = HANDLE.get()?;
    if env_filter().is_some() {
        return None;
    }
    let want = filter_for(level);
    let mut cur = CURRENT.lock().expect("log level lock");
    if cur.as_deref() == Some(want) || (cur.is_none() && want == DEFAULT) {
        return None;
    }
    handle.reload(EnvFilter::new(want)).ok()?;
    *cur = Some(want.to_string());
    Some(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_levels_are_scoped_to_clawgate() {
        assert_eq!(filter_for(Some("trace")), "warn,clawgate=trace");
        assert_eq!(filter_for(Some("debug")), "warn,clawgate=debug");
        assert_eq!(filter_for(None), "warn,clawgate=info");
        assert_eq!(filter_for(Some("warn")), "warn");
        assert_eq!(filter_for(Some("silent")), "off");
        for l in ["trace", "debug", "info", "warn", "error", "silent"] {
            assert!(EnvFilter::try_new(filter_for(Some(l))).is_ok(), "{l}");
        }
    }
}
