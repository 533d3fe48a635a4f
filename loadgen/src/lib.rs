//! `ringtail-loadgen`: a load generator for any Kafka-compatible broker. A client only: it knows
//! nothing of Ringtail's internals.
//!
//! Built so far (the "Load generator" issue tracks the rest): the partitioners with Java-client
//! placement, the latency histogram, and the open-loop rate schedule that avoids coordinated
//! omission. The Kafka client, the `run`/`omb`/`matrix` commands and the reports come next.

pub mod broker_process;
pub mod client;
pub mod clock;
pub mod counters;
pub mod cpu;
pub mod histogram;
pub mod layout;
pub mod machine;
pub mod matrix;
pub mod mounts;
pub mod omb;
pub mod output;
pub mod partitioner;
pub mod payload;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod workload;

mod sys;
