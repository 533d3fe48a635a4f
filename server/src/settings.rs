//! Broker-wide settings every shard reads, resolved once from the command line.
#![forbid(unsafe_code)]

/// What the connection and API layers need to know about the broker.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Per listener (indexed by `ListenerId`): its protocol and the host and port announced in
    /// Metadata and FindCoordinator responses to clients connected there.
    pub listeners: Vec<ListenerSettings>,
    pub default_partitions: i32,
    pub frame_bytes_max: u32,
    pub auto_create_topics: bool,
    /// Topics one Metadata request may auto-create (`--auto-create-topics-per-request-max`).
    pub auto_create_topics_per_request_max: u32,
    /// Broker-side cap on a Fetch response's record bytes (`--fetch-max-bytes`).
    pub fetch_max_bytes: u32,
    /// How fetched ranges go out: the page-cache residency check (`--fetch-residency-check`), the
    /// cold chunks of a range read at once (`--fetch-cold-reads-in-flight`) and how they are read
    /// (`--fetch-cold-read-io`).
    pub fetch_send_policy: crate::residency::SendPolicy,
    /// Idle connections close after this (`--connections-max-idle-ms`).
    pub connections_max_idle_ms: u64,
    /// A frame must arrive whole within this of its first byte (`--frame-read-timeout-ms`).
    pub frame_read_timeout_ms: u64,
    pub cluster_id: String,
    /// This single broker's id (`--node-id`, Kafka's node.id): the leader, replica, coordinator
    /// and controller in every answer, and the only broker id requests may name.
    pub node_id: i32,
    /// Pace of a partition move's copy between data dirs (`--move-bytes-per-sec`; 0: unbounded).
    pub move_bytes_per_sec: u64,
    /// Periods of each shard's background work: retention and compaction
    /// (`--log-cleanup-check-ms`), producer expiry (`--producer-id-expiration-ms`,
    /// `--producer-id-expiration-check-interval-ms`).
    pub maintenance: ringtail_engine::MaintenanceSchedule,
    /// Session timeout and heartbeat interval of consumer (KIP-848) groups.
    pub consumer_group: crate::group::consumer::ConsumerGroupConfig,
    /// The longest `transaction.timeout.ms` a producer may ask for (Kafka's
    /// transaction.max.timeout.ms).
    pub transaction_max_timeout_ms: i32,
    /// Idle transactional ids are forgotten after this (`--transactional-id-expiration-ms`)...
    pub transactional_id_expiration_ms: u64,
    /// ...looked for this often
    /// (`--transaction-remove-expired-transaction-cleanup-interval-ms`).
    pub transactional_id_cleanup_interval_ms: u64,
    /// Groups without members expire with their offsets after this (`--offsets-retention-minutes`)...
    pub offsets_retention_ms: i64,
    /// ...looked for this often (`--offsets-retention-check-interval-ms`).
    pub offsets_retention_check_interval_ms: u64,
    /// The broker's settings under Kafka's names (DescribeConfigs of the BROKER resource).
    pub broker_configs: Vec<crate::configs::Described>,
    /// Flags given at start (clap ids): their topic-config defaults are STATIC_BROKER_CONFIG.
    pub explicit_flags: std::collections::BTreeSet<String>,
}

/// One bound listener as requests see it.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub protocol: crate::listeners::SecurityProtocol,
    pub advertised_host: String,
    pub advertised_port: i32,
}

impl Settings {
    pub fn listener(&self, id: crate::listeners::ListenerId) -> &ListenerSettings {
        &self.listeners[usize::from(id.0)]
    }
}
