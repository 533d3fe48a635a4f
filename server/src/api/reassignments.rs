//! AlterPartitionReassignments (API 45) and ListPartitionReassignments (API 46): a single broker
//! can only "move" a partition to where it is. Reassigning it to this broker alone succeeds with
//! nothing to do; any other target is INVALID_REPLICA_ASSIGNMENT; cancelling (null replicas) is
//! NO_REASSIGNMENT_IN_PROGRESS. No reassignment is ever in progress, so the list is empty.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{code, error_message, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;

pub async fn alter(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: AlterPartitionReassignmentsRequest = request.decode(body)?;
    if !request.allows(context, Operation::Alter, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        let response = AlterPartitionReassignmentsResponse::default().with_error_code(denied);
        return Ok(request.frame(&response));
    }
    let responses = alter
        .topics
        .into_iter()
        .map(|topic| {
            let info = context.metadata.topic(&topic.name);
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let known = info
                        .as_ref()
                        .is_some_and(|info| info.has_partition(partition.partition_index));
                    let outcome = match &partition.replicas {
                        _ if !known => {
                            Err((ResponseError::UnknownTopicOrPartition, "no such partition"))
                        }
                        None => Err((
                            ResponseError::NoReassignmentInProgress,
                            "no reassignment is in progress",
                        )),
                        Some(replicas)
                            if replicas.as_slice() == [BrokerId(context.settings.node_id)] =>
                        {
                            Ok(())
                        }
                        Some(_) => Err((
                            ResponseError::InvalidReplicaAssignment,
                            "this cluster is one broker: the only assignment is its id alone",
                        )),
                    };
                    let result = ReassignablePartitionResponse::default()
                        .with_partition_index(partition.partition_index);
                    match outcome {
                        Ok(()) => result,
                        Err((error, message)) => result
                            .with_error_code(code(error))
                            .with_error_message(Some(error_message(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut response = AlterPartitionReassignmentsResponse::default().with_responses(responses);
    if request.version >= 1 {
        response =
            response.with_allow_replication_factor_change(alter.allow_replication_factor_change);
    }
    Ok(request.frame(&response))
}

pub async fn list(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let _: ListPartitionReassignmentsRequest = request.decode(body)?;
    let response = ListPartitionReassignmentsResponse::default();
    if !request.allows(context, Operation::Describe, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        return Ok(request.frame(&response.with_error_code(denied)));
    }
    Ok(request.frame(&response))
}
