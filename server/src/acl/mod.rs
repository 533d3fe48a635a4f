//! Authorization as Kafka's StandardAuthorizer does it: ACLs on resource patterns, super users,
//! deny wins, and what happens to a resource no ACL names.
//!
//! A check is `authorizer.allows(&identity, operation, resource)`:
//! 1. no ACL at all and the identity's "no ACL found" rule allows → allowed (the hot path: one
//!    atomic load, no lock, no allocation);
//! 2. a super user (`--super-users`) → allowed;
//! 3. a DENY ACL covering the resource, the principal (or `User:*`), the host (or `*`) and the
//!    operation (or ALL) → denied;
//! 4. an ALLOW ACL likewise, where READ/WRITE/DELETE/ALTER imply DESCRIBE and ALTER_CONFIGS implies
//!    DESCRIBE_CONFIGS → allowed;
//! 5. no ACL covers the resource at all → the "no ACL found" rule; else denied.
//!
//! The "no ACL found" rule is `--allow-everyone-if-no-acl-found` when given; by default it allows
//! only `User:ANONYMOUS` (the principal of PLAINTEXT listeners and of TLS without client
//! certificates), so an unsecured broker keeps working with no ACLs while authenticated principals
//! are denied what no ACL grants them (Kafka's default) — see docs/SECURITY.md.
//!
//! # Invariants worth naming
//! - `acl_count` equals the set's length whenever no writer holds `writer`.
//! - The file is saved before the set in memory changes: a client is never told "created" for
//!   an ACL a restart would lose.
#![forbid(unsafe_code)]

pub mod model;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use model::{
    AclBinding, AclFilter, Operation, PatternType, Permission, Resource, ResourceType,
};
pub use store::{AclSet, AclStoreError};

/// The principal of a connection no one authenticated on.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// At most one denial log line per this many milliseconds (the others are counted).
const DENIAL_LOG_INTERVAL_MS: u64 = 1000;

/// Who sent a request: the principal and the client's address as ACLs name it. Cheap to clone
/// (one reference count); made once per connection and again only when a login changes it.
#[derive(Debug, Clone)]
pub struct Identity(Arc<IdentityParts>);

#[derive(Debug)]
struct IdentityParts {
    principal: String,
    host: String,
}

impl Identity {
    pub fn new(principal: &str, host: std::net::IpAddr) -> Self {
        Self(Arc::new(IdentityParts {
            principal: principal.to_string(),
            host: host.to_string(),
        }))
    }

    pub fn anonymous(host: std::net::IpAddr) -> Self {
        Self::new(ANONYMOUS, host)
    }

    pub fn principal(&self) -> &str {
        &self.0.principal
    }

    pub fn host(&self) -> &str {
        &self.0.host
    }

    pub fn is_anonymous(&self) -> bool {
        self.0.principal == ANONYMOUS
    }
}

/// The authorizer flags (`--super-users`, `--allow-everyone-if-no-acl-found`).
#[derive(Debug, Clone, Default)]
pub struct AclConfig {
    pub super_users: HashSet<String>,
    /// `None`: only `User:ANONYMOUS` is allowed where no ACL is found.
    pub allow_everyone_if_no_acl_found: Option<bool>,
}

impl AclConfig {
    /// Parses Kafka's `super.users` form: `User:admin;User:ops`.
    pub fn parse_super_users(text: &str) -> anyhow::Result<HashSet<String>> {
        text.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|principal| match principal.split_once(':') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                    Ok(principal.to_string())
                }
                _ => anyhow::bail!("super user {principal:?} is not of the form User:name"),
            })
            .collect()
    }
}

/// The ACLs of the broker and the rules that apply them; shared by every shard.
pub struct Authorizer {
    config: AclConfig,
    path: PathBuf,
    acls: RwLock<Arc<AclSet>>,
    /// The set's length, read without the lock on every check.
    acl_count: AtomicUsize,
    /// Grows after every change is published: what was derived from checks (a consumer group's
    /// regex results) is current while it is the same.
    version: AtomicU64,
    /// Serializes changes (each saves the whole file).
    writer: Mutex<()>,
    denial_logged_ms: AtomicU64,
    denials_unlogged: AtomicU64,
}

impl Authorizer {
    /// Loads the ACLs saved in `data_dir`.
    pub fn load(config: AclConfig, data_dir: &std::path::Path) -> Result<Self, AclStoreError> {
        let set = store::load(data_dir)?;
        Ok(Self {
            config,
            path: data_dir.join(store::FILE_NAME),
            acl_count: AtomicUsize::new(set.count()),
            acls: RwLock::new(Arc::new(set)),
            version: AtomicU64::new(0),
            writer: Mutex::new(()),
            denial_logged_ms: AtomicU64::new(0),
            denials_unlogged: AtomicU64::new(0),
        })
    }

    /// Whether `identity` may do `operation` on `resource`; a denial is logged (rate-limited).
    pub fn allows(
        &self,
        identity: &Identity,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool {
        let allowed = self.decide(identity, operation, resource);
        if !allowed {
            self.log_denial(identity, operation, resource);
        }
        allowed
    }

    /// [`Authorizer::allows`] without the log line (filters such as Metadata's "all topics").
    pub fn decide(
        &self,
        identity: &Identity,
        operation: Operation,
        resource: Resource<'_>,
    ) -> bool {
        if self.acl_count.load(Ordering::Acquire) == 0 && self.no_acl_rule(identity) {
            return true;
        }
        if self.config.super_users.contains(identity.principal()) {
            return true;
        }
        let acls = self.snapshot();
        let covering = acls.covering(resource).inspect(|acl| {
            debug_assert!(
                acl.pattern_matches(resource),
                "the index returns only covering ACLs"
            );
        });
        weigh(covering, identity, operation, |_| true).unwrap_or_else(|| self.no_acl_rule(identity))
    }

    /// Whether `identity` may do `operation` on some resource of a type (Kafka's
    /// authorizeByResourceType, used by InitProducerId's "WRITE on any topic"): allowed on a
    /// resource no ACL names, or an ALLOW of it on any pattern, unless a DENY on the literal `*`
    /// takes the whole type away.
    pub fn allows_any(
        &self,
        identity: &Identity,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if self.acl_count.load(Ordering::Acquire) == 0 && self.no_acl_rule(identity) {
            return true;
        }
        if self.config.super_users.contains(identity.principal()) {
            return true;
        }
        // As Kafka's authorizeByResourceType: first a resource of the type that no one names
        // (Kafka's "hardcode"); where the "no ACL found" rule lets the principal use such a
        // resource, it may use the type, whatever ACLs name other resources.
        let unnamed = Resource {
            resource_type,
            name: "hardcode",
        };
        if self.decide(identity, operation, unnamed) {
            return true;
        }
        let acls = self.snapshot();
        // Only a DENY on the literal `*` takes the whole type away.
        let wildcard = |acl: &AclBinding| {
            acl.pattern_type == PatternType::Literal
                && acl.resource_name == model::WILDCARD_RESOURCE
        };
        weigh(acls.of_type(resource_type), identity, operation, wildcard)
            .unwrap_or_else(|| self.no_acl_rule(identity))
    }

    /// The KIP-430 bit field of `operations` that `identity` may do on `resource`.
    pub fn authorized_operations(
        &self,
        identity: &Identity,
        resource: Resource<'_>,
        operations: &[Operation],
    ) -> i32 {
        operations
            .iter()
            .filter(|op| self.decide(identity, **op, resource))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    fn no_acl_rule(&self, identity: &Identity) -> bool {
        self.config
            .allow_everyone_if_no_acl_found
            .unwrap_or_else(|| identity.is_anonymous())
    }

    fn snapshot(&self) -> Arc<AclSet> {
        Arc::clone(&self.acls.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every ACL `filter` selects.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.snapshot()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Adds ACLs (each validated by the caller), saves, then publishes. Duplicates are no-ops.
    pub fn create(&self, acls: Vec<AclBinding>) -> Result<(), AclStoreError> {
        self.change(|set| {
            for acl in acls {
                set.insert(acl)?;
            }
            Ok(())
        })
    }

    /// Removes every ACL any of `filters` selects; per filter, the ACLs it removed.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AclStoreError> {
        self.change(|set| {
            Ok(filters
                .iter()
                .map(|filter| set.remove_where(|acl| filter.matches(acl)))
                .collect())
        })
    }

    fn change<R>(
        &self,
        edit: impl FnOnce(&mut AclSet) -> Result<R, AclStoreError>,
    ) -> Result<R, AclStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (*self.snapshot()).clone();
        let result = edit(&mut next)?;
        store::save(&self.path, &next)?;
        let count = next.count();
        *self.acls.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        self.acl_count.store(count, Ordering::Release);
        // After the new set is in place: a reader of the old version may have checked against
        // either set, and sees the new version next time.
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(result)
    }

    /// The version of the ACLs (grows with every change); read it before checks whose results
    /// are kept.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn log_denial(&self, identity: &Identity, operation: Operation, resource: Resource<'_>) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last_ms = self.denial_logged_ms.load(Ordering::Relaxed);
        let due = now_ms.saturating_sub(last_ms) >= DENIAL_LOG_INTERVAL_MS;
        if !due
            || self
                .denial_logged_ms
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.denials_unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let unlogged = self.denials_unlogged.swap(0, Ordering::Relaxed);
        tracing::info!(
            principal = identity.principal(),
            host = identity.host(),
            ?operation,
            resource_type = ?resource.resource_type,
            resource = resource.name,
            denials_not_logged_since_last = unlogged,
            "authorization denied"
        );
    }
}

/// Kafka's rule over the ACLs that concern a request: a DENY of `operation` (or of All) for
/// `identity` that `deny_counts` accepts wins; otherwise an ALLOW that implies `operation`.
/// `None` when no ACL concerns the request at all, so the no-ACL rule decides.
fn weigh<'a>(
    acls: impl Iterator<Item = &'a AclBinding>,
    identity: &Identity,
    operation: Operation,
    deny_counts: impl Fn(&AclBinding) -> bool,
) -> Option<bool> {
    let mut any = false;
    let mut allowed = false;
    for acl in acls {
        any = true;
        if !acl.applies_to(identity.principal(), identity.host()) {
            continue;
        }
        match acl.permission {
            Permission::Deny
                if deny_counts(acl)
                    && (acl.operation == operation || acl.operation == Operation::All) =>
            {
                return Some(false);
            }
            Permission::Allow if acl.operation.allow_implies(operation) => allowed = true,
            _ => {}
        }
    }
    any.then_some(allowed)
}
