//! CreateAcls, DescribeAcls and DeleteAcls: the ACL store managed online, as `kafka-acls` and the
//! admin clients do it. Creating and deleting need ALTER on the cluster, describing DESCRIBE
//! (CLUSTER_AUTHORIZATION_FAILED otherwise, as Kafka). A change is saved before it is answered.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use tracing::error;

use super::{code, error_message, str_bytes, RequestContext, RequestError, Response};
use crate::acl::{
    AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType,
};
use crate::shard::ShardContext;

/// Filters one DeleteAcls request may carry (each scans the store).
const DELETE_FILTERS_MAX: usize = 1000;

pub fn create(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let create: CreateAclsRequest = request.decode(body)?;
    let denied = !request.allows(context, Operation::Alter, Resource::cluster());
    let checked: Vec<Result<AclBinding, String>> = create.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok())
        .cloned()
        .collect();
    let saved = if denied || valid.is_empty() {
        Ok(())
    } else {
        context.acl.create(valid)
    };
    let results = checked
        .into_iter()
        .map(|checked| {
            let (error, message) = match (&checked, &saved) {
                _ if denied => (ResponseError::ClusterAuthorizationFailed, None),
                (Err(reason), _) => (ResponseError::InvalidRequest, Some(reason.clone())),
                (Ok(_), Err(err)) => {
                    error!(%err, "saving the ACL store");
                    (ResponseError::UnknownServerError, Some(err.to_string()))
                }
                (Ok(_), Ok(())) => return AclCreationResult::default(),
            };
            AclCreationResult::default()
                .with_error_code(code(error))
                .with_error_message(message.as_deref().map(error_message))
        })
        .collect();
    Ok(request.frame(&CreateAclsResponse::default().with_results(results)))
}

/// An ACL to create, checked as Kafka checks it.
fn binding(creation: &AclCreation) -> Result<AclBinding, String> {
    let unknown = |what: &str| format!("unknown {what}");
    let acl = AclBinding {
        resource_type: ResourceType::from_code(creation.resource_type)
            .ok_or_else(|| unknown("resource type"))?,
        resource_name: creation.resource_name.to_string(),
        pattern_type: PatternType::from_code(creation.resource_pattern_type)
            .ok_or_else(|| unknown("pattern type"))?,
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: Operation::from_code(creation.operation).ok_or_else(|| unknown("operation"))?,
        permission: Permission::from_code(creation.permission_type)
            .ok_or_else(|| unknown("permission type"))?,
    };
    acl.validate().map_err(|err| err.to_string())?;
    Ok(acl)
}

pub fn describe(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let describe: DescribeAclsRequest = request.decode(body)?;
    let response = DescribeAclsResponse::default();
    if !request.allows(context, Operation::Describe, Resource::cluster()) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return Ok(request.frame(&response.with_error_code(code(error))));
    }
    let filter = AclFilter::from_wire(
        describe.resource_type_filter,
        describe.resource_name_filter.as_deref(),
        describe.pattern_type_filter,
        describe.principal_filter.as_deref(),
        describe.host_filter.as_deref(),
        describe.operation,
        describe.permission_type,
    );
    let Some(filter) = filter else {
        let response = response
            .with_error_code(code(ResponseError::InvalidRequest))
            .with_error_message(Some(error_message("the filter has an UNKNOWN code")));
        return Ok(request.frame(&response));
    };
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in context.acl.describe(&filter) {
        let key = (
            acl.resource_type.code(),
            acl.resource_name.clone(),
            acl.pattern_type.code(),
        );
        by_resource.entry(key).or_default().push(
            AclDescription::default()
                .with_principal(str_bytes(&acl.principal))
                .with_host(str_bytes(&acl.host))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code()),
        );
    }
    let resources = by_resource
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(&name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect();
    Ok(request.frame(&response.with_resources(resources)))
}

pub fn delete(
    context: &Rc<ShardContext>,
    request: RequestContext,
    body: &mut Bytes,
) -> Result<Response, RequestError> {
    let delete: DeleteAclsRequest = request.decode(body)?;
    let denied = !request.allows(context, Operation::Alter, Resource::cluster());
    let filters: Vec<Option<AclFilter>> = delete
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().flatten().cloned().collect();
    let outcome = if denied || valid.is_empty() {
        Ok(Vec::new())
    } else if filters.len() > DELETE_FILTERS_MAX {
        Err(format!("at most {DELETE_FILTERS_MAX} filters per request"))
    } else {
        context.acl.delete(&valid).map_err(|err| {
            error!(%err, "saving the ACL store");
            err.to_string()
        })
    };
    let mut removed = match &outcome {
        Ok(removed) => removed.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = filters
        .iter()
        .map(|filter| {
            let failed = |error: ResponseError, message: Option<&str>| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code(error))
                    .with_error_message(message.map(error_message))
            };
            match (filter, &outcome) {
                _ if denied => failed(ResponseError::ClusterAuthorizationFailed, None),
                (None, _) => failed(
                    ResponseError::InvalidRequest,
                    Some("the filter has an UNKNOWN code"),
                ),
                (Some(_), Err(reason)) => failed(ResponseError::UnknownServerError, Some(reason)),
                (Some(_), Ok(_)) => DeleteAclsFilterResult::default().with_matching_acls(
                    removed
                        .next()
                        .unwrap_or_default()
                        .iter()
                        .map(matching)
                        .collect(),
                ),
            }
        })
        .collect();
    Ok(request.frame(&DeleteAclsResponse::default().with_filter_results(results)))
}

fn matching(acl: &AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type.code())
        .with_resource_name(str_bytes(&acl.resource_name))
        .with_pattern_type(acl.pattern_type.code())
        .with_principal(str_bytes(&acl.principal))
        .with_host(str_bytes(&acl.host))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission.code())
}
