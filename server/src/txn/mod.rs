//! Transactions, the coordinator half (KIP-98, KIP-447, KIP-890 part 1's server-side defence):
//! transactional ids and their producer ids and epochs, the transaction state machine, markers
//! written through the engine's ordinary append path, and the produce-side checks. The read side
//! (last stable offset, aborted-transaction index, read_committed) reads the markers' bytes only.
//!
//! Modules: [`state`] the state machine (pure), [`log`] the `__transaction_state` records and
//! their replay, [`marker`] control batches, [`registry`] what Produce checks on every shard,
//! [`coordinator`] the live coordinator, [`fault`] its test-only kill points. docs/TRANSACTIONS.md has the whole picture.
#![forbid(unsafe_code)]

pub mod coordinator;
pub mod fault;
pub mod log;
pub mod marker;
pub mod registry;
pub mod state;

pub use coordinator::TxnCoordinator;

/// The internal topic that stores every transactional id's state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// How often transaction timeouts are checked and unfinished markers retried.
pub const TICK_MS: u64 = 200;
