//! The admin APIs a one-broker cluster answers, against the real binary: DescribeCluster,
//! DescribeTopicPartitions with its cursor, ElectLeaders, partition reassignments,
//! ListConfigResources, DescribeProducers, GetTelemetrySubscriptions, ApiVersions features.

mod common;

use common::client::{now_ms, str_bytes, topic_name, Client};
use common::start_broker;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_VERSION: i16 = 35;

#[test]
fn describe_cluster_names_the_one_broker_and_its_operations_when_asked() {
    // The Java AdminClient's describeCluster; authorized operations only when asked (KIP-430).
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let request = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(true)
        .with_endpoint_type(1);
    let response: DescribeClusterResponse = client.call(ApiKey::DescribeCluster, 2, &request);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].broker_id, BrokerId(0));
    assert_eq!(response.brokers[0].port, i32::from(broker.port));
    assert_eq!(response.controller_id, BrokerId(0));
    assert_ne!(response.cluster_authorized_operations, i32::MIN);
    let plain: DescribeClusterResponse = client.call(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(plain.cluster_authorized_operations, i32::MIN);
    let controllers: DescribeClusterResponse = client.call(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    );
    assert_eq!(controllers.error_code, MISMATCHED_ENDPOINT_TYPE);
}

fn describe_partitions(
    client: &mut Client,
    topics: &[&str],
    limit: i32,
    cursor: Option<Cursor>,
) -> DescribeTopicPartitionsResponse {
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|topic| TopicRequest::default().with_name(topic_name(topic)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor);
    client.call(ApiKey::DescribeTopicPartitions, 0, &request)
}

#[test]
fn describe_topic_partitions_pages_through_every_partition_with_its_cursor() {
    // KIP-966: limit 2 over topics of 3, 2 and 1 partitions gives every partition exactly once.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    for (topic, partitions) in [("a", 3), ("b", 2), ("c", 1)] {
        assert_eq!(client.create_topic(topic, partitions, &[]), 0);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    for _page in 0..10 {
        let response = describe_partitions(&mut client, &["c", "a", "b"], 2, cursor);
        let count: usize = response.topics.iter().map(|t| t.partitions.len()).sum();
        assert!(count <= 2, "the limit holds");
        for topic in &response.topics {
            assert_eq!(topic.error_code, 0);
            assert!(!topic.topic_id.is_nil());
            for partition in &topic.partitions {
                assert_eq!(partition.leader_id, BrokerId(0));
                seen.push((
                    topic.name.clone().unwrap().to_string(),
                    partition.partition_index,
                ));
            }
        }
        cursor = response.next_cursor.map(|next| {
            Cursor::default()
                .with_topic_name(next.topic_name)
                .with_partition_index(next.partition_index)
        });
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<(String, i32)> = [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0)]
        .iter()
        .map(|(topic, partition)| (topic.to_string(), *partition))
        .collect();
    assert_eq!(seen, expected);
    // All topics when none are named; an unknown one is an error entry; a foreign cursor refused.
    let all = describe_partitions(&mut client, &[], 100, None);
    let names: Vec<String> = all
        .topics
        .iter()
        .filter(|topic| !topic.is_internal)
        .map(|topic| topic.name.clone().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let unknown = describe_partitions(&mut client, &["a", "nope"], 100, None);
    assert_eq!(unknown.topics[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let foreign = Cursor::default().with_topic_name(topic_name("zzz"));
    let refused = describe_partitions(&mut client, &["a"], 100, Some(foreign));
    assert_eq!(refused.topics[0].error_code, INVALID_REQUEST);
}

#[test]
fn elect_leaders_and_reassignments_have_nothing_to_do_on_one_broker() {
    // kafka-leader-election and kafka-reassign-partitions against a single replica.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("solo", 2, &[]), 0);
    let request = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
        elect_leaders_request::TopicPartitions::default()
            .with_topic(topic_name("solo"))
            .with_partitions(vec![0, 7]),
    ]));
    let elected: ElectLeadersResponse = client.call(ApiKey::ElectLeaders, 2, &request);
    let results = &elected.replica_election_results[0].partition_result;
    assert_eq!(results[0].error_code, ELECTION_NOT_NEEDED);
    assert_eq!(results[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let all: ElectLeadersResponse = client.call(
        ApiKey::ElectLeaders,
        2,
        &ElectLeadersRequest::default().with_topic_partitions(None),
    );
    assert!(all.replica_election_results.is_empty());

    let reassign = |replicas: Option<Vec<i32>>, partition: i32| {
        AlterPartitionReassignmentsRequest::default().with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(topic_name("solo"))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(replicas.map(|ids| ids.into_iter().map(BrokerId).collect())),
                ]),
        ])
    };
    for (replicas, partition, expected) in [
        (Some(vec![0]), 0, 0),
        (Some(vec![1]), 0, INVALID_REPLICA_ASSIGNMENT),
        (Some(vec![0, 1]), 1, INVALID_REPLICA_ASSIGNMENT),
        (None, 0, NO_REASSIGNMENT_IN_PROGRESS),
        (Some(vec![0]), 9, UNKNOWN_TOPIC_OR_PARTITION),
    ] {
        let response: AlterPartitionReassignmentsResponse = client.call(
            ApiKey::AlterPartitionReassignments,
            1,
            &reassign(replicas.clone(), partition),
        );
        assert_eq!(
            response.responses[0].partitions[0].error_code, expected,
            "{replicas:?}"
        );
    }
    let listed: ListPartitionReassignmentsResponse = client.call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_topics(None),
    );
    assert_eq!(listed.error_code, 0);
    assert!(listed.topics.is_empty());
}

#[test]
fn list_config_resources_lists_topics_and_the_broker_by_type() {
    // ListConfigResources v1 filters by type; a type it cannot list is refused.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("listed", 1, &[]), 0);
    let list = |client: &mut Client, types: Vec<i8>| -> ListConfigResourcesResponse {
        client.call(
            ApiKey::ListConfigResources,
            1,
            &ListConfigResourcesRequest::default().with_resource_types(types),
        )
    };
    let everything = list(&mut client, vec![]);
    let names: Vec<(String, i8)> = everything
        .config_resources
        .iter()
        .map(|resource| (resource.resource_name.to_string(), resource.resource_type))
        .collect();
    assert!(names.contains(&("listed".to_string(), 2)));
    assert!(names.contains(&("0".to_string(), 4)));
    let topics = list(&mut client, vec![2]);
    assert!(topics
        .config_resources
        .iter()
        .all(|resource| resource.resource_type == 2));
    assert_eq!(list(&mut client, vec![8]).error_code, UNSUPPORTED_VERSION);
    let v0: ListConfigResourcesResponse = client.call(
        ApiKey::ListConfigResources,
        0,
        &ListConfigResourcesRequest::default(),
    );
    assert!(
        v0.config_resources.is_empty(),
        "no client-metrics subscriptions"
    );
}

#[test]
fn describe_producers_lists_the_idempotent_producers_of_a_partition() {
    // kafka-transactions --describe-producers: producer id, epoch and last sequence per partition.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("idem", 1, &[]), 0);
    let record = || RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    };
    let records = [record(), record(), record()];
    let producer = ProducerSpec {
        producer_id: 42,
        producer_epoch: 1,
        base_sequence: 0,
    };
    assert_eq!(
        client
            .produce("idem", 0, encode_batch(now_ms(), &records, producer))
            .error_code,
        0
    );
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name("idem"))
            .with_partition_indexes(vec![0, 3]),
    ]);
    let response: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &request);
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let active = &partitions[0].active_producers;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].producer_id, ProducerId(42));
    assert_eq!(active[0].producer_epoch, 1);
    assert_eq!(active[0].last_sequence, 2);
    assert_eq!(partitions[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn api_versions_v3_reports_features_and_unadvertised_telemetry_is_answered_empty() {
    // A 4.x client reads finalized features; KIP-714 clients get an instance id and no metrics.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let versions: ApiVersionsResponse = client.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(str_bytes("admin-test"))
            .with_client_software_version(str_bytes("1")),
    );
    let metadata_version = versions
        .finalized_features
        .iter()
        .find(|feature| feature.name.as_str() == "metadata.version")
        .expect("metadata.version finalized");
    assert_eq!(metadata_version.max_version_level, 27);
    assert!(versions
        .finalized_features
        .iter()
        .all(|feature| feature.name.as_str() != "transaction.version"));
    for api in [
        ApiKey::DescribeCluster,
        ApiKey::DescribeTopicPartitions,
        ApiKey::AlterConfigs,
    ] {
        assert!(
            versions
                .api_keys
                .iter()
                .any(|key| key.api_key == api as i16),
            "{api:?}"
        );
    }
    // Not advertised (as Kafka without a telemetry receiver), but answered if asked.
    assert!(
        versions
            .api_keys
            .iter()
            .all(|key| key.api_key != ApiKey::GetTelemetrySubscriptions as i16),
        "GetTelemetrySubscriptions is not advertised"
    );
    let telemetry: GetTelemetrySubscriptionsResponse = client.call(
        ApiKey::GetTelemetrySubscriptions,
        0,
        &GetTelemetrySubscriptionsRequest::default(),
    );
    assert_eq!(telemetry.error_code, 0);
    assert!(!telemetry.client_instance_id.is_nil());
    assert!(telemetry.requested_metrics.is_empty());
    assert!(telemetry.push_interval_ms > 0);
}

#[test]
fn metadata_reports_authorized_operations_only_when_asked() {
    // librdkafka and the Java client ask Metadata for them (KIP-430); no ACLs: all allowed.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("ops", 1, &[]), 0);
    let request = |topics: bool, cluster: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(topic_name("ops")))]))
            .with_include_topic_authorized_operations(topics)
            .with_include_cluster_authorized_operations(cluster)
    };
    let asked: MetadataResponse = client.call(ApiKey::Metadata, 10, &request(true, true));
    let operations = asked.topics[0].topic_authorized_operations;
    assert_ne!(operations, i32::MIN);
    assert_ne!(operations & (1 << 3), 0, "READ");
    assert_ne!(asked.cluster_authorized_operations, i32::MIN);
    let plain: MetadataResponse = client.call(ApiKey::Metadata, 10, &request(false, false));
    assert_eq!(plain.topics[0].topic_authorized_operations, i32::MIN);
    assert_eq!(plain.cluster_authorized_operations, i32::MIN);
}
