//! Transaction markers under compaction, as Kafka's cleaner treats them: aborted records go; a
//! COMMIT or ABORT marker goes once no record of its transaction is left before it and its
//! delete horizon (set by the pass that first found it so) has passed. Throughout, a
//! read_committed consumer (Kafka's client algorithm over the log and its aborted-transaction
//! index) sees exactly the latest committed value of every key, before and after restarts.
#![forbid(unsafe_code)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use common::{block_on, bytes_mut, small_config, split_batches};
use proptest::prelude::*;
use ringtail_engine::batch::{self, ProducerSpec, RecordSpec};
use ringtail_engine::cleaner;
use ringtail_engine::compaction::{PassOptions, StopPoint};
use ringtail_engine::txn::encode::{control_batch, transactional_batch};
use ringtail_engine::txn::{parse_control_marker, ControlMarker};
use ringtail_engine::{CleanupPolicy, LogConfig, Offset, PartitionLog};

const DELETE_RETENTION_MS: u64 = 10_000;
const NOW: i64 = 1_700_000_000_000;
/// Transactional producers are 1..=PRODUCERS; 0 writes plain batches.
const PRODUCERS: i64 = 3;

fn config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..small_config(700, 128)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One record of `key` by `producer` (0: plain; else transactional).
    Data {
        producer: i64,
        key: u8,
    },
    Marker {
        producer: i64,
        abort: bool,
    },
    Roll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..=PRODUCERS, 0u8..4).prop_map(|(producer, key)| Op::Data { producer, key }),
        3 => (1..=PRODUCERS, any::<bool>()).prop_map(|(producer, abort)| Op::Marker { producer, abort }),
        1 => Just(Op::Roll),
    ]
}

/// What was written, and what a read_committed consumer must end up with.
#[derive(Default)]
struct Model {
    sequences: HashMap<i64, i32>,
    /// Per producer, its open transaction's records (offset, key, value).
    open: HashMap<i64, Vec<(i64, u8, String)>>,
    /// key → (offset, value) of its latest committed record.
    committed: BTreeMap<u8, (i64, String)>,
    /// Every committed record's offset: a read_committed consumer sees no other.
    committed_offsets: HashSet<i64>,
}

impl Model {
    fn commit(&mut self, offset: i64, key: u8, value: String) {
        self.committed_offsets.insert(offset);
        let latest = self.committed.entry(key).or_insert((offset, value.clone()));
        if latest.0 <= offset {
            *latest = (offset, value);
        }
    }
}

async fn apply(log: &Rc<PartitionLog>, model: &mut Model, op: &Op) {
    let offset = log.high_watermark().get();
    match op {
        Op::Data { producer, key } => {
            let key_bytes = [b'k', *key];
            let value = format!("p{producer}@{offset}");
            let record = RecordSpec {
                key: Some(&key_bytes),
                value: Some(value.as_bytes()),
                timestamp_delta: 0,
            };
            let bytes = if *producer == 0 {
                model.commit(offset, *key, value.clone());
                batch::encode_batch(NOW, &[record], ProducerSpec::default())
            } else {
                let sequence = model.sequences.entry(*producer).or_insert(0);
                let spec = ProducerSpec {
                    producer_id: *producer,
                    producer_epoch: 0,
                    base_sequence: *sequence,
                };
                *sequence += 1;
                model
                    .open
                    .entry(*producer)
                    .or_default()
                    .push((offset, *key, value.clone()));
                transactional_batch(NOW, &[record], spec)
            };
            let outcome = log.append(bytes_mut(&bytes), 0).await.unwrap();
            assert_eq!(outcome.base_offset.get(), offset);
        }
        Op::Marker { producer, abort } => {
            let marker = if *abort {
                ControlMarker::Abort
            } else {
                ControlMarker::Commit
            };
            let records = model.open.remove(producer).unwrap_or_default();
            if !*abort {
                for (offset, key, value) in records {
                    model.commit(offset, key, value);
                }
            }
            let bytes = control_batch(NOW, *producer, 0, marker, 1);
            log.append(bytes_mut(&bytes), 0).await.unwrap();
        }
        Op::Roll => {
            log.roll_now().await.unwrap();
        }
    }
}

/// Kafka's read_committed consumer over the whole log: a producer is aborted from the first
/// offset of an aborted transaction the index returns until its ABORT marker; control batches
/// and aborted producers' transactional batches are skipped. Every record seen must be committed
/// (`committed_offsets`); returns key → (offset, value) of the latest record seen per key.
async fn read_committed(log: &PartitionLog, model: &Model) -> BTreeMap<u8, (i64, String)> {
    let start = log.log_start_offset();
    let stable = log.last_stable_offset();
    assert_eq!(stable, log.high_watermark(), "every transaction is closed");
    let bytes = log
        .read_bytes(start.get(), u64::MAX / 4, true)
        .await
        .unwrap();
    let mut aborted = log.aborted_transactions(start, stable);
    aborted.sort_by_key(|entry| entry.first_offset);
    let mut aborted = aborted.into_iter().peekable();
    let mut aborted_producers: HashSet<i64> = HashSet::new();
    let mut seen = BTreeMap::new();
    for (header, bytes) in split_batches(&bytes) {
        while let Some(entry) = aborted.next_if(|entry| entry.first_offset <= header.last_offset())
        {
            aborted_producers.insert(entry.producer_id);
        }
        if header.is_control() {
            if parse_control_marker(&bytes).unwrap() == ControlMarker::Abort {
                aborted_producers.remove(&header.producer_id);
            }
            continue;
        }
        if header.is_transactional() && aborted_producers.contains(&header.producer_id) {
            continue;
        }
        let decoded = cleaner::decode_batch(&bytes).unwrap();
        for record in &decoded.records {
            let key = decoded.key(record).unwrap()[1];
            let offset = header.base_offset.get() + i64::from(record.offset_delta);
            assert!(
                model.committed_offsets.contains(&offset),
                "read_committed sees the uncommitted record at {offset}"
            );
            let span = &decoded.records_area[record.span.clone()];
            // The value is the record's tail before its zero header count: "p<producer>@<offset>".
            let text = String::from_utf8_lossy(span);
            let value = text[text.rfind('p').unwrap()..text.len() - 1].to_string();
            seen.insert(key, (offset, value));
        }
    }
    seen
}

/// Below the first dirty offset every surviving marker still has a record of its transaction
/// before it (Kafka's rule, once the horizon passed): producer → records since its last marker.
async fn markers_left_have_data(log: &PartitionLog, cleaned_below: Offset) {
    let bytes = log
        .read_bytes(log.log_start_offset().get(), u64::MAX / 4, true)
        .await
        .unwrap();
    let mut records_since_marker: HashMap<i64, usize> = HashMap::new();
    for (header, _) in split_batches(&bytes) {
        if header.base_offset >= cleaned_below || !header.is_transactional() {
            continue;
        }
        let count = records_since_marker.entry(header.producer_id).or_default();
        if header.is_control() {
            assert!(
                *count > 0,
                "a marker at {} outlived its transaction's data and its delete horizon",
                header.base_offset
            );
            *count = 0;
        } else {
            *count += usize::try_from(header.record_count).unwrap();
        }
    }
    // And no marker went while a record of its transaction was left.
    for (producer, count) in records_since_marker {
        assert_eq!(count, 0, "producer {producer}'s records lost their marker");
    }
}

async fn reopen(dir: &Path, log: Rc<PartitionLog>, crash: bool) -> Rc<PartitionLog> {
    if crash {
        drop(log);
        let _ = std::fs::remove_file(dir.join(ringtail_engine::log::CLEAN_SHUTDOWN_FILE_NAME));
    } else {
        log.close().await.unwrap();
        drop(log);
    }
    PartitionLog::open(dir, config()).await.unwrap().0
}

/// A pass cut short at `stop` (a crash inside its first install), then a restart without close.
async fn interrupted_pass(
    dir: &Path,
    log: Rc<PartitionLog>,
    now: i64,
    stop: StopPoint,
) -> Rc<PartitionLog> {
    let options = PassOptions {
        stop: Some(stop),
        ..PassOptions::default()
    };
    log.compact_with(now, options).await.unwrap();
    reopen(dir, log, true).await
}

fn run_case(ops: &[Op], crash: bool, stop: Option<StopPoint>) {
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let mut log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
        let mut model = Model::default();
        for op in ops {
            apply(&log, &mut model, op).await;
        }
        // Close every transaction, then seal everything so all of it can be cleaned.
        for producer in 1..=PRODUCERS {
            if model.open.contains_key(&producer) {
                let abort = producer % 2 == 0;
                apply(&log, &mut model, &Op::Marker { producer, abort }).await;
            }
        }
        log.roll_now().await.unwrap();
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 0,
                key: 9,
            },
        )
        .await;
        let cleaned_below = log.high_watermark().plus(-1);
        assert_eq!(read_committed(&log, &model).await, model.committed);
        // First pass: superseded and aborted records go. Second: markers without data get their
        // delete horizon. Third, at the horizon: they go.
        let horizon = NOW + 1 + DELETE_RETENTION_MS as i64;
        for (pass, now) in [NOW, NOW + 1, horizon, horizon + 1].into_iter().enumerate() {
            if let Some(stop) = stop {
                log = interrupted_pass(dir.path(), log, now, stop).await;
                let seen = read_committed(&log, &model).await;
                assert_eq!(
                    seen, model.committed,
                    "after a crash in pass {pass} at {stop:?}"
                );
            }
            log.compact(now).await.unwrap();
            assert_eq!(
                read_committed(&log, &model).await,
                model.committed,
                "after pass {pass}"
            );
            let entries = log.all_aborted_transactions();
            log = reopen(dir.path(), log, crash && pass % 2 == 1).await;
            assert_eq!(
                log.all_aborted_transactions(),
                entries,
                "the index survives a restart"
            );
            assert_eq!(
                read_committed(&log, &model).await,
                model.committed,
                "reopened"
            );
        }
        markers_left_have_data(&log, cleaned_below).await;
        log.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn markers_go_after_their_data_and_read_committed_never_changes(
        ops in proptest::collection::vec(op(), 1..50),
        crash in any::<bool>(),
        stop in proptest::option::of(prop_oneof![
            Just(StopPoint::CleanedWritten),
            Just(StopPoint::Committed),
            Just(StopPoint::IndexesInstalled),
        ]),
    ) {
        run_case(&ops, crash, stop);
    }
}

#[test]
fn an_eos_changelog_does_not_keep_a_marker_per_transaction() {
    // Kafka Streams' exactly-once changelog: each transaction rewrites the same few keys and
    // commits; once cleaned and past the horizon only the last transactions' markers remain.
    let mut ops = Vec::new();
    for round in 0..40u8 {
        ops.push(Op::Data {
            producer: 1,
            key: round % 2,
        });
        ops.push(Op::Marker {
            producer: 1,
            abort: round % 5 == 4,
        });
    }
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let log = PartitionLog::open(dir.path(), config()).await.unwrap().0;
        let mut model = Model::default();
        for op in &ops {
            apply(&log, &mut model, op).await;
        }
        log.roll_now().await.unwrap();
        apply(
            &log,
            &mut model,
            &Op::Data {
                producer: 0,
                key: 9,
            },
        )
        .await;
        let horizon = NOW + 1 + DELETE_RETENTION_MS as i64;
        for now in [NOW, NOW + 1, horizon] {
            log.compact(now).await.unwrap();
        }
        let bytes = log.read_bytes(0, u64::MAX / 4, true).await.unwrap();
        let markers = split_batches(&bytes)
            .iter()
            .filter(|(header, _)| header.is_control())
            .count();
        assert!(markers <= 2, "{markers} markers left of 40");
        assert!(log.all_aborted_transactions().is_empty());
        assert_eq!(read_committed(&log, &model).await, model.committed);
    });
}

#[test]
fn an_unreadable_marker_makes_the_cleaner_leave_the_log_alone() {
    // A control batch whose CRC holds but whose marker cannot be read (an unknown type): the
    // cleaner cannot tell where producer 1's aborted transaction ends, so it must not judge
    // the producer's later batches. As Kafka marks such a partition uncleanable, the pass ends
    // with an error, every byte stays, and no later pass runs on it until a restart.
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let config = LogConfig {
            cleanup_policy: CleanupPolicy::Compact,
            delete_retention_ms: DELETE_RETENTION_MS,
            ..small_config(1 << 20, 128)
        };
        let (log, _) = PartitionLog::open(dir.path(), config.clone())
            .await
            .unwrap();
        let spec = |base_sequence| ProducerSpec {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence,
        };
        let record = |key: &'static [u8]| RecordSpec {
            key: Some(key),
            value: Some(b"value"),
            timestamp_delta: 0,
        };
        // 0: aborted data, 1: its ABORT marker, 2: committed data, 3: its COMMIT marker.
        let writes = [
            transactional_batch(NOW, &[record(b"a")], spec(0)),
            control_batch(NOW, 1, 0, ControlMarker::Abort, 1),
            transactional_batch(NOW, &[record(b"b")], spec(1)),
            control_batch(NOW, 1, 0, ControlMarker::Commit, 1),
        ];
        for bytes in &writes {
            log.append(bytes_mut(bytes), 0).await.unwrap();
        }
        log.roll_now().await.unwrap();
        log.append(
            bytes_mut(&batch::encode_batch(
                NOW,
                &[record(b"c")],
                ProducerSpec::default(),
            )),
            0,
        )
        .await
        .unwrap();
        // The ABORT marker's record type (key bytes 2..4) becomes 7, its CRC recomputed.
        let sealed = dir.path().join("00000000000000000000.log");
        let mut file = std::fs::read(&sealed).unwrap();
        let marker_at = writes[0].len();
        let key_at = marker_at + batch::HEADER_BYTES + 5;
        assert_eq!(file[key_at..key_at + 4], [0, 0, 0, 0], "version 0, ABORT");
        file[key_at + 3] = 7;
        let crc = crc32c::crc32c(&file[marker_at + 21..marker_at + writes[1].len()]);
        file[marker_at + 17..marker_at + 21].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&sealed, &file).unwrap();
        let before = log.read_bytes(0, u64::MAX / 4, true).await.unwrap();

        assert!(!log.uncleanable());
        let result = log.compact(NOW).await;
        assert!(
            log.uncleanable(),
            "visible to metrics, not only in a log line"
        );
        assert!(
            matches!(
                result,
                Err(ringtail_engine::CompactionError::UnreadableMarker { base_offset, .. })
                    if base_offset == Offset::new(1)
            ),
            "{result:?}"
        );
        assert_eq!(log.read_bytes(0, u64::MAX / 4, true).await.unwrap(), before);
        assert!(!log.cleaning_due(), "refused until a restart");
        assert!(log.compact_if_due(NOW).await.unwrap().is_none());
        assert_eq!(log.compact(NOW).await.unwrap().segments_mapped, 0);
        assert_eq!(log.read_bytes(0, u64::MAX / 4, true).await.unwrap(), before);
        log.close().await.unwrap();
    });
}
