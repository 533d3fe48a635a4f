//! `ringtail groups`: the operator's view of consumer groups, printed the way
//! `kafka-consumer-groups.sh --describe` does (group, topic, partition, committed offset, log end,
//! lag, owning member). A small blocking Kafka client over the broker's own protocol; it runs in
//! the CLI process, never on a shard.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub(crate) struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

/// A small blocking Kafka client (one connection, one request at a time), shared by the CLI tools.
impl Client {
    pub(crate) fn connect(bootstrap: &str) -> Result<Self> {
        let stream =
            TcpStream::connect(bootstrap).with_context(|| format!("connecting to {bootstrap}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            stream,
            correlation_id: 0,
        })
    }

    pub(crate) fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("ringtail-groups")));
        let mut body = BytesMut::new();
        header.encode(&mut body, api.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut response = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        self.stream.read_exact(&mut response)?;
        let mut response = Bytes::from(response);
        ResponseHeader::decode(&mut response, api.response_header_version(version))?;
        Resp::decode(&mut response, version)
    }
}

/// One output row.
struct Row {
    group: String,
    topic: String,
    partition: i32,
    committed: i64,
    log_end: i64,
    member: String,
}

/// Prints every group (or `only`), one row per committed or assigned partition.
pub fn run(bootstrap: &str, only: Option<&str>) -> Result<()> {
    let mut client = Client::connect(bootstrap)?;
    let listed: ListGroupsResponse =
        client.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())?;
    let mut groups: Vec<(String, String, String)> = listed
        .groups
        .iter()
        .map(|group| {
            (
                group.group_id.to_string(),
                group.group_state.to_string(),
                group.group_type.to_string(),
            )
        })
        .filter(|(group, _, _)| only.is_none_or(|wanted| wanted == group))
        .collect();
    groups.sort();
    if let Some(wanted) = only {
        if groups.is_empty() {
            bail!("group {wanted} not found");
        }
    }
    println!(
        "{:<28} {:<24} {:>9} {:>15} {:>15} {:>8}  {:<14} {:<9} CONSUMER-ID",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "STATE", "TYPE"
    );
    for (group, state, group_type) in groups {
        for row in describe(&mut client, &group)? {
            let lag = if row.committed >= 0 {
                (row.log_end - row.committed).max(0).to_string()
            } else {
                "-".to_string()
            };
            let committed = if row.committed >= 0 {
                row.committed.to_string()
            } else {
                "-".to_string()
            };
            println!(
                "{:<28} {:<24} {:>9} {:>15} {:>15} {:>8}  {:<14} {:<9} {}",
                row.group,
                row.topic,
                row.partition,
                committed,
                row.log_end,
                lag,
                state,
                group_type,
                if row.member.is_empty() {
                    "-"
                } else {
                    &row.member
                }
            );
        }
    }
    Ok(())
}

fn describe(client: &mut Client, group: &str) -> Result<Vec<Row>> {
    let described: DescribeGroupsResponse = client.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    )?;
    let mut owners: Vec<(String, i32, String)> = Vec::new();
    for member in described.groups.iter().flat_map(|g| g.members.iter()) {
        let mut assignment = member.member_assignment.clone();
        if assignment.remaining() < 2 {
            continue;
        }
        let version = assignment.get_i16();
        if let Ok(decoded) =
            ConsumerProtocolAssignment::decode(&mut assignment, version.clamp(0, 3))
        {
            for topic in decoded.assigned_partitions {
                for partition in topic.partitions {
                    owners.push((
                        topic.topic.to_string(),
                        partition,
                        member.member_id.to_string(),
                    ));
                }
            }
        }
    }
    let fetched: OffsetFetchResponse = client.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            // Null asks for every committed partition (an empty list would ask for none).
            .with_topics(None)]),
    )?;
    let mut rows: Vec<Row> = Vec::new();
    for topic in fetched.groups.iter().flat_map(|g| g.topics.iter()) {
        for partition in &topic.partitions {
            rows.push(Row {
                group: group.to_string(),
                topic: topic.name.to_string(),
                partition: partition.partition_index,
                committed: partition.committed_offset,
                log_end: -1,
                member: String::new(),
            });
        }
    }
    for (topic, partition, _) in &owners {
        if !rows
            .iter()
            .any(|row| row.topic == *topic && row.partition == *partition)
        {
            rows.push(Row {
                group: group.to_string(),
                topic: topic.clone(),
                partition: *partition,
                committed: -1,
                log_end: -1,
                member: String::new(),
            });
        }
    }
    for row in &mut rows {
        row.member = owners
            .iter()
            .find(|(t, p, _)| *t == row.topic && *p == row.partition)
            .map(|(_, _, m)| m.clone())
            .unwrap_or_default();
        let offsets: ListOffsetsResponse = client.call(
            ApiKey::ListOffsets,
            6,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(row.topic.clone())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(row.partition)
                        .with_timestamp(-1)])]),
        )?;
        row.log_end = offsets
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(-1, |p| p.offset);
    }
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(rows)
}
