//! What a consumer group member subscribes to: topic names and an RE2 regex (KIP-848), resolved
//! against the topics that exist.
//!
//! Resolving a regex walks every topic (and checks DESCRIBE on each match), and a group's
//! subscriptions are resolved at every heartbeat of every member. As Kafka does (it resolves
//! regexes off the heartbeat path and keeps the result per group until the metadata image
//! changes), each group keeps what a regex matched for a principal in a [`RegexCache`] and reuses
//! it until the topics or the ACLs change ([`TopicView::version`]).
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::assignor::TopicCounts;
use super::member::ConsumerMember;
use crate::group::state::MEMBERS_PER_GROUP_MAX;

/// A subscription regex, anchored as Kafka matches it (the whole topic name).
pub(super) fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

/// Whether a principal may DESCRIBE a topic (the authorizer's check, without its log line).
pub type Describable<'a> = &'a dyn Fn(&crate::acl::Identity, &str) -> bool;

/// What changes whenever the outcome of a resolution may: the metadata's version (topics
/// created, deleted, given partitions) and the ACLs' version.
pub type ViewVersion = (u64, u64);

/// The topics a heartbeat is resolved against, and who may see which.
pub struct TopicView<'a> {
    pub counts: &'a TopicCounts,
    pub describable: Describable<'a>,
    /// The version of `counts` and of what `describable` answers; None: untracked (every
    /// resolution is done again).
    pub version: Option<ViewVersion>,
}

/// Entries a group's cache holds at most, per kind: one per member is enough (a member has one
/// regex and one principal), so more means stale entries; the cache is then emptied.
pub const REGEX_CACHE_ENTRIES_MAX: usize = MEMBERS_PER_GROUP_MAX;

/// A principal as ACLs see it (principal, host); None: no particular principal.
type Viewer = Option<(String, String)>;

/// A group's compiled regexes, and the topics each (regex, principal) matched at one
/// [`ViewVersion`]. A snapshot of the group (`Clone`) starts with an empty cache.
#[derive(Default)]
pub struct RegexCache {
    version: Option<ViewVersion>,
    compiled: HashMap<String, Result<regex::Regex, String>>,
    matches: HashMap<(String, Viewer), Arc<BTreeSet<String>>>,
    /// Resolutions done (a walk over every topic), for tests and debugging.
    resolutions: u64,
}

impl Clone for RegexCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for RegexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexCache")
            .field("version", &self.version)
            .field("compiled", &self.compiled.len())
            .field("matches", &self.matches.len())
            .field("resolutions", &self.resolutions)
            .finish()
    }
}

impl RegexCache {
    /// `pattern` compiled (once until the cache is emptied), or why it does not compile.
    pub fn compiled(&mut self, pattern: &str) -> Result<&regex::Regex, &str> {
        if !self.compiled.contains_key(pattern) && self.compiled.len() >= REGEX_CACHE_ENTRIES_MAX {
            self.compiled.clear();
        }
        self.compiled
            .entry(pattern.to_string())
            .or_insert_with(|| compile(pattern).map_err(|err| err.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// How many times a regex was matched against every topic.
    #[cfg(test)]
    pub fn resolutions(&self) -> u64 {
        self.resolutions
    }

    /// The topics `pattern` matches that `identity` may DESCRIBE (Kafka's
    /// `filterTopicDescribeAuthorizedTopics`: a regex must not reveal a topic the member could
    /// not see in Metadata); from the cache while the view's version is the one it was made at.
    /// Internal topics are matched too, as Kafka's broker-side resolution matches every topic of
    /// its metadata image (franz-go relies on it: its Test848RegexBrokerResolves); a member
    /// that wants none anchors its regex so.
    fn matching(
        &mut self,
        pattern: &str,
        identity: Option<&crate::acl::Identity>,
        view: &TopicView<'_>,
    ) -> Arc<BTreeSet<String>> {
        if view.version.is_none() || self.version != view.version {
            self.matches.clear();
            self.version = view.version;
        }
        let key = (
            pattern.to_string(),
            identity.map(|id| (id.principal().to_string(), id.host().to_string())),
        );
        if let Some(hit) = self.matches.get(&key) {
            return Arc::clone(hit);
        }
        self.resolutions += 1;
        let matched: BTreeSet<String> = match self.compiled(pattern) {
            Ok(regex) => view
                .counts
                .keys()
                .filter(|name| regex.is_match(name))
                .filter(|name| identity.is_none_or(|identity| (view.describable)(identity, name)))
                .cloned()
                .collect(),
            // Refused by the heartbeat that set it; a replayed one matches nothing.
            Err(_) => BTreeSet::new(),
        };
        let matched = Arc::new(matched);
        if self.matches.len() >= REGEX_CACHE_ENTRIES_MAX {
            self.matches.clear();
        }
        if view.version.is_some() {
            self.matches.insert(key, Arc::clone(&matched));
        }
        matched
    }
}

/// The existing topics a member subscribes to: its names (checked by the heartbeat itself,
/// which refuses an undescribable one) and what its regex matches for its principal.
pub(super) struct Subscribed<'m> {
    names: &'m [String],
    matched: Option<Arc<BTreeSet<String>>>,
}

impl Subscribed<'_> {
    /// Every subscribed topic that exists in `topics` (a name may come twice).
    pub(super) fn topics<'s>(
        &'s self,
        topics: &'s TopicCounts,
    ) -> impl Iterator<Item = &'s String> {
        self.names
            .iter()
            .filter(|name| topics.contains_key(*name))
            .chain(self.matched.iter().flat_map(|matched| matched.iter()))
    }
}

/// What `member` subscribes to in `view`.
pub(super) fn resolve<'m>(
    member: &'m ConsumerMember,
    view: &TopicView<'_>,
    cache: &mut RegexCache,
) -> Subscribed<'m> {
    let matched = member
        .subscribed_topic_regex
        .as_deref()
        .map(|pattern| cache.matching(pattern, member.identity.0.as_ref(), view));
    Subscribed {
        names: &member.subscribed_topic_names,
        matched,
    }
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
