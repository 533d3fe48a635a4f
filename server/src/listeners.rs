//! Listeners in Kafka's form: `PLAINTEXT://HOST:PORT,SASL_SSL://HOST:PORT`.
//!
//! A listener's name is its security protocol (Kafka also allows custom names mapped to a protocol
//! by `listener.security.protocol.map`; Ringtail does not), so one listener per protocol at most.
//! `--advertised-listeners` uses the same form and is matched to the bound listeners by name.
//!
//! # Invariants worth naming
//! - Names are unique within a list, so a name identifies a listener.
//! - A port is 0..=65535; 0 binds any free port (tests), and is announced as the bound one.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// A listener's index in `--listeners` (at most four: one per security protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerId(pub u8);

/// How a listener's connections are secured: Kafka's `security.protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Connections must authenticate with SASL before any other request.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// Connections are wrapped in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = ListenerError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(ListenerError::UnknownProtocol(text.to_string())),
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `NAME://HOST:PORT` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub protocol: SecurityProtocol,
    /// As written, without IPv6 brackets; empty means every interface (Kafka's `PLAINTEXT://:9092`).
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn plaintext(address: SocketAddr) -> Self {
        Self {
            protocol: SecurityProtocol::Plaintext,
            host: address.ip().to_string(),
            port: address.port(),
        }
    }

    /// The socket address to bind: the host resolved (a name such as `localhost` is allowed).
    pub fn bind_address(&self) -> Result<SocketAddr, ListenerError> {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        (host, self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut found| found.next())
            .ok_or_else(|| ListenerError::Unresolvable(self.to_string()))
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.protocol, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.protocol, self.host, self.port)
        }
    }
}

impl FromStr for Listener {
    type Err = ListenerError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || ListenerError::Malformed(text.to_string());
        let (name, address) = text.trim().split_once("://").ok_or_else(malformed)?;
        let protocol = name.parse()?;
        let (host, port) = address.rsplit_once(':').ok_or_else(malformed)?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(malformed)?,
            None if host.contains(':') => return Err(malformed()),
            None => host,
        };
        let port = port.parse().map_err(|_| malformed())?;
        Ok(Self {
            protocol,
            host: host.to_string(),
            port,
        })
    }
}

/// Parses a comma list of listeners; names must be unique.
pub fn parse_list(text: &str) -> Result<Vec<Listener>, ListenerError> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in text.split(',').filter(|entry| !entry.trim().is_empty()) {
        let listener: Listener = entry.parse()?;
        if listeners.iter().any(|l| l.protocol == listener.protocol) {
            return Err(ListenerError::Duplicate(listener.protocol));
        }
        listeners.push(listener);
    }
    if listeners.is_empty() {
        return Err(ListenerError::Empty);
    }
    Ok(listeners)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenerError {
    #[error("listener {0:?} is not NAME://HOST:PORT")]
    Malformed(String),
    #[error("unknown listener name {0:?} (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")]
    UnknownProtocol(String),
    #[error("listener {0} appears twice")]
    Duplicate(SecurityProtocol),
    #[error("no listener given")]
    Empty,
    #[error("cannot resolve the host of {0}")]
    Unresolvable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_forms_parse() {
        // The forms Kafka's own server.properties uses, IPv6 and the empty host included.
        let list =
            parse_list("PLAINTEXT://127.0.0.1:9092, SASL_SSL://[::1]:9094,ssl://:9093").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0],
            Listener::plaintext("127.0.0.1:9092".parse().unwrap())
        );
        assert_eq!(list[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(list[1].host, "::1");
        assert_eq!(list[1].to_string(), "SASL_SSL://[::1]:9094");
        assert_eq!(list[2].protocol, SecurityProtocol::Ssl);
        assert_eq!(
            list[2].bind_address().unwrap(),
            "0.0.0.0:9093".parse().unwrap()
        );
        assert!(list[1].protocol.uses_sasl() && list[1].protocol.uses_tls());
        assert!(!list[0].protocol.uses_sasl() && !list[0].protocol.uses_tls());
    }

    #[test]
    fn bad_lists_are_refused() {
        // Every mistake is named, none is silently dropped.
        assert!(matches!(
            parse_list("127.0.0.1:9092"),
            Err(ListenerError::Malformed(_))
        ));
        assert!(matches!(
            parse_list("TLS://h:1"),
            Err(ListenerError::UnknownProtocol(_))
        ));
        assert!(matches!(
            parse_list("PLAINTEXT://h:99999"),
            Err(ListenerError::Malformed(_))
        ));
        assert!(matches!(
            parse_list("PLAINTEXT://::1:9092"),
            Err(ListenerError::Malformed(_))
        ));
        assert_eq!(
            parse_list("SSL://a:1,SSL://b:2"),
            Err(ListenerError::Duplicate(SecurityProtocol::Ssl))
        );
        assert_eq!(parse_list(" , "), Err(ListenerError::Empty));
    }
}
