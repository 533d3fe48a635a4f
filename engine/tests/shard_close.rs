//! `Shard::close` (the broker's shutdown) against the shard's other work on the same partitions:
//! once it returns, no log of the shard is open, and none opens again.
#![forbid(unsafe_code)]

mod common;

use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use common::block_on;
use ringtail_engine::{
    DataDirs, DiskWatermarks, LogConfig, OpenError, Shard, ShardId, TopicPartition,
};

#[test]
fn a_move_under_way_at_close_leaves_the_partition_closed_in_its_home() {
    // A move's switch that ran after the close opened the log at its destination (removing the
    // clean-shutdown marker) and left it open: the next start recovered it in full, and the
    // shard's "closed" held a live log.
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("a"), root.path().join("b")];
    for dir in &dirs {
        std::fs::create_dir_all(dir).unwrap();
    }
    let data_dirs = Arc::new(DataDirs::open(dirs.clone(), DiskWatermarks::default()).unwrap());
    block_on(async {
        let shard = Rc::new(Shard::with_data_dirs(ShardId(0), Arc::clone(&data_dirs)));
        let partition = TopicPartition::new("moving", 0);
        // Not preallocated: the switch copies a preallocated active segment whole.
        let config = LogConfig {
            preallocate: false,
            ..LogConfig::default()
        };
        let log = shard
            .open_partition(partition.clone(), config.clone())
            .await
            .unwrap();
        let batch = ringtail_engine::batch::encode_uniform_batch(0, 100, 1_000);
        log.append(BytesMut::from(&batch[..]), 0).await.unwrap();
        let source = data_dirs.home_index("moving", 0).unwrap();
        let dest = 1 - source;
        // About 100 KB at 400 KB/s: the copy is under way when the close comes.
        let moving = {
            let (shard, partition) = (Rc::clone(&shard), partition.clone());
            compio::runtime::spawn(
                async move { shard.move_partition(&partition, dest, 400_000).await },
            )
        };
        shard.close().await.unwrap();
        let moved = moving.await.unwrap();
        assert!(moved.is_err(), "a move finished after the close: {moved:?}");
        let home = data_dirs.home_index("moving", 0).unwrap();
        let home_dir = dirs[home].join("moving-0");
        assert!(
            home_dir.join(".clean_shutdown").exists(),
            "{} is not closed cleanly",
            home_dir.display()
        );
        // The shard takes no appends any more, through the log it holds or a new one.
        let refused = match shard.open_partition(partition.clone(), config).await {
            Err(OpenError::ShardClosed) => true,
            Ok(log) => log.append(BytesMut::from(&batch[..]), 0).await.is_err(),
            Err(_) => false,
        };
        assert!(refused, "the closed shard took an append");
        let other = TopicPartition::new("other", 0);
        let opened = shard.open_partition(other, LogConfig::default()).await;
        assert!(
            matches!(opened, Err(OpenError::ShardClosed)),
            "a log opened after the close: {:?}",
            opened.map(|_| ())
        );
    });
}
