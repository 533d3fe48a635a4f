//! DeleteTopics of a partition whose log failed earlier (a failed fsync, decision 0010; or out of
//! space or descriptors, decision 0011). The delete used to close the log as for a restart, which
//! a failed log refuses: the delete returned an error and left the partition's directory behind.
//! Its own test binary: it exhausts the whole process's descriptors to fail the log for real.
#![forbid(unsafe_code)]

mod common;

use std::sync::Arc;

use common::*;
use ringtail_engine::data_dirs::partition_dir;
use ringtail_engine::{DataDirs, DiskWatermarks, Shard, ShardId, TopicPartition};

#[test]
fn a_failed_log_is_deleted_with_its_directory_and_the_shard_closes_after() {
    let root = tempfile::tempdir().unwrap();
    let dirs =
        Arc::new(DataDirs::open(vec![root.path().join("a")], DiskWatermarks::default()).unwrap());
    block_on(async {
        let shard = Shard::with_data_dirs(ShardId(0), Arc::clone(&dirs));
        let topic_partition = TopicPartition::new("doomed", 0);
        let log = shard
            .open_partition(topic_partition.clone(), small_config(4096, 512))
            .await
            .unwrap();
        for tag in 0..10 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
                .unwrap();
        }
        let dir = partition_dir(dirs.dirs()[0].path(), "doomed", 0.into());
        assert!(dir.is_dir());
        // Fail the log: take every descriptor the process may still open, then append until a
        // segment roll cannot open its files.
        let hoard = take_every_descriptor();
        let mut failed = false;
        for tag in 10..40 {
            if log
                .append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
                .is_err()
            {
                failed = true;
                break;
            }
        }
        drop(hoard);
        assert!(failed && log.is_failed(), "a roll needed a descriptor");
        drop(log);

        shard
            .delete_partition(&topic_partition)
            .await
            .expect("a failed log does not stop its partition's deletion");
        assert!(!dir.exists(), "{} stayed", dir.display());
        assert_eq!(dirs.home_index("doomed", 0), None, "the home is forgotten");
        assert!(shard.partition(&topic_partition).is_none());
        shard.close().await.expect("the shard closes after");
    });
}
