//! A connection's writer: responses sent strictly in request order, Fetch record ranges spliced
//! or sent from memory (`crate::residency`), and every handler awaited to its end even when no
//! answer can be sent.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use kafka_protocol::messages::ApiKey;
use tracing::{debug, error, warn};

use super::{Closing, MutedUntil, PendingResponse};
use crate::api::{self, Response};
use crate::produce_stages::{self, Stage};
use crate::residency::{FileRange, RangeSender, SendPolicy};
use crate::transport::ConnWriter;

/// Sends responses in request order. Every handler is awaited to its end, also once nothing more
/// can be sent: a request read whole is served even if its client is gone.
pub(super) async fn write_responses(
    mut stream: ConnWriter,
    responses: flume::Receiver<PendingResponse>,
    peer: SocketAddr,
    policy: SendPolicy,
    // What it tells the reader: a quota mute to wait out, a failed request to stop at.
    (muted_until, closing): (MutedUntil, Closing),
) {
    // The splice pipe (two descriptors) is made at the connection's first Fetch with records, not
    // at accept: an idle or producing connection then holds one descriptor, not three, so
    // --max-connections idle clients need that many descriptors rather than three times as many.
    let mut sender = SpliceSlot {
        sender: None,
        policy,
    };
    // False once a write failed or a request failed: the rest is served, not answered.
    let mut answering = true;
    while let Ok(pending) = responses.recv_async().await {
        let answered = match pending.await {
            Ok(Ok(answered)) => answered,
            Ok(Err(err)) => {
                debug!(%peer, %err, "request failed; closing");
                closing.set(true);
                stop_answering(&mut stream, &mut answering).await;
                continue;
            }
            Err(_) => {
                warn!(%peer, "request handler panicked; closing the connection");
                closing.set(true);
                stop_answering(&mut stream, &mut answering).await;
                continue;
            }
        };
        if !answering {
            continue;
        }
        let is_produce = answered.api == ApiKey::Produce;
        if is_produce {
            produce_stages::record(Stage::ResponseQueue, answered.at.elapsed());
        }
        let write_started = Instant::now();
        // A panic while sending (a bug; a cold read's panic is resumed here) is contained to this
        // connection: were it to end this task, the handlers still queued would be dropped, and
        // dropping a task cancels it, a Produce perhaps halfway through its append.
        let sent = AssertUnwindSafe(send(&mut stream, &mut sender, answered.response))
            .catch_unwind()
            .await;
        let sent = match sent {
            Ok(sent) => sent,
            Err(_) => {
                error!(%peer, "sending a response panicked; closing the connection");
                closing.set(true);
                stop_answering(&mut stream, &mut answering).await;
                continue;
            }
        };
        if let Err(err) = sent {
            match err {
                SendError::NoPipe(err) => {
                    warn!(%peer, %err, "no splice pipe for this connection; closing");
                    closing.set(true);
                }
                // The client is gone: the reader still serves what it sent before it left.
                SendError::Io(err) => debug!(%peer, %err, "write failed; closing"),
            }
            stop_answering(&mut stream, &mut answering).await;
            continue;
        }
        if answered.throttle_ms > 0 {
            // KIP-219: the response went out at once; now the client waits, and so do we.
            let until = Instant::now() + Duration::from_millis(u64::from(answered.throttle_ms));
            muted_until.set(Some(muted_until.get().map_or(until, |old| old.max(until))));
        }
        if is_produce {
            produce_stages::record(Stage::ResponseWrite, write_started.elapsed());
        }
    }
    stop_answering(&mut stream, &mut answering).await;
}

/// Shuts the sending side down (once), so the client learns at once that no answer will come.
async fn stop_answering(stream: &mut ConnWriter, answering: &mut bool) {
    if std::mem::replace(answering, false) {
        stream.shutdown().await;
    }
}

/// A connection's splice pipe, made when first needed.
struct SpliceSlot {
    sender: Option<RangeSender>,
    policy: SendPolicy,
}

impl SpliceSlot {
    fn get(&mut self) -> std::io::Result<&mut RangeSender> {
        match &mut self.sender {
            Some(sender) => Ok(sender),
            slot => Ok(slot.insert(RangeSender::new(self.policy)?)),
        }
    }
}

/// Why a response could not be sent; either way the connection closes.
#[derive(Debug, thiserror::Error)]
enum SendError {
    /// Out of descriptors (or pipe memory): worth a warning, unlike a client gone.
    #[error("making the splice pipe: {0}")]
    NoPipe(std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn send(
    stream: &mut ConnWriter,
    splice: &mut SpliceSlot,
    response: Response,
) -> Result<(), SendError> {
    #[cfg(test)]
    if tests::PANIC_IN_NEXT_SEND.with(|panic| panic.replace(false)) {
        panic!("injected by a test");
    }
    match response {
        Response::Nothing => Ok(()),
        Response::Unencodable => Err(SendError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a response could not be encoded",
        ))),
        Response::Frame(frame) => {
            crate::metrics::record_bytes_out(frame.len() as u64);
            Ok(stream.write_all(frame).await?)
        }
        Response::Fetch(fetch) => {
            // Every record range in sending order; `following` yields, for each range sent, the
            // one after it (its cold reads may start early).
            let ranges: Vec<&ringtail_engine::FileSlice> = fetch
                .parts
                .iter()
                .filter_map(|part| match part {
                    api::fetch_response::FramePart::Records { topic, partition } => {
                        Some(&fetch.records[*topic][*partition])
                    }
                    api::fetch_response::FramePart::Inline(_) => None,
                })
                .flatten()
                .collect();
            let mut following = ranges.iter().skip(1).copied();
            for part in fetch.parts {
                match part {
                    api::fetch_response::FramePart::Inline(bytes) => {
                        crate::metrics::record_bytes_out(bytes.len() as u64);
                        stream.write_all(bytes).await?;
                    }
                    api::fetch_response::FramePart::Records { topic, partition } => {
                        for slice in &fetch.records[topic][partition] {
                            let sender = splice.get().map_err(SendError::NoPipe)?;
                            send_slice(stream, sender, slice, following.next()).await?;
                            crate::metrics::record_bytes_out(slice.len);
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// Sends one file slice of a Fetch (naming the slice sent after it, whose cold reads may start
/// early): spliced from a real file; read into memory from the engine's simulated disk (tests of
/// the engine only, never in the broker: docs/decisions/0017).
async fn send_slice(
    stream: &mut ConnWriter,
    sender: &mut RangeSender,
    slice: &ringtail_engine::FileSlice,
    next: Option<&ringtail_engine::FileSlice>,
) -> std::io::Result<()> {
    fn as_range(slice: &ringtail_engine::FileSlice) -> Option<FileRange<'_>> {
        slice.file.as_real().map(|file| FileRange {
            file,
            position: slice.position.get(),
            len: slice.len,
        })
    }
    if let Some(memory) = &slice.memory {
        // The log's tail cache holds these bytes (direct writes left them out of the page cache).
        stream.write_pieces(memory.clone()).await?;
        crate::residency::record_tail_cache_bytes(slice.len);
        return Ok(());
    }
    match as_range(slice) {
        Some(range) => {
            stream
                // A next slice the tail cache holds is sent from memory: nothing to read early.
                .send_file(
                    sender,
                    range,
                    next.filter(|next| next.memory.is_none()).and_then(as_range),
                )
                .await
        }
        None => {
            let len = usize::try_from(slice.len).map_err(std::io::Error::other)?;
            let bytes = slice.file.read_at_most(slice.position.get(), len).await?;
            if bytes.len() != len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            stream.write_all(bytes).await
        }
    }
}

#[cfg(test)]
mod tests;
