//! SASL authentication: the broker-wide configuration and credential store, and one connection's
//! session (handshake, exchange, principal, expiry).
//!
//! The wire side (SaslHandshake, SaslAuthenticate, the SCRAM admin APIs) is in `api/`; this module
//! knows mechanisms and credentials, not frames.
//!
//! # Invariants worth naming
//! - A session is authenticated only after a mechanism's whole exchange succeeded.
//! - Re-authentication (KIP-368) keeps the principal: a different user fails it.
//! - Failed logins are logged at most [`FAILURE_LOGS_PER_SECOND`] times a second.
#![forbid(unsafe_code)]

pub mod scram;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use scram::{ScramExchange, ScramHash};
use store::CredentialStore;

/// Failed-login log lines per second at most; the rest are counted and reported with the next.
pub const FAILURE_LOGS_PER_SECOND: u64 = 10;
/// A failed authentication is answered this late (Kafka's connection.failed.authentication.delay.ms
/// default), and its connection then waits up to as long again for the client to close first:
/// together with one attempt per connection and --max-connections-per-ip, it bounds how fast one
/// address can guess passwords.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// A SASL mechanism the broker offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramHash),
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(hash) => hash.mechanism(),
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            other => ScramHash::from_mechanism(other).map(Self::Scram),
        }
    }
}

/// Parses `--sasl-mechanisms`.
pub fn parse_mechanisms(text: &str) -> Result<Vec<Mechanism>> {
    let mut mechanisms = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(mechanism) = Mechanism::parse(name) else {
            bail!("--sasl-mechanisms: unknown mechanism {name:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)");
        };
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        bail!("--sasl-mechanisms names no mechanism");
    }
    Ok(mechanisms)
}

/// What every shard shares for authentication.
pub struct SaslConfig {
    pub mechanisms: Vec<Mechanism>,
    /// `--connections-max-reauth-ms`; 0: sessions do not expire, and a connection cannot log in
    /// again (Kafka's re-authentication is off then).
    pub reauth_ms: u64,
    pub store: RwLock<CredentialStore>,
    /// Serializes changes to the store and their saves (admin requests on any shard).
    pub store_writes: Mutex<()>,
    failure_log: FailureLog,
}

impl SaslConfig {
    pub fn new(mechanisms: Vec<Mechanism>, reauth_ms: u64, store: CredentialStore) -> Self {
        Self {
            mechanisms,
            reauth_ms,
            store: RwLock::new(store),
            store_writes: Mutex::new(()),
            failure_log: FailureLog::default(),
        }
    }

    /// Whether a failed login should be logged now; returns the failures not logged since the
    /// last line.
    pub fn should_log_failure(&self, now_ms: u64) -> Option<u64> {
        self.failure_log.admit(now_ms)
    }
}

/// A fixed window of at most [`FAILURE_LOGS_PER_SECOND`] lines a second, lock-free.
#[derive(Default)]
struct FailureLog {
    window_second: AtomicU64,
    logged_in_window: AtomicU64,
    suppressed: AtomicU64,
}

impl FailureLog {
    fn admit(&self, now_ms: u64) -> Option<u64> {
        let second = now_ms / 1000;
        if self.window_second.swap(second, Ordering::Relaxed) != second {
            self.logged_in_window.store(0, Ordering::Relaxed);
        }
        if self.logged_in_window.fetch_add(1, Ordering::Relaxed) < FAILURE_LOGS_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Why a login failed; logged, never told to the client beyond "authentication failed".
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("SCRAM: {0}")]
    Scram(#[from] scram::ScramError),
    #[error("malformed PLAIN message")]
    PlainMalformed,
    #[error("PLAIN authorization id differs from the user")]
    PlainAuthzid,
    #[error("unknown user or wrong password")]
    BadPassword,
    #[error("re-authentication as {new}, but the connection is {old}")]
    PrincipalChanged { old: String, new: String },
    #[error("SaslAuthenticate before SaslHandshake")]
    NoHandshake,
    #[error("re-authentication with {new}, but the connection logged in with {old}")]
    MechanismChanged { old: String, new: String },
}

/// The next step of an exchange that has not failed.
pub enum AuthStep {
    /// Send these bytes and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated: send these (final) bytes; the session lasts `lifetime_ms` (0: forever).
    Done { bytes: Vec<u8>, lifetime_ms: i64 },
    /// A PLAIN password to check against the user's SCRAM credentials: PBKDF2 of up to 16,384
    /// iterations (milliseconds of CPU an unauthenticated client can ask for), which the caller
    /// runs off the shard thread ([`PlainCheck::verify`]) and hands back to
    /// [`Session::finish_plain`].
    CheckPlain(PlainCheck),
}

/// A well-formed PLAIN login whose password is still to be checked.
pub struct PlainCheck {
    user: String,
    password: String,
    credentials: Vec<(ScramHash, scram::ScramCredential)>,
}

impl PlainCheck {
    /// Whether the password matches one of the user's credentials (none for an unknown user).
    /// The costly part of a PLAIN login: run it where it blocks no shard.
    pub fn verify(&self) -> bool {
        #[cfg(debug_assertions)]
        test_hook::hold();
        self.credentials
            .iter()
            .any(|(hash, credential)| credential.matches_password(*hash, &self.password))
    }
}

enum Phase {
    Idle,
    Handshaken(Mechanism),
    /// A re-authentication asked for another mechanism than the login's: as in Kafka
    /// (REAUTH_BAD_MECHANISM) the handshake is answered, its SaslAuthenticate fails.
    ReauthMechanismChanged {
        old: Mechanism,
        new: Mechanism,
    },
    Scram(Box<ScramExchange>),
}

/// One connection's authentication state.
pub struct Session {
    phase: Phase,
    /// The authenticated principal (`User:NAME`) and when its session ends.
    principal: Option<(String, Option<Instant>)>,
    /// When the last re-authentication began: Kafka allows one a second per connection
    /// ([`REAUTHENTICATION_INTERVAL_MIN`]), so a client cannot make the broker check passwords
    /// in a loop on one connection.
    last_reauthentication: Option<Instant>,
    /// The mechanism of the connection's login: a re-authentication must use it too.
    login_mechanism: Option<Mechanism>,
}

/// The least time between two re-authentications of one connection (Kafka's
/// `KafkaChannel.MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`); an earlier SaslHandshake is refused.
pub const REAUTHENTICATION_INTERVAL_MIN: Duration = Duration::from_secs(1);

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Self {
        Self {
            phase: Phase::Idle,
            principal: None,
            last_reauthentication: None,
            login_mechanism: None,
        }
    }

    /// The principal if authenticated and not expired at `now`.
    pub fn principal(&self, now: Instant) -> Option<&str> {
        match &self.principal {
            Some((principal, None)) => Some(principal),
            Some((principal, Some(expires))) if now < *expires => Some(principal),
            _ => None,
        }
    }

    /// Whether this connection has logged in and is between exchanges: a SaslAuthenticate now
    /// has no handshake before it and is, as in Kafka, an ordinary request in the wrong state.
    pub fn logged_in_between_exchanges(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Idle) && self.principal(now).is_some()
    }

    /// SaslHandshake: chooses the mechanism. Errors are Kafka's codes' reasons.
    pub fn handshake(
        &mut self,
        config: &SaslConfig,
        name: &str,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        if !matches!(self.phase, Phase::Idle) {
            return Err(HandshakeError::IllegalState);
        }
        if self.principal.is_some() {
            // A re-authentication (KIP-368). Kafka starts one only when sessions expire
            // (connections.max.reauth.ms > 0) and at most once a second; otherwise the handshake
            // is served as any request after a login: ILLEGAL_SASL_STATE.
            let too_soon = self.last_reauthentication.is_some_and(|last| {
                now.saturating_duration_since(last) < REAUTHENTICATION_INTERVAL_MIN
            });
            if config.reauth_ms == 0 || too_soon {
                return Err(HandshakeError::NoReauthentication);
            }
        }
        let mechanism = Mechanism::parse(name)
            .filter(|m| config.mechanisms.contains(m))
            .ok_or(HandshakeError::Unsupported)?;
        match self.login_mechanism {
            Some(old) if self.principal.is_some() && old != mechanism => {
                self.last_reauthentication = Some(now);
                self.phase = Phase::ReauthMechanismChanged {
                    old,
                    new: mechanism,
                };
                return Ok(());
            }
            Some(_) if self.principal.is_some() => self.last_reauthentication = Some(now),
            _ => self.login_mechanism = Some(mechanism),
        }
        self.phase = Phase::Handshaken(mechanism);
        Ok(())
    }

    /// SaslAuthenticate: one message of the exchange. A failure ends the session's exchange.
    pub fn authenticate(
        &mut self,
        config: &SaslConfig,
        message: &[u8],
        now: Instant,
    ) -> Result<AuthStep, AuthFailure> {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => Err(AuthFailure::NoHandshake),
            Phase::ReauthMechanismChanged { old, new } => Err(AuthFailure::MechanismChanged {
                old: old.name().to_string(),
                new: new.name().to_string(),
            }),
            Phase::Handshaken(Mechanism::Plain) => {
                Ok(AuthStep::CheckPlain(check_plain(config, message)?))
            }
            Phase::Handshaken(Mechanism::Scram(hash)) => {
                let first = scram::parse_client_first(message)?;
                let credential = config
                    .store
                    .read()
                    .expect("the credential store lock is not poisoned")
                    .get(&first.user, hash)
                    .cloned()
                    .ok_or(scram::ScramError::UnknownUser)?;
                let (exchange, reply) = ScramExchange::start(hash, first, credential);
                self.phase = Phase::Scram(Box::new(exchange));
                Ok(AuthStep::Continue(reply))
            }
            Phase::Scram(exchange) => {
                let reply = exchange.finish(message)?;
                self.finish(config, exchange.user().to_string(), reply, now)
            }
        }
    }

    /// The end of a PLAIN login: `matched` is what [`PlainCheck::verify`] said of `check`.
    pub fn finish_plain(
        &mut self,
        config: &SaslConfig,
        check: PlainCheck,
        matched: bool,
        now: Instant,
    ) -> Result<AuthStep, AuthFailure> {
        if !matched {
            return Err(AuthFailure::BadPassword);
        }
        self.finish(config, check.user, Vec::new(), now)
    }

    fn finish(
        &mut self,
        config: &SaslConfig,
        user: String,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<AuthStep, AuthFailure> {
        let principal = format!("User:{user}");
        if let Some((old, _)) = &self.principal {
            if *old != principal {
                return Err(AuthFailure::PrincipalChanged {
                    old: old.clone(),
                    new: principal,
                });
            }
        }
        let expires = (config.reauth_ms > 0).then(|| now + Duration::from_millis(config.reauth_ms));
        self.principal = Some((principal, expires));
        Ok(AuthStep::Done {
            bytes,
            lifetime_ms: config.reauth_ms.min(i64::MAX as u64) as i64,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// A handshake in the middle of an exchange.
    IllegalState,
    /// Not a mechanism this broker offers.
    Unsupported,
    /// A handshake on an authenticated connection that may not re-authenticate (sessions do not
    /// expire, or its last re-authentication began under [`REAUTHENTICATION_INTERVAL_MIN`] ago);
    /// the connection stays open.
    NoReauthentication,
}

/// PLAIN (RFC 4616): `authzid NUL user NUL password`, to be checked against the user's SCRAM
/// credentials (taken here, so a change to the store after this login began does not apply to it).
fn check_plain(config: &SaslConfig, message: &[u8]) -> Result<PlainCheck, AuthFailure> {
    let mut parts = message.split(|byte| *byte == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthFailure::PlainMalformed);
    };
    let text = |bytes| std::str::from_utf8(bytes).map_err(|_| AuthFailure::PlainMalformed);
    let (authzid, user, password) = (text(authzid)?, text(user)?, text(password)?);
    if user.is_empty() {
        return Err(AuthFailure::PlainMalformed);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthFailure::PlainAuthzid);
    }
    let credentials = config
        .store
        .read()
        .expect("the credential store lock is not poisoned")
        .credentials(user)
        .map(|(hash, credential)| (hash, credential.clone()))
        .collect();
    Ok(PlainCheck {
        user: user.to_string(),
        password: password.to_string(),
        credentials,
    })
}

/// Test builds only (debug assertions on): holds every PLAIN check, blocking the thread that runs
/// it as a costly PBKDF2 does, until the file named by `RINGTAIL_TEST_HOLD_PLAIN_CHECKS` exists.
/// A test can so show by the order of responses that the shard serves other connections while a
/// login is being checked. Release builds never read the variable.
#[cfg(debug_assertions)]
mod test_hook {
    use std::path::PathBuf;
    use std::sync::OnceLock;
    use std::time::Duration;

    const HOLD_ENV: &str = "RINGTAIL_TEST_HOLD_PLAIN_CHECKS";
    const POLL: Duration = Duration::from_millis(5);

    pub(super) fn hold() {
        static RELEASE_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
        let release = RELEASE_FILE.get_or_init(|| std::env::var_os(HOLD_ENV).map(PathBuf::from));
        if let Some(release) = release {
            while !release.exists() {
                std::thread::sleep(POLL);
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
