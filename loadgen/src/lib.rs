//! `ringtail-loadgen`: a load generator for any Kafka-compatible broker. A client only: it knows
//! nothing of Ringtail's internals.
//!
//! The lean Kafka client (`client`), one run of a workload (`run`), OpenMessaging Benchmark files
//! (`omb`), the matrix of scenarios × brokers × disk layouts (`matrix`), and the reports
//! (`report`, `output`). docs/ARCHITECTURE.md maps the modules.
#![deny(unsafe_code)]

pub mod broker_process;
pub mod client;
pub mod clock;
pub mod counters;
pub mod cpu;
pub mod evict;
pub mod histogram;
pub mod layout;
pub mod machine;
pub mod matrix;
pub mod mounts;
pub mod omb;
pub mod output;
pub mod partition_move;
pub mod partitioner;
pub mod payload;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod workload;

// Holds `unsafe` blocks, each with its `// SAFETY:` comment; every other module forbids it.
#[allow(unsafe_code)]
mod sys;
