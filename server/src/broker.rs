//! Starting and stopping the broker: shard threads, their listeners, the shared metadata, and
//! graceful shutdown on SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::{select, Either};
use ringtail_engine::{shard_runtime, DataDirs, DirState, Shard, ShardId, TopicRegistry};
use tracing::{error, info, warn};

use crate::config::Args;
use crate::listeners::ListenerId;
use crate::metadata::Metadata;
use crate::sasl::store::CredentialStore;
use crate::settings::ListenerSettings;
use crate::settings::Settings;
use crate::shard::{serve_inbox, Router, ShardContext, ShardJob, INBOX_JOBS_MAX};

/// Interval flush tick and retention pass period (Kafka's log.retention.check.interval.ms).
const FLUSH_TICK_MS: u64 = 10;

/// Runs the broker until SIGINT or SIGTERM; returns after a clean shutdown.
pub fn run(args: Args) -> Result<()> {
    // Handlers first: a SIGTERM that arrives once the port listens must stop the broker
    // cleanly (logs closed, listeners taken off the port), not kill it by the default action.
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .context("installing the SIGTERM and SIGINT handlers")?;
    let shard_count = args.shard_count();
    let log_defaults = args.log_defaults()?;
    let data_dirs = Arc::new(
        DataDirs::open(args.data_dirs.clone(), args.disk_watermarks()?)
            .context("opening the data dirs")?,
    );
    let _data_dir_locks = lock_data_dirs(&data_dirs)?;
    ringtail_engine::partition_move::remove_move_leftovers(&data_dirs, &data_dirs.placement());
    let metadata = Arc::new(Metadata::for_node(log_defaults, args.node.node_id()));
    let mut registry = compio::runtime::Runtime::new()?
        .block_on(TopicRegistry::load(&args.data_dirs[0]))
        .context("loading the topic registry")?;
    ensure_internal_topics(&args, &mut registry)?;
    place_registered_partitions(&data_dirs, &registry)?;
    let _disk_monitor = spawn_disk_monitor(Arc::clone(&data_dirs), args.disk_check_interval_ms)?;
    metadata
        .publish(&registry)
        .context("topic configs in the registry")?;
    let wanted = args.listeners()?;
    let tls = args.security.tls_config(&wanted)?;
    // One socket per shard for each listener: listeners[shard][i] serves wanted[i].
    let mut bound = Vec::with_capacity(wanted.len());
    let mut per_shard: Vec<Vec<std::net::TcpListener>> =
        (0..shard_count).map(|_| Vec::new()).collect();
    for listener in &wanted {
        let sockets = bind_listeners(listener.bind_address()?, shard_count)
            .with_context(|| format!("listener {listener}"))?;
        bound.push((listener.clone(), sockets[0].local_addr()?));
        for (shard, socket) in per_shard.iter_mut().zip(sockets) {
            shard.push(socket);
        }
    }
    let advertised = args.advertised(&bound)?;
    let metrics_listener = args
        .metrics_listen
        .map(|address| {
            std::net::TcpListener::bind(address)
                .with_context(|| format!("binding --metrics-listen {address}"))
        })
        .transpose()?;
    // DescribeConfigs shows the first listener's address as Kafka's advertised.listeners.
    let (first_host, first_port) = advertised.first().cloned().unwrap_or_default();
    let broker_configs = crate::configs::broker::describe(
        &args,
        metadata.start_up_log_defaults(),
        &crate::configs::broker::Advertised {
            host: &first_host,
            port: first_port,
        },
    );
    let settings = Arc::new(Settings {
        listeners: bound
            .iter()
            .zip(advertised)
            .map(|((listener, _), (host, port))| ListenerSettings {
                protocol: listener.protocol,
                advertised_host: host,
                advertised_port: port,
            })
            .collect(),
        default_partitions: args.default_partitions,
        frame_bytes_max: args.frame_bytes_max,
        auto_create_topics: args.auto_create_topics,
        auto_create_topics_per_request_max: args.auto_create_topics_per_request_max,
        fetch_max_bytes: args.fetch_max_bytes,
        fetch_send_policy: crate::residency::SendPolicy {
            check: args.fetch_residency_check,
            cold_reads_in_flight: usize::from(args.fetch_cold_reads_in_flight),
            cold_read_io: args.fetch_cold_read_io,
            cold_read_priority: args.fetch_cold_read_priority,
            cold_send_thread: args.fetch_cold_send_priority,
        },
        connections_max_idle_ms: args.connections_max_idle_ms,
        frame_read_timeout_ms: args.frame_read_timeout_ms,
        maintenance: ringtail_engine::MaintenanceSchedule {
            flush_tick_ms: FLUSH_TICK_MS,
            retention_check_ms: args.log_cleanup_check_ms,
            producer_expiry_check_ms: args.expiry.producer_id_expiration_check_interval_ms,
            producer_id_expiration_ms: args.expiry.producer_id_expiration_ms,
        },
        cluster_id: "ringtail".to_string(),
        node_id: args.node.node_id(),
        move_bytes_per_sec: args.move_bytes_per_sec,
        consumer_group: args.consumer_group_config()?,
        transaction_max_timeout_ms: args.transaction_max_timeout_ms,
        transactional_id_expiration_ms: args.expiry.transactional_id_expiration_ms,
        offsets_retention_ms: i64::from(args.expiry.offsets_retention_minutes) * 60 * 1000,
        offsets_retention_check_interval_ms: args.expiry.offsets_retention_check_interval_ms,
        transactional_id_cleanup_interval_ms: args
            .expiry
            .transaction_remove_expired_transaction_cleanup_interval_ms,
        broker_configs,
        explicit_flags: args.explicit_flags.clone(),
    });
    let sasl = Arc::new(crate::sasl::SaslConfig::new(
        crate::sasl::parse_mechanisms(&args.security.sasl_mechanisms)?,
        args.security.connections_max_reauth_ms,
        CredentialStore::load(&args.data_dirs[0]).context("loading the SASL credential store")?,
    ));
    let acl = Arc::new(
        crate::acl::Authorizer::load(args.security.acl_config()?, &args.data_dirs[0])
            .context("loading the ACL store")?,
    );
    let quotas = Arc::new(
        crate::quotas::Quotas::load(&args.data_dirs[0]).context("loading the client quotas")?,
    );
    let limits = Arc::new(crate::limits::Limits::new(&args)?);
    let transactions = Arc::new(crate::txn::registry::TxnRegistry::default());
    crate::open_files::raise_soft_limit();
    crate::open_files::warn_if_connections_exceed_limit(args.max_connections);
    crate::residency::set_cold_read_memory_bytes(args.fetch_cold_read_memory_bytes);
    crate::residency::set_cold_read_bytes_per_sec(args.fetch_cold_read_bytes_per_sec);
    crate::open_files::spawn_watcher().context("spawning the open-files watcher")?;
    let mut metrics_listener = metrics_listener;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count)
        .map(|_| flume::bounded::<ShardJob>(INBOX_JOBS_MAX))
        .unzip();
    let router = Arc::new(Router::new(
        senders,
        args.connection_placement,
        args.frame_pool_bytes,
    ));
    let shutdown = Arc::new(AtomicBool::new(false));
    let shards_drained = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::with_capacity(shard_count);
    for (index, (listeners, inbox)) in per_shard.into_iter().zip(receivers).enumerate() {
        let shard = ShardStart {
            id: ShardId(index as u16),
            cpu: args.pin_shards.then_some(index % cores),
            sched_slice_us: args.slice.shard_sched_slice_us,
            listeners,
            sasl: Arc::clone(&sasl),
            acl: Arc::clone(&acl),
            quotas: Arc::clone(&quotas),
            tls: tls.clone(),
            inbox,
            metadata: Arc::clone(&metadata),
            router: Arc::clone(&router),
            settings: Arc::clone(&settings),
            limits: Arc::clone(&limits),
            transactions: Arc::clone(&transactions),
            shutdown: Arc::clone(&shutdown),
            shards_drained: Arc::clone(&shards_drained),
            shard_count,
            registry: (index == 0).then(|| registry.clone()),
            data_dirs: Arc::clone(&data_dirs),
            metrics_listener: if index == 0 {
                metrics_listener.take()
            } else {
                None
            },
        };
        let thread = std::thread::Builder::new()
            .name(format!("shard-{index}"))
            .spawn(move || shard.run())
            .context("spawning a shard thread")?;
        threads.push(thread);
    }
    let listening: Vec<String> = bound
        .iter()
        .map(|(listener, address)| format!("{}://{address}", listener.protocol))
        .collect();
    info!(listeners = ?listening, shards = shard_count, data_dirs = ?args.data_dirs, "ringtail listening");
    // The main thread has nothing else to do: it waits for the first SIGTERM or SIGINT.
    let _ = signals.forever().next();
    info!("shutting down");
    shutdown.store(true, Ordering::Relaxed);
    router.wake_all();
    let mut clean = true;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                error!(%err, "shard failed");
                clean = false;
            }
            Err(_) => clean = false,
        }
    }
    anyhow::ensure!(clean, "a shard did not shut down cleanly");
    info!("stopped");
    Ok(())
}

/// Takes an exclusive lock on each data dir that is not offline, for the life of the process:
/// with SO_REUSEPORT a second broker would otherwise bind the same port silently and write the
/// same files. The first data dir holds the topic registry: offline, the broker cannot start.
fn lock_data_dirs(data_dirs: &DataDirs) -> Result<Vec<std::fs::File>> {
    let first = &data_dirs.dirs()[0];
    if first.state() == DirState::Offline {
        anyhow::bail!(
            "the first --data-dir {} holds the topic registry (topics.json) and is unreadable: {}",
            first.path().display(),
            first.reason().unwrap_or_default()
        );
    }
    data_dirs
        .dirs()
        .iter()
        .filter(|dir| dir.state() != DirState::Offline)
        .map(|dir| {
            let dir = dir.path();
            let path = dir.join(".lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.try_lock()
                .map_err(|_| anyhow::anyhow!("{} is in use by another ringtail", dir.display()))?;
            Ok(file)
        })
        .collect()
}

/// Records a home for every registered partition that has none yet (data from before placement
/// was recorded, or a topic created just before a crash), in one save rather than one per
/// partition as each is opened.
fn place_registered_partitions(data_dirs: &DataDirs, registry: &TopicRegistry) -> Result<()> {
    let partitions = registry
        .topics()
        .flat_map(|topic| {
            (0..topic.partitions as i32).map(move |partition| (topic.name.clone(), partition))
        })
        .collect();
    compio::runtime::Runtime::new()?
        .block_on(data_dirs.place(partitions))
        .context("placing partitions in the data dirs")
}

/// Reads every data dir's free space each `interval_ms` on its own thread (statvfs on a sick
/// disk may block; the shards must not), moving dirs between online and read-only.
fn spawn_disk_monitor(
    data_dirs: Arc<DataDirs>,
    interval_ms: u64,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("disk-monitor".to_string())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(interval_ms));
            data_dirs.refresh_space();
        })
        .context("spawning the disk monitor")
}

/// One SO_REUSEPORT listener per shard, all on the same address: the kernel spreads connections.
///
/// SO_REUSEPORT would also let another process of the same user join the port: a second broker
/// with another data dir would silently take half of the connections, so that one client's
/// coordinator, partitions and metadata live on different brokers. A probe bound first without
/// SO_REUSEPORT fails if anything listens there already, and the broker refuses to start.
fn bind_listeners(address: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    if address.port() != 0 {
        refuse_a_shared_port(address)?;
    }
    let mut listeners = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket
            .bind(&address.into())
            .with_context(|| format!("binding {address}"))?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        // Port 0: the other shards join the port the first one got.
        address = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Fails if `address` is already bound by a listener (of this or another process).
fn refuse_a_shared_port(address: SocketAddr) -> Result<()> {
    let probe = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // SO_REUSEADDR only lets the probe past connections in TIME_WAIT, never past a listener.
    probe.set_reuse_address(true)?;
    match probe.bind(&address.into()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "{address} is in use by another process (another broker would share it through \
             SO_REUSEPORT and split the clients' connections)"
        )),
        Err(err) => Err(err).with_context(|| format!("binding {address}")),
    }
}

/// Takes the listening sockets off the port at once.
///
/// Dropping the accept loops leaves an io_uring accept in flight, and the ring keeps its socket
/// open until the kernel tears the ring down, some time after the process has exited. Until then
/// the old listener still completes handshakes (connections that are reset when it finally
/// closes) and a restarted broker finds the port in use. `shutdown` on a listening socket stops
/// it listening now, whoever else holds it.
fn stop_listening(listeners: &[std::net::TcpListener]) {
    for listener in listeners {
        if let Err(err) = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both) {
            warn!(%err, "stopping a listener");
        }
    }
}

/// What a shard thread starts from.
struct ShardStart {
    id: ShardId,
    /// The core this shard is pinned to (`--pin-shards true`); none: wherever the kernel puts it.
    cpu: Option<usize>,
    /// `--shard-sched-slice-us`: 0 keeps the kernel's slice.
    sched_slice_us: u32,
    /// This shard's socket of each listener, in `--listeners` order (the index is the ListenerId).
    listeners: Vec<std::net::TcpListener>,
    sasl: Arc<crate::sasl::SaslConfig>,
    acl: Arc<crate::acl::Authorizer>,
    quotas: Arc<crate::quotas::Quotas>,
    tls: Option<crate::tls::ListenerTls>,
    inbox: flume::Receiver<ShardJob>,
    metadata: Arc<Metadata>,
    router: Arc<Router>,
    settings: Arc<Settings>,
    limits: Arc<crate::limits::Limits>,
    transactions: Arc<crate::txn::registry::TxnRegistry>,
    shutdown: Arc<AtomicBool>,
    /// Shards that finished their own requests; logs close only when all have, because another
    /// shard's requests may still send jobs here.
    shards_drained: Arc<std::sync::atomic::AtomicUsize>,
    shard_count: usize,
    registry: Option<TopicRegistry>,
    data_dirs: Arc<DataDirs>,
    metrics_listener: Option<std::net::TcpListener>,
}

impl ShardStart {
    fn run(self) -> Result<()> {
        // Before the runtime exists, so the io-wq workers it starts inherit the slice.
        if self.sched_slice_us > 0 {
            if let Err(err) = crate::thread_slice::request_slice(self.sched_slice_us) {
                warn!(shard = self.id.0, %err, "--shard-sched-slice-us not applied; the kernel's slice stays");
            }
        }
        let runtime = shard_runtime(self.cpu).context("shard runtime")?;
        runtime.block_on(self.serve())
    }

    async fn serve(self) -> Result<()> {
        let engine = Rc::new(Shard::with_data_dirs(self.id, self.data_dirs));
        let context = Rc::new(ShardContext {
            id: self.id,
            engine: Rc::clone(&engine),
            metadata: self.metadata,
            router: self.router,
            settings: self.settings,
            limits: self.limits,
            registry: self.registry.map(RefCell::new),
            admin_lock: futures_util::lock::Mutex::new(()),
            shutdown: self.shutdown,
            in_flight_requests: Cell::new(0),
            stop: crate::shutdown::StopSignal::default(),
            connections: crate::shutdown::LiveConnections::default(),
            sasl: self.sasl,
            acl: self.acl,
            quotas: self.quotas,
            tls: self.tls,
            coordinator: RefCell::new(None),
            txn_coordinator: RefCell::new(None),
            transactions: self.transactions,
        });
        let started = async {
            open_owned_partitions(&context).await?;
            crate::coordinators::start_coordinator_if_owner(&context).await?;
            crate::coordinators::start_txn_coordinator_if_owner(&context).await
        };
        if let Err(err) = started.await {
            // A shard that can't serve its partitions must not leave a half-working broker.
            error!(shard = context.id.0, "fatal: {err:#}");
            std::process::exit(1);
        }
        compio::runtime::spawn(serve_inbox(Rc::clone(&context), self.inbox)).detach();
        if let Some(listener) = self.metrics_listener {
            let listener = compio::net::TcpListener::from_std(listener)?;
            info!(listen = %listener.local_addr()?, "metrics on /metrics");
            compio::runtime::spawn(crate::metrics::serve(Rc::clone(&context), listener)).detach();
        }
        // Stopped (not dropped) before the logs close: its steps must not end half-way.
        let (stop_maintenance, maintenance_stop) = futures_channel::oneshot::channel();
        let mut maintenance = compio::runtime::spawn(
            Rc::clone(&engine).run_maintenance(context.settings.maintenance, maintenance_stop),
        );
        let mut accept_loops = Vec::with_capacity(self.listeners.len());
        // Handles on the listening sockets, to stop them listening at shutdown (below).
        let mut listening = Vec::with_capacity(self.listeners.len());
        for (index, listener) in self.listeners.into_iter().enumerate() {
            listening.push(listener.try_clone().context("duplicating a listener")?);
            let listener = compio::net::TcpListener::from_std(listener)?;
            let id = ListenerId(index as u8);
            accept_loops.push(accept_loop(Rc::clone(&context), listener, id));
        }
        // One wake-up per shard stops every listener's loop at once (dropping them).
        let accepting = std::pin::pin!(async {
            let all = std::pin::pin!(futures_util::future::join_all(accept_loops));
            let stop = std::pin::pin!(context.router.wait_for_wake(context.id));
            select(all, stop).await;
        });
        if let Either::Right((_ended, _)) = select(accepting, &mut maintenance).await {
            // The maintenance task runs until stopped below (an fsync failure fails its partition
            // only, docs/decisions/0010-fsync-error-read-only.md): it ended only by panicking.
            error!(shard = self.id.0, "fatal: the maintenance task panicked");
            std::process::exit(3);
        }
        stop_listening(&listening);
        // The coordinator stops first: its timers must not write to a closing log, and requests
        // parked in JoinGroup/SyncGroup are answered now rather than holding up the drain.
        if let Some(coordinator) = context.coordinator.borrow_mut().take() {
            coordinator.stop();
        }
        if let Some(coordinator) = context.txn_coordinator.borrow_mut().take() {
            coordinator.stop();
        }
        let deadline = Instant::now() + crate::shutdown::DRAIN_MAX;
        crate::shutdown::drain(&context).await;
        self.shards_drained.fetch_add(1, Ordering::SeqCst);
        while self.shards_drained.load(Ordering::SeqCst) < self.shard_count
            && Instant::now() < deadline
        {
            compio::time::sleep(Duration::from_millis(5)).await;
        }
        // Interval flushes and retention went on during the drain; the task ends between steps.
        drop(stop_maintenance);
        if maintenance.await.is_err() {
            error!(shard = self.id.0, "fatal: the maintenance task panicked");
            std::process::exit(3);
        }
        engine.close().await.context("closing partition logs")?;
        Ok(())
    }
}

/// The internal topics (`__consumer_offsets`, `__transaction_state`): one partition, every write
/// fsynced, never deleted by age, shrunk by compaction (their coordinators key every record and
/// write tombstones for deletions). An offsets topic from an older data dir without the compact
/// policy gets it; a data dir from before transactions gets `__transaction_state`.
fn ensure_internal_topics(args: &Args, registry: &mut TopicRegistry) -> Result<()> {
    let mut changed = false;
    for name in [
        crate::group::OFFSETS_TOPIC,
        crate::txn::TRANSACTION_STATE_TOPIC,
    ] {
        changed |= ensure_internal_topic(registry, name);
    }
    if changed {
        save_registry(args, registry)?;
    }
    Ok(())
}

/// Whether the registry changed.
fn ensure_internal_topic(registry: &mut TopicRegistry, name: &str) -> bool {
    if let Some(existing) = registry.get_mut(name) {
        let policy = existing.configs.get("cleanup.policy").cloned();
        if policy.as_deref() == Some("compact") {
            return false;
        }
        existing
            .configs
            .insert("cleanup.policy".to_string(), "compact".to_string());
        info!(topic = name, previous = ?policy, "internal topic now has cleanup.policy=compact");
        return true;
    }
    let configs = [
        ("cleanup.policy", "compact"),
        ("flush", "every_batch"),
        ("retention.ms", "-1"),
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    registry.insert(ringtail_engine::TopicMeta::new(name, 1, configs));
    true
}

fn save_registry(args: &Args, registry: &TopicRegistry) -> Result<()> {
    compio::runtime::Runtime::new()?
        .block_on(registry.save())
        .with_context(|| format!("saving the registry in {}", args.data_dirs[0].display()))?;
    Ok(())
}

/// Opens (and recovers) every partition this shard owns, so retention and recovery run at start.
/// A partition whose data dir is offline, or whose files cannot be written now (a full disk), is
/// skipped with an error logged (its requests get KAFKA_STORAGE_ERROR), as Kafka serves the other
/// dirs of a JBOD broker.
async fn open_owned_partitions(context: &Rc<ShardContext>) -> Result<()> {
    for topic in context.metadata.topics() {
        for partition in 0..topic.partitions {
            if context.router.owner(&topic.name, partition) != context.id {
                continue;
            }
            match context.partition_log(&topic, partition).await {
                Ok(_) => {}
                Err(ringtail_engine::OpenError::DataDirOffline { path, .. }) => {
                    error!(topic = %topic.name, partition, dir = %path.display(),
                        "partition not served: its data dir is offline");
                }
                // A full disk can refuse recovery's index writes: the partition is tried again
                // on its next request instead of keeping the whole broker down.
                Err(ringtail_engine::OpenError::Io { path, source }) => {
                    error!(topic = %topic.name, partition, path = %path.display(), %source,
                        "partition not opened at start; retried on its next request");
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("opening {}-{partition}", topic.name))
                }
            }
        }
    }
    Ok(())
}

/// Accepts connections until shutdown.
async fn accept_loop(
    context: Rc<ShardContext>,
    listener: compio::net::TcpListener,
    id: ListenerId,
) {
    // An accept error (EMFILE when the process is out of descriptors) repeats every retry until
    // something frees one: logged at most once a second, with how many there were.
    let mut accept_failures_unlogged: u64 = 0;
    let mut accept_failure_logged_at: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // An IPv4 client of an IPv6 socket (a listener on `[::]`) arrives as
                // `::ffff:a.b.c.d`; ACL hosts, the per-IP limit and logs know it as `a.b.c.d`,
                // as Kafka (Java) does, or a DENY on its IPv4 address would not apply.
                let peer = std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port());
                crate::metrics::record_connection();
                match context.limits.connections.try_open(peer.ip()) {
                    Ok(permit) => crate::placement::place(&context, stream, peer, id, permit),
                    Err(refused) => {
                        // Accepted then dropped at once: the client sees the close, and the
                        // listen backlog does not fill with connections we will never serve.
                        crate::metrics::record_connection_refused();
                        if context
                            .limits
                            .connections
                            .should_log_refusal(context.limits.now_ms())
                        {
                            warn!(%peer, %refused, "refusing connections (logged once a second)");
                        }
                        drop(stream);
                    }
                }
            }
            Err(err) => {
                accept_failures_unlogged += 1;
                if accept_failure_logged_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
                {
                    warn!(
                        %err,
                        failures = accept_failures_unlogged,
                        "accept failed (logged at most once a second)"
                    );
                    accept_failures_unlogged = 0;
                    accept_failure_logged_at = Some(Instant::now());
                }
                compio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if context.shutting_down() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::Parser;
    use ringtail_engine::TopicMeta;

    use super::*;
    use crate::group::OFFSETS_TOPIC;

    #[test]
    fn an_offsets_topic_from_an_older_data_dir_gets_the_compact_policy() {
        // Compaction is how the offsets topic stays small: an existing one must be compacted too.
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let args = Args::try_parse_from(["ringtail", "--data-dir", data_dir]).unwrap();
        let runtime = compio::runtime::Runtime::new().unwrap();
        let mut registry = runtime.block_on(TopicRegistry::load(dir.path())).unwrap();
        let old_configs = BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]);
        registry.insert(TopicMeta::new(OFFSETS_TOPIC, 1, old_configs));
        ensure_internal_topics(&args, &mut registry).unwrap();
        let reloaded = runtime.block_on(TopicRegistry::load(dir.path())).unwrap();
        let configs = &reloaded.get(OFFSETS_TOPIC).unwrap().configs;
        assert_eq!(configs["cleanup.policy"], "compact");
        assert_eq!(configs["retention.ms"], "-1", "other configs are kept");
    }
}
