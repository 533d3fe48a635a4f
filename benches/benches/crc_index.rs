//! CPU-only hot paths of the append and fetch paths: CRC-32C batch validation (reported as
//! bytes/s) and sparse index lookups (reported as time per lookup).
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use ringtail_benches::{uniform_batch_within, XorShift64};
use ringtail_engine::batch::{self, Strictness};
use ringtail_engine::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use ringtail_engine::{Offset, Position};

/// Entries in each benchmarked index: a 1 GiB segment at the default 4 KiB index interval has
/// ~250k offset entries, the largest an index gets.
const INDEX_ENTRIES: u64 = 250_000;
/// Offsets per index entry: a 4 KiB interval of ~1 KiB records.
const OFFSETS_PER_ENTRY: u64 = 4;
/// Bytes per index entry (the default `index.interval.bytes`).
const POSITION_STEP: u64 = 4096;
/// Distinct random probe keys, cycled through; a power of two so the cycle is a mask.
const PROBES: usize = 1 << 16;
/// Base offset of the benchmarked segment (non-zero, like most segments).
const SEGMENT_BASE_OFFSET: i64 = 1_000_000;
/// First timestamp of the time index; entries are 10 ms apart.
const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;
const TIMESTAMP_STEP_MS: i64 = 10;

/// Copies of the 1 MiB batch cycled through by the cold-cache variant: 64 MiB, beyond any
/// last-level cache here, as a stream of produce requests would be.
const COLD_COPIES: usize = 64;

/// A group sized for these short, steady CPU loops: 10 samples of 2 s after a 0.5 s warm-up keep
/// the whole bench under a minute while the spread stays within a few percent.
fn quick_group<'c>(
    criterion: &'c mut Criterion,
    name: &str,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut group = criterion.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group
}

/// CRC-32C validation of a single batch, as `PartitionLog::append` does for every producer batch:
/// on one cache-resident batch (the CRC's own speed) and cycling through 64 MiB of copies (bound
/// by memory bandwidth, like validating a stream of fresh requests).
fn bench_validate(criterion: &mut Criterion) {
    let mut group = quick_group(criterion, "crc32c_validate");
    for (target_bytes, label) in [(1 << 20, "batch_1MiB"), (16 << 10, "batch_16KiB")] {
        let batch = uniform_batch_within(target_bytes);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_function(label, |bencher| {
            bencher.iter(|| {
                batch::validate(black_box(&batch), usize::MAX, Strictness::Producer).expect("valid")
            });
        });
    }
    let copies = vec![uniform_batch_within(1 << 20); COLD_COPIES];
    group.throughput(Throughput::Bytes(copies[0].len() as u64));
    let mut next = 0usize;
    group.bench_function("batch_1MiB_cold_64MiB", |bencher| {
        bencher.iter(|| {
            next = (next + 1) % COLD_COPIES;
            batch::validate(black_box(&copies[next]), usize::MAX, Strictness::Producer)
                .expect("valid")
        });
    });
    group.finish();
}

/// The CRC-32C of a batch's bytes by `crc-fast` (what the engine, broker and loadgen use) and by
/// the `crc32c` crate they used before, side by side in one run (decision 0036).
fn bench_crc_implementations(criterion: &mut Criterion) {
    let mut group = quick_group(criterion, "crc32c_implementations");
    for (bytes, label) in [
        (1 << 20, "1MiB"),
        (16 << 10, "16KiB"),
        (1 << 10, "1KiB"),
        (64, "64B"),
    ] {
        let data: Vec<u8> = (0..bytes as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("crc_fast_{label}"), |bencher| {
            bencher
                .iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, black_box(&data)));
        });
        group.bench_function(format!("crc32c_crate_{label}"), |bencher| {
            bencher.iter(|| crc32c::crc32c(black_box(&data)));
        });
    }
    group.finish();
}

/// A full-size offset index: entries every `OFFSETS_PER_ENTRY` offsets / `POSITION_STEP` bytes.
fn offset_index() -> OffsetIndex {
    let mut index = OffsetIndex::new(Offset::new(SEGMENT_BASE_OFFSET));
    for entry in 1..=INDEX_ENTRIES {
        index.push(OffsetEntry {
            offset: Offset::new(SEGMENT_BASE_OFFSET).plus((entry * OFFSETS_PER_ENTRY) as i64),
            position: Position::new(entry * POSITION_STEP),
        });
    }
    index
}

/// A full-size time index with strictly increasing timestamps.
fn time_index() -> TimeIndex {
    let mut index = TimeIndex::new(Offset::new(SEGMENT_BASE_OFFSET));
    for entry in 1..=INDEX_ENTRIES as i64 {
        index.push_if_newer(TimeEntry {
            timestamp: FIRST_TIMESTAMP_MS + entry * TIMESTAMP_STEP_MS,
            offset: Offset::new(SEGMENT_BASE_OFFSET + entry * OFFSETS_PER_ENTRY as i64),
        });
    }
    index
}

/// Random probes over the whole index (plus a little before and after it), generated up front so
/// the timed loop is a load, a lookup and an increment. Random keys defeat the branch predictor
/// and the cache the way unrelated consumers' fetches do.
fn probes(first: i64, span: u64, seed: u64) -> Vec<i64> {
    let mut rng = XorShift64::new(seed);
    let margin = span / 100;
    (0..PROBES)
        .map(|_| first - margin as i64 + rng.below(span + 2 * margin) as i64)
        .collect()
}

/// Time per single lookup: each criterion iteration is one lookup on the next probe key.
fn bench_index(criterion: &mut Criterion) {
    let mut group = quick_group(criterion, "index_lookup_250k");

    let offsets = offset_index();
    let offset_probes = probes(
        SEGMENT_BASE_OFFSET,
        INDEX_ENTRIES * OFFSETS_PER_ENTRY,
        0x5EED_0FF5,
    );
    let mut next = 0usize;
    group.bench_function("offset_floor_by_offset_random", |bencher| {
        bencher.iter(|| {
            next = (next + 1) & (PROBES - 1);
            offsets.floor_by_offset(black_box(Offset::new(offset_probes[next])))
        });
    });

    let times = time_index();
    let time_probes = probes(
        FIRST_TIMESTAMP_MS,
        INDEX_ENTRIES * TIMESTAMP_STEP_MS as u64,
        0x7111_E5ED,
    );
    let mut next = 0usize;
    group.bench_function("time_last_before_random", |bencher| {
        bencher.iter(|| {
            next = (next + 1) & (PROBES - 1);
            times.last_before(black_box(time_probes[next]))
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_validate,
    bench_crc_implementations,
    bench_index
);
criterion_main!(benches);
