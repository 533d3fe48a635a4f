//! The topic config catalogue: it matches the engine, validates as Kafka does, describes sources.
use super::*;
use ringtail_engine::config::TOPIC_CONFIG_NAMES;

#[test]
fn honoured_configs_are_exactly_the_engines() {
    // The invariant of the module: no honoured name the engine lacks, no engine name missing here.
    let honoured: BTreeSet<&str> = TOPIC_CONFIGS
        .iter()
        .filter(|def| def.support == Support::Honoured)
        .map(|def| def.name)
        .collect();
    let engine: BTreeSet<&str> = TOPIC_CONFIG_NAMES.iter().copied().collect();
    assert_eq!(honoured, engine);
    let names: BTreeSet<&str> = TOPIC_CONFIGS.iter().map(|def| def.name).collect();
    assert_eq!(names.len(), TOPIC_CONFIGS.len(), "no name twice");
}

#[test]
fn every_default_passes_its_own_validation_and_resolves() {
    // A default that failed validation would make DescribeConfigs → AlterConfigs round trips fail.
    let mut overrides = BTreeMap::new();
    for def in TOPIC_CONFIGS {
        validate(def.name, def.default).unwrap_or_else(|err| panic!("{}: {err}", def.name));
        overrides.insert(def.name.to_string(), def.default.to_string());
    }
    let config = resolve(&LogConfig::default(), &overrides).unwrap();
    assert_eq!(config.get("compression.type").unwrap(), "producer");
}

#[test]
fn values_are_checked_by_type_and_range() {
    // What librdkafka's 0077/0081 and kafka-python set, and what Kafka refuses.
    for (name, good) in [
        ("file.delete.delay.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("compression.type", "zstd"),
        ("cleanup.policy", "compact, delete"),
        ("compression.gzip.level", "-1"),
        ("leader.replication.throttled.replicas", "0:0,1:0"),
        ("follower.replication.throttled.replicas", "*"),
        ("unclean.leader.election.enable", "TRUE"),
        ("message.timestamp.type", "LogAppendTime"),
    ] {
        assert!(validate(name, good).is_ok(), "{name}={good}");
    }
    for (name, bad) in [
        ("file.delete.delay.ms", "-1"),
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.type", "brotli"),
        ("cleanup.policy", "delete,forever"),
        ("compression.gzip.level", "0"),
        ("max.message.bytes", "3000000000"),
        ("segment.index.bytes", "x"),
        ("leader.replication.throttled.replicas", "0-0"),
        ("remote.storage.enable", "true"),
        ("preallocate", "yes"),
    ] {
        assert!(
            matches!(validate(name, bad), Err(ConfigError::Invalid { .. })),
            "{name}={bad}"
        );
    }
    assert!(matches!(
        validate("no.such.config", "1"),
        Err(ConfigError::Unknown { .. })
    ));
}

#[test]
fn described_sources_and_synonyms_follow_precedence() {
    // A topic override wins over a broker flag, which wins over the default; types are Kafka's.
    let defaults = LogConfig::default();
    let overrides = BTreeMap::from([
        ("retention.ms".to_string(), "1000".to_string()),
        ("file.delete.delay.ms".to_string(), "5".to_string()),
    ]);
    let effective = resolve(&defaults, &overrides).unwrap();
    let explicit = BTreeSet::from(["segment_bytes".to_string()]);
    let broker = crate::configs::dynamic::BrokerDefaults::new(defaults, Default::default());
    let described = describe(&effective, &overrides, &broker, &explicit);
    let get = |name: &str| described.iter().find(|d| d.name == name).unwrap().clone();
    let retention = get("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::Topic);
    assert_eq!(retention.kind, ConfigType::Long);
    assert_eq!(retention.synonyms.len(), 2);
    assert_eq!(retention.synonyms[1].name, "log.retention.ms");
    assert_eq!(retention.synonyms[1].source, ConfigSource::Default);
    assert_eq!(get("file.delete.delay.ms").value.as_deref(), Some("5"));
    let segment = get("segment.bytes");
    assert_eq!(segment.source, ConfigSource::StaticBroker);
    assert_eq!(segment.kind, ConfigType::Int);
    assert_eq!(get("retention.bytes").kind, ConfigType::Long);
    assert_eq!(get("cleanup.policy").kind, ConfigType::List);
    assert_eq!(get("min.cleanable.dirty.ratio").kind, ConfigType::Double);
    assert_eq!(get("preallocate").kind, ConfigType::Boolean);
    assert_eq!(described.len(), TOPIC_CONFIGS.len());
}

#[test]
fn append_adds_missing_items_at_the_end_and_subtract_removes_them_anywhere() {
    assert_eq!(
        append_or_subtract("compact", "delete", true),
        "compact,delete"
    );
    assert_eq!(
        append_or_subtract("compact, delete", "delete", true),
        "compact,delete"
    );
    assert_eq!(append_or_subtract("", "a,b,a", true), "a,b");
    assert_eq!(append_or_subtract("a,b,c", "b, a", false), "c");
    assert_eq!(append_or_subtract("a", "z", false), "a");
}

#[test]
fn retention_special_values_are_kafkas_and_refusals_read_as_kafkas() {
    // Kafka's LogConfig: retention.ms at least -1 (-1: unlimited), retention.bytes any long (every
    // negative unlimited), local.retention.* at least -2 (-2: follow retention.*). A refusal is
    // ConfigException's "Invalid value V for configuration N: Value must be at least M".
    for (name, accepted) in [
        ("retention.ms", "-1"),
        ("retention.ms", "0"),
        ("retention.bytes", "-1"),
        ("retention.bytes", "-2"),
        ("local.retention.ms", "-2"),
        ("local.retention.bytes", "-2"),
    ] {
        assert!(validate(name, accepted).is_ok(), "{name}={accepted}");
    }
    let overrides = BTreeMap::from([
        ("retention.ms".to_string(), "-1".to_string()),
        ("retention.bytes".to_string(), "-2".to_string()),
    ]);
    let resolved = resolve(&LogConfig::default(), &overrides).unwrap();
    assert_eq!(resolved.get("retention.ms").as_deref(), Some("-1"));
    assert_eq!(resolved.get("retention.bytes").as_deref(), Some("-1"));
    for (name, refused, message) in [
        (
            "retention.ms",
            "-2",
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            "local.retention.ms",
            "-3",
            "Invalid value -3 for configuration local.retention.ms: Value must be at least -2",
        ),
        (
            "segment.bytes",
            "12",
            "Invalid value 12 for configuration segment.bytes: Value must be at least 1024",
        ),
    ] {
        let error = validate(name, refused).unwrap_err();
        assert_eq!(error.to_string(), message);
    }
}
