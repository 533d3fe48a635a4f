//! A process out of file descriptors (EMFILE) when a segment rolls: the append that needed the
//! roll fails without a panic, nothing acknowledged is lost, and the log is marked recoverable
//! (the shard reopens it once descriptors are free) instead of failed until a restart. Its own
//! test binary: it exhausts the whole process's descriptors.
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::PartitionLog;

#[test]
fn a_roll_out_of_descriptors_fails_the_append_and_leaves_the_log_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        let mut acknowledged = Vec::new();
        for tag in 0..10 {
            let outcome = log
                .append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
                .unwrap();
            acknowledged.push((tag, outcome.base_offset));
        }
        // Take every descriptor the process may still open.
        let hoard = take_every_descriptor();
        // Appends go on into the active segment until one needs a roll, which cannot open files.
        let mut failure = None;
        for tag in 10..40 {
            match log
                .append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
            {
                Ok(outcome) => acknowledged.push((tag, outcome.base_offset)),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        drop(hoard);
        let failure = failure.expect("a roll needed a descriptor");
        assert!(log.is_failed(), "{failure}");
        assert!(
            log.failed_for_space(),
            "out of descriptors is recoverable by a reopen, not failed until restart: {failure}"
        );
        drop(log);
        // What the shard does on its next check: reopen (recover) from the files.
        let (log, _) = PartitionLog::open(dir.path(), small_config(4096, 512))
            .await
            .unwrap();
        for (tag, base_offset) in &acknowledged {
            let plan = log.read(*base_offset, 1 << 16, true).await.unwrap();
            assert!(
                !plan.slices.is_empty(),
                "acknowledged batch {tag} at {base_offset} is still there"
            );
        }
        let next = log
            .append(bytes_mut(&tagged_batch(99, 3, 200, 0)), 0)
            .await
            .unwrap();
        let last_acknowledged = acknowledged.last().unwrap().1;
        assert!(next.base_offset > last_acknowledged, "appends go on after");
        log.close().await.unwrap();
    });
}
