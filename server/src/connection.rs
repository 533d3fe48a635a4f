//! One client connection: frames in, responses out, in request order.
//!
//! The reader decodes each frame's header and starts its handler at once, so a client's pipelined
//! requests (librdkafka sends up to 5 produce requests in flight) are served concurrently — their
//! appends join the same group commit. The writer sends the responses strictly in request order, as
//! Kafka requires. At most [`IN_FLIGHT_REQUESTS_MAX`] requests of a connection run at once.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use compio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use compio::runtime::JoinHandle;
use compio::BufResult;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;
use tracing::{debug, warn};

use crate::api::{self, RequestContext, RequestError, Response};
use crate::shard::ShardContext;
use crate::zero_copy::{send_file_range, SplicePipe};

/// Requests of one connection being served at once; the reader waits beyond that.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 16;

type PendingResponse = JoinHandle<Result<Response, RequestError>>;

/// Serves a connection until the client closes it, sends garbage, or the shard shuts down.
pub async fn serve(context: Rc<ShardContext>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (queue, responses) = flume::bounded::<PendingResponse>(IN_FLIGHT_REQUESTS_MAX);
    let writer = compio::runtime::spawn(write_responses(stream.clone(), responses, peer));
    if let Err(reason) = read_requests(&context, stream, queue, peer).await {
        debug!(%peer, %reason, "closing connection");
    }
    // The reader is done; the writer finishes what is in flight, then the socket closes.
    let _ = writer.await;
}

/// Reads frames and queues their handlers until the connection ends.
async fn read_requests(
    context: &Rc<ShardContext>,
    mut stream: TcpStream,
    queue: flume::Sender<PendingResponse>,
    peer: SocketAddr,
) -> Result<(), String> {
    let mut last_produce_queued = None;
    loop {
        if context.shutting_down() {
            return Err("broker shutting down".into());
        }
        let frame = read_frame(&mut stream, context.settings.frame_bytes_max).await?;
        crate::metrics::record_bytes_in(frame.len() + 4);
        let (request, body, client_id) = parse_header(frame)?;
        let client = client_id.map(|client_id| api::ClientInfo {
            client_id,
            host: format!("/{}", peer.ip()),
        });
        if context.shutting_down() {
            return Err("broker shutting down".into());
        }
        let handler_context = Rc::clone(context);
        let in_flight = context.in_flight_guard();
        let started = std::time::Instant::now();
        let produce_order = (request.api == ApiKey::Produce).then(|| {
            let (queued, next) = futures_channel::oneshot::channel();
            api::ProduceOrder {
                previous_queued: last_produce_queued.replace(next),
                queued,
            }
        });
        let handler = compio::runtime::spawn(async move {
            let response =
                api::dispatch(&handler_context, request, body, produce_order, client).await;
            drop(in_flight);
            crate::metrics::record_request(request.api, started.elapsed());
            response
        });
        queue
            .send_async(handler)
            .await
            .map_err(|_| "writer gone".to_string())?;
    }
}

/// Reads one size-prefixed frame; a frame over `frame_bytes_max` closes the connection before
/// anything is allocated for it.
async fn read_frame(stream: &mut TcpStream, frame_bytes_max: u32) -> Result<BytesMut, String> {
    let BufResult(result, size) = stream.read_exact([0u8; 4]).await;
    result.map_err(|err| format!("reading frame size: {err}"))?;
    let size = i32::from_be_bytes(size);
    if size < 8 || size as u32 > frame_bytes_max {
        return Err(format!(
            "frame of {size} bytes refused (limit {frame_bytes_max})"
        ));
    }
    let BufResult(result, frame) = stream
        .read_exact(BytesMut::with_capacity(size as usize))
        .await;
    result.map_err(|err| format!("reading frame: {err}"))?;
    Ok(frame)
}

/// Decodes the request header. Unknown APIs and versions close the connection, except an
/// ApiVersions request of a newer version, which gets the v0 answer (KIP-511).
fn parse_header(frame: BytesMut) -> Result<(RequestContext, Bytes, Option<String>), String> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
    let Some((min, max)) = api::supported_range(api) else {
        return Err(format!("unsupported API {api:?}"));
    };
    let mut body = frame.freeze();
    if api == ApiKey::ApiVersions && version > max {
        // The header of an unknown version may not be decodable; the answer needs only the id.
        let request = RequestContext {
            api,
            version,
            correlation_id,
        };
        return Ok((request, Bytes::new(), None));
    }
    if version < min || version > max {
        return Err(format!("unsupported {api:?} version {version}"));
    }
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|err| format!("bad request header: {err}"))?;
    // Only group membership keeps the client id (DescribeGroups shows it); skip the copy elsewhere.
    let client_id = (api == ApiKey::JoinGroup)
        .then(|| header.client_id.map(|id| id.to_string()))
        .flatten();
    Ok((
        RequestContext {
            api,
            version,
            correlation_id,
        },
        body,
        client_id,
    ))
}

/// Sends responses in request order.
async fn write_responses(
    mut stream: TcpStream,
    responses: flume::Receiver<PendingResponse>,
    peer: SocketAddr,
) {
    let pipe = match SplicePipe::new() {
        Ok(pipe) => pipe,
        Err(err) => {
            warn!(%peer, %err, "no splice pipe for this connection");
            return;
        }
    };
    while let Ok(pending) = responses.recv_async().await {
        let response = match pending.await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                debug!(%peer, %err, "request failed; closing");
                break;
            }
            Err(_) => {
                warn!(%peer, "request handler panicked; closing the connection");
                break;
            }
        };
        if let Err(err) = send(&mut stream, &pipe, response).await {
            debug!(%peer, %err, "write failed; closing");
            break;
        }
    }
    let _ = stream.shutdown().await;
}

async fn send(
    stream: &mut TcpStream,
    pipe: &SplicePipe,
    response: Response,
) -> std::io::Result<()> {
    match response {
        Response::Nothing => Ok(()),
        Response::Frame(frame) => {
            crate::metrics::record_bytes_out(frame.len() as u64);
            let BufResult(result, _) = stream.write_all(frame).await;
            result
        }
        Response::Fetch(fetch) => {
            for part in fetch.parts {
                match part {
                    api::fetch_response::FramePart::Inline(bytes) => {
                        crate::metrics::record_bytes_out(bytes.len() as u64);
                        let BufResult(result, _) = stream.write_all(bytes).await;
                        result?;
                    }
                    api::fetch_response::FramePart::Records { topic, partition } => {
                        for slice in &fetch.records[topic][partition] {
                            send_file_range(
                                pipe,
                                &slice.file,
                                slice.position.get(),
                                slice.len,
                                stream,
                            )
                            .await?;
                            crate::metrics::record_bytes_out(slice.len);
                        }
                    }
                }
            }
            Ok(())
        }
    }
}
