//! Check 1: the config loads and validates as `clawgate serve` would load it.

use super::*;

// ---------------------------------------------------------------- 1. config

pub(super) fn check_config(ctx: &Ctx, loaded: &Result<RuntimeConfig, ConfigError>) -> Check {
    match loaded {
        Ok(cfg) => {
            let what = match &cfg.file {
                Some(f) => format!("{} is valid", f.display()),
                None => "no config file found; the embedded defaults apply".into(),
            };
            if cfg.warnings.is_empty() {
                return Check::new("config", Status::Ok, what);
            }
            let mut c = Check::new(
                "config",
                Status::Warn,
                format!("{what}, with {}", plural(cfg.warnings.len(), "warning")),
            );
            c.details = cfg.warnings.clone();
            c
        }
        Err(e) => config_failure(e, ctx.euid),
    }
}

pub(super) fn issue_file(i: &Issue) -> String {
    i.file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "the config".into())
}

pub(super) fn config_failure(e: &ConfigError, euid: u32) -> Check {
    let first = e.issues.first();
    let summary = match (e.issues.len(), first) {
        (1, Some(i)) => i.to_string(),
        (_, Some(i)) => format!(
            "{} has {}",
            issue_file(i),
            plural(e.issues.len(), "problem")
        ),
        _ => "the configuration could not be loaded".into(),
    };
    let mut c = Check::new("config", Status::Fail, summary);
    if e.issues.len() > 1 {
        c.details = e.issues.iter().map(|i| i.to_string()).collect();
    }
    for i in &e.issues {
        match (i.code, &i.file, i.line) {
            (ConfigCode::Unreadable, Some(f), _) => {
                for fix in unreadable_fix(f, euid) {
                    c.add_fix(fix);
                }
            }
            (ConfigCode::StateDir, _, _) => {
                c.add_fix("make the state dir writable by the user clawgate runs as (see permissions), or pick another one with --state-dir DIR");
            }
            (_, Some(f), Some(line)) => c.add_fix(match i.column {
                Some(col) => format!("edit {} at line {line}, column {col}", f.display()),
                None => format!("edit {} at line {line}", f.display()),
            }),
            (_, _, _) if !i.path.is_empty() => {
                c.add_fix(format!("change {} as described above", i.path))
            }
            _ => {}
        }
    }
    if !e.is_unreadable() {
        let file = first.and_then(|i| i.file.as_ref());
        c.add_fix(match file {
            Some(f) => format!(
                "then check again: `clawgate config validate --config {}`",
                f.display()
            ),
            None => "then check again: `clawgate config validate`".into(),
        });
    }
    c
}

/// The fix for a config file that cannot be read.
pub(super) fn unreadable_fix(path: &Path, euid: u32) -> Vec<String> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_dir() => vec![format!(
            "{p} is a directory: point --config (or OPENCLAW_CONFIG_PATH) at the file, e.g. --config {}",
            path.join("openclaw.json").display(),
            p = path.display()
        )],
        Ok(md) => owner_mode_fix(path, md.uid(), md.mode(), euid),
        Err(e) if e.kind() == ErrorKind::NotFound => vec![format!(
            "create {} or correct the path given with --config / OPENCLAW_CONFIG_PATH",
            path.display()
        )],
        Err(_) => vec![format!(
            "make the directories above {} searchable by uid {euid} (chmod o+x on each, or run as their owner)",
            path.display()
        )],
    }
}

/// `chown`/`chmod` that make a file readable by `euid` and private.
pub(super) fn owner_mode_fix(path: &Path, uid: u32, mode: u32, euid: u32) -> Vec<String> {
    let p = path.display();
    let mut fix = vec![];
    if uid != euid {
        fix.push(format!("sudo chown {euid} {p}"));
    }
    if uid != euid || mode & 0o400 == 0 || mode & 0o077 != 0 {
        fix.push(format!("chmod 600 {p}"));
    }
    fix
}
