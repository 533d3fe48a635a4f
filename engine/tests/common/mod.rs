//! Helpers shared by the engine's integration tests.
#![forbid(unsafe_code)]
#![allow(dead_code)]

use std::future::Future;

use bytes::BytesMut;
use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::{FlushPolicy, LogConfig};
// Every test file works with offsets; `use common::*` brings the type along.
pub use ringtail_engine::Offset;

/// Runs a future on a fresh single-thread io_uring runtime, as a shard would.
pub fn block_on<F: Future>(future: F) -> F::Output {
    compio::runtime::Runtime::new()
        .expect("io_uring runtime")
        .block_on(future)
}

/// A small-segment config that makes rolls and index entries happen after a few batches.
pub fn small_config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        flush: FlushPolicy::None,
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    }
}

/// A batch whose records say which batch (`tag`) and record they are, `value_bytes` long each.
pub fn tagged_batch(tag: u64, records: usize, value_bytes: usize, timestamp: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|record| {
            let mut value = format!("b{tag}r{record}:").into_bytes();
            value.resize(value_bytes.max(value.len()), b'.');
            value
        })
        .collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .enumerate()
        .map(|(index, value)| RecordSpec {
            key: None,
            value: Some(value),
            timestamp_delta: index as i64,
        })
        .collect();
    batch::encode_batch(timestamp, &specs, ProducerSpec::default())
}

pub fn bytes_mut(bytes: &[u8]) -> BytesMut {
    BytesMut::from(bytes)
}

/// What the log should hold for a batch appended at `base_offset` (offset and epoch written in).
pub fn as_stored(original: &[u8], base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut stored = original.to_vec();
    batch::set_base_offset(&mut stored, Offset::new(base_offset));
    batch::set_partition_leader_epoch(&mut stored, leader_epoch);
    stored
}

/// Splits bytes read from the log into batches, checking each (CRC included).
pub fn split_batches(bytes: &[u8]) -> Vec<(batch::BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = batch::validate(&bytes[position..], usize::MAX, batch::Strictness::Stored)
            .unwrap_or_else(|err| panic!("batch at {position} invalid: {err}"));
        out.push((
            header,
            bytes[position..position + header.total_bytes()].to_vec(),
        ));
        position += header.total_bytes();
    }
    out
}

/// Opens `/dev/null` until the process may open no more files (EMFILE); the descriptors stay
/// taken until the returned files drop. For tests that fail an open on purpose (each in its own
/// test binary: it starves the whole process).
pub fn take_every_descriptor() -> Vec<std::fs::File> {
    let mut hoard = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => hoard.push(file),
            Err(err) => break err,
        }
        assert!(hoard.len() < 1 << 22, "no descriptor limit to reach");
    };
    assert_eq!(exhausted.raw_os_error(), Some(libc::EMFILE), "{exhausted}");
    hoard
}
