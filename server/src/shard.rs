//! Shard threads and the message passing between them.
//!
//! Each shard is a thread pinned to a core (unless `--pin-shards false`), running its own
//! compio runtime (its own io_uring), owning the partitions [`partition_owner`] assigns it, and
//! accepting connections on its own SO_REUSEPORT listener. A connection is served on the shard placement.rs gives it; work on a
//! partition another shard owns is sent there as a job over a bounded channel and its result comes back on a
//! oneshot. No lock guards the data path.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_channel::oneshot;
use ringtail_engine::{
    partition_owner, PartitionLog, Shard, ShardId, TopicPartition, TopicRegistry,
};
use std::cell::RefCell;

use crate::metadata::{Metadata, TopicInfo};
use crate::settings::Settings;

/// Jobs a shard's inbox holds before senders wait: the bound between shards.
pub const INBOX_JOBS_MAX: usize = 4096;

/// Work sent to another shard: runs there, on its thread, with its context.
pub type ShardJob = Box<dyn FnOnce(Rc<ShardContext>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The senders of every shard's inbox; shared by all shards.
pub struct Router {
    inboxes: Vec<flume::Sender<ShardJob>>,
    /// Connections each shard serves, and where a new one goes (placement.rs).
    pub connections: Arc<crate::placement::ShardConnections>,
    /// One wake-up channel per shard, for shutdown.
    wakes: Vec<(flume::Sender<()>, flume::Receiver<()>)>,
    /// Each shard's spare request-frame buffers (indexed by shard; frame_pool.rs). Shared so that
    /// a frame dropped on another shard returns its buffer, and /metrics sees them all.
    pub frame_pools: Vec<Arc<crate::frame_pool::FramePool>>,
}

impl Router {
    pub fn new(
        inboxes: Vec<flume::Sender<ShardJob>>,
        placement: crate::placement::ConnectionPlacement,
        frame_pool_bytes: u64,
    ) -> Self {
        let wakes = inboxes.iter().map(|_| flume::bounded(1)).collect();
        let connections = Arc::new(crate::placement::ShardConnections::new(
            placement,
            inboxes.len(),
        ));
        let frame_pools = (inboxes.iter())
            .map(|_| crate::frame_pool::FramePool::new(frame_pool_bytes))
            .collect();
        Self {
            inboxes,
            connections,
            wakes,
            frame_pools,
        }
    }

    /// Wakes every shard's accept loop (shutdown).
    pub fn wake_all(&self) {
        for (sender, _) in &self.wakes {
            let _ = sender.try_send(());
        }
    }

    /// Resolves when [`Router::wake_all`] is called.
    pub async fn wait_for_wake(&self, shard: ShardId) {
        let _ = self.wakes[shard.0 as usize].1.recv_async().await;
    }

    pub fn shard_count(&self) -> u16 {
        self.inboxes.len() as u16
    }

    /// The shard that owns a partition.
    pub fn owner(&self, topic: &str, partition: i32) -> ShardId {
        partition_owner(topic, partition, self.shard_count())
    }

    /// Puts a job in `shard`'s inbox if it has room now; else gives the job back.
    pub fn try_send(&self, shard: ShardId, job: ShardJob) -> Result<(), ShardJob> {
        self.inboxes[shard.0 as usize]
            .try_send(job)
            .map_err(flume::TrySendError::into_inner)
    }

    /// Sends a job to `shard`'s inbox. Fails only when that shard has stopped.
    pub async fn send(&self, shard: ShardId, job: ShardJob) -> Result<(), ShardGone> {
        self.inboxes[shard.0 as usize]
            .send_async(job)
            .await
            .map_err(|_| ShardGone)
    }
}

/// The target shard has shut down.
#[derive(Debug, thiserror::Error)]
#[error("shard stopped")]
pub struct ShardGone;

/// Everything a shard's tasks share.
pub struct ShardContext {
    pub id: ShardId,
    pub engine: Rc<Shard>,
    pub metadata: Arc<Metadata>,
    pub router: Arc<Router>,
    pub settings: Arc<Settings>,
    /// Connection, request-bytes and mutation bounds, shared by every shard.
    pub limits: Arc<crate::limits::Limits>,
    /// The topic registry's one writer lives on shard 0.
    pub registry: Option<RefCell<TopicRegistry>>,
    /// Serializes registry changes on shard 0 (each saves the whole file).
    pub admin_lock: futures_util::lock::Mutex<()>,
    /// Set once by the signal handler: stop taking requests, finish, flush, exit.
    pub shutdown: Arc<AtomicBool>,
    /// Requests being served on this shard (graceful shutdown waits for them).
    pub in_flight_requests: Cell<usize>,
    /// Fired when this shard starts stopping: parked requests answer at once.
    pub stop: crate::shutdown::StopSignal,
    /// This shard's client connections, closed by the shutdown.
    pub connections: crate::shutdown::LiveConnections,
    /// SASL mechanisms and the credential store, shared by every shard.
    pub sasl: Arc<crate::sasl::SaslConfig>,
    /// The ACLs and the rules that apply them, shared by every shard.
    pub acl: Arc<crate::acl::Authorizer>,
    /// The client quotas, shared by every shard.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// The TLS config of SSL and SASL_SSL listeners, if there are any.
    pub tls: Option<crate::tls::ListenerTls>,
    /// The group coordinator, on the shard that owns `__consumer_offsets` partition 0, once loaded.
    pub coordinator: RefCell<Option<Rc<crate::group::Coordinator>>>,
    /// The transaction coordinator, on the shard that owns `__transaction_state` partition 0.
    pub txn_coordinator: RefCell<Option<Rc<crate::txn::TxnCoordinator>>>,
    /// What Produce checks of transactional batches, shared by every shard (txn/registry.rs).
    pub transactions: Arc<crate::txn::registry::TxnRegistry>,
}

impl ShardContext {
    /// This shard's spare request-frame buffers.
    pub fn frame_pool(&self) -> &Arc<crate::frame_pool::FramePool> {
        &self.router.frame_pools[usize::from(self.id.0)]
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    pub fn request_started(&self) {
        self.in_flight_requests
            .set(self.in_flight_requests.get() + 1);
    }

    pub fn request_done(&self) {
        self.in_flight_requests
            .set(self.in_flight_requests.get().saturating_sub(1));
    }

    /// Counts a request as in flight until the guard drops (also when its task is cancelled).
    pub fn in_flight_guard(self: &Rc<Self>) -> InFlightGuard {
        self.request_started();
        InFlightGuard(Rc::clone(self))
    }

    /// Runs `job` on the shard that owns (`topic`, `partition`) and returns its result: directly
    /// if that is this shard, else by message passing.
    pub async fn on_owner<R, F, Fut>(
        self: &Rc<Self>,
        topic: &str,
        partition: i32,
        job: F,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.on_shard(self.router.owner(topic, partition), job)
            .await
    }

    /// Runs `job` on `shard` and returns its result.
    pub async fn on_shard<R, F, Fut>(
        self: &Rc<Self>,
        shard: ShardId,
        job: F,
    ) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if shard == self.id {
            return Ok(job(Rc::clone(self)).await);
        }
        let (reply, result) = oneshot::channel();
        let boxed: ShardJob = Box::new(move |context| {
            Box::pin(async move {
                let _ = reply.send(job(context).await);
            })
        });
        self.router.send(shard, boxed).await?;
        result.await.map_err(|_| ShardGone)
    }

    /// This shard's log of a partition, opened (and recovered) on first use. Call on the owner.
    pub async fn partition_log(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<Rc<PartitionLog>, ringtail_engine::OpenError> {
        debug_assert_eq!(
            self.router.owner(&topic.name, partition),
            self.id,
            "only the owner opens a partition"
        );
        let topic_partition = TopicPartition::new(&topic.name, partition);
        if let Some(log) = self.engine.partition(&topic_partition) {
            return Ok(log);
        }
        // A request holding metadata from before a DeleteTopics must not bring the partition back.
        let current = self.metadata.topic(&topic.name);
        let Some(current) = current.filter(|current| {
            current.topic_id == topic.topic_id && current.has_partition(partition)
        }) else {
            return Err(ringtail_engine::OpenError::Deleted {
                topic: topic.name.clone(),
                partition,
            });
        };
        // Checked again once the engine's open lock is held: a DeleteTopics published while this
        // waited behind it (its delete_partition holds that lock) must win.
        let metadata = Arc::clone(&self.metadata);
        let (name, topic_id) = (topic.name.clone(), topic.topic_id);
        let log = self
            .engine
            .open_partition_if(topic_partition, current.config.clone(), move || {
                metadata.topic(&name).is_some_and(|still| {
                    still.topic_id == topic_id && still.has_partition(partition)
                })
            })
            .await?;
        // A config alteration published while the log was being opened found no open log to
        // change (topics::alter_configs): the log takes the newest config now.
        if let Some(newest) = self
            .metadata
            .topic(&topic.name)
            .filter(|newest| newest.topic_id == topic.topic_id && newest.config != current.config)
        {
            log.set_config(newest.config.clone());
        }
        Ok(log)
    }
}

/// Keeps a request counted as in flight; see [`ShardContext::in_flight_guard`].
pub struct InFlightGuard(Rc<ShardContext>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.request_done();
    }
}

/// Drains a shard's inbox, running each job as a task of this shard.
pub async fn serve_inbox(context: Rc<ShardContext>, inbox: flume::Receiver<ShardJob>) {
    while let Ok(job) = inbox.recv_async().await {
        compio::runtime::spawn(job(Rc::clone(&context))).detach();
    }
}

/// Items a handler processes between two [`yield_now`]s when a request names very many of them
/// (a Metadata or Fetch naming 100,000 topics or partitions): the shard's other connections get
/// a turn every few milliseconds instead of waiting for the whole request.
pub const ITEMS_PER_YIELD: usize = 1024;

/// Lets the shard's other tasks run, then resumes (the engine's, which its cleaner uses too).
pub use ringtail_engine::yield_now;
