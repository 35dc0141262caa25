//! The admin API client the doctor uses (token discovery, calls).

use super::*;

// ---------------------------------------------------------------- admin API

/// The admin API as the doctor reads it (the shared client; a token that
/// could not be found is reported at the first call).
pub(super) struct Admin {
    pub(super) base: String,
    /// The token, or why there is none.
    token: Result<String, String>,
    client: crate::admin::client::Client,
}

/// Why an admin call did not give JSON.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: Option<u16>,
    pub(super) message: String,
}

pub(super) fn admin_token(
    ctx: &Ctx,
    args: &DoctorArgs,
    cfg: Option<&RuntimeConfig>,
) -> Result<String, String> {
    if let Some(t) = args
        .admin_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    if let Some(t) = cfg
        .and_then(|c| c.gateway.admin.token.as_ref())
        .and_then(|t| t.expose())
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Ok(t.to_string());
    }
    let file = ctx.state_dir.join("admin-token");
    match std::fs::read_to_string(&file) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(format!("{} is empty", file.display())),
        Err(e) => Err(format!(
            "cannot read the admin token {}: {e}",
            file.display()
        )),
    }
}

impl Admin {
    pub(super) fn new(base: String, token: Result<String, String>) -> Admin {
        let client = crate::admin::client::Client::with(
            base.clone(),
            token.as_ref().ok().cloned(),
            HTTP_TIMEOUT,
            "clawgate-doctor",
        );
        Admin {
            base,
            token,
            client,
        }
    }

    pub(super) fn get(&self, path: &str) -> Result<Value, ApiError> {
        if let Err(e) = &self.token {
            return Err(ApiError {
                status: None,
                message: e.clone(),
            });
        }
        let answer = self.client.get(path).map_err(|e| ApiError {
            status: None,
            message: e.to_string(),
        })?;
        if answer.status == 200 {
            return Ok(answer.json().unwrap_or(Value::Null));
        }
        Err(ApiError {
            status: Some(answer.status),
            message: answer
                .problem()
                .map(|p| p.detail)
                .unwrap_or_else(|| format!("HTTP {}", answer.status)),
        })
    }

    /// The last `gateway.token.rotate` audit event: (time ms, actor).
    pub(super) fn last_gateway_rotation(&self) -> Option<(u64, String)> {
        let mut after = 0u64;
        let mut found = None;
        for _ in 0..20 {
            let v = self
                .get(&format!("/admin/v1/audit?after={after}&limit=1000"))
                .ok()?;
            let events = v["events"].as_array()?;
            for e in events {
                if e["action"] == "gateway.token.rotate" && e["outcome"] == "ok" {
                    found = Some((
                        e["ts"].as_u64().unwrap_or(0),
                        e["actor"].as_str().unwrap_or("?").to_string(),
                    ));
                }
            }
            let next = v["next"].as_u64().unwrap_or(after);
            if events.len() < 1000 || next == after {
                break;
            }
            after = next;
        }
        found
    }
}
