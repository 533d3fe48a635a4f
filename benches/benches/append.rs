//! Append throughput of `PartitionLog` beside plain `std::fs::File::write_all` appends.
//!
//! Every criterion group is one case (flush policy x batch size x appends in flight) and holds
//! the engine and its baseline, run back to back in the same process:
//! - `flush = none`: the baseline is `write_all` of each batch, nothing else.
//! - `flush = every_batch`: the baseline is `write_all` + `sync_data` per batch; in the
//!   8-in-flight case, `sync_data` per 8 batches (what a perfect group commit would do).
//!
//! Each timed iteration appends a fixed volume (64 MiB under `none`, 16 MiB under `every_batch`)
//! to a fresh log / file in a fresh directory on a disk-backed filesystem. Opening the log
//! (including its 1 GiB `fallocate`), creating the file, cloning the batch buffers and deleting
//! everything afterwards are outside the timed region (`iter_custom`). Segments are 1 GiB, so no
//! iteration rolls.
//!
//! Knobs (environment): `RINGTAIL_BENCH_DIR` moves the scratch directories (default: cargo's
//! target tmp dir; tmpfs is refused); `RINGTAIL_BENCH_PIN_CPU=<n>` pins the benchmark thread and
//! its io_uring workers to CPU `n` (default: unpinned).
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::runtime::Runtime;
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use ringtail_benches::{
    batches_for, bench_runtime, clone_batches, record_count, scratch_dir, uniform_batch_within,
};
use ringtail_engine::{FlushPolicy, LogConfig, LogStats, PartitionLog};
use tempfile::TempDir;

/// Bytes appended per timed iteration without fsync: large enough that per-iteration noise
/// (timer, first-touch of the page cache) is small against the copy itself.
const BYTES_PER_ITER_NONE: usize = 64 << 20;
/// Bytes appended per timed iteration with an fsync per batch: fsync dominates, so less volume
/// keeps the run short while still covering ~1000 fsyncs for 16 KiB batches.
const BYTES_PER_ITER_EVERY_BATCH: usize = 16 << 20;
/// Concurrent appends in the group-commit cases.
const IN_FLIGHT: usize = 8;
/// Segment size: 1 GiB, above any iteration's volume, so no iteration rolls a segment.
const SEGMENT_BYTES: u64 = 1 << 30;

/// One benchmark case: a criterion group with an engine and a baseline function.
struct Case {
    flush: FlushPolicy,
    batch_target_bytes: usize,
    batch_label: &'static str,
    in_flight: usize,
}

impl Case {
    fn group_name(&self) -> String {
        let mut name = format!("append_{}_{}", self.flush, self.batch_label);
        if self.in_flight > 1 {
            name.push_str(&format!("_{}_in_flight", self.in_flight));
        }
        name
    }

    fn bytes_per_iter(&self) -> usize {
        match self.flush {
            FlushPolicy::EveryBatch => BYTES_PER_ITER_EVERY_BATCH,
            _ => BYTES_PER_ITER_NONE,
        }
    }

    /// Batches the baseline writes between two `sync_data` calls; `None`: never syncs. Under
    /// `every_batch` with several appends in flight, the engine's ideal is one fsync per group.
    fn baseline_sync_every(&self) -> Option<usize> {
        match self.flush {
            FlushPolicy::EveryBatch => Some(self.in_flight),
            _ => None,
        }
    }

    fn engine_name(&self) -> String {
        if self.in_flight > 1 {
            format!("engine_{}_in_flight", self.in_flight)
        } else {
            "engine".to_string()
        }
    }

    fn baseline_name(&self) -> String {
        match self.baseline_sync_every() {
            None => "baseline_write_all".to_string(),
            Some(1) => "baseline_write_all_sync_data".to_string(),
            Some(every) => format!("baseline_write_all_sync_data_per_{every}"),
        }
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for flush in [FlushPolicy::None, FlushPolicy::EveryBatch] {
        for (batch_target_bytes, batch_label) in [(16 << 10, "16KiB"), (1 << 20, "1MiB")] {
            cases.push(Case {
                flush,
                batch_target_bytes,
                batch_label,
                in_flight: 1,
            });
        }
        // Group commit matters most for small batches: 1 MiB writes already amortise per-write
        // costs, and 8 of them in flight would only lengthen the run.
        cases.push(Case {
            flush,
            batch_target_bytes: 16 << 10,
            batch_label: "16KiB",
            in_flight: IN_FLIGHT,
        });
    }
    cases
}

/// The engine's config: the defaults (preallocated segments), except one large segment so a run
/// never rolls. `RINGTAIL_BENCH_PREALLOCATE=false` measures without `fallocate`.
fn engine_config(flush: FlushPolicy) -> LogConfig {
    let preallocate =
        std::env::var("RINGTAIL_BENCH_PREALLOCATE").map_or(true, |value| value != "false");
    LogConfig {
        flush,
        segment_bytes: SEGMENT_BYTES,
        preallocate,
        ..LogConfig::default()
    }
}

/// Runs every append case; both functions of a case see the same template batch and count.
fn bench_append(criterion: &mut Criterion) {
    let runtime = bench_runtime();
    let scratch = scratch_dir(Path::new(env!("CARGO_TARGET_TMPDIR")));
    for case in cases() {
        let template = uniform_batch_within(case.batch_target_bytes);
        // A whole number of rounds of `in_flight` appends, so every producer task and every
        // baseline sync group gets the same share.
        let batch_count =
            batches_for(case.bytes_per_iter(), template.len()).next_multiple_of(case.in_flight);
        let bytes_per_iter = (batch_count * template.len()) as u64;
        let mut group = criterion.benchmark_group(case.group_name());
        configure(&mut group);
        group.throughput(Throughput::Bytes(bytes_per_iter));
        eprintln!(
            "{}: {batch_count} batches of {} bytes ({} records of {} B values) per iteration, {} bytes",
            case.group_name(),
            template.len(),
            record_count(&template),
            ringtail_benches::VALUE_BYTES,
            bytes_per_iter,
        );
        let last_stats = Cell::new(LogStats::default());
        group.bench_function(case.engine_name(), |bencher| {
            bencher.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (elapsed, stats) = time_engine(
                            &runtime,
                            &scratch,
                            &template,
                            batch_count,
                            case.flush,
                            case.in_flight,
                        );
                        last_stats.set(stats);
                        elapsed
                    })
                    .sum()
            });
        });
        // How well appends were grouped: writes and fsyncs per append of the last iteration
        // (nothing to say when a filter skipped the engine function).
        let stats = last_stats.get();
        if stats.appends > 0 {
            eprintln!(
                "{}: engine stats of one iteration: {} appends, {} writes, {} fsyncs",
                case.group_name(),
                stats.appends,
                stats.writes,
                stats.fsyncs
            );
        }
        group.bench_function(case.baseline_name(), |bencher| {
            bencher.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        time_baseline(&scratch, &template, batch_count, case.baseline_sync_every())
                    })
                    .sum()
            });
        });
        group.finish();
    }
}

/// Few, flat samples: one iteration is tens of ms to ~1 s, and the whole suite has a budget of a
/// few minutes on a 2-core machine. Flat sampling gives every sample the same iteration count
/// (linear sampling would need 55 iterations for 10 samples).
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
}

/// One timed engine iteration: `batch_count` appends of clones of `template` to a fresh log,
/// from one producer (`in_flight == 1`) or from `in_flight` concurrent producer tasks. Returns
/// the timed duration and the log's counters (to report how appends were grouped).
fn time_engine(
    runtime: &Runtime,
    scratch: &TempDir,
    template: &[u8],
    batch_count: usize,
    flush: FlushPolicy,
    in_flight: usize,
) -> (Duration, LogStats) {
    let dir = tempfile::tempdir_in(scratch.path()).expect("log dir");
    let expected_records = batch_count as i64 * i64::from(record_count(template));
    let result = runtime.block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), engine_config(flush))
            .await
            .expect("open log");
        let buffers = clone_batches(template, batch_count);
        let started = Instant::now();
        if in_flight == 1 {
            for buffer in buffers {
                log.append(buffer, 0).await.expect("append");
            }
        } else {
            append_concurrently(&log, buffers, in_flight).await;
        }
        let elapsed = started.elapsed();
        // Untimed check that the timed work really happened.
        assert_eq!(
            log.high_watermark().get(),
            expected_records,
            "every append landed"
        );
        if flush == FlushPolicy::EveryBatch {
            assert_eq!(
                log.durable_offset().get(),
                expected_records,
                "every append is durable"
            );
            log.close().await.expect("close");
        }
        // Under `none`, `close` would fdatasync 64 MiB that the baseline never syncs; the log is
        // dropped instead (the directory, dirty pages and all, is deleted next).
        let stats = log.stats();
        drop(log);
        (elapsed, stats)
    });
    drop(dir);
    result
}

/// `in_flight` producer tasks, each appending its share in order: at any time up to `in_flight`
/// appends wait on the writer, which takes them as one group (one writev, one fdatasync).
async fn append_concurrently(log: &Rc<PartitionLog>, buffers: Vec<BytesMut>, in_flight: usize) {
    let mut shares: Vec<Vec<BytesMut>> = (0..in_flight).map(|_| Vec::new()).collect();
    for (index, buffer) in buffers.into_iter().enumerate() {
        shares[index % in_flight].push(buffer);
    }
    let producers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let log = Rc::clone(log);
            compio::runtime::spawn(async move {
                for buffer in share {
                    log.append(buffer, 0).await.expect("append");
                }
            })
        })
        .collect();
    for producer in producers {
        producer.await.expect("producer task");
    }
}

/// One timed baseline iteration: sequential `write_all` of clones of `template` to a fresh file,
/// with `sync_data` after every `sync_every` batches when given.
fn time_baseline(
    scratch: &TempDir,
    template: &[u8],
    batch_count: usize,
    sync_every: Option<usize>,
) -> Duration {
    let dir = tempfile::tempdir_in(scratch.path()).expect("baseline dir");
    let path = dir.path().join("baseline.log");
    let mut file = File::create(&path).expect("baseline file");
    let buffers = clone_batches(template, batch_count);
    let started = Instant::now();
    for (index, buffer) in buffers.iter().enumerate() {
        file.write_all(buffer).expect("write_all");
        if sync_every.is_some_and(|every| (index + 1) % every == 0) {
            file.sync_data().expect("sync_data");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(
        file.metadata().expect("metadata").len(),
        (batch_count * template.len()) as u64,
        "every write landed"
    );
    drop(file);
    drop(dir);
    elapsed
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
