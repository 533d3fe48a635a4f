//! A partition deleted, and a topic of the same name opened again, while a move
//! (AlterReplicaLogDirs) of the partition copies it to another data dir. The bulk copy runs before
//! the move takes the shard's open lock; a move that then switched whatever log it found took the
//! new topic's log over: it closed it and replaced its files by a mix of the deleted partition's
//! copy and the new files.
#![forbid(unsafe_code)]

mod common;

use std::rc::Rc;
use std::sync::Arc;

use common::*;
use ringtail_engine::data_dirs::partition_dir;
use ringtail_engine::partition_move::{move_dir, MoveError};
use ringtail_engine::yield_now;
use ringtail_engine::{DataDirs, DiskWatermarks, LogConfig, Shard, ShardId, TopicPartition};

/// Whether every file of `source` is in `staging` with its size (the bulk copy is done).
fn copied_whole(source: &std::path::Path, staging: &std::path::Path) -> bool {
    std::fs::read_dir(source).unwrap().flatten().all(|entry| {
        let len = entry.metadata().unwrap().len();
        std::fs::metadata(staging.join(entry.file_name())).is_ok_and(|meta| meta.len() == len)
    })
}

/// Unbounded.
const MOVE_BYTES_PER_SEC: u64 = 0;

fn data_dirs(root: &std::path::Path) -> Arc<DataDirs> {
    let dirs = vec![root.join("a"), root.join("b")];
    Arc::new(DataDirs::open(dirs, DiskWatermarks::default()).unwrap())
}

fn config() -> LogConfig {
    // One preallocated segment of a megabyte: the bulk copy takes a moment.
    small_config(1 << 20, 512)
}

#[test]
fn a_move_does_not_take_over_a_partition_deleted_and_opened_again_during_its_copy() {
    let root = tempfile::tempdir().unwrap();
    block_on(async {
        let dirs = data_dirs(root.path());
        let shard = Rc::new(Shard::with_data_dirs(ShardId(0), Arc::clone(&dirs)));
        let topic_partition = TopicPartition::new("t", 0);
        let old = shard
            .open_partition(topic_partition.clone(), config())
            .await
            .unwrap();
        for tag in 0..20 {
            old.append(bytes_mut(&tagged_batch(tag, 1, 1000, 0)), 0)
                .await
                .unwrap();
        }
        let source = shard.home_index(&topic_partition).unwrap();
        let dest = 1 - source;
        let moving = {
            let shard = Rc::clone(&shard);
            let topic_partition = topic_partition.clone();
            compio::runtime::spawn(async move {
                shard
                    .move_partition(&topic_partition, dest, MOVE_BYTES_PER_SEC)
                    .await
            })
        };
        // The move starts its bulk copy, on a blocking thread without the open lock; this task
        // does not yield until it is done, so the move has not yet asked for the lock.
        // (A few turns: the spawned move starts on one of them.)
        for _ in 0..10 {
            yield_now().await;
        }
        let source_dir = partition_dir(dirs.dirs()[source].path(), "t", 0.into());
        let staging = move_dir(dirs.dirs()[dest].path(), "t", 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !copied_whole(&source_dir, &staging) {
            assert!(
                std::time::Instant::now() < deadline,
                "the bulk copy never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The delete holds the open lock while the move waits for it; the open that follows
        // takes the lock first (this task goes on without yielding to the move) and makes the
        // topic again.
        shard.delete_partition(&topic_partition).await.unwrap();
        let new = shard
            .open_partition(topic_partition.clone(), config())
            .await
            .unwrap();
        new.append(bytes_mut(&tagged_batch(1000, 1, 1000, 0)), 0)
            .await
            .unwrap();
        let moved = moving.await.unwrap();
        assert!(
            matches!(moved, Err(MoveError::Replaced)),
            "the move of the deleted partition: {moved:?}"
        );

        let current = shard.partition(&topic_partition).unwrap();
        assert!(
            Rc::ptr_eq(&current, &new),
            "the move replaced the new topic's log"
        );
        assert_eq!(current.high_watermark().get(), 1);
        let home = shard.home_index(&topic_partition).unwrap();
        assert!(partition_dir(dirs.dirs()[home].path(), "t", 0.into()).exists());
        for dir in dirs.dirs() {
            assert!(
                !move_dir(dir.path(), "t", 0).exists(),
                "the move's staging dir stayed in {}",
                dir.path().display()
            );
        }
        shard.close().await.unwrap();

        // From disk, as at a restart: the new topic's one record, nothing of the deleted one.
        let reopened_dirs = data_dirs(root.path());
        assert_eq!(reopened_dirs.home_index("t", 0), Some(home));
        let shard = Shard::with_data_dirs(ShardId(0), reopened_dirs);
        let log = shard
            .open_partition(topic_partition.clone(), config())
            .await
            .unwrap();
        assert_eq!(log.high_watermark().get(), 1);
        shard.close().await.unwrap();
    });
}
