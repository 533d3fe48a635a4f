//! A consumer: fetches its partitions from their leaders (assign mode, or the partitions its
//! consumer group gave it), counts records and value bytes, and records end-to-end latency from
//! the intended send time stamped into each value. It stops once every partition reached the
//! drain target the run sets after producing, or when told to.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};

use super::batch::{next_position, walk_batches};
use super::cluster::{topic_name, Cluster, EARLIEST, LATEST};
use super::connection::Connection;
use super::group::{GroupMember, Heartbeat};
use super::ClientError;
use crate::clock::Clock;
use crate::counters::Counters;
use crate::histogram::Latencies;
use crate::workload::StartFrom;

const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Kafka's default `auto.commit.interval.ms`.
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// How one consumer behaves.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub bootstrap: String,
    pub topic: String,
    /// Leader broker address per partition index.
    pub leaders: Vec<String>,
    pub membership: Membership,
    pub start_from: StartFrom,
    pub max_wait_ms: i32,
    pub fetch_max_bytes: i32,
    pub partition_max_bytes: i32,
    /// Send the next Fetch before walking the records of the last (see [`fetch_once`]).
    pub fetch_ahead: bool,
    /// Which intended send times count in the measured figures.
    pub window: Arc<MeasureWindow>,
}

/// The measured part of the run in Unix µs of intended send time, `[from, until)`. Consumers
/// are started before it is known (they must be positioned before producing starts), so it is
/// shared and set once producing begins; until then nothing is measured.
#[derive(Debug)]
pub struct MeasureWindow {
    from_unix_us: AtomicU64,
    until_unix_us: AtomicU64,
}

impl Default for MeasureWindow {
    fn default() -> Self {
        Self {
            from_unix_us: AtomicU64::new(u64::MAX),
            until_unix_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl MeasureWindow {
    pub fn set(&self, from_unix_us: u64, until_unix_us: u64) {
        self.until_unix_us.store(until_unix_us, Ordering::Relaxed);
        self.from_unix_us.store(from_unix_us, Ordering::Relaxed);
    }

    fn range(&self) -> std::ops::Range<u64> {
        self.from_unix_us.load(Ordering::Relaxed)..self.until_unix_us.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Assign(Vec<i32>),
    Group(String),
}

/// Where the run tells consumers to stop: per partition, the offset to reach.
#[derive(Debug, Default)]
pub struct Drain {
    targets: Mutex<Option<BTreeMap<i32, i64>>>,
    /// Stop now, whatever was reached.
    pub abort: AtomicBool,
}

impl Drain {
    pub fn set_targets(&self, targets: BTreeMap<i32, i64>) {
        *self.targets.lock().expect("not poisoned") = Some(targets);
    }

    fn reached(&self, positions: &BTreeMap<i32, i64>) -> bool {
        match &*self.targets.lock().expect("not poisoned") {
            None => false,
            Some(targets) => positions
                .iter()
                .all(|(partition, position)| targets.get(partition).is_none_or(|t| position >= t)),
        }
    }
}

/// A consumer's (generation, partition count) once it is positioned, so that the run starts
/// producing only when every consumer of a group holds the same generation's assignment.
pub type Readiness = Arc<Mutex<Vec<Option<(i32, usize)>>>>;

#[derive(Default)]
pub struct ConsumerTally {
    pub e2e_latencies: Latencies,
    pub messages: u64,
    pub bytes: u64,
    pub measured_messages: u64,
    pub measured_bytes: u64,
}

impl ConsumerTally {
    pub fn merge(&mut self, other: &ConsumerTally) {
        self.e2e_latencies.merge(&other.e2e_latencies);
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.measured_messages += other.measured_messages;
        self.measured_bytes += other.measured_bytes;
    }
}

/// Runs one consumer until the drain targets are reached or it is aborted.
pub fn run_consumer(
    config: &ConsumerConfig,
    clock: &Clock,
    counters: &Counters,
    drain: &Drain,
    readiness: (&Readiness, usize),
) -> Result<ConsumerTally, ClientError> {
    let mut cluster = Cluster::connect(&config.bootstrap)?;
    cluster.refresh(std::slice::from_ref(&config.topic))?;
    let mut member = join_if_grouped(config)?;
    let mut positions = positions_for(config, &mut cluster, member.as_mut())?;
    let mark_ready = |generation: i32, positions: &BTreeMap<i32, i64>| {
        readiness.0.lock().expect("not poisoned")[readiness.1] =
            Some((generation, positions.len()));
    };
    mark_ready(
        member.as_ref().map_or(0, GroupMember::generation_id),
        &positions,
    );
    let mut connections: BTreeMap<String, (Connection, Option<FetchAhead>)> = BTreeMap::new();
    let mut tally = ConsumerTally::default();
    let mut last_commit = Instant::now();
    loop {
        if drain.abort.load(Ordering::Relaxed) || drain.reached(&positions) {
            break;
        }
        if let Some(member) = member.as_mut() {
            if member.heartbeat_if_due()? == Heartbeat::Rejoin {
                member.commit(&positions)?;
                member.join()?;
                positions = positions_for(config, &mut cluster, Some(member))?;
                mark_ready(member.generation_id(), &positions);
            } else if last_commit.elapsed() >= COMMIT_INTERVAL {
                member.commit_async(&positions)?;
                last_commit = Instant::now();
            }
        }
        if positions.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        for (leader, partitions) in partitions_by_leader(config, &positions) {
            if !connections.contains_key(leader) {
                connections.insert(leader.to_string(), (Connection::connect(leader)?, None));
            }
            let (connection, ahead) = connections.get_mut(leader).expect("inserted above");
            fetch_once(
                config,
                (connection, ahead),
                &partitions,
                &mut positions,
                clock,
                counters,
                &mut tally,
            )?;
        }
    }
    if let Some(member) = member.as_mut() {
        member.commit(&positions)?;
        member.leave()?;
    }
    Ok(tally)
}

/// The consumer's group membership, joined; `None` in assign mode.
fn join_if_grouped(config: &ConsumerConfig) -> Result<Option<GroupMember>, ClientError> {
    match &config.membership {
        Membership::Assign(_) => Ok(None),
        Membership::Group(group_id) => GroupMember::join_new(
            &config.bootstrap,
            group_id,
            &config.topic,
            i32::try_from(config.leaders.len())
                .expect("one leader per partition; Kafka counts partitions in an int32"),
        )
        .map(Some),
    }
}

/// The partitions the consumer holds, grouped by their leader's address.
fn partitions_by_leader<'a>(
    config: &'a ConsumerConfig,
    positions: &BTreeMap<i32, i64>,
) -> BTreeMap<&'a str, Vec<i32>> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for &partition in positions.keys() {
        let index = usize::try_from(partition).expect("partition indexes are not negative");
        by_leader
            .entry(config.leaders[index].as_str())
            .or_default()
            .push(partition);
    }
    by_leader
}

/// Starting positions: committed offsets in a group, else the log end or start.
fn positions_for(
    config: &ConsumerConfig,
    cluster: &mut Cluster,
    member: Option<&mut GroupMember>,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let (partitions, committed) = match (member, &config.membership) {
        (Some(member), _) => (member.assignment().to_vec(), member.committed()?),
        (None, Membership::Assign(partitions)) => (partitions.clone(), BTreeMap::new()),
        (None, Membership::Group(_)) => unreachable!("a group consumer has a membership"),
    };
    let timestamp = match config.start_from {
        StartFrom::Latest => LATEST,
        StartFrom::Earliest => EARLIEST,
    };
    let reset = cluster.list_offsets(&config.topic, timestamp)?;
    Ok(partitions
        .into_iter()
        .map(|partition| {
            let position = committed
                .get(&partition)
                .or_else(|| reset.get(&partition))
                .copied()
                .unwrap_or(0);
            (partition, position)
        })
        .collect())
}

/// A Fetch sent ahead on a connection, not yet answered: the request it is, to tell whether it is
/// still the one wanted (positions move on a rebalance).
#[derive(Debug)]
struct FetchAhead {
    sent: (i16, i32),
    positions: Vec<(i32, i64)>,
}

fn wanted(partitions: &[i32], positions: &BTreeMap<i32, i64>) -> Vec<(i32, i64)> {
    partitions
        .iter()
        .map(|partition| (*partition, positions[partition]))
        .collect()
}

/// Fetches `partitions` once from their positions on `connection` and walks the records. With
/// `fetch_ahead`, the next Fetch (from the positions the batch headers give) goes out before the
/// records are walked (CRC checked, each value's stamp read), so the broker reads and sends the
/// next response while this one is read, as the Java consumer's and librdkafka's prefetch do;
/// without it the broker waits idle for every walk (a catch-up reader's disk with it).
fn fetch_once(
    config: &ConsumerConfig,
    (connection, ahead): (&mut Connection, &mut Option<FetchAhead>),
    partitions: &[i32],
    positions: &mut BTreeMap<i32, i64>,
    clock: &Clock,
    counters: &Counters,
    tally: &mut ConsumerTally,
) -> Result<(), ClientError> {
    let wanted_now = wanted(partitions, positions);
    let sent = match ahead.take() {
        Some(fetch) if fetch.positions == wanted_now => fetch.sent,
        stale => {
            if let Some(stale) = stale {
                // Answers come in request order: the stale one is read and dropped.
                connection.receive::<FetchRequest>(stale.sent)?;
            }
            connection.send(&fetch_request(config, partitions, positions))?
        }
    };
    let response = connection.receive::<FetchRequest>(sent)?;
    if response.error_code != 0 {
        return Err(ClientError::kafka("Fetch", response.error_code));
    }
    if config.fetch_ahead {
        let mut next = positions.clone();
        for partition in response
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
        {
            if partition.error_code != 0 {
                continue;
            }
            if let (Some(records), Some(position)) = (
                partition.records.as_ref(),
                next.get_mut(&partition.partition_index),
            ) {
                *position = next_position(records, *position);
            }
        }
        let sent = connection.send(&fetch_request(config, partitions, &next))?;
        *ahead = Some(FetchAhead {
            sent,
            positions: wanted(partitions, &next),
        });
    }
    for partition in response
        .responses
        .into_iter()
        .flat_map(|topic| topic.partitions)
    {
        check_partition_error(config, &partition, positions)?;
        let Some(records) = partition.records else {
            continue;
        };
        let Some(position) = positions.get_mut(&partition.partition_index) else {
            continue;
        };
        let now_us = clock.now_unix_us();
        let window = config.window.range();
        let batches = walk_batches(records, *position, |send_us, _| {
            if window.contains(&send_us) {
                tally
                    .e2e_latencies
                    .record_us(now_us.saturating_sub(send_us));
            }
        })?;
        // Throughput counts what is read during the measured window, whenever it was produced
        // (a catch-up reader's backlog included); latency only what was sent in it.
        let read_in_window = window.contains(&now_us);
        for batch in batches {
            *position = batch.next_offset;
            tally.messages += batch.records;
            tally.bytes += batch.value_bytes;
            if read_in_window {
                tally.measured_messages += batch.records;
                tally.measured_bytes += batch.value_bytes;
            }
            counters.add_consumed(batch.records, batch.value_bytes);
        }
    }
    Ok(())
}

/// A Fetch of `partitions` from their current positions.
fn fetch_request(
    config: &ConsumerConfig,
    partitions: &[i32],
    positions: &BTreeMap<i32, i64>,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.fetch_max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(&config.topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|partition| {
                        FetchPartition::default()
                            .with_partition(*partition)
                            .with_fetch_offset(positions[partition])
                            .with_partition_max_bytes(config.partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// A partition's error in a Fetch response as the run's error (the position is named when it
/// is out of range).
fn check_partition_error(
    config: &ConsumerConfig,
    partition: &PartitionData,
    positions: &BTreeMap<i32, i64>,
) -> Result<(), ClientError> {
    match partition.error_code {
        0 => Ok(()),
        OFFSET_OUT_OF_RANGE => Err(ClientError::kafka(
            format!(
                "fetching {}-{} at {}",
                config.topic,
                partition.partition_index,
                positions
                    .get(&partition.partition_index)
                    .copied()
                    .unwrap_or(-1)
            ),
            OFFSET_OUT_OF_RANGE,
        )),
        code => Err(ClientError::kafka("Fetch", code)),
    }
}
