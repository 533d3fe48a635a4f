//! Timestamp lookups (ListOffsets by time and max-timestamp) answer a record's own offset, inside
//! compressed batches too, as Kafka does.
#![forbid(unsafe_code)]

mod common;

use common::*;
use ringtail_engine::batch::{self, Compression, ProducerSpec, RecordSpec};
use ringtail_engine::cleaner;
use ringtail_engine::compression::Framing;
use ringtail_engine::{Offset, PartitionLog};

/// Five records at 1000 + (0, 40, 10, 30, 20): the newest is the second, not the last.
fn unordered_batch(codec: Compression, framing: Framing) -> Vec<u8> {
    let deltas = [0i64, 40, 10, 30, 20];
    let specs: Vec<RecordSpec<'_>> = deltas
        .iter()
        .map(|&timestamp_delta| RecordSpec {
            key: None,
            value: Some(b"value"),
            timestamp_delta,
        })
        .collect();
    let plain = batch::encode_batch(1_000, &specs, ProducerSpec::default());
    if codec == Compression::None {
        plain
    } else {
        cleaner::compress_batch(&plain, codec, framing).unwrap()
    }
}

#[test]
fn lookups_find_the_record_inside_plain_and_compressed_batches() {
    // The batch at offsets 3..8 follows a plain one at 0..3; answers are record offsets.
    for (codec, framing) in [
        (Compression::None, Framing::Standard),
        (Compression::Gzip, Framing::Standard),
        (Compression::Zstd, Framing::Standard),
        (Compression::Snappy, Framing::SnappyXerial),
        (Compression::Lz4, Framing::Standard),
    ] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (log, _) = PartitionLog::open(dir.path(), small_config(1 << 20, 512))
                .await
                .unwrap();
            log.append(bytes_mut(&tagged_batch(0, 3, 10, 500)), 0)
                .await
                .unwrap();
            log.append(bytes_mut(&unordered_batch(codec, framing)), 0)
                .await
                .unwrap();
            assert_eq!(
                log.max_timestamp_offset().await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}"
            );
            assert_eq!(
                log.offset_for_timestamp(1_025).await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}: first record at or after, in offset order"
            );
            assert_eq!(
                log.offset_for_timestamp(1_005).await.unwrap(),
                Some((Offset::new(4), 1_040)),
                "{codec:?}"
            );
            assert_eq!(
                log.offset_for_timestamp(1_000).await.unwrap(),
                Some((Offset::new(3), 1_000))
            );
            assert_eq!(log.offset_for_timestamp(1_041).await.unwrap(), None);
        });
    }
}
