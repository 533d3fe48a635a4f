//! Kafka's ACL model: resource types, pattern types, operations, permissions (with their wire
//! codes), a binding (one ACL on one resource pattern) and a binding filter (DescribeAcls,
//! DeleteAcls), with Kafka's matching rules.
//!
//! # Invariants worth naming
//! - A stored [`AclBinding`] is concrete: no ANY/MATCH/UNKNOWN in it ([`AclBinding::validate`]).
//! - A CLUSTER binding names `kafka-cluster`, the one cluster resource.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A literal resource name that matches every resource of its type.
pub const WILDCARD_RESOURCE: &str = "*";
/// A principal or host that matches every principal or host.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
pub const WILDCARD_HOST: &str = "*";
/// Principals, hosts and resource names are at most this long (Kafka's strings are i16-sized).
pub const ACL_STRING_BYTES_MAX: usize = 1024;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The wire code Kafka uses.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),+ }
            }

            /// The value of a wire code; `None` for codes Kafka calls UNKNOWN (or has not got).
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(
    /// Kafka's ResourceType (`Any` only in filters).
    ResourceType { Any = 1, Topic = 2, Group = 3, Cluster = 4, TransactionalId = 5 }
);

wire_enum!(
    /// Kafka's PatternType (`Any`, `Match` only in filters).
    PatternType { Any = 1, Match = 2, Literal = 3, Prefixed = 4 }
);

wire_enum!(
    /// Kafka's AclOperation (`Any` only in filters); the code is also the operation's bit in
    /// the authorized-operations fields (KIP-430).
    Operation {
        Any = 1, All = 2, Read = 3, Write = 4, Create = 5, Delete = 6, Alter = 7, Describe = 8,
        ClusterAction = 9, DescribeConfigs = 10, AlterConfigs = 11, IdempotentWrite = 12,
        CreateTokens = 13, DescribeTokens = 14,
    }
);

wire_enum!(
    /// Kafka's AclPermissionType (`Any` only in filters).
    Permission { Any = 1, Deny = 2, Allow = 3 }
);

impl Operation {
    /// Operations an ALLOW of `self` also allows (Kafka: READ, WRITE, DELETE and ALTER imply
    /// DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS). A DENY implies nothing.
    pub fn allow_implies(self, wanted: Operation) -> bool {
        self == wanted
            || self == Operation::All
            || (wanted == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }
}

/// A concrete resource a request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
}

impl<'a> Resource<'a> {
    pub fn topic(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Topic,
            name,
        }
    }
    pub fn group(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::Group,
            name,
        }
    }
    pub fn transactional_id(name: &'a str) -> Self {
        Self {
            resource_type: ResourceType::TransactionalId,
            name,
        }
    }
    pub fn cluster() -> Resource<'static> {
        Resource {
            resource_type: ResourceType::Cluster,
            name: CLUSTER_NAME,
        }
    }
}

/// One ACL: who (principal, host) may or may not do what (operation) to which resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// Why an ACL can't be stored (Kafka answers INVALID_REQUEST with the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("unknown or filter-only {0}")]
    NotConcrete(&'static str),
    #[error("the resource name is empty")]
    EmptyName,
    #[error("the only valid name for the CLUSTER resource is {CLUSTER_NAME}")]
    ClusterName,
    #[error("principal {0:?} is not of the form Type:name")]
    Principal(String),
    #[error("a principal, host or resource name is longer than {ACL_STRING_BYTES_MAX} bytes")]
    TooLong,
    #[error("the host is empty")]
    EmptyHost,
}

impl AclBinding {
    /// Checks what Kafka checks before storing an ACL.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        if self.resource_type == ResourceType::Any {
            return Err(InvalidAcl::NotConcrete("resource type"));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(InvalidAcl::NotConcrete("pattern type"));
        }
        if self.operation == Operation::Any {
            return Err(InvalidAcl::NotConcrete("operation"));
        }
        if self.permission == Permission::Any {
            return Err(InvalidAcl::NotConcrete("permission type"));
        }
        if [&self.resource_name, &self.principal, &self.host]
            .iter()
            .any(|text| text.len() > ACL_STRING_BYTES_MAX)
        {
            return Err(InvalidAcl::TooLong);
        }
        if self.resource_name.is_empty() {
            return Err(InvalidAcl::EmptyName);
        }
        if self.host.is_empty() {
            return Err(InvalidAcl::EmptyHost);
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(InvalidAcl::ClusterName);
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
            _ => Err(InvalidAcl::Principal(self.principal.clone())),
        }
    }

    /// Whether this ACL's pattern covers `resource` (literal: same name or `*`; prefixed: the
    /// name starts with it).
    pub fn pattern_matches(&self, resource: Resource<'_>) -> bool {
        self.resource_type == resource.resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == resource.name || self.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => resource.name.starts_with(self.resource_name.as_str()),
                PatternType::Any | PatternType::Match => false,
            }
    }

    /// Whether this ACL speaks of `principal` connecting from `host` (the client's address as
    /// `IpAddr` writes it: IPv4 dotted, IPv6 compressed).
    pub fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD_HOST || self.names_ipv6_host(host))
    }

    /// An IPv6 ACL host written otherwise than `host` (Kafka's Java form `0:0:0:0:0:0:0:1` for
    /// `::1`, or `::ffff:a.b.c.d` for an IPv4 client) still names it. Only hosts with a `:` are
    /// parsed, so IPv4 ACLs cost nothing more.
    fn names_ipv6_host(&self, host: &str) -> bool {
        self.host.contains(':')
            && self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().to_string() == host)
    }
}

/// A DescribeAcls or DeleteAcls filter: `None` strings and `Any` codes match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// A filter with every field given as a wire code; `None` if a code is UNKNOWN (Kafka
    /// answers INVALID_REQUEST).
    #[allow(clippy::too_many_arguments)] // the seven fields of Kafka's filter, in its order
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Option<Self> {
        Some(Self {
            resource_type: ResourceType::from_code(resource_type)?,
            resource_name: resource_name.map(str::to_string),
            pattern_type: PatternType::from_code(pattern_type)?,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation: Operation::from_code(operation)?,
            permission: Permission::from_code(permission)?,
        })
    }

    /// Whether `acl` is one this filter selects. MATCH selects every ACL that affects the named
    /// resource (its literal, the literal `*` and prefixes of it); ANY selects literal and prefixed
    /// ACLs with exactly that name.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == ResourceType::Any || self.resource_type == acl.resource_type;
        type_ok
            && self.pattern_matches(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }

    fn pattern_matches(&self, acl: &AclBinding) -> bool {
        let name = self.resource_name.as_deref();
        match self.pattern_type {
            PatternType::Any => name.is_none_or(|n| n == acl.resource_name),
            PatternType::Literal | PatternType::Prefixed => {
                acl.pattern_type == self.pattern_type && name.is_none_or(|n| n == acl.resource_name)
            }
            PatternType::Match => match name {
                None => true,
                Some(n) => match acl.pattern_type {
                    PatternType::Literal => {
                        acl.resource_name == n || acl.resource_name == WILDCARD_RESOURCE
                    }
                    PatternType::Prefixed => n.starts_with(acl.resource_name.as_str()),
                    PatternType::Any | PatternType::Match => false,
                },
            },
        }
    }
}
