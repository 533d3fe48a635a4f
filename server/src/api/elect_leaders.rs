//! ElectLeaders (API 43): with one replica per partition the leader is always the preferred one
//! and always in sync, so every named partition answers ELECTION_NOT_NEEDED, as Kafka answers a
//! partition whose preferred leader already leads. A request for all partitions (null) gets an
//! empty list, as Kafka leaves out partitions that needed no election.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use super::{code, error_message, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

/// Kafka's election types (v1+): preferred (0) and unclean (1).
const ELECTION_TYPES: std::ops::RangeInclusive<i8> = 0..=1;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let elect: ElectLeadersRequest = request.decode(body)?;
    let response = ElectLeadersResponse::default();
    if !request.allows(context, Operation::Alter, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        return Ok(request.frame(&if request.version >= 1 {
            response.with_error_code(denied)
        } else {
            response
        }));
    }
    if request.version >= 1 && !ELECTION_TYPES.contains(&elect.election_type) {
        return Ok(request.frame(&response.with_error_code(code(ResponseError::InvalidRequest))));
    }
    let results = elect
        .topic_partitions
        .unwrap_or_default()
        .into_iter()
        .map(|topic| {
            let info = context.metadata.topic(&topic.topic);
            let partition_result = topic
                .partitions
                .iter()
                .map(|&partition| {
                    let known = info
                        .as_ref()
                        .is_some_and(|info| info.has_partition(partition));
                    let (error, message) = if known {
                        (
                            ResponseError::ElectionNotNeeded,
                            "the only replica already leads",
                        )
                    } else {
                        (ResponseError::UnknownTopicOrPartition, "no such partition")
                    };
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(code(error))
                        .with_error_message(Some(error_message(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    Ok(request.frame(&response.with_replica_election_results(results)))
}
