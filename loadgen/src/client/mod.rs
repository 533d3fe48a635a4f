//! A lean Kafka client on the `kafka-protocol` crate, enough to load-test any Kafka-compatible
//! broker: metadata and topic creation, pipelined producers, fetching consumers in assign mode or
//! in a consumer group. Record batches are encoded and walked by hand (`batch`), because that is
//! the hot path and the crate's record codec allocates per record.
#![forbid(unsafe_code)]

pub mod background;
pub mod batch;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod group;
pub mod log_dirs;
pub mod producer;

use kafka_protocol::ResponseError;

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding or decoding: {0}")]
    Codec(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("the broker supports no version of API {api_key} that this client speaks")]
    UnsupportedApi { api_key: i16 },
    #[error("{context}: {name} (error code {code})")]
    Kafka {
        context: String,
        code: i16,
        name: String,
    },
    #[error("request larger than 2 GiB")]
    FrameTooLarge,
    #[error("{0}")]
    Timeout(String),
}

impl ClientError {
    fn codec(error: impl std::fmt::Display) -> Self {
        ClientError::Codec(error.to_string())
    }

    pub fn kafka(context: impl Into<String>, code: i16) -> Self {
        ClientError::Kafka {
            context: context.into(),
            code,
            name: error_name(code),
        }
    }
}

/// Kafka's name for an error code (`NOT_LEADER_OR_FOLLOWER`, …), or the number.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("ERROR_{code}"),
        Some(error) => screaming_snake(&format!("{error:?}")),
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`, the spelling Kafka's documentation uses.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (index, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(9999), "ERROR_9999");
    }
}
