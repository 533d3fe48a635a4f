//! Entry points for the fuzz targets in fuzz/: the broker's own decode paths, driven with
//! arbitrary bytes. Each returns an error for bad input; none may panic (the targets treat a
//! panic as a crash).
#![forbid(unsafe_code)]

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterClientQuotasRequest,
    AlterConfigsRequest, AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest,
    AlterUserScramCredentialsRequest, ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest, CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteAclsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, DescribeClientQuotasRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, DescribeTopicPartitionsRequest, DescribeTransactionsRequest,
    DescribeUserScramCredentialsRequest, ElectLeadersRequest, EndTxnRequest, FetchRequest,
    FindCoordinatorRequest, GetTelemetrySubscriptionsRequest, HeartbeatRequest,
    IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest,
    ListConfigResourcesRequest, ListGroupsRequest, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, ListTransactionsRequest, MetadataRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, OffsetForLeaderEpochRequest,
    ProduceRequest, RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest, SyncGroupRequest,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::Encodable;
use ringtail_engine::batch::{validate_all, Strictness};
use ringtail_engine::{LogConfig, PartitionLog};

use crate::api::{RequestContext, RequestError};
use crate::connection::{checked_frame_size, parse_header};
use crate::group::consumer::ConsumerGroupConfig;
use crate::group::Coordinator;
use crate::listeners::ListenerId;
use crate::metadata::Metadata;
use crate::protocol::offsets_v10::{self, OffsetCommitRequestV10, OffsetFetchRequestV10};

/// The frame size limit the fuzzed frames are checked against (the broker's default).
pub const FRAME_BYTES_MAX: u32 = 100 << 20;

/// One request as it arrives on a connection: the 4-byte size prefix, then the frame. Goes the
/// connection's way (size check, header) and then decodes the body as the API's handler does;
/// a Produce request's record sets are then validated as the log validates them before an
/// append.
pub fn request_frame(bytes: &[u8]) -> Result<(), String> {
    let prefix: [u8; 4] = bytes
        .get(..4)
        .and_then(|prefix| prefix.try_into().ok())
        .ok_or("no size prefix")?;
    let size = checked_frame_size(i32::from_be_bytes(prefix), FRAME_BYTES_MAX)?;
    let frame = bytes
        .get(4..4 + size)
        .ok_or("frame shorter than its size")?;
    let (request, mut body, _client_id) = parse_header(
        Bytes::copy_from_slice(frame),
        ListenerId(0),
        &crate::acl::Identity::anonymous(std::net::Ipv4Addr::LOCALHOST.into()),
    )?;
    decode_body(request, &mut body).map_err(|err| err.to_string())
}

/// Decodes `body` as the request type the dispatcher's handler for `request.api` decodes.
fn decode_body(request: RequestContext, body: &mut Bytes) -> Result<(), RequestError> {
    match request.api {
        ApiKey::Produce => {
            let produce: ProduceRequest = request.decode(body)?;
            for partition in produce.topic_data.iter().flat_map(|t| &t.partition_data) {
                if let Some(records) = &partition.records {
                    let _ = validate_all(records, FRAME_BYTES_MAX as usize, Strictness::Producer);
                }
            }
            Ok(())
        }
        ApiKey::Fetch => request.decode::<FetchRequest>(body).map(drop),
        ApiKey::ListOffsets => request.decode::<ListOffsetsRequest>(body).map(drop),
        ApiKey::Metadata => request.decode::<MetadataRequest>(body).map(drop),
        ApiKey::DeleteRecords => request.decode::<DeleteRecordsRequest>(body).map(drop),
        ApiKey::SaslHandshake => request.decode::<SaslHandshakeRequest>(body).map(drop),
        ApiKey::SaslAuthenticate => request.decode::<SaslAuthenticateRequest>(body).map(drop),
        ApiKey::DescribeUserScramCredentials => request
            .decode::<DescribeUserScramCredentialsRequest>(body)
            .map(drop),
        ApiKey::AlterUserScramCredentials => request
            .decode::<AlterUserScramCredentialsRequest>(body)
            .map(drop),
        ApiKey::AddPartitionsToTxn => request.decode::<AddPartitionsToTxnRequest>(body).map(drop),
        ApiKey::AddOffsetsToTxn => request.decode::<AddOffsetsToTxnRequest>(body).map(drop),
        ApiKey::EndTxn => request.decode::<EndTxnRequest>(body).map(drop),
        ApiKey::TxnOffsetCommit => request.decode::<TxnOffsetCommitRequest>(body).map(drop),
        ApiKey::DescribeTransactions => request
            .decode::<DescribeTransactionsRequest>(body)
            .map(drop),
        ApiKey::ListTransactions => request.decode::<ListTransactionsRequest>(body).map(drop),
        ApiKey::DescribeClientQuotas => request
            .decode::<DescribeClientQuotasRequest>(body)
            .map(drop),
        ApiKey::AlterClientQuotas => request.decode::<AlterClientQuotasRequest>(body).map(drop),
        ApiKey::OffsetForLeaderEpoch => request
            .decode::<OffsetForLeaderEpochRequest>(body)
            .map(drop),
        ApiKey::ApiVersions => request.decode::<ApiVersionsRequest>(body).map(drop),
        ApiKey::CreateTopics => request.decode::<CreateTopicsRequest>(body).map(drop),
        ApiKey::DeleteTopics => request.decode::<DeleteTopicsRequest>(body).map(drop),
        ApiKey::InitProducerId => request.decode::<InitProducerIdRequest>(body).map(drop),
        ApiKey::DescribeConfigs => request.decode::<DescribeConfigsRequest>(body).map(drop),
        ApiKey::CreatePartitions => request.decode::<CreatePartitionsRequest>(body).map(drop),
        ApiKey::IncrementalAlterConfigs => request
            .decode::<IncrementalAlterConfigsRequest>(body)
            .map(drop),
        ApiKey::AlterConfigs => request.decode::<AlterConfigsRequest>(body).map(drop),
        ApiKey::DescribeCluster => request.decode::<DescribeClusterRequest>(body).map(drop),
        ApiKey::DescribeTopicPartitions => request
            .decode::<DescribeTopicPartitionsRequest>(body)
            .map(drop),
        ApiKey::ListConfigResources => request.decode::<ListConfigResourcesRequest>(body).map(drop),
        ApiKey::DescribeProducers => request.decode::<DescribeProducersRequest>(body).map(drop),
        ApiKey::ElectLeaders => request.decode::<ElectLeadersRequest>(body).map(drop),
        ApiKey::DescribeLogDirs => request.decode::<DescribeLogDirsRequest>(body).map(drop),
        ApiKey::AlterReplicaLogDirs => request.decode::<AlterReplicaLogDirsRequest>(body).map(drop),
        ApiKey::AlterPartitionReassignments => request
            .decode::<AlterPartitionReassignmentsRequest>(body)
            .map(drop),
        ApiKey::ListPartitionReassignments => request
            .decode::<ListPartitionReassignmentsRequest>(body)
            .map(drop),
        ApiKey::GetTelemetrySubscriptions => request
            .decode::<GetTelemetrySubscriptionsRequest>(body)
            .map(drop),
        ApiKey::FindCoordinator => request.decode::<FindCoordinatorRequest>(body).map(drop),
        ApiKey::JoinGroup => request.decode::<JoinGroupRequest>(body).map(drop),
        ApiKey::SyncGroup => request.decode::<SyncGroupRequest>(body).map(drop),
        ApiKey::Heartbeat => request.decode::<HeartbeatRequest>(body).map(drop),
        ApiKey::LeaveGroup => request.decode::<LeaveGroupRequest>(body).map(drop),
        ApiKey::OffsetCommit => {
            crate::api::offsets_by_id::decode_offset_commit(&request, body).map(drop)
        }
        ApiKey::OffsetFetch => {
            crate::api::offsets_by_id::decode_offset_fetch(&request, body).map(drop)
        }
        ApiKey::ListGroups => request.decode::<ListGroupsRequest>(body).map(drop),
        ApiKey::DescribeGroups => request.decode::<DescribeGroupsRequest>(body).map(drop),
        ApiKey::DeleteGroups => request.decode::<DeleteGroupsRequest>(body).map(drop),
        ApiKey::OffsetDelete => request.decode::<OffsetDeleteRequest>(body).map(drop),
        ApiKey::ConsumerGroupHeartbeat => request
            .decode::<ConsumerGroupHeartbeatRequest>(body)
            .map(drop),
        ApiKey::ConsumerGroupDescribe => request
            .decode::<ConsumerGroupDescribeRequest>(body)
            .map(drop),
        ApiKey::CreateAcls => request.decode::<CreateAclsRequest>(body).map(drop),
        ApiKey::DescribeAcls => request.decode::<DescribeAclsRequest>(body).map(drop),
        ApiKey::DeleteAcls => request.decode::<DeleteAclsRequest>(body).map(drop),
        api => Err(RequestError::Unsupported {
            api,
            version: request.version,
        }),
    }
}

/// Replays `record_set` (record batches as the offsets log holds them) into a coordinator
/// loaded from an empty offsets log in `dir`, as a restart replays `__consumer_offsets`, then
/// reads every group back. Errors only for a record set the replay refuses (or an I/O error).
pub fn offsets_replay(dir: &Path, record_set: &[u8]) -> Result<(), String> {
    let runtime = compio::runtime::Runtime::new().map_err(|err| err.to_string())?;
    runtime.block_on(async {
        let config = LogConfig {
            preallocate: false,
            ..LogConfig::default()
        };
        let (log, _) = PartitionLog::open(&dir.join("__consumer_offsets-0"), config.clone())
            .await
            .map_err(|err| err.to_string())?;
        let metadata = Arc::new(Metadata::new(config));
        let coordinator =
            Coordinator::load(Rc::clone(&log), metadata, ConsumerGroupConfig::default())
                .await
                .map_err(|err| err.to_string())?;
        let replayed = coordinator.replay_batches(record_set);
        coordinator.start_sessions();
        for listed in coordinator.list() {
            let _ = coordinator.describe(&listed.group_id);
            let _ = coordinator.consumer_group(&listed.group_id);
        }
        coordinator.tick().await;
        replayed
            .map(drop)
            .map_err(|(position, err)| format!("at byte {position}: {err}"))
    })
}

/// A default (empty) request of `api` at `version` as it comes off the wire, size prefix first
/// (a seed for the request fuzzer); None for an API the broker does not serve.
pub fn default_request_frame(api: ApiKey, version: i16) -> Option<Vec<u8>> {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .encode(&mut frame, api.request_header_version(version))
        .ok()?;
    encode_default(api, version, &mut frame).ok()?;
    let mut out = i32::try_from(frame.len()).ok()?.to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    Some(out)
}

fn encode_default(api: ApiKey, version: i16, frame: &mut BytesMut) -> anyhow::Result<()> {
    macro_rules! encode {
        ($type:ty) => {
            <$type>::default().encode(frame, version)
        };
    }
    match api {
        ApiKey::Produce => encode!(ProduceRequest),
        ApiKey::Fetch => encode!(FetchRequest),
        ApiKey::ListOffsets => encode!(ListOffsetsRequest),
        ApiKey::Metadata => encode!(MetadataRequest),
        ApiKey::DeleteRecords => encode!(DeleteRecordsRequest),
        ApiKey::SaslHandshake => encode!(SaslHandshakeRequest),
        ApiKey::SaslAuthenticate => encode!(SaslAuthenticateRequest),
        ApiKey::DescribeUserScramCredentials => encode!(DescribeUserScramCredentialsRequest),
        ApiKey::AlterUserScramCredentials => encode!(AlterUserScramCredentialsRequest),
        ApiKey::DescribeClientQuotas => encode!(DescribeClientQuotasRequest),
        ApiKey::AlterClientQuotas => encode!(AlterClientQuotasRequest),
        ApiKey::AddPartitionsToTxn => encode!(AddPartitionsToTxnRequest),
        ApiKey::AddOffsetsToTxn => encode!(AddOffsetsToTxnRequest),
        ApiKey::EndTxn => encode!(EndTxnRequest),
        ApiKey::TxnOffsetCommit => encode!(TxnOffsetCommitRequest),
        ApiKey::DescribeTransactions => encode!(DescribeTransactionsRequest),
        ApiKey::ListTransactions => encode!(ListTransactionsRequest),
        ApiKey::OffsetForLeaderEpoch => encode!(OffsetForLeaderEpochRequest),
        ApiKey::ApiVersions => encode!(ApiVersionsRequest),
        ApiKey::CreateTopics => encode!(CreateTopicsRequest),
        ApiKey::DeleteTopics => encode!(DeleteTopicsRequest),
        ApiKey::InitProducerId => encode!(InitProducerIdRequest),
        ApiKey::DescribeConfigs => encode!(DescribeConfigsRequest),
        ApiKey::CreatePartitions => encode!(CreatePartitionsRequest),
        ApiKey::IncrementalAlterConfigs => encode!(IncrementalAlterConfigsRequest),
        ApiKey::AlterConfigs => encode!(AlterConfigsRequest),
        ApiKey::DescribeCluster => encode!(DescribeClusterRequest),
        ApiKey::DescribeTopicPartitions => encode!(DescribeTopicPartitionsRequest),
        ApiKey::ListConfigResources => encode!(ListConfigResourcesRequest),
        ApiKey::DescribeProducers => encode!(DescribeProducersRequest),
        ApiKey::ElectLeaders => encode!(ElectLeadersRequest),
        ApiKey::DescribeLogDirs => encode!(DescribeLogDirsRequest),
        ApiKey::AlterReplicaLogDirs => encode!(AlterReplicaLogDirsRequest),
        ApiKey::AlterPartitionReassignments => encode!(AlterPartitionReassignmentsRequest),
        ApiKey::ListPartitionReassignments => encode!(ListPartitionReassignmentsRequest),
        ApiKey::GetTelemetrySubscriptions => encode!(GetTelemetrySubscriptionsRequest),
        ApiKey::FindCoordinator => encode!(FindCoordinatorRequest),
        ApiKey::JoinGroup => encode!(JoinGroupRequest),
        ApiKey::SyncGroup => encode!(SyncGroupRequest),
        ApiKey::Heartbeat => encode!(HeartbeatRequest),
        ApiKey::LeaveGroup => encode!(LeaveGroupRequest),
        // v10 (topic ids) is beyond kafka-protocol: the broker's own codec writes it.
        ApiKey::OffsetCommit if version >= offsets_v10::VERSION => {
            OffsetCommitRequestV10::default().encode(frame, version)
        }
        ApiKey::OffsetFetch if version >= offsets_v10::VERSION => {
            OffsetFetchRequestV10::default().encode(frame, version)
        }
        ApiKey::OffsetCommit => encode!(OffsetCommitRequest),
        ApiKey::OffsetFetch => encode!(OffsetFetchRequest),
        ApiKey::ListGroups => encode!(ListGroupsRequest),
        ApiKey::DescribeGroups => encode!(DescribeGroupsRequest),
        ApiKey::DeleteGroups => encode!(DeleteGroupsRequest),
        ApiKey::OffsetDelete => encode!(OffsetDeleteRequest),
        ApiKey::ConsumerGroupHeartbeat => encode!(ConsumerGroupHeartbeatRequest),
        ApiKey::ConsumerGroupDescribe => encode!(ConsumerGroupDescribeRequest),
        ApiKey::CreateAcls => encode!(CreateAclsRequest),
        ApiKey::DescribeAcls => encode!(DescribeAclsRequest),
        ApiKey::DeleteAcls => encode!(DeleteAclsRequest),
        other => anyhow::bail!("no request type for {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SUPPORTED_APIS;

    #[test]
    fn every_supported_api_and_version_decodes_through_the_fuzzing_entry() {
        // Keeps decode_body in step with SUPPORTED_APIS: an API added there without a decoder
        // here would be refused as unsupported.
        for &(api, min, max) in SUPPORTED_APIS {
            for version in min..=max {
                let frame = default_request_frame(api, version)
                    .unwrap_or_else(|| panic!("{api:?} v{version} does not encode"));
                assert_eq!(request_frame(&frame), Ok(()), "{api:?} v{version}");
            }
        }
    }

    #[test]
    fn frames_the_connection_refuses_are_errors() {
        let good = default_request_frame(ApiKey::Metadata, 12).unwrap();
        assert!(request_frame(&good[..3]).is_err(), "short size prefix");
        assert!(
            request_frame(&good[..good.len() - 1]).is_err(),
            "frame cut short"
        );
        assert!(
            request_frame(&[0, 0, 0, 7, 0, 3, 0, 12, 0, 0, 0]).is_err(),
            "under 8 bytes"
        );
        assert!(request_frame(&[0x7f, 0xff, 0xff, 0xff]).is_err(), "2 GiB");
        assert!(
            request_frame(&[0xff, 0xff, 0xff, 0xff]).is_err(),
            "negative"
        );
        let mut unknown_api = good.clone();
        unknown_api[4..6].copy_from_slice(&999i16.to_be_bytes());
        assert!(request_frame(&unknown_api).is_err(), "unknown API key");
    }
}
