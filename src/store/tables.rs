//! Table definitions (schema 1). Keys are strings or sequence numbers; values are
//! versioned byte blobs (see `records`).

use redb::TableDefinition;

/// `schema_version` → u32 big-endian.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// device id → `DeviceRecord`.
pub const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// hex SHA-256 of a device token → `{deviceId, role}`.
pub const DEVICE_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("device_tokens");
/// request id → `PendingRecord`.
pub const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
/// config key → runtime override (admin API).
pub const OVERRIDES: TableDefinition<&str, &[u8]> = TableDefinition::new("overrides");
/// kid → admin JWT signing key.
pub const ADMIN_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("admin_keys");
/// sequence number → audit event (append-only).
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// request id → `DecidedRecord` (schema 2).
pub const DECIDED: TableDefinition<&str, &[u8]> = TableDefinition::new("decided");
/// jti → `AdminTokenRecord` (schema 2).
pub const ADMIN_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("admin_tokens");
/// downstream device id → the 32-byte Ed25519 seed of its upstream identity
/// (front-door mode; schema 4).
pub const UPSTREAM_IDENTITIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("upstream_identities");
