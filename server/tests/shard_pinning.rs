//! `--pin-shards`: by default each shard thread (and the threads that work for it on its core,
//! its io_uring's io-wq workers) may run on one core only, a different one per shard; with
//! `--pin-shards false` they may run wherever the broker's process may. A shard's cold sender
//! thread is the exception, never pinned (`cold_send_thread.rs`).
#![forbid(unsafe_code)]

mod common;

use common::threads::{broker_threads, cpus, Thread};

/// The threads named `shard-{shard}` (the shard's own, and those it started, which inherit the
/// name), then the io-wq workers of their io_urings (named `iou-wrk-{creating thread's id}`);
/// both must exist.
fn shard_threads(threads: &[Thread], shard: usize) -> Vec<&Thread> {
    let own: Vec<&Thread> = threads
        .iter()
        .filter(|thread| thread.name == format!("shard-{shard}"))
        .collect();
    assert!(!own.is_empty(), "shard-{shard} runs");
    let workers: Vec<&Thread> = threads
        .iter()
        .filter(|thread| {
            own.iter()
                .any(|shard_thread| thread.name == format!("iou-wrk-{}", shard_thread.id))
        })
        .collect();
    assert!(
        !workers.is_empty(),
        "the produce started shard-{shard}'s io-wq workers"
    );
    own.into_iter().chain(workers).collect()
}

/// Makes each shard's io_uring start an io-wq worker: a produce to a topic each of the 2 shards
/// owns (a buffered file write goes to a worker), answered before this returns.
fn produce_to_every_shard(broker: &common::Broker) {
    let mut client = common::cold::connect(broker);
    for shard in 0..2u16 {
        let topic = (0..)
            .map(|n| format!("pinning-{n}"))
            .find(|topic| ringtail_engine::partition_owner(topic, 0, 2).0 == shard)
            .unwrap();
        common::cold::create_topic(&mut client, &topic);
        let batch = ringtail_engine::batch::encode_batch(
            1_700_000_000_000,
            &[ringtail_engine::batch::RecordSpec {
                key: None,
                value: Some(b"pinned or not"),
                timestamp_delta: 0,
            }],
            ringtail_engine::batch::ProducerSpec::default(),
        );
        assert_eq!(common::cold::produce(&mut client, &topic, batch.into()), 0);
    }
}

#[test]
fn by_default_each_shard_and_its_workers_run_on_one_core_of_their_own() {
    let broker = common::start_broker(&[]);
    produce_to_every_shard(&broker);
    let (threads, process) = broker_threads(&broker);
    let mut cores = Vec::new();
    for shard in 0..2 {
        let shard_threads = shard_threads(&threads, shard);
        let core = &shard_threads[0].cpus;
        assert_eq!(core.len(), 1, "shard-{shard} pinned to one core: {core:?}");
        for thread in &shard_threads {
            assert_eq!(
                &thread.cpus, core,
                "{} on shard-{shard}'s core",
                thread.name
            );
        }
        cores.push(core[0]);
    }
    if process.len() >= 2 {
        assert_ne!(cores[0], cores[1], "two shards on two cores");
    }
}

#[test]
fn unpinned_shards_and_their_workers_may_run_on_every_core_of_the_process() {
    let broker = common::start_broker(&["--pin-shards", "false"]);
    produce_to_every_shard(&broker);
    let (threads, process) = broker_threads(&broker);
    for shard in 0..2 {
        for thread in shard_threads(&threads, shard) {
            assert_eq!(
                thread.cpus, process,
                "{} on the process's CPUs",
                thread.name
            );
        }
    }
}

#[test]
fn cpu_lists_parse() {
    assert_eq!(cpus("0-1"), vec![0, 1]);
    assert_eq!(cpus("3"), vec![3]);
    assert_eq!(cpus("0-2,5,7-8\n"), vec![0, 1, 2, 5, 7, 8]);
}
