//! Which shard serves a new connection.
//!
//! Every shard accepts on its own SO_REUSEPORT listener, and the kernel picks the listener by a
//! hash of the connection's addresses: a fair coin per connection, blind to what each shard
//! already serves. A Kafka client opens few connections and keeps them, so the coin decides a
//! workload's balance for its whole life. With one producer and one consumer on 2 shards, both
//! landed on the same shard in 3 of 9 logged runs (half, by chance): that shard received and sent
//! every byte while the other idled, and the consumer fell behind the producer
//! (results/connection-placement/). So by default the accepting shard hands a connection to the
//! shard serving the fewest connections (Envoy's "exact balance"), before a byte of it is read;
//! `--connection-placement accepting-shard` keeps the kernel's choice.
//! docs/decisions/0035-connection-placement.md says why counts, and why at accept only.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use compio::net::TcpStream;
use ringtail_engine::ShardId;
use tracing::debug;

use crate::limits::ConnectionPermit;
use crate::listeners::ListenerId;
use crate::shard::ShardContext;

/// How a new connection's shard is chosen (`--connection-placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectionPlacement {
    /// The shard serving the fewest connections; the accepting shard among equals.
    FewestConnections,
    /// The shard whose listener the kernel gave the connection to (SO_REUSEPORT's hash).
    AcceptingShard,
}

/// Connections each shard serves now, shared by every shard.
pub struct ShardConnections {
    placement: ConnectionPlacement,
    open: Vec<AtomicUsize>,
    handed_over_total: AtomicU64,
}

impl ShardConnections {
    pub fn new(placement: ConnectionPlacement, shard_count: usize) -> Self {
        Self {
            placement,
            open: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
            handed_over_total: AtomicU64::new(0),
        }
    }

    /// Connections `shard` serves now.
    pub fn open_on(&self, shard: ShardId) -> usize {
        self.open[usize::from(shard.0)].load(Ordering::Relaxed)
    }

    /// Connections handed from their accepting shard to another since start.
    pub fn handed_over_total(&self) -> u64 {
        self.handed_over_total.load(Ordering::Relaxed)
    }

    /// The shard a connection accepted by `accepting` goes to, counted there from now on. Two
    /// shards choosing at the same moment may both pick the same one: the next choices even it
    /// out, so no lock is taken.
    fn seat(self: &Arc<Self>, accepting: ShardId) -> Seat {
        let shard = match self.placement {
            ConnectionPlacement::AcceptingShard => accepting,
            ConnectionPlacement::FewestConnections => {
                let counts: Vec<usize> = self
                    .open
                    .iter()
                    .map(|open| open.load(Ordering::Relaxed))
                    .collect();
                fewest(&counts, accepting)
            }
        };
        self.seat_on(shard)
    }

    /// Counts a connection on `shard` until the seat drops.
    fn seat_on(self: &Arc<Self>, shard: ShardId) -> Seat {
        self.open[usize::from(shard.0)].fetch_add(1, Ordering::Relaxed);
        Seat {
            connections: Arc::clone(self),
            shard,
        }
    }
}

/// The shard with the fewest of `counts`: `accepting` if it is among them (no hand-over), else
/// the lowest-numbered.
fn fewest(counts: &[usize], accepting: ShardId) -> ShardId {
    let least = counts.iter().copied().min().unwrap_or(0);
    if counts.get(usize::from(accepting.0)) == Some(&least) {
        return accepting;
    }
    let index = counts
        .iter()
        .position(|&count| count == least)
        .unwrap_or(usize::from(accepting.0));
    ShardId(index as u16)
}

/// A connection counted on its shard until dropped (when it closes, or if it never got there).
pub struct Seat {
    connections: Arc<ShardConnections>,
    shard: ShardId,
}

impl Seat {
    /// The same connection counted on `shard` instead (a hand-over that did not happen); itself
    /// if it is counted there already.
    fn move_to(self, shard: ShardId) -> Seat {
        if self.shard == shard {
            return self;
        }
        let connections = Arc::clone(&self.connections);
        drop(self);
        connections.seat_on(shard)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.connections.open[usize::from(self.shard.0)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// What travels to the shard a connection is handed to.
struct Handover {
    /// A copy (dup) of the accepted descriptor: a compio stream belongs to its shard's runtime.
    socket: std::net::TcpStream,
    permit: ConnectionPermit,
    seat: Seat,
}

/// Serves a connection `context`'s shard accepted: here, or on the shard [`ShardConnections`]
/// chooses. A connection that cannot be handed over (the other shard's inbox full or stopped, no
/// descriptor for the copy) is served here: placement never refuses one.
pub fn place(
    context: &Rc<ShardContext>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerId,
    permit: ConnectionPermit,
) {
    let connections = &context.router.connections;
    let seat = connections.seat(context.id);
    let target = seat.shard;
    if target == context.id {
        serve_here(context, stream, peer, listener, permit, seat);
        return;
    }
    let socket = match socket2::SockRef::from(&stream).try_clone() {
        Ok(socket) => std::net::TcpStream::from(socket),
        Err(error) => {
            debug!(%peer, %error, "connection not handed over: no descriptor for its copy");
            serve_here(context, stream, peer, listener, permit, seat);
            return;
        }
    };
    // Shared with the job so that a job the inbox refuses gives its contents back.
    let handover = Arc::new(Mutex::new(Some(Handover {
        socket,
        permit,
        seat,
    })));
    let carried = Arc::clone(&handover);
    let job: crate::shard::ShardJob = Box::new(move |target_context: Rc<ShardContext>| {
        Box::pin(async move {
            let Some(Handover {
                socket,
                permit,
                seat,
            }) = take(&carried)
            else {
                return;
            };
            if target_context.shutting_down() {
                return; // as at a listener that stopped listening: the client sees the close
            }
            match TcpStream::from_std(socket) {
                Ok(stream) => {
                    serve_seated(target_context, stream, peer, listener, permit, seat).await
                }
                Err(error) => debug!(%peer, %error, "handed-over connection not served"),
            }
        })
    });
    match context.router.try_send(target, job) {
        // This shard's descriptor closes; the copy keeps the connection open over there.
        Ok(()) => {
            connections
                .handed_over_total
                .fetch_add(1, Ordering::Relaxed);
        }
        Err(refused) => {
            drop(refused);
            debug!(%peer, shard = target.0, "connection not handed over: that shard's inbox is full or stopped");
            if let Some(Handover { permit, seat, .. }) = take(&handover) {
                serve_here(context, stream, peer, listener, permit, seat);
            }
        }
    }
}

fn take(handover: &Mutex<Option<Handover>>) -> Option<Handover> {
    handover
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// Serves the connection on `context`'s shard; a seat meant for another shard (whose hand-over
/// failed) moves here, so the counts stay true.
fn serve_here(
    context: &Rc<ShardContext>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerId,
    permit: ConnectionPermit,
    seat: Seat,
) {
    let seat = seat.move_to(context.id);
    compio::runtime::spawn(serve_seated(
        Rc::clone(context),
        stream,
        peer,
        listener,
        permit,
        seat,
    ))
    .detach();
}

/// Serves a connection on `context`'s shard, counted there until it ends.
async fn serve_seated(
    context: Rc<ShardContext>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: ListenerId,
    permit: ConnectionPermit,
    _seat: Seat,
) {
    crate::connection::serve(context, stream, peer, listener, permit).await;
}

/// Connections per shard, and how many were handed over, on /metrics.
pub fn render_metrics(out: &mut String, connections: &ShardConnections) {
    out.push_str("# HELP ringtail_shard_connections Client connections each shard serves now.\n# TYPE ringtail_shard_connections gauge\n");
    for shard in 0..connections.open.len() {
        let _ = writeln!(
            out,
            "ringtail_shard_connections{{shard=\"{shard}\"}} {}",
            connections.open_on(ShardId(shard as u16))
        );
    }
    let _ = writeln!(
        out,
        "# HELP ringtail_connections_handed_over_total Connections the accepting shard handed to another (--connection-placement).\n# TYPE ringtail_connections_handed_over_total counter\nringtail_connections_handed_over_total {}",
        connections.handed_over_total()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fewest_connections_win_and_the_accepting_shard_wins_ties() {
        assert_eq!(fewest(&[0, 0], ShardId(1)), ShardId(1));
        assert_eq!(fewest(&[1, 0], ShardId(0)), ShardId(1));
        assert_eq!(fewest(&[2, 3, 2], ShardId(1)), ShardId(0));
        assert_eq!(fewest(&[2, 3, 2], ShardId(2)), ShardId(2));
        assert_eq!(fewest(&[5], ShardId(0)), ShardId(0));
    }

    #[test]
    fn seats_count_until_dropped_and_spread_connections_evenly() {
        let connections = Arc::new(ShardConnections::new(
            ConnectionPlacement::FewestConnections,
            2,
        ));
        // Every connection accepted by shard 0, as the kernel's hash may well do.
        let seats: Vec<Seat> = (0..4).map(|_| connections.seat(ShardId(0))).collect();
        assert_eq!(connections.open_on(ShardId(0)), 2);
        assert_eq!(connections.open_on(ShardId(1)), 2);
        drop(seats);
        assert_eq!(connections.open_on(ShardId(0)), 0);
        assert_eq!(connections.open_on(ShardId(1)), 0);
    }

    #[test]
    fn the_accepting_shard_keeps_its_connections_when_asked() {
        let connections = Arc::new(ShardConnections::new(
            ConnectionPlacement::AcceptingShard,
            2,
        ));
        let seats: Vec<Seat> = (0..3).map(|_| connections.seat(ShardId(0))).collect();
        assert_eq!(connections.open_on(ShardId(0)), 3);
        assert_eq!(connections.open_on(ShardId(1)), 0);
        drop(seats);
    }

    #[test]
    fn a_seat_moved_counts_once_on_its_new_shard_and_stays_if_already_there() {
        let connections = Arc::new(ShardConnections::new(
            ConnectionPlacement::FewestConnections,
            2,
        ));
        let seat = connections.seat_on(ShardId(1));
        let seat = seat.move_to(ShardId(1));
        assert_eq!(connections.open_on(ShardId(1)), 1);
        let seat = seat.move_to(ShardId(0));
        assert_eq!(connections.open_on(ShardId(0)), 1);
        assert_eq!(connections.open_on(ShardId(1)), 0);
        drop(seat);
        assert_eq!(connections.open_on(ShardId(0)), 0);
    }
}
