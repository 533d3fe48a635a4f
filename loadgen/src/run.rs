//! One run of a workload: create the topics, start the consumers and wait until every one holds
//! its partitions, optionally fill a backlog, produce for warm-up plus the measured duration,
//! then drain (consumers read up to the high watermarks measured after producing) and report.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::client::cluster::{Cluster, LATEST};
use crate::client::consumer::{
    run_consumer, ConsumerConfig, ConsumerTally, Drain, MeasureWindow, Membership, Readiness,
};
use crate::client::producer::{run_producer, ProducerConfig, ProducerTally};
use crate::client::ClientError;
use crate::clock::Clock;
use crate::counters::{Counters, Totals};
use crate::partition_move::{MoveMarks, MoveOutcome, MoveSummary};
use crate::payload::Payloads;
use crate::report::{ConsumeSummary, Machine, ProduceSummary, RunReport};
use crate::schedule::Schedule;
use crate::workload::{ConsumerMode, ConsumerPriority, Workload};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("invalid workload: {0}")]
    Invalid(String),
    #[error("consumers were not all assigned after {0:?}")]
    ConsumersNotReady(Duration),
    #[error("a {role} thread failed: {message}")]
    Worker { role: &'static str, message: String },
    #[error("dropping the backlog from the page cache: {0}")]
    Evict(std::io::Error),
}

/// Progress callbacks (the terminal's progress bar; nothing in tests).
pub trait Progress: Send + Sync {
    /// Called about once a second with totals since producing started.
    fn tick(&self, phase: &str, elapsed: Duration, total: Duration, totals: &Totals);
}

/// No progress output.
pub struct Silent;

impl Progress for Silent {
    fn tick(&self, _: &str, _: Duration, _: Duration, _: &Totals) {}
}

/// Measures a local process's CPU time (the broker's) and the loadgen's own.
pub trait CpuProbe {
    fn broker_cpu_s(&self) -> Option<f64>;
    fn own_cpu_s(&self) -> f64;
}

/// How the environment is described in the report.
pub struct Environment<'a> {
    pub label: String,
    pub machine: Machine,
    pub cpu: &'a dyn CpuProbe,
    pub progress: &'a dyn Progress,
}

/// Fetch size per request: large enough that one fetch moves many batches (Kafka's default is
/// 50 MiB; per partition: `Workload::fetch_partition_max_bytes`).
const FETCH_MAX_BYTES: i32 = 64 << 20;
const FETCH_MAX_WAIT_MS: i32 = 100;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn validate(workload: &Workload) -> Result<(), RunError> {
    let invalid = |message: &str| Err(RunError::Invalid(message.to_string()));
    if workload.topics.is_empty() {
        return invalid("no topic");
    }
    if workload.partitions < 1 {
        return invalid("partitions must be at least 1");
    }
    if workload.producers < 1 {
        return invalid("producers must be at least 1");
    }
    let positive = |value: f64| value.is_finite() && value > 0.0;
    if !positive(workload.duration_s) || workload.warmup_s < 0.0 {
        return invalid("duration must be positive and warm-up not negative");
    }
    if workload.rate_msgs_per_s.is_some_and(|rate| !positive(rate)) {
        return invalid("rate must be positive");
    }
    if workload.message_size.mean_bytes() < 1.0 {
        return invalid("messages need at least one byte");
    }
    if let crate::workload::MessageSize::Uniform {
        min_bytes,
        max_bytes,
    } = workload.message_size
    {
        if min_bytes > max_bytes {
            return invalid("message size: min above max");
        }
    }
    Ok(())
}

/// Runs `workload` and returns its report.
pub fn run(workload: &Workload, environment: &Environment<'_>) -> Result<RunReport, RunError> {
    validate(workload)?;
    let started_at = crate::report::now_rfc3339();
    let mut cluster = Cluster::connect(&workload.bootstrap)?;
    cluster.ensure_topics(&workload.topics, workload.partitions, &[])?;
    let leaders = leader_addresses(&cluster, &workload.topics)?;
    let payloads = Arc::new(Payloads::new(workload.message_size));
    let clock = Clock::start();

    let backlog_messages = if workload.backlog_bytes > 0 {
        fill_backlog(workload, &leaders, &clock, &payloads, environment)?
    } else {
        0
    };
    if !workload.evict_backlog_dirs.is_empty() {
        crate::evict::drop_from_page_cache(&workload.evict_backlog_dirs)
            .map_err(RunError::Evict)?;
    }

    // Consumers first, positioned before anything is produced.
    let shared = Shared {
        clock,
        counters: Arc::new(Counters::default()),
        drains: workload
            .topics
            .iter()
            .map(|topic| (topic.clone(), Arc::new(Drain::default())))
            .collect(),
        window: Arc::new(MeasureWindow::default()),
    };
    let group_prefix = format!("ringtail-loadgen-{}-{started_at}", std::process::id());
    let (mut consumer_threads, readiness_groups) =
        spawn_consumers(workload, &leaders, &shared, &group_prefix)?;
    wait_until_ready(&readiness_groups, &mut consumer_threads)?;

    let broker_cpu_before = environment.cpu.broker_cpu_s();
    let own_cpu_before = environment.cpu.own_cpu_s();
    let produced = produce(workload, &leaders, &shared, &payloads, environment)?;

    // Drain: consumers read up to the high watermarks as they are now.
    for topic in &workload.topics {
        cluster.refresh(std::slice::from_ref(topic))?;
        shared.drains[topic].set_targets(cluster.list_offsets(topic, LATEST)?);
    }
    let drain_timed_out = drain(workload, &shared, &consumer_threads, &produced, environment);
    let mut consumed = ConsumerTally::default();
    for thread in consumer_threads {
        consumed.merge(&join(thread, "consumer")?);
    }
    let cpu = CpuUse {
        broker_s: broker_cpu_before
            .zip(environment.cpu.broker_cpu_s())
            .map(|(before, after)| after - before),
        loadgen_s: environment.cpu.own_cpu_s() - own_cpu_before,
    };
    let finished = Finished {
        started_at,
        backlog_messages,
        produced,
        consumed,
        cpu,
        drain_timed_out,
    };
    Ok(report(workload, environment, finished))
}

/// What the run's threads share: the clock, the totals, each topic's drain, the measured window.
struct Shared {
    clock: Clock,
    counters: Arc<Counters>,
    drains: BTreeMap<String, Arc<Drain>>,
    window: Arc<MeasureWindow>,
}

/// The producing phase as it went: the producers' merged tally and the phase's times.
struct Produced {
    tally: ProducerTally,
    /// The partition move's outcome, when the workload has one.
    moved: Option<MoveOutcome>,
    timeline: Vec<crate::report::TimelinePoint>,
    producing_start: Duration,
    measure_start: Duration,
    end: Duration,
}

/// Everything a run measured, for its report.
struct Finished {
    started_at: String,
    backlog_messages: u64,
    produced: Produced,
    consumed: ConsumerTally,
    cpu: CpuUse,
    drain_timed_out: bool,
}

/// CPU seconds used during the run.
struct CpuUse {
    broker_s: Option<f64>,
    loadgen_s: f64,
}

/// Each topic's partition leaders' addresses, in partition order.
fn leader_addresses(
    cluster: &Cluster,
    topics: &[String],
) -> Result<BTreeMap<String, Vec<String>>, RunError> {
    let mut leaders = BTreeMap::new();
    for topic in topics {
        let layout = cluster
            .topic(topic)
            .ok_or_else(|| ClientError::kafka(format!("metadata of {topic}"), 3))?;
        let addresses = layout
            .leaders
            .iter()
            .map(|leader| cluster.broker_address(*leader).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        leaders.insert(topic.clone(), addresses);
    }
    Ok(leaders)
}

type ConsumerThread = JoinHandle<Result<ConsumerTally, ClientError>>;

/// A subscription's readiness (one slot per consumer) and its partition count.
type SubscriptionReadiness = (Readiness, i32);

/// Starts every consumer of every subscription; returns their threads and, per subscription,
/// its readiness and partition count.
fn spawn_consumers(
    workload: &Workload,
    leaders: &BTreeMap<String, Vec<String>>,
    shared: &Shared,
    group_prefix: &str,
) -> Result<(Vec<ConsumerThread>, Vec<SubscriptionReadiness>), RunError> {
    let mut threads = Vec::new();
    let mut readiness_groups = Vec::new();
    // No consumers at all: nothing to subscribe (and nothing to wait for).
    let subscriptions = if workload.consumers_per_subscription == 0 {
        0
    } else {
        workload.subscriptions
    };
    for (topic_index, topic) in workload.topics.iter().enumerate() {
        for subscription in 0..subscriptions {
            let slots = usize::try_from(workload.consumers_per_subscription)
                .expect("consumer counts fit in usize");
            let readiness: Readiness = Arc::new(Mutex::new(vec![None; slots]));
            readiness_groups.push((Arc::clone(&readiness), workload.partitions));
            let group = format!("{group_prefix}-t{topic_index}-s{subscription}");
            for consumer in 0..workload.consumers_per_subscription {
                let config = ConsumerConfig {
                    bootstrap: workload.bootstrap.clone(),
                    topic: topic.clone(),
                    leaders: leaders[topic].clone(),
                    membership: membership(workload, consumer, &group),
                    start_from: workload.start_from,
                    max_wait_ms: FETCH_MAX_WAIT_MS,
                    fetch_max_bytes: FETCH_MAX_BYTES,
                    partition_max_bytes: workload.fetch_partition_max_bytes,
                    fetch_ahead: workload.fetch_ahead,
                    window: Arc::clone(&shared.window),
                };
                let (clock, counters, drain, readiness) = (
                    shared.clock,
                    Arc::clone(&shared.counters),
                    Arc::clone(&shared.drains[topic]),
                    Arc::clone(&readiness),
                );
                let index = usize::try_from(consumer).expect("consumer counts fit in usize");
                let priority = workload.consumer_priority;
                let thread = thread::Builder::new()
                    .name(format!("consumer-{topic_index}-{subscription}-{consumer}"))
                    .spawn(move || {
                        if priority == ConsumerPriority::Idle {
                            crate::client::background::become_background()
                                .map_err(ClientError::Io)?;
                        }
                        run_consumer(&config, &clock, &counters, &drain, (&readiness, index))
                    })
                    .map_err(ClientError::Io)?;
                threads.push(thread);
            }
        }
    }
    Ok((threads, readiness_groups))
}

/// How consumer number `consumer` of a subscription takes part: its share of the partitions
/// (assign mode, round robin) or membership of the subscription's group.
fn membership(workload: &Workload, consumer: u32, group: &str) -> Membership {
    match workload.consumer_mode {
        ConsumerMode::Assign => Membership::Assign(
            (0..workload.partitions)
                .filter(|partition| {
                    partition.unsigned_abs() % workload.consumers_per_subscription == consumer
                })
                .collect(),
        ),
        ConsumerMode::Group => Membership::Group(group.to_string()),
    }
}

/// Produces for the warm-up plus the measured duration, sampling the timeline, and joins the
/// producers.
fn produce(
    workload: &Workload,
    leaders: &BTreeMap<String, Vec<String>>,
    shared: &Shared,
    payloads: &Arc<Payloads>,
    environment: &Environment<'_>,
) -> Result<Produced, RunError> {
    let clock = &shared.clock;
    let producing_start = clock.elapsed();
    let measure_start = producing_start + Duration::from_secs_f64(workload.warmup_s);
    let end = measure_start + Duration::from_secs_f64(workload.duration_s);
    shared
        .window
        .set(clock.unix_us(measure_start), clock.unix_us(end));
    let stop = Arc::new(AtomicBool::new(false));
    let move_marks = Arc::new(MoveMarks::default());
    let mover = workload.move_partition.clone().map(|plan| {
        let at = measure_start + Duration::from_secs_f64(plan.after_measure_start_s);
        crate::partition_move::spawn(
            plan,
            workload.bootstrap.clone(),
            workload.topics[0].clone(),
            *clock,
            at,
            Arc::clone(&move_marks),
            workload.broker_pid,
        )
    });
    let producer_threads = spawn_producers(
        workload,
        leaders,
        clock,
        &shared.counters,
        payloads,
        &stop,
        producing_start,
        measure_start,
        end,
        &move_marks,
    )?;
    let timeline = sample_until(
        clock,
        &shared.counters,
        producing_start,
        end,
        "produce",
        environment.progress,
        || producer_threads.iter().all(|thread| thread.is_finished()),
    );
    let mut tally = ProducerTally::default();
    for thread in producer_threads {
        tally.merge(&join(thread, "producer")?);
    }
    // The move thread ends by itself (done, failed or timed out).
    let moved = mover
        .map(|thread| join(thread, "partition mover"))
        .transpose()?;
    Ok(Produced {
        moved,
        tally,
        timeline,
        producing_start,
        measure_start,
        end,
    })
}

/// Waits for the consumers to reach their drain targets, at most `drain_timeout_s`; then tells
/// them to stop. Returns whether the timeout ended the drain.
fn drain(
    workload: &Workload,
    shared: &Shared,
    consumer_threads: &[ConsumerThread],
    produced: &Produced,
    environment: &Environment<'_>,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(workload.drain_timeout_s);
    while consumer_threads.iter().any(|thread| !thread.is_finished()) {
        if Instant::now() > deadline {
            for drain in shared.drains.values() {
                drain.abort.store(true, Ordering::Relaxed);
            }
            return true;
        }
        environment.progress.tick(
            "drain",
            shared.clock.elapsed() - produced.producing_start,
            produced.end - produced.producing_start,
            &shared.counters.totals(),
        );
        thread::sleep(Duration::from_millis(20));
    }
    false
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The produce side of the report. Measured rates are over the measured window, stretched to the
/// last acknowledgement of a message intended inside it.
fn produce_summary(
    workload: &Workload,
    produced: &Produced,
    backlog_messages: u64,
) -> ProduceSummary {
    let tally = &produced.tally;
    let seconds = workload.duration_s.max(
        tally
            .last_measured_ack
            .saturating_sub(produced.measure_start)
            .as_secs_f64(),
    );
    ProduceSummary {
        messages: tally.acked_messages,
        bytes: tally.acked_bytes,
        measured_messages: tally.measured_messages,
        measured_bytes: tally.measured_bytes,
        measured_s: seconds,
        mb_per_s: megabytes(tally.measured_bytes) / seconds,
        msgs_per_s: tally.measured_messages as f64 / seconds,
        latency_us: tally.latencies.summary().into(),
        send_wait_us: tally.send_waits.summary().into(),
        request_round_trip_us: tally.request_round_trips.summary().into(),
        request_write_us: tally.request_writes.summary().into(),
        backlog_messages,
        failed_messages: tally.failed_messages,
        errors: tally.errors.clone(),
    }
}

/// The consume side of the report, rates over the measured duration.
fn consume_summary(workload: &Workload, consumed: &ConsumerTally) -> ConsumeSummary {
    let seconds = workload.duration_s;
    ConsumeSummary {
        messages: consumed.messages,
        bytes: consumed.bytes,
        measured_messages: consumed.measured_messages,
        measured_bytes: consumed.measured_bytes,
        mb_per_s: megabytes(consumed.measured_bytes) / seconds,
        msgs_per_s: consumed.measured_messages as f64 / seconds,
        e2e_latency_us: consumed.e2e_latencies.summary().into(),
    }
}

/// The run's report.
fn report(workload: &Workload, environment: &Environment<'_>, finished: Finished) -> RunReport {
    let Finished {
        started_at,
        backlog_messages,
        produced,
        consumed,
        cpu,
        drain_timed_out,
    } = finished;
    RunReport {
        label: environment.label.clone(),
        started_at,
        produce_mb_per_broker_cpu_s: cpu
            .broker_s
            .filter(|cpu_s| *cpu_s > 0.0)
            .map(|cpu_s| megabytes(produced.tally.acked_bytes) / cpu_s),
        produce: produce_summary(workload, &produced, backlog_messages),
        partition_move: workload
            .move_partition
            .as_ref()
            .zip(produced.moved.as_ref())
            .map(|(plan, outcome)| {
                MoveSummary::new(
                    &workload.topics[0],
                    plan,
                    outcome,
                    &produced.tally.move_phases,
                )
            }),
        consume: consume_summary(workload, &consumed),
        config: workload.clone(),
        machine: environment.machine.clone(),
        broker_cpu_s: cpu.broker_s,
        drain_timed_out,
        loadgen_cpu_s: cpu.loadgen_s,
        produce_latency_curve: produced.tally.latencies.percentile_curve(),
        e2e_latency_curve: consumed.e2e_latencies.percentile_curve(),
        timeline: produced.timeline,
    }
}

/// Waits until every consumer is positioned and, per subscription, all hold the same
/// generation's assignment covering every partition once.
fn wait_until_ready(
    groups: &[SubscriptionReadiness],
    consumers: &mut Vec<ConsumerThread>,
) -> Result<(), RunError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = groups.iter().all(|(readiness, partitions)| {
            let states = readiness.lock().expect("not poisoned");
            let generations: Vec<i32> = states.iter().flatten().map(|(gen, _)| *gen).collect();
            generations.len() == states.len()
                && generations.windows(2).all(|pair| pair[0] == pair[1])
                && states
                    .iter()
                    .flatten()
                    .map(|(_, count)| *count)
                    .sum::<usize>()
                    == usize::try_from(*partitions).unwrap_or(0)
        });
        if ready {
            return Ok(());
        }
        if let Some(index) = consumers.iter().position(|thread| thread.is_finished()) {
            // A consumer that ended this early failed: its error says why.
            join(consumers.swap_remove(index), "consumer")?;
            return Err(RunError::Worker {
                role: "consumer",
                message: "ended before producing started".to_string(),
            });
        }
        if Instant::now() > deadline {
            return Err(RunError::ConsumersNotReady(READY_TIMEOUT));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_producers(
    workload: &Workload,
    leaders: &BTreeMap<String, Vec<String>>,
    clock: &Clock,
    counters: &Arc<Counters>,
    payloads: &Arc<Payloads>,
    stop: &Arc<AtomicBool>,
    start: Duration,
    measure_start: Duration,
    end: Duration,
    move_marks: &Arc<MoveMarks>,
) -> Result<Vec<JoinHandle<Result<ProducerTally, ClientError>>>, RunError> {
    let total_producers = workload.total_producers();
    let schedule = match workload.rate_msgs_per_s {
        Some(rate) => Schedule::open_loop(rate / f64::from(total_producers)),
        None => Schedule::flat_out(),
    };
    let mut threads = Vec::new();
    for (topic_index, topic) in workload.topics.iter().enumerate() {
        for producer in 0..workload.producers {
            let config = ProducerConfig {
                topic: topic.clone(),
                leaders: leaders[topic].clone(),
                acks: workload.acks,
                compression: workload.compression,
                linger: Duration::from_secs_f64(workload.linger_ms / 1000.0),
                batch_bytes: workload.batch_bytes,
                max_in_flight: workload.max_in_flight,
                partitioner: workload.partitioner,
                key_cardinality: workload.key_cardinality,
                schedule,
                start,
                measure_start,
                end,
                producer_index: u32::try_from(topic_index).expect("topic indexes fit in u32")
                    * workload.producers
                    + producer,
                move_marks: Arc::clone(move_marks),
            };
            let (clock, counters, payloads, stop) = (
                *clock,
                Arc::clone(counters),
                Arc::clone(payloads),
                Arc::clone(stop),
            );
            let thread = thread::Builder::new()
                .name(format!("producer-{topic_index}-{producer}"))
                .spawn(move || run_producer(&config, &clock, &counters, &payloads, &stop))
                .map_err(ClientError::Io)?;
            threads.push(thread);
        }
    }
    Ok(threads)
}

/// Fills each topic with `backlog_bytes` before the measured run (catch-up reads), flat out;
/// returns the messages acknowledged.
fn fill_backlog(
    workload: &Workload,
    leaders: &BTreeMap<String, Vec<String>>,
    clock: &Clock,
    payloads: &Arc<Payloads>,
    environment: &Environment<'_>,
) -> Result<u64, RunError> {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = clock.elapsed();
    let target = workload.backlog_bytes * workload.topics.len() as u64;
    let backlog = Workload {
        rate_msgs_per_s: None,
        ..workload.clone()
    };
    let threads = spawn_producers(
        &backlog,
        leaders,
        clock,
        &counters,
        payloads,
        &stop,
        start,
        Duration::MAX,
        Duration::MAX,
        &Arc::new(MoveMarks::default()),
    )?;
    while counters.totals().produced_bytes < target && threads.iter().any(|t| !t.is_finished()) {
        environment.progress.tick(
            "backlog",
            clock.elapsed() - start,
            Duration::ZERO,
            &counters.totals(),
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for thread in threads {
        acked += join(thread, "backlog producer")?.acked_messages;
    }
    Ok(acked)
}

/// Samples the counters once a second into the timeline until `end` or `done()`.
fn sample_until(
    clock: &Clock,
    counters: &Counters,
    start: Duration,
    end: Duration,
    phase: &str,
    progress: &dyn Progress,
    done: impl Fn() -> bool,
) -> Vec<crate::report::TimelinePoint> {
    let mut timeline = Vec::new();
    let mut previous = counters.totals();
    let mut next_sample = start + Duration::from_secs(1);
    loop {
        let now = clock.elapsed();
        if now >= next_sample {
            let totals = counters.totals();
            timeline.push(crate::report::TimelinePoint {
                produce_latency_max_us: counters.take_produce_latency_max_us(),
                ..totals.since(&previous, (next_sample - start).as_secs_f64())
            });
            previous = totals;
            next_sample += Duration::from_secs(1);
        }
        if done() {
            return timeline;
        }
        progress.tick(
            phase,
            now.saturating_sub(start),
            end - start,
            &counters.totals(),
        );
        thread::sleep(Duration::from_millis(10).min(next_sample.saturating_sub(now)));
    }
}

fn join<T>(thread: JoinHandle<Result<T, ClientError>>, role: &'static str) -> Result<T, RunError> {
    match thread.join() {
        Ok(result) => Ok(result?),
        Err(panic) => Err(RunError::Worker {
            role,
            message: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".to_string()),
        }),
    }
}
