//! The client quotas on disk: `client-quotas.json` in the (first) data dir.
//!
//! Byte map of the file (JSON, written whole with temp-fsync-rename, then the directory fsynced):
//! ```text
//! { "version": 1,
//!   "entries": [ { "entity": { "user": "alice", "client-id": null },   (null = <default>)
//!                  "quotas": { "producer_byte_rate": 1048576.0 } }, ... ] }
//! ```
//!
//! # Invariants
//! - The file on disk is always a complete version: a crash leaves the old or the new one.
//! - What is loaded passes the same checks as an AlterClientQuotas request (a hand-edited bad
//!   entry refuses the start with a clear message rather than enforcing nonsense).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::entity::{validate_value, QuotaEntity, QuotaKey};

pub const FILE_NAME: &str = "client-quotas.json";
const FORMAT_VERSION: u32 = 1;

/// Every stored entity with its quotas; an entity without quotas is not kept.
pub type QuotaTable = BTreeMap<QuotaEntity, BTreeMap<QuotaKey, f64>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid client quota file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    entity: BTreeMap<String, Option<String>>,
    quotas: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<FileEntry>,
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Loads the table at `path`; a missing file is an empty table.
pub fn load(path: &Path) -> Result<QuotaTable, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(QuotaTable::new()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: File = serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    let mut table = QuotaTable::new();
    for entry in file.entries {
        let parts = entry
            .entity
            .iter()
            .map(|(kind, name)| (kind.as_str(), name.as_deref()));
        let entity = QuotaEntity::from_wire(parts).map_err(corrupt)?;
        let mut quotas = BTreeMap::new();
        for (key, value) in entry.quotas {
            let key = validate_value(&entity, &key, value).map_err(corrupt)?;
            quotas.insert(key, value);
        }
        if !quotas.is_empty() {
            table.insert(entity, quotas);
        }
    }
    Ok(table)
}

/// Writes the whole table: temp file, fsync, rename over the old one, fsync the directory.
pub fn save(path: &Path, table: &QuotaTable) -> Result<(), StoreError> {
    let entries = table
        .iter()
        .map(|(entity, quotas)| FileEntry {
            entity: entity
                .0
                .iter()
                .map(|(kind, name)| (kind.name().to_string(), name.clone()))
                .collect(),
            quotas: quotas
                .iter()
                .map(|(key, value)| (key.name().to_string(), *value))
                .collect(),
        })
        .collect();
    let file = File {
        version: FORMAT_VERSION,
        entries,
    };
    let text = serde_json::to_string_pretty(&file).expect("the table serializes");
    crate::durable_file::replace_atomically(path, text.as_bytes()).map_err(|source| {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_table_loads_back() {
        // Round trip of named and default entities; no temp file is left behind.
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(load(&path).unwrap().is_empty());
        let mut table = QuotaTable::new();
        let alice = QuotaEntity::from_wire([("user", Some("alice")), ("client-id", None)]).unwrap();
        table.insert(
            alice.clone(),
            BTreeMap::from([(QuotaKey::ProducerByteRate, 1024.0)]),
        );
        let ip = QuotaEntity::from_wire([("ip", None)]).unwrap();
        table.insert(
            ip,
            BTreeMap::from([(QuotaKey::ConnectionCreationRate, 5.0)]),
        );
        save(&path, &table).unwrap();
        assert_eq!(load(&path).unwrap(), table);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn bad_files_are_refused() {
        // Garbage, an unknown version, a bad entity and a bad value are each a clear error.
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        for text in [
            "not json",
            r#"{"version":9,"entries":[]}"#,
            r#"{"version":1,"entries":[{"entity":{"group":"g"},"quotas":{}}]}"#,
            r#"{"version":1,"entries":[{"entity":{"user":"a"},"quotas":{"producer_byte_rate":-1}}]}"#,
        ] {
            std::fs::write(&path, text).unwrap();
            assert!(
                matches!(load(&path), Err(StoreError::Corrupt { .. })),
                "{text}"
            );
        }
    }
}
