//! CreatePartitions: raise a topic's partition count.
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{code, error_message, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;
use crate::topics;
use kafka_protocol::error::ResponseError;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let create: CreatePartitionsRequest = request.decode(body)?;
    let mut results = Vec::with_capacity(create.topics.len());
    for topic in create.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if !request.allows(context, Operation::Alter, Resource::topic(&topic.name)) {
            results.push(result.with_error_code(code(ResponseError::TopicAuthorizationFailed)));
            continue;
        }
        // Manual assignments of an existing topic (a missing one is answered below, as Kafka
        // answers it first).
        let existing = context.metadata.topic(&topic.name);
        // An empty list is taken as none: some clients send one for "no assignments".
        let assignments = topic.assignments.as_ref().filter(|list| !list.is_empty());
        if let (Some(assignments), Some(existing)) = (assignments, existing) {
            let adding = i64::from(topic.count) - i64::from(existing.partitions);
            // A count that does not grow is refused below first (INVALID_PARTITIONS), as Kafka
            // refuses it before looking at assignments.
            let checked = if adding <= 0 {
                Ok(())
            } else if assignments.len() as i64 != adding {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.",
                        assignments.len()
                    ),
                ))
            } else {
                assignments.iter().try_for_each(|assignment| {
                    let replicas: Vec<i32> = assignment.broker_ids.iter().map(|id| id.0).collect();
                    super::create_topics::check_replicas(&replicas, context.settings.node_id)
                })
            };
            if let Err((error, message)) = checked {
                results.push(
                    result
                        .with_error_code(code(error))
                        .with_error_message(Some(error_message(&message))),
                );
                continue;
            }
        }
        if let Err(err) = topics::add_partitions(
            context,
            topic.name.to_string(),
            topic.count,
            create.validate_only,
        )
        .await
        {
            result = result
                .with_error_code(code(err.error))
                .with_error_message(Some(error_message(&err.message)));
        }
        results.push(result);
    }
    Ok(request.frame(&CreatePartitionsResponse::default().with_results(results)))
}
