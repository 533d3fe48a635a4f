//! Kafka wire codecs the `kafka-protocol` crate does not have yet, written by hand against
//! Kafka's message schemas. Each fills the crate's own message structs, so a handler serves a
//! hand-coded version with the same code as the crate's versions, and each module goes away
//! when the crate catches up ([decision 0020](../../../docs/decisions/0020-offsets-v10-hand-written-codecs.md)).
#![forbid(unsafe_code)]

pub mod compact;
pub mod offsets_v10;
