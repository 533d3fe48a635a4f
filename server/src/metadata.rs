//! The broker's topic metadata: the control plane.
//!
//! One writer, shard 0, owns the persisted [`TopicRegistry`]; every shard reads a shared snapshot
//! (`Arc<Metadata>`, a `RwLock` held for a map lookup only — never across an `.await`, never on the
//! byte-moving part of the data path).
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use ringtail_engine::{ConfigError, LogConfig, TopicMeta, TopicRegistry};

use crate::configs::dynamic::{BrokerDefaults, DynamicBrokerConfigs};
use uuid::Uuid;

/// A topic as every shard sees it.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: i32,
    /// Effective log config: broker defaults with the topic's overrides applied.
    pub config: LogConfig,
    pub overrides: BTreeMap<String, String>,
}

impl TopicInfo {
    /// Whether `partition` is one of this topic's partitions (requests name them from the wire).
    pub fn has_partition(&self, partition: i32) -> bool {
        (0..self.partitions).contains(&partition)
    }
}

/// Shared, read-mostly view of all topics.
pub struct Metadata {
    topics: RwLock<TopicMaps>,
    /// The log defaults of the flags, before any dynamic broker config.
    start_up_log_defaults: LogConfig,
    /// Which of the registry's per-broker dynamic configs are this node's.
    node_id: i32,
}

/// The topics by name and by id (KIP-516: Fetch v13+ and Produce v13 name topics by id), swapped
/// together under one lock so the two never disagree.
struct TopicMaps {
    by_name: HashMap<String, Arc<TopicInfo>>,
    by_id: HashMap<Uuid, Arc<TopicInfo>>,
    /// Grows with every publish: what was derived from the topics (a consumer group's regex
    /// results) is current while it is the same.
    version: u64,
    /// The broker-wide values topics fall back to, dynamic configs included; published with
    /// the topics, so a topic's resolved config and the defaults it was resolved from agree.
    defaults: Arc<BrokerDefaults>,
    /// Group configs (GROUP config resources) by group id, as saved in the registry.
    group_configs: Arc<GroupConfigs>,
}

/// Every group's configs by group id (Kafka's GROUP config resources), name to value.
pub type GroupConfigs = BTreeMap<String, BTreeMap<String, String>>;

impl TopicMaps {
    fn empty(defaults: Arc<BrokerDefaults>) -> Self {
        Self {
            by_name: HashMap::new(),
            by_id: HashMap::new(),
            version: 0,
            defaults,
            group_configs: Arc::new(GroupConfigs::new()),
        }
    }
}

impl Metadata {
    pub fn new(log_defaults: LogConfig) -> Self {
        Self::for_node(log_defaults, 0)
    }

    /// The metadata of node `node_id` (whose dynamic broker configs apply here).
    pub fn for_node(log_defaults: LogConfig, node_id: i32) -> Self {
        let defaults = Arc::new(BrokerDefaults::new(
            log_defaults.clone(),
            DynamicBrokerConfigs::default(),
        ));
        Self {
            topics: RwLock::new(TopicMaps::empty(defaults)),
            start_up_log_defaults: log_defaults,
            node_id,
        }
    }

    /// The broker-wide defaults topic configs override (dynamic broker configs included).
    pub fn log_defaults(&self) -> LogConfig {
        self.broker_defaults().log.clone()
    }

    /// The log defaults of the flags alone (the STATIC_BROKER_CONFIG / DEFAULT_CONFIG layer).
    pub fn start_up_log_defaults(&self) -> &LogConfig {
        &self.start_up_log_defaults
    }

    /// The broker-wide values as last published (start-up, dynamic, and the two together).
    pub fn broker_defaults(&self) -> Arc<BrokerDefaults> {
        Arc::clone(&self.topics.read().expect("metadata lock").defaults)
    }

    /// The dynamic broker configs a registry holds for this node and the cluster default.
    pub fn dynamic_of(&self, registry: &TopicRegistry) -> DynamicBrokerConfigs {
        let of = |resource: &str| {
            registry
                .broker_configs(resource)
                .cloned()
                .unwrap_or_default()
        };
        DynamicBrokerConfigs {
            node: of(&self.node_id.to_string()),
            default: of(""),
        }
    }

    /// The configs set on group `group_id` (None: none set).
    pub fn group_configs(&self, group_id: &str) -> Option<BTreeMap<String, String>> {
        let maps = self.topics.read().expect("metadata lock");
        maps.group_configs.get(group_id).cloned()
    }

    /// Every group with configs, by id.
    pub fn all_group_configs(&self) -> Arc<GroupConfigs> {
        Arc::clone(&self.topics.read().expect("metadata lock").group_configs)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicInfo>> {
        self.topics
            .read()
            .expect("metadata lock")
            .by_name
            .get(name)
            .cloned()
    }

    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<Arc<TopicInfo>> {
        self.topics
            .read()
            .expect("metadata lock")
            .by_id
            .get(&topic_id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<TopicInfo>> {
        self.versioned_topics().1
    }

    /// The version of the topics (grows with every change published).
    pub fn version(&self) -> u64 {
        self.topics.read().expect("metadata lock").version
    }

    /// All topics, sorted by name, and the version they are of (read together).
    pub fn versioned_topics(&self) -> (u64, Vec<Arc<TopicInfo>>) {
        let maps = self.topics.read().expect("metadata lock");
        let mut all: Vec<_> = maps.by_name.values().cloned().collect();
        let version = maps.version;
        drop(maps);
        all.sort_by(|a, b| a.name.cmp(&b.name));
        (version, all)
    }

    /// Resolves a registry entry into what shards use, under the published defaults.
    pub fn info_for(&self, meta: &TopicMeta) -> Result<TopicInfo, ConfigError> {
        info_under(&self.log_defaults(), meta)
    }

    /// Replaces the view with the registry's contents (after shard 0 saved a change).
    pub fn publish(&self, registry: &TopicRegistry) -> Result<(), ConfigError> {
        let defaults = Arc::new(BrokerDefaults::new(
            self.start_up_log_defaults.clone(),
            self.dynamic_of(registry),
        ));
        let mut fresh = TopicMaps::empty(Arc::clone(&defaults));
        fresh.group_configs = Arc::new(registry.all_group_configs().clone());
        for meta in registry.topics() {
            let info = Arc::new(info_under(&defaults.log, meta)?);
            fresh.by_id.insert(info.topic_id, Arc::clone(&info));
            fresh.by_name.insert(meta.name.clone(), info);
        }
        let mut maps = self.topics.write().expect("metadata lock");
        fresh.version = maps.version + 1;
        *maps = fresh;
        Ok(())
    }
}

/// A registry entry resolved over `log_defaults`.
fn info_under(log_defaults: &LogConfig, meta: &TopicMeta) -> Result<TopicInfo, ConfigError> {
    Ok(TopicInfo {
        name: meta.name.clone(),
        topic_id: meta.topic_id,
        partitions: meta.partitions as i32,
        config: crate::configs::topic::resolve(log_defaults, &meta.configs)?,
        overrides: meta.configs.clone(),
    })
}

/// The topics the coordinators own (Kafka's internal topics): clients may not append to them.
pub fn is_internal_topic(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC || name == crate::txn::TRANSACTION_STATE_TOPIC
}

/// Kafka's rule for topic names: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        // Names become directory names: anything else must be refused before it reaches the disk.
        assert!(valid_topic_name("orders.v1_x-2"));
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }
}
