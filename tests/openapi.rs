//! Conformance of `openapi.yaml` with the admin route table
//! (`clawgate::admin::ROUTES`): the same set of (method, path) pairs, and each
//! operation's `x-required-scope` and security matching the route's scope.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clawgate::admin::{RouteSpec, ROUTES};
use serde_json::Value;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// One operation of the spec, as far as the route table is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Op {
    /// `x-required-scope`, if any.
    scope: Option<String>,
    /// Whether the effective `security` requires a credential.
    secured: bool,
    /// Response status keys.
    responses: BTreeSet<String>,
}

fn load_spec() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

/// A `security` requirement list requires a credential unless it is empty or
/// holds an empty alternative (`- {}`: anonymous allowed).
fn requires_credential(security: &Value) -> bool {
    match security.as_array() {
        Some(alts) => {
            !alts.is_empty()
                && alts
                    .iter()
                    .all(|a| a.as_object().is_some_and(|o| !o.is_empty()))
        }
        None => false,
    }
}

/// The spec's operations keyed by (METHOD, path).
fn operations(spec: &Value) -> Result<BTreeMap<(String, String), Op>, String> {
    let global = spec.get("security").cloned().unwrap_or(Value::Null);
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the spec has no `paths` object")?;
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .ok_or_else(|| format!("paths.{path} is not an object"))?;
        for (key, op) in item {
            if !METHODS.contains(&key.as_str()) {
                continue;
            }
            let scope = match op.get("x-required-scope") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(format!(
                        "{} {path}: x-required-scope must be a string, not {other}",
                        key.to_uppercase()
                    ))
                }
            };
            let security = op.get("security").unwrap_or(&global);
            let responses = op
                .get("responses")
                .and_then(Value::as_object)
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default();
            out.insert(
                (key.to_uppercase(), path.clone()),
                Op {
                    scope,
                    secured: requires_credential(security),
                    responses,
                },
            );
        }
    }
    Ok(out)
}

/// Every disagreement between the spec and the route table, one line each
/// (empty when they agree).
fn compare(spec: &Value, routes: &[RouteSpec]) -> Vec<String> {
    let ops = match operations(spec) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let mut problems = vec![];
    let mut table: BTreeMap<(String, String), Option<&str>> = BTreeMap::new();
    for r in routes {
        if table
            .insert(
                (r.method.to_string(), r.path.to_string()),
                r.scope.map(|s| s.as_str()),
            )
            .is_some()
        {
            problems.push(format!("route table lists {} {} twice", r.method, r.path));
        }
    }
    let in_spec: BTreeSet<_> = ops.keys().cloned().collect();
    let in_table: BTreeSet<_> = table.keys().cloned().collect();
    for (m, p) in in_table.difference(&in_spec) {
        problems.push(format!("missing from openapi.yaml: {m} {p}"));
    }
    for (m, p) in in_spec.difference(&in_table) {
        problems.push(format!(
            "in openapi.yaml but not served (not in ROUTES): {m} {p}"
        ));
    }
    for (key, scope) in &table {
        let Some(op) = ops.get(key) else { continue };
        let (m, p) = key;
        if op.scope.as_deref() != *scope {
            problems.push(format!(
                "{m} {p}: x-required-scope is {:?} in openapi.yaml but the route needs {:?}",
                op.scope, scope
            ));
        }
        match (scope, op.secured) {
            (None, true) => problems.push(format!(
                "{m} {p}: the route is unauthenticated but openapi.yaml requires security (use `security: []`)"
            )),
            (Some(s), false) => problems.push(format!(
                "{m} {p}: the route needs scope {s} but openapi.yaml requires no credential"
            )),
            _ => {}
        }
        if scope.is_some() {
            for status in ["401", "403"] {
                if !op.responses.contains(status) {
                    problems.push(format!(
                        "{m} {p}: an authenticated route must document a {status} response"
                    ));
                }
            }
        }
        if !op.responses.iter().any(|s| s.starts_with('2')) {
            problems.push(format!("{m} {p}: no success (2xx) response documented"));
        }
    }
    problems
}

fn report(problems: &[String]) -> String {
    format!(
        "openapi.yaml disagrees with clawgate::admin::ROUTES ({} problem(s)):\n  - {}\n\n\
         spec operations:\n{}\nroute table:\n{}",
        problems.len(),
        problems.join("\n  - "),
        operations(&load_spec())
            .map(|o| o
                .iter()
                .map(|((m, p), op)| format!("  {m:6} {p}  scope={:?}\n", op.scope))
                .collect::<String>())
            .unwrap_or_default(),
        ROUTES
            .iter()
            .map(|r| format!(
                "  {:6} {}  scope={:?}\n",
                r.method,
                r.path,
                r.scope.map(|s| s.as_str())
            ))
            .collect::<String>(),
    )
}

#[test]
fn spec_is_openapi_3_1() {
    let spec = load_spec();
    assert_eq!(
        spec.get("openapi").and_then(Value::as_str),
        Some("3.1.0"),
        "openapi.yaml must declare `openapi: 3.1.0`"
    );
}

#[test]
fn spec_matches_route_table() {
    let problems = compare(&load_spec(), ROUTES);
    assert!(problems.is_empty(), "{}", report(&problems));
}

// ---------------------------------------------------------------- the comparison itself

fn paths_mut(spec: &mut Value) -> &mut serde_json::Map<String, Value> {
    spec.get_mut("paths")
        .and_then(Value::as_object_mut)
        .expect("paths")
}

#[test]
fn comparison_reports_a_missing_path() {
    let mut spec = load_spec();
    let removed = paths_mut(&mut spec)
        .remove("/admin/v1/trusted-proxies")
        .expect("the spec has /admin/v1/trusted-proxies");
    assert!(removed.get("put").is_some());
    let problems = compare(&spec, ROUTES);
    for m in ["GET", "PUT", "POST"] {
        let want = format!("missing from openapi.yaml: {m} /admin/v1/trusted-proxies");
        assert!(
            problems.contains(&want),
            "expected {want:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn comparison_reports_a_missing_method_and_an_extra_one() {
    let mut spec = load_spec();
    let item = paths_mut(&mut spec)
        .get_mut("/admin/v1/devices/{deviceId}")
        .and_then(Value::as_object_mut)
        .expect("device path");
    let patch = item.remove("patch").expect("patch");
    item.insert("put".into(), patch);
    let problems = compare(&spec, ROUTES);
    assert!(
        problems
            .contains(&"missing from openapi.yaml: PATCH /admin/v1/devices/{deviceId}".to_string()),
        "{problems:#?}"
    );
    assert!(
        problems.contains(
            &"in openapi.yaml but not served (not in ROUTES): PUT /admin/v1/devices/{deviceId}"
                .to_string()
        ),
        "{problems:#?}"
    );
}

#[test]
fn comparison_reports_a_wrong_scope_and_wrong_security() {
    let mut spec = load_spec();
    let paths = paths_mut(&mut spec);
    paths["/admin/v1/audit"]["get"]["x-required-scope"] = Value::from("pairing:read");
    paths["/healthz"]["get"]
        .as_object_mut()
        .expect("healthz")
        .remove("security");
    paths["/metrics"]["get"]["security"] = Value::Array(vec![]);
    let problems = compare(&spec, ROUTES);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("GET /admin/v1/audit: x-required-scope")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("GET /healthz: the route is unauthenticated")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("GET /metrics: the route needs scope config:read")),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn comparison_reports_a_route_the_spec_lacks() {
    let mut routes = ROUTES.to_vec();
    routes.push(RouteSpec {
        method: "GET",
        path: "/admin/v1/not-in-the-spec",
        scope: Some(clawgate::admin::auth::AdminScope::Admin),
    });
    let problems = compare(&load_spec(), &routes);
    assert_eq!(
        problems,
        vec!["missing from openapi.yaml: GET /admin/v1/not-in-the-spec".to_string()]
    );
}

#[test]
fn the_setting_keys_of_the_spec_are_the_registry() {
    let spec = load_spec();
    let listed: BTreeSet<String> = spec["components"]["schemas"]["SettingKey"]["enum"]
        .as_array()
        .expect("SettingKey enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let known: BTreeSet<String> = clawgate::config::settings::SETTINGS
        .iter()
        .map(|s| s.key.to_string())
        .collect();
    assert_eq!(
        listed.difference(&known).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in openapi.yaml's SettingKey but not a setting"
    );
    assert_eq!(
        known.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "settings missing from openapi.yaml's SettingKey"
    );
}
