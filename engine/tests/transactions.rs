//! Transactions in the log against a model: LSO, aborted-transaction index and read_committed
//! plans across rolls, clean and crashed restarts, damaged `.txnindex` files, retention and
//! compaction.
#![forbid(unsafe_code)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use common::*;
use proptest::prelude::*;
use ringtail_engine::batch::{ProducerSpec, RecordSpec};
use ringtail_engine::txn::encode::{control_batch, transactional_batch};
use ringtail_engine::txn::{AbortedTxn, ControlMarker};
use ringtail_engine::{CleanupPolicy, Isolation, LogConfig, PartitionLog};

/// One step of a random history.
#[derive(Debug, Clone)]
enum Op {
    /// A batch of `records`: transactional for producer `producer` (1..=3), or plain (0).
    Data {
        producer: i64,
        records: usize,
    },
    Marker {
        producer: i64,
        abort: bool,
    },
    Roll,
    Reopen {
        crash: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..4, 1usize..5).prop_map(|(producer, records)| Op::Data { producer, records }),
        3 => (1i64..4, any::<bool>()).prop_map(|(producer, abort)| Op::Marker { producer, abort }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|crash| Op::Reopen { crash }),
    ]
}

/// What the log should say: open transactions, aborted entries, the end.
#[derive(Debug, Default)]
struct Model {
    open: BTreeMap<i64, i64>,
    aborted: Vec<AbortedTxn>,
    end: i64,
    sequences: BTreeMap<i64, i32>,
}

impl Model {
    fn lso(&self) -> i64 {
        self.open
            .values()
            .copied()
            .min()
            .unwrap_or(self.end)
            .min(self.end)
    }

    fn note_marker(&mut self, producer: i64, abort: bool, offset: i64) {
        let first = self.open.remove(&producer).unwrap_or(offset);
        if abort {
            let lso = self
                .open
                .values()
                .copied()
                .min()
                .unwrap_or(offset + 1)
                .min(offset + 1);
            self.aborted.push(AbortedTxn {
                producer_id: producer,
                first_offset: Offset::new(first),
                last_offset: Offset::new(offset),
                last_stable_offset: Offset::new(lso),
            });
        }
    }

    fn overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|entry| entry.last_offset.get() >= from && entry.first_offset.get() < upper)
            .copied()
            .collect()
    }
}

fn data_batch(producer: i64, records: usize, sequence: i32) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|index| format!("p{producer}r{index}").into_bytes())
        .collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|value| RecordSpec {
            key: Some(b"key"),
            value: Some(value),
            timestamp_delta: 0,
        })
        .collect();
    if producer == 0 {
        return ringtail_engine::batch::encode_batch(1_000, &specs, ProducerSpec::default());
    }
    let spec = ProducerSpec {
        producer_id: producer,
        producer_epoch: 0,
        base_sequence: sequence,
    };
    transactional_batch(1_000, &specs, spec)
}

fn marker_batch(producer: i64, abort: bool) -> Vec<u8> {
    let kind = if abort {
        ControlMarker::Abort
    } else {
        ControlMarker::Commit
    };
    control_batch(1_000, producer, 0, kind, 7)
}

async fn apply(log: &Rc<PartitionLog>, model: &mut Model, op: &Op) {
    match *op {
        Op::Data { producer, records } => {
            let sequence = *model.sequences.get(&producer).unwrap_or(&0);
            let outcome = log
                .append(bytes_mut(&data_batch(producer, records, sequence)), 0)
                .await
                .unwrap();
            assert_eq!(outcome.base_offset.get(), model.end);
            if producer != 0 {
                model.sequences.insert(producer, sequence + records as i32);
                model.open.entry(producer).or_insert(model.end);
            }
            model.end += records as i64;
        }
        Op::Marker { producer, abort } => {
            let outcome = log
                .append(bytes_mut(&marker_batch(producer, abort)), 0)
                .await
                .unwrap();
            assert_eq!(outcome.base_offset.get(), model.end);
            model.note_marker(producer, abort, model.end);
            model.end += 1;
        }
        Op::Roll | Op::Reopen { .. } => unreachable!("handled by the caller"),
    }
}

/// Checks the log's LSO, aborted index, range queries and read_committed plans against the model.
async fn check(log: &PartitionLog, model: &Model) {
    assert_eq!(log.high_watermark().get(), model.end);
    assert_eq!(log.last_stable_offset().get(), model.lso(), "LSO");
    assert_eq!(
        log.all_aborted_transactions(),
        model.aborted,
        "aborted index"
    );
    for from in (0..=model.end).step_by(3) {
        for upper in [from + 1, from + 5, model.end + 1] {
            assert_eq!(
                log.aborted_transactions(Offset::new(from), Offset::new(upper)),
                model.overlapping(from, upper),
                "aborted in [{from}, {upper})"
            );
        }
        let plan = log
            .read_isolated(from, u64::MAX, true, Isolation::ReadCommitted)
            .await
            .unwrap();
        let bytes = log.read_plan_bytes(&plan).await.unwrap();
        let batches = split_batches(&bytes);
        if from >= model.lso() {
            assert!(batches.is_empty(), "nothing at or past the LSO");
        } else {
            let last = batches
                .last()
                .expect("a read below the LSO returns batches")
                .0;
            assert_eq!(
                last.next_offset().get(),
                model.lso(),
                "read_committed ends at the LSO"
            );
        }
        assert!(plan.end_offset_bound.get() <= model.lso().max(from));
    }
}

fn config() -> LogConfig {
    small_config(600, 128)
}

async fn reopen(dir: &Path, log: Rc<PartitionLog>, crash: bool) -> Rc<PartitionLog> {
    if crash {
        // As a crash leaves it: seals not yet begun never happen (one under way finishes).
        log.close_abandoned().await;
        drop(log);
        let _ = std::fs::remove_file(dir.join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME));
    } else {
        log.close().await.unwrap();
        drop(log);
    }
    PartitionLog::open(dir, config()).await.unwrap().0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn lso_and_aborted_index_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        // Every history of transactional data, markers, rolls and restarts keeps the LSO and
        // the aborted index exact.
        run_history(&ops);
    }
}

/// Applies `ops` to a new log, then checks it against the model, before and after a crash.
fn run_history(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Roll => {
                    log.roll_now().await.unwrap();
                }
                Op::Reopen { crash } => log = reopen(dir.path(), log, *crash).await,
                _ => apply(&log, &mut model, op).await,
            }
        }
        check(&log, &model).await;
        let log = reopen(dir.path(), log, true).await;
        check(&log, &model).await;
    });
}

/// Appends a history with aborted and committed transactions across several segments.
async fn history(log: &Rc<PartitionLog>, model: &mut Model) {
    for round in 0..12i64 {
        let producer = 1 + round % 3;
        apply(
            log,
            model,
            &Op::Data {
                producer,
                records: 3,
            },
        )
        .await;
        apply(
            log,
            model,
            &Op::Data {
                producer: 0,
                records: 2,
            },
        )
        .await;
        apply(
            log,
            model,
            &Op::Marker {
                producer,
                abort: round % 2 == 0,
            },
        )
        .await;
    }
    apply(
        log,
        model,
        &Op::Data {
            producer: 2,
            records: 2,
        },
    )
    .await;
    assert!(log.segment_count() > 3, "the history spans rolls");
}

fn txnindex_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txnindex"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_torn_or_missing_txnindex_is_rebuilt_from_the_log() {
    // A crash mid-write of a .txnindex (torn), or a lost one, costs a replay, never an entry.
    for damage in ["truncate", "delete", "garble"] {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
            let mut model = Model::default();
            history(&log, &mut model).await;
            log.close().await.unwrap();
            drop(log);
            let files = txnindex_files(dir.path());
            let victim = files
                .iter()
                .find(|path| std::fs::metadata(path).unwrap().len() > 0)
                .expect("some segment holds an aborted transaction");
            match damage {
                "truncate" => {
                    let len = std::fs::metadata(victim).unwrap().len();
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(victim)
                        .unwrap();
                    file.set_len(len - 7).unwrap();
                }
                "delete" => std::fs::remove_file(victim).unwrap(),
                _ => std::fs::write(victim, vec![0xff; 34]).unwrap(),
            }
            let log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
            check(&log, &model).await;
            assert!(
                std::fs::read(victim).unwrap().len().is_multiple_of(34),
                "{damage}: the rebuilt index was written back"
            );
        });
    }
}

#[test]
fn a_crash_with_an_open_transaction_keeps_the_lso_and_a_later_abort_reaches_back() {
    // The open transaction's first offset survives a crash (producer snapshot + replay), so its
    // abort after the restart covers records written before it.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
        let mut model = Model::default();
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 0,
                records: 2,
            },
        )
        .await;
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 1,
                records: 3,
            },
        )
        .await;
        for _ in 0..10 {
            apply(
                &log,
                &mut model,
                &Op::Data {
                    producer: 0,
                    records: 3,
                },
            )
            .await;
        }
        assert!(
            log.segment_count() > 2,
            "the open transaction began in a sealed segment"
        );
        assert_eq!(log.last_stable_offset().get(), 2);
        let log = reopen(dir.path(), log, true).await;
        assert_eq!(log.last_stable_offset().get(), 2, "after the crash");
        apply(
            &log,
            &mut model,
            &Op::Marker {
                producer: 1,
                abort: true,
            },
        )
        .await;
        check(&log, &model).await;
        assert_eq!(model.aborted[0].first_offset.get(), 2);
    });
}

#[test]
fn retention_deletes_txnindex_with_its_segment() {
    // No .txnindex outlives its segment, and the LSO never lies below the log start.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
        let mut model = Model::default();
        history(&log, &mut model).await;
        log.roll_now().await.unwrap();
        let mut retained = config();
        retained.retention_bytes = Some(700);
        log.set_config(retained);
        let outcome = log
            .enforce_retention(ringtail_engine::log::now_ms())
            .await
            .unwrap();
        assert!(outcome.segments_deleted > 0);
        let logs: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
            .map(|path| path.with_extension("txnindex"))
            .collect();
        for index in txnindex_files(dir.path()) {
            assert!(
                logs.contains(&index),
                "{} outlived its segment",
                index.display()
            );
        }
        assert!(log.last_stable_offset() >= log.log_start_offset());
        let from = log.log_start_offset();
        for entry in log.aborted_transactions(from, log.high_watermark()) {
            assert!(entry.last_offset >= from);
        }
    });
}

#[test]
fn compaction_keeps_markers_and_committed_values_and_drops_aborted_records() {
    // An aborted write of a key must not shadow its committed value; markers stay.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut compacted = config();
        compacted.cleanup_policy = CleanupPolicy::Compact;
        let log = PartitionLog::open(dir.path(), compacted).await.unwrap().0;
        let mut model = Model::default();
        // Committed: key=p1r0.. then aborted: the same key by producer 2; then an open one.
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 1,
                records: 1,
            },
        )
        .await;
        apply(
            &log,
            &mut model,
            &Op::Marker {
                producer: 1,
                abort: false,
            },
        )
        .await;
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 2,
                records: 1,
            },
        )
        .await;
        apply(
            &log,
            &mut model,
            &Op::Marker {
                producer: 2,
                abort: true,
            },
        )
        .await;
        log.roll_now().await.unwrap();
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 3,
                records: 1,
            },
        )
        .await;
        log.roll_now().await.unwrap();
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 0,
                records: 1,
            },
        )
        .await;
        let outcome = log.compact(ringtail_engine::log::now_ms()).await.unwrap();
        assert_eq!(
            outcome.records_removed, 1,
            "only the aborted record goes: {outcome:?}"
        );
        assert_eq!(
            outcome.clean_end_offset.get(),
            4,
            "the open transaction's segment is not cleaned"
        );
        let bytes = log.read_bytes(0, u64::MAX, true).await.unwrap();
        let batches = split_batches(&bytes);
        let kinds: Vec<(i64, bool)> = batches
            .iter()
            .map(|(header, _)| (header.base_offset.get(), header.is_control()))
            .collect();
        assert_eq!(
            kinds,
            vec![(0, false), (1, true), (3, true), (4, false), (5, false)]
        );
        check(&log, &model).await;
    });
}

#[test]
fn an_abort_in_a_segment_whose_seal_a_crash_dropped_stays_indexed() {
    // A clean close wrote the empty active segment's .txnindex; an abort went into it, a roll
    // queued its seal (which rewrites the .txnindex) and a crash dropped the seal. A later seal's
    // snapshot then covered the segment and the open trusted the stale file: the abort was gone
    // from the index (CI's failing case of the property test above).
    run_history(&[
        Op::Reopen { crash: false },
        Op::Marker {
            producer: 1,
            abort: true,
        },
        Op::Roll,
        Op::Reopen { crash: true },
        Op::Data {
            producer: 0,
            records: 1,
        },
        Op::Roll,
    ]);
}
