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

#[test]
fn a_time_lookup_in_a_log_append_time_batch_answers_its_first_record_at_the_append_time() {
    // Under LogAppendTime every record of a batch has the batch's (broker-set) max timestamp, as
    // clients read it. The lookup compared the records' create times instead: asked for 120 it
    // answered the second record (created at 140) and a consumer seeking there skipped the first,
    // whose timestamp (the append time) is past 120 too. Kafka answers the first record.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut config = small_config(1 << 20, 512);
        config.timestamp_type = ringtail_engine::ingest::TimestampType::LogAppendTime;
        let (log, _) = ringtail_engine::PartitionLog::open(dir.path(), config)
            .await
            .unwrap();
        let specs: Vec<ringtail_engine::batch::RecordSpec<'_>> = [0i64, 40, 10]
            .iter()
            .map(|&timestamp_delta| ringtail_engine::batch::RecordSpec {
                key: None,
                value: Some(b"value"),
                timestamp_delta,
            })
            .collect();
        let created_at_100 = ringtail_engine::batch::encode_batch(
            100,
            &specs,
            ringtail_engine::batch::ProducerSpec::default(),
        );
        log.append(bytes_mut(&created_at_100), 0).await.unwrap();
        let (_, append_time) = log
            .max_timestamp_offset()
            .await
            .unwrap()
            .expect("a timed record");
        assert!(append_time > 140, "stamped by the broker: {append_time}");
        assert_eq!(
            log.offset_for_timestamp(120).await.unwrap(),
            Some((Offset::ZERO, append_time))
        );
        assert_eq!(
            log.offset_for_timestamp(append_time).await.unwrap(),
            Some((Offset::ZERO, append_time))
        );
        assert_eq!(
            log.offset_for_timestamp(append_time + 1).await.unwrap(),
            None
        );
    });
}

#[test]
fn an_old_active_segment_still_rolls_by_segment_ms_after_a_restart() {
    // segment.ms counts from when the active segment began; a restart made it begin again (its
    // age was the open time), so a broker restarted more often than segment.ms (7 days by
    // default) never rolled a quiet compacted log's active segment, and its records were never
    // cleaned. As Kafka, the age after a restart counts from the first batch's timestamp.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let hour_ms = 3_600_000;
        let mut config = small_config(1 << 20, 512);
        config.segment_ms = hour_ms as u64;
        let (log, _) = ringtail_engine::PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        let two_hours_ago = ringtail_engine::log::now_ms() - 2 * hour_ms;
        log.append(bytes_mut(&tagged_batch(0, 2, 10, two_hours_ago)), 0)
            .await
            .unwrap();
        log.close().await.unwrap();
        drop(log);
        let (log, _) = ringtail_engine::PartitionLog::open(dir.path(), config)
            .await
            .unwrap();
        assert!(
            log.roll_if_due(ringtail_engine::log::now_ms())
                .await
                .unwrap(),
            "its first batch is two hours old"
        );
        assert_eq!(log.segment_count(), 2);
    });
}

#[test]
fn a_cleaning_refused_for_space_leaves_no_partial_copy_behind() {
    // A pass whose copy met a full disk returned the error and left the `.cleaned` files it had
    // written: on a full disk the space stayed taken by a copy nobody would install (until the
    // next pass truncated and refilled it, or a restart), so appends of every partition of the
    // dir went on failing. The failed pass removes what it wrote.
    use ringtail_engine::io::sim::{FaultKind, SimDisk};
    let disk = SimDisk::new(1);
    let data_dir = std::path::Path::new("/sim-data/t-0");
    disk.create_dir_all_durable(data_dir);
    let _installed = ringtail_engine::io::disk::install_sim(&disk);
    block_on(async {
        let mut config = small_config(1 << 20, 512);
        config.cleanup_policy = ringtail_engine::CleanupPolicy::Compact;
        let (log, _) = ringtail_engine::PartitionLog::open(data_dir, config)
            .await
            .unwrap();
        let value = vec![b'v'; 200];
        for round in 0..3 {
            let specs = [ringtail_engine::batch::RecordSpec {
                key: Some(b"same-key"),
                value: Some(&value),
                timestamp_delta: round,
            }];
            let batch = ringtail_engine::batch::encode_batch(
                1_000,
                &specs,
                ringtail_engine::batch::ProducerSpec::default(),
            );
            log.append(bytes_mut(&batch), 0).await.unwrap();
        }
        assert!(log.roll_now().await.unwrap());
        // Sealed first (in the background under flush=none): the fault is the cleaner's.
        log.sync().await.unwrap();
        // The copy's first write finds the disk full.
        disk.inject_fault(FaultKind::NoSpace, 0, 1);
        assert!(
            log.compact(1_000).await.is_err(),
            "the pass met the full disk"
        );
        for suffix in ["log", "index", "timeindex"] {
            let leftover = data_dir.join(format!("{:020}.{suffix}.cleaned", 0));
            assert!(
                !disk.exists(&leftover),
                "{} left behind",
                leftover.display()
            );
        }
        // The next pass, with space back, cleans.
        let outcome = log.compact(1_000).await.unwrap();
        assert_eq!(outcome.records_removed, 2);
    });
}

#[test]
fn a_retention_roll_refused_for_space_still_deletes_the_expired_sealed_segments() {
    // Rolling an expired active segment writes (its index, the producer snapshot); on a full disk
    // that fails, and the pass returned at once, keeping the expired sealed segments too: the
    // space a full disk needed most was freed a whole retention interval later. They go now.
    use ringtail_engine::io::sim::{FaultKind, SimDisk};
    let disk = SimDisk::new(2);
    let data_dir = std::path::Path::new("/sim-data/t-0");
    disk.create_dir_all_durable(data_dir);
    let _installed = ringtail_engine::io::disk::install_sim(&disk);
    block_on(async {
        let hour_ms = 3_600_000;
        let mut config = small_config(1 << 20, 512);
        config.retention_ms = Some(hour_ms as u64);
        // A roll that seals before it goes on (and so writes its snapshot): under flush=none the
        // seal runs in the background and the roll itself may write nothing to refuse.
        config.flush = ringtail_engine::FlushPolicy::IntervalMs(3_600_000);
        let (log, _) = ringtail_engine::PartitionLog::open(data_dir, config)
            .await
            .unwrap();
        let now = ringtail_engine::log::now_ms();
        for tag in 0..2 {
            let batch = tagged_batch(tag, 2, 100, now - 2 * hour_ms);
            log.append(bytes_mut(&batch), 0).await.unwrap();
            if tag == 0 {
                assert!(log.roll_now().await.unwrap());
                // Sealed now (in the background under flush=none): the faults are the retention's.
                log.sync().await.unwrap();
            }
        }
        assert_eq!(log.segment_count(), 2, "one sealed, the active");
        disk.inject_fault(FaultKind::NoSpace, 0, 1_000);
        assert!(
            log.enforce_retention(now).await.is_err(),
            "the roll met the full disk"
        );
        assert_eq!(
            log.segment_base_offsets(),
            vec![Offset::new(2)],
            "the expired sealed segment went"
        );
        assert_eq!(log.log_start_offset(), Offset::new(2));
    });
}
