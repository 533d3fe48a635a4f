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
use crate::payload::Payloads;
use crate::report::{ConsumeSummary, Machine, ProduceSummary, RunReport};
use crate::schedule::Schedule;
use crate::workload::{ConsumerMode, Workload};

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

/// Fetch sizes: large enough that one fetch moves many batches (Kafka's defaults are 50 MiB per
/// request and 1 MiB per partition; a benchmark wants fewer, larger round trips).
const FETCH_MAX_BYTES: i32 = 64 << 20;
const PARTITION_MAX_BYTES: i32 = 8 << 20;
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
    let mut leaders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for topic in &workload.topics {
        let layout = cluster
            .topic(topic)
            .ok_or_else(|| ClientError::kafka(format!("metadata of {topic}"), 3))?
            .clone();
        let addresses = layout
            .leaders
            .iter()
            .map(|leader| cluster.broker_address(*leader).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        leaders.insert(topic.clone(), addresses);
    }
    let payloads = Arc::new(Payloads::new(workload.message_size));
    let clock = Clock::start();

    let backlog_messages = if workload.backlog_bytes > 0 {
        fill_backlog(workload, &leaders, &clock, &payloads, environment)?
    } else {
        0
    };

    // Consumers first, positioned before anything is produced.
    let counters = Arc::new(Counters::default());
    let drains: BTreeMap<String, Arc<Drain>> = workload
        .topics
        .iter()
        .map(|topic| (topic.clone(), Arc::new(Drain::default())))
        .collect();
    let warmup = Duration::from_secs_f64(workload.warmup_s);
    let duration = Duration::from_secs_f64(workload.duration_s);
    let window = Arc::new(MeasureWindow::default());
    let mut consumer_threads: Vec<JoinHandle<Result<ConsumerTally, ClientError>>> = Vec::new();
    let mut readiness_groups: Vec<(Readiness, i32)> = Vec::new();
    let run_id = std::process::id();
    for (topic_index, topic) in workload.topics.iter().enumerate() {
        // No consumers at all: nothing to subscribe (and nothing to wait for).
        let subscriptions = if workload.consumers_per_subscription == 0 {
            0
        } else {
            workload.subscriptions
        };
        for subscription in 0..subscriptions {
            let readiness: Readiness = Arc::new(Mutex::new(vec![
                None;
                workload.consumers_per_subscription
                    as usize
            ]));
            readiness_groups.push((Arc::clone(&readiness), workload.partitions));
            for consumer in 0..workload.consumers_per_subscription {
                let membership = match workload.consumer_mode {
                    ConsumerMode::Assign => Membership::Assign(
                        (0..workload.partitions)
                            .filter(|partition| {
                                *partition as u32 % workload.consumers_per_subscription == consumer
                            })
                            .collect(),
                    ),
                    ConsumerMode::Group => Membership::Group(format!(
                        "ringtail-loadgen-{run_id}-{started_at}-t{topic_index}-s{subscription}"
                    )),
                };
                let config = ConsumerConfig {
                    bootstrap: workload.bootstrap.clone(),
                    topic: topic.clone(),
                    leaders: leaders[topic].clone(),
                    membership,
                    start_from: workload.start_from,
                    max_wait_ms: FETCH_MAX_WAIT_MS,
                    fetch_max_bytes: FETCH_MAX_BYTES,
                    partition_max_bytes: PARTITION_MAX_BYTES,
                    window: Arc::clone(&window),
                };
                let (counters, drain, readiness) = (
                    Arc::clone(&counters),
                    Arc::clone(&drains[topic]),
                    Arc::clone(&readiness),
                );
                let index = consumer as usize;
                let thread = thread::Builder::new()
                    .name(format!("consumer-{topic_index}-{subscription}-{consumer}"))
                    .spawn(move || {
                        run_consumer(&config, &clock, &counters, &drain, (&readiness, index))
                    })
                    .map_err(ClientError::Io)?;
                consumer_threads.push(thread);
            }
        }
    }
    wait_until_ready(&readiness_groups, &mut consumer_threads)?;

    // Produce.
    let producing_start = clock.elapsed();
    let measure_start = producing_start + warmup;
    let end = measure_start + duration;
    window.set(clock.unix_us(measure_start), clock.unix_us(end));
    let broker_cpu_before = environment.cpu.broker_cpu_s();
    let own_cpu_before = environment.cpu.own_cpu_s();
    let stop = Arc::new(AtomicBool::new(false));
    let producer_threads = spawn_producers(
        workload,
        &leaders,
        &clock,
        &counters,
        &payloads,
        &stop,
        producing_start,
        measure_start,
        end,
    )?;
    let timeline = sample_until(
        &clock,
        &counters,
        producing_start,
        end,
        "produce",
        environment.progress,
        || producer_threads.iter().all(|thread| thread.is_finished()),
    );
    let mut produced = ProducerTally::default();
    for thread in producer_threads {
        produced.merge(&join(thread, "producer")?);
    }

    // Drain: consumers read up to the high watermarks as they are now.
    for topic in &workload.topics {
        cluster.refresh(std::slice::from_ref(topic))?;
        drains[topic].set_targets(cluster.list_offsets(topic, LATEST)?);
    }
    let drain_deadline = Instant::now() + Duration::from_secs_f64(workload.drain_timeout_s);
    let mut drain_timed_out = false;
    while consumer_threads.iter().any(|thread| !thread.is_finished()) {
        if Instant::now() > drain_deadline {
            drain_timed_out = true;
            for drain in drains.values() {
                drain.abort.store(true, Ordering::Relaxed);
            }
            break;
        }
        environment.progress.tick(
            "drain",
            clock.elapsed() - producing_start,
            end - producing_start,
            &counters.totals(),
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut consumed = ConsumerTally::default();
    for thread in consumer_threads {
        consumed.merge(&join(thread, "consumer")?);
    }
    let broker_cpu_s = broker_cpu_before
        .zip(environment.cpu.broker_cpu_s())
        .map(|(before, after)| after - before);
    let loadgen_cpu_s = environment.cpu.own_cpu_s() - own_cpu_before;

    let seconds = workload.duration_s;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let produce_seconds = seconds.max(
        produced
            .last_measured_ack
            .saturating_sub(measure_start)
            .as_secs_f64(),
    );
    let produce = ProduceSummary {
        messages: produced.acked_messages,
        bytes: produced.acked_bytes,
        measured_messages: produced.measured_messages,
        measured_bytes: produced.measured_bytes,
        measured_s: produce_seconds,
        mb_per_s: mb(produced.measured_bytes) / produce_seconds,
        msgs_per_s: produced.measured_messages as f64 / produce_seconds,
        latency_us: produced.latencies.summary().into(),
        backlog_messages,
        failed_messages: produced.failed_messages,
        errors: produced.errors,
    };
    let consume = ConsumeSummary {
        messages: consumed.messages,
        bytes: consumed.bytes,
        measured_messages: consumed.measured_messages,
        measured_bytes: consumed.measured_bytes,
        mb_per_s: mb(consumed.measured_bytes) / seconds,
        msgs_per_s: consumed.measured_messages as f64 / seconds,
        e2e_latency_us: consumed.e2e_latencies.summary().into(),
    };
    Ok(RunReport {
        label: environment.label.clone(),
        started_at,
        produce_mb_per_broker_cpu_s: broker_cpu_s
            .filter(|cpu| *cpu > 0.0)
            .map(|cpu| mb(produced.acked_bytes) / cpu),
        produce,
        consume,
        config: workload.clone(),
        machine: environment.machine.clone(),
        broker_cpu_s,
        drain_timed_out,
        loadgen_cpu_s,
        timeline,
        produce_latency_curve: produced.latencies.percentile_curve(),
        e2e_latency_curve: consumed.e2e_latencies.percentile_curve(),
    })
}

/// Waits until every consumer is positioned and, per subscription, all hold the same
/// generation's assignment covering every partition once.
fn wait_until_ready(
    groups: &[(Readiness, i32)],
    consumers: &mut Vec<JoinHandle<Result<ConsumerTally, ClientError>>>,
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
                    == *partitions as usize
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
                producer_index: topic_index as u32 * workload.producers + producer,
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
            timeline.push(totals.since(&previous, (next_sample - start).as_secs_f64()));
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
