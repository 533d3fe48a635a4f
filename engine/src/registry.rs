//! The topic registry: which topics exist, their ids, partition counts and config overrides.
//!
//! # Byte map of `topics.json`
//! A UTF-8 JSON document in the data dir's root:
//! `{"version": 1, "topics": [{"name", "topic_id" (UUID), "partitions", "configs": {name: value}}],
//! "broker_configs": {resource name: {name: value}}}`; `broker_configs` (the server's dynamic broker
//! configs, keyed by Kafka's BROKER resource name: a node id, or "" for the cluster-wide default)
//! is left out while empty, so a file without it is the same version. `group_configs` (the
//! server's KIP-848 group configs, keyed by group id: `{group id: {name: value}}`) likewise.
//! It is replaced atomically: written to `topics.json.tmp`, fsynced, renamed over `topics.json`,
//! and the directory fsynced. A leftover `.tmp` (crash before the rename) is removed at load.
//!
//! # Invariants
//! - Topic names are unique; partition counts only grow.
//! - What `load` returns is exactly what the last completed `save` wrote.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::OpenError;
use crate::io;

pub const REGISTRY_FILE_NAME: &str = "topics.json";
const REGISTRY_VERSION: u32 = 1;

/// One topic as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: u32,
    /// Topic-level config overrides by Kafka name (see [`crate::config::TOPIC_CONFIG_NAMES`]).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
    pub fn new(
        name: impl Into<String>,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name: name.into(),
            topic_id: Uuid::new_v4(),
            partitions,
            configs,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    topics: Vec<TopicMeta>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// The topics of one broker. Metadata has one writer (shard 0); others get copies.
#[derive(Debug, Clone)]
pub struct TopicRegistry {
    path: PathBuf,
    topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs by resource name; the engine only keeps them (the server gives
    /// them meaning), so they are saved with the topics in one atomic replace.
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Group configs (Kafka's GROUP config resources) by group id, opaque to the engine too.
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

impl TopicRegistry {
    /// Loads the registry in `data_dir`, or an empty one if there is none yet.
    pub async fn load(data_dir: &Path) -> Result<Self, OpenError> {
        let path = data_dir.join(REGISTRY_FILE_NAME);
        io::disk::create_dir_all(data_dir)
            .await
            .map_err(OpenError::io(data_dir))?;
        remove_leftover_temp(data_dir).await;
        let bytes = match io::disk::read(&path).await {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path,
                    topics: BTreeMap::new(),
                    broker_configs: BTreeMap::new(),
                    group_configs: BTreeMap::new(),
                });
            }
            Err(err) => return Err(OpenError::Io { path, source: err }),
        };
        let bad = |reason: String| OpenError::BadRegistry {
            path: path.clone(),
            reason,
        };
        let file: RegistryFile =
            serde_json::from_slice(&bytes).map_err(|err| bad(err.to_string()))?;
        if file.version != REGISTRY_VERSION {
            return Err(bad(format!("unsupported version {}", file.version)));
        }
        let mut topics = BTreeMap::new();
        for topic in file.topics {
            if topics.insert(topic.name.clone(), topic).is_some() {
                return Err(bad("duplicate topic name".into()));
            }
        }
        Ok(Self {
            path,
            topics,
            broker_configs: file.broker_configs,
            group_configs: file.group_configs,
        })
    }

    /// Writes the registry durably: temp file, fsync, rename, fsync of the directory.
    pub async fn save(&self) -> std::io::Result<()> {
        let file = RegistryFile {
            version: REGISTRY_VERSION,
            topics: self.topics.values().cloned().collect(),
            broker_configs: self.broker_configs.clone(),
            group_configs: self.group_configs.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        io::disk::write_file_atomically(&self.path, bytes).await
    }

    pub fn get(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut TopicMeta> {
        self.topics.get_mut(name)
    }

    /// Adds a topic; returns false (and changes nothing) if the name exists.
    pub fn insert(&mut self, topic: TopicMeta) -> bool {
        if self.topics.contains_key(&topic.name) {
            return false;
        }
        self.topics.insert(topic.name.clone(), topic);
        true
    }

    pub fn remove(&mut self, name: &str) -> Option<TopicMeta> {
        self.topics.remove(name)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }

    /// The dynamic broker configs saved for `resource` (a node id, or "" for the default).
    pub fn broker_configs(&self, resource: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(resource)
    }

    /// Replaces the dynamic broker configs of `resource`; an empty set removes the entry.
    pub fn set_broker_configs(&mut self, resource: &str, configs: BTreeMap<String, String>) {
        if configs.is_empty() {
            self.broker_configs.remove(resource);
        } else {
            self.broker_configs.insert(resource.to_string(), configs);
        }
    }

    /// The configs saved for group `group_id`.
    pub fn group_configs(&self, group_id: &str) -> Option<&BTreeMap<String, String>> {
        self.group_configs.get(group_id)
    }

    /// Every group with configs, by id.
    pub fn all_group_configs(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.group_configs
    }

    /// Replaces the configs of group `group_id`; an empty set removes the entry.
    pub fn set_group_configs(&mut self, group_id: &str, configs: BTreeMap<String, String>) {
        if configs.is_empty() {
            self.group_configs.remove(group_id);
        } else {
            self.group_configs.insert(group_id.to_string(), configs);
        }
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// Removes the temp a save cut short by a crash left (before its rename): nothing reads it, but
/// it would hold its space for good. Exact name only; load runs at start, before any save. A
/// failed removal is logged and retried at the next start.
async fn remove_leftover_temp(data_dir: &Path) {
    let temp = data_dir.join(format!("{REGISTRY_FILE_NAME}.tmp"));
    match io::disk::remove_file(&temp).await {
        Ok(()) => {
            tracing::warn!(path = %temp.display(), "removed a topic registry temp a crash left")
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %temp.display(), %err, "a topic registry temp stays"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[compio::test]
    async fn save_then_load_round_trips_and_removes_a_stale_temp() {
        // A restart must see exactly the last saved registry, even after a crash left a temp file.
        let dir = tempfile::tempdir().unwrap();
        let mut registry = TopicRegistry::load(dir.path()).await.unwrap();
        assert!(registry.is_empty());
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        assert!(registry.insert(TopicMeta::new("orders", 6, configs)));
        assert!(!registry.insert(TopicMeta::new("orders", 1, BTreeMap::new())));
        registry.save().await.unwrap();
        std::fs::write(dir.path().join("topics.json.tmp"), b"{garbage").unwrap();
        std::fs::write(dir.path().join("topics.json.tmp.keep"), b"not ours").unwrap();
        let loaded = TopicRegistry::load(dir.path()).await.unwrap();
        assert_eq!(loaded.get("orders"), registry.get("orders"));
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded.broker_configs(""), None);
        // Nothing reads the temp, and it would hold its space for good: load removes it.
        assert!(!dir.path().join("topics.json.tmp").exists());
        assert!(dir.path().join("topics.json.tmp.keep").exists());
    }

    #[compio::test]
    async fn broker_configs_round_trip_and_an_emptied_set_is_dropped() {
        // Dynamic broker configs must survive a restart in the same file as the topics.
        let dir = tempfile::tempdir().unwrap();
        let mut registry = TopicRegistry::load(dir.path()).await.unwrap();
        let configs = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        registry.set_broker_configs("", configs.clone());
        registry.set_broker_configs("0", configs.clone());
        registry.set_broker_configs("0", BTreeMap::new());
        registry.save().await.unwrap();
        let loaded = TopicRegistry::load(dir.path()).await.unwrap();
        assert_eq!(loaded.broker_configs(""), Some(&configs));
        assert_eq!(loaded.broker_configs("0"), None);
    }

    #[compio::test]
    async fn group_configs_round_trip_next_to_the_topics_and_an_emptied_set_is_dropped() {
        // Group configs (KIP-848) must survive a restart, saved in the same atomic replace as the
        // topics and broker configs (one store, one rename).
        let dir = tempfile::tempdir().unwrap();
        let mut registry = TopicRegistry::load(dir.path()).await.unwrap();
        assert!(registry.insert(TopicMeta::new("orders", 1, BTreeMap::new())));
        let configs = BTreeMap::from([(
            "consumer.session.timeout.ms".to_string(),
            "50000".to_string(),
        )]);
        registry.set_group_configs("g1", configs.clone());
        registry.set_group_configs("g2", configs.clone());
        registry.set_group_configs("g2", BTreeMap::new());
        registry.save().await.unwrap();
        let loaded = TopicRegistry::load(dir.path()).await.unwrap();
        assert_eq!(loaded.group_configs("g1"), Some(&configs));
        assert_eq!(loaded.group_configs("g2"), None);
        assert_eq!(loaded.all_group_configs().len(), 1);
        assert!(loaded.get("orders").is_some());
    }

    #[compio::test]
    async fn a_corrupt_registry_is_an_error_not_an_empty_broker() {
        // Silently starting empty would orphan every topic's data.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REGISTRY_FILE_NAME), b"not json").unwrap();
        assert!(matches!(
            TopicRegistry::load(dir.path()).await,
            Err(OpenError::BadRegistry { .. })
        ));
    }
}
