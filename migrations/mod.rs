//! redb schema steps, applied in order. Each step runs in one write transaction
//! that also records the new schema version, so a crash leaves the database at a
//! whole step. A database stamped with a newer version than [`LATEST`] is refused.

use redb::WriteTransaction;

use crate::store::StoreError;

#[path = "m0001_initial.rs"]
mod m0001_initial;
#[path = "m0002_decisions_and_admin_tokens.rs"]
mod m0002_decisions_and_admin_tokens;
#[path = "m0003_opaque_admin_tokens.rs"]
mod m0003_opaque_admin_tokens;
#[path = "m0004_upstream_identities.rs"]
mod m0004_upstream_identities;

pub struct Migration {
    /// The schema version this step upgrades from.
    pub from: u32,
    pub summary: &'static str,
    pub run: fn(&WriteTransaction) -> Result<(), StoreError>,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 0,
        summary:
            "create meta, devices, device_tokens, pending, overrides, admin_keys and audit tables",
        run: m0001_initial::run,
    },
    Migration {
        from: 1,
        summary: "add decided (pairing decisions) and admin_tokens (minted admin JWTs) tables",
        run: m0002_decisions_and_admin_tokens::run,
    },
    Migration {
        from: 2,
        summary:
            "delete admin_keys (admin JWT signing keys): minted admin tokens are opaque digests now",
        run: m0003_opaque_admin_tokens::run,
    },
    Migration {
        from: 3,
        summary: "add upstream_identities (front-door mode: one upstream identity per device)",
        run: m0004_upstream_identities::run,
    },
];

/// The schema version this binary writes.
pub const LATEST: u32 = MIGRATIONS.len() as u32;
