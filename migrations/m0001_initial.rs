//! Schema 1: the initial tables.

use redb::WriteTransaction;

use crate::store::tables::*;
use crate::store::StoreError;

pub fn run(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(DEVICES)?;
    txn.open_table(DEVICE_TOKENS)?;
    txn.open_table(PENDING)?;
    txn.open_table(OVERRIDES)?;
    txn.open_table(ADMIN_KEYS)?;
    txn.open_table(AUDIT)?;
    Ok(())
}
