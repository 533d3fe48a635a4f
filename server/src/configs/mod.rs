//! Configs as Kafka describes them: every topic config of Kafka 4.x with its type, default,
//! validation and whether Ringtail honours it (`topic.rs`), the broker's own settings under
//! Kafka's names (`broker.rs`), the dynamic broker configs layered over them (`dynamic.rs`), and a
//! consumer group's configs (`group.rs`, KIP-848's GROUP resources).
//! DescribeConfigs, CreateTopics and the AlterConfigs APIs read them.
#![forbid(unsafe_code)]

pub mod broker;
pub mod dynamic;
pub mod group;
pub mod topic;

/// Kafka's ConfigType of DescribeConfigs v3+ (the numbers are the wire's). Kafka's CLASS (8) is
/// left out (class names are described as strings); UNKNOWN and PASSWORD only name dynamic
/// broker configs Ringtail stores (custom ones, `sasl.jaas.config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Password = 9,
}

/// Kafka's ConfigSource: where a config's value comes from (the numbers are the wire's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs).
    Topic = 1,
    /// Set dynamically on this broker (AlterConfigs on BROKER "<node id>").
    DynamicBroker = 2,
    /// Set dynamically as the cluster-wide default (AlterConfigs on BROKER "").
    DynamicDefaultBroker = 3,
    /// Set by a broker flag or the `--config` file.
    StaticBroker = 4,
    /// Nobody set it.
    Default = 5,
    /// Set on the group (IncrementalAlterConfigs on GROUP; Kafka's GROUP_CONFIG,
    /// ConfigEntry.ConfigSource.DYNAMIC_GROUP_CONFIG).
    Group = 8,
}

/// One value a config could take, in precedence order (DescribeConfigs' synonyms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// A config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub name: String,
    pub value: Option<String>,
    pub kind: ConfigType,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub documentation: &'static str,
    /// The winning value first, then the ones it overrides.
    pub synonyms: Vec<Synonym>,
}
