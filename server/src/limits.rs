//! Bounds on what clients can make the broker hold: open connections (broker-wide and per IP),
//! request bytes in memory, and the rate of topic and partition creation (KIP-599's controller
//! mutation quota). One [`Limits`] is shared by every shard; its counters are atomics or short
//! mutex sections, never held across an await.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A refusal is logged at most this often per shard-shared limiter; the metric counts them all.
const REFUSAL_LOG_INTERVAL_MS: u64 = 1_000;

/// Longest pause between two looks at a spent request-bytes budget.
const BUDGET_POLL_MAX: Duration = Duration::from_millis(10);

/// Everything the broker bounds per client, shared by all shards.
pub struct Limits {
    pub connections: Arc<ConnectionLimits>,
    pub request_bytes: Arc<RequestBytesBudget>,
    /// Taken only on shard 0, inside the registry's admin section.
    pub mutations: Mutex<MutationQuota>,
    pub topics_max: u32,
    pub partitions_max: u32,
    started: Instant,
}

impl Limits {
    pub fn new(args: &crate::config::Args) -> anyhow::Result<Self> {
        anyhow::ensure!(
            args.queued_max_request_bytes >= u64::from(args.frame_bytes_max),
            "--queued-max-request-bytes ({}) must be at least --frame-bytes-max ({}): \
             a largest frame could never be read",
            args.queued_max_request_bytes,
            args.frame_bytes_max
        );
        Ok(Self {
            connections: Arc::new(ConnectionLimits::new(
                args.max_connections,
                args.max_connections_per_ip,
            )),
            request_bytes: Arc::new(RequestBytesBudget::new(
                args.queued_max_request_bytes,
                u64::from(args.frame_bytes_max),
            )),
            mutations: Mutex::new(MutationQuota::new(args.partition_mutations_per_sec)),
            topics_max: args.topics_max,
            partitions_max: args.partitions_max,
            started: Instant::now(),
        })
    }

    /// Milliseconds since the broker started: the clock of the mutation quota.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    #[error("{limit} connections open (--max-connections)")]
    Total { limit: u32 },
    #[error("{limit} connections open from this address (--max-connections-per-ip)")]
    PerIp { limit: u32 },
}

/// Counts open connections, broker-wide and per IP.
pub struct ConnectionLimits {
    max_total: u32,
    max_per_ip: u32,
    /// Open connections per IP; the sum is the broker-wide count. An IP leaves the map at zero,
    /// so the map holds at most `max_total` entries.
    open: Mutex<HashMap<IpAddr, u32>>,
    open_total: AtomicU64,
    last_refusal_log_ms: AtomicU64,
}

impl ConnectionLimits {
    pub fn new(max_total: u32, max_per_ip: u32) -> Self {
        Self {
            max_total,
            max_per_ip,
            open: Mutex::new(HashMap::new()),
            open_total: AtomicU64::new(0),
            last_refusal_log_ms: AtomicU64::new(0),
        }
    }

    /// Counts a new connection from `ip`, or says which limit it would break.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, ConnectionRefused> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if self.open_total.load(Ordering::Relaxed) >= u64::from(self.max_total) {
            return Err(ConnectionRefused::Total {
                limit: self.max_total,
            });
        }
        let from_ip = open.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_ip {
            if *from_ip == 0 {
                open.remove(&ip);
            }
            return Err(ConnectionRefused::PerIp {
                limit: self.max_per_ip,
            });
        }
        *from_ip += 1;
        self.open_total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            ip,
        })
    }

    pub fn open_total(&self) -> u64 {
        self.open_total.load(Ordering::Relaxed)
    }

    /// True at most once per [`REFUSAL_LOG_INTERVAL_MS`]: a flood of refusals logs a line a
    /// second, not a line each.
    pub fn should_log_refusal(&self, now_ms: u64) -> bool {
        let last = self.last_refusal_log_ms.load(Ordering::Relaxed);
        (last == 0 || now_ms >= last + REFUSAL_LOG_INTERVAL_MS)
            && self
                .last_refusal_log_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn close(&self, ip: IpAddr) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(from_ip) = open.get_mut(&ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                open.remove(&ip);
            }
        }
        self.open_total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open connection, counted until dropped.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.close(self.ip);
    }
}

/// The broker-wide budget of request bytes in memory, from a frame's read until its handler ends.
///
/// A frame is charged as its bytes arrive, a piece at a time (`FRAME_FIRST_PIECE_BYTES` and
/// `FRAME_PIECE_BYTES_MAX` in connection/mod.rs), not for its announced size up front: a client
/// that announces a large frame and sends nothing must not hold budget it has not filled, or a
/// few such connections would stop every other client's reads (they did: six size prefixes took
/// the default 512 MiB). A size prefix alone now holds the first piece, 64 KiB. Charging as
/// bytes arrive can leave every byte of the budget held by frames still being read, each waiting
/// for more; one such frame at a time may then go over the budget (the overdraft), so reads always
/// progress. Memory held stays below `max_bytes` plus one largest frame.
pub struct RequestBytesBudget {
    max_bytes: u64,
    /// What one connection may hold while waiting for none of its requests: one largest frame.
    connection_share_bytes: u64,
    in_use_bytes: AtomicU64,
    /// Whether a frame is being read over the budget now.
    overdraft_taken: AtomicBool,
    /// Frames read over the budget so far (`ringtail_request_bytes_overdrafts_total`).
    overdrafts_total: AtomicU64,
}

impl RequestBytesBudget {
    pub fn new(max_bytes: u64, connection_share_bytes: u64) -> Self {
        Self {
            max_bytes,
            connection_share_bytes,
            in_use_bytes: AtomicU64::new(0),
            overdraft_taken: AtomicBool::new(false),
            overdrafts_total: AtomicU64::new(0),
        }
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.in_use_bytes.load(Ordering::Relaxed)
    }

    /// Frames read over the budget so far.
    pub fn overdrafts_total(&self) -> u64 {
        self.overdrafts_total.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if both the broker-wide budget and the connection's share (`held_bytes` is
    /// what the connection holds now) allow. A connection holding nothing may always take a
    /// frame that fits the budget, so one frame of any allowed size can be read.
    pub fn try_take(&self, bytes: u64, held_bytes: u64) -> bool {
        if held_bytes > 0 && held_bytes + bytes > self.connection_share_bytes {
            return false;
        }
        self.in_use_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
                (in_use + bytes <= self.max_bytes).then_some(in_use + bytes)
            })
            .is_ok()
    }

    /// Waits until `bytes` can be taken for a connection whose holdings are `held`. Meanwhile
    /// the connection is not read: the client's frames queue in its socket buffer and TCP pushes
    /// back, instead of the broker queueing them in memory.
    pub async fn take(self: &Arc<Self>, bytes: u64, held: &Rc<Cell<u64>>) -> RequestBytesPermit {
        let mut pause = Duration::from_micros(100);
        while !self.try_take(bytes, held.get()) {
            // Polling, not a wait queue: the budget is shared by shards on other threads, and a
            // spent budget is an overload state where a few ms of latency are the point.
            compio::time::sleep(pause).await;
            pause = (pause * 2).min(BUDGET_POLL_MAX);
        }
        held.set(held.get() + bytes);
        RequestBytesPermit {
            budget: Arc::clone(self),
            held: Rc::clone(held),
            bytes,
            overdraft: false,
        }
    }

    /// Adds `bytes` to `permit`, a frame still being read. Waits while the budget is spent, as
    /// [`Self::take`] does, unless no other frame is over the budget: then this one goes over it
    /// until its permit is dropped, and so does the rest of it. The connection's share is kept
    /// either way.
    pub async fn take_more(self: &Arc<Self>, permit: &mut RequestBytesPermit, bytes: u64) {
        let held = Rc::clone(&permit.held);
        let mut pause = Duration::from_micros(100);
        loop {
            if permit.overdraft && held.get() + bytes <= self.connection_share_bytes {
                self.in_use_bytes.fetch_add(bytes, Ordering::AcqRel);
                break;
            }
            if self.try_take(bytes, held.get()) {
                break;
            }
            if held.get() + bytes <= self.connection_share_bytes
                && self
                    .overdraft_taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                permit.overdraft = true;
                self.overdrafts_total.fetch_add(1, Ordering::Relaxed);
                self.in_use_bytes.fetch_add(bytes, Ordering::AcqRel);
                break;
            }
            compio::time::sleep(pause).await;
            pause = (pause * 2).min(BUDGET_POLL_MAX);
        }
        held.set(held.get() + bytes);
        permit.bytes += bytes;
    }

    /// Whether a frame is being read over the budget now.
    #[cfg(test)]
    fn overdraft_taken(&self) -> bool {
        self.overdraft_taken.load(Ordering::Acquire)
    }
}

/// Request bytes counted against the budget until dropped (when the request's handler ends).
pub struct RequestBytesPermit {
    budget: Arc<RequestBytesBudget>,
    held: Rc<Cell<u64>>,
    bytes: u64,
    /// This frame holds the budget's overdraft.
    overdraft: bool,
}

impl Drop for RequestBytesPermit {
    fn drop(&mut self) {
        self.budget
            .in_use_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
        self.held.set(self.held.get().saturating_sub(self.bytes));
        if self.overdraft {
            self.budget.overdraft_taken.store(false, Ordering::Release);
        }
    }
}

/// A token bucket of partition creations per second, as Kafka's controller mutation quota
/// (KIP-599): a mutation is allowed while tokens remain, and may take the bucket below zero (so a
/// large CreateTopics is not refused forever); the debt is repaid at the rate before the next one.
#[derive(Debug)]
pub struct MutationQuota {
    per_sec: f64,
    tokens: f64,
    last_ms: u64,
}

impl MutationQuota {
    pub fn new(partitions_per_sec: u32) -> Self {
        let per_sec = f64::from(partitions_per_sec.max(1));
        Self {
            per_sec,
            tokens: per_sec,
            last_ms: 0,
        }
    }

    /// Takes `partitions` tokens at `now_ms` if any are left; false means over quota.
    pub fn try_take(&mut self, partitions: u32, now_ms: u64) -> bool {
        let elapsed_s = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        // A burst of one second's worth at most.
        self.tokens = (self.tokens + elapsed_s * self.per_sec).min(self.per_sec);
        if self.tokens <= 0.0 {
            return false;
        }
        self.tokens -= f64::from(partitions);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_per_ip_and_in_total_and_freed_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(3, 2));
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limits.try_open(a).unwrap();
        let _second = limits.try_open(a).unwrap();
        assert_eq!(
            limits.try_open(a).err(),
            Some(ConnectionRefused::PerIp { limit: 2 })
        );
        let _third = limits.try_open(b).unwrap();
        assert_eq!(
            limits.try_open(b).err(),
            Some(ConnectionRefused::Total { limit: 3 })
        );
        drop(first);
        assert_eq!(limits.open_total(), 2);
        let _again = limits
            .try_open(a)
            .expect("a closed connection frees its slot");
        assert_eq!(limits.open.lock().unwrap().len(), 2);
    }

    #[test]
    fn an_ip_with_no_connections_leaves_the_map() {
        // Otherwise connections from many addresses would grow the map without bound.
        let limits = Arc::new(ConnectionLimits::new(10, 0));
        assert!(limits.try_open("10.0.0.1".parse().unwrap()).is_err());
        let limits = Arc::new(ConnectionLimits::new(10, 1));
        drop(limits.try_open("10.0.0.1".parse().unwrap()).unwrap());
        assert!(limits.open.lock().unwrap().is_empty());
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second() {
        let limits = ConnectionLimits::new(1, 1);
        assert!(limits.should_log_refusal(5));
        assert!(!limits.should_log_refusal(500));
        assert!(limits.should_log_refusal(1_005));
    }

    #[test]
    fn request_bytes_respect_the_budget_and_the_connection_share() {
        let budget = RequestBytesBudget::new(100, 40);
        assert!(budget.try_take(40, 0), "an idle connection takes one frame");
        assert!(!budget.try_take(10, 40), "over the connection's share");
        assert!(budget.try_take(50, 0));
        assert!(!budget.try_take(20, 0), "over the broker-wide budget");
        assert!(budget.try_take(10, 0));
        assert_eq!(budget.in_use_bytes(), 100);
    }

    #[test]
    fn a_permit_gives_its_bytes_back() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let budget = Arc::new(RequestBytesBudget::new(100, 100));
            let held = Rc::new(Cell::new(0));
            let permit = budget.take(60, &held).await;
            assert_eq!((budget.in_use_bytes(), held.get()), (60, 60));
            drop(permit);
            assert_eq!((budget.in_use_bytes(), held.get()), (0, 0));
        });
    }

    /// Whether `take_more` of `bytes` returns within `wait_ms`.
    async fn taken_within(
        budget: &Arc<RequestBytesBudget>,
        permit: &mut RequestBytesPermit,
        bytes: u64,
        wait_ms: u64,
    ) -> bool {
        let more = std::pin::pin!(budget.take_more(permit, bytes));
        let timer = std::pin::pin!(compio::time::sleep(Duration::from_millis(wait_ms)));
        matches!(
            futures_util::future::select(more, timer).await,
            futures_util::future::Either::Left(_)
        )
    }

    #[test]
    fn frames_charged_as_they_arrive_take_the_overdraft_one_at_a_time() {
        let runtime = compio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let budget = Arc::new(RequestBytesBudget::new(100, 80));
            let (held_a, held_b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
            // Two frames being read fill the budget between them.
            let mut a = budget.take(50, &held_a).await;
            let mut b = budget.take(50, &held_b).await;
            assert!(!budget.try_take(1, 0), "the budget is spent");
            // Neither can wait for the other: one goes over the budget.
            budget.take_more(&mut a, 20).await;
            assert!(budget.overdraft_taken());
            assert_eq!((budget.in_use_bytes(), held_a.get()), (120, 70));
            budget.take_more(&mut a, 10).await;
            assert_eq!(
                budget.in_use_bytes(),
                130,
                "the rest of that frame rides on it"
            );
            // The second frame waits: the overdraft is taken.
            assert!(!taken_within(&budget, &mut b, 10, 30).await);
            // The first frame's handler ends: its bytes and the overdraft go back.
            drop(a);
            assert!(!budget.overdraft_taken());
            assert_eq!((budget.in_use_bytes(), held_a.get()), (50, 0));
            budget.take_more(&mut b, 10).await;
            assert_eq!((budget.in_use_bytes(), held_b.get()), (60, 60));
            assert!(
                !budget.overdraft_taken(),
                "within the budget again: no overdraft"
            );
            // A frame never takes more than the connection's share, overdraft or not.
            assert!(!taken_within(&budget, &mut b, 30, 30).await);
            drop(b);
            assert_eq!(budget.in_use_bytes(), 0);
        });
    }

    #[test]
    fn the_mutation_quota_refills_at_its_rate_and_allows_one_burst() {
        let mut quota = MutationQuota::new(10);
        assert!(
            quota.try_take(25, 0),
            "tokens left: a large request may overdraw"
        );
        assert!(
            !quota.try_take(1, 500),
            "15 in debt, 5 repaid: still below zero"
        );
        assert!(!quota.try_take(1, 1_500), "repaid to zero is not enough");
        assert!(quota.try_take(1, 1_600));
        // Idle for a minute: the bucket holds one second's worth, not sixty.
        assert!(quota.try_take(10, 61_600));
        assert!(!quota.try_take(1, 61_600));
    }
}
