//! DescribeClientQuotas and AlterClientQuotas (KIP-546): the broker's client quotas as Kafka
//! models them (`quotas/`), described through filters and changed entry by entry.
//!
//! Authorization: Kafka asks DESCRIBE_CONFIGS on the CLUSTER for Describe and ALTER_CONFIGS on
//! the CLUSTER for Alter; each handler has one marked spot for that check, before anything is
//! read or changed.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{
    EntityData as AlterEntityData, EntryData as AlterEntryData,
};
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};

use super::{
    code, error_message, str_bytes, Operation, RequestContext, RequestError, Resource, Response,
};
use crate::quotas::entity::FilterError;
use crate::quotas::{AlterRefusal, Alteration, QuotaEntity, QuotaFilter};
use crate::shard::ShardContext;

/// Entries of one AlterClientQuotas request served; the rest are refused (each is a file save).
pub const ALTER_ENTRIES_MAX: usize = 1_000;

pub fn describe(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeClientQuotasRequest = request.decode(body)?;
    if !request.allows(context, Operation::DescribeConfigs, Resource::cluster()) {
        let denied = code(ResponseError::ClusterAuthorizationFailed);
        let response = DescribeClientQuotasResponse::default().with_error_code(denied);
        return Ok(request.frame(&response));
    }
    let components = describe
        .components
        .iter()
        .map(|c| (c.entity_type.as_str(), c.match_type, c._match.as_deref()));
    let filter = match QuotaFilter::from_wire(components, describe.strict) {
        Ok(filter) => filter,
        Err(err) => {
            let (error, message) = match err {
                FilterError::Invalid(message) => (ResponseError::InvalidRequest, message),
                FilterError::UnknownType(message) => (ResponseError::UnsupportedVersion, message),
            };
            let response = DescribeClientQuotasResponse::default()
                .with_error_code(code(error))
                .with_error_message(Some(error_message(&message)));
            return Ok(request.frame(&response));
        }
    };
    let entries = context
        .quotas
        .describe(&filter)
        .into_iter()
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(describe_entity(&entity))
                .with_values(
                    values
                        .into_iter()
                        .map(|(key, value)| {
                            ValueData::default()
                                .with_key(str_bytes(key.name()))
                                .with_value(value)
                        })
                        .collect(),
                )
        })
        .collect();
    let response = DescribeClientQuotasResponse::default().with_entries(Some(entries));
    Ok(request.frame(&response))
}

fn describe_entity(entity: &QuotaEntity) -> Vec<EntityData> {
    entity
        .0
        .iter()
        .map(|(kind, name)| {
            EntityData::default()
                .with_entity_type(str_bytes(kind.name()))
                .with_entity_name(name.as_deref().map(str_bytes))
        })
        .collect()
}

pub async fn alter(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let alter: AlterClientQuotasRequest = request.decode(body)?;
    // As Kafka: ALTER_CONFIGS on the cluster, else every entry is refused.
    let authorized = request.allows(context, Operation::AlterConfigs, Resource::cluster());
    let echoed: Vec<Vec<AlterEntityData>> = alter
        .entries
        .iter()
        .map(|entry| {
            entry
                .entity
                .iter()
                .map(|e| {
                    AlterEntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect()
        })
        .collect();
    if !authorized {
        let entries = echoed
            .into_iter()
            .map(|entity| {
                AlterEntryData::default()
                    .with_entity(entity)
                    .with_error_code(code(ResponseError::ClusterAuthorizationFailed))
            })
            .collect();
        return Ok(request.frame(&AlterClientQuotasResponse::default().with_entries(entries)));
    }
    let served = alter.entries.len().min(ALTER_ENTRIES_MAX);
    let alterations: Vec<Alteration> = alter.entries[..served]
        .iter()
        .map(|entry| Alteration {
            entity: QuotaEntity::from_wire(
                entry
                    .entity
                    .iter()
                    .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
            ),
            ops: entry
                .ops
                .iter()
                .map(|op| (op.key.to_string(), op.value, op.remove))
                .collect(),
        })
        .collect();
    let quotas = Arc::clone(&context.quotas);
    let validate_only = alter.validate_only;
    let mut results =
        compio::runtime::spawn_blocking(move || quotas.alter(alterations, validate_only))
            .await
            .unwrap_or_else(|_| {
                let failed = AlterRefusal::Storage("changing the client quotas failed".to_string());
                vec![Err(failed); served]
            });
    let over = format!("at most {ALTER_ENTRIES_MAX} entries per request");
    results.resize(echoed.len(), Err(AlterRefusal::Invalid(over)));
    let entries = echoed
        .into_iter()
        .zip(results)
        .map(|(entity, result)| {
            let entry = AlterEntryData::default().with_entity(entity);
            match result {
                Ok(()) => entry,
                Err(refusal) => {
                    let (error, message) = match refusal {
                        AlterRefusal::Invalid(message) => (ResponseError::InvalidRequest, message),
                        AlterRefusal::Storage(message) => {
                            (ResponseError::UnknownServerError, message)
                        }
                    };
                    entry
                        .with_error_code(code(error))
                        .with_error_message(Some(error_message(&message)))
                }
            }
        })
        .collect();
    Ok(request.frame(&AlterClientQuotasResponse::default().with_entries(entries)))
}
