//! Unit tests of broker_process: names, command lines, exits and skips (no real broker).

use super::*;

#[test]
fn names_parse_back() {
    // Report names round-trip, through FromStr and through serde.
    for kind in [
        BrokerKind::Ringtail,
        BrokerKind::Tansu(TansuStorage::Sqlite),
        BrokerKind::Tansu(TansuStorage::Memory),
        BrokerKind::Kafka,
    ] {
        assert_eq!(kind.name().parse::<BrokerKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(serde_json::from_str::<BrokerKind>(&json).unwrap(), kind);
    }
    assert_eq!(
        "tansu".parse::<BrokerKind>().unwrap(),
        BrokerKind::Tansu(TansuStorage::Sqlite)
    );
    assert!("redpanda".parse::<BrokerKind>().is_err());
}

#[test]
fn command_lines() {
    // The flags each broker is started with (server/src/config.rs; tansu's `broker` command).
    let mut spec = BrokerSpec::new(
        BrokerKind::Ringtail,
        PathBuf::from("/bin/ringtail"),
        vec![PathBuf::from("/d1"), PathBuf::from("/d2")],
        PathBuf::from("/out"),
    );
    spec.extra_args = vec!["--flush".to_string(), "every_batch".to_string()];
    assert_eq!(
        spec.args(9),
        [
            "--listen",
            "127.0.0.1:9",
            "--data-dir",
            "/d1",
            "--data-dir",
            "/d2",
            "--flush",
            "every_batch"
        ]
    );
    assert_eq!(spec.log_path(), PathBuf::from("/out/broker-ringtail.log"));
    spec.kind = BrokerKind::Tansu(TansuStorage::Sqlite);
    spec.extra_args.clear();
    assert_eq!(
        spec.args(9),
        [
            "broker",
            "--listener-url",
            "tcp://127.0.0.1:9",
            "--advertised-listener-url",
            "tcp://127.0.0.1:9",
            "--storage-engine",
            "sqlite://tansu.db"
        ]
    );
    assert_eq!(spec.working_dir(), Path::new("/d1"));
    spec.kind = BrokerKind::Kafka;
    spec.extra_args = vec!["--flush-messages".to_string(), "1".to_string()];
    assert_eq!(
        spec.args(9),
        [
            "run",
            "--listen",
            "127.0.0.1:9",
            "--data-dir",
            "/d1",
            "--flush-messages",
            "1"
        ]
    );
    assert_eq!(spec.working_dir(), Path::new("/out"));
}

#[test]
fn the_jvm_s_exit_after_sigterm_is_clean_for_kafka_only() {
    use std::os::unix::process::ExitStatusExt;
    let jvm_sigterm = ExitStatus::from_raw(143 << 8);
    assert!(BrokerKind::Kafka.stopped_cleanly(jvm_sigterm));
    assert!(BrokerKind::Kafka.stopped_cleanly(ExitStatus::from_raw(0)));
    assert!(!BrokerKind::Ringtail.stopped_cleanly(jvm_sigterm));
    assert!(!BrokerKind::Kafka.stopped_cleanly(ExitStatus::from_raw(1 << 8)));
}

#[test]
fn a_missing_binary_is_a_skip_with_an_install_hint() {
    // The matrix tells "not installed" (skip) from "failed".
    let kind = BrokerKind::Tansu(TansuStorage::Sqlite);
    let error = locate(kind, Some(Path::new("/nonexistent/tansu"))).unwrap_err();
    assert!(error.is_skip());
    let text = error.to_string();
    assert!(text.starts_with("skipped: tansu-sqlite not installed at /nonexistent/tansu"));
    assert!(text.contains("cargo install"), "{text}");
}

fn script(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-broker");
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_broker_that_exits_at_once_says_so_with_its_log() {
    // An early exit is reported with the log's tail, which starts with the command line.
    let out = tempfile::tempdir().unwrap();
    let binary = script(out.path(), "echo config error: bad flag >&2; exit 3");
    let spec = BrokerSpec::new(
        BrokerKind::Ringtail,
        binary.clone(),
        vec![out.path().to_path_buf()],
        out.path().to_path_buf(),
    );
    let error = BrokerProcess::start(&spec).unwrap_err();
    let BrokerError::ExitedEarly { log_tail, .. } = &error else {
        panic!("{error}");
    };
    assert!(log_tail.contains("config error: bad flag"), "{log_tail}");
    let log = fs::read_to_string(spec.log_path()).unwrap();
    let header = format!("== {} --listen 127.0.0.1:", binary.display());
    assert!(log.starts_with(&header), "{log}");
}

#[test]
fn a_process_that_never_answers_is_not_ready_and_is_reaped() {
    // A process that runs but never listens: start gives up at the timeout and kills it.
    let out = tempfile::tempdir().unwrap();
    let pid_file = out.path().join("pid");
    let binary = script(
        out.path(),
        &format!("echo $$ > {}; exec sleep 60", pid_file.display()),
    );
    let mut spec = BrokerSpec::new(
        BrokerKind::Ringtail,
        binary,
        vec![out.path().to_path_buf()],
        out.path().to_path_buf(),
    );
    spec.ready_timeout = Duration::from_millis(500);
    let error = BrokerProcess::start(&spec).unwrap_err();
    assert!(matches!(error, BrokerError::NotReady { .. }), "{error}");
    let pid = fs::read_to_string(&pid_file).unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
    assert!(!proc_dir.exists(), "pid {} still exists", pid.trim());
}
