//! Dynamic broker configs (Kafka's KIP-226, as a KRaft broker serves them): which names
//! AlterConfigs / IncrementalAlterConfigs may set on a BROKER resource, their validation, and how
//! the values set for this node and for the cluster-wide default ("") layer over the start-up
//! values. The values live in the topic registry (`topics.json`, saved with the topics).
//!
//! Precedence, as Kafka's DynamicBrokerConfig: DYNAMIC_BROKER_CONFIG (this node's id), then
//! DYNAMIC_DEFAULT_BROKER_CONFIG (""), then STATIC_BROKER_CONFIG (a flag), then DEFAULT_CONFIG.
//!
//! Ringtail applies the topic-default log configs (`log.retention.ms`, …: the topic catalogue's
//! broker names whose topic config is honoured): topics without their own override follow them.
//! Other names Kafka accepts are stored and described only; docs/COMPATIBILITY.md lists them.
//! Names Kafka accepts but Ringtail holds as start-up flags it cannot change live (listeners,
//! connection limits, TLS, SASL mechanisms, …) are refused rather than shown as if applied.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use ringtail_engine::{ConfigError, LogConfig};

use super::topic::{self, Support, TopicConfigDef, TOPIC_CONFIGS};
use super::{ConfigSource, ConfigType, Described, Synonym};

/// The broker-wide values topics fall back to: the start-up log defaults, the dynamic configs,
/// and the log defaults they make together.
#[derive(Debug, Clone)]
pub struct BrokerDefaults {
    pub start_up: LogConfig,
    pub dynamic: DynamicBrokerConfigs,
    /// What a topic without an override of a config inherits.
    pub log: LogConfig,
}

impl BrokerDefaults {
    pub fn new(start_up: LogConfig, dynamic: DynamicBrokerConfigs) -> Self {
        let log = dynamic.log_defaults(&start_up);
        Self {
            start_up,
            dynamic,
            log,
        }
    }
}

/// The dynamic configs in force on this node: its own, and the cluster-wide defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    /// Set on the BROKER resource named by this node's id.
    pub node: BTreeMap<String, String>,
    /// Set on the BROKER resource "" (the cluster-wide default).
    pub default: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    /// The dynamic value of `name` and where it comes from: this node's, else the default's.
    pub fn value(&self, name: &str) -> Option<(&str, ConfigSource)> {
        self.node
            .get(name)
            .map(|value| (value.as_str(), ConfigSource::DynamicBroker))
            .or_else(|| {
                self.default
                    .get(name)
                    .map(|value| (value.as_str(), ConfigSource::DynamicDefaultBroker))
            })
    }

    /// The dynamic synonyms of `name`, in Kafka's order (this node's, then the default's).
    pub fn synonyms(&self, name: &str, sensitive: bool) -> Vec<Synonym> {
        let shown = |value: &String| (!sensitive).then(|| value.clone());
        let node = self.node.get(name).map(|value| Synonym {
            name: name.to_string(),
            value: shown(value),
            source: ConfigSource::DynamicBroker,
        });
        let default = self.default.get(name).map(|value| Synonym {
            name: name.to_string(),
            value: shown(value),
            source: ConfigSource::DynamicDefaultBroker,
        });
        node.into_iter().chain(default).collect()
    }

    /// The broker-wide log defaults topics inherit: the start-up ones with the dynamic
    /// default's log configs applied, then this node's. A stored value the engine refuses (it
    /// was validated when set, so only a changed rule could cause it) is skipped with a warning,
    /// as Kafka ignores invalid dynamic configs at start.
    pub fn log_defaults(&self, start_up: &LogConfig) -> LogConfig {
        let mut config = start_up.clone();
        for layer in [&self.default, &self.node] {
            for (name, value) in layer {
                let Some(def) = log_config(name) else {
                    continue;
                };
                if def.support != Support::Honoured {
                    continue;
                }
                let applied = log_value(name, def, value).and_then(|value| {
                    topic::validate(def.name, &value)
                        .and_then(|()| config.apply(def.name, &value))
                        .map_err(|err| err.to_string())
                });
                if let Err(err) = applied {
                    tracing::warn!(config = %name, %err, "ignoring a stored dynamic broker config");
                }
            }
        }
        config
    }
}

/// A value as the engine takes it (booleans in lower case, as topic overrides are applied).
fn normalised(def: &TopicConfigDef, value: &str) -> String {
    match def.kind {
        ConfigType::Boolean => value.trim().to_ascii_lowercase(),
        _ => value.trim().to_string(),
    }
}

/// The topic config whose broker-wide name is `name` (Kafka's DynamicLogConfig set).
pub fn log_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|def| def.broker_name == Some(name))
}

/// Kafka's prefix of per-listener configs (`listener.name.<listener>.<config>`).
const LISTENER_PREFIX: &str = "listener.name.";

/// A listener-prefixed name's base config, if it is one.
fn listener_base(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(LISTENER_PREFIX)?;
    let (_listener, base) = rest.split_once('.')?;
    Some(base)
}

/// Dynamic in Kafka and settable at the cluster-wide default, with their types (those not
/// among the log configs). LogCleaner's, the thread pools', metric reporters, the socket
/// server's, the producer state's, remote storage's and the replication quotas.
const CLUSTER_DYNAMIC: &[(&str, ConfigType)] = &[
    ("log.cleaner.threads", ConfigType::Int),
    ("log.cleaner.dedupe.buffer.size", ConfigType::Long),
    ("log.cleaner.io.buffer.load.factor", ConfigType::Double),
    ("log.cleaner.io.buffer.size", ConfigType::Int),
    ("log.cleaner.io.max.bytes.per.second", ConfigType::Double),
    ("log.cleaner.backoff.ms", ConfigType::Long),
    ("num.replica.fetchers", ConfigType::Int),
    ("num.recovery.threads.per.data.dir", ConfigType::Int),
    ("background.threads", ConfigType::Int),
    ("metric.reporters", ConfigType::List),
    ("max.connections.per.ip.overrides", ConfigType::String),
    ("max.connection.creation.rate", ConfigType::Int),
    ("num.network.threads", ConfigType::Int),
    (
        "transaction.partition.verification.enable",
        ConfigType::Boolean,
    ),
    (
        "remote.log.index.file.cache.total.size.bytes",
        ConfigType::Long,
    ),
    ("remote.fetch.max.wait.ms", ConfigType::Int),
    (
        "remote.log.manager.copy.max.bytes.per.second",
        ConfigType::Long,
    ),
    (
        "remote.log.manager.fetch.max.bytes.per.second",
        ConfigType::Long,
    ),
    ("remote.list.offsets.request.timeout.ms", ConfigType::Long),
    ("leader.replication.throttled.rate", ConfigType::Long),
    ("follower.replication.throttled.rate", ConfigType::Long),
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        ConfigType::Long,
    ),
];

/// Dynamic in Kafka only per broker (DynamicListenerConfig's SASL and SSL settings): refused
/// on the cluster-wide default.
const PER_BROKER_DYNAMIC: &[(&str, ConfigType)] = &[
    ("principal.builder.class", ConfigType::String),
    ("ssl.protocol", ConfigType::String),
    ("ssl.provider", ConfigType::String),
    ("ssl.cipher.suites", ConfigType::List),
    ("ssl.enabled.protocols", ConfigType::List),
    ("ssl.keymanager.algorithm", ConfigType::String),
    ("ssl.trustmanager.algorithm", ConfigType::String),
    ("ssl.endpoint.identification.algorithm", ConfigType::String),
    ("ssl.secure.random.implementation", ConfigType::String),
    ("ssl.client.auth", ConfigType::String),
    ("ssl.engine.factory.class", ConfigType::String),
    ("sasl.mechanism.inter.broker.protocol", ConfigType::String),
    ("sasl.jaas.config", ConfigType::Password),
    ("sasl.kerberos.service.name", ConfigType::String),
    ("sasl.kerberos.kinit.cmd", ConfigType::String),
    (
        "sasl.kerberos.ticket.renew.window.factor",
        ConfigType::Double,
    ),
    ("sasl.kerberos.ticket.renew.jitter", ConfigType::Double),
    ("sasl.kerberos.min.time.before.relogin", ConfigType::Long),
    ("sasl.kerberos.principal.to.local.rules", ConfigType::List),
    ("sasl.login.refresh.window.factor", ConfigType::Double),
    ("sasl.login.refresh.window.jitter", ConfigType::Double),
    ("sasl.login.refresh.min.period.seconds", ConfigType::Short),
    ("sasl.login.refresh.buffer.seconds", ConfigType::Short),
];

/// Kafka's SslConfigs.RECONFIGURABLE_CONFIGS: dynamic only with a listener prefix.
const LISTENER_ONLY: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
];

/// Dynamic in Kafka, but Ringtail holds them as start-up flags it cannot change while running
/// (its listeners, connection limits, shards, producer expiry, SASL mechanisms, TLS files):
/// read-only, refused with Kafka's words for a read-only config, so DescribeConfigs never shows
/// a value that is not in force.
const FIXED_AT_START: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "listener.security.protocol.map",
    "max.connections",
    "max.connections.per.ip",
    "num.io.threads",
    "producer.id.expiration.ms",
    "sasl.enabled.mechanisms",
];

/// Kafka broker configs that are not dynamic (Kafka: "Cannot update these configs
/// dynamically"): those Ringtail describes, and the usual static ones tools name.
const NOT_DYNAMIC: &[&str] = &[
    "node.id",
    "broker.id",
    "process.roles",
    "log.dirs",
    "log.dir",
    "num.partitions",
    "auto.create.topics.enable",
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "offsets.topic.num.partitions",
    "transaction.state.log.replication.factor",
    "delete.topic.enable",
    "log.cleaner.enable",
    "socket.request.max.bytes",
    "fetch.max.bytes",
    "connections.max.idle.ms",
    "queued.max.request.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.roll.hours",
    "log.roll.jitter.hours",
    "log.flush.scheduler.interval.ms",
    "producer.id.expiration.check.interval.ms",
    "transactional.id.expiration.ms",
    "transaction.max.timeout.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.consumer.session.timeout.ms",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.coordinator.rebalance.protocols",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "controller.listener.names",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
    "inter.broker.listener.name",
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
    "broker.rack",
    "num.replica.alter.log.dirs.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "unstable.api.versions.enable",
];

/// What Ringtail makes of a broker config name.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A topic-default log config (Kafka's DynamicLogConfig).
    Log(&'static TopicConfigDef),
    /// Dynamic in Kafka; stored and described, not used by Ringtail.
    Stored { kind: ConfigType, per_broker: bool },
    /// Dynamic in Kafka only with a listener prefix.
    ListenerOnly,
    /// Dynamic in Kafka, a start-up flag here.
    FixedAtStart,
    /// Not dynamic in Kafka.
    NotDynamic,
    /// No Kafka broker config: Kafka keeps such custom configs, and so does Ringtail.
    Custom,
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Kind::Log(a), Kind::Log(b)) => a.name == b.name,
            (
                Kind::Stored { kind, per_broker },
                Kind::Stored {
                    kind: other_kind,
                    per_broker: other_per_broker,
                },
            ) => kind == other_kind && per_broker == other_per_broker,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// Classifies a broker config name.
pub fn kind_of(name: &str) -> Kind {
    if let Some(def) = log_config(name) {
        return Kind::Log(def);
    }
    if let Some(base) = listener_base(name) {
        // Per-listener configs are per broker, except Kafka's cluster-level listener ones.
        return match kind_of(base) {
            Kind::ListenerOnly | Kind::FixedAtStart => Kind::FixedAtStart,
            Kind::Stored { kind, .. } => Kind::Stored {
                kind,
                per_broker: !matches!(base, "max.connection.creation.rate" | "num.network.threads"),
            },
            _ => Kind::Custom,
        };
    }
    if let Some((_, kind)) = CLUSTER_DYNAMIC.iter().find(|(known, _)| *known == name) {
        return Kind::Stored {
            kind: *kind,
            per_broker: false,
        };
    }
    if let Some((_, kind)) = PER_BROKER_DYNAMIC.iter().find(|(known, _)| *known == name) {
        return Kind::Stored {
            kind: *kind,
            per_broker: true,
        };
    }
    if LISTENER_ONLY.contains(&name) {
        Kind::ListenerOnly
    } else if FIXED_AT_START.contains(&name) {
        Kind::FixedAtStart
    } else if NOT_DYNAMIC.contains(&name) {
        Kind::NotDynamic
    } else {
        Kind::Custom
    }
}

/// Whether AlterConfigs may set `name` (DescribeConfigs' `read_only` is its negation).
pub fn is_alterable(name: &str) -> bool {
    matches!(
        kind_of(name),
        Kind::Log(_) | Kind::Stored { .. } | Kind::Custom
    )
}

/// The type DescribeConfigs reports for a dynamic config Ringtail does not otherwise describe.
pub fn type_of(name: &str) -> ConfigType {
    match kind_of(name) {
        Kind::Log(def) => def.kind,
        Kind::Stored { kind, .. } => kind,
        _ => ConfigType::Unknown,
    }
}

/// Kafka prints the names of a refused set as a Scala `Set(a, b)`.
fn scala_set<'a>(names: impl Iterator<Item = &'a str>) -> String {
    format!("Set({})", names.collect::<Vec<_>>().join(", "))
}

/// Checks a resource's whole new set of dynamic configs as Kafka's DynamicBrokerConfig does;
/// the error is the message of Kafka's INVALID_REQUEST. `per_broker`: the resource is a node id
/// (not the cluster-wide default).
pub fn validate(configs: &BTreeMap<String, String>, per_broker: bool) -> Result<(), String> {
    let refused = |wanted: fn(Kind) -> bool, message: &str| {
        let names: Vec<&str> = configs
            .keys()
            .map(String::as_str)
            .filter(|name| wanted(kind_of(name)))
            .collect();
        if names.is_empty() {
            Ok(())
        } else {
            Err(format!("{message}: {}", scala_set(names.into_iter())))
        }
    };
    // A config Ringtail holds as a start-up flag is read-only here (DescribeConfigs says so):
    // refused as Kafka refuses its read-only configs.
    refused(
        |kind| kind == Kind::NotDynamic || kind == Kind::FixedAtStart,
        "Cannot update these configs dynamically",
    )?;
    refused(
        |kind| kind == Kind::ListenerOnly,
        "These security configs can be dynamically updated only per-listener using the listener prefix",
    )?;
    for (name, value) in configs {
        check_value(name, value)?;
    }
    if !per_broker {
        refused(
            |kind| {
                matches!(
                    kind,
                    Kind::Stored {
                        per_broker: true,
                        ..
                    }
                )
            },
            "Cannot update these configs at default cluster level, broker id must be specified",
        )?;
    }
    Ok(())
}

/// A value checked against its config's type (and, for log configs, the topic config's rule),
/// refused in the words of Kafka's ConfigException.
fn check_value(name: &str, value: &str) -> Result<(), String> {
    let text = value.trim();
    let expected = match kind_of(name) {
        Kind::Log(def) => {
            let value = log_value(name, def, value)?;
            return topic::validate(def.name, &value).map_err(|err| match err {
                // Kafka names the broker config it refuses, not the topic config.
                ConfigError::Invalid { reason, .. } => {
                    format!("Invalid value {text} for configuration {name}: {reason}")
                }
                other => other.to_string(),
            });
        }
        Kind::Stored { kind, .. } => kind,
        _ => return Ok(()),
    };
    let (parses, type_name) = match expected {
        ConfigType::Boolean => {
            let parses = text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false");
            if !parses {
                return Err(format!(
                    "Invalid value {text} for configuration {name}: Expected value to be either true or false"
                ));
            }
            (true, "BOOLEAN")
        }
        ConfigType::Short => (text.parse::<i16>().is_ok(), "SHORT"),
        ConfigType::Int => (text.parse::<i32>().is_ok(), "INT"),
        ConfigType::Long => (text.parse::<i64>().is_ok(), "LONG"),
        ConfigType::Double => (text.parse::<f64>().is_ok(), "DOUBLE"),
        _ => (true, ""),
    };
    if parses {
        Ok(())
    } else {
        Err(format!(
            "Invalid value {text} for configuration {name}: Not a number of type {type_name}"
        ))
    }
}

/// The value a topic inherits from the broker log config `name` set to `value` (normalised as
/// the engine takes it). Kafka's `log.retention.ms` has no validator: every negative value is -1
/// (unlimited, KafkaConfig.logRetentionTimeMillis), and 0 fails KafkaConfig's requirement
/// (whose message Kafka's INVALID_REQUEST carries), where a topic's retention.ms may be 0.
fn log_value(name: &str, def: &TopicConfigDef, value: &str) -> Result<String, String> {
    let value = normalised(def, value);
    if name != "log.retention.ms" {
        return Ok(value);
    }
    match value.parse::<i64>() {
        Ok(ms) if ms < 0 => Ok("-1".to_string()),
        Ok(0) => Err(
            "requirement failed: log.retention.ms must be unlimited (-1) or, greater than or equal to 1"
                .to_string(),
        ),
        _ => Ok(value),
    }
}

/// Whether DescribeConfigs hides the value, as Kafka: passwords, and configs of no known type.
fn sensitive(kind: ConfigType) -> bool {
    matches!(kind, ConfigType::Password | ConfigType::Unknown)
}

const STORED_ONLY: &str = "A dynamic broker config Ringtail stores and describes but does not use.";

/// The node's configs (DescribeConfigs BROKER "<node id>"): the start-up ones with the dynamic
/// values over them (their synonyms first, in Kafka's order), then the dynamic configs the
/// start-up list lacks. `read_only` is Kafka's: whether the name cannot be altered.
pub fn describe_node(start_up: &[Described], dynamic: &DynamicBrokerConfigs) -> Vec<Described> {
    let mut described: Vec<Described> = start_up
        .iter()
        .map(|config| {
            let mut config = config.clone();
            config.read_only = !is_alterable(&config.name);
            let mut synonyms = dynamic.synonyms(&config.name, config.sensitive);
            if let Some(first) = synonyms.first() {
                config.value = first.value.clone();
                config.source = first.source;
            }
            synonyms.append(&mut config.synonyms);
            config.synonyms = synonyms;
            config
        })
        .collect();
    let mut extra: Vec<&String> = dynamic.node.keys().chain(dynamic.default.keys()).collect();
    extra.sort_unstable();
    extra.dedup();
    for name in extra {
        if start_up.iter().any(|config| &config.name == name) {
            continue;
        }
        described.push(dynamic_only(
            name,
            dynamic.synonyms(name, sensitive(type_of(name))),
        ));
    }
    described
}

/// The cluster-wide default's configs (DescribeConfigs BROKER ""): only those set there, each
/// with its one DYNAMIC_DEFAULT_BROKER_CONFIG synonym, as Kafka.
pub fn describe_default(dynamic: &DynamicBrokerConfigs) -> Vec<Described> {
    let default_only = DynamicBrokerConfigs {
        node: BTreeMap::new(),
        default: dynamic.default.clone(),
    };
    dynamic
        .default
        .keys()
        .map(|name| dynamic_only(name, default_only.synonyms(name, sensitive(type_of(name)))))
        .collect()
}

fn dynamic_only(name: &str, synonyms: Vec<Synonym>) -> Described {
    let kind = type_of(name);
    let documentation = match kind_of(name) {
        Kind::Log(def) => def.documentation,
        _ => STORED_ONLY,
    };
    Described {
        name: name.to_string(),
        value: synonyms.first().and_then(|first| first.value.clone()),
        kind,
        source: synonyms
            .first()
            .map_or(ConfigSource::Default, |first| first.source),
        read_only: !is_alterable(name),
        sensitive: sensitive(kind),
        documentation,
        synonyms,
    }
}

#[cfg(test)]
#[path = "dynamic_tests.rs"]
mod tests;
