use super::*;

/// A client's side of the exchange, computed as RFC 5802 says (independent of the server code
/// except for the two primitives).
fn client_final(
    hash: ScramHash,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, Vec<u8>) {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    let salt = B64.decode(fields[1].strip_prefix("s=").unwrap()).unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored_key = hash.hash(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hash.hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hash.hmac(&salted, b"Server Key");
    let expected_server_final =
        format!("v={}", B64.encode(hash.hmac(&server_key, auth.as_bytes())));
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        expected_server_final.into_bytes(),
    )
}

fn exchange(
    hash: ScramHash,
    stored_password: &str,
    tried_password: &str,
) -> Result<(), ScramError> {
    let credential = ScramCredential::generate(hash, stored_password, ITERATIONS_MIN);
    let first = parse_client_first(b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
    let bare = first.bare.clone();
    let (exchange, server_first) = ScramExchange::start(hash, first, credential);
    let server_first = String::from_utf8(server_first).unwrap();
    assert!(
        server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"),
        "the server extends the client nonce"
    );
    let (client_final, expected) = client_final(hash, tried_password, &bare, &server_first);
    let server_final = exchange.finish(client_final.as_bytes())?;
    assert_eq!(
        server_final, expected,
        "the client can verify the server's signature"
    );
    Ok(())
}

#[test]
fn both_hashes_accept_the_right_password_and_refuse_a_wrong_one() {
    // The proof verifies only with the password the credential was made from.
    for hash in [ScramHash::Sha256, ScramHash::Sha512] {
        assert_eq!(exchange(hash, "pencil", "pencil"), Ok(()));
        assert_eq!(
            exchange(hash, "pencil", "pencil2"),
            Err(ScramError::BadProof)
        );
    }
}

#[test]
fn rfc7677_salted_password_vector() {
    // RFC 7677's example: the client proof it gives follows from this salted password, so the
    // PBKDF2 primitive is checked against the RFC rather than against itself.
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = ScramHash::Sha256.salted_password(b"pencil", &salt, 4096);
    let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
    let server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let hash = ScramHash::Sha256;
    let client_key = hash.hmac(&salted, b"Client Key");
    let signature = hash.hmac(&hash.hash(&client_key), auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    assert_eq!(
        B64.encode(proof),
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    let server_signature = hash.hmac(&hash.hmac(&salted, b"Server Key"), auth.as_bytes());
    assert_eq!(
        B64.encode(server_signature),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

#[test]
fn malformed_and_tampered_messages_fail() {
    // Garbage, channel binding and a changed nonce each fail the exchange, none panics.
    assert!(parse_client_first(b"").is_err());
    assert!(parse_client_first(b"n,,r=abc").is_err());
    assert!(parse_client_first(&[0xff, 0xfe]).is_err());
    assert_eq!(
        parse_client_first(b"p=tls-unique,,n=a,r=b"),
        Err(ScramError::ChannelBinding)
    );
    assert!(parse_client_first(b"n,,n=a=ZZb,r=x").is_err());
    let first = parse_client_first(b"n,,n=a=2Cb=3Dc,r=nonce,tokenauth=true").unwrap();
    assert_eq!(first.user, "a,b=c");
    let credential = ScramCredential::generate(ScramHash::Sha256, "pw", ITERATIONS_MIN);
    let (exchange, _) = ScramExchange::start(ScramHash::Sha256, first, credential);
    assert_eq!(
        exchange.finish(b"c=biws,r=other,p=AAAA"),
        Err(ScramError::NonceMismatch)
    );
    assert!(exchange.finish(b"c=biws").is_err());
    assert!(exchange.finish(b"garbage,p=!!").is_err());
}

#[test]
fn plain_checks_against_a_scram_credential() {
    // PLAIN logins use the same store: the password re-derives the stored key.
    let credential = ScramCredential::generate(ScramHash::Sha512, "s3cret", ITERATIONS_MIN);
    assert!(credential.matches_password(ScramHash::Sha512, "s3cret"));
    assert!(!credential.matches_password(ScramHash::Sha512, "s3cret "));
}
