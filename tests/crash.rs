//! The crash suite (issue 13): admin mutations (approve, reject, rotate,
//! revoke, remove, trusted-proxy edits) against the real binary, which is
//! killed with SIGKILL at a random moment of each burst and started again
//! on the same state. After every restart: the state opens, every
//! acknowledged change is there, and the audit log matches the state (a
//! change whose answer was lost in the kill is in the state exactly when
//! its audit record is).
//!
//! `CLAWGATE_CRASH_MUTATIONS` (default 1000): acknowledged mutations to
//! reach; `CLAWGATE_CRASH_SEED`: replays a run (the seed is printed).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bin::{admin_when_started, dirs, spawn, url};
use common::client::{Conn, ConnectOpts, DeviceIdentity};
use common::http::Admin;
use serde_json::{json, Value};

const TOKEN: &str = "crash-suite-token-0123456789";

/// xorshift64*: enough randomness for kill moments and op choices, and
/// replayable from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One mutation and what became of it.
#[derive(Debug, Clone)]
enum Op {
    Approve { rid: String, dev: String },
    Reject { rid: String, dev: String },
    Rotate { dev: String, before: Option<u64> },
    Revoke { dev: String },
    Remove { dev: String },
    ProxyAdd { entry: String },
    ProxyDel { entry: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    /// The answer was lost (the kill): it may or may not have happened.
    Unknown,
}

/// What the suite knows the state must be.
#[derive(Default)]
struct Model {
    /// Pending requests: requestId → deviceId.
    pending: BTreeMap<String, String>,
    /// The ones made in the last cycle: written without fsync (by design),
    /// so they are durable only once a later commit is (any acknowledged
    /// mutation of that cycle) or a second has passed.
    fresh: BTreeSet<String>,
    /// Fresh pending requests lost in a kill before anything made them durable.
    lost_fresh: usize,
    /// Paired devices (operator role), and whether their token is revoked.
    paired: BTreeMap<String, bool>,
    /// Devices that must not be paired (rejected, removed).
    gone: BTreeSet<String>,
    /// Trusted-proxy entries added by the suite that must be there.
    proxies: BTreeSet<String>,
    /// Entries that must not be there.
    no_proxies: BTreeSet<String>,
    acked: usize,
    unknown: usize,
    audited_seq: u64,
}

async fn audit_since(admin: &Admin, after: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let r = admin
            .get(&format!("/admin/v1/audit?after={after}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let events = v["events"].as_array().unwrap().clone();
        if events.is_empty() {
            return out;
        }
        after = v["next"].as_u64().unwrap();
        out.extend(events);
    }
}

fn audited(audit: &[Value], action: &str, target: &str) -> bool {
    audit
        .iter()
        .any(|e| e["action"] == action && e["target"] == target && e["outcome"] == "ok")
}

async fn device(admin: &Admin, id: &str) -> Option<Value> {
    let r = admin.get(&format!("/admin/v1/devices/{id}")).await;
    match r.status {
        200 => Some(r.json()),
        404 => None,
        s => panic!("GET device {id}: {s} {}", r.body),
    }
}

fn operator_token(d: &Value) -> Value {
    d["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "operator")
        .cloned()
        .unwrap_or(Value::Null)
}

async fn proxy_entries(admin: &Admin) -> BTreeSet<String> {
    let r = admin.get("/admin/v1/trusted-proxies").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

/// Resolves the last burst's lost answers with the audit log, then checks
/// the whole model against the state.
async fn verify(admin: &Admin, model: &mut Model, last: &[(Op, Outcome)], cycle: usize) {
    let audit = audit_since(admin, model.audited_seq).await;
    if let Some(s) = audit.last().and_then(|e| e["seq"].as_u64()) {
        model.audited_seq = s;
    }
    let mut entries = proxy_entries(admin).await;
    // A kill before any durable commit of the cycle may take its fresh
    // pending requests with it; after one, they must all be there.
    if !last.iter().any(|(_, o)| *o == Outcome::Acked) {
        for rid in std::mem::take(&mut model.fresh) {
            let r = admin
                .get(&format!("/admin/v1/pairing/requests/{rid}"))
                .await;
            if r.status == 404 {
                model.pending.remove(&rid);
                model.lost_fresh += 1;
            }
        }
    }
    model.fresh.clear();
    for (op, outcome) in last {
        // Applied: acknowledged, or (lost answer) its audit record exists,
        // which must then agree with the state.
        let applied = |action: &str, target: &str| {
            *outcome == Outcome::Acked || audited(&audit, action, target)
        };
        match op {
            Op::Approve { rid, dev } => {
                if applied("pairing.approve", rid) {
                    model.pending.remove(rid);
                    model.paired.insert(dev.clone(), false);
                } else {
                    assert!(
                        device(admin, dev).await.is_none(),
                        "cycle {cycle}: {dev} is paired but its approval has no audit record"
                    );
                }
            }
            Op::Reject { rid, dev } => {
                if applied("pairing.reject", rid) {
                    model.pending.remove(rid);
                    model.gone.insert(dev.clone());
                } else if model.pending.contains_key(rid) {
                    let r = admin
                        .get(&format!("/admin/v1/pairing/requests/{rid}"))
                        .await;
                    assert_eq!(
                        r.status, 200,
                        "cycle {cycle}: {rid} is gone but its rejection has no audit record"
                    );
                }
            }
            Op::Rotate { dev, before } => {
                let now = device(admin, dev).await.map(|d| operator_token(&d));
                let rotated_at = now.as_ref().and_then(|t| t["rotatedAtMs"].as_u64());
                if applied("token.rotate", &format!("{dev}/operator")) {
                    assert_ne!(
                        rotated_at, *before,
                        "cycle {cycle}: the rotation of {dev} was acknowledged or audited, the state shows none"
                    );
                } else {
                    assert_eq!(
                        rotated_at, *before,
                        "cycle {cycle}: {dev} was rotated without an audit record"
                    );
                }
            }
            Op::Revoke { dev } => {
                if applied("token.revoke", &format!("{dev}/operator")) {
                    model.paired.insert(dev.clone(), true);
                } else {
                    let t = operator_token(&device(admin, dev).await.unwrap());
                    assert!(
                        t["revokedAtMs"].is_null(),
                        "cycle {cycle}: {dev} was revoked without an audit record"
                    );
                }
            }
            Op::Remove { dev } => {
                if applied("device.remove", dev) {
                    model.paired.remove(dev);
                    model.gone.insert(dev.clone());
                } else {
                    assert!(
                        device(admin, dev).await.is_some(),
                        "cycle {cycle}: {dev} was removed without an audit record"
                    );
                }
            }
            Op::ProxyAdd { entry } | Op::ProxyDel { entry } => {
                let add = matches!(op, Op::ProxyAdd { .. });
                let action = if add {
                    "trustedProxies.add"
                } else {
                    "trustedProxies.remove"
                };
                let seen = audit.iter().any(|e| {
                    e["action"] == action
                        && e["outcome"] == "ok"
                        && e["detail"].as_str().is_some_and(|d| {
                            let after = d.rsplit("->").next().unwrap_or("");
                            after.split(',').any(|x| x.trim() == entry) == add
                        })
                });
                let done = *outcome == Outcome::Acked || seen;
                let (must, must_not) = if add == done {
                    (&mut model.proxies, &mut model.no_proxies)
                } else {
                    (&mut model.no_proxies, &mut model.proxies)
                };
                must_not.remove(entry);
                must.insert(entry.clone());
            }
        }
    }
    // The whole model, every cycle: nothing acknowledged is ever lost.
    for (dev, revoked) in &model.paired {
        let d = device(admin, dev)
            .await
            .unwrap_or_else(|| panic!("cycle {cycle}: paired device {dev} lost"));
        assert_eq!(
            !operator_token(&d)["revokedAtMs"].is_null(),
            *revoked,
            "cycle {cycle}: {dev}'s revocation state"
        );
    }
    for dev in &model.gone {
        assert!(
            device(admin, dev).await.is_none(),
            "cycle {cycle}: {dev} came back"
        );
    }
    for rid in model.pending.keys() {
        let r = admin
            .get(&format!("/admin/v1/pairing/requests/{rid}"))
            .await;
        assert_eq!(r.status, 200, "cycle {cycle}: pending request {rid} lost");
    }
    for e in &model.proxies {
        assert!(entries.contains(e), "cycle {cycle}: proxy entry {e} lost");
    }
    for e in &model.no_proxies {
        assert!(
            !entries.contains(e),
            "cycle {cycle}: proxy entry {e} came back"
        );
    }
    // The trusted-proxy list is the "after" of its last audit record.
    let last_edit = audit_since(admin, 0).await.into_iter().rev().find(|e| {
        e["target"] == "gateway.trustedProxies"
            && e["outcome"] == "ok"
            && e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("trustedProxies."))
    });
    if let Some(e) = last_edit {
        let after: BTreeSet<String> = e["detail"]
            .as_str()
            .unwrap()
            .rsplit("->")
            .next()
            .unwrap()
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
        entries.retain(|x| !x.is_empty());
        assert_eq!(
            entries, after,
            "cycle {cycle}: the proxy list is not its last audited edit"
        );
    }
}

/// Makes `n` pending requests: remote devices (through the trusted
/// 127.0.0.1 with X-Forwarded-For) that get `pairing required`.
async fn make_pending(ws: &str, n: usize, model: &mut Model) {
    for _ in 0..n {
        let d = DeviceIdentity::generate();
        // one address per device (the per-address cap on pending requests)
        let k = model.pending.len() + model.paired.len() + model.gone.len();
        let addr = format!("198.18.{}.{}", k / 250, k % 250 + 1);
        let mut c = Conn::open(ws, &[("X-Forwarded-For", addr.as_str())])
            .await
            .unwrap();
        let f = c
            .connect(&ConnectOpts::with_token(TOKEN).device(&d))
            .await
            .unwrap_err();
        let rid = f
            .error
            .as_ref()
            .and_then(|e| e["details"]["requestId"].as_str());
        let rid = rid
            .unwrap_or_else(|| panic!("no pairing request: {f:?}"))
            .to_string();
        model.fresh.insert(rid.clone());
        model.pending.insert(rid, d.device_id.clone());
    }
}

/// One worker of a burst: mutations until the server is gone.
async fn worker(admin: Admin, queue: Arc<Mutex<Vec<Op>>>, done: Arc<Mutex<Vec<(Op, Outcome)>>>) {
    loop {
        let Some(op) = queue.lock().unwrap().pop() else {
            return;
        };
        let e = Some(json!({}));
        let (method, path, body) = match &op {
            Op::Approve { rid, .. } => (
                "POST",
                format!("/admin/v1/pairing/requests/{rid}/approve"),
                e,
            ),
            Op::Reject { rid, .. } => (
                "POST",
                format!("/admin/v1/pairing/requests/{rid}/reject"),
                e,
            ),
            Op::Rotate { dev, .. } => (
                "POST",
                format!("/admin/v1/devices/{dev}/tokens/operator/rotate"),
                e,
            ),
            Op::Revoke { dev } => (
                "DELETE",
                format!("/admin/v1/devices/{dev}/tokens/operator"),
                None,
            ),
            Op::Remove { dev } => ("DELETE", format!("/admin/v1/devices/{dev}"), None),
            Op::ProxyAdd { entry } => (
                "POST",
                "/admin/v1/trusted-proxies".to_string(),
                Some(json!({ "entry": entry })),
            ),
            Op::ProxyDel { entry } => {
                ("DELETE", format!("/admin/v1/trusted-proxies/{entry}"), None)
            }
        };
        let r = admin.try_send(method, &path, body.as_ref()).await;
        if !record(&op, r, &done, &queue) {
            return;
        }
    }
}

/// Records what became of `op`; false once the server is gone (the rest
/// of the queue is then not sent).
fn record(
    op: &Op,
    r: Result<common::http::Resp, String>,
    done: &Mutex<Vec<(Op, Outcome)>>,
    queue: &Mutex<Vec<Op>>,
) -> bool {
    let outcome = match r {
        Ok(r) if r.status == 200 || r.status == 201 => Outcome::Acked,
        Ok(r) => panic!("{op:?}: unexpected {} {}", r.status, r.body),
        // No answer: the server was killed under it.
        Err(_) => Outcome::Unknown,
    };
    done.lock().unwrap().push((op.clone(), outcome));
    if outcome == Outcome::Unknown {
        queue.lock().unwrap().clear();
        return false;
    }
    true
}

/// A burst of mutations over what the model has.
fn plan(model: &Model, rng: &mut Rng, cycle: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for (rid, dev) in &model.pending {
        if rng.below(4) == 0 {
            ops.push(Op::Reject {
                rid: rid.clone(),
                dev: dev.clone(),
            });
        } else {
            ops.push(Op::Approve {
                rid: rid.clone(),
                dev: dev.clone(),
            });
        }
    }
    // Devices get at most one operation per burst, so that a lost answer
    // has one meaning.
    for (dev, revoked) in &model.paired {
        match rng.below(6) {
            0 | 1 if !revoked => ops.push(Op::Rotate {
                dev: dev.clone(),
                before: None,
            }),
            2 if !revoked => ops.push(Op::Revoke { dev: dev.clone() }),
            3 => ops.push(Op::Remove { dev: dev.clone() }),
            _ => {}
        }
    }
    // Entries never repeat (an add of an entry already there is not a change
    // its audit record could tell apart).
    for i in 0..6u64 {
        let n = cycle as u64 * 6 + i;
        ops.push(Op::ProxyAdd {
            entry: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
        });
    }
    for e in model.proxies.iter().take(3) {
        ops.push(Op::ProxyDel { entry: e.clone() });
    }
    // shuffle
    for i in (1..ops.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ops.swap(i, j);
    }
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_mutations_survive_sigkill_at_random_moments_and_the_audit_log_matches() {
    let target: usize = std::env::var("CLAWGATE_CRASH_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("CLAWGATE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash suite: CLAWGATE_CRASH_SEED={seed}, {target} acknowledged mutations");
    let mut rng = Rng(seed);
    let (_d, home, state) = dirs();
    let cfg = state.parent().unwrap().join("openclaw.json");
    std::fs::write(
        &cfg,
        format!("{{ gateway: {{ auth: {{ token: '{TOKEN}' }}, trustedProxies: ['127.0.0.1'] }} }}"),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let mut model = Model::default();
    let mut last: Vec<(Op, Outcome)> = Vec::new();
    let mut cycle = 0;
    let mut kills = 0;
    while model.acked < target {
        cycle += 1;
        let mut p = spawn(&home, &state, &["--config", &cfg]);
        let admin = admin_when_started(&state);
        verify(&admin, &mut model, &last, cycle).await;
        make_pending(&url(&p), 8, &mut model).await;
        let mut ops = plan(&model, &mut rng, cycle);
        // The rotation's "before" is read now, so a lost answer can be told.
        for op in ops.iter_mut() {
            if let Op::Rotate { dev, before } = op {
                *before = device(&admin, dev)
                    .await
                    .and_then(|d| operator_token(&d)["rotatedAtMs"].as_u64());
            }
        }
        let n = ops.len();
        let queue = Arc::new(Mutex::new(ops));
        let done = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..3)
            .map(|_| tokio::spawn(worker(admin.clone(), queue.clone(), done.clone())))
            .collect();
        // Kill at a random moment of the burst (≈1-2 ms per mutation here),
        // or, now and then, after it.
        let at = Duration::from_micros(rng.below(n as u64 * 1500 + 1));
        tokio::time::sleep(at).await;
        p.child.kill().unwrap();
        p.child.wait().unwrap();
        kills += 1;
        for w in workers {
            w.await.unwrap();
        }
        drop(p);
        last = std::mem::take(&mut *done.lock().unwrap());
        model.acked += last.iter().filter(|(_, o)| *o == Outcome::Acked).count();
        model.unknown += last.iter().filter(|(_, o)| *o == Outcome::Unknown).count();
    }
    // The last kill's lost answers are checked on one more start.
    let _p = spawn(&home, &state, &["--config", &cfg]);
    let admin = admin_when_started(&state);
    verify(&admin, &mut model, &last, cycle + 1).await;
    println!(
        "crash suite: {} acknowledged mutations, {} lost answers resolved by the audit log, {kills} SIGKILLs, {} restarts, {} unflushed pending requests lost in a kill before any durable commit (allowed), seed {seed}",
        model.acked,
        model.unknown,
        kills + 1,
        model.lost_fresh
    );
    assert!(kills >= 10, "a real number of kills");
}
