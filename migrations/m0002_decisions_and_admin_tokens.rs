//! Schema 2: remembered pairing decisions (so a decided request answers 409, not
//! 404) and the metadata of minted admin JWTs (listing and revocation).

use redb::WriteTransaction;

use crate::store::tables::*;
use crate::store::StoreError;

pub fn run(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DECIDED)?;
    txn.open_table(ADMIN_TOKENS)?;
    Ok(())
}
