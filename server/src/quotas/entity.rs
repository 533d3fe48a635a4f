//! Kafka's client-quota model: entities (user, client-id, ip; a name or the default), the quota
//! keys with their types and validation, and DescribeClientQuotas filters.
//!
//! # Invariants
//! - A stored entity is valid: at least one component, no type twice, no empty name, ip never
//!   combined with user or client-id, an ip name a literal address.
//! - A stored key is one its entity's kind accepts, with a value > 0 (integral where Kafka's
//!   config type is LONG or INT).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

/// An entity type Kafka names in the protocol (`ClientQuotaEntity.USER` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    User,
    ClientId,
    Ip,
}

impl EntityType {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "user" => Some(Self::User),
            "client-id" => Some(Self::ClientId),
            "ip" => Some(Self::Ip),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ClientId => "client-id",
            Self::Ip => "ip",
        }
    }
}

/// One quota entity: each present type with a name, or `None` for the default (`<default>` in
/// `kafka-configs`). Ordered, so the store and Describe answers are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct QuotaEntity(pub BTreeMap<EntityType, Option<String>>);

impl QuotaEntity {
    pub fn get(&self, kind: EntityType) -> Option<&Option<String>> {
        self.0.get(&kind)
    }

    pub fn has(&self, kind: EntityType) -> bool {
        self.0.contains_key(&kind)
    }

    /// A user and/or client-id entity for enforcement lookups (`None` = the default).
    pub fn user_client(user: Option<Option<&str>>, client_id: Option<Option<&str>>) -> Self {
        let mut parts = BTreeMap::new();
        if let Some(user) = user {
            parts.insert(EntityType::User, user.map(str::to_string));
        }
        if let Some(client_id) = client_id {
            parts.insert(EntityType::ClientId, client_id.map(str::to_string));
        }
        Self(parts)
    }

    /// Builds and validates an entity from the wire's (type, name) pairs, as Kafka's controller
    /// does (`validateEntity`, `configKeysForEntityType`).
    pub fn from_wire<'a>(
        parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Self, String> {
        let mut entity = BTreeMap::new();
        for (type_name, name) in parts {
            let kind = EntityType::parse(type_name)
                .ok_or_else(|| format!("Unhandled client quota entity type: {type_name}"))?;
            if entity.contains_key(&kind) {
                return Err(format!(
                    "Invalid client quota entity, duplicate entity entry {type_name}"
                ));
            }
            if name == Some("") {
                return Err(format!("Empty {type_name} not supported"));
            }
            entity.insert(kind, name.map(str::to_string));
        }
        let entity = Self(entity);
        entity.check_combination()?;
        Ok(entity)
    }

    fn check_combination(&self) -> Result<(), String> {
        if self.0.is_empty() {
            return Err("Invalid empty client quota entity".to_string());
        }
        if let Some(ip) = self.get(EntityType::Ip) {
            if self.has(EntityType::User) || self.has(EntityType::ClientId) {
                return Err("Invalid quota entity combination, IP entity should not be \
                            combined with User or ClientId"
                    .to_string());
            }
            // Kafka also accepts a resolvable host name; a broker that resolves names on an
            // admin request can stall on DNS, so only literal addresses are taken here.
            if let Some(ip) = ip {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("{ip} is not a valid IP or resolvable host."));
                }
            }
        }
        Ok(())
    }

    /// The keys this entity may carry: connection_creation_rate for an ip, the client quotas
    /// for user and client-id entities.
    fn accepts(&self, key: QuotaKey) -> bool {
        let ip = self.has(EntityType::Ip);
        (key == QuotaKey::ConnectionCreationRate) == ip
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(kind, name)| {
                format!("{}={}", kind.name(), name.as_deref().unwrap_or("<default>"))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A quota key Kafka 4.x accepts (`QuotaConfig`), with its config type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuotaKey {
    ProducerByteRate,
    ConsumerByteRate,
    RequestPercentage,
    ControllerMutationRate,
    ConnectionCreationRate,
}

/// Kafka's config types of the quota keys, which decide the value checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Long,
    Int,
    Double,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 5] = [
        Self::ProducerByteRate,
        Self::ConsumerByteRate,
        Self::RequestPercentage,
        Self::ControllerMutationRate,
        Self::ConnectionCreationRate,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ProducerByteRate => "producer_byte_rate",
            Self::ConsumerByteRate => "consumer_byte_rate",
            Self::RequestPercentage => "request_percentage",
            Self::ControllerMutationRate => "controller_mutation_rate",
            Self::ConnectionCreationRate => "connection_creation_rate",
        }
    }

    fn key_type(self) -> KeyType {
        match self {
            Self::ProducerByteRate | Self::ConsumerByteRate => KeyType::Long,
            Self::RequestPercentage | Self::ControllerMutationRate => KeyType::Double,
            Self::ConnectionCreationRate => KeyType::Int,
        }
    }
}

/// Checks one key and value for `entity` as Kafka's `validateQuotaKeyValue` does; the error
/// message becomes the entry's INVALID_REQUEST message.
pub fn validate_value(
    entity: &QuotaEntity,
    key_name: &str,
    value: f64,
) -> Result<QuotaKey, String> {
    let key = QuotaKey::parse(key_name)
        .filter(|key| entity.accepts(*key))
        .ok_or_else(|| format!("Invalid configuration key {key_name}"))?;
    if value.is_nan() || value <= 0.0 {
        return Err(format!("Quota {key_name} must be greater than 0"));
    }
    // JSON cannot hold an infinity: stored, it would make the quota file unreadable at start.
    if value.is_infinite() {
        return Err(format!("Quota {key_name} must be a finite number"));
    }
    let limit = match key.key_type() {
        KeyType::Double => return Ok(key),
        KeyType::Int => f64::from(i32::MAX),
        KeyType::Long => i64::MAX as f64,
    };
    if value > limit {
        let kind = if key.key_type() == KeyType::Int {
            "an INT"
        } else {
            "a LONG"
        };
        return Err(format!(
            "Proposed value for {key_name} is too large for {kind}."
        ));
    }
    if (value % 1.0).abs() > 1e-6 {
        return Err(format!("{key_name} cannot be a fractional value."));
    }
    Ok(key)
}

/// Kafka's DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// A validated DescribeClientQuotas filter: types that must have a given name (or the default),
/// types that must merely be present, and whether other types are allowed.
#[derive(Debug, Default)]
pub struct QuotaFilter {
    exact: BTreeMap<EntityType, Option<String>>,
    present: Vec<EntityType>,
    strict: bool,
}

/// Why a filter is refused: Kafka answers most with INVALID_REQUEST and an unknown entity type
/// with UNSUPPORTED_VERSION.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterError {
    Invalid(String),
    UnknownType(String),
}

impl QuotaFilter {
    /// Validates the wire's (entity_type, match_type, match) components as Kafka does.
    pub fn from_wire<'a>(
        components: impl IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
        strict: bool,
    ) -> Result<Self, FilterError> {
        let invalid = |text: String| FilterError::Invalid(text);
        let mut filter = Self {
            strict,
            ..Self::default()
        };
        for (type_name, match_type, name) in components {
            if type_name.is_empty() {
                return Err(invalid("Invalid empty entity type.".to_string()));
            }
            let kind = EntityType::parse(type_name).ok_or_else(|| {
                FilterError::UnknownType(format!("Unsupported entity type {type_name}"))
            })?;
            if filter.exact.contains_key(&kind) || filter.present.contains(&kind) {
                return Err(invalid(format!(
                    "Entity type {type_name} cannot appear more than once in the filter."
                )));
            }
            match (match_type, name) {
                (MATCH_EXACT, Some(name)) => {
                    filter.exact.insert(kind, Some(name.to_string()));
                }
                (MATCH_EXACT, None) => {
                    return Err(invalid(
                        "Request specified MATCH_TYPE_EXACT, but set match string to null."
                            .to_string(),
                    ))
                }
                (MATCH_DEFAULT, None) => {
                    filter.exact.insert(kind, None);
                }
                (MATCH_SPECIFIED, None) => filter.present.push(kind),
                (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                    let message = format!(
                        "Request specified match type {match_type}, \
                         but also specified a match string."
                    );
                    return Err(invalid(message));
                }
                (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
            }
        }
        let names_ip =
            filter.exact.contains_key(&EntityType::Ip) || filter.present.contains(&EntityType::Ip);
        let names_other = [EntityType::User, EntityType::ClientId]
            .iter()
            .any(|kind| filter.exact.contains_key(kind) || filter.present.contains(kind));
        if names_ip && names_other {
            return Err(invalid(
                "Invalid entity filter component combination. IP filter component should not \
                 be used with user or clientId filter component."
                    .to_string(),
            ));
        }
        Ok(filter)
    }

    /// Kafka's `ClientQuotasImage.matches`.
    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        if self.strict && entity.0.len() != self.exact.len() + self.present.len() {
            return false;
        }
        self.exact
            .iter()
            .all(|(kind, name)| entity.get(*kind) == Some(name))
            && self.present.iter().all(|kind| entity.has(*kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        QuotaEntity::from_wire(parts.iter().copied()).unwrap()
    }

    #[test]
    fn entities_are_checked_as_kafka_checks_them() {
        // Every refusal Kafka's controller makes for an entity, and the combinations it accepts.
        assert!(QuotaEntity::from_wire([]).is_err());
        assert!(QuotaEntity::from_wire([("group", Some("g"))]).is_err());
        assert!(QuotaEntity::from_wire([("user", Some("a")), ("user", Some("b"))]).is_err());
        assert!(QuotaEntity::from_wire([("user", Some(""))]).is_err());
        assert!(QuotaEntity::from_wire([("ip", Some("1.2.3.4")), ("user", None)]).is_err());
        assert!(QuotaEntity::from_wire([("ip", Some("not an ip"))]).is_err());
        assert_eq!(entity(&[("ip", Some("::1"))]).0.len(), 1);
        assert_eq!(
            entity(&[("user", None), ("client-id", Some("c"))]).0.len(),
            2
        );
    }

    #[test]
    fn values_are_checked_per_key_type() {
        // Kafka's validateQuotaKeyValue: key by entity kind, > 0, integral for LONG and INT.
        let user = entity(&[("user", Some("a"))]);
        let ip = entity(&[("ip", None)]);
        assert_eq!(
            validate_value(&user, "producer_byte_rate", 1024.0),
            Ok(QuotaKey::ProducerByteRate)
        );
        assert!(validate_value(&user, "producer_byte_rate", 10.5).is_err());
        assert!(validate_value(&user, "producer_byte_rate", 0.0).is_err());
        assert!(validate_value(&user, "producer_byte_rate", -1.0).is_err());
        assert!(validate_value(&user, "producer_byte_rate", f64::NAN).is_err());
        assert!(validate_value(&user, "request_percentage", 12.5).is_ok());
        assert!(validate_value(&user, "connection_creation_rate", 5.0).is_err());
        assert!(validate_value(&user, "bogus", 5.0).is_err());
        assert!(validate_value(&ip, "connection_creation_rate", 5.0).is_ok());
        assert!(validate_value(&ip, "connection_creation_rate", 3e9).is_err());
        assert!(validate_value(&ip, "producer_byte_rate", 5.0).is_err());
    }

    #[test]
    fn filters_match_as_kafka_matches() {
        // exact, default and any, strict or not, over the entity kinds an operator creates.
        let alice = entity(&[("user", Some("alice"))]);
        let alice_c1 = entity(&[("user", Some("alice")), ("client-id", Some("c1"))]);
        let default_user = entity(&[("user", None)]);
        let filter = |parts: &[(&str, i8, Option<&str>)], strict| {
            QuotaFilter::from_wire(parts.iter().copied(), strict).unwrap()
        };
        let exact = filter(&[("user", MATCH_EXACT, Some("alice"))], false);
        assert!(exact.matches(&alice) && exact.matches(&alice_c1) && !exact.matches(&default_user));
        let exact_strict = filter(&[("user", MATCH_EXACT, Some("alice"))], true);
        assert!(exact_strict.matches(&alice) && !exact_strict.matches(&alice_c1));
        let default = filter(&[("user", MATCH_DEFAULT, None)], false);
        assert!(default.matches(&default_user) && !default.matches(&alice));
        let any = filter(&[("user", MATCH_SPECIFIED, None)], true);
        assert!(any.matches(&alice) && any.matches(&default_user) && !any.matches(&alice_c1));
        let everything = filter(&[], false);
        assert!(everything.matches(&alice_c1));
    }

    #[test]
    fn bad_filters_are_refused() {
        // Kafka's describe() refusals, each with its error kind.
        let refuse = |parts: &[(&str, i8, Option<&str>)]| {
            QuotaFilter::from_wire(parts.iter().copied(), false).unwrap_err()
        };
        assert!(matches!(
            refuse(&[("user", MATCH_EXACT, None)]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("user", MATCH_DEFAULT, Some("a"))]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("user", 7, None)]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("", MATCH_SPECIFIED, None)]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("user", 2, None), ("user", 1, None)]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("ip", 2, None), ("user", 2, None)]),
            FilterError::Invalid(_)
        ));
        assert!(matches!(
            refuse(&[("group", 2, None)]),
            FilterError::UnknownType(_)
        ));
    }
}
