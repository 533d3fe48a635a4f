//! A writer process killed with SIGKILL mid-append loses nothing it acknowledged under
//! `every_batch`.
//!
//! The test re-runs its own binary as the writer (selected by an environment variable), reads the
//! acknowledgements it prints, kills it without warning, then recovers the log and checks every
//! acknowledged batch byte for byte.
//!
//! What this does not show: that the acknowledgement waited for `fdatasync`. The kernel's page
//! cache survives a SIGKILL, so the records would be read back even if the writer never synced.
//! Proving the durability point needs a disk that drops unsynced writes (a later issue).
#![forbid(unsafe_code)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use ringtail_engine::{FlushPolicy, LogConfig, PartitionLog};

const CHILD_DIR_ENV: &str = "RINGTAIL_CRASH_WRITER_DIR";
const WRITER_TASKS: u64 = 4;
const ACKS_BEFORE_KILL: usize = 300;

fn config() -> LogConfig {
    LogConfig {
        flush: FlushPolicy::EveryBatch,
        ..small_config(64 << 10, 1024)
    }
}

/// Batch number `tag`: its size varies so segment rolls fall mid-group.
fn batch_for(tag: u64) -> Vec<u8> {
    tagged_batch(
        tag,
        1 + (tag % 7) as usize,
        100 + (tag % 13) as usize * 37,
        tag as i64,
    )
}

/// The writer: appends forever from several tasks and prints each acknowledgement.
fn run_writer(dir: &Path) {
    block_on(async {
        let (log, _) = PartitionLog::open(dir, config()).await.unwrap();
        let tasks: Vec<_> = (0..WRITER_TASKS)
            .map(|task| {
                let log = log.clone();
                compio::runtime::spawn(async move {
                    for round in 0.. {
                        let tag = round * WRITER_TASKS + task;
                        let outcome = log.append(bytes_mut(&batch_for(tag)), 0).await.unwrap();
                        // One write(2) per line: the parent sees whole lines only.
                        print!("{}", format_args!("ack {tag} {}\n", outcome.base_offset));
                        std::io::Write::flush(&mut std::io::stdout()).unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
}

#[test]
fn sigkill_during_every_batch_appends_loses_no_acknowledged_batch() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        run_writer(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_during_every_batch_appends_loses_no_acknowledged_batch",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked: Vec<(u64, i64)> = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines.next().expect("writer ended early").unwrap();
        let mut words = line.split_whitespace();
        if words.next() != Some("ack") {
            continue;
        }
        let tag = words.next().unwrap().parse().unwrap();
        acked.push((tag, words.next().unwrap().parse().unwrap()));
    }
    // SIGKILL: no destructor, no close, no final sync.
    child.kill().unwrap();
    child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut words = rest.split_whitespace();
            acked.push((
                words.next().unwrap().parse().unwrap(),
                words.next().unwrap().parse().unwrap(),
            ));
        }
    }

    block_on(async {
        let (log, report) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert!(!report.clean_shutdown, "the writer was killed, not closed");
        assert!(
            log.segment_count() > 1,
            "the run should cross segment rolls"
        );
        for (tag, base_offset) in &acked {
            let expected = as_stored(&batch_for(*tag), *base_offset, 0);
            let got = log
                .read_bytes(*base_offset, expected.len() as u64, true)
                .await
                .unwrap();
            assert_eq!(
                got.get(..expected.len()),
                Some(&expected[..]),
                "acknowledged batch {tag} at offset {base_offset}"
            );
        }
        // Offsets stay contiguous after recovery: the whole log parses, batch after batch.
        let all = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let mut next = Offset::ZERO;
        for (header, _) in split_batches(&all) {
            assert_eq!(header.base_offset, next);
            next = header.next_offset();
        }
        assert_eq!(next, log.high_watermark());
    });
}
