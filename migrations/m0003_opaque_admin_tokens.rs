//! Schema 3: admin tokens minted through the API are opaque and stored as
//! digests; the HS256 signing keys of the admin JWTs they replace are deleted,
//! so that a copy of the database holds nothing to sign a credential with.
//! Admin JWTs minted before this step stop authenticating (mint new tokens).

use redb::{TableHandle, WriteTransaction};

use crate::store::tables::*;
use crate::store::StoreError;

pub fn run(txn: &WriteTransaction) -> Result<(), StoreError> {
    let exists = txn.list_tables()?.any(|t| t.name() == ADMIN_KEYS.name());
    if exists {
        txn.delete_table(ADMIN_KEYS)?;
    }
    Ok(())
}
