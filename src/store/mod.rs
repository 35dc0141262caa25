//! State in one redb file (`<state dir>/clawgate.redb`, mode 0600, dir 0700).
//!
//! Reads run anywhere (MVCC). Every write goes through one writer thread that owns
//! write transactions; callers await its reply. Pairing decisions and token
//! changes commit with `Durability::Immediate`; cheap, loss-tolerant writes
//! (pending requests, last-seen) commit with `Durability::None` and are made
//! durable by the next immediate commit or the periodic flush.

mod error;
pub mod records;
pub mod tables;
mod writer;

#[path = "../../migrations/mod.rs"]
pub mod migrations;

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};

pub use records::{
    AdminTokenRecord, AuditEvent, DecidedRecord, DeviceRecord, OverrideRecord, PendingRecord,
    TokenRecord,
};
use tables::*;
use writer::Job;

pub use error::StoreError;

/// Handle to the store; cheap to clone. When the last clone is dropped the writer
/// thread finishes its queue, flushes, and the database file is closed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<writer::Shared>,
    tx: Option<std_mpsc::Sender<Job>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Creates the state directory with mode 0700 when missing.
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating when absent) `<state_dir>/clawgate.redb` and runs pending
    /// migrations.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        ensure_state_dir(state_dir)?;
        let path = state_dir.join("clawgate.redb");
        let db = open_db(&path)?;
        migrate(&db, &path)?;
        let shared = Arc::new(writer::Shared::new(path, db));
        let (tx, rx) = std_mpsc::channel::<Job>();
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("clawgate-store".into())
            .spawn(move || writer::writer_loop(writer_shared, rx))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                tx: Some(tx),
                handle: Some(handle),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        self.inner.shared.path()
    }

    /// Makes every commit durable and closes the database file now, while
    /// other handles may still exist (they answer `store_closed` from then
    /// on): a stopped gateway releases its state for the next one.
    pub async fn close(&self) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |_| (writer::Ran::Close(done_tx), Box::new(|| {})));
        if self.send(job).is_ok() {
            let _ = done_rx.await;
        }
    }

    pub fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.inner.shared.with_db(|db| Ok(db.begin_read()?))
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        self.inner
            .tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Runs `f` in a write transaction on the writer thread and commits with the
    /// given durability when it returns `Ok`. Resolves after the commit.
    pub async fn write<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let job = writer::job(self.inner.shared.clone(), durability, f, move |r| {
            let _ = reply_tx.send(r);
        });
        self.send(job)?;
        reply_rx.await.map_err(|_| E::from(StoreError::Closed))?
    }

    /// Blocking variant for non-async callers (start-up, CLI).
    pub fn write_blocking<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    {
        let (reply_tx, reply_rx) = std_mpsc::channel();
        let job = writer::job(self.inner.shared.clone(), durability, f, move |r| {
            let _ = reply_tx.send(r);
        });
        self.send(job)?;
        reply_rx.recv().map_err(|_| E::from(StoreError::Closed))?
    }

    // ---- typed reads ----

    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DEVICES)?;
        get_json(&table, device_id)
    }

    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DEVICES)?;
        all_json(&table)
    }

    /// Up to `limit` devices with an id after `after`, in id order, and
    /// whether more follow.
    pub fn devices_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<DeviceRecord>, bool), StoreError> {
        use std::ops::Bound;
        let txn = self.read()?;
        let table = txn.open_table(DEVICES)?;
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut more = false;
        for item in table.range::<&str>((lower, Bound::Unbounded))? {
            if out.len() == limit {
                more = true;
                break;
            }
            let (_, v) = item?;
            out.push(records::decode(v.value())?);
        }
        Ok((out, more))
    }

    pub fn pending(&self) -> Result<Vec<PendingRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PENDING)?;
        all_json(&table)
    }

    /// Whether the store can serve: the schema reads, and the last write of
    /// the store itself did not fail (a full disk, an I/O error, corruption
    /// found while writing).
    pub fn check_ready(&self) -> Result<(), StoreError> {
        if let Some(e) = self.inner.shared.fault() {
            return Err(e);
        }
        self.schema_version().map(|_| ())
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(META)?;
        read_schema_version(&table)
    }
}

/// Opens the database file: a missing file is created; an existing file must
/// hold a database. An empty file is never taken for a new database (that
/// would silently forget every paired device and every rotated token).
fn open_db(path: &Path) -> Result<Database, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let existing = match std::fs::metadata(path) {
        Ok(md) => Some(md.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if existing == Some(0) {
        return Err(StoreError::Unusable {
            path: path.display().to_string(),
            why: "is empty (0 bytes) but should hold clawgate's state".into(),
        });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(existing.is_none())
        .mode(0o600)
        .open(path)?;
    let backend = redb::backends::FileBackend::new(file).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
        other => StoreError::from(other),
    })?;
    let mut builder = redb::Builder::new();
    // An existing file is checked page by page as it opens (every checksum of
    // the committed trees): a file damaged outside redb is refused with a
    // clear message instead of being trusted (a plain open may panic on it).
    builder.set_check_integrity_on_open(existing.is_some());
    builder.create_with_backend(backend).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.display().to_string()),
        other if existing.is_some() => StoreError::Unusable {
            path: path.display().to_string(),
            why: format!("cannot be opened as a database ({other})"),
        },
        other => StoreError::from(other),
    })
}

const SCHEMA_KEY: &str = "schema_version";

fn read_schema_version(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u32, StoreError> {
    match table.get(SCHEMA_KEY)? {
        None => Ok(0),
        Some(v) => {
            let b = v.value();
            let arr: [u8; 4] = b
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema version".into()))?;
            Ok(u32::from_be_bytes(arr))
        }
    }
}

/// Applies every pending migration; refuses a database newer than this binary.
fn migrate(db: &Database, path: &Path) -> Result<(), StoreError> {
    let current = {
        let txn = db.begin_read()?;
        match txn.open_table(META) {
            Ok(table) => read_schema_version(&table)?,
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(e.into()),
        }
    };
    if current > migrations::LATEST {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found: current,
            supported: migrations::LATEST,
        });
    }
    for m in migrations::MIGRATIONS.iter().filter(|m| m.from >= current) {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        (m.run)(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(SCHEMA_KEY, (m.from + 1).to_be_bytes().as_slice())?;
        }
        txn.commit()?;
        tracing::info!(
            to = m.from + 1,
            summary = m.summary,
            "applied schema migration"
        );
    }
    Ok(())
}

/// Stamps a schema version (tests of the newer-schema refusal use it).
pub fn stamp_schema_version(path: &Path, version: u32) -> Result<(), StoreError> {
    let db = open_db(path)?;
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(SCHEMA_KEY, version.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

// ---- typed table helpers used inside transactions ----

pub fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(v) => Ok(Some(records::decode(v.value())?)),
        None => Ok(None),
    }
}

pub fn all_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(records::decode(v.value())?);
    }
    Ok(out)
}

pub fn put_device(txn: &WriteTransaction, rec: &DeviceRecord) -> Result<(), StoreError> {
    let mut devices = txn.open_table(DEVICES)?;
    let prev: Option<DeviceRecord> = get_json(&devices, &rec.device_id)?;
    devices.insert(rec.device_id.as_str(), records::encode(rec).as_slice())?;
    drop(devices);
    // Keep the digest → (device, role) index in step with the record.
    let mut index = txn.open_table(DEVICE_TOKENS)?;
    if let Some(prev) = prev {
        for t in prev.tokens.values() {
            index.remove(t.digest.as_str())?;
        }
    }
    for t in rec.tokens.values() {
        if t.revoked_at_ms.is_none() {
            let v = serde_json::json!({"deviceId": rec.device_id, "role": t.role});
            index.insert(t.digest.as_str(), records::encode(&v).as_slice())?;
        }
    }
    Ok(())
}

/// Forgets the upstream identity of a device (front-door mode): a device
/// that pairs again gets a new one.
pub fn delete_upstream_identity(txn: &WriteTransaction, device_id: &str) -> Result<(), StoreError> {
    let mut t = txn.open_table(UPSTREAM_IDENTITIES)?;
    t.remove(device_id)?;
    Ok(())
}

pub fn delete_device(
    txn: &WriteTransaction,
    device_id: &str,
) -> Result<Option<DeviceRecord>, StoreError> {
    let mut devices = txn.open_table(DEVICES)?;
    let prev: Option<DeviceRecord> = match devices.remove(device_id)? {
        Some(v) => Some(records::decode(v.value())?),
        None => None,
    };
    drop(devices);
    if let Some(prev) = &prev {
        let mut index = txn.open_table(DEVICE_TOKENS)?;
        for t in prev.tokens.values() {
            index.remove(t.digest.as_str())?;
        }
    }
    Ok(prev)
}

pub fn device_in(
    txn: &WriteTransaction,
    device_id: &str,
) -> Result<Option<DeviceRecord>, StoreError> {
    let devices = txn.open_table(DEVICES)?;
    get_json(&devices, device_id)
}

pub fn pending_in(txn: &WriteTransaction) -> Result<Vec<PendingRecord>, StoreError> {
    let table = txn.open_table(PENDING)?;
    all_json(&table)
}

pub fn put_pending(txn: &WriteTransaction, rec: &PendingRecord) -> Result<(), StoreError> {
    let mut table = txn.open_table(PENDING)?;
    table.insert(rec.request_id.as_str(), records::encode(rec).as_slice())?;
    Ok(())
}

pub fn delete_pending(
    txn: &WriteTransaction,
    request_id: &str,
) -> Result<Option<PendingRecord>, StoreError> {
    let mut table = txn.open_table(PENDING)?;
    let prev = match table.remove(request_id)? {
        Some(v) => Some(records::decode(v.value())?),
        None => None,
    };
    Ok(prev)
}

/// Appends an audit event inside the caller's transaction; returns its sequence number.
/// Audit records kept: older ones are dropped as new ones come in.
pub const AUDIT_RETENTION: u64 = 100_000;
/// Old records dropped per append, at most (bounds one transaction's cost
/// when a larger log from an older version is trimmed).
const AUDIT_TRIM_BATCH: usize = 64;

pub fn append_audit(txn: &WriteTransaction, ev: &AuditEvent) -> Result<u64, StoreError> {
    append_audit_kept(txn, ev, AUDIT_RETENTION)
}

fn append_audit_kept(
    txn: &WriteTransaction,
    ev: &AuditEvent,
    keep: u64,
) -> Result<u64, StoreError> {
    let mut table = txn.open_table(AUDIT)?;
    let next = match table.last()? {
        Some((k, _)) => k.value() + 1,
        None => 1,
    };
    let mut ev = ev.clone();
    ev.seq = next;
    table.insert(next, records::encode(&ev).as_slice())?;
    for _ in 0..AUDIT_TRIM_BATCH {
        let oldest = match table.first()? {
            Some((k, _)) => k.value(),
            None => break,
        };
        if oldest + keep > next {
            break;
        }
        table.remove(oldest)?;
    }
    Ok(next)
}

pub fn put_decided(txn: &WriteTransaction, rec: &DecidedRecord) -> Result<(), StoreError> {
    let mut table = txn.open_table(DECIDED)?;
    table.insert(rec.request_id.as_str(), records::encode(rec).as_slice())?;
    Ok(())
}

pub fn put_override(txn: &WriteTransaction, rec: &OverrideRecord) -> Result<(), StoreError> {
    let mut table = txn.open_table(OVERRIDES)?;
    table.insert(rec.key.as_str(), records::encode(rec).as_slice())?;
    Ok(())
}

pub fn delete_override(txn: &WriteTransaction, key: &str) -> Result<bool, StoreError> {
    let mut table = txn.open_table(OVERRIDES)?;
    let existed = table.remove(key)?.is_some();
    Ok(existed)
}

impl Store {
    pub fn decided(&self, request_id: &str) -> Result<Option<DecidedRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DECIDED)?;
        get_json(&table, request_id)
    }

    pub fn overrides(&self) -> Result<Vec<OverrideRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OVERRIDES)?;
        all_json(&table)
    }

    /// The device a live device token belongs to, by the token's digest (hex).
    pub fn device_token_owner(&self, digest_hex: &str) -> Result<Option<String>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(DEVICE_TOKENS)?;
        let v: Option<serde_json::Value> = get_json(&t, digest_hex)?;
        Ok(v.and_then(|v| v["deviceId"].as_str().map(str::to_string)))
    }

    pub fn admin_tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(ADMIN_TOKENS)?;
        all_json(&table)
    }

    pub fn admin_token(&self, jti: &str) -> Result<Option<AdminTokenRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(ADMIN_TOKENS)?;
        get_json(&table, jti)
    }

    /// Audit events with `seq > after`, oldest first, at most `limit`.
    pub fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for item in table.range(after.saturating_add(1)..)? {
            let (_, v) = item?;
            out.push(records::decode(v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Appends one audit event in its own durable transaction.
    pub async fn audit_now(&self, ev: AuditEvent) -> Result<u64, StoreError> {
        self.write(Durability::Immediate, move |txn| append_audit(txn, &ev))
            .await
    }

    /// Appends an audit record without an fsync of its own (durable within
    /// the periodic flush): for records an unauthenticated peer can cause.
    pub async fn audit_lazy(&self, ev: AuditEvent) -> Result<u64, StoreError> {
        self.write(Durability::None, move |txn| append_audit(txn, &ev))
            .await
    }
}

/// Creates a database at an older schema version (for upgrade tests).
pub fn create_at_schema(path: &Path, version: u32) -> Result<(), StoreError> {
    let db = open_db(path)?;
    for m in migrations::MIGRATIONS.iter().filter(|m| m.from < version) {
        let txn = db.begin_write()?;
        (m.run)(&txn)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(SCHEMA_KEY, (m.from + 1).to_be_bytes().as_slice())?;
        }
        txn.commit()?;
    }
    Ok(())
}

/// Loads a 32-byte key file from the state dir, creating it (mode 0600) when absent.
pub fn load_or_create_key(state_dir: &Path, name: &str) -> Result<[u8; 32], StoreError> {
    let path = state_dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            Ok(k)
        }
        Ok(_) => Err(StoreError::Corrupt(format!(
            "{} must hold exactly 32 bytes",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure_state_dir(state_dir)?;
            let k = crate::util::random_bytes();
            crate::util::write_private_file(&path, &k)?;
            Ok(k)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_file_is_private_and_migrated() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::open(&state).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations::LATEST);
        let mode = std::fs::metadata(state.join("clawgate.redb"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let _s = Store::open(dir.path()).unwrap();
        }
        // Dropping the last handle joins the writer and closes the file.
        let path = dir.path().join("clawgate.redb");
        stamp_schema_version(&path, migrations::LATEST + 1).unwrap();
        let err = Store::open(dir.path()).err().expect("refused");
        assert_eq!(err.code(), "store_newer_schema");
        let msg = err.to_string();
        assert!(msg.contains("newer than this clawgate supports"), "{msg}");
    }

    #[test]
    fn a_schema_1_database_is_upgraded_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clawgate.redb");
        create_at_schema(&path, 1).unwrap();
        {
            let db = open_db(&path).unwrap();
            let txn = db.begin_write().unwrap();
            put_device(
                &txn,
                &DeviceRecord {
                    device_id: "old".into(),
                    public_key: "pk".into(),
                    ..Default::default()
                },
            )
            .unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations::LATEST);
        assert_eq!(store.device("old").unwrap().unwrap().public_key, "pk");
        assert!(
            store.decided("x").unwrap().is_none(),
            "schema-2 tables exist"
        );
        assert!(store.admin_tokens().unwrap().is_empty());
        // Schema 3: no admin JWT signing keys are left in the file.
        let txn = store.read().unwrap();
        assert!(!txn
            .list_tables()
            .unwrap()
            .any(|t| redb::TableHandle::name(&t) == "admin_keys"));
    }

    fn test_event(i: u64) -> AuditEvent {
        AuditEvent {
            ts: i,
            actor: "t".into(),
            action: "a".into(),
            target: format!("x{i}"),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_audit_log_keeps_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..50u64 {
            store
                .write_blocking(Durability::None, move |txn| {
                    append_audit_kept(txn, &test_event(i), 10)
                })
                .unwrap();
        }
        let txn = store.read().unwrap();
        let t = txn.open_table(AUDIT).unwrap();
        let keys: Vec<u64> = t.iter().unwrap().map(|r| r.unwrap().0.value()).collect();
        assert_eq!(keys, (41..=50).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn audit_is_append_only_and_paged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..5 {
            let seq = store.audit_now(test_event(i)).await.unwrap();
            assert_eq!(seq, i + 1);
        }
        let page = store.audit(2, 2).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    }

    #[tokio::test]
    async fn write_then_read_device_and_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = DeviceRecord {
            device_id: "d1".into(),
            public_key: "pk".into(),
            roles: vec!["operator".into()],
            approved_via: "owner".into(),
            ..Default::default()
        };
        let r2 = rec.clone();
        store
            .write::<_, StoreError, _>(Durability::Immediate, move |txn| put_device(txn, &r2))
            .await
            .unwrap();
        assert_eq!(store.device("d1").unwrap(), Some(rec));
        let failing = store
            .write::<(), StoreError, _>(Durability::Immediate, |txn| {
                put_device(
                    txn,
                    &DeviceRecord {
                        device_id: "d2".into(),
                        ..Default::default()
                    },
                )?;
                Err(StoreError::Corrupt("abort".into()))
            })
            .await;
        assert!(failing.is_err());
        assert_eq!(
            store.device("d2").unwrap(),
            None,
            "aborted writes leave nothing"
        );
    }
}
