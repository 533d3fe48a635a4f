//! The ACL store: `acls.json` in the (first) data dir, and the index that answers "which ACLs
//! cover this resource" without a scan.
//!
//! Byte map of the file (JSON, written whole with temp-fsync-rename, then the directory fsynced,
//! as the credential store):
//! ```text
//! { "version": 1,
//!   "acls": [ { "resource_type": "TOPIC", "resource_name": "orders", "pattern_type": "PREFIXED",
//!               "principal": "User:alice", "host": "*", "operation": "WRITE",
//!               "permission": "ALLOW" }, ... ] }
//! ```
//!
//! # Invariants worth naming
//! - The file on disk is always a complete version: a crash leaves the old or the new one.
//! - The store holds at most [`ACLS_MAX`] ACLs, each valid ([`AclBinding::validate`]), no duplicate.
//! - The index holds exactly the ACLs of the set.
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::model::{AclBinding, PatternType, Resource, ResourceType};

pub const FILE_NAME: &str = "acls.json";
/// ACLs the store holds at most: CreateAcls cannot grow it without bound.
pub const ACLS_MAX: usize = 10_000;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AclStoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid ACL store: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the store holds at most {ACLS_MAX} ACLs")]
    Full,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    acls: Vec<AclBinding>,
}

/// ACLs of one resource type, by literal name and by prefix.
#[derive(Debug, Default, Clone)]
struct TypeIndex {
    literal: HashMap<String, Vec<AclBinding>>,
    prefixed: HashMap<String, Vec<AclBinding>>,
    /// The lengths of the stored prefixes, so a lookup tries only those.
    prefix_lengths: BTreeSet<usize>,
}

/// The ACL set and its index.
#[derive(Debug, Clone, Default)]
pub struct AclSet {
    acls: BTreeSet<AclBinding>,
    by_type: HashMap<ResourceType, TypeIndex>,
}

impl AclSet {
    /// How many ACLs the set holds.
    pub fn count(&self) -> usize {
        self.acls.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.acls.iter()
    }

    /// Adds a valid ACL; false if it was there already.
    pub fn insert(&mut self, acl: AclBinding) -> Result<bool, AclStoreError> {
        assert!(acl.validate().is_ok(), "only valid ACLs are stored");
        if self.acls.contains(&acl) {
            return Ok(false);
        }
        if self.acls.len() >= ACLS_MAX {
            return Err(AclStoreError::Full);
        }
        let index = self.by_type.entry(acl.resource_type).or_default();
        let by_name = match acl.pattern_type {
            PatternType::Prefixed => {
                index.prefix_lengths.insert(acl.resource_name.len());
                &mut index.prefixed
            }
            _ => &mut index.literal,
        };
        by_name
            .entry(acl.resource_name.clone())
            .or_default()
            .push(acl.clone());
        self.acls.insert(acl);
        Ok(true)
    }

    /// Removes every ACL `remove` selects and returns them.
    pub fn remove_where(&mut self, remove: impl Fn(&AclBinding) -> bool) -> Vec<AclBinding> {
        let removed: Vec<AclBinding> = self.acls.iter().filter(|a| remove(a)).cloned().collect();
        if !removed.is_empty() {
            // Rebuilt rather than unlinked from the index: deletes are rare, checks are not.
            let kept: Vec<AclBinding> = std::mem::take(&mut self.acls)
                .into_iter()
                .filter(|a| !remove(a))
                .collect();
            *self = Self::default();
            for acl in kept {
                self.insert(acl).expect("fewer ACLs than before fit");
            }
        }
        removed
    }

    /// Every ACL whose pattern covers `resource`: its literal name, the literal `*`, and each
    /// stored prefix of its name.
    pub fn covering<'a>(&'a self, resource: Resource<'a>) -> impl Iterator<Item = &'a AclBinding> {
        let index = self.by_type.get(&resource.resource_type);
        let literal = index.into_iter().flat_map(move |index| {
            let exact = index.literal.get(resource.name);
            let wildcard = (resource.name != super::model::WILDCARD_RESOURCE)
                .then(|| index.literal.get(super::model::WILDCARD_RESOURCE))
                .flatten();
            exact.into_iter().chain(wildcard).flatten()
        });
        let prefixed = index.into_iter().flat_map(move |index| {
            index
                .prefix_lengths
                .iter()
                .take_while(move |length| **length <= resource.name.len())
                .filter_map(move |length| resource.name.get(..*length))
                .filter_map(move |prefix| index.prefixed.get(prefix))
                .flatten()
        });
        literal.chain(prefixed)
    }

    /// Every ACL of a resource type (for authorizing by type, as InitProducerId does).
    pub fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &AclBinding> {
        self.by_type
            .get(&resource_type)
            .into_iter()
            .flat_map(|index| {
                index
                    .literal
                    .values()
                    .chain(index.prefixed.values())
                    .flatten()
            })
    }
}

/// Loads the ACLs of `data_dir`; a missing file is an empty set.
pub fn load(data_dir: &Path) -> Result<AclSet, AclStoreError> {
    let path = data_dir.join(FILE_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(AclSet::default()),
        Err(source) => return Err(AclStoreError::Io { path, source }),
    };
    let corrupt = |reason: String| AclStoreError::Corrupt {
        path: path.clone(),
        reason,
    };
    let file: File = serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))?;
    if file.version != FORMAT_VERSION {
        return Err(corrupt(format!("unknown version {}", file.version)));
    }
    let mut set = AclSet::default();
    for acl in file.acls {
        acl.validate()
            .map_err(|err| corrupt(format!("{acl:?}: {err}")))?;
        set.insert(acl)?;
    }
    Ok(set)
}

/// Writes the whole set to `path`: temp file, fsync, rename over the old one, fsync the directory.
pub fn save(path: &Path, set: &AclSet) -> Result<(), AclStoreError> {
    let file = File {
        version: FORMAT_VERSION,
        acls: set.iter().cloned().collect(),
    };
    let text = serde_json::to_string_pretty(&file).expect("ACLs serialize");
    crate::durable_file::replace_atomically(path, text.as_bytes()).map_err(|source| {
        AclStoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
