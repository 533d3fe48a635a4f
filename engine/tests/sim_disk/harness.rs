//! One seed's run of the log model on the simulated disk: appends, syncs, rolls, compaction and
//! retention with the power cut at a seeded point (some lives first end in a process crash that
//! keeps the page cache), then reopen and check against the model.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::io::sim::{SimDisk, SimStats};
use ringtail_engine::{CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};

use super::common::{block_on, bytes_mut, small_config, split_batches};

/// The data directory, there before the broker ran; the partition's directory is made by the log.
pub const DATA_DIR: &str = "/sim/data";
pub const DIR: &str = "/sim/data/topic-0";
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;
/// Power cycles per seed.
const LIVES: usize = 3;
/// Operations per life before the harness cuts the power itself (if the countdown did not).
const STEPS_PER_LIFE_MAX: u64 = 40;

/// splitmix64, the harness's own stream (the disk has another from the same seed).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// One appended record as the model keeps it (one record per batch: offset = base offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The append returned Ok (a failed one may still have reached the disk).
    pub acked: bool,
    /// Acknowledged as durable: `every_batch` append, or followed by a successful sync.
    pub durable: bool,
}

/// What a seed's run saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeedReport {
    pub appends_acked: u64,
    pub durable_acked: u64,
    /// Acknowledged appends (durable or not) gone after a power loss.
    pub acked_lost: u64,
    /// Acknowledged *durable* appends gone after a power loss: must stay 0.
    pub durable_lost: u64,
    /// Rolls, compaction passes and retention runs that completed.
    pub rolls: u64,
    pub compactions: u64,
    pub retentions: u64,
    pub disk: SimStats,
    /// Lives that ended in a process crash (no power loss: unsynced writes kept).
    pub process_crashes: u64,
    /// The largest log start offset the log showed: a reopened log never starts before it.
    pub start_floor: i64,
}

pub fn encode(key: &[u8], value: &[u8], timestamp: i64) -> Vec<u8> {
    let spec = RecordSpec {
        key: Some(key),
        value: Some(value),
        timestamp_delta: 0,
    };
    batch::encode_batch(timestamp, &[spec], ProducerSpec::default())
}

/// A disk for `seed` with the data directory already durable. One in eight refuses `O_DIRECT`,
/// so logs with `write.direct` fall back to buffered writes there.
pub fn new_disk(seed: u64) -> SimDisk {
    let disk = SimDisk::new(seed);
    if seed % 8 == 7 {
        disk.refuse_direct_io();
    }
    disk.create_dir_all_durable(Path::new(DATA_DIR));
    disk
}

/// The run's config, drawn from the seed.
fn config_for(rng: &mut Rng, flush: FlushPolicy) -> LogConfig {
    let mut config = small_config(512 + rng.below(4096), rng.below(1024) as u32);
    config.flush = flush;
    config.preallocate = rng.below(2) == 1;
    config.write_inline = rng.below(2) == 1;
    config.write_direct = rng.below(2) == 1;
    config.writeback_bytes = [0, 4096][rng.below(2) as usize];
    if rng.below(3) == 0 {
        config.cleanup_policy = CleanupPolicy::Compact;
        config.min_cleanable_dirty_ratio_ppm = 0;
    } else {
        config.retention_bytes = Some(2048 + rng.below(8192));
    }
    config
}

/// Runs one seed; panics (with the seed in the message of the caller) on a broken invariant.
pub fn run_seed(seed: u64, flush: FlushPolicy) -> SeedReport {
    let disk = new_disk(seed);
    let _installed = ringtail_engine::io::disk::install_sim(&disk);
    let mut rng = Rng::new(seed);
    let config = config_for(&mut rng, flush);
    let mut model: BTreeMap<i64, Appended> = BTreeMap::new();
    let mut report = SeedReport::default();
    block_on(async {
        for life in 0..LIVES {
            // Before about half the lives, another ends in a crash of the process alone, the
            // page cache kept: its queued seals never run, and the power cut that ends the next
            // life must not take what a sync of this one promised.
            let process_crash_first = rng.below(2) == 0;
            for power_cut in [false, true] {
                if !power_cut && !process_crash_first {
                    continue;
                }
                let log = reopen_and_check(&config, &mut model, &mut report).await;
                if power_cut {
                    disk.freeze_after(rng.below(STEPS_PER_LIFE_MAX * 4));
                }
                let tag_base = ((life as u64) << 32) | (u64::from(!power_cut) << 31);
                live(
                    &log,
                    &config,
                    &mut rng,
                    &disk,
                    &mut model,
                    &mut report,
                    tag_base,
                )
                .await;
                // Seals and a spare not yet begun never happen, as in a crash.
                log.close_abandoned().await;
                drop(log);
                if power_cut {
                    disk.power_loss();
                } else {
                    report.process_crashes += 1;
                }
            }
        }
        let log = reopen_and_check(&config, &mut model, &mut report).await;
        // A clean close and reopen must change nothing.
        let before = read_all(&log).await;
        log.close().await.expect("clean close on a healthy disk");
        drop(log);
        let (again, open_report) = PartitionLog::open(Path::new(DIR), config.clone())
            .await
            .expect("reopen after a clean close");
        assert!(
            open_report
                .recovery
                .iter()
                .all(|(_, r)| r.truncated_bytes == 0),
            "a clean close leaves nothing to truncate"
        );
        assert_eq!(
            read_all(&again).await,
            before,
            "a clean reopen reads the same log"
        );
    });
    report.disk = disk.stats();
    report
}

/// One life: seeded operations until the disk freezes or the steps run out.
async fn live(
    log: &Rc<PartitionLog>,
    config: &LogConfig,
    rng: &mut Rng,
    disk: &SimDisk,
    model: &mut BTreeMap<i64, Appended>,
    report: &mut SeedReport,
    tag_base: u64,
) {
    for step in 0..STEPS_PER_LIFE_MAX {
        let ok = match rng.below(20) {
            0 => count(&mut report.rolls, log.roll_now().await.is_ok()),
            1 => log
                .sync()
                .await
                .map(|()| mark_durable(model, report))
                .is_ok(),
            2 if config.compacts() => count(
                &mut report.compactions,
                log.compact(TIMESTAMP_BASE).await.is_ok(),
            ),
            2 => count(
                &mut report.retentions,
                log.enforce_retention(TIMESTAMP_BASE).await.is_ok(),
            ),
            _ => {
                let key = format!("k{}", rng.below(8)).into_bytes();
                let value = format!("v{}", tag_base + step).into_bytes();
                let bytes = encode(&key, &value, TIMESTAMP_BASE + step as i64);
                let offset = log.high_watermark().get();
                let result = log.append(bytes_mut(&bytes), 0).await;
                let acked = result.is_ok();
                let durable = acked && config.flush == FlushPolicy::EveryBatch;
                if let Ok(outcome) = &result {
                    assert_eq!(outcome.base_offset.get(), offset, "appends go at the end");
                    report.appends_acked += 1;
                    report.durable_acked += u64::from(durable);
                }
                let previous = model.insert(
                    offset,
                    Appended {
                        key,
                        value,
                        acked,
                        durable,
                    },
                );
                assert!(
                    previous.is_none_or(|old| !old.durable),
                    "offset {offset} given twice"
                );
                acked
            }
        };
        // Whatever the log shows, a client may have been told (ListOffsets, Fetch).
        report.start_floor = report.start_floor.max(log.log_start_offset().get());
        if !ok {
            assert!(
                disk.is_frozen(),
                "an operation failed on a healthy disk at step {step}"
            );
            return;
        }
    }
}

fn count(counter: &mut u64, ok: bool) -> bool {
    *counter += u64::from(ok);
    ok
}

fn mark_durable(model: &mut BTreeMap<i64, Appended>, report: &mut SeedReport) {
    for appended in model
        .values_mut()
        .filter(|appended| appended.acked && !appended.durable)
    {
        appended.durable = true;
        report.durable_acked += 1;
    }
}

/// All batches of the log from its start, read back and CRC-checked.
async fn read_all(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    let bytes = log
        .read_bytes(log.log_start_offset(), u64::MAX / 4, true)
        .await
        .expect("read the whole log");
    split_batches(&bytes)
        .into_iter()
        .map(|(header, stored)| (header.base_offset.get(), stored))
        .collect()
}

/// Reopens the log (which must never fail after a power loss) and checks it against the model;
/// forgets the model's records the power loss took (they were never durable).
async fn reopen_and_check(
    config: &LogConfig,
    model: &mut BTreeMap<i64, Appended>,
    report: &mut SeedReport,
) -> Rc<PartitionLog> {
    let (log, _) = PartitionLog::open(Path::new(DIR), config.clone())
        .await
        .unwrap_or_else(|err| panic!("reopen after a power loss failed: {err}"));
    let batches = read_all(&log).await;
    let start = log.log_start_offset().get();
    let end = log.high_watermark().get();
    assert!(
        start >= report.start_floor,
        "the log start went back from {} to {start}",
        report.start_floor
    );
    check_shape(&batches, start, end, config.compacts());
    check_against_model(&batches, start, end, model, config.compacts(), report);
    check_indexes(&log, &batches).await;
    model.retain(|offset, _| *offset < end);
    log
}

/// Offsets strictly increase, dense unless compacted, within [start, end).
fn check_shape(batches: &[(i64, Vec<u8>)], start: i64, end: i64, compacted: bool) {
    let mut expected_next = start;
    for (base, stored) in batches {
        let header = batch::parse_header(stored).expect("a read batch parses");
        assert_eq!(header.last_offset_delta, 0, "one record per batch");
        if compacted {
            assert!(
                *base >= expected_next,
                "offsets increase: {base} after {expected_next}"
            );
        } else {
            assert_eq!(
                *base, expected_next,
                "offsets are dense: a gap before {base}"
            );
        }
        expected_next = base + 1;
    }
    assert!(
        expected_next <= end,
        "no batch past the high watermark {end}"
    );
    if !compacted {
        assert_eq!(
            expected_next,
            end.max(start),
            "the log reads up to its high watermark"
        );
    }
}

/// Every record read is the one appended at its offset; every durable record at or after the
/// log start is there (or, compacted, superseded by a later record of its key).
fn check_against_model(
    batches: &[(i64, Vec<u8>)],
    start: i64,
    end: i64,
    model: &BTreeMap<i64, Appended>,
    compacted: bool,
    report: &mut SeedReport,
) {
    let mut latest_in_log: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut present: BTreeMap<i64, ()> = BTreeMap::new();
    for (base, stored) in batches {
        let decoded = ringtail_engine::cleaner::decode_batch(stored).expect("records decode");
        let record = &decoded.records[0];
        let key = decoded
            .key(record)
            .expect("every record has a key")
            .to_vec();
        let appended = model
            .get(base)
            .unwrap_or_else(|| panic!("offset {base} holds a record never appended"));
        assert_eq!(appended.key, key, "offset {base}: key differs");
        // A record ends with its value and a zero header count.
        let mut tail = appended.value.clone();
        tail.push(0);
        assert!(
            decoded.records_area[record.span.clone()].ends_with(&tail),
            "offset {base}: value differs"
        );
        latest_in_log.insert(key, *base);
        present.insert(*base, ());
    }
    let mut latest_durable: HashMap<&[u8], i64> = HashMap::new();
    for (offset, appended) in model.range(start..) {
        if appended.durable {
            latest_durable.insert(&appended.key, *offset);
        }
    }
    for (offset, appended) in model.range(start..) {
        let kept = present.contains_key(offset)
            || (compacted && latest_in_log.get(&appended.key).is_some_and(|o| o > offset));
        let superseded = compacted && latest_durable.get(appended.key.as_slice()) != Some(offset);
        if kept || superseded || !appended.acked {
            continue;
        }
        report.acked_lost += 1;
        if appended.durable {
            report.durable_lost += 1;
            panic!("durable record at offset {offset} lost (log [{start}, {end}))");
        }
    }
}

/// Each batch is found again by a read at its own offset (offset index and boundary walks), and a
/// one-byte read from there returns that batch whole.
async fn check_indexes(log: &PartitionLog, batches: &[(i64, Vec<u8>)]) {
    for (base, stored) in batches {
        let bytes = log
            .read_bytes(*base, 1, true)
            .await
            .unwrap_or_else(|err| panic!("read at {base} failed: {err}"));
        assert_eq!(&bytes, stored, "a read at {base} starts at its batch");
    }
}

/// Runs `seeds` seeds (or only `RINGTAIL_SIM_SEED` when set), printing any failing seed with the
/// line that replays it; returns the reports of the seeds that passed.
pub fn run_seeds(name: &str, seeds: u64, flush: FlushPolicy) -> Vec<SeedReport> {
    let only: Option<u64> = std::env::var("RINGTAIL_SIM_SEED")
        .ok()
        .map(|seed| seed.parse().expect("RINGTAIL_SIM_SEED is a number"));
    let chosen: Vec<u64> = match only {
        Some(seed) => vec![seed],
        None => (0..seeds).collect(),
    };
    let mut reports = Vec::new();
    for seed in chosen {
        match std::panic::catch_unwind(|| run_seed(seed, flush)) {
            Ok(report) => reports.push(report),
            Err(panic) => {
                eprintln!(
                    "{name}: seed {seed} failed; replay with \
                     RINGTAIL_SIM_SEED={seed} cargo test -p ringtail-engine --test sim_disk {name}"
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
    reports
}

/// How many seeds a test runs: `RINGTAIL_SIM_SEEDS`, else `default`.
pub fn seed_count(default: u64) -> u64 {
    std::env::var("RINGTAIL_SIM_SEEDS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(default)
}
