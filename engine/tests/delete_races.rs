//! A partition deleted while another task opens it (a Fetch or Produce that looked its topic up
//! just before a DeleteTopics). The open must not outlive the delete: a log left in the shard
//! whose directory was removed under it failed the broker's clean shutdown (ENOENT on close), and
//! an open that started after the delete recreated the deleted directory.
#![forbid(unsafe_code)]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use ringtail_engine::data_dirs::partition_dir;
use ringtail_engine::yield_now;
use ringtail_engine::{LogConfig, OpenError, PartitionIndex, Shard, ShardId, TopicPartition};

/// A shard with one partition `t-0` holding a few segments (so that opening it takes several
/// reads), closed again so that the next open recovers it from disk.
async fn shard_with_closed_partition(dir: &std::path::Path) -> (Rc<Shard>, TopicPartition) {
    let topic_partition = TopicPartition::new("t", 0);
    {
        let shard = Shard::new(ShardId(0), dir).unwrap();
        let log = shard
            .open_partition(topic_partition.clone(), small_config(4096, 512))
            .await
            .unwrap();
        for tag in 0..20 {
            log.append(bytes_mut(&tagged_batch(tag, 3, 200, 0)), 0)
                .await
                .unwrap();
        }
        shard.close().await.unwrap();
    }
    let shard = Rc::new(Shard::new(ShardId(0), dir).unwrap());
    (shard, topic_partition)
}

fn partition_path(dir: &std::path::Path) -> std::path::PathBuf {
    partition_dir(dir, "t", PartitionIndex::new(0))
}

#[test]
fn a_delete_waits_for_an_open_in_progress_and_then_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (shard, topic_partition) = shard_with_closed_partition(dir.path()).await;
        assert!(partition_path(dir.path()).exists());
        let opening = {
            let shard = Rc::clone(&shard);
            let topic_partition = topic_partition.clone();
            compio::runtime::spawn(async move {
                shard
                    .open_partition(topic_partition, small_config(4096, 512))
                    .await
            })
        };
        // The open takes the shard's open lock and waits on its first read.
        yield_now().await;
        shard.delete_partition(&topic_partition).await.unwrap();
        let opened = opening.await.unwrap();
        assert!(
            opened.is_ok(),
            "the open started first and finishes: {:?}",
            opened.err()
        );
        assert!(
            shard.partition(&topic_partition).is_none(),
            "the delete closed the log the open inserted"
        );
        assert!(!partition_path(dir.path()).exists());
        // What failed the broker's shutdown: a log in the shard whose files were deleted.
        shard.close().await.unwrap();
    });
}

#[test]
fn an_open_that_waited_behind_a_delete_does_not_bring_the_partition_back() {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let (shard, topic_partition) = shard_with_closed_partition(dir.path()).await;
        shard
            .open_partition(topic_partition.clone(), small_config(4096, 512))
            .await
            .unwrap();
        // The topic's metadata says "deleted" from the moment the delete is published, before
        // the shard deletes the files: what the server's check reads.
        let topic_exists = Rc::new(Cell::new(false));
        let deleting = {
            let shard = Rc::clone(&shard);
            let topic_partition = topic_partition.clone();
            compio::runtime::spawn(async move { shard.delete_partition(&topic_partition).await })
        };
        // The delete holds the open lock while it closes the log.
        yield_now().await;
        let reopened = {
            let topic_exists = Rc::clone(&topic_exists);
            shard
                .open_partition_if(topic_partition.clone(), LogConfig::default(), move || {
                    topic_exists.get()
                })
                .await
        };
        deleting.await.unwrap().unwrap();
        assert!(
            matches!(reopened, Err(OpenError::Deleted { ref topic, partition: 0 }) if topic == "t"),
            "{:?}",
            reopened.err()
        );
        assert!(shard.partition(&topic_partition).is_none());
        assert!(
            !partition_path(dir.path()).exists(),
            "the refused open recreated the deleted directory"
        );
        // A topic created again under the name opens as new, empty.
        let recreated = shard
            .open_partition_if(topic_partition.clone(), LogConfig::default(), || true)
            .await
            .unwrap();
        assert_eq!(recreated.high_watermark().get(), 0);
        shard.close().await.unwrap();
    });
}
