//! A `ringtail` broker on loopback and a blocking client speaking kafka-protocol's types, shared
//! by the data-path protocol tests (`data_path.rs`, `delete_records.rs`).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub struct Broker {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &Path, port: u16, extra: &[&str]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir)
        .args(["--shards", "2"])
        .args(extra)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Broker {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn(dir.path(), port, extra);
        Self { child, port, dir }
    }

    /// Stops the broker (SIGKILL: no clean shutdown) and starts it again on the same data dir.
    pub fn restart(&mut self, extra: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port = free_port();
        self.child = spawn(self.dir.path(), self.port, extra);
    }
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
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("data-path-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
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
