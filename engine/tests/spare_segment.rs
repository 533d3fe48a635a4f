//! `preallocate`: each segment allocated whole before it takes writes, the next one prepared in the
//! background as the spare and renamed into place by the roll (engine/src/log/spare.rs).
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use ringtail_engine::segment::log_file_name;
use ringtail_engine::{LogConfig, PartitionLog};

const SEGMENT_BYTES: u64 = 1 << 20;
const SPARE: &str = "spare-segment.prepared";

fn preallocating() -> LogConfig {
    LogConfig {
        preallocate: true,
        // However full the test machine's disk, these few MiB are allocated ahead.
        preallocate_max_used_percent: 100,
        max_message_bytes: 8 << 20,
        ..small_config(SEGMENT_BYTES, 4096)
    }
}

/// A directory on the disk the build lives on: preallocation is declined on tmpfs, which `/tmp`
/// may be.
fn disk_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

async fn open_log(dir: &Path) -> std::rc::Rc<PartitionLog> {
    PartitionLog::open(dir, preallocating()).await.unwrap().0
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Waits for the spare's background preparation (a create and an `fallocate`). Not a timing
/// claim: the bound only keeps a preparation that never ends from hanging the test.
async fn spare_prepared(log: &PartitionLog) {
    for _ in 0..1000 {
        if log.spare_ready() {
            return;
        }
        compio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the spare segment was never prepared");
}

/// A batch of `records` records of 1000-byte values (about `records` KB), stamped now: a reopened
/// log dates its active segment by its first batch, and one from 1970 would roll at once.
fn batch_of(tag: u64, records: usize) -> bytes::BytesMut {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    bytes_mut(&tagged_batch(tag, records, 1000, now_ms))
}

#[test]
fn segments_are_allocated_whole_before_their_writes_the_next_one_as_a_spare() {
    let dir = disk_dir();
    block_on(async {
        let log = open_log(dir.path()).await;
        let first = dir.path().join(log_file_name(Offset::ZERO));
        assert_eq!(
            file_bytes(&first),
            SEGMENT_BYTES,
            "a new log's segment is allocated whole when created, before any write"
        );
        log.append(batch_of(0, 100), 0).await.unwrap();
        assert!(
            !log.spare_ready() && !dir.path().join(SPARE).exists(),
            "no spare for a segment under half full"
        );
        // Past half the segment: the writer starts the spare's preparation.
        log.append(batch_of(1, 500), 0).await.unwrap();
        spare_prepared(&log).await;
        assert_eq!(file_bytes(&dir.path().join(SPARE)), SEGMENT_BYTES);
        assert_eq!(log.segment_count(), 1);

        // The next batch does not fit: the roll takes the spare.
        let third = log.append(batch_of(2, 500), 0).await.unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.stats().spare_segments_used, 1);
        assert!(!dir.path().join(SPARE).exists(), "renamed into place");
        let second = dir.path().join(log_file_name(third.base_offset));
        assert_eq!(
            file_bytes(&second),
            SEGMENT_BYTES,
            "the new segment was allocated before its first write"
        );
        // Sealed in the background (flush=none: engine/src/log/seal.rs), then cut to its batches.
        for _ in 0..1000 {
            if log.stats().background_seals == 1 {
                break;
            }
            compio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            file_bytes(&first) < SEGMENT_BYTES,
            "the sealed segment is cut to its batches"
        );

        // A batch larger than a segment still gets room.
        let large = log.append(batch_of(3, 1500), 0).await.unwrap();
        let large_path = dir.path().join(log_file_name(large.base_offset));
        assert!(file_bytes(&large_path) >= 1500 * 1000);

        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let records: Vec<i32> = split_batches(&read)
            .iter()
            .map(|(header, _)| header.last_offset_delta + 1)
            .collect();
        assert_eq!(records, vec![100, 500, 500, 1500]);

        // A clean close reserves no disk for a next segment.
        if !log.spare_ready() {
            log.append(batch_of(4, 1), 0).await.unwrap();
        }
        log.close().await.unwrap();
        assert!(
            !dir.path().join(SPARE).exists(),
            "a clean close removes the spare"
        );
        let reopened = open_log(dir.path()).await;
        assert_eq!(reopened.high_watermark(), log.high_watermark());
    });
}

#[test]
fn a_spare_a_crash_left_is_removed_at_open_and_the_log_is_intact() {
    let dir = disk_dir();
    block_on(async {
        let log = open_log(dir.path()).await;
        log.append(batch_of(0, 600), 0).await.unwrap();
        spare_prepared(&log).await;
        let end = log.high_watermark();
        // No close: as a crash leaves it, with the spare on disk.
        drop(log);
        assert!(dir.path().join(SPARE).exists());
        let reopened = open_log(dir.path()).await;
        assert!(!dir.path().join(SPARE).exists(), "the stray spare went");
        assert_eq!(reopened.high_watermark(), end);
        // The log goes on and prepares a spare again.
        reopened.append(batch_of(1, 10), 0).await.unwrap();
        spare_prepared(&reopened).await;
        let next = reopened.append(batch_of(2, 600), 0).await.unwrap();
        assert_eq!(reopened.segment_count(), 2);
        assert_eq!(reopened.stats().spare_segments_used, 1);
        assert_eq!(next.base_offset.get(), end.get() + 10);
    });
}

#[test]
fn an_allocated_empty_active_segment_left_by_a_crash_is_not_corruption() {
    // What a crash right after a roll leaves (the spare renamed into place, or the new segment
    // allocated whole): a segment of zeros, which recovery takes for preallocated space.
    let dir = disk_dir();
    block_on(async {
        let log = open_log(dir.path()).await;
        log.append(batch_of(0, 600), 0).await.unwrap();
        log.roll_now().await.unwrap();
        let end = log.high_watermark();
        drop(log);
        let active = dir.path().join(log_file_name(end));
        assert_eq!(file_bytes(&active), SEGMENT_BYTES);
        let (reopened, report) = PartitionLog::open(dir.path(), preallocating())
            .await
            .unwrap();
        assert!(
            report
                .recovery
                .iter()
                .all(|(_, recovery)| recovery.truncated_bytes == 0),
            "zeros are not a torn tail: {:?}",
            report.recovery
        );
        assert_eq!(reopened.high_watermark(), end);
        assert_eq!(
            split_batches(&reopened.read_bytes(0, u64::MAX, true).await.unwrap()).len(),
            1
        );
    });
}

#[test]
fn a_spare_that_cannot_be_prepared_leaves_rolls_as_they_were() {
    // A directory in the spare's place: its creation fails (as a full disk's `fallocate` would),
    // the log says so once per segment and rolls by creating its segments itself.
    let dir = disk_dir();
    std::fs::create_dir(dir.path().join(SPARE)).unwrap();
    block_on(async {
        let log = open_log(dir.path()).await;
        for tag in 0..4 {
            log.append(batch_of(tag, 600), 0).await.unwrap();
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.segment_count(), 4);
        assert_eq!(log.stats().spare_segments_used, 0);
        assert!(!log.spare_ready());
        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_eq!(split_batches(&read).len(), 4);
        log.close().await.unwrap();
    });
}

#[test]
fn a_clean_close_gives_the_allocated_rest_back_and_the_next_open_allocates_again() {
    let dir = disk_dir();
    block_on(async {
        let log = open_log(dir.path()).await;
        log.append(batch_of(0, 100), 0).await.unwrap();
        let active = dir.path().join(log_file_name(Offset::ZERO));
        assert_eq!(file_bytes(&active), SEGMENT_BYTES);
        log.close().await.unwrap();
        let written = file_bytes(&active);
        assert!(
            written < SEGMENT_BYTES && written > 100 * 1000,
            "cut to its batches at close: {written} bytes"
        );
        let reopened = open_log(dir.path()).await;
        assert_eq!(file_bytes(&active), SEGMENT_BYTES, "allocated again");
        assert_eq!(reopened.high_watermark(), log.high_watermark());
        reopened.append(batch_of(1, 10), 0).await.unwrap();
        let read = reopened.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_eq!(split_batches(&read).len(), 2);
        assert_eq!(reopened.stats().preallocations_declined, 0);
    });
}

/// tmpfs, where `/dev/shm` is mounted on every Linux this runs on (and CI's).
fn memory_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let (_, in_memory) = ringtail_engine::disk_space::file_system_space(shm)
        .expect("/dev/shm must exist: this test needs a tmpfs directory");
    assert!(in_memory, "/dev/shm is not tmpfs here");
    tempfile::tempdir_in(shm).unwrap()
}

#[test]
fn a_file_system_in_memory_declines_preallocation_and_the_log_works_as_without() {
    // On tmpfs an allocation ahead takes memory and saves no block allocation: no segment and
    // no spare is allocated there, and the writes never fallocate either.
    let dir = memory_dir();
    block_on(async {
        let log = open_log(dir.path()).await;
        let first = dir.path().join(log_file_name(Offset::ZERO));
        assert_eq!(file_bytes(&first), 0, "not allocated ahead");
        assert_eq!(log.stats().preallocations_declined, 1);
        for tag in 0..3 {
            log.append(batch_of(tag, 600), 0).await.unwrap();
            compio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(log.segment_count(), 3);
        assert!(!dir.path().join(SPARE).exists());
        assert_eq!(log.stats().spare_segments_used, 0);
        let stats = log.stats();
        // At least the three segments' creations; the spares asked for past half full add to
        // it as their background checks finish.
        assert!(
            stats.preallocations_declined >= 3,
            "declined {} times",
            stats.preallocations_declined
        );
        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_eq!(split_batches(&read).len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn preallocation_stops_at_its_share_of_the_file_system_and_a_refused_fallocate_only_declines() {
    use ringtail_engine::io::sim::{FaultKind, SimDisk};
    use ringtail_engine::DiskSpace;
    let disk = SimDisk::new(7);
    let _installed = ringtail_engine::io::disk::install_sim(&disk);
    let gib = 1u64 << 30;
    let space = |used_gib: u64| DiskSpace {
        total_bytes: 100 * gib,
        free_bytes: (100 - used_gib) * gib,
        used_bytes: used_gib * gib,
    };
    let config = LogConfig {
        preallocate_max_used_percent: 50,
        ..preallocating()
    };
    let active_bytes = |dir: &str| {
        disk.open(&Path::new(dir).join(log_file_name(Offset::ZERO)), false)
            .unwrap()
            .len()
            .unwrap()
    };
    block_on(async {
        // Half full already: one more MiB would pass the share.
        disk.set_space(space(50));
        disk.create_dir_all_durable(Path::new("/sim/half"));
        let (log, _) = PartitionLog::open(Path::new("/sim/half"), config.clone())
            .await
            .unwrap();
        assert_eq!(log.stats().preallocations_declined, 1);
        assert_eq!(active_bytes("/sim/half"), 0, "not allocated ahead");
        // Its writes do not allocate either, and it rolls as without preallocation.
        log.append(batch_of(0, 600), 0).await.unwrap();
        log.append(batch_of(1, 600), 0).await.unwrap();
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.stats().spare_segments_used, 0);
        assert!(log.stats().preallocations_declined >= 2);

        // Room to spare: allocated whole.
        disk.set_space(space(10));
        disk.create_dir_all_durable(Path::new("/sim/roomy"));
        let (log, _) = PartitionLog::open(Path::new("/sim/roomy"), config.clone())
            .await
            .unwrap();
        assert_eq!(log.stats().preallocations_declined, 0);
        assert_eq!(active_bytes("/sim/roomy"), SEGMENT_BYTES);

        // The file system refuses the fallocate (ENOSPC): the segment is made all the same,
        // unallocated, and takes writes.
        disk.create_dir_all_durable(Path::new("/sim/refused"));
        disk.inject_fault(FaultKind::NoSpace, 0, 1);
        let (log, _) = PartitionLog::open(Path::new("/sim/refused"), config.clone())
            .await
            .unwrap();
        assert_eq!(log.stats().preallocations_declined, 1);
        assert_eq!(active_bytes("/sim/refused"), 0);
        log.append(batch_of(2, 10), 0).await.unwrap();
        assert_eq!(
            split_batches(&log.read_bytes(0, u64::MAX, true).await.unwrap()).len(),
            1
        );
    });
}

#[test]
fn a_ready_spare_is_given_back_once_its_file_system_is_past_the_share() {
    // A spare is checked against the share only when made: an idle partition kept its segment's
    // worth of disk reserved while other data filled the disk. The shard's maintenance gives it
    // back once the data dir's space reading is past the share; the next roll asks again.
    let dir = disk_dir();
    block_on(async {
        let shard = ringtail_engine::Shard::new(ringtail_engine::ShardId(0), dir.path()).unwrap();
        let partition = ringtail_engine::TopicPartition::new("idle", 0);
        let log = shard
            .open_partition(partition, preallocating())
            .await
            .unwrap();
        log.append(batch_of(0, 600), 0).await.unwrap();
        spare_prepared(&log).await;
        assert_eq!(
            shard.give_back_spares_past_share().await,
            0,
            "within its share (100 %) the spare stays"
        );
        assert!(log.spare_ready());
        // The share shrinks below what the file system already uses (any real one uses some).
        log.set_config(LogConfig {
            preallocate_max_used_percent: 0,
            ..preallocating()
        });
        assert_eq!(shard.give_back_spares_past_share().await, 1);
        assert!(!log.spare_ready());
        let spare = log.dir().join(SPARE);
        assert!(!spare.exists(), "the spare's file is gone");
        // The roll goes on without it, its new segment declined by the share.
        log.append(batch_of(1, 600), 0).await.unwrap();
        assert_eq!(log.stats().spare_segments_used, 0);
        let read = log.read_bytes(0, u64::MAX, true).await.unwrap();
        assert_eq!(split_batches(&read).len(), 2);
        shard.close().await.unwrap();
    });
}
