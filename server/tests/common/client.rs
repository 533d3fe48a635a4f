//! The integration tests' Kafka client: a blocking loopback connection that sends
//! `kafka-protocol` requests and decodes their responses, checking correlation ids and that each
//! response is consumed whole, plus the few requests most tests need (create a topic, produce,
//! fetch). Tests that must misbehave use the raw frame calls.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{request_frame, Broker};

/// How long a test waits for one response before it fails (a hang is a failure, not a wait).
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The client id every test request carries.
const CLIENT_ID: &str = "ringtail-test";

pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
    client_id: &'static str,
    /// The transactional id `produce` names (as a transactional producer's Produce does): the
    /// last one `common::txn::init` got a producer for on this connection.
    pub transactional_id: Option<String>,
}

impl Client {
    pub fn connect(broker: &Broker) -> Self {
        Self::connect_port(broker.port)
    }

    /// A connection to any loopback port (a second listener, a restarted broker).
    pub fn connect_port(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Self {
            stream,
            correlation_id: 0,
            client_id: CLIENT_ID,
            transactional_id: None,
        }
    }

    /// The same client sending `client_id` in its request headers (quotas tell clients apart
    /// by it).
    pub fn with_client_id(mut self, client_id: &'static str) -> Self {
        self.client_id = client_id;
        self
    }

    /// Changes how long one read may wait.
    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }

    /// Writes bytes as they are: a hand-made (or deliberately broken) frame.
    pub fn send_raw(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(frame)
    }

    /// Reads one size-prefixed frame; its body, or the read's error (closed, timed out).
    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = usize::try_from(i32::from_be_bytes(size)).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    /// Sends a request with the next correlation id, without waiting for its answer.
    pub fn send<Req: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<()> {
        self.correlation_id += 1;
        let frame = request_frame(api, version, self.correlation_id, self.client_id, request);
        self.stream.write_all(&frame)
    }

    /// Reads the answer to the last request sent.
    pub fn receive<Resp: Decodable>(&mut self, api: ApiKey, version: i16) -> std::io::Result<Resp> {
        let body = self.read_frame()?;
        Ok(self.decode(api, version, body))
    }

    /// Reads the rest of the answer to the last request sent, whose first bytes (`started`,
    /// size prefix included) were already read with [`Client::arrived_so_far`].
    pub fn receive_after<Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        started: Vec<u8>,
    ) -> Resp {
        let mut frame = started;
        if frame.len() < 4 {
            let mut rest = vec![0u8; 4 - frame.len()];
            self.stream.read_exact(&mut rest).unwrap();
            frame.extend_from_slice(&rest);
        }
        let size = usize::try_from(i32::from_be_bytes(frame[..4].try_into().unwrap())).unwrap();
        let mut rest = vec![0u8; 4 + size - frame.len()];
        self.stream.read_exact(&mut rest).unwrap();
        frame.extend_from_slice(&rest);
        self.decode(api, version, Bytes::from(frame).slice(4..))
    }

    fn decode<Resp: Decodable>(&self, api: ApiKey, version: i16, mut body: Bytes) -> Resp {
        let header =
            ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(
            header.correlation_id, self.correlation_id,
            "{api:?}: answer to another request"
        );
        let decoded = Resp::decode(&mut body, version).unwrap();
        assert!(
            !body.has_remaining(),
            "{api:?} v{version}: response fully consumed"
        );
        decoded
    }

    /// A request and its answer, or the I/O error that stopped it (the broker closed).
    pub fn try_call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> std::io::Result<Resp> {
        self.send(api, version, request)?;
        self.receive(api, version)
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.try_call(api, version, request)
            .unwrap_or_else(|error| panic!("{api:?} v{version}: {error}"))
    }

    /// True once the broker has closed the connection (end of file or reset); false if it is
    /// still open when the read timeout passes.
    pub fn closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(got) => got == 0,
            // The read timeout: still open. A reset is a close.
            Err(err) => !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    /// Whatever bytes have arrived, without waiting for more.
    pub fn arrived_so_far(&mut self) -> Vec<u8> {
        self.stream.set_nonblocking(true).unwrap();
        let mut arrived = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the broker closed the connection"),
                Ok(count) => arrived.extend_from_slice(&chunk[..count]),
                Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                Err(error) => panic!("reading: {error}"),
            }
        }
        self.stream.set_nonblocking(false).unwrap();
        arrived
    }

    /// CreateTopics v7 of one topic; its error code and topic id.
    pub fn create_topic_with_id(
        &mut self,
        topic: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> (i16, uuid::Uuid) {
        let configs = configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(str_bytes(key))
                    .with_value(Some(str_bytes(value)))
            })
            .collect();
        let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs)]);
        let response: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &request);
        (response.topics[0].error_code, response.topics[0].topic_id)
    }

    /// CreateTopics v7 of one topic; its error code.
    pub fn create_topic(&mut self, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
        self.create_topic_with_id(topic, partitions, configs).0
    }

    /// Produce v9 (acks=all) of one record set to one partition, naming the connection's
    /// transactional id if it has one.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: impl Into<Bytes>,
    ) -> produce_response::PartitionProduceResponse {
        let transactional_id = self
            .transactional_id
            .as_deref()
            .map(|id| TransactionalId(str_bytes(id)));
        let request = ProduceRequest::default()
            .with_transactional_id(transactional_id)
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records.into()))])]);
        let response: ProduceResponse = self.call(ApiKey::Produce, 9, &request);
        response.responses[0].partition_responses[0].clone()
    }

    /// Fetch (at `version`) of one partition from `offset`: that partition's answer.
    pub fn fetch_partition(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        version: i16,
    ) -> fetch_response::PartitionData {
        let request = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(16 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let response: FetchResponse = self.call(ApiKey::Fetch, version, &request);
        response.responses[0].partitions[0].clone()
    }

    /// Fetch v12 of one partition from `offset`: its record bytes (the fetch must succeed).
    pub fn fetch_records(&mut self, topic: &str, partition: i32, offset: i64) -> Bytes {
        let data = self.fetch_partition(topic, partition, offset, 12);
        assert_eq!(data.error_code, 0, "fetch error");
        data.records.unwrap_or_default()
    }
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

pub fn topic_name(text: &str) -> TopicName {
    TopicName(str_bytes(text))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}
