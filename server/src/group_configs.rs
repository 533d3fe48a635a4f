//! Altering a consumer group's configs (IncrementalAlterConfigs / AlterConfigs on a GROUP
//! resource, KIP-848) as Kafka 4.0 does: SET and DELETE on the group's set, APPEND and SUBTRACT
//! refused (no group config is a LIST), the name checked (ControllerConfigurationValidator: the
//! empty name is the "default group", refused), the whole new set checked against the broker's
//! bounds (`group::consumer::group_config`), then saved in the topic registry next to the dynamic
//! broker configs (one atomic replace of `topics.json`) and published; the group's coordinator
//! reads it at the group's next heartbeat. As in Kafka, a group need not exist to have configs,
//! and deleting a group (DeleteGroups, offset retention) leaves its configs in place.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use crate::group::consumer::{group_config, ConsumerGroupConfig};
use crate::shard::ShardContext;
use crate::topics::{change_registry, AdminError, ConfigChange};

/// Bytes the configs of all groups may take (group ids, names and values): a group need not
/// exist to have configs, so without a bound a client could grow the registry file, rewritten
/// whole at every change, without end. Kafka has no such bound; real clusters set configs on a
/// handful of groups.
pub const GROUP_CONFIGS_BYTES_MAX: usize = 4 << 20;

/// Bytes one group's configs take toward [`GROUP_CONFIGS_BYTES_MAX`].
fn set_bytes(group_id: &str, set: &BTreeMap<String, String>) -> usize {
    if set.is_empty() {
        return 0;
    }
    group_id.len()
        + set
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>()
}

/// Refuses a change that grows the configs of all groups past [`GROUP_CONFIGS_BYTES_MAX`]
/// (POLICY_VIOLATION); changes that shrink them always pass.
fn check_bytes_bound(
    all: &BTreeMap<String, BTreeMap<String, String>>,
    group_id: &str,
    next: &BTreeMap<String, String>,
) -> Result<(), AdminError> {
    let current = all.get(group_id).map_or(0, |set| set_bytes(group_id, set));
    let next_bytes = set_bytes(group_id, next);
    let others: usize = all
        .iter()
        .map(|(group, set)| set_bytes(group, set))
        .sum::<usize>()
        - current;
    if next_bytes > current && others + next_bytes > GROUP_CONFIGS_BYTES_MAX {
        return Err(AdminError::new(
            ResponseError::PolicyViolation,
            format!(
                "group configs would take more than {GROUP_CONFIGS_BYTES_MAX} bytes over all \
                 groups (Ringtail's bound); delete the configs of groups no longer used"
            ),
        ));
    }
    Ok(())
}

/// Kafka's refusal of the empty name (ControllerConfigurationValidator.validateGroupName).
pub fn check_name(group_id: &str) -> Result<(), AdminError> {
    if group_id.is_empty() {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            "Default group resources are not allowed.",
        ));
    }
    Ok(())
}

/// `changes` applied to a group's current set, as Kafka's controller applies them
/// (ConfigurationControlManager.incrementalAlterConfigResource).
fn changed(
    mut set: BTreeMap<String, String>,
    changes: Vec<ConfigChange>,
) -> Result<BTreeMap<String, String>, AdminError> {
    for change in changes {
        let (operation, name) = match change {
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
            ConfigChange::Append(name, _) => ("APPEND", name),
            ConfigChange::Subtract(name, _) => ("SUBTRACT", name),
        };
        // No group config is a LIST (an unknown name is not one either).
        return Err(AdminError::new(
            ResponseError::InvalidConfig,
            format!("Can't {operation} to key {name} because its type is not LIST."),
        ));
    }
    Ok(set)
}

/// Checks a group's whole new set against the broker's bounds (INVALID_CONFIG, Kafka's messages).
fn validate(
    config: &ConsumerGroupConfig,
    set: &BTreeMap<String, String>,
) -> Result<(), AdminError> {
    group_config::validate(
        set,
        &config.bounds,
        config.session_timeout_ms,
        config.heartbeat_interval_ms,
    )
    .map_err(|message| AdminError::new(ResponseError::InvalidConfig, message))
}

/// Alters the configs of group `group_id`; `validate_only` checks and changes nothing.
pub async fn alter(
    context: &Rc<ShardContext>,
    group_id: String,
    changes: Vec<ConfigChange>,
    validate_only: bool,
) -> Result<(), AdminError> {
    crate::broker_configs::check_duplicates(&changes)?;
    let current = context
        .metadata
        .group_configs(&group_id)
        .unwrap_or_default();
    // Checked on the published set first: the operations and the name as Kafka orders them.
    let next = changed(current, changes.clone())?;
    check_name(&group_id)?;
    let config = context.settings.consumer_group;
    validate(&config, &next)?;
    if validate_only {
        return Ok(());
    }
    let logged_changes = format!("{changes:?}");
    let key = group_id.clone();
    // Read, change and check the set again under the admin lock: concurrent alters compose.
    change_registry(context, move |registry| {
        let current = registry.group_configs(&key).cloned().unwrap_or_default();
        let next = changed(current, changes)?;
        validate(&config, &next)?;
        check_bytes_bound(registry.all_group_configs(), &key, &next)?;
        registry.set_group_configs(&key, next);
        Ok(())
    })
    .await?;
    tracing::info!(group = %group_id, changes = %logged_changes, "altered group configs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("consumer.session.timeout.ms".to_string(), value.to_string())])
    }

    #[test]
    fn group_configs_are_bounded_in_bytes_and_shrinking_always_passes() {
        let per_group = set_bytes("group-00000", &set("50000"));
        let fitting = GROUP_CONFIGS_BYTES_MAX / per_group;
        let mut all: BTreeMap<String, BTreeMap<String, String>> = (1..fitting)
            .map(|group| (format!("group-{group:05}"), set("50000")))
            .collect();
        check_bytes_bound(&all, "group-00000", &set("50000")).expect("the last that fits");
        all.insert("group-00000".to_string(), set("50000"));
        let refused = check_bytes_bound(&all, "group-extra", &set("50000")).unwrap_err();
        assert!(
            matches!(refused.error, ResponseError::PolicyViolation),
            "{}",
            refused.message
        );
        // A group already holding configs may change them to the same size, or drop them.
        check_bytes_bound(&all, "group-00000", &set("50001")).expect("same size");
        check_bytes_bound(&all, "group-00000", &BTreeMap::new()).expect("deleted");
        let longer = set(&"5".repeat(per_group + 5));
        assert!(
            check_bytes_bound(&all, "group-00000", &longer).is_err(),
            "grows past the bound"
        );
    }
}
