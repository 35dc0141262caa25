//! Store errors, each with a stable code.

/// Store errors, with stable codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error(
        "the disk is full; the change was not saved (free space in the state directory and retry)"
    )]
    Full,
    #[error("database error: {0}")]
    Db(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error(
        "the database {path} has schema version {found}, newer than this clawgate supports ({supported}); \
         run the clawgate version that wrote it, or restore a backup"
    )]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("the database {0} is in use by another process (is another clawgate running with this state dir?)")]
    Locked(String),
    #[error("the store is shut down")]
    Closed,
    #[error("the state database is being reopened after a failed write; retry in a moment")]
    Reopening,
    #[error(
        "the database {path} {why}. clawgate will not start over with an empty state: \
         restore the file from a backup, or, to really start from nothing (every device \
         pairs again, rotated tokens come back), move it away and start again"
    )]
    Unusable { path: String, why: String },
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Io(_) => "store_io",
            StoreError::Full => "store_disk_full",
            StoreError::Db(_) => "store_db",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::NewerSchema { .. } => "store_newer_schema",
            StoreError::Locked(_) => "store_locked",
            StoreError::Closed => "store_closed",
            StoreError::Reopening => "store_reopening",
            StoreError::Unusable { .. } => "store_unusable",
        }
    }
}

fn from_io(e: &std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error())
    {
        StoreError::Full
    } else {
        StoreError::Io(e.to_string())
    }
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match &e {
            redb::StorageError::Io(io) => from_io(io),
            _ => StoreError::Db(e.to_string()),
        }
    }
}

macro_rules! redb_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                let e: redb::Error = e.into();
                match e {
                    redb::Error::Io(io) => from_io(&io),
                    other => StoreError::Db(other.to_string()),
                }
            }
        }
    )*};
}
redb_err!(
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError
);

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        from_io(&e)
    }
}
