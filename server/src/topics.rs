//! Topic administration: create, delete, add partitions, change configs. Runs on shard 0, the
//! registry's one writer; other shards see the result through [`Metadata::publish`].
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use ringtail_engine::{ShardId, TopicMeta, TopicPartition};

use crate::configs;
use crate::limits::Limits;
use crate::metadata::{valid_topic_name, TopicInfo};
use crate::shard::{ShardContext, ShardGone};

/// Partitions a topic may have: bounds the directories one request can create.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Why an admin operation was refused, as Kafka reports it.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub error: ResponseError,
    pub message: String,
}

impl AdminError {
    pub(crate) fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

impl From<ShardGone> for AdminError {
    fn from(_: ShardGone) -> Self {
        Self::new(ResponseError::UnknownServerError, "shard stopped")
    }
}

/// Runs a registry change on shard 0 with the admin lock held, saves it and publishes it.
pub(crate) async fn change_registry<R: Send + 'static>(
    context: &Rc<ShardContext>,
    change: impl FnOnce(&mut ringtail_engine::TopicRegistry) -> Result<R, AdminError> + Send + 'static,
) -> Result<R, AdminError> {
    with_admin_lock(context, move |shard0| async move {
        apply_registry_change(&shard0, change).await
    })
    .await
}

/// Runs `job` on shard 0 with the admin lock held, to completion in a task of its own. A topic's
/// lifecycle step is the registry change together with the work on the files it implies (the
/// homes of new partitions, a deleted topic's directories and committed offsets): run as one
/// section, a CreateTopics of a name being deleted waits until the old topic's files are gone
/// instead of opening them (its records came back, or the delete's late hop removed the new
/// topic's files), as Kafka's topic ids keep a topic made again apart from the old one. It runs to
/// completion even if the request that started it is dropped (its connection closed): a delete
/// cut after its registry change left its directories for the next topic of the name to open.
async fn with_admin_lock<R, F, Fut>(context: &Rc<ShardContext>, job: F) -> Result<R, AdminError>
where
    R: Send + 'static,
    F: FnOnce(Rc<ShardContext>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<R, AdminError>> + 'static,
{
    context
        .on_shard(ShardId(0), move |shard0| async move {
            let (answer, answered) = futures_channel::oneshot::channel();
            compio::runtime::spawn(async move {
                let _guard = shard0.admin_lock.lock().await;
                let _ = answer.send(job(Rc::clone(&shard0)).await);
            })
            .detach();
            answered.await.unwrap_or_else(|_| {
                Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    "shard stopped",
                ))
            })
        })
        .await?
}

/// Saves and publishes a registry change on shard 0; the caller holds the admin lock
/// ([`with_admin_lock`]).
async fn apply_registry_change<R>(
    shard0: &Rc<ShardContext>,
    change: impl FnOnce(&mut ringtail_engine::TopicRegistry) -> Result<R, AdminError>,
) -> Result<R, AdminError> {
    let registry_cell = shard0
        .registry
        .as_ref()
        .expect("shard 0 holds the registry");
    let mut next = registry_cell.borrow().clone();
    let result = change(&mut next)?;
    if let Err(err) = next.save().await {
        return Err(AdminError::new(
            ResponseError::KafkaStorageError,
            format!("saving the registry: {err}"),
        ));
    }
    shard0
        .metadata
        .publish(&next)
        .map_err(|err| AdminError::new(ResponseError::InvalidConfig, err.to_string()))?;
    *registry_cell.borrow_mut() = next;
    Ok(result)
}

/// Creates a topic; `validate_only` checks without creating.
pub async fn create_topic(
    context: &Rc<ShardContext>,
    name: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<Arc<TopicInfo>, AdminError> {
    if !valid_topic_name(&name) {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!("invalid topic name {name:?}"),
        ));
    }
    // Checked again under the admin lock below; here for validate_only, which takes no lock.
    let existing = context.metadata.topics();
    if let Some(existing) = colliding(existing.iter().map(|topic| topic.name.as_str()), &name) {
        return Err(collision(&name, existing));
    }
    let partitions = if partitions == -1 {
        context.settings.default_partitions
    } else {
        partitions
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!("partitions must be 1..={PARTITIONS_PER_TOPIC_MAX}"),
        ));
    }
    let meta = TopicMeta::new(name.clone(), partitions as u32, configs);
    let limits = Arc::clone(&context.limits);
    context
        .metadata
        .info_for(&meta)
        .map_err(|err| AdminError::new(ResponseError::InvalidConfig, err.to_string()))?;
    if validate_only {
        return match context.metadata.topic(&name) {
            Some(_) => Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {name} exists"),
            )),
            None => Ok(Arc::new(
                context.metadata.info_for(&meta).expect("checked above"),
            )),
        };
    }
    let topic_name = name.clone();
    with_admin_lock(context, move |shard0| async move {
        let exists = shard0
            .registry
            .as_ref()
            .is_some_and(|registry| registry.borrow().get(&meta.name).is_some());
        if !exists {
            remove_leftovers(&shard0, &meta.name).await?;
        }
        apply_registry_change(&shard0, move |registry| {
            if registry.get(&meta.name).is_some() {
                return Err(AdminError::new(
                    ResponseError::TopicAlreadyExists,
                    "topic exists",
                ));
            }
            let names = registry.topics().map(|topic| topic.name.as_str());
            if let Some(existing) = colliding(names, &meta.name) {
                return Err(collision(&meta.name, existing));
            }
            allow_growth(&limits, registry, 1, meta.partitions)?;
            if registry.insert(meta) {
                Ok(())
            } else {
                Err(AdminError::new(
                    ResponseError::TopicAlreadyExists,
                    "topic exists",
                ))
            }
        })
        .await?;
        place_partitions(&shard0, &topic_name, 0..partitions).await;
        Ok(())
    })
    .await?;
    tracing::info!(topic = %name, partitions, "created topic");
    context
        .metadata
        .topic(&name)
        .ok_or_else(|| AdminError::new(ResponseError::UnknownServerError, "created topic vanished"))
}

/// Removes what an earlier topic of this name left behind before a new one is created: partition
/// directories (and their placement) of a deletion cut short, by a shutdown in the middle of it
/// or a directory that could not be removed, which the new topic would otherwise open and serve
/// as its own; and committed offsets of it (OffsetCommit refuses unknown topics, as Kafka does,
/// so any left are the old topic's). Kafka finds such "stray" logs by their topic id at start and
/// deletes them; Ringtail's directories carry no topic id, so it removes them here, where they
/// would do harm, rather than guessing at start from a registry that might be the wrong one.
async fn remove_leftovers(shard0: &Rc<ShardContext>, name: &str) -> Result<(), AdminError> {
    let storage_error = |err: String| {
        AdminError::new(
            ResponseError::KafkaStorageError,
            format!("removing files an earlier topic {name} left behind: {err}"),
        )
    };
    let partitions = shard0
        .engine
        .data_dirs()
        .leftover_partitions(name)
        .await
        .map_err(|err| storage_error(err.to_string()))?;
    if !partitions.is_empty() {
        tracing::warn!(topic = %name, ?partitions, "removing partitions an earlier topic of this name left behind");
    }
    for partition in partitions {
        let topic = name.to_string();
        shard0
            .on_owner(name, partition, move |owner| async move {
                owner
                    .engine
                    .delete_partition(&TopicPartition::new(&topic, partition))
                    .await
            })
            .await
            .map_err(|err| storage_error(err.to_string()))?
            .map_err(|err| storage_error(err.to_string()))?;
    }
    if !forget_committed_offsets(shard0, name).await {
        tracing::warn!(topic = %name, "committed offsets of an earlier topic of this name could not be looked for");
    }
    Ok(())
}

/// Deletes the groups' committed offsets of topic `name` on the group coordinator; whether it
/// answered (it logs a failed write itself).
async fn forget_committed_offsets(shard0: &Rc<ShardContext>, name: &str) -> bool {
    let topic = name.to_string();
    let forgotten = crate::api::groups::on_coordinator(shard0, move |coordinator| async move {
        coordinator.forget_topic(&topic).await
    })
    .await;
    matches!(forgotten, Ok(Some(())))
}

/// Whether the registry may grow by `topics` topics and `partitions` partitions now: within
/// `--topics-max` and `--partitions-max`, then within the mutation quota (which it takes from).
/// Runs on shard 0 inside the admin section, so the check and the insert are one step.
fn allow_growth(
    limits: &Limits,
    registry: &ringtail_engine::TopicRegistry,
    topics: u32,
    partitions: u32,
) -> Result<(), AdminError> {
    if registry.len() as u64 + u64::from(topics) > u64::from(limits.topics_max) {
        return Err(AdminError::new(
            ResponseError::PolicyViolation,
            format!(
                "the broker holds its maximum of {} topics (--topics-max)",
                limits.topics_max
            ),
        ));
    }
    let held: u64 = registry
        .topics()
        .map(|topic| u64::from(topic.partitions))
        .sum();
    if held + u64::from(partitions) > u64::from(limits.partitions_max) {
        return Err(AdminError::new(
            ResponseError::PolicyViolation,
            format!(
                "the broker holds {held} partitions; --partitions-max is {}",
                limits.partitions_max
            ),
        ));
    }
    let mut quota = limits
        .mutations
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    if !quota.try_take(partitions, limits.now_ms()) {
        return Err(AdminError::new(
            ResponseError::ThrottlingQuotaExceeded,
            "over --partition-mutations-per-sec; retry later",
        ));
    }
    Ok(())
}

/// The existing topic `name` would collide with: '.' and '_' are the same in metric names, so
/// Kafka refuses a name that differs from an existing one only there.
fn colliding<'a>(existing: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    if !name.contains(['.', '_']) {
        return None;
    }
    let key = |name: &str| name.replace('.', "_");
    let wanted = key(name);
    existing
        .filter(|other| *other != name && other.contains(['.', '_']))
        .find(|other| key(other) == wanted)
}

fn collision(name: &str, existing: &str) -> AdminError {
    AdminError::new(
        ResponseError::InvalidTopicException,
        format!("Topic '{name}' collides with existing topic: {existing}"),
    )
}

/// Auto-creates those of `names` that do not exist, with the default partition count, in one
/// registry change (one save, not one per topic) and as far as the bounds and the quota allow;
/// the rest are simply not created, as Kafka does. Callers bound how many names they pass.
/// Returns the names this call created.
pub async fn auto_create(context: &Rc<ShardContext>, mut names: Vec<String>) -> Vec<String> {
    names.retain(|name| valid_topic_name(name) && context.metadata.topic(name).is_none());
    names.sort_unstable();
    names.dedup();
    if !context.settings.auto_create_topics || names.is_empty() {
        return Vec::new();
    }
    let partitions = context.settings.default_partitions;
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Vec::new();
    }
    let limits = Arc::clone(&context.limits);
    let wanted = names.len() as u64;
    let created = with_admin_lock(context, move |shard0| async move {
        let created = apply_registry_change(&shard0, move |registry| {
            let mut created = Vec::new();
            for name in names {
                if registry.get(&name).is_some() {
                    continue;
                }
                let existing = registry.topics().map(|topic| topic.name.as_str());
                if colliding(existing, &name).is_some() {
                    // Not created, as Kafka's controller refuses it; the client is answered
                    // UNKNOWN_TOPIC_OR_PARTITION, as for any name not created.
                    continue;
                }
                if allow_growth(&limits, registry, 1, partitions as u32).is_err() {
                    break;
                }
                registry.insert(TopicMeta::new(
                    name.clone(),
                    partitions as u32,
                    BTreeMap::new(),
                ));
                created.push(name);
            }
            if created.is_empty() {
                // Nothing changed: skip the registry save.
                return Err(AdminError::new(ResponseError::ThrottlingQuotaExceeded, ""));
            }
            Ok(created)
        })
        .await?;
        // One save of the placement map for all of them: this holds the admin lock.
        let keys = created
            .iter()
            .flat_map(|name| (0..partitions).map(move |partition| (name.clone(), partition)))
            .collect();
        if let Err(err) = shard0.engine.data_dirs().place(keys).await {
            tracing::warn!(%err, "placing auto-created partitions failed; each is placed when opened");
        }
        Ok(created)
    })
    .await
    .unwrap_or_default();
    crate::metrics::record_topic_creations_refused(wanted.saturating_sub(created.len() as u64));
    for name in &created {
        tracing::info!(topic = %name, partitions, "auto-created topic");
    }
    created
}

/// Records the homes of a topic's new partitions in one save of the placement map (each would
/// otherwise be placed, and the map saved, as it is first opened). A failure is logged: opening
/// the partition places it again.
async fn place_partitions(
    context: &Rc<ShardContext>,
    name: &str,
    partitions: std::ops::Range<i32>,
) {
    let keys = partitions
        .map(|partition| (name.to_string(), partition))
        .collect();
    if let Err(err) = context.engine.data_dirs().place(keys).await {
        tracing::warn!(topic = %name, %err, "placing new partitions failed; each is placed when opened");
    }
}

/// Deletes a topic: the registry entry, then every partition's directory on its owner shard,
/// then the groups' committed offsets of it, all in one admin section ([`with_admin_lock`]).
pub async fn delete_topic(context: &Rc<ShardContext>, name: String) -> Result<(), AdminError> {
    with_admin_lock(context, move |shard0| async move {
        let topic_name = name.clone();
        let removed = apply_registry_change(&shard0, move |registry| {
            registry.remove(&topic_name).ok_or_else(|| {
                AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
            })
        })
        .await?;
        #[cfg(debug_assertions)]
        test_hook::hold_first_delete_files().await;
        for partition in 0..removed.partitions as i32 {
            let topic = name.clone();
            let deleted = shard0
                .on_owner(&name, partition, move |owner| async move {
                    owner
                        .engine
                        .delete_partition(&TopicPartition::new(&topic, partition))
                        .await
                })
                .await?;
            if let Err(err) = deleted {
                tracing::error!(topic = %name, partition, %err, "deleting partition files failed");
            }
        }
        if !forget_committed_offsets(&shard0, &name).await {
            tracing::error!(topic = %name, "the deleted topic's committed offsets could not be deleted");
        }
        tracing::info!(topic = %name, "deleted topic");
        Ok(())
    })
    .await
}

/// Raises a topic's partition count to `count`.
pub async fn add_partitions(
    context: &Rc<ShardContext>,
    name: String,
    count: i32,
    validate_only: bool,
) -> Result<(), AdminError> {
    let current = context
        .metadata
        .topic(&name)
        .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic"))?;
    if count <= current.partitions || count > PARTITIONS_PER_TOPIC_MAX {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!("topic has {} partitions; the new count must be larger and at most {PARTITIONS_PER_TOPIC_MAX}", current.partitions),
        ));
    }
    if validate_only {
        return Ok(());
    }
    let limits = Arc::clone(&context.limits);
    let topic_name = name.clone();
    // The new partitions' homes are recorded in the same admin section: a DeleteTopics running
    // between the registry change and the placement left homes recorded for a deleted topic.
    with_admin_lock(context, move |shard0| async move {
        let before = apply_registry_change(&shard0, move |registry| {
            let name = topic_name;
            let current = registry
                .get(&name)
                .ok_or_else(|| {
                    AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
                })?
                .partitions;
            allow_growth(&limits, registry, 0, (count as u32).saturating_sub(current))?;
            let meta = registry.get_mut(&name).ok_or_else(|| {
                AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
            })?;
            let before = meta.partitions as i32;
            meta.partitions = meta.partitions.max(count as u32);
            Ok(before)
        })
        .await?;
        #[cfg(debug_assertions)]
        test_hook::hold_first_partitions_placement().await;
        place_partitions(&shard0, &name, before..count).await;
        Ok(())
    })
    .await
}

/// One change of an AlterConfigs or IncrementalAlterConfigs request, applied in order.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
    /// Adds the items of a LIST config not already in it.
    Append(String, String),
    /// Removes items from a LIST config.
    Subtract(String, String),
    /// Removes every override (the legacy AlterConfigs replaces the whole set).
    Clear,
}

/// Applies `change` to a topic's `overrides`; `defaults` give a LIST config's value when the topic
/// has no override of it.
fn apply_change(
    overrides: &mut BTreeMap<String, String>,
    defaults: &ringtail_engine::LogConfig,
    change: ConfigChange,
) -> Result<(), AdminError> {
    let (key, value, appending) = match change {
        ConfigChange::Set(key, value) => {
            overrides.insert(key, value);
            return Ok(());
        }
        ConfigChange::Delete(key) => {
            overrides.remove(&key);
            return Ok(());
        }
        ConfigChange::Clear => {
            overrides.clear();
            return Ok(());
        }
        ConfigChange::Append(key, value) => (key, value, true),
        ConfigChange::Subtract(key, value) => (key, value, false),
    };
    let invalid = |message: String| AdminError::new(ResponseError::InvalidConfig, message);
    let def =
        configs::topic::find(&key).ok_or_else(|| invalid(format!("unknown topic config {key}")))?;
    if def.kind != configs::ConfigType::List {
        return Err(invalid(format!(
            "{key} is not a list: APPEND and SUBTRACT apply to LIST configs only"
        )));
    }
    let current = overrides
        .get(&key)
        .cloned()
        .unwrap_or_else(|| configs::topic::broker_value(defaults, def));
    let changed = configs::topic::append_or_subtract(&current, &value, appending);
    overrides.insert(key, changed);
    Ok(())
}

/// Changes a topic's config overrides, saves them, and applies the new config to every open
/// partition log of the topic on its owner shard.
pub async fn alter_configs(
    context: &Rc<ShardContext>,
    name: String,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), AdminError> {
    if context.metadata.topic(&name).is_none() {
        return Err(AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            "no such topic",
        ));
    }
    let log_defaults = context.metadata.log_defaults();
    let topic_name = name.clone();
    let logged_changes = format!("{changes:?}");
    // Read, change and validate the overrides under the admin lock: concurrent alters compose.
    change_registry(context, move |registry| {
        let meta = registry.get_mut(&topic_name).ok_or_else(|| {
            AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
        })?;
        let mut overrides = meta.configs.clone();
        for change in changes {
            apply_change(&mut overrides, &log_defaults, change)?;
        }
        configs::topic::resolve(&log_defaults, &overrides)
            .map_err(|err| AdminError::new(ResponseError::InvalidConfig, err.to_string()))?;
        if validate_only {
            // Nothing changes; the unchanged registry is saved again, which is harmless.
            return Ok(());
        }
        meta.configs = overrides;
        Ok(())
    })
    .await?;
    if validate_only {
        return Ok(());
    }
    #[cfg(debug_assertions)]
    test_hook::hold_first_apply().await;
    let partitions = context
        .metadata
        .topic(&name)
        .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, "topic vanished"))?
        .partitions;
    for partition in 0..partitions {
        let topic = name.clone();
        context
            .on_owner(&name, partition, move |owner| async move {
                // The config is read here, on the owner, when the job runs, not before the hop:
                // concurrent alterations are saved in order but their hops may arrive in any
                // order, and one that carried its own config could put an older one on the log
                // after a newer one (until a restart). Every alteration's job runs after its own
                // publish, so the last job to run applies the newest config.
                let Some(current) = owner.metadata.topic(&topic) else {
                    return;
                };
                if let Some(log) = owner
                    .engine
                    .partition(&TopicPartition::new(&topic, partition))
                {
                    log.set_config(current.config.clone());
                }
            })
            .await?;
    }
    tracing::info!(topic = %name, changes = %logged_changes, "altered topic configs");
    Ok(())
}

/// Test builds only (debug assertions on): holds the first config alteration after its change
/// is saved and published and before it reaches the logs, until the file named by
/// `RINGTAIL_TEST_HOLD_FIRST_CONFIG_APPLY` exists, so a test can let a second alteration of the
/// same topic overtake it; likewise the first delete's files and the first CreatePartitions'
/// placement. Release builds never read the variables.
#[cfg(debug_assertions)]
mod test_hook {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    const HOLD_ENV: &str = "RINGTAIL_TEST_HOLD_FIRST_CONFIG_APPLY";
    /// How often the held alteration looks for the release file (an async sleep: the shard
    /// runs on).
    const POLL: Duration = Duration::from_millis(5);

    pub(super) async fn hold_first_apply() {
        static RELEASE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        static HELD: AtomicBool = AtomicBool::new(false);
        hold_first(HOLD_ENV, &RELEASE_FILE, &HELD).await;
    }

    /// Holds the first DeleteTopics after its registry change is published and before its files
    /// are deleted, until the file named by `RINGTAIL_TEST_HOLD_FIRST_DELETE_FILES` exists.
    pub(super) async fn hold_first_delete_files() {
        static RELEASE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        static HELD: AtomicBool = AtomicBool::new(false);
        hold_first(
            "RINGTAIL_TEST_HOLD_FIRST_DELETE_FILES",
            &RELEASE_FILE,
            &HELD,
        )
        .await;
    }

    /// Holds the first CreatePartitions after its registry change is published and before the
    /// new partitions' homes are recorded, until the file named by
    /// `RINGTAIL_TEST_HOLD_FIRST_PARTITIONS_PLACEMENT` exists.
    pub(super) async fn hold_first_partitions_placement() {
        static RELEASE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        static HELD: AtomicBool = AtomicBool::new(false);
        hold_first(
            "RINGTAIL_TEST_HOLD_FIRST_PARTITIONS_PLACEMENT",
            &RELEASE_FILE,
            &HELD,
        )
        .await;
    }

    /// Waits, the first time only and when `env` names a file, until that file exists.
    async fn hold_first(env: &str, release_file: &OnceLock<Option<PathBuf>>, held: &AtomicBool) {
        let Some(release) = release_file.get_or_init(|| std::env::var_os(env).map(PathBuf::from))
        else {
            return;
        };
        if held.swap(true, Ordering::Relaxed) {
            return;
        }
        while !release.exists() {
            compio::time::sleep(POLL).await;
        }
    }
}
