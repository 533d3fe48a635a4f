//! Injected disk faults on the simulated disk: EIO on fsync makes the log read-only (decision
//! 0010), ENOSPC is refused and recovered by reopening (decision 0011), short writes are
//! finished, EIO on a write fails the log; acknowledged data survives each, power loss included.
#![forbid(unsafe_code)]

use std::path::Path;
use std::rc::Rc;

use ringtail_engine::io::sim::{FaultKind, SimDisk};
use ringtail_engine::{AppendError, FlushPolicy, LogConfig, PartitionLog};

use super::common::{block_on, bytes_mut, small_config, split_batches};
use super::harness::{encode, new_disk, seed_count, Rng, DIR};

/// Fault seeds per kind in the default run.
const FAULT_SEEDS_DEFAULT: u64 = 100;

fn config(rng: &mut Rng) -> LogConfig {
    let mut config = small_config(512 + rng.below(2048), rng.below(512) as u32);
    config.flush = FlushPolicy::EveryBatch;
    config.preallocate = rng.below(2) == 1;
    config.write_inline = rng.below(2) == 1;
    // Direct writes under every fault too (and, on one seed in eight, a disk refusing them).
    config.write_direct = rng.below(2) == 1;
    config
}

async fn open(config: &LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(Path::new(DIR), config.clone())
        .await
        .unwrap_or_else(|err| panic!("open failed: {err}"))
        .0
}

async fn append(log: &Rc<PartitionLog>, tag: u64) -> Result<i64, AppendError> {
    let bytes = encode(b"k", format!("v{tag}").as_bytes(), 1_700_000_000_000);
    log.append(bytes_mut(&bytes), 0)
        .await
        .map(|outcome| outcome.base_offset.get())
}

/// The offsets the log holds, all batches CRC-checked.
async fn offsets(log: &PartitionLog) -> Vec<i64> {
    let bytes = log
        .read_bytes(log.log_start_offset(), u64::MAX / 4, true)
        .await
        .expect("read the whole log");
    split_batches(&bytes)
        .into_iter()
        .map(|(header, _)| header.base_offset.get())
        .collect()
}

/// Loses power and reopens: every acknowledged offset must be there, densely from 0.
async fn survives_power_loss(disk: &SimDisk, config: &LogConfig, acked: &[i64]) {
    disk.power_loss();
    let log = open(config).await;
    let held = offsets(&log).await;
    assert_eq!(
        held,
        (0..held.len() as i64).collect::<Vec<_>>(),
        "dense from 0"
    );
    for offset in acked {
        assert!(held.contains(offset), "acknowledged offset {offset} lost");
    }
}

/// Runs `body` for each fault seed, naming the failing one.
fn for_seeds(name: &str, body: impl Fn(u64) + std::panic::RefUnwindSafe) {
    let seeds: Vec<u64> = match std::env::var("RINGTAIL_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("RINGTAIL_SIM_SEED is a number")],
        Err(_) => (0..seed_count(FAULT_SEEDS_DEFAULT)).collect(),
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
fn fsync_eio_makes_the_log_read_only_and_loses_nothing_acknowledged() {
    // Decision 0010: a failed fsync is never retried as if the data were safe.
    for_seeds("fsync_eio_makes_the_log_read_only", |seed| {
        let disk = new_disk(seed);
        let _installed = ringtail_engine::io::disk::install_sim(&disk);
        let mut rng = Rng::new(seed);
        let config = config(&mut rng);
        block_on(async {
            let log = open(&config).await;
            disk.inject_fault(FaultKind::SyncEio, rng.below(20), 1);
            let mut acked = Vec::new();
            let mut tag = 0;
            let failed_at = loop {
                tag += 1;
                assert!(tag < 100, "the fault fired");
                match append(&log, tag).await {
                    Ok(offset) => acked.push(offset),
                    Err(_) => break tag,
                }
            };
            assert!(log.is_failed(), "a failed fsync fails the log");
            assert!(
                !log.failed_for_space(),
                "EIO is not recoverable by reopening"
            );
            // The disk works again, yet the log must refuse: the lost pages are not retried.
            let refused = append(&log, failed_at + 1).await;
            assert!(
                matches!(refused, Err(AppendError::LogFailed { .. })),
                "read-only after a failed fsync: {refused:?}"
            );
            assert!(log.sync().await.is_err(), "a failed log never fsyncs again");
            drop(log);
            survives_power_loss(&disk, &config, &acked).await;
        });
    });
}

/// Opens the log, retrying (at most `attempts` failures) while opening finds no space.
async fn reopen_when_space(config: &LogConfig, attempts: u64) -> Rc<PartitionLog> {
    for _ in 0..attempts {
        match PartitionLog::open(Path::new(DIR), config.clone()).await {
            Ok((log, _)) => return log,
            Err(err) => assert!(err.to_string().contains("No space"), "only ENOSPC: {err}"),
        }
    }
    open(config).await
}

#[test]
fn enospc_is_refused_then_recovered_by_reopening() {
    // Decision 0011: a write refused for space fails the log for space; reopened once space is
    // back, it takes appends again, and what was acknowledged stays.
    for_seeds("enospc_is_refused_then_recovered", |seed| {
        let disk = new_disk(seed);
        let _installed = ringtail_engine::io::disk::install_sim(&disk);
        let mut rng = Rng::new(seed);
        let config = config(&mut rng);
        block_on(async {
            let mut log = open(&config).await;
            let hits = 1 + rng.below(3);
            disk.inject_fault(FaultKind::NoSpace, rng.below(20), hits);
            let mut acked = Vec::new();
            let mut refusals = 0u64;
            // With `preallocate`, an ENOSPC may meet the spare segment's background allocation
            // instead: no append is refused for it, the next roll allocates as without a spare.
            let mut spares_refused = 0u64;
            for tag in 0..60u64 {
                match append(&log, tag).await {
                    Ok(offset) => acked.push(offset),
                    Err(err) => {
                        refusals += 1;
                        assert!(
                            log.failed_for_space(),
                            "ENOSPC fails the log for space: {err}"
                        );
                        // The shard reopens a log failed for space (recovery as at a restart),
                        // retrying while the disk is still full.
                        spares_refused += log.stats().spare_segments_refused;
                        drop(log);
                        log = reopen_when_space(&config, hits).await;
                    }
                }
            }
            spares_refused += log.stats().spare_segments_refused;
            assert!(
                config.preallocate || spares_refused == 0,
                "no spare without preallocate"
            );
            assert!(refusals + spares_refused >= 1, "the fault fired");
            assert!(
                refusals + spares_refused <= hits,
                "each refusal is an injected fault"
            );
            assert!(
                append(&log, 1_000).await.is_ok(),
                "appends resume with space"
            );
            drop(log);
            survives_power_loss(&disk, &config, &acked).await;
            assert_eq!(
                disk.stats().faults_injected,
                hits,
                "every injected ENOSPC was met"
            );
        });
    });
}

#[test]
fn short_writes_are_finished_and_write_eio_fails_the_log() {
    // Short writes must be completed, never leave a torn batch acknowledged; an EIO on a write
    // fails the log (its page cache state is unknown) without a panic.
    for_seeds(
        "short_writes_are_finished_and_write_eio_fails_the_log",
        |seed| {
            let disk = new_disk(seed);
            let _installed = ringtail_engine::io::disk::install_sim(&disk);
            let mut rng = Rng::new(seed);
            let config = config(&mut rng);
            block_on(async {
                let log = open(&config).await;
                disk.inject_fault(FaultKind::ShortWrite, rng.below(5), 10 + rng.below(20));
                let mut acked = Vec::new();
                for tag in 0..30u64 {
                    acked.push(append(&log, tag).await.expect("a short write is finished"));
                }
                assert_eq!(offsets(&log).await, acked);
                disk.inject_fault(FaultKind::WriteEio, rng.below(5), 1);
                let mut failed = false;
                for tag in 30..40u64 {
                    match append(&log, tag).await {
                        Ok(offset) => acked.push(offset),
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
                assert!(failed && log.is_failed(), "a write EIO fails the log");
                drop(log);
                survives_power_loss(&disk, &config, &acked).await;
                assert!(disk.stats().faults_injected >= 2);
            });
        },
    );
}
