//! Unit tests of the command line and config file (config.rs).

use super::*;

#[test]
fn defaults_need_no_flags() {
    // The README's first command runs with no flags at all.
    let args = Args::try_parse_from(["ringtail"]).unwrap();
    let listeners = args.listeners().unwrap();
    assert_eq!(listeners.len(), 1);
    assert_eq!(listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(args.data_dirs, vec![PathBuf::from("./data")]);
    assert_eq!(args.flush, FlushPolicy::None);
    assert!(args.auto_create_topics);
    let bound = [(listeners[0].clone(), "127.0.0.1:9092".parse().unwrap())];
    assert_eq!(
        args.advertised(&bound).unwrap(),
        vec![("127.0.0.1".to_string(), 9092)]
    );
    let log = args.log_defaults().unwrap();
    assert_eq!(log.retention_bytes, None);
    let groups = args.consumer_group_config().unwrap();
    assert_eq!(
        (groups.session_timeout_ms, groups.heartbeat_interval_ms),
        (45_000, 5_000)
    );
    let bad = Args::try_parse_from([
        "ringtail",
        "--group-consumer-heartbeat-interval-ms",
        "50000",
    ]);
    assert!(bad.unwrap().consumer_group_config().is_err());
    // On by default (decision 0031: the engine declines it where it costs memory or room).
    assert!(log.preallocate);
    let off = Args::try_parse_from(["ringtail", "--preallocate", "false"]).unwrap();
    assert!(!off.log_defaults().unwrap().preallocate);
    assert!(!log.write_inline);
    let inline = Args::try_parse_from(["ringtail", "--write-inline", "true"]).unwrap();
    assert!(inline.log_defaults().unwrap().write_inline);
    assert!(!log.write_direct);
    let direct = Args::try_parse_from(["ringtail", "--write-direct", "true"]).unwrap();
    assert!(direct.log_defaults().unwrap().write_direct);
    let marks = args.disk_watermarks().unwrap();
    assert_eq!(
        (
            marks.warn_used_percent,
            marks.limit_used_percent,
            marks.min_free_bytes
        ),
        (80, 95, 0)
    );
    let crossed = Args::try_parse_from(["ringtail", "--disk-warn-used-percent", "96"]);
    assert!(crossed.unwrap().disk_watermarks().is_err());
}

#[test]
fn cold_reads_in_flight_are_bounded() {
    // Each cold read in flight holds a 6 MiB buffer: 0 would stall cold fetches, and the
    // flag's top is the sender's own bound.
    let default = Args::try_parse_from(["ringtail"]).unwrap();
    assert_eq!(
        usize::from(default.fetch_cold_reads_in_flight),
        crate::residency::COLD_READS_IN_FLIGHT_DEFAULT
    );
    let top = crate::residency::COLD_READS_IN_FLIGHT_MAX.to_string();
    let most = Args::try_parse_from(["ringtail", "--fetch-cold-reads-in-flight", &top]);
    assert_eq!(usize::from(most.unwrap().fetch_cold_reads_in_flight), 16);
    for refused in ["0", "17", "-1", "many"] {
        let bad = Args::try_parse_from(["ringtail", "--fetch-cold-reads-in-flight", refused]);
        assert!(bad.is_err(), "{refused} accepted");
    }
}

#[test]
fn cold_read_memory_is_at_least_one_chunk() {
    // Below one chunk's buffer no cold read could start: every cold byte would be spliced.
    let default = Args::try_parse_from(["ringtail"]).unwrap();
    assert_eq!(
        default.fetch_cold_read_memory_bytes,
        crate::residency::COLD_READ_MEMORY_BYTES_DEFAULT
    );
    let least = crate::residency::COLD_READ_MEMORY_BYTES_MIN.to_string();
    let parsed = Args::try_parse_from(["ringtail", "--fetch-cold-read-memory-bytes", &least]);
    assert_eq!(
        parsed.unwrap().fetch_cold_read_memory_bytes,
        crate::residency::COLD_READ_MEMORY_BYTES_MIN
    );
    let below = (crate::residency::COLD_READ_MEMORY_BYTES_MIN - 1).to_string();
    for refused in [below.as_str(), "0", "-1", "lots"] {
        let bad = Args::try_parse_from(["ringtail", "--fetch-cold-read-memory-bytes", refused]);
        assert!(bad.is_err(), "{refused} accepted");
    }
}

#[test]
fn cold_read_pace_is_off_or_at_least_a_mebibyte_per_second() {
    let default = Args::try_parse_from(["ringtail"]).unwrap();
    assert_eq!(
        default.fetch_cold_read_bytes_per_sec, 0,
        "no pace by default"
    );
    let least = crate::residency::COLD_READ_PACE_MIN_BYTES_PER_SEC.to_string();
    for taken in ["0", least.as_str(), "400000000"] {
        let parsed = Args::try_parse_from(["ringtail", "--fetch-cold-read-bytes-per-sec", taken]);
        assert_eq!(
            parsed.unwrap().fetch_cold_read_bytes_per_sec.to_string(),
            taken
        );
    }
    let below = (crate::residency::COLD_READ_PACE_MIN_BYTES_PER_SEC - 1).to_string();
    for refused in [below.as_str(), "1", "-1", "fast"] {
        // `--flag=-1`, so the parser sees the value (not an unknown `-1` argument).
        let flag = format!("--fetch-cold-read-bytes-per-sec={refused}");
        let bad = Args::try_parse_from(["ringtail", flag.as_str()]);
        assert!(bad.is_err(), "{refused} accepted");
    }
}

#[test]
fn data_dir_repeats_for_several_disks() {
    // --data-dir is the one repeatable flag: every occurrence counts.
    let args = Args::try_parse_from([
        "ringtail",
        "--data-dir",
        "/d1",
        "--data-dir",
        "/d2",
        "--flush",
        "5ms",
    ])
    .unwrap();
    assert_eq!(
        args.data_dirs,
        vec![PathBuf::from("/d1"), PathBuf::from("/d2")]
    );
    assert_eq!(args.flush, FlushPolicy::IntervalMs(5));
}

#[test]
fn file_values_apply_and_the_command_line_wins() {
    // --config seeds every flag; an explicit flag overrides the file.
    let file = "listen = \"127.0.0.1:19092\"\nflush = \"every_batch\"\ndata-dir = [\"/a\", \"/b\"]\nshards = 3\nauto-create-topics = false\n";
    let cli = vec![
        "ringtail".to_string(),
        "--shards".to_string(),
        "1".to_string(),
    ];
    let mut merged = vec!["ringtail".to_string()];
    merged.extend(toml_to_args(file, &cli).unwrap());
    merged.extend(cli[1..].iter().cloned());
    let args = Args::try_parse_from(merged).unwrap();
    assert_eq!(args.listen.unwrap().port(), 19092);
    assert_eq!(args.flush, FlushPolicy::EveryBatch);
    assert_eq!(
        args.data_dirs,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
    assert_eq!(args.shards, Some(1));
    assert!(!args.auto_create_topics);
}

#[test]
fn acl_flags_come_from_the_file_or_the_command_line() {
    // The TOML keys are the flags' names; a bare `--allow-everyone-if-no-acl-found` is true,
    // unset is None (the per-principal default of docs/SECURITY.md).
    let file = "super-users = \"User:admin;User:ops\"\nallow-everyone-if-no-acl-found = false\n";
    let mut merged = vec!["ringtail".to_string()];
    merged.extend(toml_to_args(file, &[]).unwrap());
    let args = Args::try_parse_from(merged).unwrap();
    let acl = args.security.acl_config().unwrap();
    assert!(acl.super_users.contains("User:ops") && acl.super_users.len() == 2);
    assert_eq!(acl.allow_everyone_if_no_acl_found, Some(false));
    let bare = Args::try_parse_from(["ringtail", "--allow-everyone-if-no-acl-found"]).unwrap();
    assert_eq!(bare.security.allow_everyone_if_no_acl_found, Some(true));
    let unset = Args::try_parse_from(["ringtail"]).unwrap();
    assert_eq!(unset.security.allow_everyone_if_no_acl_found, None);
    let bad = Args::try_parse_from(["ringtail", "--super-users", "admin"]).unwrap();
    assert!(
        bad.security.acl_config().is_err(),
        "a principal needs its type"
    );
}

#[test]
fn listeners_come_from_the_file_or_the_command_line_and_advertise_per_name() {
    // `listeners` in the file; `--listen` by hand replaces it (they exclude each other);
    // `--advertised-listeners` is matched by name, and an unknown name is refused.
    let file = "listeners = \"PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9094\"\nadvertised-listeners = \"SASL_SSL://broker.example:19094\"\n";
    let merged = |cli: &[&str]| {
        let cli: Vec<String> = cli.iter().map(|a| a.to_string()).collect();
        let mut merged = vec!["ringtail".to_string()];
        merged.extend(toml_to_args(file, &cli).unwrap());
        merged.extend(cli[1..].iter().cloned());
        Args::try_parse_from(merged).unwrap()
    };
    let args = merged(&["ringtail"]);
    let listeners = args.listeners().unwrap();
    assert_eq!(listeners.len(), 2);
    let bound: Vec<(Listener, SocketAddr)> = listeners
        .iter()
        .map(|l| (l.clone(), l.bind_address().unwrap()))
        .collect();
    assert_eq!(
        args.advertised(&bound).unwrap(),
        vec![
            ("127.0.0.1".to_string(), 9092),
            ("broker.example".to_string(), 19094)
        ]
    );
    let by_hand = merged(&["ringtail", "--listen", "127.0.0.1:7000"]);
    assert_eq!(
        by_hand.listeners().unwrap()[0].to_string(),
        "PLAINTEXT://127.0.0.1:7000"
    );
    let wrong = Args::try_parse_from(["ringtail", "--advertised-listeners", "SSL://h:1"]).unwrap();
    let plain = wrong.listeners().unwrap();
    let bound = [(plain[0].clone(), "127.0.0.1:9092".parse().unwrap())];
    assert!(wrong.advertised(&bound).is_err());
    assert!(Args::try_parse_from([
        "ringtail",
        "--listen",
        "127.0.0.1:1",
        "--listeners",
        "SSL://h:2"
    ])
    .is_err());
}

#[test]
fn tls_listeners_need_their_files_and_files_need_a_tls_listener() {
    // Both mistakes are refused at start instead of serving plaintext or failing per client.
    let tls = Args::try_parse_from(["ringtail", "--listeners", "SSL://127.0.0.1:9093"]).unwrap();
    let err = tls
        .security
        .tls_config(&tls.listeners().unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("--tls-cert-file"), "{err}");
    let stray = Args::try_parse_from(["ringtail", "--tls-client-ca-file", "/ca.pem"]).unwrap();
    assert!(stray
        .security
        .tls_config(&stray.listeners().unwrap())
        .is_err());
    let none = Args::try_parse_from(["ringtail"]).unwrap();
    assert!(none
        .security
        .tls_config(&none.listeners().unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn retention_ms_reads_negative_values_as_unlimited_and_refuses_zero_as_kafka_does() {
    // Kafka's log.retention.ms: any negative value is -1 (keep forever), 0 fails its requirement.
    let args = Args::try_parse_from(["ringtail", "--retention-ms", "-2"]).unwrap();
    assert_eq!(args.log_defaults().unwrap().retention_ms, None);
    let args = Args::try_parse_from(["ringtail", "--retention-ms", "-1"]).unwrap();
    assert_eq!(args.log_defaults().unwrap().retention_ms, None);
    let args = Args::try_parse_from(["ringtail", "--retention-ms", "1"]).unwrap();
    assert_eq!(args.log_defaults().unwrap().retention_ms, Some(1));
    let args = Args::try_parse_from(["ringtail", "--retention-ms", "0"]).unwrap();
    let err = args.log_defaults().unwrap_err().to_string();
    assert!(
        err.contains("unlimited (-1) or, equal or greater than 1"),
        "{err}"
    );
}
