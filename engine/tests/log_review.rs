//! Log lifecycle cases found in review: retention across a shard's partitions.
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::{Shard, ShardId, TopicPartition};

#[test]
fn a_partition_whose_retention_fails_does_not_stop_retention_of_the_others() {
    // One partition's segment cannot be deleted (its index path is a non-empty directory, as a
    // file the broker may not remove would be): the shard's pass must still delete the expired
    // segments of the partitions after it, or one bad partition (or a failing data dir) keeps
    // every later partition of the shard growing without bound.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let shard = Shard::new(ShardId(0), dir.path()).unwrap();
        let mut config = small_config(1 << 20, 512);
        config.retention_bytes = Some(0);
        let mut logs = Vec::new();
        for topic in ["a", "b"] {
            let log = shard
                .open_partition(TopicPartition::new(topic, 0), config.clone())
                .await
                .unwrap();
            for tag in 0..3 {
                log.append(bytes_mut(&tagged_batch(tag, 2, 100, 1_000)), 0)
                    .await
                    .unwrap();
                assert!(log.roll_now().await.unwrap());
            }
            assert_eq!(log.segment_count(), 4, "three sealed and the active");
            logs.push(log);
        }
        let blocked_index = logs[0].dir().join(format!("{:020}.index", 0));
        std::fs::remove_file(&blocked_index).unwrap();
        std::fs::create_dir(&blocked_index).unwrap();
        std::fs::write(blocked_index.join("keep"), b"x").unwrap();

        assert!(
            shard.enforce_retention().await.is_err(),
            "a's failure is told"
        );
        assert_eq!(
            logs[1].segment_count(),
            1,
            "b's sealed segments went though a's retention failed"
        );
        assert_eq!(logs[1].log_start_offset(), Offset::new(6));
    });
}
