//! OffsetCommit v10 and OffsetFetch v10 (Kafka 4.1): topics named by topic id instead of name.
//!
//! kafka-protocol 0.18 stops at v9, so these four messages are coded by hand
//! ([decision 0020](../../../docs/decisions/0020-offsets-v10-hand-written-codecs.md)). They read
//! into and write from the crate's own structs, which already carry `topic_id`: a decoded v10
//! request is a v9 request whose topic names are empty, so the handlers serve both with one path.
//! Delete this module when the crate decodes v10 (`kafka_protocol_still_stops_at_v9` fails then).
//!
//! # Byte map (Kafka 4.1.1's schemas; every struct ends with its tagged fields `T`)
//! ```text
//! OffsetCommitRequest  v10: group_id S, generation_id_or_member_epoch i32, member_id S,
//!                           group_instance_id S?, topics [topic_id uuid,
//!                           partitions [partition_index i32, committed_offset i64,
//!                           committed_leader_epoch i32, committed_metadata S?, T], T], T
//! OffsetCommitResponse v10: throttle_time_ms i32, topics [topic_id uuid,
//!                           partitions [partition_index i32, error_code i16, T], T], T
//! OffsetFetchRequest   v10: groups [group_id S, member_id S?, member_epoch i32,
//!                           topics [topic_id uuid, partition_indexes [i32], T]?, T],
//!                           require_stable bool, T
//! OffsetFetchResponse  v10: throttle_time_ms i32, groups [group_id S, topics [topic_id uuid,
//!                           partitions [partition_index i32, committed_offset i64,
//!                           committed_leader_epoch i32, metadata S?, error_code i16, T], T],
//!                           error_code i16, T], T
//! S: compact string (uvarint length + 1), S?: nullable (0 = null); [..]: compact array
//! (uvarint count + 1), [..]?: nullable; uuid: 16 bytes; T: uvarint count, then tag, size, bytes.
//! ```
#![forbid(unsafe_code)]

use anyhow::{bail, Result};
use bytes::BytesMut;
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
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::compact::*;

/// The one version these codecs speak.
pub const VERSION: i16 = 10;

/// Smallest wire size of each repeated struct (fixed fields, empty strings and arrays, no tags):
/// a count above `remaining / size` is malformed before anything is allocated.
const COMMIT_TOPIC_BYTES_MIN: usize = 16 + 1 + 1;
const COMMIT_PARTITION_BYTES_MIN: usize = 4 + 8 + 4 + 1 + 1;
const COMMIT_RESULT_BYTES_MIN: usize = 4 + 2 + 1;
const FETCH_GROUP_BYTES_MIN: usize = 1 + 1 + 4 + 1 + 1;
const FETCH_TOPIC_BYTES_MIN: usize = 16 + 1 + 1;
const FETCH_RESULT_GROUP_BYTES_MIN: usize = 1 + 1 + 2 + 1;
const FETCH_RESULT_PARTITION_BYTES_MIN: usize = 4 + 8 + 4 + 1 + 2 + 1;

fn check_version(version: i16) -> Result<()> {
    if version != VERSION {
        bail!("the hand-written v{VERSION} codec asked for v{version}");
    }
    Ok(())
}

/// `compute_size` by encoding into a scratch buffer: only tests and size checks call it.
fn encoded_size<T: Encodable>(message: &T, version: i16) -> Result<usize> {
    let mut scratch = BytesMut::new();
    message.encode(&mut scratch, version)?;
    Ok(scratch.len())
}

/// An OffsetCommit v10 request: topics by `topic_id`, their `name`s empty until resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OffsetCommitRequestV10(pub OffsetCommitRequest);

/// An OffsetCommit v10 response: each topic's `topic_id` is written, its `name` is not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OffsetCommitResponseV10(pub OffsetCommitResponse);

/// An OffsetFetch v10 request (the v8+ shape: `groups`), topics by `topic_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OffsetFetchRequestV10(pub OffsetFetchRequest);

/// An OffsetFetch v10 response (`groups`), topics by `topic_id`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OffsetFetchResponseV10(pub OffsetFetchResponse);

impl Decodable for OffsetCommitRequestV10 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        let group_id = GroupId(get_string(buf)?);
        let generation_id_or_member_epoch = get_i32(buf)?;
        let member_id = get_string(buf)?;
        let group_instance_id = get_nullable_string(buf)?;
        let topics = get_array(buf, COMMIT_TOPIC_BYTES_MIN, |buf| {
            let topic_id = get_uuid(buf)?;
            let partitions = get_array(buf, COMMIT_PARTITION_BYTES_MIN, |buf| {
                Ok(OffsetCommitRequestPartition::default()
                    .with_partition_index(get_i32(buf)?)
                    .with_committed_offset(get_i64(buf)?)
                    .with_committed_leader_epoch(get_i32(buf)?)
                    .with_committed_metadata(get_nullable_string(buf)?)
                    .with_unknown_tagged_fields(get_tagged_fields(buf)?))
            })?;
            Ok(OffsetCommitRequestTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?))
        })?;
        Ok(Self(
            OffsetCommitRequest::default()
                .with_group_id(group_id)
                .with_generation_id_or_member_epoch(generation_id_or_member_epoch)
                .with_member_id(member_id)
                .with_group_instance_id(group_instance_id)
                .with_topics(topics)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?),
        ))
    }
}

impl Encodable for OffsetCommitRequestV10 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        let request = &self.0;
        put_string(buf, &request.group_id)?;
        buf.put_i32(request.generation_id_or_member_epoch);
        put_string(buf, &request.member_id)?;
        put_nullable_string(buf, request.group_instance_id.as_deref())?;
        put_array(buf, &request.topics, |buf, topic| {
            put_uuid(buf, topic.topic_id);
            put_array(buf, &topic.partitions, |buf, partition| {
                buf.put_i32(partition.partition_index);
                buf.put_i64(partition.committed_offset);
                buf.put_i32(partition.committed_leader_epoch);
                put_nullable_string(buf, partition.committed_metadata.as_deref())?;
                put_tagged_fields(buf, &partition.unknown_tagged_fields)
            })?;
            put_tagged_fields(buf, &topic.unknown_tagged_fields)
        })?;
        put_tagged_fields(buf, &request.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

impl Decodable for OffsetCommitResponseV10 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        let throttle_time_ms = get_i32(buf)?;
        let topics = get_array(buf, COMMIT_TOPIC_BYTES_MIN, |buf| {
            let topic_id = get_uuid(buf)?;
            let partitions = get_array(buf, COMMIT_RESULT_BYTES_MIN, |buf| {
                Ok(OffsetCommitResponsePartition::default()
                    .with_partition_index(get_i32(buf)?)
                    .with_error_code(get_i16(buf)?)
                    .with_unknown_tagged_fields(get_tagged_fields(buf)?))
            })?;
            Ok(OffsetCommitResponseTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?))
        })?;
        Ok(Self(
            OffsetCommitResponse::default()
                .with_throttle_time_ms(throttle_time_ms)
                .with_topics(topics)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?),
        ))
    }
}

impl Encodable for OffsetCommitResponseV10 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        let response = &self.0;
        buf.put_i32(response.throttle_time_ms);
        put_array(buf, &response.topics, |buf, topic| {
            put_uuid(buf, topic.topic_id);
            put_array(buf, &topic.partitions, |buf, partition| {
                buf.put_i32(partition.partition_index);
                buf.put_i16(partition.error_code);
                put_tagged_fields(buf, &partition.unknown_tagged_fields)
            })?;
            put_tagged_fields(buf, &topic.unknown_tagged_fields)
        })?;
        put_tagged_fields(buf, &response.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

impl Decodable for OffsetFetchRequestV10 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        let groups = get_array(buf, FETCH_GROUP_BYTES_MIN, |buf| {
            let group_id = GroupId(get_string(buf)?);
            let member_id = get_nullable_string(buf)?;
            let member_epoch = get_i32(buf)?;
            let topics = get_nullable_array(buf, FETCH_TOPIC_BYTES_MIN, |buf| {
                Ok(OffsetFetchRequestTopics::default()
                    .with_topic_id(get_uuid(buf)?)
                    .with_partition_indexes(get_array(buf, 4, get_i32)?)
                    .with_unknown_tagged_fields(get_tagged_fields(buf)?))
            })?;
            Ok(OffsetFetchRequestGroup::default()
                .with_group_id(group_id)
                .with_member_id(member_id)
                .with_member_epoch(member_epoch)
                .with_topics(topics)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?))
        })?;
        let require_stable = get_bool(buf)?;
        Ok(Self(
            OffsetFetchRequest::default()
                .with_groups(groups)
                .with_require_stable(require_stable)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?),
        ))
    }
}

impl Encodable for OffsetFetchRequestV10 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        let request = &self.0;
        put_array(buf, &request.groups, |buf, group| {
            put_string(buf, &group.group_id)?;
            put_nullable_string(buf, group.member_id.as_deref())?;
            buf.put_i32(group.member_epoch);
            put_nullable_array(buf, group.topics.as_deref(), |buf, topic| {
                put_uuid(buf, topic.topic_id);
                put_array(buf, &topic.partition_indexes, |buf, partition| {
                    buf.put_i32(*partition);
                    Ok(())
                })?;
                put_tagged_fields(buf, &topic.unknown_tagged_fields)
            })?;
            put_tagged_fields(buf, &group.unknown_tagged_fields)
        })?;
        buf.put_u8(u8::from(request.require_stable));
        put_tagged_fields(buf, &request.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

impl Decodable for OffsetFetchResponseV10 {
    fn decode<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        check_version(version)?;
        let throttle_time_ms = get_i32(buf)?;
        let groups = get_array(buf, FETCH_RESULT_GROUP_BYTES_MIN, |buf| {
            let group_id = GroupId(get_string(buf)?);
            let topics = get_array(buf, FETCH_TOPIC_BYTES_MIN, |buf| {
                let topic_id = get_uuid(buf)?;
                let partitions = get_array(buf, FETCH_RESULT_PARTITION_BYTES_MIN, |buf| {
                    Ok(OffsetFetchResponsePartitions::default()
                        .with_partition_index(get_i32(buf)?)
                        .with_committed_offset(get_i64(buf)?)
                        .with_committed_leader_epoch(get_i32(buf)?)
                        .with_metadata(get_nullable_string(buf)?)
                        .with_error_code(get_i16(buf)?)
                        .with_unknown_tagged_fields(get_tagged_fields(buf)?))
                })?;
                Ok(OffsetFetchResponseTopics::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
                    .with_unknown_tagged_fields(get_tagged_fields(buf)?))
            })?;
            Ok(OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_topics(topics)
                .with_error_code(get_i16(buf)?)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?))
        })?;
        Ok(Self(
            OffsetFetchResponse::default()
                .with_throttle_time_ms(throttle_time_ms)
                .with_groups(groups)
                .with_unknown_tagged_fields(get_tagged_fields(buf)?),
        ))
    }
}

impl Encodable for OffsetFetchResponseV10 {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        check_version(version)?;
        let response = &self.0;
        buf.put_i32(response.throttle_time_ms);
        put_array(buf, &response.groups, |buf, group| {
            put_string(buf, &group.group_id)?;
            put_array(buf, &group.topics, |buf, topic| {
                put_uuid(buf, topic.topic_id);
                put_array(buf, &topic.partitions, |buf, partition| {
                    buf.put_i32(partition.partition_index);
                    buf.put_i64(partition.committed_offset);
                    buf.put_i32(partition.committed_leader_epoch);
                    put_nullable_string(buf, partition.metadata.as_deref())?;
                    buf.put_i16(partition.error_code);
                    put_tagged_fields(buf, &partition.unknown_tagged_fields)
                })?;
                put_tagged_fields(buf, &topic.unknown_tagged_fields)
            })?;
            buf.put_i16(group.error_code);
            put_tagged_fields(buf, &group.unknown_tagged_fields)
        })?;
        put_tagged_fields(buf, &response.unknown_tagged_fields)
    }

    fn compute_size(&self, version: i16) -> Result<usize> {
        encoded_size(self, version)
    }
}

#[cfg(test)]
#[path = "offsets_v10_tests.rs"]
mod tests;
