//! Large request frames read into the shard's pooled buffers (frame_pool.rs, `--frame-pool-bytes`):
//! a buffer comes back when the frame's last slice is dropped, the next large frame reuses it, and
//! every stored batch is the one its request carried, however often its buffer was reused.
#![forbid(unsafe_code)]

mod common;

use bytes::Bytes;
use common::cold::{connect, create_topic, fetch_request, fetched_records, produce, start_broker};
use common::scrape;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

const FRAMES: usize = 12;
/// Each batch: 3 records of 100,000 bytes, about 300 KB, above the pool's 128 KiB threshold.
const RECORDS_PER_BATCH: usize = 3;
const VALUE_BYTES: usize = 100_000;

/// Batch `index`: its own value bytes (a pattern seeded by the index), so a frame whose buffer
/// still held an earlier frame's bytes could not pass for it.
fn batch(index: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..RECORDS_PER_BATCH)
        .map(|record| {
            (0..VALUE_BYTES)
                .map(|at| (at * 31 + index * 7 + record * 13) as u8)
                .collect()
        })
        .collect();
    let records: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|value| RecordSpec {
            key: None,
            value: Some(value),
            timestamp_delta: 0,
        })
        .collect();
    Bytes::from(encode_batch(
        1_700_000_000_000 + index as i64,
        &records,
        ProducerSpec::default(),
    ))
}

/// Produces the batches one request at a time; with `wait_for_return`, before each next request
/// waits until the previous frame's buffer is back in the pool (by the pool's gauge, not a sleep).
fn produce_all(broker: &common::Broker, wait_for_return: bool) -> Vec<Bytes> {
    let mut client = connect(broker);
    create_topic(&mut client, "large");
    let sent: Vec<Bytes> = (0..FRAMES).map(batch).collect();
    for (index, records) in sent.iter().enumerate() {
        let base_offset = produce(&mut client, "large", records.clone());
        assert_eq!(base_offset, (index * RECORDS_PER_BATCH) as i64);
        if wait_for_return {
            common::cold::wait_for_metric(
                broker,
                "ringtail_frame_pool_bytes",
                1,
                "the frame's buffer back in the pool after its answer",
            );
        }
    }
    sent
}

/// Every stored batch is the one sent, byte for byte past the fields the broker assigns (base
/// offset, partition leader epoch).
fn assert_stored_as_sent(broker: &common::Broker, sent: &[Bytes]) {
    let mut client = connect(broker);
    let response: FetchResponse = client.call(
        ApiKey::Fetch,
        common::cold::FETCH_VERSION,
        &fetch_request("large"),
    );
    let mut stored = fetched_records(&response);
    for (index, records) in sent.iter().enumerate() {
        assert!(stored.len() >= records.len(), "batch {index} missing");
        let batch = stored.split_to(records.len());
        assert_eq!(batch[8..12], records[8..12], "batch {index}'s length");
        assert!(
            batch[16..] == records[16..],
            "batch {index} is not the bytes its request carried"
        );
    }
    assert!(stored.is_empty(), "more stored than sent");
}

#[test]
fn large_frames_reuse_one_warm_buffer_and_keep_their_bytes() {
    let broker = start_broker(&[], None);
    let sent = produce_all(&broker, true);
    assert_stored_as_sent(&broker, &sent);
    // The first frame needed a buffer; each later one took it back from the pool.
    assert_eq!(scrape(&broker, "ringtail_frame_pool_allocated_total"), 1);
    assert_eq!(
        scrape(&broker, "ringtail_frame_pool_reused_total"),
        FRAMES as u64 - 1
    );
}

#[test]
fn frames_in_flight_together_each_keep_their_own_buffer() {
    // Requests pipelined on one connection: several frames are alive at once, so some need a
    // buffer of their own; none may share one with a frame still in use.
    let broker = start_broker(&[], None);
    let mut client = connect(&broker);
    create_topic(&mut client, "large");
    let sent: Vec<Bytes> = (0..FRAMES).map(batch).collect();
    for records in &sent {
        let request = common::cold::produce_request("large", records.clone());
        client.send(ApiKey::Produce, 9, &request).unwrap();
    }
    let mut previous_id = None;
    for index in 0..FRAMES {
        let mut body = client.read_frame().unwrap();
        let header =
            ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9)).unwrap();
        if let Some(previous) = previous_id {
            assert_eq!(header.correlation_id, previous + 1, "answers in order");
        }
        previous_id = Some(header.correlation_id);
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, (index * RECORDS_PER_BATCH) as i64)
        );
    }
    assert_stored_as_sent(&broker, &sent);
    let counted = scrape(&broker, "ringtail_frame_pool_allocated_total")
        + scrape(&broker, "ringtail_frame_pool_reused_total");
    assert_eq!(
        counted, FRAMES as u64,
        "every large frame went through the pool"
    );
}

#[test]
fn without_a_pool_large_frames_are_read_as_before() {
    let broker = start_broker(&["--frame-pool-bytes", "0"], None);
    let sent = produce_all(&broker, false);
    assert_stored_as_sent(&broker, &sent);
    assert_eq!(scrape(&broker, "ringtail_frame_pool_bytes"), 0);
    assert_eq!(scrape(&broker, "ringtail_frame_pool_allocated_total"), 0);
    assert_eq!(scrape(&broker, "ringtail_frame_pool_reused_total"), 0);
}
