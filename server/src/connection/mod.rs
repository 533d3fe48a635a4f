//! One client connection: frames in, responses out, in request order.
//!
//! The reader decodes each frame's header and starts its handler at once, so a client's pipelined
//! requests (librdkafka sends up to 5 produce requests in flight) are served concurrently — their
//! appends join the same group commit. The writer sends the responses strictly in request order, as
//! Kafka requires. At most [`IN_FLIGHT_REQUESTS_MAX`] requests of a connection run at once.
//!
//! # Invariants worth naming
//! - Every request read whole is served to its end, as Kafka does, even when no answer can be
//!   sent: the writer awaits every handler (dropping a handler's task would cancel it), also
//!   after a panic while sending a response, which closes this connection only.
//! - A client gone does not stop the reader: frames already in the socket buffer are served up
//!   to the end of the stream. A failed request (Kafka closes the connection then) stops it.
#![forbid(unsafe_code)]

mod writer;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compio::net::TcpStream;
use compio::runtime::JoinHandle;
use futures_util::future::{select, Either};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tracing::debug;

use crate::acl::Identity;
use crate::api::{self, RequestContext, RequestError, Response};

use crate::limits::{ConnectionPermit, RequestBytesPermit};
use crate::listeners::ListenerId;
use crate::produce_stages::{self, Stage};
use crate::sasl::{Session, FAILED_AUTHENTICATION_DELAY};
use crate::shard::ShardContext;
use crate::transport::{self, ConnReader, ConnWriter};

/// Largest frame a SASL listener reads before the connection has logged in (Kafka's
/// sasl.server.max.receive.size default): an anonymous client cannot make the broker hold more.
pub const UNAUTHENTICATED_FRAME_BYTES_MAX: u32 = 512 * 1024;

/// Requests of one connection being served at once; the reader waits beyond that.
pub const IN_FLIGHT_REQUESTS_MAX: usize = 16;

type PendingResponse = JoinHandle<Result<Answered, RequestError>>;

/// A handler's response, with what the writer needs to time Produce's last stages.
struct Answered {
    response: Response,
    api: ApiKey,
    /// When the handler finished: the response then waits for the ones before it.
    at: Instant,
    /// The quota throttle answered: the connection is muted that long once it is sent.
    throttle_ms: u32,
}

/// Until when the connection is muted (KIP-219): the writer sets it after sending a throttled
/// response, the reader serves no request before then.
type MutedUntil = Rc<Cell<Option<Instant>>>;

/// Set by the writer when a request failed and the connection must close (as Kafka closes it):
/// the reader then reads no further frame.
type Closing = Rc<Cell<bool>>;

/// Why a connection's reader stopped; logged at debug, counted where it is a bound at work.
#[derive(Debug, thiserror::Error)]
enum ReadEnd {
    #[error("client closed the connection")]
    ClientClosed,
    #[error("idle for {0} ms (--connections-max-idle-ms)")]
    Idle(u64),
    #[error("frame not complete {0} ms after its first byte (--frame-read-timeout-ms)")]
    FrameTimeout(u64),
    #[error("frame of {size} bytes refused (limit {limit})")]
    FrameRefused { size: i32, limit: u32 },
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Malformed(String),
    #[error("broker shutting down")]
    ShuttingDown,
    #[error("writer gone")]
    WriterGone,
    #[error("a request failed")]
    RequestFailed,
    #[error("{0:?} before SASL authentication (or after the session expired)")]
    Unauthenticated(ApiKey),
    #[error("SASL authentication failed")]
    AuthenticationFailed,
}

/// Serves a connection until the client closes it, sends garbage, or the shard shuts down.
/// `permit` counts it against the connection limits until it is fully closed.
pub async fn serve(
    context: Rc<ShardContext>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerId,
    permit: ConnectionPermit,
) {
    let _permit = permit;
    // Listed until the connection has ended, so a shutdown can close it (shutdown.rs).
    let _listed = crate::shutdown::LiveConnections::register(&context, &stream);
    let _ = stream.set_nodelay(true);
    // A client that stops reading (its window at zero, the process alive) or vanishes would hold
    // the writer in a send forever, with the segment files and cold read-ahead budget of the
    // response it stalls. As Kafka closes a connection that makes no progress for
    // connections.max.idle.ms, the kernel aborts this one once sent bytes stay unacknowledged, or
    // unsent behind a zero window, that long; the stalled send then fails and the writer goes on.
    let stall_ms = context
        .settings
        .connections_max_idle_ms
        .min(i32::MAX as u64);
    if let Err(error) =
        socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(Duration::from_millis(stall_ms)))
    {
        debug!(%peer, %error, "TCP_USER_TIMEOUT not set");
    }
    let (reader, writer, tls_principal) =
        match open_transport(&context, stream, peer, listener).await {
            Ok(halves) => halves,
            Err(err) => {
                debug!(%peer, %err, "TLS handshake failed; closing");
                return;
            }
        };
    let (queue, responses) = flume::bounded::<PendingResponse>(IN_FLIGHT_REQUESTS_MAX);
    let policy = context.settings.fetch_send_policy;
    let muted_until = MutedUntil::default();
    let closing = Closing::default();
    let writer = compio::runtime::spawn(writer::write_responses(
        writer,
        responses,
        peer,
        policy,
        (Rc::clone(&muted_until), Rc::clone(&closing)),
    ));
    let from = Origin {
        peer,
        listener,
        tls_principal,
        muted_until,
        closing,
    };
    if let Err(reason) = read_requests(&context, reader, queue, from).await {
        match reason {
            ReadEnd::Idle(_) => crate::metrics::record_idle_closed(),
            ReadEnd::FrameTimeout(_) => crate::metrics::record_frame_timeout(),
            _ => {}
        }
        debug!(%peer, %reason, "closing connection");
    }
    // The reader is done; the writer sees every request in flight through, then the socket
    // closes.
    let _ = writer.await;
}

/// The connection's halves: the socket itself, or TLS after a handshake bounded by the frame
/// timeout (a client that stalls its handshake holds a connection no longer than a slow frame);
/// with the principal of the client's certificate, if it showed one.
async fn open_transport(
    context: &Rc<ShardContext>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerId,
) -> std::io::Result<(ConnReader, ConnWriter, Option<String>)> {
    let protocol = context.settings.listener(listener).protocol;
    if !protocol.uses_tls() {
        let (reader, writer) = transport::plain(stream);
        return Ok((reader, writer, None));
    }
    let config = (context.tls.as_ref())
        .expect("TLS listeners start only with a TLS config")
        .for_protocol(protocol);
    let timeout_ms = context.settings.frame_read_timeout_ms;
    let handshake = std::pin::pin!(transport::accept_tls(stream, config));
    let timer = std::pin::pin!(compio::time::sleep(Duration::from_millis(timeout_ms)));
    match select(handshake, timer).await {
        Either::Left((done, _)) => {
            let (reader, writer, principal) = done?;
            if let Some(principal) = &principal {
                debug!(%peer, %principal, "TLS client certificate accepted");
            }
            Ok((reader, writer, principal))
        }
        Either::Right(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("TLS handshake not done within {timeout_ms} ms"),
        )),
    }
}

/// Reads frames and queues their handlers until the connection ends.
async fn read_requests(
    context: &Rc<ShardContext>,
    mut stream: ConnReader,
    queue: flume::Sender<PendingResponse>,
    from: Origin,
) -> Result<(), ReadEnd> {
    let peer = from.peer;
    let from = &from;
    // Made once, and again only when a SASL login names someone else: requests clone a reference.
    let mut identity = match &from.tls_principal {
        Some(principal) => Identity::new(principal, peer.ip()),
        None => Identity::anonymous(peer.ip()),
    };
    let mut last_produce_queued = None;
    let mut session = Session::new();
    let needs_login = context
        .settings
        .listener(from.listener)
        .protocol
        .uses_sasl();
    // Request bytes this connection holds in handlers not yet finished; also "is anything in
    // flight" for the idle timeout, since every request holds at least its 8 header bytes.
    let held_bytes = Rc::new(Cell::new(0u64));
    let timeouts = FrameTimeouts {
        idle_ms: context.settings.connections_max_idle_ms,
        frame_ms: context.settings.frame_read_timeout_ms,
    };
    loop {
        if context.shutting_down() {
            return Err(ReadEnd::ShuttingDown);
        }
        if from.closing.get() {
            return Err(ReadEnd::RequestFailed);
        }
        wait_while_muted(&from.muted_until).await;
        let size = read_frame_size(&mut stream, timeouts, &held_bytes).await?;
        let mut limit = context.settings.frame_bytes_max;
        if needs_login && session.principal(Instant::now()).is_none() {
            // Before a login only small requests make sense (Kafka's sasl.server.max.receive.size).
            limit = limit.min(UNAUTHENTICATED_FRAME_BYTES_MAX);
        }
        let size =
            checked_frame_size(size, limit).map_err(|_| ReadEnd::FrameRefused { size, limit })?;
        let (frame, bytes_permit, frame_read) =
            read_frame_body(&mut stream, size, context, &held_bytes, timeouts.frame_ms).await?;
        crate::metrics::record_bytes_in(frame.len() + 4);
        let request_bytes = frame.len() as u64 + 4;
        let (request, body, client_id) =
            parse_header(frame, from.listener, &identity).map_err(ReadEnd::Malformed)?;
        if request.api == ApiKey::Produce {
            produce_stages::record(Stage::FrameRead, frame_read);
        }
        if matches!(
            request.api,
            ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            let answer = serve_sasl(context, &mut session, request.clone(), body, from).await?;
            if let Some(principal) = session.principal(Instant::now()) {
                if principal != identity.principal() {
                    identity = Identity::new(principal, peer.ip());
                }
            }
            drop(bytes_permit);
            let answered = Answered {
                response: answer.response,
                api: request.api,
                at: Instant::now(),
                throttle_ms: 0,
            };
            let ready = compio::runtime::spawn(async move { Ok(answered) });
            queue
                .send_async(ready)
                .await
                .map_err(|_| ReadEnd::WriterGone)?;
            if !answer.keep_open {
                let_the_client_close_first(&mut stream).await;
                return Err(ReadEnd::AuthenticationFailed);
            }
            continue;
        }
        if request.api != ApiKey::ApiVersions
            && context
                .settings
                .listener(from.listener)
                .protocol
                .uses_sasl()
            && session.principal(Instant::now()).is_none()
        {
            return Err(ReadEnd::Unauthenticated(request.api));
        }
        // A frame read while the writer was muting this connection waits out the mute too.
        wait_while_muted(&from.muted_until).await;
        let quota = quota_charge(
            context,
            &request,
            &session,
            from,
            client_id.as_deref(),
            request_bytes,
        );
        // Only group membership keeps the client id and host (DescribeGroups and
        // ConsumerGroupDescribe show them): classic members join, KIP-848 members heartbeat.
        let client = client_id
            .filter(|_| {
                matches!(
                    request.api,
                    ApiKey::JoinGroup | ApiKey::ConsumerGroupHeartbeat
                )
            })
            .map(|client_id| api::ClientInfo {
                client_id: client_id.to_string(),
                host: format!("/{}", peer.ip()),
            });
        if context.shutting_down() {
            return Err(ReadEnd::ShuttingDown);
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
        let (api_key, api_version) = (request.api, request.version);
        let handler = compio::runtime::spawn(async move {
            let response = api::dispatch(
                &handler_context,
                request,
                body,
                produce_order,
                client,
                quota.as_ref(),
            )
            .await;
            let throttle_ms = quota.as_ref().map_or(0, |quota| quota.throttle_ms());
            drop(bytes_permit);
            drop(in_flight);
            crate::metrics::record_request(api_key, api_version, started.elapsed());
            response.map(|response| Answered {
                response,
                api: api_key,
                at: Instant::now(),
                throttle_ms,
            })
        });
        queue
            .send_async(handler)
            .await
            .map_err(|_| ReadEnd::WriterGone)?;
    }
}

/// Where a connection came from: the client's address, the listener that accepted it, the
/// client certificate's principal (mutual TLS), its quota mute, and whether it is closing.
struct Origin {
    peer: SocketAddr,
    listener: ListenerId,
    tls_principal: Option<String>,
    muted_until: MutedUntil,
    closing: Closing,
}

/// Sleeps until the connection's quota mute, if any, is over.
async fn wait_while_muted(muted_until: &MutedUntil) {
    while let Some(until) = muted_until.get() {
        let now = Instant::now();
        if now >= until {
            muted_until.set(None);
            return;
        }
        compio::time::sleep(until - now).await;
    }
}

/// The quota charge of a Produce or Fetch while byte-rate quotas are stored; nothing (one atomic
/// load) otherwise. The user is the SASL principal, else the client certificate's, else
/// ANONYMOUS.
fn quota_charge(
    context: &ShardContext,
    request: &RequestContext,
    session: &Session,
    from: &Origin,
    client_id: Option<&str>,
    request_bytes: u64,
) -> Option<crate::quotas::Charge> {
    if !matches!(request.api, ApiKey::Produce | ApiKey::Fetch) || !context.quotas.enforcing() {
        return None;
    }
    let principal = session
        .principal(Instant::now())
        .or(from.tls_principal.as_deref());
    let caller = crate::quotas::Caller {
        user: crate::quotas::quota_user(principal),
        client_id: client_id.unwrap_or_default().to_string(),
    };
    Some(crate::quotas::Charge::new(
        std::sync::Arc::clone(&context.quotas),
        caller,
        request_bytes,
    ))
}

/// Serves a SASL request in the reader itself, so the next frame is judged against the session
/// this one leaves. A failed login is answered late ([`FAILED_AUTHENTICATION_DELAY`]).
async fn serve_sasl(
    context: &Rc<ShardContext>,
    session: &mut Session,
    request: RequestContext,
    mut body: Bytes,
    from: &Origin,
) -> Result<api::sasl::SaslAnswer, ReadEnd> {
    let config = context
        .settings
        .listener(from.listener)
        .protocol
        .uses_sasl()
        .then_some(&*context.sasl);
    let api_key = request.api;
    let answer = match api_key {
        ApiKey::SaslHandshake => api::sasl::handshake(config, session, request, &mut body),
        _ => {
            api::sasl::authenticate(
                config,
                session,
                request,
                &mut body,
                from.peer,
                context.limits.now_ms(),
            )
            .await
        }
    }
    .map_err(|err| ReadEnd::Malformed(err.to_string()))?;
    if !answer.keep_open {
        // Kafka delays every authentication failure's answer, a refused mechanism's too.
        compio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
    }
    Ok(answer)
}

/// After a failed login's answer: reads (and drops) until the client closes, for at most
/// [`FAILED_AUTHENTICATION_DELAY`]. Kafka closes right after the late answer; a client that then
/// reads the answer and the end of the stream together may drop the answer and report only a
/// lost connection (kafka-python does), so the client gets the time to read it and leave first.
async fn let_the_client_close_first(stream: &mut ConnReader) {
    let deadline = Instant::now() + FAILED_AUTHENTICATION_DELAY;
    loop {
        let read = std::pin::pin!(stream.read_some(4096));
        let timer = std::pin::pin!(compio::time::sleep(
            deadline.saturating_duration_since(Instant::now())
        ));
        match select(read, timer).await {
            Either::Left((Ok(bytes), _)) if !bytes.is_empty() => continue,
            _ => return,
        }
    }
}

#[derive(Clone, Copy)]
struct FrameTimeouts {
    idle_ms: u64,
    frame_ms: u64,
}

/// Reads a frame's 4-byte size prefix. Waiting for its first byte is bounded by the idle timeout
/// (only while no request of this connection is in flight: a long-polling Fetch is not idle);
/// the rest of the prefix, by the frame timeout.
async fn read_frame_size(
    stream: &mut ConnReader,
    timeouts: FrameTimeouts,
    held_bytes: &Cell<u64>,
) -> Result<i32, ReadEnd> {
    let idle = Duration::from_millis(timeouts.idle_ms);
    let prefix = {
        // One read, not read_exact, so the common case costs one syscall and a partial prefix
        // is known to have started.
        let mut read = std::pin::pin!(stream.read_some(4));
        loop {
            let timer = std::pin::pin!(compio::time::sleep(idle));
            match select(read.as_mut(), timer).await {
                Either::Left((done, _)) => break done,
                // The read stays pending (dropping it could lose bytes it is receiving).
                Either::Right(_) if held_bytes.get() > 0 => continue,
                Either::Right(_) => return Err(ReadEnd::Idle(timeouts.idle_ms)),
            }
        }
    };
    let prefix = prefix?;
    let got = prefix.len();
    if got == 0 {
        return Err(ReadEnd::ClientClosed);
    }
    let mut size = [0u8; 4];
    size[..got].copy_from_slice(&prefix);
    if got < 4 {
        let deadline = Duration::from_millis(timeouts.frame_ms);
        let read = std::pin::pin!(stream.read_exact(4 - got));
        let timer = std::pin::pin!(compio::time::sleep(deadline));
        let rest = match select(read, timer).await {
            Either::Left((done, _)) => done?,
            Either::Right(_) => return Err(ReadEnd::FrameTimeout(timeouts.frame_ms)),
        };
        size[got..].copy_from_slice(&rest);
    }
    Ok(i32::from_be_bytes(size))
}

/// A frame's first piece, charged to the request-bytes budget before any of its body has
/// arrived: all that a size prefix alone holds (limits.rs, `RequestBytesBudget`).
const FRAME_FIRST_PIECE_BYTES: usize = 64 * 1024;
/// Later pieces are as large as what has arrived so far, up to this: a frame holds at most
/// twice what its client has sent, plus the first piece, in a few reads.
const FRAME_PIECE_BYTES_MAX: usize = 1024 * 1024;

/// Reads a frame's `size` bytes, a piece at a time, each charged to the request-bytes budget
/// before it is read: a spent budget stops reading this connection until bytes drain. The
/// frame's bytes must arrive within the frame timeout, counted only while reading: a wait for
/// the budget is the broker's doing, not a slow client's. Returns the frame, its permit and the
/// time spent reading it.
async fn read_frame_body(
    stream: &mut ConnReader,
    size: usize,
    context: &Rc<ShardContext>,
    held_bytes: &Rc<Cell<u64>>,
    frame_ms: u64,
) -> Result<(Bytes, RequestBytesPermit, Duration), ReadEnd> {
    let budget = &context.limits.request_bytes;
    let pool = context.frame_pool();
    let first = size.min(FRAME_FIRST_PIECE_BYTES);
    let mut permit = budget.take(first as u64, held_bytes).await;
    let mut buffer = pool.take(size);
    let mut reading = Duration::ZERO;
    let mut piece = first;
    loop {
        let remaining = Duration::from_millis(frame_ms).saturating_sub(reading);
        let started = Instant::now();
        let read = std::pin::pin!(stream.read_exact_append(buffer, piece));
        let timer = std::pin::pin!(compio::time::sleep(remaining));
        buffer = match select(read, timer).await {
            Either::Left((read, _)) => read?,
            // Dropping the read is safe here: the connection closes.
            Either::Right(_) => return Err(ReadEnd::FrameTimeout(frame_ms)),
        };
        reading += started.elapsed();
        if buffer.len() == size {
            return Ok((pool.frame(buffer), permit, reading));
        }
        piece = (size - buffer.len()).min(
            buffer
                .len()
                .clamp(FRAME_FIRST_PIECE_BYTES, FRAME_PIECE_BYTES_MAX),
        );
        budget.take_more(&mut permit, piece as u64).await;
    }
}

/// A frame's size prefix as a length to read, if the frame may be read at all: at least the
/// 8 bytes every header starts with (API key, version, correlation id), at most `limit_bytes`.
pub(crate) fn checked_frame_size(size: i32, limit_bytes: u32) -> Result<usize, String> {
    match u32::try_from(size) {
        Ok(bytes) if (8..=limit_bytes).contains(&bytes) => Ok(bytes as usize),
        _ => Err(format!("frame size {size} outside 8..={limit_bytes}")),
    }
}

/// Decodes the request header. Unknown APIs and versions close the connection, except an
/// ApiVersions request of a newer version, which gets the v0 answer (KIP-511).
pub(crate) fn parse_header(
    frame: Bytes,
    listener: ListenerId,
    identity: &Identity,
) -> Result<(RequestContext, Bytes, Option<StrBytes>), String> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
    let Some((min, max)) = api::supported_range(api) else {
        return Err(format!("unsupported API {api:?}"));
    };
    let mut body = frame;
    if api == ApiKey::ApiVersions && version > max {
        // The header of an unknown version may not be decodable; the answer needs only the id.
        let request = RequestContext {
            api,
            version,
            correlation_id,
            listener,
            identity: identity.clone(),
        };
        return Ok((request, Bytes::new(), None));
    }
    if version < min || version > max {
        return Err(format!("unsupported {api:?} version {version}"));
    }
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|err| format!("bad request header: {err}"))?;
    // A slice of the frame (no copy): group membership and quotas read it.
    let client_id = header.client_id;
    Ok((
        RequestContext {
            api,
            version,
            correlation_id,
            listener,
            identity: identity.clone(),
        },
        body,
        client_id,
    ))
}
