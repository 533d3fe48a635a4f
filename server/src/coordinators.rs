//! Starting the group and transaction coordinators on the shard that owns their internal log,
//! and driving their timers. Each tick also points a coordinator at its internal log if the
//! engine replaced it: a log that failed for space is reopened by its shard once space is back
//! (`Shard::reopen_logs_failed_for_space`), and the coordinator kept writing to the failed one,
//! so commits and transaction writes answered COORDINATOR_NOT_AVAILABLE until a restart.
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ringtail_engine::log::{now_ms, PartitionLog};
use ringtail_engine::{Shard, TopicPartition};
use tracing::{error, info};

use crate::shard::ShardContext;

/// The log the engine serves for partition 0 of `topic` if it is another than `held` (reopened
/// after a full disk, or after a move between data dirs).
fn replacement(engine: &Shard, topic: &str, held: &Rc<PartitionLog>) -> Option<Rc<PartitionLog>> {
    let current = engine.partition(&TopicPartition::new(topic, 0))?;
    (!Rc::ptr_eq(&current, held)).then_some(current)
}

/// Partition 0 of the internal `topic` a coordinator keeps its state in, if this shard owns it;
/// `None` too when its data dir is offline (said loudly: `service` is then unavailable).
async fn owned_internal_log(
    context: &Rc<ShardContext>,
    topic: &str,
    service: &str,
) -> Result<Option<Rc<PartitionLog>>> {
    if context.router.owner(topic, 0) != context.id {
        return Ok(None);
    }
    let info = context
        .metadata
        .topic(topic)
        .with_context(|| format!("{topic} is registered at start"))?;
    match context.partition_log(&info, 0).await {
        Ok(log) => Ok(Some(log)),
        Err(ringtail_engine::OpenError::DataDirOffline { path, .. }) => {
            error!(dir = %path.display(), topic,
                "{topic}'s data dir is offline: {service} are unavailable");
            Ok(None)
        }
        Err(err) => Err(err).with_context(|| format!("opening the {topic} log")),
    }
}

/// Loads the group coordinator if this shard owns the offsets topic, and starts its timer.
pub async fn start_coordinator_if_owner(context: &Rc<ShardContext>) -> Result<()> {
    use crate::group::{Coordinator, OFFSETS_TOPIC, TICK_MS};
    let Some(log) = owned_internal_log(context, OFFSETS_TOPIC, "consumer groups").await? else {
        return Ok(());
    };
    let coordinator = Rc::new(
        Coordinator::load(
            log,
            Arc::clone(&context.metadata),
            context.settings.consumer_group,
        )
        .await
        .context("replaying the offsets log")?,
    );
    *context.coordinator.borrow_mut() = Some(Rc::clone(&coordinator));
    let engine = Rc::clone(&context.engine);
    let retention_ms = context.settings.offsets_retention_ms;
    let retention_check = Period::new(context.settings.offsets_retention_check_interval_ms);
    spawn_ticker(TICK_MS, move || {
        let coordinator = Rc::clone(&coordinator);
        let engine = Rc::clone(&engine);
        let retention_check = Rc::clone(&retention_check);
        async move {
            if coordinator.is_stopped() {
                return false;
            }
            if let Some(fresh) = replacement(&engine, OFFSETS_TOPIC, &coordinator.log()) {
                info!("the group coordinator follows its reopened offsets log");
                coordinator.replace_log(fresh);
            }
            coordinator.tick().await;
            if retention_check.due() {
                coordinator.expire_groups(now_ms(), retention_ms).await;
            }
            true
        }
    });
    Ok(())
}

/// A pass of a coordinator's timer that runs once every `interval_ms` (checked at each tick).
struct Period {
    interval_ms: i64,
    last_ms: Cell<i64>,
}

impl Period {
    fn new(interval_ms: u64) -> Rc<Self> {
        Rc::new(Self {
            interval_ms: i64::try_from(interval_ms).unwrap_or(i64::MAX),
            last_ms: Cell::new(now_ms()),
        })
    }

    /// Whether the pass is due now; if so, the next is due one interval later.
    fn due(&self) -> bool {
        let now = now_ms();
        let due = now.saturating_sub(self.last_ms.get()) >= self.interval_ms;
        if due {
            self.last_ms.set(now);
        }
        due
    }
}

/// Drives a coordinator's timer: every `tick_ms`, `tick()`, until it answers false (the
/// coordinator stopped).
fn spawn_ticker<Tick, Ticked>(tick_ms: u64, tick: Tick)
where
    Tick: Fn() -> Ticked + 'static,
    Ticked: std::future::Future<Output = bool>,
{
    compio::runtime::spawn(async move {
        loop {
            compio::time::sleep(Duration::from_millis(tick_ms)).await;
            if !tick().await {
                break;
            }
        }
    })
    .detach();
}

/// Loads the transaction coordinator if this shard owns `__transaction_state`, starts its timer,
/// and finishes (in the background) every transaction a crash left prepared.
pub async fn start_txn_coordinator_if_owner(context: &Rc<ShardContext>) -> Result<()> {
    use crate::txn::{TxnCoordinator, TICK_MS, TRANSACTION_STATE_TOPIC};
    let Some(log) = owned_internal_log(context, TRANSACTION_STATE_TOPIC, "transactions").await?
    else {
        return Ok(());
    };
    let coordinator = Rc::new(
        TxnCoordinator::load(
            log,
            Rc::downgrade(context),
            Arc::clone(&context.transactions),
            context.settings.transaction_max_timeout_ms,
        )
        .await
        .context("replaying the transaction state log")?,
    );
    *context.txn_coordinator.borrow_mut() = Some(Rc::clone(&coordinator));
    let expiration_ms = context.settings.transactional_id_expiration_ms;
    let cleanup = Period::new(context.settings.transactional_id_cleanup_interval_ms);
    let engine = Rc::clone(&context.engine);
    // The first tick finishes prepared transactions; it runs once every shard serves its inbox.
    spawn_ticker(TICK_MS, move || {
        let coordinator = Rc::clone(&coordinator);
        let cleanup = Rc::clone(&cleanup);
        let engine = Rc::clone(&engine);
        async move {
            if coordinator.is_stopped() {
                return false;
            }
            if let Some(fresh) = replacement(&engine, TRANSACTION_STATE_TOPIC, &coordinator.log()) {
                info!("the transaction coordinator follows its reopened log");
                coordinator.replace_log(fresh);
            }
            coordinator.tick().await;
            if cleanup.due() {
                coordinator.expire_transactional_ids(expiration_ms).await;
            }
            true
        }
    });
    Ok(())
}
