//! Writes a fixed transactional history into a stopped broker's partition directory, through the
//! engine's append path (the one the transaction coordinator uses), for the compat tests that
//! read it with real clients under read_committed (tests/compat/test_transactions_read.py).
//!
//! Usage: `txn_history <partition dir>`. Offsets: 0-1 plain, 2-4 producer 10 (committed at 7),
//! 5-6 producer 11 (aborted at 8), 9-10 producer 12 (left open), 11 plain. LSO 9, HW 12.
#![forbid(unsafe_code)]

use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::txn::encode::{control_batch, transactional_batch};
use ringtail_engine::txn::ControlMarker;
use ringtail_engine::{LogConfig, PartitionLog};

fn batch_of(producer_id: i64, first: usize, count: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (first..first + count)
        .map(|offset| format!("offset-{offset}").into_bytes())
        .collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|value| RecordSpec {
            key: Some(b"k"),
            value: Some(value),
            timestamp_delta: 0,
        })
        .collect();
    if producer_id < 0 {
        return batch::encode_batch(1_000, &specs, ProducerSpec::default());
    }
    let producer = ProducerSpec {
        producer_id,
        producer_epoch: 0,
        base_sequence: 0,
    };
    transactional_batch(1_000, &specs, producer)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: txn_history <partition dir>")?;
    let runtime = compio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (log, _) = PartitionLog::open(std::path::Path::new(&dir), LogConfig::default()).await?;
        let history = [
            batch_of(-1, 0, 2),
            batch_of(10, 2, 3),
            batch_of(11, 5, 2),
            control_batch(1_000, 10, 0, ControlMarker::Commit, 0),
            control_batch(1_000, 11, 0, ControlMarker::Abort, 0),
            batch_of(12, 9, 2),
            batch_of(-1, 11, 1),
        ];
        for batch in history {
            log.append(bytes::Bytes::from(batch), 0).await?;
        }
        if log.last_stable_offset().get() != 9 {
            return Err("the LSO after the history is not 9".into());
        }
        log.close().await?;
        Ok(())
    })
}
