//! The v10 codecs against bytes Kafka itself wrote: each vector below is what Kafka 4.1.1's
//! generated serializer (`OffsetCommitRequestData.write` and friends in kafka-clients) produced
//! for the message the test builds, split and commented by field by hand.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use uuid::Uuid;

use super::*;

/// The topic id of every vector (Kafka prints it as `ASNFZ4mrze_-3LqYdlQyEA`).
const TOPIC_ID: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
const TOPIC_ID_HEX: &str = "0123456789abcdeffedcba9876543210";

fn unhex(parts: &[&str]) -> Bytes {
    let text: String = parts.concat();
    assert_eq!(text.len() % 2, 0, "whole bytes");
    let bytes = (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    Bytes::from(bytes)
}

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn encode<T: Encodable>(message: &T) -> Bytes {
    let mut buf = BytesMut::new();
    message.encode(&mut buf, VERSION).unwrap();
    assert_eq!(message.compute_size(VERSION).unwrap(), buf.len());
    buf.freeze()
}

/// Decodes all of `wire` as `T` (nothing may be left over), then checks encoding gives it back.
fn decode_whole<T: Decodable + Encodable>(wire: &Bytes) -> T {
    let mut rest = wire.clone();
    let decoded = T::decode(&mut rest, VERSION).unwrap();
    assert!(rest.is_empty(), "{} bytes left over", rest.len());
    assert_eq!(encode(&decoded), *wire, "re-encoded");
    decoded
}

/// Every strict prefix of `wire` is an error, not a panic and not a shorter message.
fn every_truncation_is_refused<T: Decodable>(wire: &Bytes) {
    for len in 0..wire.len() {
        let mut cut = wire.slice(..len);
        assert!(T::decode(&mut cut, VERSION).is_err(), "cut at {len}");
    }
}

fn commit_request_wire() -> Bytes {
    unhex(&[
        "0267",     // group_id "g"
        "00000003", // generation_id_or_member_epoch 3
        "026d",     // member_id "m"
        "00",       // group_instance_id null
        "02",       // topics: 1
        TOPIC_ID_HEX,
        "03", // partitions: 2
        "00000000",
        "000000000000002a",
        "00000005",
        "056d657461", // committed_metadata "meta"
        "00",         // partition tags
        "00000001",
        "0000000000000007",
        "ffffffff",
        "00", // committed_metadata null
        "00", // partition tags
        "00", // topic tags
        "00", // request tags
    ])
}

fn commit_request() -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("m"))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_topic_id(TOPIC_ID)
            .with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_committed_leader_epoch(5)
                    .with_committed_metadata(Some(s("meta"))),
                OffsetCommitRequestPartition::default()
                    .with_partition_index(1)
                    .with_committed_offset(7)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(None),
            ])])
}

#[test]
fn commit_request_matches_kafkas_bytes() {
    // Decoding Kafka's bytes gives the message; encoding it gives Kafka's bytes back.
    let wire = commit_request_wire();
    let decoded: OffsetCommitRequestV10 = decode_whole(&wire);
    assert_eq!(decoded.0, commit_request());
    assert_eq!(encode(&OffsetCommitRequestV10(commit_request())), wire);
    every_truncation_is_refused::<OffsetCommitRequestV10>(&wire);
}

#[test]
fn commit_response_matches_kafkas_bytes() {
    // Topic id instead of name; 100 is UNKNOWN_TOPIC_ID.
    let wire = unhex(&[
        "00000000", // throttle_time_ms
        "02",       // topics: 1
        TOPIC_ID_HEX,
        "03", // partitions: 2
        "00000000",
        "0000",
        "00",
        "00000001",
        "0064",
        "00",
        "00", // topic tags
        "00", // response tags
    ]);
    let response =
        OffsetCommitResponse::default().with_topics(vec![OffsetCommitResponseTopic::default()
            .with_topic_id(TOPIC_ID)
            .with_partitions(vec![
                OffsetCommitResponsePartition::default().with_partition_index(0),
                OffsetCommitResponsePartition::default()
                    .with_partition_index(1)
                    .with_error_code(100),
            ])]);
    let decoded: OffsetCommitResponseV10 = decode_whole(&wire);
    assert_eq!(decoded.0, response);
    every_truncation_is_refused::<OffsetCommitResponseV10>(&wire);
}

fn fetch_request_wire() -> Bytes {
    unhex(&[
        "03",       // groups: 2
        "0267",     // group_id "g"
        "026d",     // member_id "m"
        "00000004", // member_epoch
        "02",       // topics: 1
        TOPIC_ID_HEX,
        "03", // partition_indexes: 2
        "00000000",
        "00000001",
        "00",       // topic tags
        "00",       // group tags
        "0268",     // group_id "h"
        "00",       // member_id null
        "ffffffff", // member_epoch -1
        "00",       // topics null: every committed offset
        "00",       // group tags
        "01",       // require_stable
        "00",       // request tags
    ])
}

#[test]
fn fetch_request_matches_kafkas_bytes_including_null_topics() {
    // A group with topics by id and a group asking for all its offsets (null topics).
    let wire = fetch_request_wire();
    let request = OffsetFetchRequest::default()
        .with_require_stable(true)
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(Some(s("m")))
                .with_member_epoch(4)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_topic_id(TOPIC_ID)
                    .with_partition_indexes(vec![0, 1])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("h")))
                .with_member_id(None)
                .with_member_epoch(-1)
                .with_topics(None),
        ]);
    let decoded: OffsetFetchRequestV10 = decode_whole(&wire);
    assert_eq!(decoded.0, request);
    every_truncation_is_refused::<OffsetFetchRequestV10>(&wire);
}

#[test]
fn fetch_response_matches_kafkas_bytes() {
    // A committed offset, an unknown topic id's partition (-1, "", 100), a group error (16).
    let wire = unhex(&[
        "00000000", // throttle_time_ms
        "03",       // groups: 2
        "0267",     // group_id "g"
        "02",       // topics: 1
        TOPIC_ID_HEX,
        "03", // partitions: 2
        "00000000",
        "000000000000002a",
        "00000005",
        "056d657461", // metadata "meta"
        "0000",
        "00",
        "00000001",
        "ffffffffffffffff",
        "ffffffff",
        "01", // metadata ""
        "0064",
        "00",
        "00",   // topic tags
        "0000", // group error_code
        "00",   // group tags
        "0268", // group_id "h"
        "01",   // topics: 0
        "0010", // error_code NOT_COORDINATOR
        "00",
        "00", // response tags
    ]);
    let response = OffsetFetchResponse::default().with_groups(vec![
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(vec![OffsetFetchResponseTopics::default()
                .with_topic_id(TOPIC_ID)
                .with_partitions(vec![
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(5)
                        .with_metadata(Some(s("meta"))),
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(1)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(s("")))
                        .with_error_code(100),
                ])]),
        OffsetFetchResponseGroup::default()
            .with_group_id(GroupId(s("h")))
            .with_error_code(16),
    ]);
    let decoded: OffsetFetchResponseV10 = decode_whole(&wire);
    assert_eq!(decoded.0, response);
    every_truncation_is_refused::<OffsetFetchResponseV10>(&wire);
}

#[test]
fn unknown_tagged_fields_are_carried_through() {
    // A future Kafka may add tagged fields: they decode into the crate's map and encode back.
    let tags = BTreeMap::from([(3, Bytes::from_static(b"later"))]);
    let mut request = commit_request();
    request.topics[0].partitions[1].unknown_tagged_fields = tags.clone();
    request.unknown_tagged_fields = tags;
    let wire = encode(&OffsetCommitRequestV10(request.clone()));
    let decoded: OffsetCommitRequestV10 = decode_whole(&wire);
    assert_eq!(decoded.0, request);
}

#[test]
fn other_versions_and_forged_counts_are_errors() {
    // The codecs speak v10 only; a topic count no frame could hold is refused up front.
    let wire = commit_request_wire();
    assert!(OffsetCommitRequestV10::decode(&mut wire.clone(), 9).is_err());
    assert!(OffsetFetchRequestV10(OffsetFetchRequest::default())
        .encode(&mut BytesMut::new(), 11)
        .is_err());
    let mut forged = BytesMut::from(&fetch_request_wire()[..]);
    forged[0] = 0xff; // groups: a 5-byte varint follows, cut into the group id
    forged[1] = 0xff;
    assert!(OffsetFetchRequestV10::decode(&mut forged.freeze(), VERSION).is_err());
}

#[test]
fn kafka_protocol_still_stops_at_v9() {
    // When this fails, the crate decodes v10 itself: drop this module and its uses (decision
    // 0020 lists them) and let the crate's own types serve v10.
    assert_eq!(OffsetCommitRequest::VERSIONS.max, 9);
    assert_eq!(OffsetFetchRequest::VERSIONS.max, 9);
}
