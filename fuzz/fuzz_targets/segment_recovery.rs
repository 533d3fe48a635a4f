//! Fuzzes opening a log whose only segment (log, offset index, time index) holds arbitrary bytes,
//! as a crash or a bad disk may leave it. Opening must never panic. After a crash (no clean
//! shutdown marker) recovery scans the whole segment, so what it keeps must be a prefix of the
//! bytes that were there, made of valid batches with increasing offsets; the log then takes an
//! append. After a clean shutdown recovery trusts the sealed part, so there only "no panic" holds.
//!
//! Input: a flags byte (bit 0: clean shutdown marker; bit 1: index files follow), then, with
//! bit 1, the offset index's and the time index's lengths (u16, big endian) and their bytes; the
//! rest is the segment's log file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ringtail_engine::batch::{encode_uniform_batch, validate_all, Strictness};
use ringtail_engine::{LogConfig, Offset, PartitionLog};

struct Files<'a> {
    clean_shutdown: bool,
    indexes: Option<(&'a [u8], &'a [u8])>,
    log: &'a [u8],
}

fn split(data: &[u8]) -> Option<Files<'_>> {
    let (&flags, rest) = data.split_first()?;
    if flags & 2 == 0 {
        let clean_shutdown = flags & 1 != 0;
        return Some(Files {
            clean_shutdown,
            indexes: None,
            log: rest,
        });
    }
    let offset_len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let time_len = usize::from(u16::from_be_bytes(rest.get(2..4)?.try_into().ok()?));
    let rest = &rest[4..];
    let offset_index = rest.get(..offset_len)?;
    let time_index = rest.get(offset_len..offset_len + time_len)?;
    Some(Files {
        clean_shutdown: flags & 1 != 0,
        indexes: Some((offset_index, time_index)),
        log: &rest[offset_len + time_len..],
    })
}

fn write(dir: &Path, files: &Files<'_>) {
    std::fs::write(dir.join("00000000000000000000.log"), files.log).unwrap();
    if let Some((offset_index, time_index)) = files.indexes {
        std::fs::write(dir.join("00000000000000000000.index"), offset_index).unwrap();
        std::fs::write(dir.join("00000000000000000000.timeindex"), time_index).unwrap();
    }
    if files.clean_shutdown {
        std::fs::write(dir.join(".clean_shutdown"), b"").unwrap();
    }
}

async fn check(dir: &Path, files: &Files<'_>) {
    let config = LogConfig {
        preallocate: false,
        ..LogConfig::default()
    };
    let Ok((log, _report)) = PartitionLog::open(dir, config).await else {
        // A refusal is an answer (logged by the broker); only a panic is a finding.
        return;
    };
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    let mut kept = Vec::new();
    while offset < end {
        let read_from = offset;
        let bytes = match log.read_bytes(offset, 1 << 20, true).await {
            Ok(bytes) => bytes,
            Err(err) => {
                assert!(
                    files.clean_shutdown,
                    "a fully recovered log failed a read: {err}"
                );
                return;
            }
        };
        if bytes.is_empty() {
            break;
        }
        let Ok(headers) = validate_all(&bytes, usize::MAX, Strictness::Stored) else {
            assert!(
                files.clean_shutdown,
                "a fully recovered log holds an invalid batch"
            );
            return;
        };
        for header in &headers {
            assert!(
                files.clean_shutdown || header.base_offset >= offset,
                "offsets go back: {:?} after {offset:?}",
                header.base_offset
            );
            offset = header.next_offset();
        }
        kept.extend_from_slice(&bytes);
        if offset <= read_from {
            // Only a trusted log can get here: after a clean shutdown recovery believes the
            // index, and an entry that names the wrong batch makes a read start at a batch
            // that ends at or before the offset asked for. Reading on would ask for the same
            // offset forever (found by this target: a 10 s timeout in CI).
            assert!(
                files.clean_shutdown,
                "a read at {read_from:?} of a fully recovered log did not move past it"
            );
            // The append below must still not panic on such a log.
            break;
        }
    }
    if !files.clean_shutdown {
        assert!(
            files.log.starts_with(&kept),
            "recovery kept bytes that were not there"
        );
        assert!(
            offset >= end || kept.is_empty(),
            "batches end before the high watermark"
        );
    }
    let next = log.high_watermark();
    let appended = log.append(encode_uniform_batch(0, 2, 8), 0).await;
    if !files.clean_shutdown {
        let outcome = appended.expect("a recovered log takes an append");
        assert_eq!(outcome.base_offset, next.max(Offset::ZERO));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(files) = split(data) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &files);
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(check(dir.path(), &files));
});
