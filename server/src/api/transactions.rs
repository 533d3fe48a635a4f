//! The transaction coordinator's APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! DescribeTransactions, ListTransactions (InitProducerId is in init_producer_id.rs,
//! TxnOffsetCommit in txn_offset_commit.rs). Each runs on the coordinator's shard.
#![forbid(unsafe_code)]

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::*;

use super::groups::run_to_completion_on_owner;
use super::{code, str_bytes, Operation, RequestContext, RequestError, Resource, Response};
use crate::shard::ShardContext;
use crate::txn::marker::TxnProducer;
use crate::txn::state::{TxnPartition, TxnState};
use crate::txn::{TxnCoordinator, TRANSACTION_STATE_TOPIC};

/// Runs `job` on the transaction coordinator; `None` while it is not loaded. As for groups, the
/// job runs to completion in its own task even if the request is dropped.
pub async fn on_txn_coordinator<R, F, Fut>(
    context: &Rc<ShardContext>,
    job: F,
) -> Result<Option<R>, RequestError>
where
    R: Send + 'static,
    F: FnOnce(Rc<TxnCoordinator>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let pick = |owner: &ShardContext| owner.txn_coordinator.borrow().clone();
    run_to_completion_on_owner(context, TRANSACTION_STATE_TOPIC, pick, job).await
}

/// The error of an operation whose coordinator is not loaded, or its own.
fn outcome(answer: Option<Result<(), ResponseError>>) -> i16 {
    match answer {
        None => code(ResponseError::CoordinatorNotAvailable),
        Some(Ok(())) => 0,
        Some(Err(error)) => code(error),
    }
}

/// PRODUCER_FENCED exists from AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2 (KIP-588);
/// older versions get INVALID_PRODUCER_EPOCH, which their clients know, as Kafka answers them.
fn fenced_before_v2(
    answer: Option<Result<(), ResponseError>>,
    version: i16,
) -> Option<Result<(), ResponseError>> {
    match answer {
        Some(Err(ResponseError::ProducerFenced)) if version < 2 => {
            Some(Err(ResponseError::InvalidProducerEpoch))
        }
        answer => answer,
    }
}

/// Each partition of one transaction's AddPartitionsToTxn: UNKNOWN_TOPIC_OR_PARTITION for those
/// that don't exist (the others OPERATION_NOT_ATTEMPTED, as Kafka), else the coordinator's answer.
async fn add_one(
    context: &Rc<ShardContext>,
    request: &RequestContext,
    transactional_id: String,
    producer: TxnProducer,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Result<Vec<AddPartitionsToTxnTopicResult>, RequestError> {
    let wanted: Vec<TxnPartition> = topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.name.to_string(), *partition))
        })
        .collect();
    let unknown = |(topic, partition): &TxnPartition| {
        !context
            .metadata
            .topic(topic)
            .is_some_and(|info| info.has_partition(*partition))
    };
    // Kafka's checks: WRITE on the transactional id, then on each topic; a refusal answers
    // every partition (the unrefused ones OPERATION_NOT_ATTEMPTED).
    let id_denied = !request.allows(
        context,
        Operation::Write,
        Resource::transactional_id(&transactional_id),
    );
    let topic_denied = |(topic, _): &TxnPartition| {
        !request.allows(context, Operation::Write, Resource::topic(topic))
    };
    let denied: Vec<bool> = wanted.iter().map(topic_denied).collect();
    let any_unknown = wanted.iter().any(unknown);
    let errors: Vec<i16> = if id_denied {
        vec![code(ResponseError::TransactionalIdAuthorizationFailed); wanted.len()]
    } else if denied.contains(&true) {
        denied
            .iter()
            .map(|&denied| {
                code(if denied {
                    ResponseError::TopicAuthorizationFailed
                } else {
                    ResponseError::OperationNotAttempted
                })
            })
            .collect()
    } else if any_unknown {
        wanted
            .iter()
            .map(|partition| {
                code(if unknown(partition) {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::OperationNotAttempted
                })
            })
            .collect()
    } else if verify_only {
        let asked = wanted.clone();
        let answer = on_txn_coordinator(context, move |coordinator| async move {
            asked
                .iter()
                .map(|partition| coordinator.verify(&transactional_id, producer, partition))
                .collect::<Vec<_>>()
        })
        .await?;
        match answer {
            None => vec![code(ResponseError::CoordinatorNotAvailable); wanted.len()],
            Some(results) => results
                .into_iter()
                .map(|result| outcome(Some(result)))
                .collect(),
        }
    } else {
        let asked = wanted.clone();
        let answer = on_txn_coordinator(context, move |coordinator| async move {
            coordinator
                .add(&transactional_id, producer, &asked, None)
                .await
        })
        .await?;
        vec![outcome(fenced_before_v2(answer, request.version)); wanted.len()]
    };
    let mut errors = errors.into_iter();
    Ok(topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*partition)
                        .with_partition_error_code(errors.next().unwrap_or_default())
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect())
}

pub async fn add_partitions_to_txn(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let add: AddPartitionsToTxnRequest = request.decode(body)?;
    if request.version <= 3 {
        let producer = TxnProducer {
            producer_id: add.v3_and_below_producer_id.0,
            producer_epoch: add.v3_and_below_producer_epoch,
        };
        let id = add.v3_and_below_transactional_id.to_string();
        let results = add_one(
            context,
            &request,
            id,
            producer,
            &add.v3_and_below_topics,
            false,
        )
        .await?;
        let response =
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
        return Ok(request.frame(&response));
    }
    // v4+: the broker-to-broker batch form (Kafka ≥ 3.6 partition leaders verifying before an append).
    if !request.allows(context, Operation::ClusterAction, Resource::cluster()) {
        let response = AddPartitionsToTxnResponse::default()
            .with_error_code(code(ResponseError::ClusterAuthorizationFailed));
        return Ok(request.frame(&response));
    }
    let mut transactions = Vec::with_capacity(add.transactions.len());
    for transaction in &add.transactions {
        let producer = TxnProducer {
            producer_id: transaction.producer_id.0,
            producer_epoch: transaction.producer_epoch,
        };
        let id = transaction.transactional_id.to_string();
        let results = add_one(
            context,
            &request,
            id,
            producer,
            &transaction.topics,
            transaction.verify_only,
        )
        .await?;
        transactions.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(transaction.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    let response = AddPartitionsToTxnResponse::default().with_results_by_transaction(transactions);
    Ok(request.frame(&response))
}

pub async fn add_offsets_to_txn(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let add: AddOffsetsToTxnRequest = request.decode(body)?;
    let producer = TxnProducer {
        producer_id: add.producer_id.0,
        producer_epoch: add.producer_epoch,
    };
    let id = add.transactional_id.to_string();
    let group = add.group_id.to_string();
    let answer = if !request.allows(context, Operation::Write, Resource::transactional_id(&id)) {
        Some(Err(ResponseError::TransactionalIdAuthorizationFailed))
    } else if !request.allows(context, Operation::Read, Resource::group(&group)) {
        Some(Err(ResponseError::GroupAuthorizationFailed))
    } else if crate::group::fits_in_key(&group) {
        on_txn_coordinator(context, move |coordinator| async move {
            coordinator.add(&id, producer, &[], Some(&group)).await
        })
        .await?
    } else {
        Some(Err(ResponseError::InvalidGroupId))
    };
    let error_code = outcome(fenced_before_v2(answer, request.version));
    Ok(request.frame(&AddOffsetsToTxnResponse::default().with_error_code(error_code)))
}

pub async fn end_txn(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let end: EndTxnRequest = request.decode(body)?;
    let producer = TxnProducer {
        producer_id: end.producer_id.0,
        producer_epoch: end.producer_epoch,
    };
    let id = end.transactional_id.to_string();
    let commit = end.committed;
    let answer = if request.allows(context, Operation::Write, Resource::transactional_id(&id)) {
        on_txn_coordinator(context, move |coordinator| async move {
            coordinator.end(&id, producer, commit).await
        })
        .await?
    } else {
        Some(Err(ResponseError::TransactionalIdAuthorizationFailed))
    };
    // v5 (KIP-890 part 2) answers the producer id and epoch to continue with: the same ones here.
    let response = EndTxnResponse::default()
        .with_error_code(outcome(fenced_before_v2(answer, request.version)))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let response = if request.version >= 5 {
        response
            .with_producer_id(end.producer_id)
            .with_producer_epoch(end.producer_epoch)
    } else {
        response
    };
    Ok(request.frame(&response))
}

pub async fn describe_transactions(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeTransactionsRequest = request.decode(body)?;
    let ids: Vec<String> = describe
        .transactional_ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    // Ids the caller may not describe are answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka.
    let (asked, refused): (Vec<String>, Vec<String>) = ids.into_iter().partition(|id| {
        request.allows(context, Operation::Describe, Resource::transactional_id(id))
    });
    let ids = asked.clone();
    let answer = on_txn_coordinator(context, move |coordinator| async move {
        coordinator.describe(&asked)
    })
    .await?;
    let mut described = answer.unwrap_or_else(|| {
        ids.iter()
            .map(|id| (id.clone(), Err(ResponseError::CoordinatorNotAvailable)))
            .collect()
    });
    described.extend(
        refused
            .into_iter()
            .map(|id| (id, Err(ResponseError::TransactionalIdAuthorizationFailed))),
    );
    let states = described
        .into_iter()
        .map(|(id, found)| {
            let state = TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(&id)))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match found {
                Err(error) => state.with_error_code(code(error)),
                Ok(meta) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    // As Kafka: only the partitions of topics the caller may DESCRIBE.
                    let describable = |topic: &String| {
                        request.can(context, Operation::Describe, Resource::topic(topic))
                    };
                    for (topic, partition) in meta
                        .partitions
                        .iter()
                        .filter(|(topic, _)| describable(topic))
                    {
                        match topics.last_mut() {
                            Some(last) if last.topic.0.as_str() == topic.as_str() => {
                                last.partitions.push(*partition)
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(topic)))
                                    .with_partitions(vec![*partition]),
                            ),
                        }
                    }
                    state
                        .with_transaction_state(str_bytes(meta.state.name()))
                        .with_transaction_timeout_ms(meta.timeout_ms)
                        .with_transaction_start_time_ms(meta.start_ms)
                        .with_producer_id(ProducerId(meta.producer_id))
                        .with_producer_epoch(meta.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    Ok(request.frame(&DescribeTransactionsResponse::default().with_transaction_states(states)))
}

pub async fn list_transactions(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let list: ListTransactionsRequest = request.decode(body)?;
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for filter in &list.state_filters {
        match TxnState::ALL
            .iter()
            .find(|state| state.name() == filter.as_str())
        {
            Some(state) => states.push(*state),
            None => unknown.push(filter.clone()),
        }
    }
    // Only unknown states asked: nothing can match (Kafka answers an empty list then).
    let nothing_matches = states.is_empty() && !unknown.is_empty();
    let producer_ids: Vec<i64> = list.producer_id_filters.iter().map(|id| id.0).collect();
    let duration_ms = if request.version >= 1 {
        list.duration_filter
    } else {
        -1
    };
    let pattern = match list
        .transactional_id_pattern
        .as_ref()
        .filter(|_| request.version >= 2)
    {
        Some(pattern) if !pattern.is_empty() => {
            match regex::Regex::new(&format!("^(?:{})$", pattern.as_str())) {
                Ok(pattern) => Some(pattern),
                Err(_) => {
                    let response = ListTransactionsResponse::default()
                        .with_error_code(code(ResponseError::InvalidRegularExpression));
                    return Ok(request.frame(&response));
                }
            }
        }
        _ => None,
    };
    let answer = on_txn_coordinator(context, move |coordinator| async move {
        coordinator.list(&states, &producer_ids, duration_ms)
    })
    .await?;
    let response = match answer {
        None => ListTransactionsResponse::default()
            .with_error_code(code(ResponseError::CoordinatorNotAvailable)),
        Some(listed) => {
            let listed = listed
                .into_iter()
                .filter(|_| !nothing_matches)
                .filter(|(id, _, _)| pattern.as_ref().is_none_or(|pattern| pattern.is_match(id)))
                // Only what the caller may describe is listed, as Kafka.
                .filter(|(id, _, _)| {
                    request.can(context, Operation::Describe, Resource::transactional_id(id))
                })
                .map(|(id, producer_id, state)| {
                    ListedState::default()
                        .with_transactional_id(TransactionalId(str_bytes(&id)))
                        .with_producer_id(ProducerId(producer_id))
                        .with_transaction_state(str_bytes(state.name()))
                })
                .collect();
            ListTransactionsResponse::default()
                .with_unknown_state_filters(unknown)
                .with_transaction_states(listed)
        }
    };
    Ok(request.frame(&response))
}
