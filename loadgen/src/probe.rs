//! Is a Kafka broker answering? One ApiVersions v0 round trip over a fresh TCP connection,
//! encoded by hand: v0 is the one version every Kafka-compatible broker must answer (clients
//! send it first when they know nothing of the broker), and it needs no flexible-version
//! encoding. Used to wait for a freshly started broker; the answer also lists the APIs it serves.
//!
//! Request: `size i32 | api_key i16 = 18 | api_version i16 = 0 | correlation_id i32 |
//! client_id i16-length string` (header v1, empty body). Response: `size i32 | correlation_id i32 |
//! error_code i16 | [api_key i16, min_version i16, max_version i16] with an i32 count`.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const API_VERSIONS_KEY: i16 = 18;
const CLIENT_ID: &str = "ringtail-loadgen";
const CORRELATION_ID: i32 = 0x5249_4e47;
/// A v0 answer lists each API in 6 bytes; Kafka has under 100 APIs. Anything far larger is not
/// an ApiVersions answer.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;

/// One API a broker serves, with its version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("ApiVersions exchange with {addr}: {source}")]
    Exchange { addr: SocketAddr, source: io::Error },
    #[error("ApiVersions answer from {addr} is malformed: {detail}")]
    Malformed { addr: SocketAddr, detail: String },
    #[error("ApiVersions answer from {addr} has error code {code}")]
    ErrorCode { addr: SocketAddr, code: i16 },
}

/// Sends ApiVersions v0 to `addr` and returns the APIs the broker lists. Every step (connect,
/// write, read) is bounded by `timeout`.
pub fn api_versions(addr: SocketAddr, timeout: Duration) -> Result<Vec<ApiRange>, ProbeError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let exchange = |source| ProbeError::Exchange { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_nodelay(true).map_err(exchange)?;
    stream.write_all(&encode_request()).map_err(exchange)?;

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(exchange)?;
    let size = i32::from_be_bytes(size);
    let malformed = |detail: String| ProbeError::Malformed { addr, detail };
    let size = usize::try_from(size)
        .ok()
        .filter(|&size| size <= RESPONSE_BYTES_MAX)
        .ok_or_else(|| malformed(format!("response size {size}")))?;
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).map_err(exchange)?;
    let (code, apis) = decode_response(&body).map_err(malformed)?;
    if code != 0 {
        return Err(ProbeError::ErrorCode { addr, code });
    }
    Ok(apis)
}

fn encode_request() -> Vec<u8> {
    let mut frame = Vec::with_capacity(32);
    frame.extend_from_slice(&[0; 4]); // size, filled in below
    frame.extend_from_slice(&API_VERSIONS_KEY.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes()); // version 0
    frame.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    let client_id_len = i16::try_from(CLIENT_ID.len()).expect("a short constant client id");
    frame.extend_from_slice(&client_id_len.to_be_bytes());
    frame.extend_from_slice(CLIENT_ID.as_bytes());
    let size = i32::try_from(frame.len() - 4).expect("a request of a few dozen bytes");
    frame[..4].copy_from_slice(&size.to_be_bytes());
    frame
}

/// `(error_code, apis)` of a v0 response body (after its size). Checks the correlation id and
/// that ApiVersions itself is listed, as any broker that answered must.
fn decode_response(body: &[u8]) -> Result<(i16, Vec<ApiRange>), String> {
    let mut reader = Reader { bytes: body };
    let correlation_id = reader.i32()?;
    if correlation_id != CORRELATION_ID {
        return Err(format!("correlation id {correlation_id:#x}"));
    }
    let code = reader.i16()?;
    let count = reader.i32()?;
    // Each entry takes 6 bytes: a count the body cannot hold is garbage (and bounds the loop).
    let count = usize::try_from(count)
        .ok()
        .filter(|&count| count <= reader.bytes.len() / 6)
        .ok_or(format!(
            "api count {count} for {} bytes",
            reader.bytes.len()
        ))?;
    let mut apis = Vec::with_capacity(count);
    for _ in 0..count {
        apis.push(ApiRange {
            api_key: reader.i16()?,
            min_version: reader.i16()?,
            max_version: reader.i16()?,
        });
    }
    if code == 0 && !apis.iter().any(|api| api.api_key == API_VERSIONS_KEY) {
        return Err("ApiVersions is not among the listed APIs".to_string());
    }
    Ok((code, apis))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self.bytes.split_first_chunk::<N>().ok_or(format!(
            "truncated: {} bytes left, {N} needed",
            self.bytes.len()
        ))?;
        self.bytes = rest;
        Ok(*head)
    }

    fn i16(&mut self) -> Result<i16, String> {
        self.take().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.take().map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn response_body(code: i16, apis: &[(i16, i16, i16)]) -> Vec<u8> {
        let mut body = CORRELATION_ID.to_be_bytes().to_vec();
        body.extend_from_slice(&code.to_be_bytes());
        body.extend_from_slice(&(apis.len() as i32).to_be_bytes());
        for &(key, min, max) in apis {
            for value in [key, min, max] {
                body.extend_from_slice(&value.to_be_bytes());
            }
        }
        body
    }

    #[test]
    fn request_is_a_v0_header_with_client_id() {
        // The bytes a Kafka broker expects: size, key 18, version 0, correlation id, client id.
        let frame = encode_request();
        assert_eq!(
            i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(&frame[4..8], &[0, 18, 0, 0]);
        assert_eq!(&frame[12..14], &(CLIENT_ID.len() as i16).to_be_bytes());
        assert_eq!(&frame[14..], CLIENT_ID.as_bytes());
    }

    #[test]
    fn decodes_answers_and_rejects_garbage() {
        // A good answer decodes; truncation, a wrong correlation id or an absurd count do not.
        let good = response_body(0, &[(0, 0, 9), (18, 0, 3)]);
        let (code, apis) = decode_response(&good).unwrap();
        assert_eq!(code, 0);
        assert_eq!(
            apis[1],
            ApiRange {
                api_key: 18,
                min_version: 0,
                max_version: 3
            }
        );
        assert!(decode_response(&good[..good.len() - 1]).is_err());
        let mut wrong_id = good.clone();
        wrong_id[0] ^= 1;
        assert!(decode_response(&wrong_id).is_err());
        let mut huge = response_body(0, &[]);
        huge[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_response(&huge).is_err());
        assert!(decode_response(&response_body(0, &[(0, 0, 9)])).is_err());
        assert_eq!(decode_response(&response_body(35, &[])).unwrap().0, 35);
    }

    #[test]
    fn round_trip_with_a_fake_broker() {
        // Against a listener that answers like a broker, and one that closes at once.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = vec![0u8; encode_request().len()];
            socket.read_exact(&mut request).unwrap();
            assert_eq!(request, encode_request());
            let body = response_body(0, &[(18, 0, 3)]);
            socket
                .write_all(&(body.len() as i32).to_be_bytes())
                .unwrap();
            socket.write_all(&body).unwrap();
            let (closing, _) = listener.accept().unwrap();
            drop(closing);
        });
        let apis = api_versions(addr, Duration::from_secs(5)).unwrap();
        assert_eq!(apis.len(), 1);
        let error = api_versions(addr, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(error, ProbeError::Exchange { .. }), "{error}");
        server.join().unwrap();
    }
}
