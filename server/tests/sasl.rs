//! SASL on the real `ringtail` binary over loopback: listeners in Kafka's form, the login
//! exchanges (PLAIN, SCRAM-SHA-256/512) with their failure cases, session expiry and
//! re-authentication (KIP-368), and the SCRAM credential admin APIs. The SCRAM client side here
//! is written from RFC 5802 with the same hash crates, not with the broker's code.
#![forbid(unsafe_code)]

mod common;

use common::client::Client;
use common::sasl::{self, SaslBroker};

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sha2::{Digest, Sha256};

const SASL_AUTHENTICATION_FAILED: i16 = 58;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const RESOURCE_NOT_FOUND: i16 = 91;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// `ringtail users add` with the password on standard input, as an operator runs it.
fn add_user(dir: &std::path::Path, name: &str, mechanism: &str, password: &str) {
    sasl::add_user(dir, name, mechanism, password);
}

/// A broker owning `dir` (a restart takes it back from `SaslBroker::dir`).
fn start(dir: tempfile::TempDir, extra: &[&str]) -> SaslBroker {
    let mut broker = sasl::start_sasl(dir.path(), extra);
    broker.dir = Some(dir);
    broker
}

impl Client {
    fn metadata(&mut self) -> MetadataResponse {
        self.call(ApiKey::Metadata, 9, &MetadataRequest::default())
    }

    fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse {
        let request = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        self.call(ApiKey::SaslHandshake, 1, &request)
    }

    fn authenticate(&mut self, bytes: &[u8]) -> SaslAuthenticateResponse {
        let request =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
        self.call(ApiKey::SaslAuthenticate, 2, &request)
    }

    fn plain(&mut self, user: &str, password: &str) -> SaslAuthenticateResponse {
        assert_eq!(self.handshake("PLAIN").error_code, 0);
        self.authenticate(format!("\0{user}\0{password}").as_bytes())
    }

    /// A whole SCRAM-SHA-256 login; returns the final response.
    fn scram_sha256(&mut self, user: &str, password: &str) -> SaslAuthenticateResponse {
        self.scram_sha256_as(user, password, "n,,")
    }

    /// [`Client::scram_sha256`] with the GS2 header `gs2` (`n,a=AUTHZID,` names an
    /// authorization id).
    fn scram_sha256_as(
        &mut self,
        user: &str,
        password: &str,
        gs2: &str,
    ) -> SaslAuthenticateResponse {
        assert_eq!(self.handshake("SCRAM-SHA-256").error_code, 0);
        let bare = format!("n={user},r=clientnonce123");
        let first = self.authenticate(format!("{gs2}{bare}").as_bytes());
        if first.error_code != 0 {
            return first;
        }
        let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        assert!(nonce.starts_with("clientnonce123"));
        let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = salted_password(password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let without_proof = format!("c={},r={nonce}", B64.encode(gs2));
        let auth = format!("{bare},{server_first},{without_proof}");
        let signature = hmac(&Sha256::digest(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let last = self.authenticate(format!("{without_proof},p={}", B64.encode(proof)).as_bytes());
        if last.error_code == 0 {
            let expected = hmac(&hmac(&salted, b"Server Key"), auth.as_bytes());
            assert_eq!(
                last.auth_bytes.as_ref(),
                format!("v={}", B64.encode(expected)).as_bytes(),
                "the server proves it holds the credential"
            );
        }
        last
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

#[test]
fn a_user_added_offline_logs_in_with_plain_and_scram_and_wrong_passwords_fail() {
    // `ringtail users add` before the first start; both mechanisms check the same store.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice", "SCRAM-SHA-256", "alice-secret");
    let broker = start(dir, &[]);
    let stored =
        std::fs::read_to_string(broker.dir.as_ref().unwrap().path().join("credentials.json"))
            .unwrap();
    assert!(!stored.contains("alice-secret"), "no password on disk");

    let mut scram = Client::connect_port(broker.sasl_port);
    assert_eq!(scram.scram_sha256("alice", "alice-secret").error_code, 0);
    assert_eq!(
        scram.metadata().brokers[0].port,
        i32::from(broker.sasl_port),
        "the SASL listener announces itself"
    );

    let mut plain = Client::connect_port(broker.sasl_port);
    let ok = plain.plain("alice", "alice-secret");
    assert_eq!(ok.error_code, 0);
    assert_eq!(
        ok.session_lifetime_ms, 0,
        "no --connections-max-reauth-ms: no expiry"
    );
    assert!(!plain.metadata().brokers.is_empty());

    let mut wrong = Client::connect_port(broker.sasl_port);
    let failed = wrong.scram_sha256("alice", "not-it");
    assert_eq!(failed.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(wrong.closed_by_broker());
    let mut unknown = Client::connect_port(broker.sasl_port);
    assert_eq!(
        unknown.scram_sha256("mallory", "x").error_code,
        SASL_AUTHENTICATION_FAILED
    );
    let mut wrong_plain = Client::connect_port(broker.sasl_port);
    assert_eq!(
        wrong_plain.plain("alice", "alice-secreT").error_code,
        SASL_AUTHENTICATION_FAILED
    );
    assert!(wrong_plain.closed_by_broker());
}

#[test]
fn unauthenticated_requests_close_the_connection_but_api_versions_is_answered() {
    // On a SASL listener only ApiVersions and the SASL APIs come before a login.
    let broker = start(
        tempfile::tempdir().unwrap(),
        &["--sasl-mechanisms", "SCRAM-SHA-512"],
    );
    let mut client = Client::connect_port(broker.sasl_port);
    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16 && k.max_version == 2));
    let refused = client.handshake("PLAIN");
    assert_eq!(refused.error_code, UNSUPPORTED_SASL_MECHANISM);
    assert_eq!(
        refused.mechanisms,
        vec![StrBytes::from_static_str("SCRAM-SHA-512")]
    );
    assert!(
        client.closed_by_broker(),
        "a failed handshake closes the connection"
    );

    let mut early = Client::connect_port(broker.sasl_port);
    early
        .send(ApiKey::Metadata, 9, &MetadataRequest::default())
        .unwrap();
    assert!(early.closed_by_broker());

    // A frame above 512 KiB before a login is refused unread (sasl.server.max.receive.size).
    let mut large = Client::connect_port(broker.sasl_port);
    large.send_raw(&(600 * 1024i32).to_be_bytes()).unwrap();
    assert!(large.closed_by_broker());

    let mut no_handshake = Client::connect_port(broker.sasl_port);
    assert_eq!(
        no_handshake.authenticate(b"\0a\0b").error_code,
        SASL_AUTHENTICATION_FAILED
    );

    // The PLAINTEXT listener beside it needs no login and refuses SASL.
    let mut plaintext = Client::connect_port(broker.plaintext_port);
    assert_eq!(plaintext.handshake("PLAIN").error_code, ILLEGAL_SASL_STATE);
    assert_eq!(
        plaintext.metadata().brokers[0].port,
        i32::from(broker.plaintext_port)
    );
}

#[test]
fn without_a_session_lifetime_a_second_login_is_an_illegal_sasl_state() {
    // Kafka's connections.max.reauth.ms=0: re-authentication is off. A SaslHandshake or a
    // SaslAuthenticate on an authenticated connection is answered ILLEGAL_SASL_STATE (by
    // KafkaApis, as any request) and the connection stays open with its principal.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "bob", "SCRAM-SHA-256", "bob-pw");
    add_user(dir.path(), "eve", "SCRAM-SHA-256", "eve-pw");
    let broker = start(dir, &[]);
    let mut client = Client::connect_port(broker.sasl_port);
    assert_eq!(client.plain("bob", "bob-pw").error_code, 0);
    let again = client.handshake("PLAIN");
    assert_eq!(again.error_code, ILLEGAL_SASL_STATE);
    let authenticate = client.authenticate(b"\0eve\0eve-pw");
    assert_eq!(authenticate.error_code, ILLEGAL_SASL_STATE);
    assert_eq!(authenticate.session_lifetime_ms, 0);
    assert!(
        !client.metadata().brokers.is_empty(),
        "still open and still logged in"
    );
}

#[test]
fn an_expired_session_closes_on_its_next_request_unless_reauthenticated() {
    // KIP-368: the login tells the lifetime; after it only a new login keeps the connection.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "bob", "SCRAM-SHA-256", "bob-pw");
    // Sessions of 3 s: long enough that each login's next request (PBKDF2 in an unoptimized
    // test build, on a loaded machine) always comes well inside it.
    let broker = start(dir, &["--connections-max-reauth-ms", "3000"]);
    let mut reauthenticating = Client::connect_port(broker.sasl_port);
    let login = reauthenticating.plain("bob", "bob-pw");
    assert_eq!(login.session_lifetime_ms, 3000);
    let mut lapsing = Client::connect_port(broker.sasl_port);
    assert_eq!(lapsing.plain("bob", "bob-pw").error_code, 0);
    assert!(!lapsing.metadata().brokers.is_empty());
    // Past the lifetime (waiting out a bound, not measuring one).
    std::thread::sleep(Duration::from_millis(3200));
    // With the login's mechanism (Kafka refuses another one for a re-authentication).
    assert_eq!(reauthenticating.plain("bob", "bob-pw").error_code, 0);
    assert!(
        !reauthenticating.metadata().brokers.is_empty(),
        "re-authenticated in time"
    );
    lapsing
        .send(ApiKey::Metadata, 9, &MetadataRequest::default())
        .unwrap();
    assert!(
        lapsing.closed_by_broker(),
        "expired and not re-authenticated"
    );
}

#[test]
fn scram_credentials_are_managed_online_and_survive_a_restart() {
    // AlterUserScramCredentials sends a salted password; the user logs in, even after a restart.
    let broker = start(tempfile::tempdir().unwrap(), &[]);
    let mut admin = Client::connect_port(broker.plaintext_port);
    let salt = b"some-salt-bytes".to_vec();
    let upsert = |name: &str, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(name.to_string()))
            .with_mechanism(1)
            .with_iterations(iterations)
            .with_salt(Bytes::from(salt.clone()))
            .with_salted_password(Bytes::from(salted_password("carol-pw", &salt, 4096)))
    };
    let request = AlterUserScramCredentialsRequest::default()
        .with_upsertions(vec![upsert("carol", 4096), upsert("weak", 10)])
        .with_deletions(vec![ScramCredentialDeletion::default()
            .with_name(StrBytes::from_static_str("nobody"))
            .with_mechanism(2)]);
    let altered: AlterUserScramCredentialsResponse =
        admin.call(ApiKey::AlterUserScramCredentials, 0, &request);
    let code_of = |user: &str| {
        altered
            .results
            .iter()
            .find(|r| r.user.as_str() == user)
            .unwrap()
            .error_code
    };
    assert_eq!(code_of("carol"), 0);
    assert_eq!(code_of("weak"), UNACCEPTABLE_CREDENTIAL);
    assert_eq!(code_of("nobody"), RESOURCE_NOT_FOUND);

    let described: DescribeUserScramCredentialsResponse = admin.call(
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    );
    assert_eq!(described.results.len(), 1);
    assert_eq!(described.results[0].user.as_str(), "carol");
    assert_eq!(described.results[0].credential_infos[0].iterations, 4096);

    let mut carol = Client::connect_port(broker.sasl_port);
    assert_eq!(carol.scram_sha256("carol", "carol-pw").error_code, 0);

    let mut broker = broker;
    let dir = broker.dir.take().unwrap();
    drop(broker);
    let restarted = start(dir, &[]);
    let mut again = Client::connect_port(restarted.sasl_port);
    assert_eq!(again.scram_sha256("carol", "carol-pw").error_code, 0);
}

#[test]
fn a_salted_password_of_any_length_is_accepted() {
    // Kafka's ScramControlManager checks only the mechanism, the user name and the iterations of
    // an upsertion: the salted password is an HMAC key, so any length derives the stored and
    // server keys. kafka-go's TestAlterUserScramCredentials sends an 18-byte one for SCRAM-SHA-512.
    let broker = start(tempfile::tempdir().unwrap(), &[]);
    let mut admin = Client::connect_port(broker.plaintext_port);
    let request = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_static_str("short-key"))
            .with_mechanism(2)
            .with_iterations(15000)
            .with_salt(Bytes::from_static(b"my-salt"))
            .with_salted_password(Bytes::from_static(b"my-salted-password")),
    ]);
    let altered: AlterUserScramCredentialsResponse =
        admin.call(ApiKey::AlterUserScramCredentials, 0, &request);
    assert_eq!(altered.results.len(), 1);
    assert_eq!(altered.results[0].error_code, 0, "{:?}", altered.results[0]);
    let described: DescribeUserScramCredentialsResponse = admin.call(
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    );
    let user = described
        .results
        .iter()
        .find(|r| r.user.as_str() == "short-key")
        .expect("the credential was stored");
    assert_eq!(user.credential_infos[0].mechanism, 2);
    assert_eq!(user.credential_infos[0].iterations, 15000);
}

#[test]
fn a_scram_login_naming_another_authorization_id_fails() {
    // RFC 5802's `a=` asks to act as someone else; Kafka's ScramSaslServer refuses an authzid
    // other than the user ("Client requested an authorization id that is different from
    // username"), as PLAIN does here. Naming the user itself is fine.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice", "SCRAM-SHA-256", "alice-secret");
    let broker = start(dir, &[]);
    let mut as_admin = Client::connect_port(broker.sasl_port);
    assert_eq!(
        as_admin
            .scram_sha256_as("alice", "alice-secret", "n,a=admin,")
            .error_code,
        SASL_AUTHENTICATION_FAILED
    );
    assert!(as_admin.closed_by_broker());
    let mut as_herself = Client::connect_port(broker.sasl_port);
    assert_eq!(
        as_herself
            .scram_sha256_as("alice", "alice-secret", "n,a=alice,")
            .error_code,
        0
    );
}

#[test]
#[cfg_attr(not(debug_assertions), ignore = "needs the debug build's test hooks")]
fn a_plain_login_being_checked_does_not_hold_up_the_shard() {
    // PLAIN's password check is PBKDF2 of up to 16,384 iterations, which any unauthenticated
    // client can ask for: it runs off the shard thread. Shown by order, not time: a test build
    // holds every PLAIN check (blocking its thread, as the hash does) until the test releases it;
    // meanwhile another connection of the only shard is answered, then the held login succeeds.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "alice", "SCRAM-SHA-256", "alice-secret");
    let scratch = tempfile::tempdir().unwrap();
    let release = scratch.path().join("release-plain-checks");
    let mut broker = sasl::start_sasl_with_env(
        dir.path(),
        &["--shards", "1"],
        &[("RINGTAIL_TEST_HOLD_PLAIN_CHECKS", release.as_os_str())],
    );
    broker.dir = Some(dir);

    let mut held = Client::connect_port(broker.sasl_port);
    assert_eq!(held.handshake("PLAIN").error_code, 0);
    let login = SaslAuthenticateRequest::default()
        .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-secret"));
    held.send(ApiKey::SaslAuthenticate, 2, &login).unwrap();

    let mut other = Client::connect_port(broker.plaintext_port);
    assert!(
        !other.metadata().brokers.is_empty(),
        "answered while the login's check is held"
    );
    let mut other_login = Client::connect_port(broker.sasl_port);
    assert_eq!(
        other_login.handshake("PLAIN").error_code,
        0,
        "a handshake on the same listener too"
    );

    std::fs::write(&release, b"").unwrap();
    let answer: SaslAuthenticateResponse = held.receive(ApiKey::SaslAuthenticate, 2).unwrap();
    assert_eq!(
        answer.error_code, 0,
        "the held login completes once released"
    );
    assert!(!held.metadata().brokers.is_empty());
}
