//! The writer thread. It owns every write transaction. When a write of the
//! store itself fails (a full disk, an I/O error), redb refuses every later
//! operation on that handle ("Previous I/O error … re-open the database"), so
//! the writer closes the database and opens it again, and keeps the failure
//! for `/readyz` until a commit succeeds again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redb::{Database, Durability, WriteTransaction};

use super::StoreError;

/// How often the writer flushes non-durable commits and, while the store is
/// failing, checks whether it can write again.
const TICK: Duration = Duration::from_secs(1);

/// The free space a failed store waits for before it tries a commit on its
/// own (a commit that needs to grow the file needs more than an empty one).
const MIN_FREE_BYTES: u64 = 1 << 20;

/// What a job did, for the writer's bookkeeping.
pub(super) enum Ran {
    /// Committed; `durable` when with `Durability::Immediate`.
    Committed { durable: bool },
    /// The job's own logic refused; nothing was written.
    Aborted,
    /// The store itself failed (begin, commit): the handle must be reopened.
    StoreFailed,
    /// There was no database to run on (a reopen has not succeeded yet).
    NoDatabase,
    /// Close the database and stop; the sender hears when it is closed.
    Close(tokio::sync::oneshot::Sender<()>),
}

/// A write job: runs on the writer thread with the database, or with the
/// reason there is none. It returns what it did and its reply, which the
/// writer delivers once it has dealt with a failure (so that a caller that
/// saw a failed write and reads next finds the database reopened).
pub(super) type Job = Box<dyn FnOnce(Result<&Database, StoreError>) -> (Ran, Reply) + Send>;

/// A job's reply to its caller, delivered by the writer.
pub(super) type Reply = Box<dyn FnOnce() + Send>;

/// What the writer shares with readers.
pub(super) struct Shared {
    path: PathBuf,
    /// The open database; `None` while a reopen after a failure has not
    /// succeeded.
    db: ArcSwapOption<Database>,
    /// The last failure of the store itself (begin, commit, flush, reopen),
    /// cleared by the next commit that succeeds; `/readyz` reports it.
    fault: Mutex<Option<StoreError>>,
    /// Set once the store is closed for good.
    closed: AtomicBool,
}

impl Shared {
    pub(super) fn new(path: PathBuf, db: Database) -> Shared {
        Shared {
            path,
            db: ArcSwapOption::from_pointee(db),
            fault: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn fault(&self) -> Option<StoreError> {
        self.fault.lock().expect("fault lock").clone()
    }

    fn set_fault(&self, e: Option<StoreError>) {
        *self.fault.lock().expect("fault lock") = e;
    }

    /// Runs `with` on the open database, or answers why there is none.
    pub(super) fn with_db<T>(
        &self,
        with: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.db.load();
        match guard.as_deref() {
            Some(db) => with(db),
            None if self.closed.load(Ordering::Acquire) => Err(StoreError::Closed),
            None => Err(self.fault().unwrap_or(StoreError::Reopening)),
        }
    }
}

/// Wraps `f` into a job that commits with `durability` when `f` returns
/// `Ok`, records a failure of the store itself, and hands the result to
/// `reply`.
pub(super) fn job<T, E, F, R>(shared: Arc<Shared>, durability: Durability, f: F, reply: R) -> Job
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&WriteTransaction) -> Result<T, E> + Send + 'static,
    R: FnOnce(Result<T, E>) + Send + 'static,
{
    Box::new(move |db| {
        let durable = !matches!(durability, Durability::None);
        let db = match db {
            Ok(db) => db,
            Err(e) => return (Ran::NoDatabase, Box::new(move || reply(Err(E::from(e))))),
        };
        let (result, ran) = match run_write(db, durability, f) {
            Ok(Ok(v)) => {
                shared.set_fault(None);
                (Ok(v), Ran::Committed { durable })
            }
            Ok(Err(e)) => (Err(e), Ran::Aborted),
            Err(e) => {
                tracing::error!(error = %e, "state write failed");
                shared.set_fault(Some(e.clone()));
                (Err(E::from(e)), Ran::StoreFailed)
            }
        };
        (ran, Box::new(move || reply(result)))
    })
}

/// A write transaction: the outer error is the store's own (begin, commit),
/// the inner one is `f`'s.
fn run_write<T, E, F>(
    db: &Database,
    durability: Durability,
    f: F,
) -> Result<Result<T, E>, StoreError>
where
    F: FnOnce(&WriteTransaction) -> Result<T, E>,
{
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)
        .map_err(|e| StoreError::Db(e.to_string()))?;
    match f(&txn) {
        Ok(v) => {
            txn.commit()?;
            Ok(Ok(v))
        }
        Err(e) => {
            let _ = txn.abort();
            Ok(Err(e))
        }
    }
}

/// An empty durable commit: makes earlier non-durable commits durable.
fn flush(db: &Database) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Db(e.to_string()))?;
    txn.commit()?;
    Ok(())
}

pub(super) fn writer_loop(shared: Arc<Shared>, rx: std_mpsc::Receiver<Job>) {
    let mut w = Writer {
        db: shared.db.load_full(),
        shared,
        dirty: false,
    };
    loop {
        let waiting = w.dirty || w.failing();
        let job = if waiting {
            match rx.recv_timeout(TICK) {
                Ok(job) => Some(job),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => break,
            }
        };
        let closing = match job {
            Some(job) => w.run(job),
            None => {
                w.tick();
                None
            }
        };
        if let Some(done) = closing {
            w.close();
            let _ = done.send(());
            return;
        }
    }
    w.close();
}

struct Writer {
    shared: Arc<Shared>,
    /// The writer's own handle (the same as `shared.db` when open).
    db: Option<Arc<Database>>,
    /// A non-durable commit has not been made durable yet.
    dirty: bool,
}

impl Writer {
    fn failing(&self) -> bool {
        self.db.is_none() || self.shared.fault().is_some()
    }

    /// Runs one job; `Some` when it asks the writer to close.
    fn run(&mut self, job: Job) -> Option<tokio::sync::oneshot::Sender<()>> {
        if self.db.is_none() {
            self.reopen();
        }
        let db = self
            .db
            .as_deref()
            .ok_or_else(|| self.shared.fault().unwrap_or(StoreError::Reopening));
        let (ran, reply) = job(db);
        let closing = match ran {
            // An immediate commit also makes earlier non-durable ones durable.
            Ran::Committed { durable } => {
                self.dirty = !durable;
                None
            }
            Ran::Aborted | Ran::NoDatabase => None,
            Ran::StoreFailed => {
                self.reopen();
                None
            }
            Ran::Close(done) => Some(done),
        };
        reply();
        closing
    }

    /// Makes non-durable commits durable and closes the database (its file
    /// and lock go with the last handle, which is this one).
    fn close(&mut self) {
        if self.dirty {
            if let Some(db) = &self.db {
                let _ = flush(db);
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.db.store(None);
        drop(self.db.take());
    }

    /// The periodic flush; while the store is failing, a check whether it
    /// can write again (so that `/readyz` recovers without a client write).
    fn tick(&mut self) {
        if self.db.is_none() {
            self.reopen();
        }
        let Some(db) = self.db.clone() else { return };
        let failing = self.shared.fault().is_some();
        if failing && free_bytes(&self.shared.path).is_some_and(|b| b < MIN_FREE_BYTES) {
            return;
        }
        if !failing && !self.dirty {
            return;
        }
        match flush(&db) {
            Ok(()) => {
                if failing {
                    tracing::info!("state writes succeed again");
                }
                self.shared.set_fault(None);
                self.dirty = false;
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "state flush failed");
                }
                self.shared.set_fault(Some(e));
                self.reopen();
            }
        }
    }

    /// Closes the database and opens it again: the only recovery redb has
    /// from a failed write. The file lock goes with the last handle; a reader
    /// that still holds the old one makes the open fail, and the next tick
    /// tries again.
    fn reopen(&mut self) {
        self.shared.db.store(None);
        drop(self.db.take());
        match super::open_db(&self.shared.path) {
            Ok(db) => {
                let db = Arc::new(db);
                self.shared.db.store(Some(db.clone()));
                self.db = Some(db);
                tracing::warn!(path = %self.shared.path.display(), "state database reopened after a failed write");
            }
            Err(e) => {
                tracing::warn!(error = %e, "state database not reopened yet; retrying every second");
                if self.shared.fault().is_none() {
                    self.shared.set_fault(Some(e));
                }
            }
        }
    }
}

/// Bytes available to this process on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path.parent()?;
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
