//! Roles and the operator scope algebra (protocol §6.1).

/// A connection's role (`connect.params.role`; the wire strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    /// The role a wire string names; `None` for any other string.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "node" => Some(Role::Node),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const ADMIN: &str = "operator.admin";
pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const PAIRING: &str = "operator.pairing";

/// Is the requested scope `s` satisfied by the granted set?
pub fn satisfies(grant: &[String], s: &str) -> bool {
    if grant.iter().any(|g| g == s) {
        return true;
    }
    if !s.starts_with("operator.") {
        return false;
    }
    let has = |x: &str| grant.iter().any(|g| g == x);
    if has(ADMIN) {
        return true;
    }
    if matches!(
        s,
        "operator.read" | "operator.talk" | "operator.sessions.read" | "operator.sessions.write"
    ) && has(WRITE)
    {
        return true;
    }
    s == "operator.sessions.read" && (has(READ) || has("operator.sessions.write"))
}

/// Every requested scope satisfied?
pub fn covers(grant: &[String], requested: &[String]) -> bool {
    requested.iter().all(|s| satisfies(grant, s))
}

/// The first requested scope the grant does not satisfy.
pub fn first_missing<'a>(grant: &[String], requested: &'a [String]) -> Option<&'a str> {
    requested
        .iter()
        .find(|s| !satisfies(grant, s))
        .map(String::as_str)
}

/// Normalized for storage: trimmed, deduped, sorted; admin ⇒ read+write, write ⇒ read.
pub fn normalize(scopes: &[String]) -> Vec<String> {
    let mut out: Vec<String> = scopes
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if out.iter().any(|s| s == ADMIN) {
        out.push(READ.into());
        out.push(WRITE.into());
    }
    if out.iter().any(|s| s == WRITE) {
        out.push(READ.into());
    }
    out.sort();
    out.dedup();
    out
}

/// Union of two scope sets, normalized.
pub fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut v = a.to_vec();
    v.extend_from_slice(b);
    normalize(&v)
}

/// Scopes that belong to a role: `operator.*` for operators, `<role>.*` otherwise.
pub fn for_role(role: &str, scopes: &[String]) -> Vec<String> {
    let prefix = format!("{role}.");
    scopes
        .iter()
        .filter(|s| s.starts_with(&prefix))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn algebra() {
        assert!(satisfies(&v(&["operator.admin"]), "operator.pairing"));
        assert!(satisfies(&v(&["operator.write"]), "operator.read"));
        assert!(!satisfies(&v(&["operator.write"]), "operator.pairing"));
        assert!(satisfies(&v(&["operator.read"]), "operator.sessions.read"));
        assert!(!satisfies(&v(&["operator.read"]), "operator.write"));
        assert!(!satisfies(&v(&["operator.admin"]), "node.x"));
        assert!(satisfies(&v(&["node.x"]), "node.x"));
        assert!(covers(&v(&["operator.read"]), &[]));
        assert_eq!(
            first_missing(
                &v(&["operator.read"]),
                &v(&["operator.read", "operator.pairing"])
            ),
            Some("operator.pairing")
        );
    }

    #[test]
    fn normalization() {
        assert_eq!(
            normalize(&v(&["operator.admin"])),
            v(&["operator.admin", "operator.read", "operator.write"])
        );
        assert_eq!(
            normalize(&v(&[" operator.write", "operator.write", ""])),
            v(&["operator.read", "operator.write"])
        );
    }
}
