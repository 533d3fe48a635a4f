//! What a consumer group member subscribes to: topic names and an RE2 regex (KIP-848), resolved
//! against the topics that exist.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::TopicCounts;
use super::member::ConsumerMember;

/// A subscription regex, anchored as Kafka matches it (the whole topic name).
pub(super) fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

/// Compiled subscription regexes by pattern: members usually share one, compiled once per use.
pub(super) type Regexes = BTreeMap<String, Option<regex::Regex>>;

/// Whether a principal may DESCRIBE a topic (the authorizer's check, without its log line).
pub type Describable<'a> = &'a dyn Fn(&crate::acl::Identity, &str) -> bool;

/// The existing topics a member subscribes to: its names plus what its regex matches among the
/// topics its principal may DESCRIBE (Kafka's `filterTopicDescribeAuthorizedTopics`: a regex
/// must not reveal a topic the member could not see in Metadata). Names are checked by the
/// heartbeat itself, which refuses an undescribable one.
pub(super) fn resolve(
    member: &ConsumerMember,
    topics: &TopicCounts,
    regexes: &mut Regexes,
    describable: Describable<'_>,
) -> BTreeSet<String> {
    let mut resolved: BTreeSet<String> = member
        .subscribed_topic_names
        .iter()
        .filter(|name| topics.contains_key(*name))
        .cloned()
        .collect();
    let regex = member.subscribed_topic_regex.as_ref().and_then(|pattern| {
        regexes
            .entry(pattern.clone())
            .or_insert_with(|| compile(pattern).ok())
            .as_ref()
    });
    if let Some(regex) = regex {
        resolved.extend(
            topics
                .keys()
                .filter(|name| !name.starts_with("__") && regex.is_match(name))
                .filter(|name| {
                    member
                        .identity
                        .0
                        .as_ref()
                        .is_none_or(|identity| describable(identity, name))
                })
                .cloned(),
        );
    }
    resolved
}
