//! The shipped workload files and the edges of OMB's format.
#![forbid(unsafe_code)]

use super::*;

/// Every file in `loadgen/workloads/`, by name, so a new file is tested once listed here.
const SHIPPED: [(&str, &str); 5] = [
    (
        "1-topic-16-partitions-1kb",
        include_str!("../../workloads/1-topic-16-partitions-1kb.yaml"),
    ),
    (
        "1-topic-16-partitions-1kb-keyed",
        include_str!("../../workloads/1-topic-16-partitions-1kb-keyed.yaml"),
    ),
    (
        "1-topic-100-partitions-1kb-4p-4c-200k",
        include_str!("../../workloads/1-topic-100-partitions-1kb-4p-4c-200k.yaml"),
    ),
    (
        "max-rate-1-topic-1-partition-1p-1c-1kb",
        include_str!("../../workloads/max-rate-1-topic-1-partition-1p-1c-1kb.yaml"),
    ),
    (
        "backlog-1-topic-16-partitions-1kb",
        include_str!("../../workloads/backlog-1-topic-16-partitions-1kb.yaml"),
    ),
];

fn shipped(name: &str) -> OmbWorkload {
    let (_, yaml) = SHIPPED
        .iter()
        .find(|(file, _)| *file == name)
        .expect("a shipped file");
    workload_from_omb(yaml, &Workload::default()).unwrap()
}

/// The smallest file OMB accepts that the loadgen accepts too, plus `extra` lines.
fn minimal(extra: &str) -> String {
    format!("topics: 1\npartitionsPerTopic: 2\nmessageSize: 100\nproducersPerTopic: 1\nproducerRate: 1000\ntestDurationMinutes: 1\n{extra}")
}

fn parse(yaml: &str) -> Result<OmbWorkload, OmbError> {
    workload_from_omb(yaml, &Workload::default())
}

#[test]
fn every_shipped_file_parses_without_unknown_fields() {
    // Guards the shipped files against typos: each parses and uses only OMB's field names.
    let listed = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/workloads"))
        .unwrap()
        .count();
    assert_eq!(
        listed,
        SHIPPED.len(),
        "every file in workloads/ is listed in SHIPPED"
    );
    for (name, yaml) in SHIPPED {
        let omb = workload_from_omb(yaml, &Workload::default()).unwrap();
        let unknown: Vec<_> = omb
            .warnings
            .iter()
            .filter(|warning| matches!(warning, OmbWarning::UnknownField(_)))
            .collect();
        assert!(unknown.is_empty(), "{name}: {unknown:?}");
        assert!(omb.workload.duration_s >= 60.0, "{name}");
    }
}

#[test]
fn classic_16_partitions_maps_every_field() {
    // Guards the mapping of each field on OMB's best-known workload.
    let omb = shipped("1-topic-16-partitions-1kb");
    let workload = &omb.workload;
    assert_eq!(omb.name, "1 producer / 1 consumers on 1 topic");
    assert_eq!(
        workload.topics,
        ["ringtail-loadgen-1-producer-1-consumers-on-1-topic-16p-0"]
    );
    assert_eq!(workload.partitions, 16);
    assert_eq!(workload.message_size, MessageSize::Fixed { bytes: 1024 });
    assert_eq!((workload.producers, workload.subscriptions), (1, 1));
    assert_eq!(workload.consumers_per_subscription, 1);
    assert_eq!(workload.consumer_mode, ConsumerMode::Group);
    assert_eq!(workload.rate_msgs_per_s, Some(50_000.0));
    assert_eq!(workload.key_cardinality, None);
    assert_eq!(workload.partitioner, PartitionerKind::Sticky);
    assert_eq!(
        (workload.backlog_bytes, workload.start_from),
        (0, StartFrom::Latest)
    );
    assert_eq!((workload.duration_s, workload.warmup_s), (900.0, 60.0));
    assert_eq!(
        omb.warnings,
        [OmbWarning::PayloadFileIgnored(
            "payload/payload-1Kb.data".to_string()
        )]
    );
    // What the file does not say stays as the base has it.
    let base = Workload::default();
    assert_eq!(
        (workload.acks, workload.linger_ms),
        (base.acks, base.linger_ms)
    );
    assert_eq!(workload.bootstrap, base.bootstrap);
}

#[test]
fn four_producers_keyed_backlog_and_max_rate() {
    // Guards the other shipped shapes: counts, keys, backlog in GiB, an explicit huge rate.
    let four = shipped("1-topic-100-partitions-1kb-4p-4c-200k").workload;
    assert_eq!((four.partitions, four.producers), (100, 4));
    assert_eq!(four.consumers_per_subscription, 4);
    assert_eq!((four.total_producers(), four.total_consumers()), (4, 4));

    let keyed = shipped("1-topic-16-partitions-1kb-keyed").workload;
    assert_eq!(keyed.key_cardinality, Some(OMB_KEY_COUNT));
    assert_eq!(keyed.partitioner, PartitionerKind::Murmur2);

    let backlog = shipped("backlog-1-topic-16-partitions-1kb").workload;
    assert_eq!(backlog.backlog_bytes, 10 * 1024 * 1024 * 1024);
    assert_eq!(backlog.start_from, StartFrom::Earliest);

    let max_rate = shipped("max-rate-1-topic-1-partition-1p-1c-1kb");
    assert_eq!(max_rate.workload.rate_msgs_per_s, Some(10_000_000.0));
    assert!(max_rate.warnings.iter().any(|warning| matches!(
        warning,
        OmbWarning::RandomizedPayloadsNotReproduced { random_bytes_ratio } if *random_bytes_ratio == 0.5
    )));
}

#[test]
fn unknown_fields_and_keys_are_warned_not_dropped() {
    // Guards "never silently": a misspelt field and an unknown key distributor both surface.
    let omb = parse(&minimal(
        "partitionPerTopic: 8\nkeyDistributor: ROUND_ROBIN\n",
    ))
    .unwrap();
    assert!(omb
        .warnings
        .contains(&OmbWarning::UnknownField("partitionPerTopic".to_string())));
    assert!(omb.warnings.contains(&OmbWarning::UnknownKeyDistributor(
        "ROUND_ROBIN".to_string()
    )));
    assert_eq!(omb.workload.partitions, 2);
    assert_eq!(omb.workload.key_cardinality, None);
    let nano = parse(&minimal("keyDistributor: RANDOM_NANO\n")).unwrap();
    assert_eq!(nano.workload.key_cardinality, Some(OMB_KEY_COUNT));
    assert!(nano.warnings.contains(&OmbWarning::RandomNanoOrder));
}

#[test]
fn defaults_follow_omb() {
    // Guards OMB's defaults: warm-up 1 minute, no consumers when unset, rate 0 is flat out.
    let omb = parse(&minimal("")).unwrap();
    assert_eq!(omb.name, "omb");
    assert_eq!(omb.workload.warmup_s, 60.0);
    assert_eq!(omb.workload.subscriptions, 0);
    assert!(omb.warnings.is_empty(), "{:?}", omb.warnings);
    let probe = parse(&minimal("").replace("producerRate: 1000\n", "producerRate: 0\n")).unwrap();
    assert_eq!(probe.workload.rate_msgs_per_s, None);
    assert_eq!(probe.warnings, [OmbWarning::RateProbeNotReproduced]);
    let missing = parse(&minimal("").replace("producerRate: 1000\n", "")).unwrap();
    assert_eq!(missing.workload.rate_msgs_per_s, None);
}

/// Whether an error is the one a bad file should get.
type IsExpected = fn(&OmbError) -> bool;

#[test]
fn bad_files_get_typed_errors() {
    // Guards each refusal: missing or out-of-range fields, wrong types, non-mappings.
    let cases: [(String, IsExpected); 9] = [
        (String::new(), |e| matches!(e, OmbError::NotAMapping(_))),
        ("- 1\n- 2\n".to_string(), |e| {
            matches!(e, OmbError::NotAMapping(_))
        }),
        ("topics: [1\n".to_string(), |e| {
            matches!(e, OmbError::Yaml(_))
        }),
        (minimal("").replace("topics: 1", "topics: many"), |e| {
            matches!(e, OmbError::Yaml(_))
        }),
        (minimal("").replace("messageSize: 100\n", ""), |e| {
            matches!(e, OmbError::Missing("messageSize"))
        }),
        (
            minimal("").replace("partitionsPerTopic: 2", "partitionsPerTopic: 0"),
            |e| {
                matches!(
                    e,
                    OmbError::OutOfRange {
                        field: "partitionsPerTopic",
                        ..
                    }
                )
            },
        ),
        (
            minimal("").replace("testDurationMinutes: 1", "testDurationMinutes: 0"),
            |e| {
                matches!(
                    e,
                    OmbError::OutOfRange {
                        field: "testDurationMinutes",
                        ..
                    }
                )
            },
        ),
        (minimal("randomBytesRatio: 1.5\n"), |e| {
            matches!(
                e,
                OmbError::OutOfRange {
                    field: "randomBytesRatio",
                    ..
                }
            )
        }),
        (
            minimal("consumerBacklogSizeGB: 1\n").replace("producerRate: 1000", "producerRate: 0"),
            |e| matches!(e, OmbError::BacklogNeedsRate),
        ),
    ];
    for (yaml, expected) in cases {
        let error = parse(&yaml).expect_err(&yaml);
        assert!(expected(&error), "{yaml:?} gave {error}");
    }
}

#[test]
fn topic_names_are_distinct_per_shape() {
    // Guards topic reuse: same name, different partition counts → different topics.
    let sixteen = shipped("1-topic-16-partitions-1kb").workload.topics;
    let one = parse("name: 1 producer / 1 consumers on 1 topic\n")
        .map(|_| ())
        .expect_err("incomplete");
    assert!(matches!(one, OmbError::Missing("topics")));
    let three = parse(
        &minimal("name: 1 producer / 1 consumers on 1 topic\n").replace("topics: 1", "topics: 3"),
    )
    .unwrap()
    .workload
    .topics;
    assert_eq!(three.len(), 3);
    assert!(three.iter().all(|topic| !sixteen.contains(topic)));
    assert_eq!(slug("  Weird//Name!! "), "weird-name");
    assert_eq!(slug("///"), "omb");
    assert!(slug(&"x".repeat(500)).len() <= SLUG_CHARS_MAX);
}
