//! The admin API client the doctor uses (token discovery, calls).

use super::*;

// ---------------------------------------------------------------- admin API

/// A minimal admin API client.
pub(super) struct Admin {
    pub(super) base: String,
    /// The token and where it came from.
    pub(super) token: Result<String, String>,
    pub(super) agent: ureq::Agent,
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
        Admin {
            base,
            token,
            agent: agent(),
        }
    }

    pub(super) fn get(&self, path: &str) -> Result<Value, ApiError> {
        let token = self.token.as_ref().map_err(|e| ApiError {
            status: None,
            message: e.clone(),
        })?;
        let resp = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json")
            .call();
        let mut resp = resp.map_err(|e| ApiError {
            status: None,
            message: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            return Ok(v);
        }
        Err(ApiError {
            status: Some(status),
            message: v["detail"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP {status}")),
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
