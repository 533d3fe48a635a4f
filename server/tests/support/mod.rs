//! A blocking client speaking kafka-protocol's types, on top of the shared broker fixture
//! (`common`), for the data-path protocol tests (`data_path.rs`, `delete_records.rs`).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::common::{free_port, request_frame, spawn_on, Broker};

/// Kills the broker (SIGKILL: no clean shutdown) and starts it again on the same data dir, on a
/// fresh port (the old one may be taken by a parallel test's broker meanwhile).
pub fn restart(broker: &mut Broker) {
    let _ = broker.child.kill();
    let _ = broker.child.wait();
    broker.port = free_port();
    broker.child = spawn_on(broker.port, broker.dir.path());
}

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(broker: &Broker) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Self {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a request; the response frame, or the read's error (the connection closed).
    pub fn send<Req: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<Bytes> {
        self.correlation_id += 1;
        let frame = request_frame(api, version, self.correlation_id, "data-path-test", request);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut response)?;
        Ok(Bytes::from(response))
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let mut response = self.send(api, version, request).unwrap();
        let header =
            ResponseHeader::decode(&mut response, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        let decoded = Resp::decode(&mut response, version).unwrap();
        assert!(
            !response.has_remaining(),
            "{api:?} v{version}: response fully consumed"
        );
        decoded
    }
}

pub fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

/// Creates a topic; its error code and id.
pub fn create_topic(
    client: &mut Client,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, uuid::Uuid) {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.to_string()))
                .with_value(Some(StrBytes::from_string(value.to_string())))
        })
        .collect();
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs)]);
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    (response.topics[0].error_code, response.topics[0].topic_id)
}
