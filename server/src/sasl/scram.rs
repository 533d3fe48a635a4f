//! SCRAM (RFC 5802 / RFC 7677) on the server side: the stored credential and the two-message
//! exchange, as Kafka's `SCRAM-SHA-256` and `SCRAM-SHA-512` run it.
//!
//! The broker never keeps a password: a credential is the salt, the iteration count and two keys
//! derived from the salted password (`StoredKey = H(HMAC(salted, "Client Key"))`,
//! `ServerKey = HMAC(salted, "Server Key")`). The stored key verifies a client's proof; the server
//! key signs the server's final message so the client knows the broker holds its credential.
//!
//! # Invariants worth naming
//! - Every comparison with a secret is constant-time (`subtle`).
//! - The exchange accepts exactly client-first then client-final; anything else fails it.
#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on a SCRAM credential's iterations (ScramMechanism's min and max).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;
/// Bytes of a salt the broker generates.
const SALT_BYTES: usize = 32;
/// Bytes of the server's nonce part.
const NONCE_BYTES: usize = 24;
/// Longest SCRAM message accepted (a user name, nonces and a proof fit well inside).
pub const MESSAGE_BYTES_MAX: usize = 4096;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    pub fn mechanism(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_mechanism(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Kafka's ScramMechanism type in Describe/AlterUserScramCredentials.
    pub fn wire_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_wire_type(value: i8) -> Option<Self> {
        match value {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Bytes of this hash's output (and so of every key).
    pub fn output_bytes(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this hash's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_bytes()];
        match self {
            Self::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
            Self::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out),
        }
        out
    }
}

/// What the broker stores for one user and mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential of a salted password (AlterUserScramCredentials sends one, never the
    /// password).
    pub fn from_salted(hash: ScramHash, salted: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let client_key = hash.hmac(salted, b"Client Key");
        Self {
            salt,
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(salted, b"Server Key"),
        }
    }

    /// A new credential for `password`, with a fresh random salt.
    pub fn generate(hash: ScramHash, password: &str, iterations: u32) -> Self {
        let salt = random_bytes(SALT_BYTES);
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted(hash, &salted, salt, iterations)
    }

    /// Whether `password` is this credential's (PLAIN logins check against SCRAM credentials).
    pub fn matches_password(&self, hash: ScramHash, password: &str) -> bool {
        let salted = hash.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let candidate = Self::from_salted(hash, &salted, Vec::new(), self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    // The OS random source failing leaves no safe way to make salts or nonces.
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
}

/// Why a SCRAM exchange failed; the client only ever hears "authentication failed".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("unknown user")]
    UnknownUser,
    #[error("the authorization id differs from the user")]
    AuthorizationId,
    #[error("nonce mismatch")]
    NonceMismatch,
    #[error("wrong password (proof does not verify)")]
    BadProof,
}

/// The first client message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `y,,` (or with `a=authzid`), echoed base64 in the final message's `c=`.
    pub gs2_header: String,
    pub user: String,
    pub nonce: String,
    /// `n=...,r=...[,extensions]`, part of the signed auth message.
    pub bare: String,
}

/// Parses `gs2-header client-first-message-bare`.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().ok_or(ScramError::Malformed("no gs2 flag"))?;
    let authzid = parts.next().ok_or(ScramError::Malformed("no authzid"))?;
    let bare = parts
        .next()
        .ok_or(ScramError::Malformed("no bare message"))?;
    match flag {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad gs2 flag")),
    }
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(ScramError::Malformed("bad authzid"));
    }
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no user name"))?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    if nonce.is_empty() || nonce.contains(',') {
        return Err(ScramError::Malformed("bad nonce"));
    }
    let user = unescape_name(user)?;
    // Acting as someone else is not offered: an authorization id must be the user (Kafka's
    // ScramSaslServer refuses any other, as PLAIN does).
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if unescape_name(authzid)? != user {
            return Err(ScramError::AuthorizationId);
        }
    }
    Ok(ClientFirst {
        gs2_header: format!("{flag},{authzid},"),
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// `saslname` unescaping: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    Ok(out)
}

/// The server's half of one exchange, between its first and final messages.
#[derive(Debug)]
pub struct ScramExchange {
    hash: ScramHash,
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

impl ScramExchange {
    /// Starts an exchange for a parsed client-first message and the user's credential; returns
    /// the server-first message to send.
    pub fn start(
        hash: ScramHash,
        first: ClientFirst,
        credential: ScramCredential,
    ) -> (Self, Vec<u8>) {
        // Hex: printable, never ',' (the attribute separator).
        let suffix: String = random_bytes(NONCE_BYTES)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let nonce = format!("{}{suffix}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let message = server_first.clone().into_bytes();
        let exchange = Self {
            hash,
            user: first.user,
            credential,
            gs2_header: first.gs2_header,
            nonce,
            client_first_bare: first.bare,
            server_first,
        };
        (exchange, message)
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client-final message; on success returns the server-final message.
    pub fn finish(&self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBinding);
        }
        // Exactly the nonce sent (RFC 5802, and Kafka's check): librdkafka 2.0.x repeats the
        // client's part ("cnonce" + "cnonce snonce") and is refused, as by Kafka.
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        if proof.len() != self.hash.output_bytes() {
            return Err(ScramError::BadProof);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = self
            .hash
            .hmac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        let stored_key = self.hash.hash(&client_key);
        if !bool::from(stored_key.ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::BadProof);
        }
        let server_signature = self
            .hash
            .hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
