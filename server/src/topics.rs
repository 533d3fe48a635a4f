//! Topic administration: create, delete, add partitions, change configs. Runs on shard 0, the
//! registry's one writer; other shards see the result through [`Metadata::publish`].
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use ringtail_engine::{ShardId, TopicMeta, TopicPartition};

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
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
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
async fn change_registry<R: Send + 'static>(
    context: &Rc<ShardContext>,
    change: impl FnOnce(&mut ringtail_engine::TopicRegistry) -> Result<R, AdminError> + Send + 'static,
) -> Result<R, AdminError> {
    context
        .on_shard(ShardId(0), move |shard0| async move {
            let registry_cell = shard0
                .registry
                .as_ref()
                .expect("shard 0 holds the registry");
            let _guard = shard0.admin_lock.lock().await;
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
        })
        .await?
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
    change_registry(context, move |registry| {
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
    tracing::info!(topic = %name, partitions, "created topic");
    context
        .metadata
        .topic(&name)
        .ok_or_else(|| AdminError::new(ResponseError::UnknownServerError, "created topic vanished"))
}

/// Returns the topic, creating it with the default partition count if auto-creation is on.
pub async fn get_or_auto_create(context: &Rc<ShardContext>, name: &str) -> Option<Arc<TopicInfo>> {
    if let Some(topic) = context.metadata.topic(name) {
        return Some(topic);
    }
    if !context.settings.auto_create_topics || !valid_topic_name(name) {
        return None;
    }
    let partitions = context.settings.default_partitions;
    match create_topic(
        context,
        name.to_string(),
        partitions,
        BTreeMap::new(),
        false,
    )
    .await
    {
        Ok(topic) => Some(topic),
        // Someone else created it meanwhile.
        Err(_) => context.metadata.topic(name),
    }
}

/// Deletes a topic: the registry entry, then every partition's directory on its owner shard.
pub async fn delete_topic(context: &Rc<ShardContext>, name: String) -> Result<(), AdminError> {
    let topic_name = name.clone();
    let removed = change_registry(context, move |registry| {
        registry
            .remove(&topic_name)
            .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic"))
    })
    .await?;
    for partition in 0..removed.partitions as i32 {
        let topic = name.clone();
        let deleted = context
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
    tracing::info!(topic = %name, "deleted topic");
    Ok(())
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
    change_registry(context, move |registry| {
        let meta = registry.get_mut(&name).ok_or_else(|| {
            AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
        })?;
        meta.partitions = meta.partitions.max(count as u32);
        Ok(())
    })
    .await
}

/// One change of an IncrementalAlterConfigs request.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
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
    let log_defaults = context.metadata.log_defaults().clone();
    let topic_name = name.clone();
    let logged_changes = format!("{changes:?}");
    // Read, change and validate the overrides under the admin lock: concurrent alters compose.
    change_registry(context, move |registry| {
        let meta = registry.get_mut(&topic_name).ok_or_else(|| {
            AdminError::new(ResponseError::UnknownTopicOrPartition, "no such topic")
        })?;
        let mut overrides = meta.configs.clone();
        for change in changes {
            match change {
                ConfigChange::Set(key, value) => {
                    overrides.insert(key, value);
                }
                ConfigChange::Delete(key) => {
                    overrides.remove(&key);
                }
            }
        }
        log_defaults
            .with_overrides(&overrides)
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
    let updated = context
        .metadata
        .topic(&name)
        .ok_or_else(|| AdminError::new(ResponseError::UnknownTopicOrPartition, "topic vanished"))?;
    for partition in 0..updated.partitions {
        let (topic, config) = (updated.name.clone(), updated.config.clone());
        context
            .on_owner(&updated.name, partition, move |owner| async move {
                if let Some(log) = owner
                    .engine
                    .partition(&TopicPartition::new(&topic, partition))
                {
                    log.set_config(config);
                }
            })
            .await?;
    }
    tracing::info!(topic = %name, changes = %logged_changes, "altered topic configs");
    Ok(())
}
