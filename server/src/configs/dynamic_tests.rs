use super::*;

fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn names_are_classified_as_kafka_does() {
    // Kafka's DynamicLogConfig, listener, cleaner and custom names are alterable; static ones
    // and the bare SSL store settings are not.
    assert!(matches!(kind_of("log.retention.ms"), Kind::Log(def) if def.name == "retention.ms"));
    assert!(matches!(
        kind_of("sasl.kerberos.min.time.before.relogin"),
        Kind::Stored {
            per_broker: true,
            ..
        }
    ));
    assert!(matches!(
        kind_of("log.cleaner.threads"),
        Kind::Stored {
            per_broker: false,
            ..
        }
    ));
    assert_eq!(kind_of("log.dirs"), Kind::NotDynamic);
    assert_eq!(kind_of("log.retention.hours"), Kind::NotDynamic);
    assert_eq!(kind_of("ssl.keystore.location"), Kind::ListenerOnly);
    assert_eq!(kind_of("max.connections"), Kind::FixedAtStart);
    assert_eq!(kind_of("my.custom.config"), Kind::Custom);
    assert!(is_alterable("my.custom.config"));
    assert!(!is_alterable("node.id"));
}

#[test]
fn validation_refuses_as_kafka_does() {
    assert_eq!(
        validate(&set(&[("log.dirs", "/x"), ("node.id", "3")]), true),
        Err("Cannot update these configs dynamically: Set(log.dirs, node.id)".to_string())
    );
    assert!(validate(
        &set(&[("sasl.kerberos.min.time.before.relogin", "58000")]),
        true
    )
    .is_ok());
    assert!(validate(
        &set(&[("sasl.kerberos.min.time.before.relogin", "58000")]),
        false
    )
    .unwrap_err()
    .starts_with("Cannot update these configs at default cluster level"));
    assert!(validate(
        &set(&[("sasl.kerberos.min.time.before.relogin", "soon")]),
        true
    )
    .is_err());
    assert!(validate(&set(&[("log.retention.ms", "60000")]), false).is_ok());
    assert!(validate(&set(&[("anything.custom", "x")]), false).is_ok());
}

#[test]
fn the_node_wins_over_the_default_over_start_up() {
    // Precedence is Kafka's: node, cluster-wide default, start-up.
    let start_up = LogConfig::default();
    let dynamic = DynamicBrokerConfigs {
        node: set(&[("log.segment.bytes", "2048")]),
        default: set(&[("log.segment.bytes", "4096"), ("log.retention.ms", "60000")]),
    };
    let defaults = BrokerDefaults::new(start_up.clone(), dynamic.clone());
    assert_eq!(defaults.log.get("segment.bytes").as_deref(), Some("2048"));
    assert_eq!(defaults.log.get("retention.ms").as_deref(), Some("60000"));
    assert_eq!(
        dynamic.value("log.segment.bytes"),
        Some(("2048", ConfigSource::DynamicBroker))
    );
    let synonyms = dynamic.synonyms("log.segment.bytes", false);
    let sources: Vec<_> = synonyms.iter().map(|synonym| synonym.source).collect();
    assert_eq!(
        sources,
        [
            ConfigSource::DynamicBroker,
            ConfigSource::DynamicDefaultBroker
        ]
    );
    let described = describe_default(&dynamic);
    assert_eq!(described.len(), 2);
    assert!(described
        .iter()
        .all(|config| config.synonyms.len() == 1
            && config.source == ConfigSource::DynamicDefaultBroker));
}

#[test]
fn a_negative_log_retention_ms_is_unlimited_and_zero_is_refused_as_kafka_does() {
    // Kafka's log.retention.ms has no validator: KafkaConfig.logRetentionTimeMillis reads every
    // negative value as -1 (unlimited), and its requirement refuses 0 (a topic's retention.ms may
    // be 0). Other log configs are refused with the broker name in ConfigException's words.
    for value in ["-1", "-2", "-100"] {
        assert_eq!(
            validate(&set(&[("log.retention.ms", value)]), false),
            Ok(()),
            "{value}"
        );
        let dynamic = DynamicBrokerConfigs {
            node: BTreeMap::new(),
            default: set(&[("log.retention.ms", value)]),
        };
        let defaults = BrokerDefaults::new(LogConfig::default(), dynamic);
        assert_eq!(defaults.log.get("retention.ms").as_deref(), Some("-1"));
    }
    assert_eq!(
        validate(&set(&[("log.retention.ms", "0")]), true),
        Err(
            "requirement failed: log.retention.ms must be unlimited (-1) or, greater than or equal to 1"
                .to_string()
        )
    );
    assert_eq!(
        validate(&set(&[("log.retention.bytes", "-2")]), true),
        Ok(())
    );
    assert_eq!(
        validate(&set(&[("log.segment.bytes", "12")]), true),
        Err(
            "Invalid value 12 for configuration log.segment.bytes: Value must be at least 1024"
                .to_string()
        )
    );
    assert_eq!(
        validate(&set(&[("log.cleaner.threads", "many")]), true),
        Err(
            "Invalid value many for configuration log.cleaner.threads: Not a number of type INT"
                .to_string()
        )
    );
}

#[test]
fn every_reported_broker_config_is_a_log_config_or_refused_as_kafka_refuses_read_only_ones() {
    // What DescribeConfigs shows of the broker is either alterable and a log config topics
    // follow (Kafka's DynamicLogConfig set), or refused as Kafka refuses a config it cannot
    // change: INVALID_REQUEST "Cannot update these configs dynamically". Listeners, connection
    // limits, I/O threads and producer expiry are dynamic in Kafka, but start-up flags here.
    use clap::Parser;
    let args =
        crate::config::Args::try_parse_from(["ringtail", "--data-dir", "/nonexistent"]).unwrap();
    let advertised = crate::configs::broker::Advertised {
        host: "localhost",
        port: 9092,
    };
    let reported = crate::configs::broker::describe(&args, &LogConfig::default(), &advertised);
    let described = describe_node(&reported, &DynamicBrokerConfigs::default());
    assert!(described.len() > 30);
    for config in described {
        let name = config.name.as_str();
        let value = config.value.clone().unwrap_or_default();
        let one = set(&[(name, value.as_str())]);
        if config.read_only {
            let expected = format!("Cannot update these configs dynamically: Set({name})");
            assert_eq!(validate(&one, true), Err(expected.clone()), "{name}");
            assert_eq!(
                validate(&one, false),
                Err(expected),
                "{name} (cluster default)"
            );
        } else {
            assert!(matches!(kind_of(name), Kind::Log(_)), "{name} is alterable");
            assert_eq!(validate(&one, true), Ok(()), "{name}={value}");
        }
    }
}
