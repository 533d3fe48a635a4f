//! The authorizer against Kafka's rules, and the store across a reload.

use std::net::{IpAddr, Ipv4Addr};

use super::model::*;
use super::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: "*".to_string(),
        operation,
        permission,
    }
}

fn allow_topic(name: &str, pattern: PatternType, principal: &str, op: Operation) -> AclBinding {
    acl(
        ResourceType::Topic,
        name,
        pattern,
        principal,
        op,
        Permission::Allow,
    )
}

fn authorizer(config: AclConfig) -> (tempfile::TempDir, Authorizer) {
    let dir = tempfile::tempdir().unwrap();
    let authorizer = Authorizer::load(config, dir.path()).unwrap();
    (dir, authorizer)
}

#[test]
fn without_acls_only_anonymous_is_allowed_by_default() {
    // The README's PLAINTEXT setup keeps working; an authenticated principal gets Kafka's default.
    let (_dir, auth) = authorizer(AclConfig::default());
    let topic = Resource::topic("t");
    assert!(auth.allows(&Identity::anonymous(LOCAL), Operation::Write, topic));
    assert!(!auth.allows(&Identity::new("User:alice", LOCAL), Operation::Write, topic));
    let (_dir, open) = authorizer(AclConfig {
        allow_everyone_if_no_acl_found: Some(true),
        ..AclConfig::default()
    });
    assert!(open.allows(&Identity::new("User:alice", LOCAL), Operation::Write, topic));
    let (_dir, closed) = authorizer(AclConfig {
        allow_everyone_if_no_acl_found: Some(false),
        ..AclConfig::default()
    });
    assert!(!closed.allows(&Identity::anonymous(LOCAL), Operation::Write, topic));
}

#[test]
fn deny_wins_and_implied_operations_follow_kafka() {
    // READ implies DESCRIBE; a DENY of READ does not deny DESCRIBE; a DENY beats any ALLOW.
    let (_dir, auth) = authorizer(AclConfig::default());
    let alice = Identity::new("User:alice", LOCAL);
    auth.create(vec![
        allow_topic(
            "orders",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
        ),
        allow_topic(
            "*",
            PatternType::Literal,
            "User:alice",
            Operation::AlterConfigs,
        ),
        acl(
            ResourceType::Topic,
            "orders",
            PatternType::Literal,
            "User:*",
            Operation::Write,
            Permission::Deny,
        ),
        allow_topic("orders", PatternType::Literal, "User:alice", Operation::All),
    ])
    .unwrap();
    let orders = Resource::topic("orders");
    assert!(auth.allows(&alice, Operation::Read, orders));
    assert!(auth.allows(&alice, Operation::Describe, orders));
    assert!(
        !auth.allows(&alice, Operation::Write, orders),
        "deny wins over ALL"
    );
    assert!(auth.allows(&alice, Operation::DescribeConfigs, Resource::topic("other")));
    assert!(!auth.allows(&alice, Operation::Read, Resource::topic("other")));
    let bob = Identity::new("User:bob", LOCAL);
    assert!(
        !auth.allows(&bob, Operation::Describe, orders),
        "covered by ACLs, none for bob"
    );
    assert!(
        !auth.allows(&bob, Operation::Read, Resource::group("g")),
        "no ACL: authenticated denied"
    );
}

#[test]
fn prefixed_patterns_hosts_and_super_users() {
    // A prefix covers names starting with it; a host ACL binds only that address.
    let config = AclConfig {
        super_users: AclConfig::parse_super_users("User:admin; User:ops").unwrap(),
        allow_everyone_if_no_acl_found: None,
    };
    let (_dir, auth) = authorizer(config);
    let mut on_host = allow_topic("pay", PatternType::Prefixed, "User:alice", Operation::Write);
    on_host.host = "10.0.0.1".to_string();
    auth.create(vec![
        allow_topic("log", PatternType::Prefixed, "User:alice", Operation::Write),
        on_host,
    ])
    .unwrap();
    let alice = Identity::new("User:alice", LOCAL);
    assert!(auth.allows(&alice, Operation::Write, Resource::topic("logs-2026")));
    assert!(!auth.allows(&alice, Operation::Write, Resource::topic("lo")));
    assert!(!auth.allows(&alice, Operation::Write, Resource::topic("payments")));
    let remote = Identity::new("User:alice", "10.0.0.1".parse().unwrap());
    assert!(auth.allows(&remote, Operation::Write, Resource::topic("payments")));
    let ops = Identity::new("User:ops", LOCAL);
    assert!(auth.allows(&ops, Operation::Alter, Resource::cluster()));
    assert!(AclConfig::parse_super_users("admin").is_err());
}

#[test]
fn acls_survive_a_reload_and_deletes_report_what_they_removed() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authorizer::load(AclConfig::default(), dir.path()).unwrap();
    auth.create(vec![
        allow_topic("a", PatternType::Literal, "User:alice", Operation::Read),
        allow_topic("a", PatternType::Prefixed, "User:alice", Operation::Read),
        acl(
            ResourceType::Group,
            "g",
            PatternType::Literal,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        ),
    ])
    .unwrap();
    let reloaded = Authorizer::load(AclConfig::default(), dir.path()).unwrap();
    let all = AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap();
    assert_eq!(reloaded.describe(&all).len(), 3);
    let literal_a = AclFilter::from_wire(2, Some("a"), 3, None, None, 1, 1).unwrap();
    let removed = reloaded.delete(&[literal_a]).unwrap();
    assert_eq!(removed[0].len(), 1);
    assert_eq!(removed[0][0].pattern_type, PatternType::Literal);
    let again = Authorizer::load(AclConfig::default(), dir.path()).unwrap();
    assert_eq!(again.describe(&all).len(), 2);
}

#[test]
fn match_filters_select_what_affects_a_resource() {
    // MATCH on "orders" finds the literal, the literal "*" and prefixes; ANY only the exact name.
    let acls = [
        allow_topic("orders", PatternType::Literal, "User:a", Operation::Read),
        allow_topic("*", PatternType::Literal, "User:a", Operation::Read),
        allow_topic("ord", PatternType::Prefixed, "User:a", Operation::Read),
        allow_topic("x", PatternType::Prefixed, "User:a", Operation::Read),
    ];
    let matching = AclFilter::from_wire(2, Some("orders"), 2, None, None, 1, 1).unwrap();
    assert_eq!(acls.iter().filter(|a| matching.matches(a)).count(), 3);
    let any = AclFilter::from_wire(2, Some("orders"), 1, None, None, 1, 1).unwrap();
    assert_eq!(acls.iter().filter(|a| any.matches(a)).count(), 1);
    assert!(
        AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_none(),
        "UNKNOWN type"
    );
}

#[test]
fn invalid_acls_are_refused_and_a_corrupt_file_is_named() {
    let mut bad = acl(
        ResourceType::Cluster,
        "x",
        PatternType::Literal,
        "User:a",
        Operation::Alter,
        Permission::Allow,
    );
    assert_eq!(bad.validate(), Err(InvalidAcl::ClusterName));
    bad.resource_name = CLUSTER_NAME.to_string();
    bad.principal = "alice".to_string();
    assert!(matches!(bad.validate(), Err(InvalidAcl::Principal(_))));
    bad.principal = "User:a".to_string();
    bad.pattern_type = PatternType::Match;
    assert!(bad.validate().is_err());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(store::FILE_NAME),
        b"{\"version\": 1, \"acls\": [{}]}",
    )
    .unwrap();
    let err = Authorizer::load(AclConfig::default(), dir.path())
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a valid ACL store"), "{err}");
}

#[test]
fn allows_any_grants_write_on_some_topic_unless_wildcard_denied() {
    // InitProducerId without a transactional id: WRITE on any topic is enough (KIP-679).
    let (_dir, auth) = authorizer(AclConfig::default());
    let alice = Identity::new("User:alice", LOCAL);
    assert!(!auth.allows_any(&alice, Operation::Write, ResourceType::Topic));
    auth.create(vec![allow_topic(
        "t",
        PatternType::Prefixed,
        "User:alice",
        Operation::Write,
    )])
    .unwrap();
    assert!(auth.allows_any(&alice, Operation::Write, ResourceType::Topic));
    auth.create(vec![acl(
        ResourceType::Topic,
        "*",
        PatternType::Literal,
        "User:alice",
        Operation::Write,
        Permission::Deny,
    )])
    .unwrap();
    assert!(!auth.allows_any(&alice, Operation::Write, ResourceType::Topic));
}

#[test]
fn an_ipv6_host_matches_however_the_acl_writes_it() {
    // Kafka (Java) writes a client's IPv6 address in full (`0:0:0:0:0:0:0:1`), so ACLs made for
    // Kafka name it that way; the client's address here is Rust's compressed `::1`. A DENY in
    // either form must stop the client, or one carried over from Kafka is silently bypassed.
    let (_dir, auth) = authorizer(AclConfig::default());
    let host: IpAddr = "::1".parse().unwrap();
    let alice = Identity::new("User:alice", host);
    let mut deny = acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
        Permission::Deny,
    );
    deny.host = "0:0:0:0:0:0:0:1".to_string();
    auth.create(vec![
        allow_topic("orders", PatternType::Literal, "User:alice", Operation::All),
        deny,
    ])
    .unwrap();
    assert!(!auth.allows(&alice, Operation::Read, Resource::topic("orders")));
    assert!(auth.allows(&alice, Operation::Write, Resource::topic("orders")));
    let elsewhere = Identity::new("User:alice", "::2".parse().unwrap());
    assert!(auth.allows(&elsewhere, Operation::Read, Resource::topic("orders")));
}
