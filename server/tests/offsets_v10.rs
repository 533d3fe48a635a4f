//! OffsetCommit v10 and OffsetFetch v10 (Kafka 4.1: topics by id) against the real binary over
//! loopback: the same offsets as v9 by name, UNKNOWN_TOPIC_ID for an id no topic has, a KIP-848
//! member's epoch checked, malformed frames closing only their connection.
#![forbid(unsafe_code)]

mod common;

use bytes::{BufMut, BytesMut};
use common::client::{str_bytes, topic_name, Client};
use common::{request_frame, scrape, start_broker};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::*;
use ringtail_server::protocol::offsets_v10::{
    OffsetCommitRequestV10, OffsetCommitResponseV10, OffsetFetchRequestV10, OffsetFetchResponseV10,
};
use uuid::Uuid;

const UNKNOWN_TOPIC_ID: i16 = 100;
const STALE_MEMBER_EPOCH: i16 = 113;
/// An id no topic of a fresh broker has (topic ids are random v4 uuids).
const NO_SUCH_TOPIC: Uuid = Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001);

/// A commit of `offsets` (partition, offset) on one topic named by id (its name left empty).
fn commit_by_id(
    group: &str,
    epoch: i32,
    topic_id: Uuid,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|&(partition, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(Some(str_bytes(&format!("at {offset}"))))
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(partitions)])
}

/// One group's OffsetFetch v10 answer for `topics` (id, partitions), or all its offsets.
fn fetch_v10(
    client: &mut Client,
    group: &str,
    member: Option<(&str, i32)>,
    topics: Option<&[(Uuid, Vec<i32>)]>,
) -> OffsetFetchResponseGroup {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|(topic_id, partitions)| {
                OffsetFetchRequestTopics::default()
                    .with_topic_id(*topic_id)
                    .with_partition_indexes(partitions.clone())
            })
            .collect()
    });
    let group = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_member_id(member.map(|(id, _)| str_bytes(id)))
        .with_member_epoch(member.map_or(-1, |(_, epoch)| epoch))
        .with_topics(topics);
    let request = OffsetFetchRequestV10(OffsetFetchRequest::default().with_groups(vec![group]));
    let response: OffsetFetchResponseV10 = client.call(ApiKey::OffsetFetch, 10, &request);
    assert_eq!(response.0.groups.len(), 1);
    response.0.groups.into_iter().next().unwrap()
}

/// (topic id, partition, offset, leader epoch, metadata, error) of every partition of a group.
fn rows(group: &OffsetFetchResponseGroup) -> Vec<(Uuid, i32, i64, i32, String, i16)> {
    group
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let metadata = p.metadata.as_ref().map_or("<null>", |m| m.as_str());
                (
                    topic.topic_id,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    metadata.to_string(),
                    p.error_code,
                )
            })
        })
        .collect()
}

#[test]
fn commits_by_id_read_back_by_id_and_by_name_and_unknown_ids_are_refused() {
    // A v10 commit lands where a v9 fetch by name finds it and vice versa; an id no topic has is
    // UNKNOWN_TOPIC_ID for its partitions only; /metrics counts the v10 requests served.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let (created, topic_id) = client.create_topic_with_id("by-id", 2, &[]);
    assert_eq!(created, 0);
    let mut commit = commit_by_id("g10", -1, topic_id, &[(0, 10), (1, 11)]);
    commit.topics.push(
        OffsetCommitRequestTopic::default()
            .with_topic_id(NO_SUCH_TOPIC)
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)]),
    );
    let committed: OffsetCommitResponseV10 =
        client.call(ApiKey::OffsetCommit, 10, &OffsetCommitRequestV10(commit));
    let answers: Vec<(Uuid, i32, i16)> = committed
        .0
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic_id, p.partition_index, p.error_code))
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            (topic_id, 0, 0),
            (topic_id, 1, 0),
            (NO_SUCH_TOPIC, 0, UNKNOWN_TOPIC_ID)
        ]
    );

    let wanted = [(topic_id, vec![0, 1]), (NO_SUCH_TOPIC, vec![0, 5])];
    let fetched = fetch_v10(&mut client, "g10", None, Some(&wanted));
    assert_eq!(fetched.error_code, 0);
    let no_offset = |partition| {
        (
            NO_SUCH_TOPIC,
            partition,
            -1,
            -1,
            String::new(),
            UNKNOWN_TOPIC_ID,
        )
    };
    assert_eq!(
        rows(&fetched),
        vec![
            (topic_id, 0, 10, 3, "at 10".to_string(), 0),
            (topic_id, 1, 11, 3, "at 11".to_string(), 0),
            no_offset(0),
            no_offset(5),
        ]
    );
    let all = fetch_v10(&mut client, "g10", None, None);
    assert_eq!(
        rows(&all),
        rows(&fetched)[..2].to_vec(),
        "null topics: all, by id"
    );

    // v9 by name sees the v10 commit; a v9 commit by name is seen by v10.
    let by_name =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("g10")))
            .with_topics(Some(vec![
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic_name("by-id"))
                    .with_partition_indexes(vec![0, 1]),
            ]))]);
    let v9: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &by_name);
    let v9_offsets: Vec<(String, i32, i64)> = v9.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    assert_eq!(
        v9_offsets,
        vec![("by-id".into(), 0, 10), ("by-id".into(), 1, 11)]
    );
    let mut v9_commit = commit_by_id("g10", -1, Uuid::nil(), &[(1, 99)]);
    v9_commit.topics[0].name = topic_name("by-id");
    let v9_committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &v9_commit);
    assert_eq!(v9_committed.topics[0].partitions[0].error_code, 0);
    let after = fetch_v10(&mut client, "g10", None, Some(&[(topic_id, vec![1])]));
    assert_eq!(
        rows(&after),
        vec![(topic_id, 1, 99, 3, "at 99".to_string(), 0)]
    );

    let served = |api: &str, version: i16| {
        let metric =
            format!("ringtail_requests_by_version_total{{api=\"{api}\",version=\"{version}\"}}");
        scrape(&broker, &metric)
    };
    assert_eq!(served("OffsetCommit", 10), 1);
    assert_eq!(served("OffsetFetch", 10), 3);
    assert_eq!(served("OffsetCommit", 9), 1);
}

#[test]
fn a_kip848_member_commits_and_fetches_by_id_with_its_epoch() {
    // A consumer-group member's epoch is checked at v10 as at v9: a stale one is
    // STALE_MEMBER_EPOCH, the current one commits, and a fetch with it reads the offset back.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let (created, topic_id) = client.create_topic_with_id("kip-v10", 1, &[]);
    assert_eq!(created, 0);
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(str_bytes("g848")))
        .with_member_id(str_bytes("member-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic_name("kip-v10")]))
        .with_topic_partitions(Some(vec![]));
    let joined: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    let epoch = joined.member_epoch;
    assert!(epoch > 0);

    let commit = |epoch: i32| {
        let request =
            commit_by_id("g848", epoch, topic_id, &[(0, 5)]).with_member_id(str_bytes("member-1"));
        OffsetCommitRequestV10(request)
    };
    let stale: OffsetCommitResponseV10 = client.call(ApiKey::OffsetCommit, 10, &commit(epoch - 1));
    assert_eq!(
        stale.0.topics[0].partitions[0].error_code,
        STALE_MEMBER_EPOCH
    );
    let fresh: OffsetCommitResponseV10 = client.call(ApiKey::OffsetCommit, 10, &commit(epoch));
    assert_eq!(fresh.0.topics[0].topic_id, topic_id);
    assert_eq!(fresh.0.topics[0].partitions[0].error_code, 0);

    let wanted = [(topic_id, vec![0])];
    let fetched = fetch_v10(
        &mut client,
        "g848",
        Some(("member-1", epoch)),
        Some(&wanted),
    );
    assert_eq!(fetched.error_code, 0);
    assert_eq!(
        rows(&fetched),
        vec![(topic_id, 0, 5, 3, "at 5".to_string(), 0)]
    );
    let stale = fetch_v10(
        &mut client,
        "g848",
        Some(("member-1", epoch - 1)),
        Some(&wanted),
    );
    assert_eq!(stale.error_code, STALE_MEMBER_EPOCH);
}

#[test]
fn malformed_v10_frames_close_their_connection_not_the_broker() {
    // Every cut of a valid v10 request body, and a topic count no frame could hold, is answered
    // by closing that connection (as for any API's garbage); the broker keeps serving.
    let broker = start_broker(&[]);
    let commit = OffsetCommitRequestV10(commit_by_id("g", -1, NO_SUCH_TOPIC, &[(0, 1)]));
    let whole = request_frame(ApiKey::OffsetCommit, 10, 1, "cutter", &commit);
    // Size prefix (4), api key, version, correlation id (8), client id "cutter" (2 + 6), header
    // tags (1): the body starts after 21 bytes.
    let body_start = 21;
    let mut broken: Vec<BytesMut> = [body_start + 1, body_start + 5, whole.len() - 1]
        .into_iter()
        .map(|cut| {
            let mut frame = BytesMut::from(&whole[..cut]);
            let size = i32::try_from(cut - 4).unwrap();
            frame[..4].copy_from_slice(&size.to_be_bytes());
            frame
        })
        .collect();
    let mut forged = BytesMut::from(&whole[..body_start]);
    forged.put_slice(&[0x02, b'g', 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]); // group, epoch, member "", no instance
    forged.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // topics: 2^31 claimed
    let size = i32::try_from(forged.len() - 4).unwrap();
    forged[..4].copy_from_slice(&size.to_be_bytes());
    broken.push(forged);
    for frame in broken {
        let mut victim = Client::connect(&broker);
        victim.send_raw(&frame).unwrap();
        assert!(
            victim.closed_by_broker(),
            "{} bytes: connection closed",
            frame.len()
        );
    }
    let mut other = Client::connect(&broker);
    let fine: OffsetCommitResponseV10 = other.call(ApiKey::OffsetCommit, 10, &commit);
    assert_eq!(fine.0.topics[0].partitions[0].error_code, UNKNOWN_TOPIC_ID);
}
