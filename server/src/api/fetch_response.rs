//! Hand-written Fetch response framing for zero-copy sends.
//!
//! Record bytes go from segment files to the socket with splice, so they are never in memory to
//! build a `kafka_protocol` `FetchResponse` around. [`encode_fetch_response`] writes everything
//! else of the frame and leaves [`FramePart::Records`] holes where the caller sends each
//! partition's records. The field order and version conditions follow the generated
//! `FetchResponse` encoder of kafka-protocol 0.18 (Kafka's `FetchResponse.json`).
#![forbid(unsafe_code)]

use std::ops::{Range, RangeInclusive};

use bytes::{BufMut, Bytes, BytesMut};

/// Fetch versions [`encode_fetch_response`] can frame. Versions 0-3 are gone from Kafka 4 and
/// from kafka-protocol; 17 and 18 changed only the request, their response is version 16's.
pub const FETCH_VERSIONS: RangeInclusive<i16> = 4..=18;

/// Fetch switched to compact encodings and tagged fields (KIP-482) at this version.
const FIRST_FLEXIBLE_VERSION: i16 = 12;

/// Topics are identified by id instead of by name from this version (KIP-516).
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// One partition of a Fetch response; its records follow in a [`FramePart::Records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Aborted transactions of the returned range, as (producer id, first offset): filled for
    /// read_committed fetches only.
    pub aborted_transactions: Vec<(i64, i64)>,
    /// How many record bytes the caller sends for this partition (0: an empty record set).
    pub records_bytes: u64,
}

/// One topic of a Fetch response: `name` is sent up to version 12, `topic_id` from 13.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTopicOut {
    pub name: String,
    pub topic_id: [u8; 16],
    pub partitions: Vec<FetchPartitionOut>,
}

/// A Fetch response without its record bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponseOut {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<FetchTopicOut>,
}

/// A piece of a response frame, to be written to the socket in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramePart {
    /// Bytes to write as they are.
    Inline(Bytes),
    /// `records_bytes` bytes of `topics[topic].partitions[partition]`, sent by the caller. Only
    /// partitions with `records_bytes > 0` get a part.
    Records { topic: usize, partition: usize },
}

/// Frames a Fetch response of `version` answering `correlation_id`: the 4-byte size (counting
/// the record bytes too), the response header and the body, with a [`FramePart::Records`] where
/// each non-empty partition's records go. Consecutive inline bytes come as one
/// [`FramePart::Inline`], so a response has at most one more inline part than record parts.
///
/// Aborted transactions are sent as an array, empty (not null) when there are none: every
/// client reads both, and it is what Kafka sends to read-committed consumers when nothing was
/// aborted. The preferred read
/// replica (v11+) is -1 (none); the flexible versions' tagged fields are all empty.
///
/// # Panics
///
/// If `version` is outside [`FETCH_VERSIONS`] (the request decoder already rejects those), if the
/// frame exceeds the protocol's `i32` size, or if a topic name is longer than `i16::MAX` bytes
/// (Kafka caps names at 249).
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    response: &FetchResponseOut,
) -> Vec<FramePart> {
    assert!(
        FETCH_VERSIONS.contains(&version),
        "Fetch v{version} cannot be framed (supported: {FETCH_VERSIONS:?})"
    );
    let flexible = version >= FIRST_FLEXIBLE_VERSION;
    let mut out = FrameWriter::new(flexible);

    out.buf.put_i32(correlation_id);
    out.tagged_fields();

    out.buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        out.buf.put_i16(response.error_code);
        out.buf.put_i32(response.session_id);
    }
    out.array_len(response.topics.len());
    for (topic_index, topic) in response.topics.iter().enumerate() {
        if version >= FIRST_TOPIC_ID_VERSION {
            out.buf.put_slice(&topic.topic_id);
        } else {
            out.string(&topic.name);
        }
        out.array_len(topic.partitions.len());
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            out.buf.put_i32(partition.partition_index);
            out.buf.put_i16(partition.error_code);
            out.buf.put_i64(partition.high_watermark);
            out.buf.put_i64(partition.last_stable_offset);
            if version >= 5 {
                out.buf.put_i64(partition.log_start_offset);
            }
            out.array_len(partition.aborted_transactions.len());
            for &(producer_id, first_offset) in &partition.aborted_transactions {
                out.buf.put_i64(producer_id);
                out.buf.put_i64(first_offset);
                out.tagged_fields();
            }
            if version >= 11 {
                out.buf.put_i32(-1); // preferred_read_replica
            }
            out.records(topic_index, partition_index, partition.records_bytes);
            out.tagged_fields();
        }
        out.tagged_fields();
    }
    // node_endpoints (v16+) is a tagged field, omitted when empty like every other one here.
    out.tagged_fields();
    out.finish()
}

/// Where a [`FramePart`] comes from while the frame is being written.
enum Segment {
    Inline(Range<usize>),
    Records { topic: usize, partition: usize },
}

/// Writes the whole inline part of a frame into one buffer, remembering the record holes, so the
/// size prefix can be patched at the end and the parts share one allocation.
struct FrameWriter {
    flexible: bool,
    buf: BytesMut,
    segments: Vec<Segment>,
    inline_start: usize,
    records_total: u64,
}

impl FrameWriter {
    fn new(flexible: bool) -> Self {
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0); // size, patched by `finish`
        Self {
            flexible,
            buf,
            segments: Vec::new(),
            inline_start: 0,
            records_total: 0,
        }
    }

    fn unsigned_varint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.buf.put_u8((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.buf.put_u8(value as u8);
    }

    fn tagged_fields(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        }
    }

    /// The length of a non-null array (compact arrays store length + 1; 0 is null).
    fn array_len(&mut self, len: usize) {
        if self.flexible {
            let compact = u32::try_from(len)
                .ok()
                .and_then(|len| len.checked_add(1))
                .expect("array too long for a compact array");
            self.unsigned_varint(compact);
        } else {
            self.buf
                .put_i32(i32::try_from(len).expect("array too long for an int32 length"));
        }
    }

    fn string(&mut self, value: &str) {
        if self.flexible {
            let compact = u32::try_from(value.len() + 1).expect("string too long");
            self.unsigned_varint(compact);
        } else {
            let len = i16::try_from(value.len()).expect("string longer than i16::MAX bytes");
            self.buf.put_i16(len);
        }
        self.buf.put_slice(value.as_bytes());
    }

    /// The length of a non-null `records` field, then the hole its bytes go in.
    fn records(&mut self, topic: usize, partition: usize, len: u64) {
        if self.flexible {
            let compact = u32::try_from(len)
                .ok()
                .and_then(|len| len.checked_add(1))
                .expect("record set too large for a compact bytes length");
            self.unsigned_varint(compact);
        } else {
            self.buf
                .put_i32(i32::try_from(len).expect("record set too large for an int32 length"));
        }
        if len == 0 {
            return;
        }
        self.close_inline();
        self.segments.push(Segment::Records { topic, partition });
        self.records_total += len;
    }

    fn close_inline(&mut self) {
        let end = self.buf.len();
        if end > self.inline_start {
            self.segments.push(Segment::Inline(self.inline_start..end));
        }
        self.inline_start = end;
    }

    fn finish(mut self) -> Vec<FramePart> {
        self.close_inline();
        let size = (self.buf.len() as u64 - 4) + self.records_total;
        let size = i32::try_from(size).expect("Fetch response larger than i32::MAX bytes");
        self.buf[..4].copy_from_slice(&size.to_be_bytes());
        let buf = self.buf.freeze();
        self.segments
            .into_iter()
            .map(|segment| match segment {
                Segment::Inline(range) => FramePart::Inline(buf.slice(range)),
                Segment::Records { topic, partition } => FramePart::Records { topic, partition },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Buf;
    use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
    use kafka_protocol::protocol::Decodable;

    /// Deterministic stand-in record bytes, distinct per partition so misplaced holes show.
    fn fake_records(topic: usize, partition: usize, len: u64) -> Vec<u8> {
        (0..len)
            .map(|i| (i as usize * 7 + topic * 31 + partition * 131) as u8)
            .collect()
    }

    /// Encodes, checks the part structure, fills the holes and decodes with kafka-protocol,
    /// asserting every field round-trips and nothing is left over.
    fn check_round_trip(version: i16, correlation_id: i32, response: &FetchResponseOut) {
        let parts = encode_fetch_response(version, correlation_id, response);

        let holes = parts
            .iter()
            .filter(|part| matches!(part, FramePart::Records { .. }))
            .count();
        let non_empty = response
            .topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter(|partition| partition.records_bytes > 0)
            .count();
        assert_eq!(holes, non_empty, "one hole per non-empty partition");
        assert!(parts.len() <= 2 * holes + 1, "inline bytes are merged");
        for pair in parts.windows(2) {
            assert!(
                !matches!(pair, [FramePart::Inline(_), FramePart::Inline(_)]),
                "adjacent inline parts"
            );
        }

        let mut frame = Vec::new();
        for part in &parts {
            match part {
                FramePart::Inline(bytes) => {
                    assert!(!bytes.is_empty(), "empty inline part");
                    frame.extend_from_slice(bytes);
                }
                FramePart::Records { topic, partition } => {
                    let len = response.topics[*topic].partitions[*partition].records_bytes;
                    frame.extend_from_slice(&fake_records(*topic, *partition, len));
                }
            }
        }

        let mut buf = Bytes::from(frame);
        let size = buf.get_i32();
        assert_eq!(size as usize, buf.len(), "size prefix");

        let header =
            ResponseHeader::decode(&mut buf, ApiKey::Fetch.response_header_version(version))
                .unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        assert!(header.unknown_tagged_fields.is_empty());

        let decoded = FetchResponse::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty(), "v{version}: {} bytes left over", buf.len());

        assert_eq!(decoded.throttle_time_ms, response.throttle_time_ms);
        if version >= 7 {
            assert_eq!(decoded.error_code, response.error_code);
            assert_eq!(decoded.session_id, response.session_id);
        }
        assert!(decoded.node_endpoints.is_empty());
        assert!(decoded.unknown_tagged_fields.is_empty());
        assert_eq!(decoded.responses.len(), response.topics.len());
        for (topic_index, (got, want)) in decoded.responses.iter().zip(&response.topics).enumerate()
        {
            if version >= 13 {
                assert_eq!(got.topic_id.as_bytes(), &want.topic_id);
                assert!(got.topic.is_empty());
            } else {
                assert_eq!(got.topic.as_str(), want.name);
                assert!(got.topic_id.is_nil());
            }
            assert!(got.unknown_tagged_fields.is_empty());
            assert_eq!(got.partitions.len(), want.partitions.len());
            for (partition_index, (got, want)) in
                got.partitions.iter().zip(&want.partitions).enumerate()
            {
                assert_eq!(got.partition_index, want.partition_index);
                assert_eq!(got.error_code, want.error_code);
                assert_eq!(got.high_watermark, want.high_watermark);
                assert_eq!(got.last_stable_offset, want.last_stable_offset);
                if version >= 5 {
                    assert_eq!(got.log_start_offset, want.log_start_offset);
                }
                let aborted: Vec<(i64, i64)> = got
                    .aborted_transactions
                    .as_deref()
                    .expect("an array, never null")
                    .iter()
                    .map(|entry| (entry.producer_id.0, entry.first_offset))
                    .collect();
                assert_eq!(aborted, want.aborted_transactions);
                assert_eq!(got.preferred_read_replica.0, -1);
                assert_eq!(
                    got.records.as_deref(),
                    Some(&fake_records(topic_index, partition_index, want.records_bytes)[..]),
                    "v{version} topic {topic_index} partition {partition_index} records"
                );
                assert!(got.unknown_tagged_fields.is_empty());
                assert_eq!(got.diverging_epoch, Default::default());
                assert_eq!(got.current_leader, Default::default());
                assert_eq!(got.snapshot_id, Default::default());
            }
        }
    }

    fn partition(index: i32, error_code: i16, records_bytes: u64) -> FetchPartitionOut {
        FetchPartitionOut {
            partition_index: index,
            error_code,
            high_watermark: 1_000 + i64::from(index),
            last_stable_offset: 900 + i64::from(index),
            log_start_offset: 10 + i64::from(index),
            aborted_transactions: vec![(7, 905), (9, 950 + i64::from(index))],
            records_bytes,
        }
    }

    fn topic(name: &str, id_byte: u8, partitions: Vec<FetchPartitionOut>) -> FetchTopicOut {
        let mut topic_id = [id_byte; 16];
        topic_id[0] = 0xA5;
        FetchTopicOut {
            name: name.to_owned(),
            topic_id,
            partitions,
        }
    }

    fn shapes() -> Vec<FetchResponseOut> {
        vec![
            FetchResponseOut {
                throttle_time_ms: 0,
                error_code: 0,
                session_id: 0,
                topics: Vec::new(),
            },
            FetchResponseOut {
                throttle_time_ms: 25,
                error_code: 0,
                session_id: 0,
                topics: vec![topic("t", 1, Vec::new())],
            },
            FetchResponseOut {
                throttle_time_ms: 0,
                error_code: 0,
                session_id: 0,
                topics: vec![topic("only-empty", 2, vec![partition(0, 0, 0)])],
            },
            FetchResponseOut {
                throttle_time_ms: 7,
                error_code: 0,
                session_id: 0,
                topics: vec![
                    topic(
                        "orders",
                        3,
                        vec![
                            partition(0, 0, 300),
                            partition(1, 0, 0),
                            partition(2, 0, 61),
                        ],
                    ),
                    // NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, OFFSET_OUT_OF_RANGE
                    topic(
                        "payments",
                        4,
                        vec![partition(5, 6, 0), partition(6, 3, 0), partition(7, 1, 0)],
                    ),
                    topic(
                        &"x".repeat(249),
                        5,
                        vec![
                            partition(0, 0, 127),
                            partition(1, 0, 128),
                            partition(2, 0, 1),
                        ],
                    ),
                ],
            },
            // Compact lengths crossing the one- and two-byte varint boundaries.
            FetchResponseOut {
                throttle_time_ms: 0,
                error_code: 0,
                session_id: 0,
                topics: vec![topic(
                    "big",
                    6,
                    vec![
                        partition(0, 0, 16_383),
                        partition(1, 0, 16_384),
                        partition(2, 0, 70_000),
                    ],
                )],
            },
            // FETCH_SESSION_ID_NOT_FOUND at the top level.
            FetchResponseOut {
                throttle_time_ms: 0,
                error_code: 70,
                session_id: 0,
                topics: Vec::new(),
            },
        ]
    }

    #[test]
    fn every_version_and_shape_round_trips() {
        for version in FETCH_VERSIONS {
            for (index, shape) in shapes().iter().enumerate() {
                let mut shape = shape.clone();
                if version >= 7 && index == 3 {
                    shape.session_id = 123_456;
                }
                check_round_trip(version, 0x1234_5678 + i32::from(version), &shape);
            }
        }
    }

    #[test]
    fn empty_response_bytes_are_exact() {
        // v4: size, correlation id, throttle, zero topics.
        let parts = encode_fetch_response(4, 9, &shapes()[0]);
        let expected: &[u8] = &[0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parts, vec![FramePart::Inline(Bytes::from_static(expected))]);

        // v12: header tags, throttle, error, session, compact empty array, body tags.
        let parts = encode_fetch_response(12, 9, &shapes()[0]);
        let expected: &[u8] = &[
            0, 0, 0, 17, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
        ];
        assert_eq!(parts, vec![FramePart::Inline(Bytes::from_static(expected))]);
    }

    #[test]
    fn holes_are_in_order_and_skip_empty_partitions() {
        let parts = encode_fetch_response(16, 1, &shapes()[3]);
        let holes: Vec<(usize, usize)> = parts
            .iter()
            .filter_map(|part| match part {
                FramePart::Records { topic, partition } => Some((*topic, *partition)),
                FramePart::Inline(_) => None,
            })
            .collect();
        assert_eq!(holes, vec![(0, 0), (0, 2), (2, 0), (2, 1), (2, 2)]);
    }

    #[test]
    #[should_panic(expected = "cannot be framed")]
    fn unsupported_version_panics() {
        encode_fetch_response(3, 1, &shapes()[0]);
    }

    /// xorshift64*: enough randomness for shapes without a proptest dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound
        }
    }

    #[test]
    fn random_shapes_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..300 {
            let version = 4 + rng.below(15) as i16;
            let topics = (0..rng.below(5))
                .map(|t| {
                    let name: String = (0..1 + rng.below(40))
                        .map(|_| char::from(b'a' + rng.below(26) as u8))
                        .collect();
                    let partitions = (0..rng.below(6))
                        .map(|p| {
                            let records_bytes = match rng.below(4) {
                                0 => 0,
                                1 => rng.below(200),
                                2 => rng.below(20_000),
                                _ => 1 + rng.below(3),
                            };
                            FetchPartitionOut {
                                partition_index: p as i32 * 3,
                                error_code: [0, 0, 0, 1, 3, 6][rng.below(6) as usize],
                                high_watermark: rng.next() as i64 >> 1,
                                last_stable_offset: rng.next() as i64 >> 2,
                                log_start_offset: rng.below(1 << 40) as i64 - 1,
                                aborted_transactions: (0..rng.below(3))
                                    .map(|_| (rng.below(1 << 20) as i64, rng.next() as i64 >> 3))
                                    .collect(),
                                records_bytes,
                            }
                        })
                        .collect();
                    topic(&name, t as u8 ^ rng.next() as u8, partitions)
                })
                .collect();
            let response = FetchResponseOut {
                throttle_time_ms: rng.below(1_000) as i32,
                error_code: if version >= 7 {
                    [0, 0, 70][rng.below(3) as usize]
                } else {
                    0
                },
                session_id: if version >= 7 { rng.next() as i32 } else { 0 },
                topics,
            };
            check_round_trip(version, rng.next() as i32, &response);
        }
    }
}
