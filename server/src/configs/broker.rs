//! The broker's settings under Kafka's names, as DescribeConfigs reports a BROKER resource: every
//! one read-only (Ringtail's settings are flags, fixed at start), STATIC_BROKER_CONFIG when a flag
//! or the `--config` file set it, DEFAULT_CONFIG otherwise. The topic configs' broker-wide names
//! (`log.retention.ms`, `log.segment.bytes`, …) come from the topic catalogue, with the values
//! topics fall back to.
#![forbid(unsafe_code)]

use ringtail_engine::LogConfig;

use super::topic::{broker_value, TOPIC_CONFIGS};
use super::{ConfigSource, ConfigType, Described, Synonym};
use crate::config::Args;

/// Where the broker is reached, resolved after binding (the port may have been 0).
pub struct Advertised<'a> {
    pub host: &'a str,
    pub port: i32,
}

/// A broker config: Kafka name, type, value, the flag (clap id) that sets it, documentation.
struct Entry(
    &'static str,
    ConfigType,
    String,
    Option<&'static str>,
    &'static str,
);

/// Every broker config, in a stable order.
pub fn describe(args: &Args, log_defaults: &LogConfig, advertised: &Advertised) -> Vec<Described> {
    let dirs: Vec<String> = args
        .data_dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect();
    let entries = [
        Entry(
            "node.id",
            ConfigType::Int,
            args.node.node_id.to_string(),
            Some("node_id"),
            "This broker's id, the only one in the cluster (--node-id).",
        ),
        Entry(
            "broker.id",
            ConfigType::Int,
            args.node.node_id.to_string(),
            Some("node_id"),
            "Kafka's older name of node.id (--node-id).",
        ),
        Entry(
            "process.roles",
            ConfigType::List,
            "broker,controller".into(),
            None,
            "A single Ringtail process is both the broker and its own controller.",
        ),
        Entry(
            "listeners",
            ConfigType::String,
            args.listen.map_or_else(
                || format!("PLAINTEXT://{}:{}", advertised.host, advertised.port),
                |listen| format!("PLAINTEXT://{listen}"),
            ),
            Some("listen"),
            "The address the broker listens on (--listen).",
        ),
        Entry(
            "advertised.listeners",
            ConfigType::String,
            format!("PLAINTEXT://{}:{}", advertised.host, advertised.port),
            Some("advertised_listener"),
            "The address clients are told to connect to (--advertised-listener).",
        ),
        Entry(
            "listener.security.protocol.map",
            ConfigType::String,
            "PLAINTEXT:PLAINTEXT".into(),
            None,
            "Listeners and their protocols: plaintext only.",
        ),
        Entry(
            "log.dirs",
            ConfigType::String,
            dirs.join(","),
            Some("data_dirs"),
            "Data directories (--data-dir).",
        ),
        Entry(
            "num.partitions",
            ConfigType::Int,
            args.default_partitions.to_string(),
            Some("default_partitions"),
            "Partitions of an auto-created topic (--default-partitions).",
        ),
        Entry(
            "auto.create.topics.enable",
            ConfigType::Boolean,
            args.auto_create_topics.to_string(),
            Some("auto_create_topics"),
            "Create unknown topics on Metadata requests (--auto-create-topics).",
        ),
        Entry(
            "default.replication.factor",
            ConfigType::Int,
            "1".into(),
            None,
            "One broker, one replica.",
        ),
        Entry(
            "offsets.topic.replication.factor",
            ConfigType::Short,
            "1".into(),
            None,
            "One broker, one replica.",
        ),
        Entry(
            "delete.topic.enable",
            ConfigType::Boolean,
            "true".into(),
            None,
            "DeleteTopics is served.",
        ),
        Entry(
            "log.cleaner.enable",
            ConfigType::Boolean,
            "true".into(),
            None,
            "Compacted topics are cleaned.",
        ),
        Entry(
            "socket.request.max.bytes",
            ConfigType::Int,
            args.frame_bytes_max.to_string(),
            Some("frame_bytes_max"),
            "Largest request frame (--frame-bytes-max).",
        ),
        Entry(
            "fetch.max.bytes",
            ConfigType::Int,
            args.fetch_max_bytes.to_string(),
            Some("fetch_max_bytes"),
            "Largest Fetch response in record bytes (--fetch-max-bytes).",
        ),
        Entry(
            "connections.max.idle.ms",
            ConfigType::Long,
            args.connections_max_idle_ms.to_string(),
            Some("connections_max_idle_ms"),
            "Idle connections are closed after this (--connections-max-idle-ms).",
        ),
        Entry(
            "max.connections",
            ConfigType::Int,
            args.max_connections.to_string(),
            Some("max_connections"),
            "Connections open at once (--max-connections).",
        ),
        Entry(
            "max.connections.per.ip",
            ConfigType::Int,
            args.max_connections_per_ip.to_string(),
            Some("max_connections_per_ip"),
            "Connections open at once from one address (--max-connections-per-ip).",
        ),
        Entry(
            "queued.max.request.bytes",
            ConfigType::Long,
            args.queued_max_request_bytes.to_string(),
            Some("queued_max_request_bytes"),
            "Request bytes held in memory at once (--queued-max-request-bytes).",
        ),
        Entry(
            "log.retention.check.interval.ms",
            ConfigType::Long,
            args.log_cleanup_check_ms.to_string(),
            Some("log_cleanup_check_ms"),
            "Period of the retention and compaction passes (--log-cleanup-check-ms).",
        ),
        Entry(
            "producer.id.expiration.ms",
            ConfigType::Int,
            args.expiry.producer_id_expiration_ms.to_string(),
            Some("producer_id_expiration_ms"),
            "A partition forgets an idempotent producer this long after its last batch (--producer-id-expiration-ms).",
        ),
        Entry(
            "producer.id.expiration.check.interval.ms",
            ConfigType::Int,
            args.expiry.producer_id_expiration_check_interval_ms.to_string(),
            Some("producer_id_expiration_check_interval_ms"),
            "Period of the producer expiry pass (--producer-id-expiration-check-interval-ms).",
        ),
        Entry(
            "transactional.id.expiration.ms",
            ConfigType::Int,
            args.expiry.transactional_id_expiration_ms.to_string(),
            Some("transactional_id_expiration_ms"),
            "An idle transactional id is forgotten this long after its last change (--transactional-id-expiration-ms).",
        ),
        Entry(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            ConfigType::Int,
            args.expiry.transaction_remove_expired_transaction_cleanup_interval_ms.to_string(),
            Some("transaction_remove_expired_transaction_cleanup_interval_ms"),
            "Period of the transactional id expiry pass (--transaction-remove-expired-transaction-cleanup-interval-ms).",
        ),
        Entry(
            "group.min.session.timeout.ms",
            ConfigType::Int,
            args.group_min_session_timeout_ms.to_string(),
            Some("group_min_session_timeout_ms"),
            "The shortest session timeout a classic group member may ask for (--group-min-session-timeout-ms).",
        ),
        Entry(
            "group.max.session.timeout.ms",
            ConfigType::Int,
            args.group_max_session_timeout_ms.to_string(),
            Some("group_max_session_timeout_ms"),
            "The longest session timeout a classic group member may ask for (--group-max-session-timeout-ms).",
        ),
        Entry(
            "group.initial.rebalance.delay.ms",
            ConfigType::Int,
            args.node.group_initial_rebalance_delay_ms.to_string(),
            Some("group_initial_rebalance_delay_ms"),
            "How long a new classic group waits for more members before its first join completes (--group-initial-rebalance-delay-ms; Kafka's default is 3000).",
        ),
        Entry(
            "offsets.retention.minutes",
            ConfigType::Int,
            args.expiry.offsets_retention_minutes.to_string(),
            Some("offsets_retention_minutes"),
            "A group without members is deleted with its offsets after this long (--offsets-retention-minutes).",
        ),
        Entry(
            "offsets.retention.check.interval.ms",
            ConfigType::Long,
            args.expiry.offsets_retention_check_interval_ms.to_string(),
            Some("offsets_retention_check_interval_ms"),
            "Period of the offset retention pass (--offsets-retention-check-interval-ms).",
        ),
        Entry(
            "num.io.threads",
            ConfigType::Int,
            args.shard_count().to_string(),
            Some("shards"),
            "Shards: threads, each with its own io_uring, pinned to cores unless --pin-shards false (--shards).",
        ),
        Entry(
            "group.consumer.session.timeout.ms",
            ConfigType::Int,
            args.group_consumer_session_timeout_ms.to_string(),
            Some("group_consumer_session_timeout_ms"),
            "KIP-848 member session timeout.",
        ),
        Entry(
            "group.consumer.heartbeat.interval.ms",
            ConfigType::Int,
            args.group_consumer_heartbeat_interval_ms.to_string(),
            Some("group_consumer_heartbeat_interval_ms"),
            "KIP-848 heartbeat interval.",
        ),
        Entry(
            "group.consumer.min.session.timeout.ms",
            ConfigType::Int,
            args.node.group_consumer_min_session_timeout_ms.to_string(),
            Some("group_consumer_min_session_timeout_ms"),
            "The shortest KIP-848 session timeout, the broker's and a group's consumer.session.timeout.ms (--group-consumer-min-session-timeout-ms).",
        ),
        Entry(
            "group.consumer.max.session.timeout.ms",
            ConfigType::Int,
            args.node.group_consumer_max_session_timeout_ms.to_string(),
            Some("group_consumer_max_session_timeout_ms"),
            "The longest KIP-848 session timeout, the broker's and a group's consumer.session.timeout.ms (--group-consumer-max-session-timeout-ms).",
        ),
        Entry(
            "group.consumer.min.heartbeat.interval.ms",
            ConfigType::Int,
            args.node.group_consumer_min_heartbeat_interval_ms.to_string(),
            Some("group_consumer_min_heartbeat_interval_ms"),
            "The shortest KIP-848 heartbeat interval, the broker's and a group's consumer.heartbeat.interval.ms (--group-consumer-min-heartbeat-interval-ms).",
        ),
        Entry(
            "group.consumer.max.heartbeat.interval.ms",
            ConfigType::Int,
            args.node.group_consumer_max_heartbeat_interval_ms.to_string(),
            Some("group_consumer_max_heartbeat_interval_ms"),
            "The longest KIP-848 heartbeat interval, the broker's and a group's consumer.heartbeat.interval.ms (--group-consumer-max-heartbeat-interval-ms).",
        ),
        Entry(
            "group.coordinator.rebalance.protocols",
            ConfigType::List,
            "classic,consumer".into(),
            None,
            "Group protocols served: classic and KIP-848 consumer groups.",
        ),
    ];
    let mut described: Vec<Described> = entries
        .into_iter()
        .map(|Entry(name, kind, value, flag, documentation)| {
            read_only(name, kind, value, source_of(args, flag), documentation)
        })
        .collect();
    for def in TOPIC_CONFIGS {
        let Some(name) = def.broker_name else {
            continue;
        };
        if described.iter().any(|known| known.name == name) {
            continue;
        }
        let value = broker_value(log_defaults, def);
        described.push(read_only(
            name,
            def.kind,
            value,
            source_of(args, def.flag),
            def.documentation,
        ));
    }
    described
}

fn source_of(args: &Args, flag: Option<&str>) -> ConfigSource {
    match flag {
        Some(flag) if args.explicit_flags.contains(flag) => ConfigSource::StaticBroker,
        _ => ConfigSource::Default,
    }
}

fn read_only(
    name: &str,
    kind: ConfigType,
    value: String,
    source: ConfigSource,
    documentation: &'static str,
) -> Described {
    Described {
        name: name.to_string(),
        value: Some(value.clone()),
        kind,
        source,
        read_only: true,
        sensitive: false,
        documentation,
        synonyms: vec![Synonym {
            name: name.to_string(),
            value: Some(value),
            source,
        }],
    }
}
