//! The SCRAM credential store: `credentials.json` in the (first) data dir.
//!
//! Byte map of the file (JSON, written whole with temp-fsync-rename, then the directory fsynced):
//! ```text
//! { "version": 1,
//!   "users": { "<name>": { "SCRAM-SHA-256": { "salt": "<base64>", "iterations": 4096,
//!                                              "stored_key": "<base64>", "server_key": "<base64>" },
//!                          "SCRAM-SHA-512": { ... } } } }
//! ```
//! No password and no salted password is ever written: the stored and server keys verify a login
//! but cannot be replayed as one (a stolen file still allows an offline guessing attack on weak
//! passwords, as in Kafka; see docs/SECURITY.md).
//!
//! # Invariants worth naming
//! - The file on disk is always a complete version: a crash leaves the old or the new one.
//! - Users are at most [`USERS_MAX`], names at most [`USER_NAME_BYTES_MAX`] bytes.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramHash, ITERATIONS_MAX, ITERATIONS_MIN};

pub const FILE_NAME: &str = "credentials.json";
/// Users the store holds at most: AlterUserScramCredentials cannot grow it without bound.
pub const USERS_MAX: usize = 10_000;
pub const USER_NAME_BYTES_MAX: usize = 255;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid credential store: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("iterations must be {ITERATIONS_MIN}..={ITERATIONS_MAX}, not {0}")]
    Iterations(u32),
    #[error("user names are 1..={USER_NAME_BYTES_MAX} bytes")]
    BadName,
    #[error("the store holds at most {USERS_MAX} users")]
    Full,
}

#[derive(Serialize, Deserialize)]
struct FileCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    users: BTreeMap<String, BTreeMap<String, FileCredential>>,
}

/// Every user's credentials, per mechanism, and where they are saved.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
    users: BTreeMap<String, BTreeMap<ScramHash, ScramCredential>>,
}

impl CredentialStore {
    /// Loads the store of `data_dir`; a missing file is an empty store.
    pub fn load(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let mut store = Self {
            path: path.clone(),
            users: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let file: File = serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!("unknown version {}", file.version)));
        }
        for (user, mechanisms) in file.users {
            for (mechanism, stored) in mechanisms {
                let hash = ScramHash::from_mechanism(&mechanism)
                    .ok_or_else(|| corrupt(format!("unknown mechanism {mechanism}")))?;
                let credential = decode(hash, &stored)
                    .map_err(|reason| corrupt(format!("user {user:?}, {mechanism}: {reason}")))?;
                store
                    .users
                    .entry(user.clone())
                    .or_default()
                    .insert(hash, credential);
            }
        }
        Ok(store)
    }

    pub fn get(&self, user: &str, hash: ScramHash) -> Option<&ScramCredential> {
        self.users.get(user)?.get(&hash)
    }

    /// Every credential of `user` (PLAIN accepts a password matching any of them).
    pub fn credentials(&self, user: &str) -> impl Iterator<Item = (ScramHash, &ScramCredential)> {
        self.users
            .get(user)
            .into_iter()
            .flat_map(|by_hash| by_hash.iter().map(|(hash, c)| (*hash, c)))
    }

    /// Users and their mechanisms with iterations: what DescribeUserScramCredentials shows.
    pub fn describe(&self) -> impl Iterator<Item = (&str, Vec<(ScramHash, u32)>)> {
        self.users.iter().map(|(user, by_hash)| {
            let infos = by_hash.iter().map(|(h, c)| (*h, c.iterations)).collect();
            (user.as_str(), infos)
        })
    }

    /// Sets a credential in memory (call [`CredentialStore::save`] to persist).
    pub fn upsert(
        &mut self,
        user: &str,
        hash: ScramHash,
        credential: ScramCredential,
    ) -> Result<(), StoreError> {
        if user.is_empty() || user.len() > USER_NAME_BYTES_MAX {
            return Err(StoreError::BadName);
        }
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&credential.iterations) {
            return Err(StoreError::Iterations(credential.iterations));
        }
        if !self.users.contains_key(user) && self.users.len() >= USERS_MAX {
            return Err(StoreError::Full);
        }
        assert_eq!(credential.stored_key.len(), hash.output_bytes());
        assert_eq!(credential.server_key.len(), hash.output_bytes());
        self.users
            .entry(user.to_string())
            .or_default()
            .insert(hash, credential);
        Ok(())
    }

    /// Removes a credential in memory; false if there was none.
    pub fn remove(&mut self, user: &str, hash: ScramHash) -> bool {
        let Some(by_hash) = self.users.get_mut(user) else {
            return false;
        };
        let removed = by_hash.remove(&hash).is_some();
        if by_hash.is_empty() {
            self.users.remove(user);
        }
        removed
    }

    /// Writes the whole store: temp file, fsync, rename over the old one, fsync the directory.
    pub fn save(&self) -> Result<(), StoreError> {
        let users = self
            .users
            .iter()
            .map(|(user, by_hash)| {
                let mechanisms = by_hash
                    .iter()
                    .map(|(hash, c)| (hash.mechanism().to_string(), encode(c)))
                    .collect();
                (user.clone(), mechanisms)
            })
            .collect();
        let file = File {
            version: FORMAT_VERSION,
            users,
        };
        let text = serde_json::to_string_pretty(&file).expect("the store serializes");
        crate::durable_file::replace_atomically(&self.path, text.as_bytes()).map_err(|source| {
            StoreError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}

fn encode(credential: &ScramCredential) -> FileCredential {
    FileCredential {
        salt: B64.encode(&credential.salt),
        iterations: credential.iterations,
        stored_key: B64.encode(&credential.stored_key),
        server_key: B64.encode(&credential.server_key),
    }
}

fn decode(hash: ScramHash, stored: &FileCredential) -> Result<ScramCredential, String> {
    let bytes = |field: &str, text: &str| {
        B64.decode(text)
            .map_err(|err| format!("{field} is not base64: {err}"))
    };
    let credential = ScramCredential {
        salt: bytes("salt", &stored.salt)?,
        iterations: stored.iterations,
        stored_key: bytes("stored_key", &stored.stored_key)?,
        server_key: bytes("server_key", &stored.server_key)?,
    };
    // Read-back checks: what save() wrote always passes them.
    if credential.stored_key.len() != hash.output_bytes()
        || credential.server_key.len() != hash.output_bytes()
    {
        return Err("a key has the wrong length".to_string());
    }
    if credential.salt.is_empty() {
        return Err("empty salt".to_string());
    }
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&credential.iterations) {
        return Err(format!("iterations {}", credential.iterations));
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_credentials_load_back_and_hold_no_password() {
        // The round trip keeps every credential; the password appears nowhere in the file.
        let dir = tempfile::tempdir().unwrap();
        let mut store = CredentialStore::load(dir.path()).unwrap();
        let credential = ScramCredential::generate(ScramHash::Sha256, "hunter2", ITERATIONS_MIN);
        store
            .upsert("alice", ScramHash::Sha256, credential.clone())
            .unwrap();
        store.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!text.contains("hunter2"));
        let loaded = CredentialStore::load(dir.path()).unwrap();
        assert_eq!(loaded.get("alice", ScramHash::Sha256), Some(&credential));
        assert_eq!(loaded.get("alice", ScramHash::Sha512), None);
        assert!(!dir.path().join("credentials.json.tmp").exists());
    }

    #[test]
    fn bad_files_and_bad_credentials_are_refused() {
        // A corrupt file stops the start with its path; out-of-range input is refused.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            "{\"version\":1,\"users\":{\"a\":{\"MD5\":{}}}}",
        )
        .unwrap();
        assert!(matches!(
            CredentialStore::load(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::write(dir.path().join(FILE_NAME), "not json").unwrap();
        assert!(matches!(
            CredentialStore::load(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        let mut store = CredentialStore::load(dir.path()).unwrap();
        let mut weak = ScramCredential::generate(ScramHash::Sha256, "pw", ITERATIONS_MIN);
        weak.iterations = 1;
        assert!(matches!(
            store.upsert("a", ScramHash::Sha256, weak),
            Err(StoreError::Iterations(1))
        ));
        let ok = ScramCredential::generate(ScramHash::Sha256, "pw", ITERATIONS_MIN);
        assert!(matches!(
            store.upsert("", ScramHash::Sha256, ok.clone()),
            Err(StoreError::BadName)
        ));
        store.upsert("a", ScramHash::Sha256, ok).unwrap();
        assert!(store.remove("a", ScramHash::Sha256));
        assert!(!store.remove("a", ScramHash::Sha256));
        assert_eq!(store.describe().count(), 0);
    }
}
