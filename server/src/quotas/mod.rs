//! Client quotas (KIP-55, KIP-219, KIP-546): the stored quotas every shard reads, their changes
//! (AlterClientQuotas, saved before they apply), and the byte-rate enforcement of Produce and
//! Fetch ([decision 0016](../../../docs/decisions/0016-client-quotas-enforced-per-broker.md)).
//!
//! Enforced: `producer_byte_rate` (request bytes of Produce) and `consumer_byte_rate` (record
//! bytes of Fetch). Stored, described and validated but not enforced: `request_percentage`,
//! `controller_mutation_rate`, `connection_creation_rate` (docs/COMPATIBILITY.md).
//!
//! # Invariants
//! - The table in memory is the one on disk: a change is saved (temp-fsync-rename) before it is
//!   swapped in, and changes are serialized by one writer lock.
//! - With no byte-rate quota stored, [`Quotas::enforcing`] is false and requests pay one atomic
//!   load, nothing more.
#![forbid(unsafe_code)]

pub mod enforce;
pub mod entity;
pub mod rate;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use enforce::{Bandwidth, Caller};
pub use entity::{QuotaEntity, QuotaFilter, QuotaKey};
pub use store::{QuotaTable, StoreError};

/// Entities the table holds at most: AlterClientQuotas cannot grow it without bound.
pub const ENTITIES_MAX: usize = 10_000;
/// Longest entity name accepted (user, client id, ip).
pub const ENTITY_NAME_BYTES_MAX: usize = 255;

/// Why an AlterClientQuotas entry was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterRefusal {
    /// Bad entity, key or value (INVALID_REQUEST, as Kafka).
    Invalid(String),
    /// The file could not be saved; nothing changed.
    Storage(String),
}

/// One entry of an AlterClientQuotas request: an entity (or why it is invalid) and its ops as
/// (key, value, remove).
pub struct Alteration {
    pub entity: Result<QuotaEntity, String>,
    pub ops: Vec<(String, f64, bool)>,
}

/// The broker's client quotas, shared by every shard.
pub struct Quotas {
    path: PathBuf,
    table: RwLock<Arc<QuotaTable>>,
    /// Whether any byte-rate quota is stored: the hot path's only question when none is.
    enforcing: AtomicBool,
    sensors: Mutex<enforce::Sensors>,
    /// Serializes changes: each saves the whole file.
    writer: Mutex<()>,
}

impl Quotas {
    /// Loads the quotas of `data_dir`; a missing file is no quotas.
    pub fn load(data_dir: &Path) -> Result<Self, StoreError> {
        let path = store::path_in(data_dir);
        let table = store::load(&path)?;
        let quotas = Self {
            path,
            enforcing: AtomicBool::new(false),
            table: RwLock::new(Arc::new(QuotaTable::new())),
            sensors: Mutex::new(enforce::Sensors::default()),
            writer: Mutex::new(()),
        };
        quotas.install(table);
        Ok(quotas)
    }

    pub fn enforcing(&self) -> bool {
        self.enforcing.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Arc<QuotaTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn install(&self, table: QuotaTable) {
        let enforcing = table.values().any(|quotas| {
            quotas.contains_key(&QuotaKey::ProducerByteRate)
                || quotas.contains_key(&QuotaKey::ConsumerByteRate)
        });
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.enforcing.store(enforcing, Ordering::Relaxed);
    }

    /// The entities a DescribeClientQuotas filter matches, with their quotas.
    pub fn describe(&self, filter: &QuotaFilter) -> Vec<(QuotaEntity, Vec<(QuotaKey, f64)>)> {
        let table = self.snapshot();
        table
            .iter()
            .filter(|(entity, _)| filter.matches(entity))
            .map(|(entity, quotas)| {
                let values = quotas.iter().map(|(key, value)| (*key, *value)).collect();
                (entity.clone(), values)
            })
            .collect()
    }

    /// Applies an AlterClientQuotas request: each entry checked on its own (an invalid one
    /// fails alone, as in Kafka); unless `validate_only`, the valid ones are saved, then
    /// applied. Blocking (file I/O): run it off the shard thread.
    pub fn alter(
        &self,
        alterations: Vec<Alteration>,
        validate_only: bool,
    ) -> Vec<Result<(), AlterRefusal>> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut table = (*self.snapshot()).clone();
        let results: Vec<Result<(), AlterRefusal>> = alterations
            .into_iter()
            .map(|alteration| apply(&mut table, alteration).map_err(AlterRefusal::Invalid))
            .collect();
        if validate_only || results.iter().all(Result::is_err) {
            return results;
        }
        if let Err(err) = store::save(&self.path, &table) {
            tracing::error!(%err, "saving client quotas failed; the change is not applied");
            let failed = format!("saving the client quotas failed: {err}");
            return results
                .into_iter()
                .map(|result| result.and(Err(AlterRefusal::Storage(failed.clone()))))
                .collect();
        }
        self.install(table);
        results
    }

    /// Records `bytes` of `caller` against its quota, if one applies; the throttle time in ms.
    pub fn charge(&self, bandwidth: Bandwidth, caller: &Caller, bytes: u64) -> u32 {
        let table = self.snapshot();
        let now_ms = ringtail_engine::clock::now_ms().max(0) as u64;
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        sensors.charge(&table, bandwidth, caller, bytes, now_ms)
    }
}

/// One entry applied to `table`: checked first as a whole, so a bad op leaves the entity as it
/// was (Kafka's `alterClientQuotaEntity`).
fn apply(table: &mut QuotaTable, alteration: Alteration) -> Result<(), String> {
    let entity = alteration.entity?;
    if entity
        .0
        .values()
        .flatten()
        .any(|name| name.len() > ENTITY_NAME_BYTES_MAX)
    {
        return Err(format!(
            "entity names are at most {ENTITY_NAME_BYTES_MAX} bytes"
        ));
    }
    let mut quotas = table.get(&entity).cloned().unwrap_or_default();
    for (key, value, remove) in alteration.ops {
        if remove {
            // Kafka ignores the removal of a key it does not know or does not hold.
            if let Some(key) = QuotaKey::parse(&key) {
                quotas.remove(&key);
            }
        } else {
            let key = entity::validate_value(&entity, &key, value)?;
            quotas.insert(key, value);
        }
    }
    if quotas.is_empty() {
        table.remove(&entity);
    } else {
        if !table.contains_key(&entity) && table.len() >= ENTITIES_MAX {
            return Err(format!(
                "the broker holds at most {ENTITIES_MAX} quota entities"
            ));
        }
        table.insert(entity, quotas);
    }
    Ok(())
}

/// A Produce or Fetch request while byte-rate quotas are stored: who sent it, its size, and the
/// throttle time its handler answered, which the connection then mutes itself for (KIP-219).
pub struct Charge {
    quotas: Arc<Quotas>,
    caller: Caller,
    request_bytes: u64,
    throttle_ms: std::cell::Cell<u32>,
}

impl Charge {
    pub fn new(quotas: Arc<Quotas>, caller: Caller, request_bytes: u64) -> Self {
        Self {
            quotas,
            caller,
            request_bytes,
            throttle_ms: std::cell::Cell::new(0),
        }
    }

    /// Charges the request's own size (Kafka's produce quota counts request bytes).
    pub fn charge_request(&self, bandwidth: Bandwidth) -> i32 {
        self.charge(bandwidth, self.request_bytes)
    }

    /// Charges `bytes`; the throttle time to answer, remembered for the connection's mute.
    pub fn charge(&self, bandwidth: Bandwidth, bytes: u64) -> i32 {
        let throttle_ms = self.quotas.charge(bandwidth, &self.caller, bytes);
        self.throttle_ms
            .set(self.throttle_ms.get().max(throttle_ms));
        assert!(throttle_ms <= enforce::THROTTLE_MS_MAX);
        throttle_ms as i32
    }

    pub fn throttle_ms(&self) -> u32 {
        self.throttle_ms.get()
    }
}

/// The user a quota knows a principal by: `User:alice` is `alice`; no principal is Kafka's
/// `ANONYMOUS`.
pub fn quota_user(principal: Option<&str>) -> String {
    match principal {
        Some(principal) => principal
            .strip_prefix("User:")
            .unwrap_or(principal)
            .to_string(),
        None => "ANONYMOUS".to_string(),
    }
}
