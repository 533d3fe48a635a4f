//! Kafka's authorized-operations bit fields (KIP-430), as Metadata, DescribeCluster,
//! DescribeGroups and DescribeTopicPartitions report them: of the operations a resource type
//! supports, those the ACLs allow the requester.
#![forbid(unsafe_code)]

use super::{Operation, RequestContext, Resource};
use crate::shard::ShardContext;

/// The operations Kafka lists for a cluster.
const CLUSTER_OPERATIONS: &[Operation] = &[
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
    Operation::CreateTokens,
    Operation::DescribeTokens,
];

/// The operations Kafka lists for a topic.
const TOPIC_OPERATIONS: &[Operation] = &[
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

/// The operations Kafka lists for a group.
const GROUP_OPERATIONS: &[Operation] = &[Operation::Read, Operation::Describe, Operation::Delete];

/// The value of a field the client did not ask for (Kafka's `Integer.MIN_VALUE`).
pub const NOT_REQUESTED: i32 = i32::MIN;

pub fn cluster(context: &ShardContext, request: &RequestContext) -> i32 {
    context
        .acl
        .authorized_operations(&request.identity, Resource::cluster(), CLUSTER_OPERATIONS)
}

pub fn topic(context: &ShardContext, request: &RequestContext, name: &str) -> i32 {
    context
        .acl
        .authorized_operations(&request.identity, Resource::topic(name), TOPIC_OPERATIONS)
}

pub fn group(context: &ShardContext, request: &RequestContext, name: &str) -> i32 {
    context
        .acl
        .authorized_operations(&request.identity, Resource::group(name), GROUP_OPERATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_codes_are_kafkas_bits() {
        // The Java client decodes these bits into AclOperation sets: a wrong bit is a wrong set.
        let bits = |ops: &[Operation]| ops.iter().fold(0, |b, op| b | (1 << op.code()));
        assert_eq!(
            bits(TOPIC_OPERATIONS),
            0b1101_1111_1000,
            "READ..ALTER_CONFIGS without CLUSTER_ACTION"
        );
        assert_eq!(
            bits(CLUSTER_OPERATIONS) & (1 << 3),
            0,
            "READ is not a cluster operation"
        );
        assert_eq!(bits(GROUP_OPERATIONS), (1 << 3) | (1 << 6) | (1 << 8));
    }
}
