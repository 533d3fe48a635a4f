//! The cluster as the client sees it: brokers, topics and partition leaders (Metadata), topic
//! creation, and partition offsets (ListOffsets) for positions and high watermarks.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::connection::Connection;
use super::{error_name, ClientError};

const TOPIC_ALREADY_EXISTS: i16 = 36;
const LEADER_NOT_AVAILABLE: i16 = 5;

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// Partitions of one topic and their leaders' broker ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    pub name: String,
    /// Leader broker id per partition index.
    pub leaders: Vec<i32>,
}

/// A connection to one broker plus what Metadata told about the cluster.
pub struct Cluster {
    connection: Connection,
    brokers: HashMap<i32, String>,
    topics: HashMap<String, TopicLayout>,
}

impl Cluster {
    pub fn connect(bootstrap: &str) -> Result<Self, ClientError> {
        Ok(Self {
            connection: Connection::connect(bootstrap)?,
            brokers: HashMap::new(),
            topics: HashMap::new(),
        })
    }

    /// Reads brokers and the given topics' partitions; topics that do not exist are left out.
    pub fn refresh(&mut self, topics: &[String]) -> Result<(), ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let response = self.connection.call(&request)?;
        self.brokers = response
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host, broker.port)))
            .collect();
        for topic in response.topics {
            let Some(name) = topic.name.map(|name| name.0) else {
                continue;
            };
            if topic.error_code != 0 {
                self.topics.remove(name.as_str());
                continue;
            }
            let mut leaders = vec![-1; topic.partitions.len()];
            for partition in &topic.partitions {
                let index = usize::try_from(partition.partition_index)
                    .ok()
                    .filter(|index| *index < leaders.len())
                    .ok_or_else(|| {
                        ClientError::Protocol(format!(
                            "{name}: partition {} out of range",
                            partition.partition_index
                        ))
                    })?;
                leaders[index] = if partition.error_code == 0 {
                    partition.leader_id.0
                } else {
                    -1
                };
            }
            self.topics.insert(
                name.to_string(),
                TopicLayout {
                    name: name.to_string(),
                    leaders,
                },
            );
        }
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<&TopicLayout> {
        self.topics.get(name)
    }

    /// `host:port` of a broker.
    pub fn broker_address(&self, broker_id: i32) -> Result<&str, ClientError> {
        self.brokers
            .get(&broker_id)
            .map(String::as_str)
            .ok_or_else(|| ClientError::Protocol(format!("broker {broker_id} is not in metadata")))
    }

    /// Creates the topics that do not exist yet, then waits until every partition has a leader.
    pub fn ensure_topics(
        &mut self,
        topics: &[String],
        partitions: i32,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        self.refresh(topics)?;
        let missing: Vec<&String> = topics
            .iter()
            .filter(|name| !self.topics.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            let request = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(
                    missing
                        .iter()
                        .map(|name| {
                            CreatableTopic::default()
                                .with_name(topic_name(name))
                                .with_num_partitions(partitions)
                                .with_replication_factor(1)
                                .with_configs(
                                    configs
                                        .iter()
                                        .map(|(key, value)| {
                                            CreatableTopicConfig::default()
                                                .with_name(StrBytes::from_string(key.clone()))
                                                .with_value(Some(StrBytes::from_string(
                                                    value.clone(),
                                                )))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let response = self.connection.call(&request)?;
            for topic in response.topics {
                if topic.error_code != 0 && topic.error_code != TOPIC_ALREADY_EXISTS {
                    return Err(ClientError::Kafka {
                        context: format!("creating topic {}", topic.name.0),
                        code: topic.error_code,
                        name: error_name(topic.error_code),
                    });
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.refresh(topics)?;
            let ready = topics.iter().all(|name| {
                self.topics
                    .get(name)
                    .is_some_and(|topic| topic.leaders.iter().all(|leader| *leader >= 0))
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClientError::kafka(
                    "waiting for new topics' leaders",
                    LEADER_NOT_AVAILABLE,
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The offset per partition of `topic` at `timestamp` ([`LATEST`]: the high watermark,
    /// [`EARLIEST`]: the log start), asking each partition's leader. Retries, with fresh metadata,
    /// the errors a leader gives while it is still taking a partition on: Apache Kafka lists a
    /// new topic's leader in Metadata a moment before that leader serves it (KRaft applies the
    /// metadata to its cache, then to its replica manager).
    pub fn list_offsets(
        &mut self,
        topic: &str,
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let deadline = Instant::now() + LEADERSHIP_SETTLE_MAX;
        loop {
            match self.list_offsets_once(topic, timestamp) {
                Err(ClientError::Kafka { code, .. })
                    if RETRIABLE_WHILE_LEADING.contains(&code) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                    self.refresh(&[topic.to_string()])?;
                }
                result => return result,
            }
        }
    }

    fn list_offsets_once(
        &mut self,
        topic: &str,
        timestamp: i64,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let layout = self
            .topics
            .get(topic)
            .cloned()
            .ok_or_else(|| ClientError::kafka(format!("listing offsets of {topic}"), 3))?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (partition, leader) in layout.leaders.iter().enumerate() {
            let partition = i32::try_from(partition)
                .expect("one leader per partition; Kafka counts partitions in an int32");
            by_leader.entry(*leader).or_default().push(partition);
        }
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let address = self.broker_address(leader)?.to_string();
            let mut connection = if address == self.connection.address() {
                None
            } else {
                Some(Connection::connect(&address)?)
            };
            let connection = connection.as_mut().unwrap_or(&mut self.connection);
            let request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|partition| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*partition)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let response = connection.call(&request)?;
            for topic_response in response.topics {
                for partition in topic_response.partitions {
                    if partition.error_code != 0 {
                        return Err(ClientError::kafka(
                            format!("listing offsets of {topic}-{}", partition.partition_index),
                            partition.error_code,
                        ));
                    }
                    offsets.insert(partition.partition_index, partition.offset);
                }
            }
        }
        Ok(offsets)
    }
}

/// How long [`Cluster::list_offsets`] waits for a new partition's leader to serve it.
/// (Kafka takes tens of seconds for a new topic of 1024 partitions on 2 cores.)
const LEADERSHIP_SETTLE_MAX: Duration = Duration::from_secs(90);
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER.
const RETRIABLE_WHILE_LEADING: [i16; 3] = [3, 5, 6];

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
