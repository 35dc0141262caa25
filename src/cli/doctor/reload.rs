//! The reload check: the running gateway uses the file as it is on disk.

use super::*;

// ---------------------------------------------------------------- reload

/// Is the running gateway using the file as it is on disk?
pub(super) fn check_reload(ctx: &Ctx, admin: &Admin) -> Check {
    const ID: &str = "reload";
    let st = match admin.get("/admin/v1/config/status") {
        Ok(v) => v,
        Err(e) => {
            return Check::new(
                ID,
                Status::Skip,
                format!("cannot read the reload status: {}", e.message),
            )
        }
    };
    let file = st["file"].as_str().map(str::to_string);
    let shown = file
        .clone()
        .unwrap_or_else(|| "the embedded defaults".into());
    let revision = st["revision"].as_u64().unwrap_or(0);
    let mut c = Check::new(
        ID,
        Status::Ok,
        format!("the running gateway uses revision {revision} of {shown}"),
    );
    if let Some(err) = st["lastError"].as_object() {
        let first = err
            .get("issues")
            .and_then(|i| i.get(0))
            .and_then(|i| i.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        c = Check::new(
            ID,
            Status::Fail,
            format!("the running gateway refused the last change of {shown}; it keeps serving revision {revision}"),
        )
        .detail(first.to_string())
        .fix("correct the file (check it with `clawgate config validate`); it is applied as soon as it is valid");
    }
    if let Some(p) = st["fileChangeNotApplied"].as_object() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{shown} changed, but gateway.reload.mode is off, so the change is not applied{}",
            p.get("changed")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .map(|a| format!(
                    " ({})",
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .unwrap_or_default()
        ));
        c.add_fix("clawgate config reload");
    }
    for r in st["restartRequired"].as_array().into_iter().flatten() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{} changes only at the next restart (running {}, configured {})",
            r["key"].as_str().unwrap_or(""),
            r["running"],
            r["configured"]
        ));
        c.add_fix(format!("restart clawgate ({})", ctx.serve_cmd));
    }
    for s in st["shadowedChanges"].as_array().into_iter().flatten() {
        c.raise(Status::Warn);
        c.details.push(format!(
            "{} was edited in the file, but {} sets it, so the edit has no effect",
            s["key"].as_str().unwrap_or(""),
            s["source"]["kind"].as_str().unwrap_or("another source")
        ));
        if let Some(r) = s["release"].as_str() {
            c.add_fix(r.to_string());
        }
    }
    if let Some(e) = st["listenerError"].as_str() {
        c.raise(Status::Fail);
        c.details.push(e.to_string());
        c.add_fix("free that port or set gateway.port to a free one");
    }
    // The file on disk vs what the gateway loaded (a change it has not seen).
    if let (Some(f), Some(loaded), true) = (
        file.as_ref(),
        st["sourceHash"].as_str(),
        st["lastError"].is_null() && st["fileChangeNotApplied"].is_null(),
    ) {
        let own = st["clawgateFile"].as_str().map(std::path::PathBuf::from);
        let on_disk = config::read_file_layer(Some(Path::new(f))).and_then(|m| {
            config::read_file_layer(own.as_deref())
                .map(|o| config::combined_hash(m.as_ref(), o.as_ref()))
        });
        if let Ok(Some(hash)) = on_disk {
            if hash != loaded {
                c.raise(Status::Warn);
                c.details.push(format!(
                    "{f} on disk differs from what the gateway loaded; it has not picked the change up (a file mounted into a container may not be the file you edited)"
                ));
                c.add_fix("clawgate config reload");
            }
        }
    }
    c
}
