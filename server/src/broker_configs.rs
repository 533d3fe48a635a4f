//! Altering dynamic broker configs (AlterConfigs / IncrementalAlterConfigs on a BROKER
//! resource), as a KRaft broker with its own controller does: the resource is this node's id or
//! "" (the cluster-wide default); the new set is checked as Kafka's DynamicBrokerConfig checks it
//! (`configs::dynamic::validate`), saved in the topic registry with the admin lock held, and
//! published; the open partition logs then take the log defaults it makes. Runs the registry
//! change on shard 0 (the registry's one writer), like every topic change.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use crate::configs::{self, dynamic};
use ringtail_engine::ShardId;

use crate::shard::ShardContext;
use crate::topics::{change_registry, AdminError, ConfigChange};

/// Whether `name` may be altered here: "" or this node's id; otherwise Kafka's error.
fn check_resource(context: &ShardContext, name: &str) -> Result<(), AdminError> {
    if name.is_empty() {
        return Ok(());
    }
    let id: i32 = name.parse().map_err(|_| {
        AdminError::new(
            ResponseError::InvalidRequest,
            format!("Node id must be an integer, but it is: {name}"),
        )
    })?;
    let node_id = context.settings.node_id;
    if id != node_id {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("Unexpected broker id, expected {node_id}, but received {name}"),
        ));
    }
    Ok(())
}

/// Kafka refuses a resource naming one config twice.
pub(crate) fn check_duplicates(changes: &[ConfigChange]) -> Result<(), AdminError> {
    let mut seen = BTreeSet::new();
    for change in changes {
        let name = match change {
            ConfigChange::Set(name, _)
            | ConfigChange::Delete(name)
            | ConfigChange::Append(name, _)
            | ConfigChange::Subtract(name, _) => name,
            ConfigChange::Clear => continue,
        };
        if !seen.insert(name.as_str()) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Error due to duplicate config keys",
            ));
        }
    }
    Ok(())
}

/// What APPEND and SUBTRACT start from when the resource has no value of its own: Kafka's
/// default of the config (ConfigurationControlManager.getParts reads the schema's default),
/// not the cluster-wide default's value nor the start-up flag.
fn kafka_default(name: &str) -> Option<String> {
    dynamic::log_config(name).map(|def| def.default.to_string())
}

/// `changes` applied to a resource's current dynamic set.
fn changed(
    mut set: BTreeMap<String, String>,
    changes: Vec<ConfigChange>,
) -> Result<BTreeMap<String, String>, AdminError> {
    for change in changes {
        let (name, value, appending) = match change {
            ConfigChange::Set(name, value) => {
                set.insert(name, value);
                continue;
            }
            ConfigChange::Delete(name) => {
                set.remove(&name);
                continue;
            }
            ConfigChange::Clear => {
                set.clear();
                continue;
            }
            ConfigChange::Append(name, value) => (name, value, true),
            ConfigChange::Subtract(name, value) => (name, value, false),
        };
        if dynamic::type_of(&name) != configs::ConfigType::List {
            // Kafka checks a broker resource's operations on the broker before forwarding
            // them (ConfigAdminManager.prepareIncrementalConfigs), and answers INVALID_REQUEST
            // there; INVALID_CONFIG is what the controller answers for a topic.
            let operation = if appending { "append" } else { "subtract" };
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Config value {operation} is not allowed for config key: {name}"),
            ));
        }
        let current = set
            .get(&name)
            .cloned()
            .or_else(|| kafka_default(&name))
            .unwrap_or_default();
        let changed = configs::topic::append_or_subtract(&current, &value, appending);
        set.insert(name, changed);
    }
    Ok(set)
}

/// Alters the dynamic configs of BROKER `resource`; `validate_only` checks and changes nothing.
pub async fn alter(
    context: &Rc<ShardContext>,
    resource: String,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), AdminError> {
    check_resource(context, &resource)?;
    check_duplicates(&changes)?;
    let per_broker = !resource.is_empty();
    if validate_only {
        // Checked against the published sets: the registry is not touched.
        let defaults = context.metadata.broker_defaults();
        let dynamic = &defaults.dynamic;
        let current = if per_broker {
            dynamic.node.clone()
        } else {
            dynamic.default.clone()
        };
        let next = changed(current, changes)?;
        return dynamic::validate(&next, per_broker)
            .map_err(|message| AdminError::new(ResponseError::InvalidRequest, message));
    }
    let logged_changes = format!("{changes:?}");
    let key = resource.clone();
    // Read, change and check the set under the admin lock: concurrent alters compose.
    change_registry(context, move |registry| {
        let current = registry.broker_configs(&key).cloned().unwrap_or_default();
        let next = changed(current, changes)?;
        dynamic::validate(&next, per_broker)
            .map_err(|message| AdminError::new(ResponseError::InvalidRequest, message))?;
        registry.set_broker_configs(&key, next);
        Ok(())
    })
    .await?;
    apply_to_open_logs(context).await?;
    tracing::info!(resource = %resource, changes = %logged_changes, "altered dynamic broker configs");
    Ok(())
}

/// Gives every open partition log the config it now resolves to (the published topics carry
/// the new defaults). Each shard reads the metadata when its job runs, so a later alteration's
/// job never leaves an older config behind (as in `topics::alter_configs`).
async fn apply_to_open_logs(context: &Rc<ShardContext>) -> Result<(), AdminError> {
    for shard in 0..context.router.shard_count() {
        context
            .on_shard(ShardId(shard), |owner| async move {
                for (topic_partition, log) in owner.engine.partitions() {
                    let Some(topic) = owner.metadata.topic(&topic_partition.topic) else {
                        continue;
                    };
                    if log.config() != topic.config {
                        log.set_config(topic.config.clone());
                    }
                }
            })
            .await?;
    }
    Ok(())
}
