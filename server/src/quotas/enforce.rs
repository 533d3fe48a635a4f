//! Which quota applies to a request and how much it must wait: Kafka's precedence of user and
//! client-id entities (KIP-55), one rate sensor per quota entity, and the throttle counters.
//!
//! # Invariants
//! - Each quota key is resolved on its own: the most specific entity that sets *that* key wins.
//! - Sensors are keyed as Kafka tags them: the user's name if the winning entity has a user part,
//!   the client id if it has a client-id part. So `users/alice` is one budget for all of alice's
//!   clients, and `users/alice/clients/<default>` one per client of hers.
//! - At most [`SENSORS_MAX`] sensors exist; idle ones are dropped first.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::entity::{EntityType, QuotaEntity, QuotaKey};
use super::rate::{SampledRate, WINDOWS, WINDOW_MS};
use super::store::QuotaTable;

/// Sensors kept at most; a client cannot grow the map without bound with new client ids.
pub const SENSORS_MAX: usize = 10_000;
/// Longest throttle answered: past the whole sampled span the sensor has forgotten everything,
/// so a longer mute would only punish, not shape.
pub const THROTTLE_MS_MAX: u32 = (WINDOWS as u64 * WINDOW_MS) as u32;

/// The byte rates Ringtail enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bandwidth {
    Produce,
    Fetch,
}

impl Bandwidth {
    fn key(self) -> QuotaKey {
        match self {
            Self::Produce => QuotaKey::ProducerByteRate,
            Self::Fetch => QuotaKey::ConsumerByteRate,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who sent a request, for quotas: the principal's name (`ANONYMOUS` without SASL or mTLS) and
/// the request header's client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub client_id: String,
}

/// The entity that sets a quota for a caller, in KIP-55's order, and its value.
pub fn resolve<'t>(
    table: &'t QuotaTable,
    key: QuotaKey,
    caller: &Caller,
) -> Option<(&'t QuotaEntity, f64)> {
    let user = Some(caller.user.as_str());
    let client = Some(caller.client_id.as_str());
    let order = [
        (Some(user), Some(client)),
        (Some(user), Some(None)),
        (Some(user), None),
        (Some(None), Some(client)),
        (Some(None), Some(None)),
        (Some(None), None),
        (None, Some(client)),
        (None, Some(None)),
    ];
    order.into_iter().find_map(|(user, client)| {
        let (entity, quotas) = table.get_key_value(&QuotaEntity::user_client(user, client))?;
        Some((entity, *quotas.get(&key)?))
    })
}

/// How a winning entity is labelled on /metrics (its entity types).
#[derive(Debug, Clone, Copy)]
enum EntityLabel {
    User,
    ClientId,
    UserClientId,
}

impl EntityLabel {
    const ALL: [EntityLabel; 3] = [Self::User, Self::ClientId, Self::UserClientId];

    fn of(entity: &QuotaEntity) -> Self {
        match (
            entity.has(EntityType::User),
            entity.has(EntityType::ClientId),
        ) {
            (true, true) => Self::UserClientId,
            (true, false) => Self::User,
            _ => Self::ClientId,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ClientId => "client-id",
            Self::UserClientId => "user,client-id",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SensorKey {
    bandwidth: Bandwidth,
    user: String,
    client_id: String,
}

/// One quota entity's rate, with the quota it was last charged against (so a full map can tell
/// which sensors are slowing their callers now).
#[derive(Debug)]
struct Sensor {
    rate: SampledRate,
    quota_per_sec: f64,
}

/// The rate sensors of every quota entity in use.
#[derive(Debug, Default)]
pub struct Sensors {
    rates: HashMap<SensorKey, Sensor>,
    /// When "sensors full" was last logged (at most once a second).
    full_logged_ms: Option<u64>,
}

impl Sensors {
    /// Records `bytes` for `caller` against the quota that applies, if any, and answers the
    /// throttle time in ms (0 within the quota).
    pub fn charge(
        &mut self,
        table: &QuotaTable,
        bandwidth: Bandwidth,
        caller: &Caller,
        bytes: u64,
        now_ms: u64,
    ) -> u32 {
        let Some((entity, quota_per_sec)) = resolve(table, bandwidth.key(), caller) else {
            return 0;
        };
        let tag = |kind, name: &str| {
            if entity.has(kind) {
                name.to_string()
            } else {
                String::new()
            }
        };
        let key = SensorKey {
            bandwidth,
            user: tag(EntityType::User, &caller.user),
            client_id: tag(EntityType::ClientId, &caller.client_id),
        };
        if !self.rates.contains_key(&key) && !self.make_room(now_ms) {
            // Every sensor is slowing its caller: this new caller goes unmetered until one
            // frees, rather than every throttled caller being let off.
            return 0;
        }
        let sensor = self.rates.entry(key).or_insert_with(|| Sensor {
            rate: SampledRate::new(now_ms),
            quota_per_sec,
        });
        sensor.quota_per_sec = quota_per_sec;
        let rate = &mut sensor.rate;
        rate.record(bytes as f64, now_ms);
        let throttle_ms = rate.throttle_ms(quota_per_sec, now_ms, THROTTLE_MS_MAX);
        if throttle_ms > 0 {
            let counters = &THROTTLES[bandwidth.index()][EntityLabel::of(entity) as usize];
            counters.requests.fetch_add(1, Ordering::Relaxed);
            counters
                .throttle_ms
                .fetch_add(u64::from(throttle_ms), Ordering::Relaxed);
        }
        throttle_ms
    }

    /// Makes room for one more sensor: drops sensors idle for a whole span (they measure
    /// nothing any more), then, if still full, those within their quota (they slow no one; their
    /// callers start from a clean budget). A sensor over its quota is never dropped, so callers
    /// inventing client ids cannot let a throttled caller off. False if none could go.
    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.rates.len() < SENSORS_MAX {
            return true;
        }
        let span_ms = WINDOWS as u64 * WINDOW_MS;
        self.rates
            .retain(|_, sensor| now_ms.saturating_sub(sensor.rate.last_record_ms) < span_ms);
        if self.rates.len() >= SENSORS_MAX {
            self.rates
                .retain(|_, sensor| sensor.rate.throttle_ms(sensor.quota_per_sec, now_ms, 1) > 0);
        }
        if self.rates.len() < SENSORS_MAX {
            return true;
        }
        if self
            .full_logged_ms
            .is_none_or(|logged| now_ms.saturating_sub(logged) >= 1_000)
        {
            self.full_logged_ms = Some(now_ms);
            tracing::warn!(
                sensors = SENSORS_MAX,
                "quota sensors full, all over their quota; new callers unmetered (logged once a second)"
            );
        }
        false
    }
}

struct ThrottleCounters {
    requests: AtomicU64,
    throttle_ms: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)] // each array slot is its own counter
const ZERO: ThrottleCounters = ThrottleCounters {
    requests: AtomicU64::new(0),
    throttle_ms: AtomicU64::new(0),
};
#[allow(clippy::declare_interior_mutable_const)]
const ZERO_ROW: [ThrottleCounters; 3] = [ZERO, ZERO, ZERO];
static THROTTLES: [[ThrottleCounters; 3]; 2] = [ZERO_ROW, ZERO_ROW];

/// The throttle counters in Prometheus form, per quota and entity type.
pub fn render_metrics(out: &mut String) {
    out.push_str("# HELP ringtail_quota_throttle_time_ms_total Throttle time answered to clients over a byte-rate quota.\n");
    out.push_str("# TYPE ringtail_quota_throttle_time_ms_total counter\n");
    for (bandwidth, name) in [(Bandwidth::Produce, "produce"), (Bandwidth::Fetch, "fetch")] {
        for label in EntityLabel::ALL {
            let counters = &THROTTLES[bandwidth.index()][label as usize];
            let _ = writeln!(
                out,
                "ringtail_quota_throttle_time_ms_total{{quota=\"{name}\",entity=\"{}\"}} {}",
                label.name(),
                counters.throttle_ms.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str(
        "# HELP ringtail_quota_throttled_requests_total Requests answered with a throttle time.\n",
    );
    out.push_str("# TYPE ringtail_quota_throttled_requests_total counter\n");
    for (bandwidth, name) in [(Bandwidth::Produce, "produce"), (Bandwidth::Fetch, "fetch")] {
        for label in EntityLabel::ALL {
            let counters = &THROTTLES[bandwidth.index()][label as usize];
            let _ = writeln!(
                out,
                "ringtail_quota_throttled_requests_total{{quota=\"{name}\",entity=\"{}\"}} {}",
                label.name(),
                counters.requests.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An entity as (type, name) pairs, `None` being the default.
    type Parts<'a> = &'a [(&'a str, Option<&'a str>)];

    fn table(entries: &[(Parts, f64)]) -> QuotaTable {
        entries
            .iter()
            .map(|(parts, rate)| {
                let entity = QuotaEntity::from_wire(parts.iter().copied()).unwrap();
                (
                    entity,
                    BTreeMap::from([(QuotaKey::ProducerByteRate, *rate)]),
                )
            })
            .collect()
    }

    fn caller(user: &str, client_id: &str) -> Caller {
        Caller {
            user: user.to_string(),
            client_id: client_id.to_string(),
        }
    }

    #[test]
    fn precedence_follows_kip_55() {
        // Removing the most specific entity each time walks down KIP-55's table, 1 to 8.
        let levels: [&[(&str, Option<&str>)]; 8] = [
            &[("user", Some("alice")), ("client-id", Some("app"))],
            &[("user", Some("alice")), ("client-id", None)],
            &[("user", Some("alice"))],
            &[("user", None), ("client-id", Some("app"))],
            &[("user", None), ("client-id", None)],
            &[("user", None)],
            &[("client-id", Some("app"))],
            &[("client-id", None)],
        ];
        let who = caller("alice", "app");
        for first in 0..levels.len() {
            let entries: Vec<_> = levels[first..]
                .iter()
                .enumerate()
                .map(|(offset, parts)| (*parts, (first + offset + 1) as f64))
                .collect();
            let table = table(&entries);
            let (_, quota) = resolve(&table, QuotaKey::ProducerByteRate, &who).unwrap();
            assert_eq!(quota, (first + 1) as f64);
        }
        let others = table(&[
            (&[("user", Some("bob"))], 1.0),
            (&[("client-id", Some("x"))], 2.0),
        ]);
        assert!(resolve(&others, QuotaKey::ProducerByteRate, &who).is_none());
        assert!(resolve(&others, QuotaKey::ConsumerByteRate, &caller("bob", "x")).is_none());
    }

    #[test]
    fn a_user_quota_is_shared_by_the_users_clients() {
        // users/alice is one budget: two client ids of alice's draw from it together.
        let table = table(&[(&[("user", Some("alice"))], 1_000.0)]);
        let mut sensors = Sensors::default();
        let one = sensors.charge(&table, Bandwidth::Produce, &caller("alice", "a"), 10_000, 0);
        assert_eq!(one, 0);
        let two = sensors.charge(&table, Bandwidth::Produce, &caller("alice", "b"), 10_000, 0);
        assert!(two > 0);
        assert_eq!(
            sensors.charge(&table, Bandwidth::Produce, &caller("bob", "a"), 1 << 30, 0),
            0
        );
        assert_eq!(
            sensors.charge(&table, Bandwidth::Fetch, &caller("alice", "a"), 1 << 30, 0),
            0
        );
    }

    #[test]
    fn other_callers_cannot_reset_a_throttled_callers_sensor() {
        // alice is over users/alice; an anonymous client cycling client ids under
        // clients/<default> fills the sensor map with busy sensors, and make_room then drops
        // every sensor, alice's too: her next request is measured from zero. Kafka keeps a
        // sensor until it has been idle for an hour.
        let table = table(&[
            (&[("user", Some("alice"))], 1_000.0),
            (&[("client-id", None)], 1_000_000.0),
        ]);
        let mut sensors = Sensors::default();
        let alice = caller("alice", "app");
        sensors.charge(&table, Bandwidth::Produce, &alice, 100_000, 0);
        assert!(sensors.charge(&table, Bandwidth::Produce, &alice, 1, 0) > 0);
        for id in 0..SENSORS_MAX {
            let other = caller("ANONYMOUS", &id.to_string());
            sensors.charge(&table, Bandwidth::Produce, &other, 1, 1_000);
        }
        assert!(
            sensors.charge(&table, Bandwidth::Produce, &alice, 1, 1_000) > 0,
            "alice is still over her quota"
        );
    }

    #[test]
    fn sensors_are_bounded() {
        // New client ids beyond the bound never grow the map past SENSORS_MAX.
        let table = table(&[(&[("client-id", None)], 1_000.0)]);
        let mut sensors = Sensors::default();
        for id in 0..SENSORS_MAX + 10 {
            sensors.charge(
                &table,
                Bandwidth::Produce,
                &caller("u", &id.to_string()),
                1,
                0,
            );
            assert!(sensors.rates.len() <= SENSORS_MAX);
        }
    }
}
