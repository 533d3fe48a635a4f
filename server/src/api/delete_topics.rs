//! DeleteTopics: by name (v0-v5) or by name or id (v6).
#![forbid(unsafe_code)]

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{
    code, error_message, str_bytes, Operation, RequestContext, RequestError, Resource, Response,
};
use crate::shard::ShardContext;
use crate::topics;

pub async fn handle(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let delete: DeleteTopicsRequest = request.decode(body)?;
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = delete
        .topic_names
        .iter()
        .map(|name| (Some(name.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(delete.topics.iter().map(|state| {
        (
            state.name.as_ref().map(|name| name.to_string()),
            state.topic_id,
        )
    }));
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let found = match &name {
            Some(name) => context.metadata.topic(name),
            None => context.metadata.topic_by_id(topic_id),
        };
        let version = request.version;
        // Fields a version lacks must stay at their defaults or encoding fails.
        let with_id = |result: DeletableTopicResult, id: uuid::Uuid| {
            if version >= 6 {
                result.with_topic_id(id)
            } else {
                result
            }
        };
        let mut result = with_id(
            DeletableTopicResult::default()
                .with_name(name.as_deref().map(|n| TopicName(str_bytes(n)))),
            topic_id,
        );
        let checked = found.as_ref().map(|t| t.name.as_str()).or(name.as_deref());
        if checked.is_some_and(|n| !request.allows(context, Operation::Delete, Resource::topic(n)))
        {
            let error = ResponseError::TopicAuthorizationFailed;
            responses.push(result.with_error_code(code(error)));
            continue;
        }
        let Some(topic) = found else {
            let error = if name.is_some() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::UnknownTopicId
            };
            responses.push(result.with_error_code(code(error)));
            continue;
        };
        result = with_id(
            result.with_name(Some(TopicName(str_bytes(&topic.name)))),
            topic.topic_id,
        );
        if crate::metadata::is_internal_topic(&topic.name) {
            // The coordinators' logs: deleting one closes it under its coordinator, which then
            // fails every request until a restart recreates the topic empty (every group's
            // offsets, every transaction's state gone).
            result = result.with_error_code(code(ResponseError::InvalidTopicException));
            if version >= 5 {
                result = result
                    .with_error_message(Some(error_message("internal topics cannot be deleted")));
            }
            responses.push(result);
            continue;
        }
        if let Err(err) = topics::delete_topic(context, topic.name.clone()).await {
            result = result.with_error_code(code(err.error));
            if version >= 5 {
                result = result.with_error_message(Some(error_message(&err.message)));
            }
        }
        responses.push(result);
    }
    Ok(request.frame(&DeleteTopicsResponse::default().with_responses(responses)))
}
