//! The log model on the simulated disk (docs/decisions/0017-simulated-disk.md): for many seeds,
//! appends, syncs, rolls, compaction and retention with the power cut at a seeded point (writes
//! torn at 512-byte sectors, unsynced directory entries lost), then reopen and check against the
//! model. `RINGTAIL_SIM_SEEDS=N` runs more seeds (scripts/sim-disk.sh), `RINGTAIL_SIM_SEED=S`
//! replays one.
#![forbid(unsafe_code)]

mod common;
#[path = "sim_disk/delete.rs"]
mod delete;
#[path = "sim_disk/faults.rs"]
mod faults;
#[path = "sim_disk/harness.rs"]
mod harness;
#[path = "sim_disk/log_start.rs"]
mod log_start;

use harness::{run_seeds, seed_count, SeedReport};
use ringtail_engine::FlushPolicy;

/// Seeds per policy in the default (CI) run.
const SEEDS_DEFAULT: u64 = 1000;

fn summary(name: &str, reports: &[SeedReport]) -> SeedReport {
    let mut total = SeedReport::default();
    for report in reports {
        total.appends_acked += report.appends_acked;
        total.durable_acked += report.durable_acked;
        total.acked_lost += report.acked_lost;
        total.durable_lost += report.durable_lost;
        total.rolls += report.rolls;
        total.process_crashes += report.process_crashes;
        total.compactions += report.compactions;
        total.retentions += report.retentions;
        total.disk.power_losses += report.disk.power_losses;
        total.disk.mutating_ops += report.disk.mutating_ops;
        total.disk.torn_sectors += report.disk.torn_sectors;
        total.disk.dir_ops_lost += report.disk.dir_ops_lost;
        total.disk.faults_injected += report.disk.faults_injected;
    }
    // The figures docs/RELIABILITY.md quotes; `--nocapture` shows them.
    println!(
        "{name}: {} seeds, {} power losses, {} mutating disk ops, {} torn sectors kept, \
         {} directory ops lost, {} appends acknowledged ({} durable), {} acknowledged lost, \
         {} durable lost; {} rolls, {} compaction passes, {} retention runs, {} process crashes",
        reports.len(),
        total.disk.power_losses,
        total.disk.mutating_ops,
        total.disk.torn_sectors,
        total.disk.dir_ops_lost,
        total.appends_acked,
        total.durable_acked,
        total.acked_lost,
        total.durable_lost,
        total.rolls,
        total.compactions,
        total.retentions,
        total.process_crashes,
    );
    total
}

#[test]
fn every_batch_keeps_every_acknowledged_batch_through_power_loss() {
    // Guards the durability promise: under every_batch an acknowledged append survives any power
    // loss; the recovered log is dense, CRC-valid, index-consistent, and reopens without error.
    let name = "every_batch_keeps_every_acknowledged_batch_through_power_loss";
    let reports = run_seeds(name, seed_count(SEEDS_DEFAULT), FlushPolicy::EveryBatch);
    let total = summary(name, &reports);
    assert_eq!(total.durable_lost, 0);
    if std::env::var("RINGTAIL_SIM_SEED").is_err() {
        assert!(total.disk.power_losses >= 3 * reports.len() as u64);
        assert!(total.durable_acked > 0, "the runs acknowledged something");
        assert!(total.disk.torn_sectors > 0, "some power loss tore a write");
        assert!(
            total.process_crashes > 0,
            "some life ended in a process crash"
        );
    }
}

#[test]
fn none_policy_shows_the_loss_window_and_recovers_a_valid_prefix() {
    // Guards the harness itself: without fsync per batch, acknowledged appends do get lost (so the
    // check above could fail), while recovery still yields a valid prefix of what was appended.
    let name = "none_policy_shows_the_loss_window_and_recovers_a_valid_prefix";
    let reports = run_seeds(name, seed_count(SEEDS_DEFAULT / 4), FlushPolicy::None);
    let total = summary(name, &reports);
    assert_eq!(total.durable_lost, 0, "what a sync made durable stays");
    if std::env::var("RINGTAIL_SIM_SEED").is_err() {
        assert!(
            total.acked_lost > 0,
            "under `none` a power loss must lose acknowledged appends"
        );
    }
}
