//! `--node-id` (Kafka's node.id): every answer names the configured id as the one broker, the
//! leader, replica, coordinator and controller, and requests naming a broker accept that id only.
//! Nothing stored records the id, so a restart under another id serves the same data.

mod common;

use common::client::{now_ms, str_bytes, topic_name, Client};
use common::{restart_with, start_broker};
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};

const INVALID_REQUEST: i16 = 42;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const RESOURCE_TYPE_BROKER: i8 = 4;

fn metadata(client: &mut Client, topic: &str) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(false);
    client.call(ApiKey::Metadata, 12, &request)
}

/// Every id a Metadata answer gives: the brokers, the controller, each partition's leader,
/// replicas and in-sync replicas.
fn assert_metadata_names(response: &MetadataResponse, id: i32) {
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].node_id, BrokerId(id));
    assert_eq!(response.controller_id, BrokerId(id));
    let partitions = &response.topics[0].partitions;
    assert_eq!(response.topics[0].error_code, 0);
    assert!(!partitions.is_empty());
    for partition in partitions {
        assert_eq!(partition.leader_id, BrokerId(id));
        assert_eq!(partition.replica_nodes, vec![BrokerId(id)]);
        assert_eq!(partition.isr_nodes, vec![BrokerId(id)]);
    }
}

fn describe_broker(
    client: &mut Client,
    name: &str,
) -> describe_configs_response::DescribeConfigsResult {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TYPE_BROKER)
            .with_resource_name(str_bytes(name)),
    ]);
    let response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, 4, &request);
    response.results[0].clone()
}

fn config_value(result: &describe_configs_response::DescribeConfigsResult, key: &str) -> String {
    let config = result
        .configs
        .iter()
        .find(|config| config.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    config.value.as_ref().unwrap().to_string()
}

fn reassign(client: &mut Client, topic: &str, replicas: &[i32]) -> i16 {
    let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
        alter_partition_reassignments_request::ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(0)
                    .with_replicas(Some(replicas.iter().copied().map(BrokerId).collect())),
            ]),
    ]);
    let response: AlterPartitionReassignmentsResponse =
        client.call(ApiKey::AlterPartitionReassignments, 0, &request);
    response.responses[0].partitions[0].error_code
}

#[test]
fn every_answer_names_the_configured_node_id() {
    let broker = start_broker(&["--node-id", "7"]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("t", 2, &[]), 0);
    assert_metadata_names(&metadata(&mut client, "t"), 7);

    let coordinator: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![str_bytes("g")]),
    );
    assert_eq!(coordinator.coordinators[0].error_code, 0);
    assert_eq!(coordinator.coordinators[0].node_id, BrokerId(7));
    let legacy: FindCoordinatorResponse = client.call(
        ApiKey::FindCoordinator,
        2,
        &FindCoordinatorRequest::default().with_key(str_bytes("g")),
    );
    assert_eq!(legacy.node_id, BrokerId(7));

    let cluster: DescribeClusterResponse = client.call(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    assert_eq!(cluster.controller_id, BrokerId(7));
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].broker_id, BrokerId(7));

    let described = describe_broker(&mut client, "7");
    assert_eq!(described.error_code, 0);
    assert_eq!(config_value(&described, "node.id"), "7");
    assert_eq!(config_value(&described, "broker.id"), "7");
    // Kafka's ConfigHelper refuses another broker's id with INVALID_REQUEST.
    assert_eq!(
        describe_broker(&mut client, "0").error_code,
        INVALID_REQUEST
    );

    let listed: ListConfigResourcesResponse = client.call(
        ApiKey::ListConfigResources,
        1,
        &ListConfigResourcesRequest::default().with_resource_types(vec![RESOURCE_TYPE_BROKER]),
    );
    let names: Vec<&str> = listed
        .config_resources
        .iter()
        .map(|resource| resource.resource_name.as_str())
        .collect();
    assert_eq!(names, ["7"]);

    assert_eq!(reassign(&mut client, "t", &[7]), 0);
    assert_eq!(reassign(&mut client, "t", &[0]), INVALID_REPLICA_ASSIGNMENT);
}

#[test]
fn the_default_node_id_is_zero_and_a_restart_may_change_it() {
    let mut broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("kept", 1, &[]), 0);
    assert_metadata_names(&metadata(&mut client, "kept"), 0);
    let records = [RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    }];
    let plain = ProducerSpec {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
    let written = client.produce("kept", 0, encode_batch(now_ms(), &records, plain));
    assert_eq!(written.error_code, 0);
    drop(client);

    // No file under the data dir records the id: the same topics and records under id 3.
    restart_with(&mut broker, &["--node-id", "3"]);
    let mut client = Client::connect(&broker);
    assert_metadata_names(&metadata(&mut client, "kept"), 3);
    assert!(!client.fetch_records("kept", 0, 0).is_empty());
    assert_eq!(describe_broker(&mut client, "3").error_code, 0);
    assert_eq!(
        describe_broker(&mut client, "0").error_code,
        INVALID_REQUEST
    );
}
