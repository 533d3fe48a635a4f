//! Kafka's authorized-operations bit fields (KIP-430), as Metadata, DescribeCluster and
//! DescribeTopicPartitions report them. Ringtail has no ACLs, so every client may do every
//! operation a resource supports: each field is the full set of that resource type.
#![forbid(unsafe_code)]

/// Kafka's AclOperation codes, each a bit of the field.
const READ: i32 = 3;
const WRITE: i32 = 4;
const CREATE: i32 = 5;
const DELETE: i32 = 6;
const ALTER: i32 = 7;
const DESCRIBE: i32 = 8;
const CLUSTER_ACTION: i32 = 9;
const DESCRIBE_CONFIGS: i32 = 10;
const ALTER_CONFIGS: i32 = 11;
const IDEMPOTENT_WRITE: i32 = 12;
const CREATE_TOKENS: i32 = 13;
const DESCRIBE_TOKENS: i32 = 14;

const fn bits(operations: &[i32]) -> i32 {
    let mut field = 0;
    let mut index = 0;
    while index < operations.len() {
        field |= 1 << operations[index];
        index += 1;
    }
    field
}

/// The value of a field the client did not ask for (Kafka's `Integer.MIN_VALUE`).
pub const NOT_REQUESTED: i32 = i32::MIN;

/// Every operation on the cluster resource.
pub const CLUSTER: i32 = bits(&[
    CREATE,
    ALTER,
    DESCRIBE,
    CLUSTER_ACTION,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
    IDEMPOTENT_WRITE,
    CREATE_TOKENS,
    DESCRIBE_TOKENS,
]);

/// Every operation on a topic.
pub const TOPIC: i32 = bits(&[
    READ,
    WRITE,
    CREATE,
    DELETE,
    ALTER,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    ALTER_CONFIGS,
]);

/// `field` when asked for, [`NOT_REQUESTED`] otherwise.
pub fn if_requested(requested: bool, field: i32) -> i32 {
    if requested {
        field
    } else {
        NOT_REQUESTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_kafkas_bits() {
        // The Java client decodes these bits into AclOperation sets: a wrong bit is a wrong set.
        assert_eq!(
            TOPIC, 0b1101_1111_1000,
            "READ..ALTER_CONFIGS without CLUSTER_ACTION"
        );
        assert_eq!(CLUSTER & (1 << READ), 0, "READ is not a cluster operation");
        assert_ne!(CLUSTER & (1 << IDEMPOTENT_WRITE), 0);
        assert_eq!(if_requested(false, TOPIC), i32::MIN);
    }
}
