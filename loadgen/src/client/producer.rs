//! A producer: builds batches per partition (linger, batch size), sends Produce requests with up
//! to `max_in_flight` outstanding on each leader's connection, and counts what is acknowledged.
//!
//! Latency is counted per message from its intended send time (open loop, see `schedule`) or,
//! flat out, from the moment it was put into a batch, to the moment its acknowledgement was read
//! (acks=0: to the moment its request was written).
#![forbid(unsafe_code)]

mod outbox;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver as ChannelReceiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kafka_protocol::messages::{ApiVersionsRequest, ProduceRequest};

use self::outbox::{OpenBatch, Outbox};
use super::batch::{stamp, BatchBuilder, BATCH_HEADER_BYTES, STAMP_BYTES};
use super::connection::{Connection, Receiver, Sender};
use super::{error_name, ClientError};
use crate::clock::Clock;
use crate::counters::Counters;
use crate::histogram::Latencies;
use crate::partition_move::{MoveMarks, PhaseLatencies};
use crate::partitioner::{partition_for_key, Partitioner};
use crate::payload::Payloads;
use crate::schedule::Schedule;
use crate::workload::{Acks, Compression, PartitionerKind};

/// How one producer behaves.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub topic: String,
    /// Leader broker address per partition index.
    pub leaders: Vec<String>,
    pub acks: Acks,
    pub compression: Compression,
    pub linger: Duration,
    pub batch_bytes: usize,
    pub max_in_flight: usize,
    pub partitioner: PartitionerKind,
    pub key_cardinality: Option<u64>,
    /// This producer's share of the target rate.
    pub schedule: Schedule,
    /// When producing starts (since the start of the run's clock): the schedule's time zero.
    pub start: Duration,
    /// Messages due before this (since the start of the run's clock) are not measured.
    pub measure_start: Duration,
    /// When to stop producing (since the start of the run).
    pub end: Duration,
    /// Distinguishes producers' keys and payload positions.
    pub producer_index: u32,
    /// When a partition move ran, to split latencies by it (never marked: all "before").
    pub move_marks: Arc<MoveMarks>,
}

/// What one producer got acknowledged.
#[derive(Default)]
pub struct ProducerTally {
    pub latencies: Latencies,
    /// Per measured message: from its intended send time to its request's hand-off to the
    /// connection (linger, batching, and the producer thread running late).
    pub send_waits: Latencies,
    /// Per answered request holding a measured message: from its hand-off to the connection to
    /// its answer read (the network both ways and the broker; includes a wait for an in-flight
    /// slot, which only happens while `max_in_flight` requests are unanswered).
    pub request_round_trips: Latencies,
    /// Per request holding a measured message: how long writing it into the socket took (the
    /// thread blocks while the socket's send buffer is full: the broker is not reading). Part of
    /// the round trip, and the next requests' send waits.
    pub request_writes: Latencies,
    /// The measured latencies again, split by a partition move's phases.
    pub move_phases: PhaseLatencies,
    pub acked_messages: u64,
    pub acked_bytes: u64,
    pub measured_messages: u64,
    pub measured_bytes: u64,
    pub failed_messages: u64,
    /// Error name → failed messages.
    pub errors: BTreeMap<String, u64>,
    /// When the last measured message was acknowledged (since the start of the run's clock):
    /// under a rate the broker may fall behind and acknowledge measured messages after the end.
    pub last_measured_ack: Duration,
}

impl ProducerTally {
    pub fn merge(&mut self, other: &ProducerTally) {
        self.latencies.merge(&other.latencies);
        self.send_waits.merge(&other.send_waits);
        self.request_round_trips.merge(&other.request_round_trips);
        self.request_writes.merge(&other.request_writes);
        self.move_phases.merge(&other.move_phases);
        self.acked_messages += other.acked_messages;
        self.acked_bytes += other.acked_bytes;
        self.measured_messages += other.measured_messages;
        self.measured_bytes += other.measured_bytes;
        self.failed_messages += other.failed_messages;
        self.last_measured_ack = self.last_measured_ack.max(other.last_measured_ack);
        for (name, count) in &other.errors {
            *self.errors.entry(name.clone()).or_default() += count;
        }
    }
}

/// One partition's part of a request: enough to account for it when the answer comes.
struct SentBatch {
    partition: i32,
    value_bytes: u64,
    /// Per record: the time (since the start of the run) its latency is counted from, and its
    /// value size.
    records: Vec<(Duration, u32)>,
}

struct InFlight {
    correlation_id: i32,
    batches: Vec<SentBatch>,
    /// When the request was handed to the connection (since the start of the run's clock).
    handed_off: Duration,
    /// Whether it holds a message of the measured window (its round trip counts).
    measured: bool,
}

/// A connection to one leader: the sending half here, the receiving half on its own thread.
struct Link {
    sender: Sender,
    version: i16,
    in_flight: Option<SyncSender<InFlight>>,
    receiver: Option<JoinHandle<Result<ProducerTally, ClientError>>>,
    /// acks=0: the receiving half, unused until the closing barrier.
    idle_receiver: Option<Receiver>,
}

impl Link {
    /// acks=0 has no answers, so "written" is all a producer knows. Before the run reads high
    /// watermarks, this sends one request that is answered and waits for its answer: a broker
    /// handles a connection's requests in order (Kafka mutes a connection while it handles a
    /// request), so the answer means every earlier produce request was handled.
    fn barrier(&mut self) -> Result<(), ClientError> {
        if let Some(receiver) = self.idle_receiver.as_mut() {
            let correlation_id = self.sender.send(&ApiVersionsRequest::default(), 0)?;
            receiver.receive::<ApiVersionsRequest>(0, correlation_id)?;
        }
        Ok(())
    }
}

/// Counts acknowledged and failed batches (on the sending thread for acks=0, else on each
/// connection's receiving thread).
#[derive(Clone)]
struct Accounting {
    clock: Clock,
    counters: Arc<Counters>,
    measure_start: Duration,
    move_marks: Arc<MoveMarks>,
}

impl Accounting {
    /// `handed_off`: when the batch's request was handed to the connection.
    fn acknowledged(&self, tally: &mut ProducerTally, batch: &SentBatch, handed_off: Duration) {
        let now = self.clock.elapsed();
        let messages = batch.records.len() as u64;
        tally.acked_messages += messages;
        // Records are in due order: the first measured one waited longest.
        if let Some(&(from, _)) = batch
            .records
            .iter()
            .find(|(from, _)| *from >= self.measure_start)
        {
            self.counters
                .record_produce_latency_us(now.saturating_sub(from).as_micros() as u64);
        }
        tally.acked_bytes += batch.value_bytes;
        self.counters.add_produced(messages, batch.value_bytes);
        for &(from, value_bytes) in &batch.records {
            if from >= self.measure_start {
                let latency_us = now.saturating_sub(from).as_micros() as u64;
                tally.latencies.record_us(latency_us);
                tally
                    .send_waits
                    .record_us(handed_off.saturating_sub(from).as_micros() as u64);
                tally
                    .move_phases
                    .record_us(self.move_marks.phase_of(from), latency_us);
                tally.measured_messages += 1;
                tally.measured_bytes += u64::from(value_bytes);
                tally.last_measured_ack = tally.last_measured_ack.max(now);
            }
        }
    }

    /// Whether a batch holds a message of the measured window: records are in due order, so
    /// its last one does if any does.
    fn holds_measured(&self, batch: &SentBatch) -> bool {
        batch
            .records
            .last()
            .is_some_and(|(from, _)| *from >= self.measure_start)
    }

    /// Counts an answered request's round trip if it holds a measured message.
    fn round_trip(&self, tally: &mut ProducerTally, request: &InFlight) {
        if request.measured {
            let round_trip = self.clock.elapsed().saturating_sub(request.handed_off);
            tally
                .request_round_trips
                .record_us(round_trip.as_micros() as u64);
        }
    }

    fn failed(&self, tally: &mut ProducerTally, batch: &SentBatch, error: String) {
        let messages = batch.records.len() as u64;
        tally.failed_messages += messages;
        *tally.errors.entry(error).or_default() += messages;
    }
}

/// Runs one producer until `config.end` or `stop`, then waits for every outstanding answer.
pub fn run_producer(
    config: &ProducerConfig,
    clock: &Clock,
    counters: &Arc<Counters>,
    payloads: &Payloads,
    stop: &AtomicBool,
) -> Result<ProducerTally, ClientError> {
    let partitions = config.leaders.len();
    assert!(partitions > 0, "a topic has partitions");
    let mut outbox = Outbox {
        config,
        accounting: Accounting {
            clock: *clock,
            counters: Arc::clone(counters),
            measure_start: config.measure_start,
            move_marks: Arc::clone(&config.move_marks),
        },
        links: HashMap::new(),
        open: (0..partitions)
            .map(|_| OpenBatch {
                builder: BatchBuilder::with_capacity(config.batch_bytes + 64 * 1024),
                records: Vec::new(),
                first_at: None,
            })
            .collect(),
        tally: ProducerTally::default(),
    };
    let mut generator = Generator::new(config, *clock, payloads);
    let result = generator
        .run(&mut outbox, stop)
        .and_then(|()| outbox.send(&(0..partitions).collect::<Vec<_>>()));
    close_links(outbox, result)
}

/// Closes every link and collects what its receiver counted, even after an error (then without
/// the barrier: the connection may be broken).
fn close_links(
    mut outbox: Outbox<'_>,
    result: Result<(), ClientError>,
) -> Result<ProducerTally, ClientError> {
    let mut tally = std::mem::take(&mut outbox.tally);
    for (_, mut link) in outbox.links.drain() {
        if result.is_ok() {
            link.barrier()?;
        }
        link.in_flight.take();
        if let Some(receiver) = link.receiver.take() {
            match receiver.join() {
                Ok(Ok(received)) => tally.merge(&received),
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(ClientError::Protocol("producer receiver panicked".into())),
            }
        }
    }
    result.map(|()| tally)
}

/// Makes a producer's messages: when each is due, its key, its partition, its bytes.
struct Generator<'a> {
    config: &'a ProducerConfig,
    payloads: &'a Payloads,
    clock: Clock,
    partitions: usize,
    round_robin: Partitioner,
    /// Sticky: one partition until its batch is sent, then the next (the Java client's default
    /// for unkeyed messages since KIP-480).
    sticky: usize,
    key_buf: String,
    /// A batch is sent once another record of this size might not fit, so no batch exceeds
    /// `batch_bytes` (brokers refuse batches above max.message.bytes, 1 MiB + 12 by default).
    largest_record: usize,
    /// Under a rate (open loop) rather than flat out.
    rated: bool,
    /// Under a rate, the thread wakes at the latest when this many messages are due, so a
    /// batch is built as its messages come due rather than all at its linger's end.
    fill_step: u64,
    /// The next message's number.
    index: u64,
}

impl<'a> Generator<'a> {
    fn new(config: &'a ProducerConfig, clock: Clock, payloads: &'a Payloads) -> Self {
        let partitions = config.leaders.len();
        let largest_record = payloads.largest_bytes() + 64;
        Self {
            config,
            payloads,
            clock,
            partitions,
            round_robin: Partitioner::RoundRobin {
                next: config.producer_index,
            },
            sticky: usize::try_from(config.producer_index).unwrap_or(0) % partitions,
            key_buf: String::new(),
            largest_record,
            rated: config.schedule.due(1) > Duration::ZERO,
            fill_step: fill_step_messages(largest_record),
            index: 0,
        }
    }

    /// Rounds until the end (or `stop`): due messages into batches, lingered batches sent, and
    /// under a rate a sleep until the next message or linger end.
    fn run(&mut self, outbox: &mut Outbox<'_>, stop: &AtomicBool) -> Result<(), ClientError> {
        let config = self.config;
        loop {
            let now = self.clock.elapsed();
            if stop.load(Ordering::Relaxed) || (!self.rated && now >= config.end) {
                return Ok(());
            }
            // Under a rate, every message due before the end is sent, even when this thread
            // wakes up late: what is late shows in its latency, it is not skipped.
            let finished = now >= config.end;
            let due = config.schedule.due_by(now.saturating_sub(config.start));
            self.fill_due(outbox, due)?;
            if finished && (self.index >= due || self.due_at(self.index) >= config.end) {
                return Ok(());
            }
            self.send_lingered(outbox)?;
            self.sleep_until_due(outbox);
        }
    }

    /// When message `index` is due under the rate.
    fn due_at(&self, index: u64) -> Duration {
        self.config.start + self.config.schedule.due(index)
    }

    /// Puts messages up to number `due` into their batches; a batch that fills is sent at once,
    /// which ends the round.
    fn fill_due(&mut self, outbox: &mut Outbox<'_>, due: u64) -> Result<(), ClientError> {
        while self.index < due {
            let from = if self.rated {
                self.due_at(self.index)
            } else {
                self.clock.elapsed()
            };
            if from >= self.config.end {
                return Ok(());
            }
            let partition = self.add_message(outbox, from);
            let open = &outbox.open[partition];
            if BATCH_HEADER_BYTES + open.builder.encoded_bytes() + self.largest_record
                > self.config.batch_bytes
            {
                self.move_sticky_off(&[partition]);
                return outbox.send(&[partition]);
            }
        }
        Ok(())
    }

    /// Adds message number `index`, counted from `from`, to its partition's batch; returns the
    /// partition.
    fn add_message(&mut self, outbox: &mut Outbox<'_>, from: Duration) -> usize {
        let config = self.config;
        let partitions = u32::try_from(self.partitions).expect("partition counts fit in u32");
        let key = message_key(config, self.index, &mut self.key_buf);
        let partition = match (config.partitioner, key) {
            (PartitionerKind::Murmur2, Some(key)) => partition_for_key(key, partitions) as usize,
            (PartitionerKind::RoundRobin, _) => self.round_robin.next(None, partitions) as usize,
            _ => self.sticky,
        };
        let value = self.payloads.next(self.index, config.producer_index);
        let unix_us = self.clock.unix_us(from);
        let stamp_bytes = STAMP_BYTES.min(value.len());
        let open = &mut outbox.open[partition];
        open.builder.push(
            (unix_us / 1000) as i64,
            key,
            &stamp(unix_us)[..stamp_bytes],
            &value[stamp_bytes..],
        );
        open.records.push((
            from,
            u32::try_from(value.len()).expect("values are at most max_bytes of the workload"),
        ));
        open.first_at.get_or_insert(from);
        self.index += 1;
        partition
    }

    /// Sends the batches that lingered long enough.
    fn send_lingered(&mut self, outbox: &mut Outbox<'_>) -> Result<(), ClientError> {
        let now = self.clock.elapsed();
        let lingered: Vec<usize> = (0..self.partitions)
            .filter(|partition| {
                outbox.open[*partition]
                    .first_at
                    .is_some_and(|first| now >= first + self.config.linger)
            })
            .collect();
        if lingered.is_empty() {
            return Ok(());
        }
        self.move_sticky_off(&lingered);
        outbox.send(&lingered)
    }

    /// The sticky partition moves on once its batch is sent.
    fn move_sticky_off(&mut self, sent: &[usize]) {
        if sent.contains(&self.sticky) {
            self.sticky = (self.sticky + 1) % self.partitions;
        }
    }

    /// Under a rate, sleeps until the next thing this thread must do: a batch's linger ends, a
    /// batch may fill, or `fill_step` more messages are due. Messages due meanwhile are added on
    /// waking, stamped with their due times (a batch's linger counts from its first message's
    /// due time too), so what is sent and when is what waking for every message would send;
    /// only the thread does not spin. Waking per message spun a whole core at 50k msg/s (a
    /// message every 20 µs), a core the broker on the same 2-core machine then did not have.
    /// Waking only at a linger's end put the work of building the whole batch (about 0.5 ms at
    /// 850k msg/s) between the linger's end and the request, into every message's latency:
    /// an application hands a real client each message when it is made, and the batch is
    /// ready when the linger ends.
    fn sleep_until_due(&self, outbox: &Outbox<'_>) {
        let config = self.config;
        let elapsed = self.clock.elapsed().saturating_sub(config.start);
        if !self.rated || self.index < config.schedule.due_by(elapsed) {
            return;
        }
        let oldest_open = outbox.open.iter().filter_map(|open| open.first_at).min();
        let wake = next_wake(
            self.due_at(self.index),
            config.linger,
            oldest_open,
            self.may_fill_at(outbox),
            self.due_at(self.index + self.fill_step - 1),
        );
        let sleep = wake.saturating_sub(self.clock.elapsed());
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
    }

    /// The earliest due time at which some open batch could be full: as if every message from
    /// the next one on went to the fullest batch, each as large as the largest record.
    fn may_fill_at(&self, outbox: &Outbox<'_>) -> Duration {
        let room_bytes = outbox
            .open
            .iter()
            .map(|open| {
                self.config
                    .batch_bytes
                    .saturating_sub(BATCH_HEADER_BYTES + open.builder.encoded_bytes())
            })
            .min()
            .unwrap_or(self.config.batch_bytes);
        let messages_that_fit = (room_bytes / self.largest_record.max(1)) as u64;
        self.due_at(self.index + messages_that_fit)
    }
}

/// Bytes of messages a rated producer adds per wake-up at the most (unless a linger ends
/// first): 128 KiB of 1 KiB messages take it about 80 µs to add, and at 850k msg/s it wakes
/// about 7,000 times a second; at 50k msg/s a 1 ms linger ends before the step.
const FILL_STEP_BYTES: usize = 128 * 1024;

/// How many messages of at most `largest_record_bytes` make a fill step (at least one).
fn fill_step_messages(largest_record_bytes: usize) -> u64 {
    (FILL_STEP_BYTES / largest_record_bytes.max(1)).max(1) as u64
}

/// When a rated producer next has something to do: the linger end of its oldest open batch, of
/// the batch the next message (due at `next_due`) opens, the time a batch may fill, or the time
/// the next fill step is due (`step_due`), whichever comes first.
fn next_wake(
    next_due: Duration,
    linger: Duration,
    oldest_open: Option<Duration>,
    may_fill_at: Duration,
    step_due: Duration,
) -> Duration {
    let linger_end = oldest_open.map_or(next_due, |first| first.min(next_due)) + linger;
    linger_end.min(may_fill_at).min(step_due)
}

/// The key of message `index`, written into `key_buf`: one of `key_cardinality` keys, spread
/// over producers; `None` without keys.
fn message_key<'buf>(
    config: &ProducerConfig,
    index: u64,
    key_buf: &'buf mut String,
) -> Option<&'buf [u8]> {
    use std::fmt::Write;
    let cardinality = config.key_cardinality?;
    let key_number = (index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(config.producer_index))
        % cardinality.max(1);
    key_buf.clear();
    let _ = write!(key_buf, "key-{key_number}");
    Some(key_buf.as_bytes())
}

fn open_link(
    config: &ProducerConfig,
    leader: &str,
    accounting: &Accounting,
) -> Result<Link, ClientError> {
    let connection = Connection::connect(leader)?;
    let version = connection.version_of::<ProduceRequest>()?;
    let (sender, receiver) = connection.split();
    if config.acks == Acks::None {
        return Ok(Link {
            sender,
            version,
            in_flight: None,
            receiver: None,
            idle_receiver: Some(receiver),
        });
    }
    let (in_flight, in_flight_receiver) = sync_channel(config.max_in_flight.max(1) - 1);
    let accounting = accounting.clone();
    let receiver = std::thread::Builder::new()
        .name("produce-acks".into())
        .spawn(move || receive_loop(receiver, version, in_flight_receiver, accounting))?;
    Ok(Link {
        sender,
        version,
        in_flight: Some(in_flight),
        receiver: Some(receiver),
        idle_receiver: None,
    })
}

/// Reads answers in order and accounts for each request's batches.
fn receive_loop(
    mut receiver: Receiver,
    version: i16,
    in_flight: ChannelReceiver<InFlight>,
    accounting: Accounting,
) -> Result<ProducerTally, ClientError> {
    let mut tally = ProducerTally::default();
    while let Ok(request) = in_flight.recv() {
        let response = match receiver.receive::<ProduceRequest>(version, request.correlation_id) {
            Ok(response) => response,
            Err(error) => {
                for batch in &request.batches {
                    accounting.failed(&mut tally, batch, error.to_string());
                }
                return Err(error);
            }
        };
        accounting.round_trip(&mut tally, &request);
        for batch in &request.batches {
            let code = response
                .responses
                .iter()
                .flat_map(|topic| topic.partition_responses.iter())
                .find(|partition| partition.index == batch.partition)
                .map(|partition| partition.error_code);
            match code {
                Some(0) => accounting.acknowledged(&mut tally, batch, request.handed_off),
                Some(code) => accounting.failed(&mut tally, batch, error_name(code)),
                None => accounting.failed(&mut tally, batch, "NO_ANSWER_FOR_PARTITION".into()),
            }
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_rated_producer_wakes_for_lingers_and_full_batches_not_for_every_message() {
        let never = ms(500);
        // Nothing open: the next message's batch lingers from its due time.
        assert_eq!(next_wake(ms(10), ms(1), None, never, never), ms(11));
        // An open batch lingering since before the next message: its end comes first.
        assert_eq!(next_wake(ms(10), ms(1), Some(ms(5)), never, never), ms(6));
        // A batch that may fill before any linger ends.
        assert_eq!(next_wake(ms(10), ms(5), Some(ms(9)), ms(12), never), ms(12));
        // Without linger: every message is its own wake-up.
        assert_eq!(
            next_wake(ms(10), Duration::ZERO, None, never, never),
            ms(10)
        );
        // A fill step due before the linger ends: the thread adds those messages then, so the
        // batch is not built all at the linger's end.
        assert_eq!(next_wake(ms(10), ms(5), Some(ms(9)), never, ms(11)), ms(11));
    }

    #[test]
    fn a_fill_step_is_128_kib_of_the_largest_records_and_never_zero() {
        assert_eq!(fill_step_messages(1024 + 64), 120);
        assert_eq!(fill_step_messages(64), 2048);
        // Records larger than the step: every message is a step.
        assert_eq!(fill_step_messages(4 * 1024 * 1024), 1);
        assert_eq!(fill_step_messages(0), (FILL_STEP_BYTES as u64));
    }
}
