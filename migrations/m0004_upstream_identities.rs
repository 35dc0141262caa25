//! Schema 4: the identities clawgate presents to an upstream gateway in
//! front-door mode, one per downstream device (an Ed25519 seed each).

use redb::WriteTransaction;

use crate::store::tables::*;
use crate::store::StoreError;

pub fn run(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(UPSTREAM_IDENTITIES)?;
    Ok(())
}
