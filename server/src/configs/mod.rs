//! Configs as Kafka describes them: every topic config of Kafka 4.x with its type, default,
//! validation and whether Ringtail honours it (`topic.rs`), and the broker's own settings under
//! Kafka's names (`broker.rs`). DescribeConfigs, CreateTopics and the AlterConfigs APIs read them.
#![forbid(unsafe_code)]

pub mod broker;
pub mod topic;

/// Kafka's ConfigType of DescribeConfigs v3+ (the numbers are the wire's). Kafka's CLASS (8)
/// and PASSWORD (9) are left out: no Ringtail config has those types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Kafka's ConfigSource: where a config's value comes from (the numbers are the wire's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (CreateTopics, AlterConfigs).
    Topic = 1,
    /// Set by a broker flag or the `--config` file.
    StaticBroker = 4,
    /// Nobody set it.
    Default = 5,
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
