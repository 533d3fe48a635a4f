//! The transaction coordinator's answers where Ringtail differed from Kafka (found by review):
//! each test names the rule of Kafka's TransactionCoordinator (transaction version 1, the one
//! Ringtail advertises: `transaction.version` not finalized, EndTxn up to v4) it checks.

mod common;

use common::client::{str_bytes as name, Client};
use common::start_broker;
use common::txn::*;
use kafka_protocol::messages::*;

#[test]
fn end_txn_of_an_empty_transaction_is_an_invalid_state() {
    // Kafka (TV1): Empty accepts neither commit nor abort (endTransaction: `case Empty =>
    // INVALID_TXN_STATE`); only TV2 clients (EndTxn v5+) may abort an Empty one, to bump the
    // epoch. An abort was answered success.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let (error, producer) = init(&mut client, "empty", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        end_txn(&mut client, "empty", producer, false),
        INVALID_TXN_STATE
    );
    assert_eq!(
        end_txn(&mut client, "empty", producer, true),
        INVALID_TXN_STATE
    );
    assert_eq!(txn_state(&mut client, "empty"), "Empty");
}
