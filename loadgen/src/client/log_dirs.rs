//! A broker's data dirs as DescribeLogDirs (API 35) shows them, and AlterReplicaLogDirs (API 34)
//! to move a partition between them: what `kafka-log-dirs` and `kafka-reassign-partitions` with
//! `log_dirs` send.
#![forbid(unsafe_code)]

use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, DescribeLogDirsRequest};
use kafka_protocol::protocol::StrBytes;

use super::cluster::topic_name;
use super::connection::Connection;
use super::ClientError;

/// Where one partition is on a broker's data dirs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionHome {
    /// The dir holding the partition (not as a future replica).
    pub dir: Option<String>,
    /// The dir a running move copies it into (Kafka's future replica).
    pub future_dir: Option<String>,
}

/// Every data dir of the broker `connection` talks to, and where `topic`-`partition` is.
pub fn locate(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
) -> Result<(Vec<String>, PartitionHome), ClientError> {
    // Null topics: every partition.
    let response = connection.call(&DescribeLogDirsRequest::default().with_topics(None))?;
    if response.error_code != 0 {
        return Err(ClientError::kafka("DescribeLogDirs", response.error_code));
    }
    let mut dirs = Vec::with_capacity(response.results.len());
    let mut home = PartitionHome::default();
    for result in &response.results {
        let dir = result.log_dir.to_string();
        dirs.push(dir.clone());
        let found = result
            .topics
            .iter()
            .filter(|entry| entry.name.as_str() == topic)
            .flat_map(|entry| entry.partitions.iter())
            .filter(|entry| entry.partition_index == partition);
        for entry in found {
            if entry.is_future_key {
                home.future_dir = Some(dir.clone());
            } else {
                home.dir = Some(dir.clone());
            }
        }
    }
    Ok((dirs, home))
}

/// Asks the broker to move `topic`-`partition` into `dir`; it answers once the move started.
pub fn alter_dir(
    connection: &mut Connection,
    topic: &str,
    partition: i32,
    dir: &str,
) -> Result<(), ClientError> {
    let request =
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(dir.to_string()))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![partition])])]);
    let response = connection.call(&request)?;
    let code = response
        .results
        .iter()
        .flat_map(|result| result.partitions.iter())
        .map(|result| result.error_code)
        .find(|code| *code != 0);
    match code {
        None if response.results.is_empty() => Err(ClientError::Protocol(
            "AlterReplicaLogDirs answered no partition".to_string(),
        )),
        None => Ok(()),
        Some(code) => Err(ClientError::kafka(
            format!("moving {topic}-{partition} to {dir}"),
            code,
        )),
    }
}
