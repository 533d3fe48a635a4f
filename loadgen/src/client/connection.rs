//! One TCP connection to one broker: framing, correlation ids and API version negotiation.
//!
//! Blocking sockets on plain threads: the loadgen runs a handful of producers and consumers, each
//! moving large batches, so a thread per connection costs nothing measurable and keeps the client
//! simple enough to trust. A connection can be split into a sending half and a receiving half so
//! that a producer keeps several requests in flight (Kafka answers in order on a connection).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::{background, ClientError};

const CLIENT_ID: &str = "ringtail-loadgen";

/// Largest response frame accepted (a fetch answer is bounded by the request's max bytes).
const MAX_FRAME_BYTES: usize = 512 << 20;

/// The versions this client can speak for each API it uses (both ends inclusive). The version
/// used is the highest one the broker also supports.
const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    // Fetch v12+ only adds tagged fields this client does not use; tansu 0.6 answers v12 with a
    // top-level tag that only v16 defines, which the strict decoder refuses. v11 reads the same
    // records from every broker.
    (ApiKey::Fetch, 4, 11),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::FindCoordinator, 1, 3),
    (ApiKey::JoinGroup, 1, 7),
    (ApiKey::SyncGroup, 1, 5),
    (ApiKey::Heartbeat, 1, 4),
    (ApiKey::LeaveGroup, 1, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    // Moving a partition between a broker's data dirs (the partition-move scenario).
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
];

/// API versions agreed with one broker.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    agreed: HashMap<i16, i16>,
}

impl Versions {
    fn negotiate(response: &ApiVersionsResponse) -> Self {
        let mut agreed = HashMap::new();
        for &(api, client_min, client_max) in CLIENT_VERSIONS {
            let key = api as i16;
            if let Some(broker) = response.api_keys.iter().find(|k| k.api_key == key) {
                let version = client_max.min(broker.max_version);
                if version >= client_min.max(broker.min_version) {
                    agreed.insert(key, version);
                }
            }
        }
        Self { agreed }
    }

    /// The version to use for `api`, or an error naming it when there is none in common.
    pub fn get(&self, api_key: i16) -> Result<i16, ClientError> {
        self.agreed
            .get(&api_key)
            .copied()
            .ok_or(ClientError::UnsupportedApi { api_key })
    }
}

/// Encodes one request frame (size prefix, header, body).
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<BytesMut, ClientError> {
    let mut frame = BytesMut::new();
    encode_request_into(request, version, correlation_id, &mut frame)?;
    Ok(frame)
}

/// Encodes one request frame into `frame`, replacing what it held. The frame's memory is
/// reserved once for the whole request and kept for the next one: a producer's frames are
/// megabytes, and fresh memory costs a page fault per 4 KiB (on VMs that hand idle memory back
/// to the host, more than the copy itself), which a frame grown from a few bytes paid anew for
/// every request.
pub fn encode_request_into<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    frame: &mut BytesMut,
) -> Result<(), ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let header_version = R::header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|header| Ok(header + request.compute_size(version)?))
        .map_err(ClientError::codec)?;
    frame.clear();
    frame.reserve(4 + size);
    frame.put_i32(0);
    header
        .encode(frame, header_version)
        .map_err(ClientError::codec)?;
    request.encode(frame, version).map_err(ClientError::codec)?;
    let size = i32::try_from(frame.len() - 4).map_err(|_| ClientError::FrameTooLarge)?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Decodes a response body (after the size prefix) and checks its correlation id.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, ClientError> {
    let context = |error: anyhow::Error| {
        ClientError::Codec(format!(
            "{:?} v{version} response: {error}",
            api_key_name(R::KEY)
        ))
    };
    let header = ResponseHeader::decode(
        &mut body,
        <R::Response as HeaderVersion>::header_version(version),
    )
    .map_err(context)?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Protocol(format!(
            "response correlation id {} where {correlation_id} was expected",
            header.correlation_id
        )));
    }
    R::Response::decode(&mut body, version).map_err(context)
}

fn api_key_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("API {key}"), |api| format!("{api:?}"))
}

/// Reads one size-prefixed frame into `buffer`'s memory.
///
/// The memory is reused once every `Bytes` of the previous frame is dropped: a fresh
/// allocation per Fetch response (tens of MB, so mmapped and unmapped each time) cost the
/// client a page fault per 4 KiB, which on these VMs is the dearest part of reading.
pub fn read_frame(reader: &mut impl Read, frames: &mut FrameMemory) -> Result<Bytes, ClientError> {
    let mut size = [0u8; 4];
    reader.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    let size = usize::try_from(size)
        .ok()
        .filter(|size| *size <= MAX_FRAME_BYTES)
        .ok_or_else(|| ClientError::Protocol(format!("response frame of {size} bytes")))?;
    let mut buffer = frames.take_back();
    buffer.reserve(size);
    // `read_to_end` reads into the spare capacity as it is: the socket writes it without the
    // buffer being zeroed first (zeroing tens of MB per Fetch was a tenth of the consumer's CPU).
    // A background thread reads in pieces, and may yield between them (see `background`). Each
    // piece's `read_to_end` starts its reads small, so a piece passes through the connection's
    // `BufReader`: one more copy, accepted. Reading straight into the frame would need it
    // initialised first, and zeroing a fresh frame's memory (whenever the last frame is still
    // held) cost more: a 25 ms producer p99 in one of two runs, catch-up 0.85x (16:41 UTC).
    let piece_max_bytes = if background::is_background() {
        background::WORK_BETWEEN_YIELDS_BYTES
    } else {
        size
    };
    while buffer.len() < size {
        let piece_bytes = piece_max_bytes.min(size - buffer.len()) as u64;
        let read = (&mut *reader).take(piece_bytes).read_to_end(&mut buffer)?;
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        background::worked(read);
    }
    let frame = Bytes::from(buffer);
    frames.last = Some(frame.clone());
    Ok(frame)
}

/// The memory of the last frame read, taken back for the next one once nothing else refers
/// to it.
#[derive(Debug, Default)]
pub struct FrameMemory {
    last: Option<Bytes>,
}

impl FrameMemory {
    /// An empty buffer: the last frame's memory if every other `Bytes` of it was dropped, else
    /// a new one (the held frame stays intact).
    fn take_back(&mut self) -> Vec<u8> {
        self.last
            .take()
            .and_then(|last| last.try_into_mut().ok())
            .map(|mut memory| {
                // Empty first, so that turning it into a `Vec` moves no bytes.
                memory.clear();
                Vec::from(memory)
            })
            .unwrap_or_default()
    }
}

/// A connection used for one request at a time.
pub struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    frames: FrameMemory,
    next_correlation_id: i32,
    versions: Versions,
    address: String,
}

impl Connection {
    /// Connects and agrees API versions (ApiVersions v0, which every broker answers).
    pub fn connect(address: &str) -> Result<Self, ClientError> {
        let socket_address = address
            .to_socket_addrs()
            .map_err(|source| ClientError::Connect {
                address: address.to_string(),
                source,
            })?
            .next()
            .ok_or_else(|| ClientError::Protocol(format!("{address} resolves to nothing")))?;
        let stream = TcpStream::connect_timeout(&socket_address, Duration::from_secs(10)).map_err(
            |source| ClientError::Connect {
                address: address.to_string(),
                source,
            },
        )?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let reader = BufReader::with_capacity(256 << 10, stream.try_clone()?);
        let mut connection = Self {
            stream,
            reader,
            frames: FrameMemory::default(),
            next_correlation_id: 0,
            versions: Versions::default(),
            address: address.to_string(),
        };
        let api_versions: ApiVersionsResponse =
            connection.call_version(&ApiVersionsRequest::default(), 0)?;
        if api_versions.error_code != 0 {
            return Err(ClientError::kafka("ApiVersions", api_versions.error_code));
        }
        connection.versions = Versions::negotiate(&api_versions);
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` at the agreed version and waits for its response.
    pub fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let version = self.versions.get(R::KEY)?;
        self.call_version(request, version)
    }

    /// The agreed version of `R` (for requests whose fields depend on it).
    pub fn version_of<R: Request>(&self) -> Result<i16, ClientError> {
        self.versions.get(R::KEY)
    }

    pub fn call_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let sent = self.send_version(request, version)?;
        self.receive::<R>(sent)
    }

    /// Sends `request` without waiting; [`Connection::receive`] reads its answer later (answers
    /// come in request order).
    pub fn send<R: Request>(&mut self, request: &R) -> Result<(i16, i32), ClientError> {
        let version = self.versions.get(R::KEY)?;
        self.send_version(request, version)
    }

    fn send_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(i16, i32), ClientError> {
        let correlation_id = self.next_correlation_id();
        let frame = encode_request(request, version, correlation_id)?;
        self.stream.write_all(&frame)?;
        Ok((version, correlation_id))
    }

    /// Reads the answer to a request from [`Connection::send`].
    pub fn receive<R: Request>(
        &mut self,
        (version, correlation_id): (i16, i32),
    ) -> Result<R::Response, ClientError> {
        let body = read_frame(&mut self.reader, &mut self.frames)?;
        decode_response::<R>(body, version, correlation_id)
    }

    fn next_correlation_id(&mut self) -> i32 {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.next_correlation_id
    }

    /// Splits into a sending half and a receiving half for pipelined requests.
    pub fn split(self) -> (Sender, Receiver) {
        (
            Sender {
                stream: self.stream,
                next_correlation_id: self.next_correlation_id,
                frame: BytesMut::new(),
            },
            Receiver {
                reader: self.reader,
                frames: self.frames,
            },
        )
    }
}

/// The sending half of a split connection.
pub struct Sender {
    stream: TcpStream,
    next_correlation_id: i32,
    /// The frame being sent, its memory kept for the next one (see [`encode_request_into`]).
    frame: BytesMut,
}

impl Sender {
    /// Takes the correlation id for the next request (to register it before sending).
    pub fn next_correlation_id(&mut self) -> i32 {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.next_correlation_id
    }

    /// Writes `request` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id();
        self.encode(request, version, correlation_id)?;
        self.write_encoded()?;
        Ok(correlation_id)
    }

    /// Encodes `request` as the frame [`Sender::write_encoded`] writes next (encoding first
    /// lets a caller register the request as in flight only once it is known to encode).
    pub fn encode<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        correlation_id: i32,
    ) -> Result<(), ClientError> {
        encode_request_into(request, version, correlation_id, &mut self.frame)
    }

    /// Writes the frame [`Sender::encode`] made; on failure the connection is shut down, so a
    /// receiver waiting on it wakes up rather than waiting for an answer that cannot come.
    pub fn write_encoded(&mut self) -> Result<(), ClientError> {
        self.stream.write_all(&self.frame).inspect_err(|_| {
            let _ = self.stream.shutdown(Shutdown::Both);
        })?;
        Ok(())
    }

    /// Closes both directions, which also wakes a receiver blocked on this connection.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The receiving half of a split connection.
pub struct Receiver {
    reader: BufReader<TcpStream>,
    frames: FrameMemory,
}

impl Receiver {
    /// Reads the next response, which must answer `correlation_id`.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, ClientError> {
        let body = read_frame(&mut self.reader, &mut self.frames)?;
        decode_response::<R>(body, version, correlation_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut stream = Vec::new();
        for body in bodies {
            stream.extend_from_slice(&(body.len() as i32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        stream
    }

    /// A reader that fills what each call asks, while its bytes last, and records the size asked.
    struct Trickle<'a> {
        bytes: &'a [u8],
        calls: Vec<usize>,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            self.calls.push(buf.len());
            Ok(n)
        }
    }

    #[test]
    fn a_background_thread_reads_a_frame_in_pieces_and_yields_between_them() {
        let body: Vec<u8> = (0..(1u32 << 20) + 77).map(|i| (i % 251) as u8).collect();
        let stream = framed(&[&body]);
        std::thread::spawn(move || {
            background::become_background().expect("SCHED_IDLE needs no privilege");
            let mut reader = Trickle {
                bytes: &stream,
                calls: Vec::new(),
            };
            let frame = read_frame(&mut reader, &mut FrameMemory::default()).unwrap();
            assert_eq!(frame, body, "the frame arrives whole and in order");
            let biggest = reader.calls.iter().skip(1).max().copied().unwrap();
            assert!(
                biggest <= background::WORK_BETWEEN_YIELDS_BYTES,
                "no read asks more than a piece: {:?}",
                reader.calls
            );
            assert_eq!(background::yields(), 4, "a yield after each 256 KiB read");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_normal_thread_reads_a_frame_without_yielding() {
        let body = vec![3u8; 1 << 20];
        let mut reader = Trickle {
            bytes: &framed(&[&body]),
            calls: Vec::new(),
        };
        let frame = read_frame(&mut reader, &mut FrameMemory::default()).unwrap();
        assert_eq!(frame, body);
        assert_eq!(background::yields(), 0);
    }

    #[test]
    fn frames_reuse_their_memory_once_the_last_one_is_dropped() {
        frames_reuse_their_memory(std::io::Cursor::new(Vec::new()));
    }

    #[test]
    fn a_background_thread_reuses_frame_memory_too_and_refuses_a_cut_frame() {
        std::thread::spawn(|| {
            background::become_background().expect("SCHED_IDLE needs no privilege");
            frames_reuse_their_memory(std::io::Cursor::new(Vec::new()));
            // Behind a buffered reader as the connection's, frames follow each other.
            let mut stream = framed(&[b"one", &[9u8; 700_000], b"three"]);
            let mut reader =
                BufReader::with_capacity(256 << 10, std::io::Cursor::new(stream.clone()));
            let mut memory = FrameMemory::default();
            assert_eq!(&read_frame(&mut reader, &mut memory).unwrap()[..], b"one");
            assert_eq!(
                read_frame(&mut reader, &mut memory).unwrap(),
                vec![9u8; 700_000]
            );
            assert_eq!(&read_frame(&mut reader, &mut memory).unwrap()[..], b"three");
            // A frame cut short is an error, not a shorter frame.
            stream.truncate(stream.len() - 1);
            let mut reader = std::io::Cursor::new(stream);
            assert!(read_frame(&mut reader, &mut memory).is_ok());
            assert!(read_frame(&mut reader, &mut memory).is_ok());
            assert!(read_frame(&mut reader, &mut memory).is_err());
        })
        .join()
        .unwrap();
    }

    /// Reads four frames (with `reader`'s own bytes replaced) and checks which memory each uses.
    fn frames_reuse_their_memory(mut reader: std::io::Cursor<Vec<u8>>) {
        let big = vec![7u8; 1 << 20];
        *reader.get_mut() = framed(&[&big, b"second", &big, b"fourth"]);
        let mut buffer = FrameMemory::default();

        let first = read_frame(&mut reader, &mut buffer).unwrap();
        assert_eq!(first, big);
        let first_address = first.as_ptr();
        drop(first);
        let second = read_frame(&mut reader, &mut buffer).unwrap();
        assert_eq!(&second[..], b"second");
        assert_eq!(
            second.as_ptr(),
            first_address,
            "the first frame's memory is reused"
        );

        // While a frame is still held, the next one goes elsewhere and both stay intact.
        let third = read_frame(&mut reader, &mut buffer).unwrap();
        assert_eq!(third, big);
        assert_eq!(&second[..], b"second");
        assert_ne!(third.as_ptr(), second.as_ptr());
        let fourth = read_frame(&mut reader, &mut buffer).unwrap();
        assert_eq!(&fourth[..], b"fourth");
        assert_eq!(third, big, "a held frame is never overwritten");
        assert!(
            read_frame(&mut reader, &mut buffer).is_err(),
            "end of stream"
        );
    }

    #[test]
    fn oversized_and_negative_frame_sizes_are_refused() {
        for size in [-1i32, i32::MAX] {
            let mut reader = std::io::Cursor::new(size.to_be_bytes().to_vec());
            let error = read_frame(&mut reader, &mut FrameMemory::default()).unwrap_err();
            assert!(matches!(error, ClientError::Protocol(_)), "{size}: {error}");
        }
    }
}
