//! `ringtail log-dirs` and `ringtail move-partition`: the data dirs as DescribeLogDirs shows them,
//! and a partition moved to another data dir with AlterReplicaLogDirs, waiting until it lives
//! there. Runs in the CLI process over the broker's own protocol, never on a shard.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::cli_groups::Client;

const DESCRIBE_VERSION: i16 = 4;
const ALTER_VERSION: i16 = 2;
/// Between two looks at a running move.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

fn describe(client: &mut Client) -> Result<Vec<DescribeLogDirsResult>> {
    let response: DescribeLogDirsResponse = client.call(
        ApiKey::DescribeLogDirs,
        DESCRIBE_VERSION,
        // Null topics: every partition (an empty list would mean none).
        &DescribeLogDirsRequest::default().with_topics(None),
    )?;
    Ok(response.results)
}

/// Prints every data dir: space, error, and each partition with its size.
pub fn run_describe(bootstrap: &str) -> Result<()> {
    let mut client = Client::connect(bootstrap)?;
    for dir in describe(&mut client)? {
        let state = match dir.error_code {
            0 => "online".to_string(),
            code => format!("error {code} (offline)"),
        };
        println!(
            "{}  {state}  total {} bytes, usable {} bytes",
            dir.log_dir.as_str(),
            dir.total_bytes,
            dir.usable_bytes
        );
        for topic in &dir.topics {
            for partition in &topic.partitions {
                let future = if partition.is_future_key {
                    "  (moving here)"
                } else {
                    ""
                };
                let failed = move_error(partition)
                    .map(|reason| format!("  (last {reason})"))
                    .unwrap_or_default();
                println!(
                    "  {}-{}  {} bytes{future}{failed}",
                    topic.name.as_str(),
                    partition.partition_index,
                    partition.partition_size
                );
            }
        }
    }
    Ok(())
}

/// Why the partition's last move failed, from Ringtail's tagged field (see
/// [`crate::api::describe_log_dirs::MOVE_ERROR_TAG`]).
fn move_error(
    partition: &kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsPartition,
) -> Option<String> {
    partition
        .unknown_tagged_fields
        .get(&crate::api::describe_log_dirs::MOVE_ERROR_TAG)
        .map(|reason| String::from_utf8_lossy(reason).into_owned())
}

/// Where the partition is: (its dir, whether a move into some dir is running, why its last move
/// failed).
fn locate(
    dirs: &[DescribeLogDirsResult],
    topic: &str,
    partition: i32,
) -> (Option<String>, bool, Option<String>) {
    let mut home = None;
    let mut moving = false;
    let mut failure = None;
    for dir in dirs {
        for entry in dir.topics.iter().filter(|t| t.name.as_str() == topic) {
            for found in entry
                .partitions
                .iter()
                .filter(|p| p.partition_index == partition)
            {
                if found.is_future_key {
                    moving = true;
                } else {
                    home = Some(dir.log_dir.to_string());
                    failure = move_error(found);
                }
            }
        }
    }
    (home, moving, failure)
}

/// Asks for the move and waits (up to `wait`) until the partition lives in `to`.
pub fn run_move(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    to: &str,
    wait: Duration,
) -> Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let request =
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(to.to_string()))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])])]);
    let response: AlterReplicaLogDirsResponse =
        client.call(ApiKey::AlterReplicaLogDirs, ALTER_VERSION, &request)?;
    let code = response
        .results
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .next()
        .unwrap_or(-1);
    if code != 0 {
        bail!("the broker refused the move of {topic}-{partition} to {to}: error code {code}");
    }
    println!("moving {topic}-{partition} to {to}");
    let deadline = Instant::now() + wait;
    loop {
        let (home, moving, failure) = locate(&describe(&mut client)?, topic, partition);
        if home.as_deref() == Some(to) && !moving {
            println!("{topic}-{partition} now lives in {to}");
            return Ok(());
        }
        if !moving {
            bail!(
                "the move of {topic}-{partition} to {to} failed; it serves from {}: {}",
                home.unwrap_or_else(|| "nowhere".into()),
                failure.unwrap_or_else(|| "see the broker's log".into())
            );
        }
        if Instant::now() > deadline {
            bail!("{topic}-{partition} is still moving after {wait:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
