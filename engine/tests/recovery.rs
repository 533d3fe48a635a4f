//! Recovery: torn and corrupt tails are cut to exactly the valid prefix; bad indexes are rebuilt.
#![forbid(unsafe_code)]

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;
use proptest::prelude::*;
use ringtail_engine::batch::parse_header;
use ringtail_engine::segment::log_file_name;
use ringtail_engine::{LogConfig, PartitionLog};

const BATCHES: usize = 30;

/// Writes BATCHES batches into one segment and returns their stored bytes and start positions.
fn write_log(dir: &Path, config: &LogConfig) -> Vec<(u64, Vec<u8>)> {
    block_on(async {
        let (log, _) = PartitionLog::open(dir, config.clone()).await.unwrap();
        let mut stored = Vec::new();
        let mut position = 0u64;
        for tag in 0..BATCHES as u64 {
            let original = tagged_batch(
                tag,
                1 + (tag as usize % 5),
                40 + (tag as usize * 13) % 300,
                5_000 + tag as i64,
            );
            let outcome = log.append(bytes_mut(&original), 0).await.unwrap();
            let bytes = as_stored(&original, outcome.base_offset.get(), 0);
            let len = bytes.len() as u64;
            stored.push((position, bytes));
            position += len;
        }
        log.close().await.unwrap();
        stored
    })
}

/// Makes the log look as if its process had died: no clean-shutdown marker.
fn simulate_crash(dir: &Path) {
    std::fs::remove_file(dir.join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME)).unwrap();
}

/// Reopens the log and returns every batch it now holds.
fn reopen_and_read_all(dir: &Path, config: &LogConfig) -> (Vec<Vec<u8>>, i64, u64) {
    block_on(async {
        let (log, report) = PartitionLog::open(dir, config.clone()).await.unwrap();
        let truncated: u64 = report.recovery.iter().map(|(_, r)| r.truncated_bytes).sum();
        let bytes = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let batches = split_batches(&bytes)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        // The log must accept appends right after recovery, at the recovered end.
        let end = log.high_watermark().get();
        let outcome = log
            .append(bytes_mut(&tagged_batch(999, 1, 10, 0)), 0)
            .await
            .unwrap();
        assert_eq!(outcome.base_offset.get(), end);
        log.close().await.unwrap();
        (batches, end, truncated)
    })
}

fn next_offset_after(batches: &[Vec<u8>]) -> i64 {
    batches
        .last()
        .map_or(0, |bytes| parse_header(bytes).unwrap().next_offset().get())
}

fn config() -> LogConfig {
    small_config(1 << 20, 512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn a_cut_at_any_point_keeps_exactly_the_whole_batches_before_it(cut_fraction in 0.0f64..1.0) {
        // A torn write (file cut anywhere) loses only the batch it tore and what followed.
        let dir = tempfile::tempdir().unwrap();
        let stored = write_log(dir.path(), &config());
        let total: u64 = stored.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        let cut = (total as f64 * cut_fraction) as u64;
        let log_path = dir.path().join(log_file_name(ringtail_engine::Offset::ZERO));
        OpenOptions::new().write(true).open(&log_path).unwrap().set_len(cut).unwrap();
        simulate_crash(dir.path());
        let expected: Vec<Vec<u8>> = stored.iter().filter(|(position, bytes)| position + bytes.len() as u64 <= cut).map(|(_, b)| b.clone()).collect();
        let (batches, end, _) = reopen_and_read_all(dir.path(), &config());
        prop_assert_eq!(end, next_offset_after(&expected));
        prop_assert_eq!(batches, expected);
    }

    #[test]
    fn a_corrupt_byte_anywhere_cuts_the_log_at_that_batch(position_fraction in 0.0f64..1.0, flip in 1u8..=255) {
        // Any flipped byte (header field or payload) makes its batch and everything after it go;
        // a flip in base offset or leader epoch (outside the CRC) may be caught or be harmless,
        // but never yields a batch that was not written.
        let dir = tempfile::tempdir().unwrap();
        let stored = write_log(dir.path(), &config());
        let total: u64 = stored.iter().map(|(_, bytes)| bytes.len() as u64).sum();
        let at = ((total - 1) as f64 * position_fraction) as u64;
        let log_path = dir.path().join(log_file_name(ringtail_engine::Offset::ZERO));
        let mut file = OpenOptions::new().read(true).write(true).open(&log_path).unwrap();
        let mut byte = [0u8; 1];
        file.seek(SeekFrom::Start(at)).unwrap();
        std::io::Read::read_exact(&mut file, &mut byte).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&[byte[0] ^ flip]).unwrap();
        drop(file);
        simulate_crash(dir.path());
        let hit = stored.iter().position(|(position, bytes)| at < position + bytes.len() as u64).unwrap();
        let offset_in_batch = (at - stored[hit].0) as usize;
        let (batches, end, truncated) = reopen_and_read_all(dir.path(), &config());
        let before: Vec<Vec<u8>> = stored[..hit].iter().map(|(_, b)| b.clone()).collect();
        if offset_in_batch >= 16 || (8..12).contains(&offset_in_batch) {
            // CRC'd region, magic or length: the batch is rejected.
            prop_assert_eq!(&batches, &before);
            prop_assert_eq!(end, next_offset_after(&before));
            prop_assert!(truncated > 0);
        } else {
            // Base offset or leader epoch: outside the CRC. Every kept batch is one we wrote, the
            // prefix before the hit is intact, and offsets still increase.
            prop_assert!(batches.len() >= before.len());
            prop_assert_eq!(&batches[..before.len()], &before[..]);
        }
    }
}

#[test]
fn missing_or_garbage_indexes_are_rebuilt() {
    // The index files are a cache: lose them or fill them with junk and reads still find offsets.
    let dir = tempfile::tempdir().unwrap();
    let stored = write_log(dir.path(), &config());
    let index_path = dir
        .path()
        .join(log_file_name(ringtail_engine::Offset::ZERO))
        .with_extension("index");
    let time_path = dir
        .path()
        .join(log_file_name(ringtail_engine::Offset::ZERO))
        .with_extension("timeindex");
    assert!(
        std::fs::metadata(&index_path).unwrap().len() > 0,
        "the test needs index entries"
    );
    for damage in [None, Some(vec![0xffu8; 37])] {
        match &damage {
            None => {
                std::fs::remove_file(&index_path).unwrap();
                std::fs::remove_file(&time_path).unwrap();
            }
            Some(junk) => {
                std::fs::write(&index_path, junk).unwrap();
                std::fs::write(&time_path, junk).unwrap();
            }
        }
        block_on(async {
            let (log, report) = PartitionLog::open(dir.path(), config()).await.unwrap();
            if damage.is_some() {
                assert!(report.recovery[0].1.index_rebuilt);
            }
            for (position, bytes) in stored.iter().step_by(7) {
                let base = parse_header(bytes).unwrap().base_offset;
                let got = log
                    .read_bytes(base, bytes.len() as u64, true)
                    .await
                    .unwrap();
                assert_eq!(&got, bytes, "batch at {position}");
            }
            log.close().await.unwrap();
        });
        assert!(
            std::fs::metadata(&index_path).unwrap().len() > 0,
            "index rewritten"
        );
    }
}

#[test]
fn preallocated_zeros_are_not_reported_as_truncation() {
    // A crash leaves the active segment at its preallocated size: zeros, not corruption.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config();
    config.preallocate = true;
    config.segment_bytes = 1 << 20;
    write_log(dir.path(), &config);
    let log_path = dir
        .path()
        .join(log_file_name(ringtail_engine::Offset::ZERO));
    assert!(
        std::fs::metadata(&log_path).unwrap().len() < 1 << 20,
        "a clean close gives the allocated rest back"
    );
    // A crash leaves it allocated whole: zeros after the batches.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    simulate_crash(dir.path());
    let (batches, _, truncated) = reopen_and_read_all(dir.path(), &config);
    assert_eq!(batches.len(), BATCHES);
    assert_eq!(truncated, 0);
}

#[test]
fn after_a_clean_shutdown_only_the_tail_past_the_last_index_entry_is_scanned() {
    // A clean restart stays fast: it checks what follows the last index entry, not the segment.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &config());
    block_on(async {
        let (log, report) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert!(report.clean_shutdown);
        let scanned = report.recovery[0].1.batches_scanned;
        assert!(
            scanned >= 1 && scanned < BATCHES as u64,
            "scanned {scanned} batches"
        );
        log.close().await.unwrap();
    });
    simulate_crash(dir.path());
    block_on(async {
        let (_log, report) = PartitionLog::open(dir.path(), config()).await.unwrap();
        assert!(!report.clean_shutdown);
        assert_eq!(
            report.recovery[0].1.batches_scanned, BATCHES as u64,
            "after a crash every batch is checked"
        );
    });
}

#[test]
fn a_sealed_segment_cut_short_leaves_a_gap_that_reads_step_over() {
    // Recovery may shorten a sealed segment (bit rot, a torn seal); offsets then jump to the next
    // segment's base, and a read that crosses the gap must move on, not spin.
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(4096, 256);
    let bases = block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        for tag in 0..40 {
            log.append(bytes_mut(&tagged_batch(tag, 2, 300, 0)), 0)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        log.segment_base_offsets()
    });
    assert!(bases.len() >= 3);
    let first = dir.path().join(log_file_name(bases[0]));
    let len = std::fs::metadata(&first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    block_on(async {
        let (log, _) = PartitionLog::open(dir.path(), config).await.unwrap();
        let all = split_batches(&log.read_bytes(0, u64::MAX, true).await.unwrap());
        let offsets: Vec<Offset> = all.iter().map(|(header, _)| header.base_offset).collect();
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            offsets.contains(&bases[1]),
            "data after the gap is still read"
        );
        assert_eq!(all.last().unwrap().0.next_offset(), log.high_watermark());
        // A read starting inside the gap returns the next segment's data.
        let first_cut = all
            .iter()
            .position(|(header, _)| header.base_offset >= bases[1])
            .unwrap();
        let gap_offset = all[first_cut - 1].0.next_offset();
        if gap_offset < bases[1] {
            let from_gap = split_batches(&log.read_bytes(gap_offset, 1 << 20, true).await.unwrap());
            assert_eq!(from_gap[0].0.base_offset, bases[1]);
        }
    });
}

#[test]
fn temp_files_left_by_an_interrupted_rewrite_are_removed_at_open() {
    // A crash between a rewrite's temp file and its rename (the aborted-transaction index, a
    // producer snapshot, the start file) leaves `<name>.tmp`; open removes those, as Kafka's
    // load removes its `.cleaned`/`.swap`/`.deleted` leftovers, and leaves foreign files alone.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), &config());
    simulate_crash(dir.path());
    let ours = [
        "00000000000000000000.txnindex.tmp",
        "00000000000000000030.snapshot.tmp",
        "log-start-offset.tmp",
        "cleaner-checkpoint.tmp",
    ];
    let foreign = ["notes.tmp", "00000000000000000000.txnindex.tmp.keep"];
    for name in ours.iter().chain(&foreign) {
        std::fs::write(dir.path().join(name), vec![7u8; 100]).unwrap();
    }
    let (batches, _, _) = reopen_and_read_all(dir.path(), &config());
    assert_eq!(batches.len(), BATCHES);
    for name in ours {
        assert!(!dir.path().join(name).exists(), "{name} stayed");
    }
    for name in foreign {
        assert!(dir.path().join(name).exists(), "{name} was removed");
    }
}
