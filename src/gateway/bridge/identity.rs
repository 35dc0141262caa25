//! The identity clawgate presents upstream for one downstream device: an
//! Ed25519 key generated on first use and kept in redb, never the client's
//! own key. Stable across reconnects, distinct per device.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use redb::{Durability, ReadableTable};

use crate::gateway::device;
use crate::store::{tables, Store, StoreError};

pub struct Identity {
    key: SigningKey,
}

impl Identity {
    fn from_seed(seed: [u8; 32]) -> Identity {
        Identity {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The device id the upstream sees (SHA-256 of the public key, hex).
    pub fn device_id(&self) -> String {
        device::device_id(&self.key.verifying_key().to_bytes())
    }

    /// The public key, base64url without padding.
    pub fn public_key(&self) -> String {
        device::normalize_public_key(&self.key.verifying_key().to_bytes())
    }

    /// A signature over `payload`, base64url without padding.
    pub fn sign(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.key.sign(payload.as_bytes()).to_bytes())
    }
}

/// The upstream identity of `device_id`, created (durably) the first time.
pub async fn for_device(store: &Store, device_id: &str) -> Result<Identity, StoreError> {
    if let Some(seed) = stored(store, device_id)? {
        return Ok(Identity::from_seed(seed));
    }
    let id = device_id.to_string();
    let fresh = crate::util::random_bytes();
    let seed = store
        .write(Durability::Immediate, move |txn| {
            let mut t = txn.open_table(tables::UPSTREAM_IDENTITIES)?;
            // Two sessions of one device may race here: the first one wins.
            let existing = t.get(id.as_str())?.map(|v| v.value().to_vec());
            match existing.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()) {
                Some(seed) => Ok::<_, StoreError>(seed),
                None => {
                    t.insert(id.as_str(), fresh.as_slice())?;
                    Ok(fresh)
                }
            }
        })
        .await?;
    Ok(Identity::from_seed(seed))
}

fn stored(store: &Store, device_id: &str) -> Result<Option<[u8; 32]>, StoreError> {
    let txn = store.read()?;
    let t = match txn.open_table(tables::UPSTREAM_IDENTITIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = t.get(device_id)?;
    Ok(v.and_then(|v| <[u8; 32]>::try_from(v.value()).ok()))
}
