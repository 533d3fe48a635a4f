//! A shard's part of a graceful stop (SIGTERM/SIGINT): what wakes its parked requests, the
//! connections it must close, and the bounded drain before its logs close.
//!
//! The order matters:
//! 1. the listeners stop (broker.rs) and [`StopSignal`] fires: parked long-poll fetches answer now
//!    with what they have rather than holding the stop for their `max_wait_ms`;
//! 2. every connection's read side is shut: idle readers end, no further request is read;
//! 3. requests in flight finish (bounded by [`SHUTDOWN_GRACE`]), so every append they made is in
//!    the log before it closes, and their answers are queued;
//! 4. connections get [`RESPONSES_GRACE`] to send those answers, then are shut both ways: a
//!    client that never reads its answers fails its connection's send at once instead of holding
//!    a splice that the shard thread's exit would wait on for ever (a pipe closed under a splice
//!    blocked on a full socket hangs the closing thread in the kernel).
//!
//! Kafka closes every connection at shutdown without waiting for their answers; waiting a little
//! lets a client that reads see the answer of what it asked for last.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::net::TcpStream;
use futures_channel::oneshot;
use futures_util::future::{FutureExt, Shared};
use tracing::warn;

use crate::shard::ShardContext;

/// How long shutdown waits for in-flight requests before closing the logs anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long connections may take to send the answers of the requests finished at shutdown before
/// they are closed under a client that does not read them.
pub const RESPONSES_GRACE: Duration = Duration::from_secs(2);
/// How long connections shut both ways may take to end (their pending sends fail at once).
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The longest [`drain`] takes: another shard waits that long for this one before closing its
/// logs (this shard's requests may still send it jobs until then).
pub const DRAIN_MAX: Duration = SHUTDOWN_GRACE
    .saturating_add(RESPONSES_GRACE)
    .saturating_add(CLOSE_GRACE);
/// Logged when connections shut both ways are still there after [`CLOSE_GRACE`].
const CONNECTIONS_LEFT_OPEN: &str = "closing with connections still open after being shut";
/// How often the drain looks again.
const POLL: Duration = Duration::from_millis(5);

/// Fired once when the shard starts stopping; every waiter wakes, later ones do not wait.
pub struct StopSignal {
    sender: RefCell<Option<oneshot::Sender<()>>>,
    stopped: Shared<oneshot::Receiver<()>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        let (sender, receiver) = oneshot::channel();
        Self {
            sender: RefCell::new(Some(sender)),
            stopped: receiver.shared(),
        }
    }
}

impl StopSignal {
    /// Wakes every waiter (dropping the sender completes the shared receiver).
    pub fn fire(&self) {
        self.sender.borrow_mut().take();
    }

    /// Resolves once [`StopSignal::fire`] was called.
    pub async fn wait(&self) {
        let _ = self.stopped.clone().await;
    }
}

/// The shard's open client connections, each by a handle on its socket (a clone sharing the
/// descriptor, so the descriptor cannot be closed and reused while it is listed here).
#[derive(Default)]
pub struct LiveConnections {
    next_id: Cell<u64>,
    streams: RefCell<HashMap<u64, TcpStream>>,
}

impl LiveConnections {
    /// Lists a connection until the returned guard drops.
    pub fn register(context: &Rc<ShardContext>, stream: &TcpStream) -> Registered {
        let connections = &context.connections;
        let id = connections.next_id.get();
        connections.next_id.set(id + 1);
        connections.streams.borrow_mut().insert(id, stream.clone());
        Registered {
            context: Rc::clone(context),
            id,
        }
    }

    pub fn len(&self) -> usize {
        self.streams.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts every listed socket (`how`); the connections' pending reads or sends then end.
    fn shut_all(&self, how: Shutdown) {
        for stream in self.streams.borrow().values() {
            // ENOTCONN: the client already went.
            let _ = socket2::SockRef::from(stream).shutdown(how);
        }
    }
}

/// Keeps a connection listed in [`LiveConnections`] while it lives.
pub struct Registered {
    context: Rc<ShardContext>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.context
            .connections
            .streams
            .borrow_mut()
            .remove(&self.id);
    }
}

/// Steps 1-4 of the module doc on this shard. Returns once its requests are done and its
/// connections closed, or the bounds passed (logged).
pub async fn drain(context: &Rc<ShardContext>) {
    context.stop.fire();
    context.connections.shut_all(Shutdown::Read);
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while context.in_flight_requests.get() > 0 && Instant::now() < deadline {
        compio::time::sleep(POLL).await;
    }
    if context.in_flight_requests.get() > 0 {
        warn!(
            shard = context.id.0,
            "closing with requests still in flight"
        );
    }
    wait_for_connections(context, RESPONSES_GRACE).await;
    if !context.connections.is_empty() {
        // Their clients do not read: what they were sent is all they get.
        context.connections.shut_all(Shutdown::Both);
        wait_for_connections(context, CLOSE_GRACE).await;
        if !context.connections.is_empty() {
            // A task still holds a connection whose socket is shut both ways: a broker bug (the
            // stop tests assert this line never appears), reported instead of hanging the stop.
            warn!(
                shard = context.id.0,
                connections = context.connections.len(),
                "{CONNECTIONS_LEFT_OPEN}"
            );
        }
    }
}

async fn wait_for_connections(context: &ShardContext, grace: Duration) {
    let deadline = Instant::now() + grace;
    while !context.connections.is_empty() && Instant::now() < deadline {
        compio::time::sleep(POLL).await;
    }
}
