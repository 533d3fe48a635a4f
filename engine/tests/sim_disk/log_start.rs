//! The log start offset never goes backwards across a power loss once a client could have seen
//! it: neither after retention deleted segments nor after a DeleteRecords, whether or not the
//! segment files' removal reached the disk (an unlink is durable only with its directory's fsync,
//! and a failed unlink leaves the file there). A reopened log also holds no segment wholly below
//! its start.
#![forbid(unsafe_code)]

use std::path::Path;
use std::rc::Rc;

use ringtail_engine::{FlushPolicy, LogConfig, Offset, PartitionLog};

use super::common::{block_on, bytes_mut, small_config};
use super::harness::{encode, new_disk, seed_count, DIR};

/// Seeds per test in the default run: enough that power losses keep every possible prefix of
/// the unsynced unlinks, none of them included.
const SEEDS_DEFAULT: u64 = 64;
const TIMESTAMP_BASE: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    let mut config = small_config(1024, 256);
    config.flush = FlushPolicy::EveryBatch;
    config.retention_bytes = Some(2048);
    config
}

async fn open(config: &LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(Path::new(DIR), config.clone())
        .await
        .unwrap_or_else(|err| panic!("open failed: {err}"))
        .0
}

/// Appends `count` batches of about 200 bytes: several 1 KiB segments.
async fn fill(log: &Rc<PartitionLog>, count: u64) {
    for tag in 0..count {
        let value = format!("v{tag:0>180}");
        let bytes = encode(b"k", value.as_bytes(), TIMESTAMP_BASE + tag as i64);
        log.append(bytes_mut(&bytes), 0).await.expect("append");
    }
}

/// After a power loss the reopened log starts at or after `reported` and keeps no segment wholly
/// below its start.
async fn check_after_power_loss(config: &LogConfig, reported: Offset) {
    let log = open(config).await;
    let start = log.log_start_offset();
    assert!(
        start >= reported,
        "the log start went back from {reported} to {start} across a power loss"
    );
    let bases = log.segment_base_offsets();
    assert!(
        bases.len() < 2 || bases[1] > start,
        "a segment wholly below the start {start} came back: {bases:?}"
    );
    let bytes = log
        .read_bytes(start, u64::MAX / 4, true)
        .await
        .expect("the log reads from its start");
    assert!(!bytes.is_empty(), "the records from the start are there");
}

fn for_seeds(name: &str, body: impl Fn(u64) + std::panic::RefUnwindSafe) {
    let seeds: Vec<u64> = match std::env::var("RINGTAIL_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("RINGTAIL_SIM_SEED is a number")],
        Err(_) => (0..seed_count(SEEDS_DEFAULT)).collect(),
    };
    for seed in seeds {
        if let Err(panic) = std::panic::catch_unwind(|| body(seed)) {
            eprintln!(
                "{name}: seed {seed} failed; replay with \
                 RINGTAIL_SIM_SEED={seed} cargo test -p ringtail-engine --test sim_disk {name}"
            );
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn retention_never_moves_the_start_back_across_a_power_loss() {
    // Kafka checkpoints log start offsets; an unsynced unlink of a deleted segment must not bring
    // its records back (and the start with them) after the start was answered to a client.
    for_seeds("retention_never_moves_the_start_back", |seed| {
        let disk = new_disk(seed);
        let _installed = ringtail_engine::io::disk::install_sim(&disk);
        let config = config();
        block_on(async {
            let log = open(&config).await;
            fill(&log, 30).await;
            let outcome = log
                .enforce_retention(TIMESTAMP_BASE)
                .await
                .expect("retention on a healthy disk");
            assert!(outcome.segments_deleted > 0, "retention deleted segments");
            let reported = log.log_start_offset();
            assert!(reported > Offset::ZERO);
            drop(log);
            disk.power_loss();
            check_after_power_loss(&config, reported).await;
        });
    });
}

#[test]
fn delete_records_never_moves_the_start_back_across_a_power_loss() {
    // The start file is written first, so the start survives; the segments wholly below it whose
    // removal was lost are deleted at open rather than kept as dead weight.
    for_seeds("delete_records_never_moves_the_start_back", |seed| {
        let disk = new_disk(seed);
        let _installed = ringtail_engine::io::disk::install_sim(&disk);
        let mut config = config();
        config.retention_bytes = None;
        block_on(async {
            let log = open(&config).await;
            fill(&log, 30).await;
            let reported = log
                .delete_records_before(Offset::new(25))
                .await
                .expect("DeleteRecords on a healthy disk");
            assert_eq!(reported, Offset::new(25));
            drop(log);
            disk.power_loss();
            check_after_power_loss(&config, reported).await;
        });
    });
}
