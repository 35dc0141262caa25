//! The identity clawgate presents upstream for one downstream device: an
//! Ed25519 key generated on first use and kept in redb, never the client's
//! own key. Stable across reconnects, distinct per device.

use std::collections::HashMap;
use std::sync::RwLock;

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

/// The key under which clawgate keeps its own upstream identity (for its
/// maintenance calls, e.g. making the upstream forget a removed device);
/// not a device id, so it never collides with one.
pub const MAINTENANCE: &str = "clawgate:maintenance";

/// Downstream device id ↔ the device id the upstream sees for it, for
/// translating `nodeId`s both ways (a node's id upstream is its upstream
/// identity's). Filled from redb at start and as identities are made.
#[derive(Default)]
pub struct IdMap {
    map: RwLock<Ids>,
}

#[derive(Default)]
struct Ids {
    up_of: HashMap<String, String>,
    down_of: HashMap<String, String>,
}

impl IdMap {
    /// Every stored identity.
    pub fn load(store: &Store) -> Result<IdMap, StoreError> {
        let m = IdMap::default();
        let txn = store.read()?;
        let t = match txn.open_table(tables::UPSTREAM_IDENTITIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(m),
            Err(e) => return Err(e.into()),
        };
        for row in t.iter()? {
            let (k, v) = row?;
            if let Ok(seed) = <[u8; 32]>::try_from(v.value()) {
                m.insert(k.value(), &Identity::from_seed(seed).device_id());
            }
        }
        Ok(m)
    }

    fn insert(&self, down: &str, up: &str) {
        if down == MAINTENANCE {
            return;
        }
        let mut ids = self.map.write().expect("id map lock");
        ids.up_of.insert(down.to_string(), up.to_string());
        ids.down_of.insert(up.to_string(), down.to_string());
    }

    #[cfg(test)]
    pub fn insert_for_test(&self, down: &str, up: &str) {
        self.insert(down, up);
    }

    /// The upstream id of a downstream device.
    pub fn up_of(&self, down: &str) -> Option<String> {
        self.map
            .read()
            .expect("id map lock")
            .up_of
            .get(down)
            .cloned()
    }

    /// The downstream device of an upstream id.
    pub fn down_of(&self, up: &str) -> Option<String> {
        self.map
            .read()
            .expect("id map lock")
            .down_of
            .get(up)
            .cloned()
    }

    /// Forgets a removed device (its next pairing gets a new identity).
    pub fn remove(&self, down: &str) {
        let mut ids = self.map.write().expect("id map lock");
        if let Some(up) = ids.up_of.remove(down) {
            ids.down_of.remove(&up);
        }
    }
}

/// The upstream identity of `device_id`, created (durably) the first time.
pub async fn for_device(
    store: &Store,
    ids: &IdMap,
    device_id: &str,
) -> Result<Identity, StoreError> {
    let identity = stored_or_new(store, device_id).await?;
    ids.insert(device_id, &identity.device_id());
    Ok(identity)
}

async fn stored_or_new(store: &Store, device_id: &str) -> Result<Identity, StoreError> {
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
