//! Answers segmentio/kafka-go's own test suite showed differing from Apache Kafka's, against the
//! real binary: a CreateTopics naming a topic twice, and a fetch of a topic deleted and created
//! again under the same name.

mod common;

use common::client::{now_ms, topic_name, Client};
use common::{fetch_from_start, start_broker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use ringtail_engine::batch::{encode_batch, ProducerSpec, RecordSpec};
use std::time::Duration;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const INVALID_REQUEST: i16 = 42;

fn creatable(name: &str) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(1)
        .with_replication_factor(1)
}

fn topic_exists(client: &mut Client, name: &str) -> bool {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(topic_name(name)))]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    response.topics[0].error_code == 0
}

#[test]
fn a_topic_named_twice_in_create_topics_is_refused_once_and_the_others_are_created() {
    // Kafka's ControllerApis.createTopics answers a duplicated name once with INVALID_REQUEST
    // ("Duplicate topic name.") and creates neither entry; kafka-go's TestConnCreateTopics
    // expects that error.
    let broker = start_broker(&["--auto-create-topics", "false"]);
    let mut client = Client::connect(&broker);
    let request = CreateTopicsRequest::default().with_topics(vec![
        creatable("one"),
        creatable("twice"),
        creatable("twice"),
    ]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request);
    let codes: Vec<(String, i16)> = response
        .topics
        .iter()
        .map(|topic| (topic.name.to_string(), topic.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("one".to_string(), 0),
            ("twice".to_string(), INVALID_REQUEST)
        ]
    );
    assert!(topic_exists(&mut client, "one"));
    assert!(!topic_exists(&mut client, "twice"));
}

#[test]
fn a_fetch_waiting_while_its_topic_is_created_again_is_not_a_storage_error() {
    // kafka-go's TestReader "topic being recreated will return an error": a reader at offset 1
    // long-polls while the topic is deleted and created again. Kafka answers that fetch with the
    // partition gone (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER) or, read again by name,
    // from the new empty log (OFFSET_OUT_OF_RANGE); never KAFKA_STORAGE_ERROR. The next fetch
    // reads the new log: OFFSET_OUT_OF_RANGE.
    let broker = start_broker(&[]);
    let mut admin = Client::connect(&broker);
    assert_eq!(admin.create_topic("again", 1, &[]), 0);
    let record = [RecordSpec {
        key: None,
        value: Some(b"v"),
        timestamp_delta: 0,
    }];
    let batch = encode_batch(now_ms(), &record, ProducerSpec::default());
    assert_eq!(admin.produce("again", 0, batch).error_code, 0);

    let mut reader = Client::connect(&broker);
    reader.set_read_timeout(Duration::from_secs(60));
    let mut waiting = fetch_from_start("again", 5_000, 1 << 20, 1 << 20);
    waiting.topics[0].partitions[0].fetch_offset = 1;
    reader.send(ApiKey::Fetch, 12, &waiting).unwrap();
    // The fetch parks at the log end; it is answered only by the deletion or its 5 s wait.
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![topic_name("again")])
        .with_timeout_ms(10_000);
    let deleted: DeleteTopicsResponse = admin.call(ApiKey::DeleteTopics, 5, &delete);
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(admin.create_topic("again", 1, &[]), 0);
    let answered: FetchResponse = reader.receive(ApiKey::Fetch, 12).unwrap();
    let error = answered.responses[0].partitions[0].error_code;
    assert!(
        [
            UNKNOWN_TOPIC_OR_PARTITION,
            NOT_LEADER_OR_FOLLOWER,
            OFFSET_OUT_OF_RANGE
        ]
        .contains(&error),
        "the waiting fetch was answered {error}"
    );

    for version in [11, 12] {
        let data = reader.fetch_partition("again", 0, 1, version);
        assert_eq!(
            data.error_code, OFFSET_OUT_OF_RANGE,
            "fetch v{version}: {data:?}"
        );
    }
}
