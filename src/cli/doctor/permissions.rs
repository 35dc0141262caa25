//! Check 2: owner and mode of the config file, the state dir and its secret files.

use super::*;

// ---------------------------------------------------------------- 2. permissions

/// Dotted paths of keys in the file that hold a literal secret (not a `${VAR}`
/// reference or an `{source: "env"}` object).
pub(super) fn secret_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let lk = k.to_ascii_lowercase().replace(['_', '-'], "");
                let secretish = lk.contains("token")
                    || lk.contains("password")
                    || lk.contains("secret")
                    || lk.contains("apikey")
                    || lk == "key"
                    || lk.ends_with("privatekey");
                match child {
                    Value::String(s) if secretish => {
                        let s = s.trim();
                        let reference = s.starts_with("${") && s.ends_with('}');
                        if !s.is_empty() && !reference {
                            out.push(path);
                        }
                    }
                    _ => secret_keys(child, &path, out),
                }
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                secret_keys(child, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

pub(super) fn mode_str(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

pub(super) fn check_permissions(ctx: &Ctx) -> Check {
    let euid = ctx.euid;
    let mut c = Check::new("permissions", Status::Ok, "");
    let mut fine = vec![];
    // The config files: openclaw.json and clawgate's own.
    if let Some(path) = &ctx.config_path {
        check_settings_file(&mut c, &mut fine, euid, path, "config file");
    }
    if let Some((path, _)) = crate::config::resolve_own_path(&ctx.opts, ctx.config_path.as_deref())
    {
        check_settings_file(&mut c, &mut fine, euid, &path, "clawgate.json");
    }
    // The state dir and the secrets in it.
    let dir = &ctx.state_dir;
    let d = dir.display();
    match std::fs::metadata(dir) {
        Ok(md) if md.is_dir() => {
            let mode = md.mode();
            let mut dir_ok = true;
            if mode & 0o077 != 0 {
                c.raise(Status::Warn);
                c.details.push(format!(
                    "the state dir {d} (mode {}) is open to {}; it holds the gateway's tokens and keys",
                    mode_str(mode),
                    who(mode, 0o070, 0o007)
                ));
                c.add_fix(format!("chmod 700 {d}"));
                dir_ok = false;
            }
            if foreign_owner(
                &mut c,
                &format!("the state dir {d}"),
                md.uid(),
                euid,
                format!("sudo chown -R {euid} {d}"),
            ) {
                dir_ok = false;
            }
            if dir_ok {
                fine.push(format!("state dir mode {}", mode_str(mode)));
            }
            let mut files_ok = true;
            for name in SECRET_FILES {
                let f = dir.join(name);
                let Ok(fm) = std::fs::metadata(&f) else {
                    continue;
                };
                if fm.mode() & 0o077 != 0 {
                    c.raise(Status::Warn);
                    c.details.push(format!(
                        "{} (mode {}) is open to {}",
                        f.display(),
                        mode_str(fm.mode()),
                        who(fm.mode(), 0o070, 0o007)
                    ));
                    c.add_fix(format!("chmod 600 {}", f.display()));
                    files_ok = false;
                }
                // (a foreign state dir is reported once, with chown -R)
                if md.uid() == euid
                    && foreign_owner(
                        &mut c,
                        &f.display().to_string(),
                        fm.uid(),
                        euid,
                        format!("sudo chown {euid} {}", f.display()),
                    )
                {
                    files_ok = false;
                }
            }
            if files_ok {
                fine.push("secret files 0600".into());
            }
        }
        Ok(_) => {
            c.raise(Status::Fail);
            c.details
                .push(format!("the state dir {d} exists but is not a directory"));
            c.add_fix(format!(
                "move {d} out of the way, or pick another state dir with --state-dir DIR"
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fine.push(format!(
                "state dir {d} not created yet (`clawgate serve` creates it with mode 0700)"
            ));
        }
        Err(e) => {
            c.raise(Status::Fail);
            c.details
                .push(format!("cannot inspect the state dir {d}: {e}"));
            c.add_fix(format!(
                "make the directories above {d} searchable by uid {euid}, or pick another state dir with --state-dir DIR"
            ));
        }
    }
    c.summary = match c.status {
        Status::Ok => fine.join(", "),
        _ if c.details.len() == 1 => c.details.remove(0),
        _ => plural(c.details.len(), "permission problem"),
    };
    c
}

/// Owner and mode of one settings file (`label` names it when it is fine).
fn check_settings_file(
    c: &mut Check,
    fine: &mut Vec<String>,
    euid: u32,
    path: &std::path::Path,
    label: &str,
) {
    let p = path.display();
    // Unreadable or missing: the config check reports it.
    let Some(md) = std::fs::metadata(path).ok().filter(|m| m.is_file()) else {
        return;
    };
    let mode = md.mode();
    let mut secrets = vec![];
    if let Some(v) = std::fs::read_to_string(path)
        .ok()
        .filter(|t| crate::config::depth::check(t, crate::config::depth::MAX_DEPTH).is_ok())
        .and_then(|t| json5::from_str::<Value>(&t).ok())
    {
        secret_keys(&v, "", &mut secrets);
    }
    let mut loose = false;
    if mode & 0o044 != 0 && !secrets.is_empty() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{p} (mode {}) is readable by {} and holds {}",
            mode_str(mode),
            who(mode, 0o040, 0o004),
            short_list(&secrets, 3)
        ));
        loose = true;
    }
    if mode & 0o022 != 0 {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{p} (mode {}) is writable by {}, who could change the gateway's auth settings",
            mode_str(mode),
            who(mode, 0o020, 0o002)
        ));
        loose = true;
    }
    if loose {
        c.add_fix(format!("chmod 600 {p}"));
    }
    foreign_owner(
        c,
        &p.to_string(),
        md.uid(),
        euid,
        format!("sudo chown {euid} {p}"),
    );
    if !loose && md.uid() == euid {
        fine.push(format!("{label} mode {}", mode_str(mode)));
    }
}

/// A warning (with its `chown`) when `what` belongs to another uid than
/// clawgate's; whether it does.
fn foreign_owner(c: &mut Check, what: &str, uid: u32, euid: u32, chown: String) -> bool {
    if uid == euid {
        return false;
    }
    c.raise(Status::Warn);
    c.details.push(format!(
        "{what} is owned by uid {uid}, but clawgate runs as uid {euid}"
    ));
    c.add_fix(chown);
    true
}

/// "group and others" / "group" / "others" for the given mode bits.
pub(super) fn who(mode: u32, group_bits: u32, other_bits: u32) -> &'static str {
    match (mode & group_bits != 0, mode & other_bits != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
    }
}

pub(super) fn short_list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

pub(super) fn plural(n: usize, one: &str) -> String {
    crate::cli::text::plural(n as u64, one)
}
