//! DeleteTopics on the simulated disk: deleting a partition makes nothing durable (no fsync of a
//! log whose files are removed next), and a log failed by an fsync error (decision 0010) is
//! deleted like any other.
#![forbid(unsafe_code)]

use std::sync::Arc;

use ringtail_engine::io::sim::{FaultKind, SimDisk};
use ringtail_engine::{
    DataDirs, DiskWatermarks, FlushPolicy, LogConfig, Shard, ShardId, TopicPartition,
};

use super::common::{block_on, bytes_mut, small_config, tagged_batch};

#[test]
fn a_delete_syncs_nothing_and_takes_a_log_failed_by_an_fsync_error() {
    // The placement map lives on the real disk, the logs on the simulated one.
    let root = tempfile::tempdir().unwrap();
    let dirs =
        Arc::new(DataDirs::open(vec![root.path().join("a")], DiskWatermarks::default()).unwrap());
    let disk = SimDisk::new(0);
    disk.create_dir_all_durable(dirs.dirs()[0].path());
    let _installed = ringtail_engine::io::disk::install_sim(&disk);
    let config = LogConfig {
        flush: FlushPolicy::EveryBatch,
        ..small_config(4096, 512)
    };
    block_on(async {
        let shard = Shard::with_data_dirs(ShardId(0), Arc::clone(&dirs));
        for (partition, fail) in [(0, false), (1, true)] {
            let topic_partition = TopicPartition::new("t", partition);
            let log = shard
                .open_partition(topic_partition.clone(), config.clone())
                .await
                .unwrap();
            for tag in 0..5 {
                log.append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                    .await
                    .unwrap();
            }
            if fail {
                disk.inject_fault(FaultKind::SyncEio, 0, 1);
                let refused = log.append(bytes_mut(&tagged_batch(5, 3, 200, 0)), 0).await;
                assert!(refused.is_err() && log.is_failed(), "{refused:?}");
            }
            drop(log);
            let syncs = disk.stats().syncs;
            shard
                .delete_partition(&topic_partition)
                .await
                .unwrap_or_else(|err| panic!("deleting partition {partition}: {err}"));
            assert_eq!(
                disk.stats().syncs,
                syncs,
                "deleting partition {partition} synced its log"
            );
            assert_eq!(dirs.home_index("t", partition), None);
        }
        shard.close().await.expect("the shard closes after");
    });
}
