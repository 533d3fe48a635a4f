use super::scram::{ScramCredential, ITERATIONS_MIN};
use super::*;

fn config(reauth_ms: u64) -> SaslConfig {
    let dir = tempfile::tempdir().unwrap();
    let mut store = CredentialStore::load(dir.path()).unwrap();
    for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let credential = ScramCredential::generate(ScramHash::Sha256, password, ITERATIONS_MIN);
        store.upsert(user, ScramHash::Sha256, credential).unwrap();
    }
    let mechanisms = parse_mechanisms("PLAIN,SCRAM-SHA-256").unwrap();
    SaslConfig::new(mechanisms, reauth_ms, store)
}

fn plain_login(
    session: &mut Session,
    config: &SaslConfig,
    user: &str,
    password: &str,
    now: Instant,
) -> Result<(), AuthFailure> {
    session.handshake(config, "PLAIN", now).unwrap();
    let message = format!("\0{user}\0{password}");
    match session.authenticate(config, message.as_bytes(), now)? {
        // As the broker does, but inline: verify, then finish.
        AuthStep::CheckPlain(check) => {
            let matched = check.verify();
            session
                .finish_plain(config, check, matched, now)
                .map(|_| ())
        }
        _ => panic!("a PLAIN message is answered with its password to check"),
    }
}

#[test]
fn plain_logs_in_with_the_stored_password_only() {
    // PLAIN checks against the SCRAM store; a wrong password or unknown user fails alike.
    let config = config(0);
    let now = Instant::now();
    let mut session = Session::new();
    assert!(matches!(
        plain_login(&mut session, &config, "alice", "nope", now),
        Err(AuthFailure::BadPassword)
    ));
    assert_eq!(session.principal(now), None);
    let mut session = Session::new();
    assert!(matches!(
        plain_login(&mut session, &config, "carol", "alice-pw", now),
        Err(AuthFailure::BadPassword)
    ));
    let mut session = Session::new();
    plain_login(&mut session, &config, "alice", "alice-pw", now).unwrap();
    assert_eq!(session.principal(now), Some("User:alice"));
    let mut session = Session::new();
    session.handshake(&config, "PLAIN", Instant::now()).unwrap();
    assert!(matches!(
        session.authenticate(&config, b"alice-pw", now),
        Err(AuthFailure::PlainMalformed)
    ));
    let mut session = Session::new();
    session.handshake(&config, "PLAIN", Instant::now()).unwrap();
    assert!(matches!(
        session.authenticate(&config, b"bob\0alice\0alice-pw", now),
        Err(AuthFailure::PlainAuthzid)
    ));
}

#[test]
fn handshake_refuses_unknown_mechanisms_and_bad_order() {
    // Only offered mechanisms; no handshake inside an exchange; no authenticate before one.
    let config = config(0);
    let mut session = Session::new();
    assert_eq!(
        session.handshake(&config, "SCRAM-SHA-512", Instant::now()),
        Err(HandshakeError::Unsupported)
    );
    assert_eq!(
        session.handshake(&config, "GSSAPI", Instant::now()),
        Err(HandshakeError::Unsupported)
    );
    assert!(matches!(
        session.authenticate(&config, b"x", Instant::now()),
        Err(AuthFailure::NoHandshake)
    ));
    session
        .handshake(&config, "SCRAM-SHA-256", Instant::now())
        .unwrap();
    assert_eq!(
        session.handshake(&config, "PLAIN", Instant::now()),
        Err(HandshakeError::IllegalState)
    );
}

#[test]
fn sessions_expire_and_reauthentication_keeps_the_principal() {
    // KIP-368: after reauth_ms the principal is gone until re-authentication, which must be
    // the same user.
    let config = config(1_000);
    let start = Instant::now();
    let mut session = Session::new();
    plain_login(&mut session, &config, "alice", "alice-pw", start).unwrap();
    assert_eq!(
        session.principal(start + Duration::from_millis(999)),
        Some("User:alice")
    );
    let later = start + Duration::from_millis(1_000);
    assert_eq!(session.principal(later), None);
    plain_login(&mut session, &config, "alice", "alice-pw", later).unwrap();
    assert_eq!(session.principal(later), Some("User:alice"));
    let next = later + REAUTHENTICATION_INTERVAL_MIN;
    let failed = plain_login(&mut session, &config, "bob", "bob-pw", next);
    assert!(matches!(failed, Err(AuthFailure::PrincipalChanged { .. })));
}

#[test]
fn reauthentication_is_refused_when_sessions_do_not_expire_or_within_a_second() {
    // Kafka: connections.max.reauth.ms=0 turns re-authentication off, and a connection may
    // start one at most once a second; both refusals keep the principal.
    let now = Instant::now();
    let forever = config(0);
    let mut session = Session::new();
    plain_login(&mut session, &forever, "alice", "alice-pw", now).unwrap();
    let later = now + Duration::from_secs(3600);
    assert_eq!(
        session.handshake(&forever, "PLAIN", later),
        Err(HandshakeError::NoReauthentication)
    );
    assert!(session.logged_in_between_exchanges(later));
    assert_eq!(session.principal(later), Some("User:alice"));

    let expiring = config(60_000);
    let mut session = Session::new();
    plain_login(&mut session, &expiring, "alice", "alice-pw", now).unwrap();
    // The first login does not count: a re-authentication may follow at once.
    plain_login(&mut session, &expiring, "alice", "alice-pw", now).unwrap();
    let soon = now + REAUTHENTICATION_INTERVAL_MIN - Duration::from_millis(1);
    assert_eq!(
        session.handshake(&expiring, "PLAIN", soon),
        Err(HandshakeError::NoReauthentication)
    );
    plain_login(
        &mut session,
        &expiring,
        "alice",
        "alice-pw",
        now + REAUTHENTICATION_INTERVAL_MIN,
    )
    .unwrap();
    assert_eq!(
        session.principal(now + REAUTHENTICATION_INTERVAL_MIN),
        Some("User:alice")
    );
}

#[test]
fn the_failure_log_is_bounded_per_second() {
    // A password-guessing flood produces at most FAILURE_LOGS_PER_SECOND lines a second.
    let config = config(0);
    let logged = (0..100)
        .filter(|_| config.should_log_failure(5_000).is_some())
        .count();
    assert_eq!(logged as u64, FAILURE_LOGS_PER_SECOND);
    assert_eq!(
        config.should_log_failure(6_000),
        Some(90),
        "the next line reports the suppressed"
    );
}

#[test]
fn mechanisms_flag_parses() {
    // The default list, and a typo named.
    assert_eq!(
        parse_mechanisms("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")
            .unwrap()
            .len(),
        3
    );
    assert!(parse_mechanisms("SCRAM-SHA-1").is_err());
    assert!(parse_mechanisms("").is_err());
}

#[test]
fn reauthentication_must_use_the_logins_mechanism() {
    // Kafka (REAUTH_BAD_MECHANISM): the handshake naming another mechanism is answered, its
    // SaslAuthenticate fails (and closes the connection).
    let config = config(60_000);
    let now = Instant::now();
    let mut session = Session::new();
    plain_login(&mut session, &config, "alice", "alice-pw", now).unwrap();
    session.handshake(&config, "SCRAM-SHA-256", now).unwrap();
    assert!(matches!(
        session.authenticate(&config, b"n,,n=alice,r=abc", now),
        Err(AuthFailure::MechanismChanged { .. })
    ));
}
