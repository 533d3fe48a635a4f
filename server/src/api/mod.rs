//! The Kafka APIs, one module each, and the dispatch from a decoded request header to them.
//!
//! Requests and responses are the `kafka-protocol` crate's types (generated from Kafka's own
//! message specs), except the Fetch response, framed by hand so record bytes go from file to socket
//! without a user-space copy (`fetch_response.rs`).
#![forbid(unsafe_code)]

pub mod acls;
pub mod alter_configs;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod authorized_operations;
pub mod client_quotas;
pub mod consumer_groups;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod fetch_response;
pub mod get_telemetry_subscriptions;
pub mod groups;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_config_resources;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod offsets;
pub mod offsets_by_id;
pub mod produce;
pub mod reassignments;
pub mod sasl;
pub mod scram_credentials;
pub mod transactions;
pub mod txn_offset_commit;

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringtail_engine::FileSlice;

pub use crate::acl::{Identity, Operation, Resource};
use crate::shard::ShardContext;

/// What goes back to the client for one request.
pub enum Response {
    /// A whole frame, size prefix included.
    Frame(BytesMut),
    /// A Fetch response: inline parts interleaved with record bytes sent from files.
    Fetch(FetchFrame),
    /// Produce with acks=0: no response at all.
    Nothing,
    /// The answer could not be encoded in the request's version: the connection closes, as a
    /// client would otherwise wait for it for ever, or take the next answer for it.
    Unencodable,
}

/// A Fetch response ready to send: `parts` in order; each `Records` part is sent from
/// `records[topic][partition]`.
pub struct FetchFrame {
    pub parts: Vec<fetch_response::FramePart>,
    pub records: Vec<Vec<Vec<FileSlice>>>,
}

/// A request the connection can't serve: it is closed (Kafka does the same for garbage).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("unsupported API {api:?} v{version}")]
    Unsupported { api: ApiKey, version: i16 },
    #[error("acks=0 produce refused with error code {error_code}")]
    RefusedWithoutAcks { error_code: i16 },
    #[error("shard stopped")]
    ShardGone(#[from] crate::shard::ShardGone),
}

/// Keeps a connection's produce requests in order: each waits until the one before it has queued
/// its appends (not until they are durable), then queues its own and signals the next. Pipelined
/// requests thus get offsets in the order they were sent, as Kafka guarantees per connection, while
/// their durability waits still overlap.
pub struct ProduceOrder {
    pub previous_queued: Option<futures_channel::oneshot::Receiver<()>>,
    pub queued: futures_channel::oneshot::Sender<()>,
}

/// Who sent a JoinGroup or ConsumerGroupHeartbeat, as DescribeGroups reports members.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: String,
    pub host: String,
}

/// The request being served: what its response needs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    /// The listener the request came in on (Metadata announces that listener's address).
    pub listener: crate::listeners::ListenerId,
    /// Who sent it, as ACLs name them.
    pub identity: Identity,
}

impl RequestContext {
    /// Whether the sender may do `operation` on `resource` (a denial is logged).
    pub fn allows(&self, context: &ShardContext, operation: Operation, resource: Resource) -> bool {
        context.acl.allows(&self.identity, operation, resource)
    }

    /// [`RequestContext::allows`] for a filter that hides what is denied (not logged).
    pub fn can(&self, context: &ShardContext, operation: Operation, resource: Resource) -> bool {
        context.acl.decide(&self.identity, operation, resource)
    }

    /// Decodes the body as `T`, or says why not.
    pub fn decode<T: Decodable>(&self, body: &mut Bytes) -> Result<T, RequestError> {
        T::decode(body, self.version).map_err(|err| RequestError::Malformed {
            api: self.api,
            version: self.version,
            reason: err.to_string(),
        })
    }

    /// Frames a response: size, header (the version's header format), body.
    pub fn frame<T: Encodable>(&self, body: &T) -> Response {
        let header_version = self.api.response_header_version(self.version);
        let header = ResponseHeader::default().with_correlation_id(self.correlation_id);
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        // Encoding fails when a field can't be carried by this version: a string over 32,767
        // bytes, a null where the version has none. Handlers keep what they echo short
        // (`echo`), so this is a bug; close the connection rather than send a corrupt frame or
        // none (the client would match the next answer to this request).
        if let Err(err) = header
            .encode(&mut frame, header_version)
            .and_then(|()| body.encode(&mut frame, self.version))
        {
            tracing::error!(api = ?self.api, version = self.version, %err, "response encoding failed; closing the connection");
            return Response::Unencodable;
        }
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        Response::Frame(frame)
    }
}

/// The versions we answer, per API: every one listed is handled. Advertised by ApiVersions, but
/// for the few served unadvertised (api_versions.rs).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::GetTelemetrySubscriptions, 0, 0),
    (ApiKey::FindCoordinator, 0, 4),
    // v8 adds the join's reason (KIP-800; not kept), v9 skip_assignment (KIP-814).
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    // From the versions kafka-protocol decodes (Kafka 4 dropped OffsetCommit v0-1 and OffsetFetch
    // v0 too): advertising one it cannot decode closed the connection of a client that used it.
    // v10 (topic ids, Kafka 4.1) is beyond the crate: `protocol::offsets_v10` codes it by hand.
    (ApiKey::OffsetCommit, 2, 10),
    (ApiKey::OffsetFetch, 1, 10),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::AlterClientQuotas, 0, 1),
    // Transactions (txn/): clients use AddPartitionsToTxn v0-3; v4-5 are the broker-to-broker
    // batch form with verify_only (KIP-890 part 1), answered too.
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
];

/// The version range we serve for `api`, if any.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Serves one request whose header has been decoded.
pub async fn dispatch(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: Bytes,
    produce_order: Option<ProduceOrder>,
    client: Option<ClientInfo>,
    quota: Option<&crate::quotas::Charge>,
) -> Result<Response, RequestError> {
    let mut body = body;
    match request.api {
        ApiKey::ApiVersions => api_versions::handle(request, &mut body),
        ApiKey::Metadata => metadata::handle(context, request, &mut body).await,
        ApiKey::Produce => produce::handle(context, request, &mut body, produce_order, quota).await,
        ApiKey::Fetch => fetch::handle(context, request, &mut body, quota).await,
        ApiKey::ListOffsets => list_offsets::handle(context, request, &mut body).await,
        ApiKey::DeleteRecords => delete_records::handle(context, request, &mut body).await,
        ApiKey::OffsetForLeaderEpoch => {
            offset_for_leader_epoch::handle(context, request, &mut body).await
        }
        ApiKey::CreateTopics => create_topics::handle(context, request, &mut body).await,
        ApiKey::DeleteTopics => delete_topics::handle(context, request, &mut body).await,
        ApiKey::CreatePartitions => create_partitions::handle(context, request, &mut body).await,
        ApiKey::DescribeConfigs => describe_configs::handle(context, request, &mut body).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(context, request, &mut body).await,
        ApiKey::AlterReplicaLogDirs => {
            alter_replica_log_dirs::handle(context, request, &mut body).await
        }
        ApiKey::InitProducerId => init_producer_id::handle(context, request, &mut body).await,
        ApiKey::AddPartitionsToTxn => {
            transactions::add_partitions_to_txn(context, request, &mut body).await
        }
        ApiKey::AddOffsetsToTxn => {
            transactions::add_offsets_to_txn(context, request, &mut body).await
        }
        ApiKey::EndTxn => transactions::end_txn(context, request, &mut body).await,
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(context, request, &mut body).await,
        ApiKey::DescribeTransactions => {
            transactions::describe_transactions(context, request, &mut body).await
        }
        ApiKey::ListTransactions => {
            transactions::list_transactions(context, request, &mut body).await
        }
        ApiKey::FindCoordinator => groups::find_coordinator(context, request, &mut body).await,
        ApiKey::JoinGroup => groups::join_group(context, request, &mut body, client).await,
        ApiKey::SyncGroup => groups::sync_group(context, request, &mut body).await,
        ApiKey::Heartbeat => groups::heartbeat(context, request, &mut body).await,
        ApiKey::LeaveGroup => groups::leave_group(context, request, &mut body).await,
        ApiKey::ListGroups => groups::list_groups(context, request, &mut body).await,
        ApiKey::DescribeGroups => groups::describe_groups(context, request, &mut body).await,
        ApiKey::DeleteGroups => groups::delete_groups(context, request, &mut body).await,
        ApiKey::OffsetCommit => offsets::offset_commit(context, request, &mut body).await,
        ApiKey::OffsetFetch => offsets::offset_fetch(context, request, &mut body).await,
        ApiKey::OffsetDelete => offsets::offset_delete(context, request, &mut body).await,
        ApiKey::ConsumerGroupHeartbeat => {
            consumer_groups::consumer_group_heartbeat(context, request, &mut body, client).await
        }
        ApiKey::ConsumerGroupDescribe => {
            consumer_groups::consumer_group_describe(context, request, &mut body).await
        }
        ApiKey::DescribeUserScramCredentials => {
            scram_credentials::describe(context, request, &mut body)
        }
        ApiKey::AlterUserScramCredentials => scram_credentials::alter(context, request, &mut body),
        ApiKey::DescribeClientQuotas => client_quotas::describe(context, request, &mut body),
        ApiKey::CreateAcls => acls::create(context, request, &mut body),
        ApiKey::DescribeAcls => acls::describe(context, request, &mut body),
        ApiKey::DeleteAcls => acls::delete(context, request, &mut body),
        ApiKey::AlterClientQuotas => client_quotas::alter(context, request, &mut body).await,
        ApiKey::IncrementalAlterConfigs => {
            incremental_alter_configs::handle(context, request, &mut body).await
        }
        ApiKey::AlterConfigs => alter_configs::handle(context, request, &mut body).await,
        ApiKey::DescribeCluster => describe_cluster::handle(context, request, &mut body).await,
        ApiKey::DescribeTopicPartitions => {
            describe_topic_partitions::handle(context, request, &mut body).await
        }
        ApiKey::ListConfigResources => {
            list_config_resources::handle(context, request, &mut body).await
        }
        ApiKey::DescribeProducers => describe_producers::handle(context, request, &mut body).await,
        ApiKey::ElectLeaders => elect_leaders::handle(context, request, &mut body).await,
        ApiKey::AlterPartitionReassignments => {
            reassignments::alter(context, request, &mut body).await
        }
        ApiKey::ListPartitionReassignments => {
            reassignments::list(context, request, &mut body).await
        }
        ApiKey::GetTelemetrySubscriptions => {
            get_telemetry_subscriptions::handle(request, &mut body)
        }
        api => Err(RequestError::Unsupported {
            api,
            version: request.version,
        }),
    }
}

/// Kafka's ConfigResource type of a topic (DescribeConfigs, the AlterConfigs APIs).
pub const RESOURCE_TYPE_TOPIC: i8 = 2;
/// Kafka's ConfigResource type of a broker (its name is the broker id).
pub const RESOURCE_TYPE_BROKER: i8 = 4;

/// Kafka's ConfigResource type of a group (KIP-848 group configs).
pub const RESOURCE_TYPE_GROUP: i8 = 32;

/// The authorization error of a config resource (DescribeConfigs, the AlterConfigs APIs): a topic
/// needs `operation` on the topic, a group on the group, anything else on the cluster (Kafka).
pub fn config_denied(
    context: &ShardContext,
    request: &RequestContext,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Option<ResponseError> {
    let (resource, error) = match resource_type {
        RESOURCE_TYPE_TOPIC => (
            Resource::topic(name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_TYPE_GROUP => (
            Resource::group(name),
            ResponseError::GroupAuthorizationFailed,
        ),
        _ => (
            Resource::cluster(),
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    (!request.allows(context, operation, resource)).then_some(error)
}

/// A Kafka error code.
pub fn code(error: ResponseError) -> i16 {
    error.code()
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// Error messages sent to clients are cut to this many bytes: they repeat what the client sent
/// (a topic name, a quota entity, a config value), and a non-flexible version's string carries
/// at most 32,767 bytes, so a long echo would make the whole answer unencodable.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;

/// An error message for a response, at most [`ERROR_MESSAGE_BYTES_MAX`] bytes (cut at a
/// character boundary, saying how long it was).
pub fn error_message(text: &str) -> StrBytes {
    if text.len() <= ERROR_MESSAGE_BYTES_MAX {
        return str_bytes(text);
    }
    let mut end = ERROR_MESSAGE_BYTES_MAX - 32;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    StrBytes::from_string(format!("{}… ({} bytes)", &text[..end], text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut_at_a_character_boundary() {
        assert_eq!(error_message("short").as_str(), "short");
        let long = "é".repeat(ERROR_MESSAGE_BYTES_MAX);
        let cut = error_message(&long);
        assert!(cut.len() <= ERROR_MESSAGE_BYTES_MAX, "{}", cut.len());
        assert!(cut.ends_with(&format!("… ({} bytes)", long.len())));
    }

    #[test]
    fn an_answer_the_version_cannot_carry_closes_the_connection() {
        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
        use kafka_protocol::messages::{CreateTopicsResponse, TopicName};
        let request = RequestContext {
            api: ApiKey::CreateTopics,
            version: 2,
            correlation_id: 7,
            listener: crate::listeners::ListenerId::default(),
            identity: Identity::anonymous("127.0.0.1".parse().unwrap()),
        };
        let answer = |message: &str| {
            CreateTopicsResponse::default().with_topics(vec![CreatableTopicResult::default()
                .with_name(TopicName(str_bytes("t")))
                .with_error_message(Some(str_bytes(message)))])
        };
        assert!(matches!(request.frame(&answer("fits")), Response::Frame(_)));
        // Over an INT16 string's 32,767 bytes: no frame, and not `Nothing` (acks=0's silence).
        let too_long = "x".repeat(40_000);
        assert!(matches!(
            request.frame(&answer(&too_long)),
            Response::Unencodable
        ));
        assert!(matches!(
            request.frame(&answer(error_message(&too_long).as_str())),
            Response::Frame(_)
        ));
    }

    #[test]
    fn advertised_versions_are_ones_the_codec_can_decode() {
        // A version advertised beyond the crate's range would be refused at decode and close the
        // connection of a client that trusted ApiVersions; the hand-written codecs of
        // `crate::protocol` extend the range of their APIs.
        for (api, min, max) in SUPPORTED_APIS {
            let mut valid = api.valid_versions();
            if matches!(api, ApiKey::OffsetCommit | ApiKey::OffsetFetch) {
                valid.max = valid.max.max(crate::protocol::offsets_v10::VERSION);
            }
            assert!(
                valid.min <= *min && *max <= valid.max,
                "{api:?} advertises {min}..={max}, kafka-protocol decodes {}..={}",
                valid.min,
                valid.max
            );
        }
    }
}
