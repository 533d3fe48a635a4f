package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Kafka's command-line tools (their main classes, as the kafka-*.sh scripts run them). */
class CliToolsTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer";
    static final String CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    static final String CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    static final String CONFIGS = "kafka.admin.ConfigCommand";
    static final String GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell";
    static final String LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand";

    @Test
    void kafkaTopicsCreateDescribeAlterPartitions() throws Exception {
        String topic = Clients.unique("cli-topics");
        String bs = broker.bootstrap();
        Tools.run(TOPICS, null, "--bootstrap-server", bs, "--create", "--topic", topic,
                "--partitions", "2", "--replication-factor", "1").assertOk();
        String listed = Tools.run(TOPICS, null, "--bootstrap-server", bs, "--list").assertOk().stdout();
        assertTrue(listed.lines().anyMatch(topic::equals), listed);
        Tools.run(TOPICS, null, "--bootstrap-server", bs, "--alter", "--topic", topic, "--partitions", "4").assertOk();
        String described = Tools.run(TOPICS, null, "--bootstrap-server", bs, "--describe", "--topic", topic)
                .assertOk().stdout();
        assertTrue(described.contains("PartitionCount: 4"), described);
        assertEquals(4, described.lines().filter(l -> l.contains("Partition: ")).count(), described);
    }

    @Test
    void consoleProducerThenConsoleConsumer() throws Exception {
        String topic = Clients.unique("cli-console");
        Clients.createTopic(broker, topic, 1);
        String bs = broker.bootstrap();
        Tools.run(CONSOLE_PRODUCER, "k1:first\nk2:second\nk3:third\n", "--bootstrap-server", bs, "--topic", topic,
                "--property", "parse.key=true", "--property", "key.separator=:").assertOk();
        String out = Tools.run(CONSOLE_CONSUMER, null, "--bootstrap-server", bs, "--topic", topic,
                "--from-beginning", "--max-messages", "3", "--property", "print.key=true",
                "--property", "key.separator==").assertOk().stdout();
        assertEquals(List.of("k1=first", "k2=second", "k3=third"), out.lines().toList());
    }

    @Test
    void consumerGroupsListDescribeWithLagAndResetOffsets() throws Exception {
        String topic = Clients.unique("cli-groups");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 10);
        String group = Clients.unique("cli-group");
        TopicPartition tp = new TopicPartition(topic, 0);
        java.util.Properties props = Clients.consumerProps(broker, group);
        // Only the explicit commit: auto-commit would commit the position (10) on close.
        props.put(org.apache.kafka.clients.consumer.ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            Clients.pollAtLeast(consumer, 10);
            consumer.commitSync(Map.of(tp, new OffsetAndMetadata(6)));
        }
        String bs = broker.bootstrap();
        String list = Tools.run(CONSUMER_GROUPS, null, "--bootstrap-server", bs, "--list").assertOk().stdout();
        assertTrue(list.lines().anyMatch(group::equals), list);
        String describe = Tools.run(CONSUMER_GROUPS, null, "--bootstrap-server", bs, "--describe", "--group", group)
                .assertOk().stdout();
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
        List<String> row = describe.lines().filter(l -> l.contains(topic)).map(l -> Arrays.asList(l.trim().split("\\s+")))
                .findFirst().orElseThrow(() -> new AssertionError(describe));
        assertEquals(List.of(group, topic, "0", "6", "10", "4"), row.subList(0, 6), describe);
        String reset = Tools.run(CONSUMER_GROUPS, null, "--bootstrap-server", bs, "--group", group,
                "--reset-offsets", "--to-earliest", "--topic", topic, "--execute").assertOk().stdout();
        assertTrue(reset.contains(topic), reset);
        try (Admin admin = Clients.admin(broker)) {
            assertEquals(0, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(tp).offset());
        }
    }

    @Test
    void kafkaConfigsDescribeAndAlterTopicConfig() throws Exception {
        String topic = Clients.unique("cli-configs");
        Clients.createTopic(broker, topic, 1);
        String bs = broker.bootstrap();
        Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", topic,
                "--alter", "--add-config", "retention.ms=7200000").assertOk();
        String described = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics",
                "--entity-name", topic, "--describe").assertOk().stdout();
        assertTrue(described.contains("retention.ms=7200000"), described);
        String all = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--entity-type", "topics",
                "--entity-name", topic, "--describe", "--all").assertOk().stdout();
        assertTrue(all.contains("cleanup.policy=delete"), all);
    }

    @Test
    void kafkaGetOffsets() throws Exception {
        String topic = Clients.unique("cli-offsets");
        Clients.createTopic(broker, topic, 2);
        Clients.produce(broker, topic, 20);
        String out = Tools.run(GET_OFFSETS, null, "--bootstrap-server", broker.bootstrap(), "--topic", topic)
                .assertOk().stdout();
        // topic:partition:latest-offset, one line per partition.
        long total = out.lines().mapToLong(l -> Long.parseLong(l.substring(l.lastIndexOf(':') + 1))).sum();
        assertEquals(2, out.lines().count(), out);
        assertEquals(20, total, out);
        String earliest = Tools.run(GET_OFFSETS, null, "--bootstrap-server", broker.bootstrap(), "--topic", topic,
                "--time", "earliest").assertOk().stdout();
        assertEquals(Set.of(topic + ":0:0", topic + ":1:0"), Set.copyOf(earliest.lines().toList()));
    }

    @Test
    void kafkaLogDirsDescribeShowsEachPartitionInItsDataDir() throws Exception {
        // kafka-log-dirs --describe prints one JSON line: brokers, their log dirs, each partition
        // with its size. The produced-to topic's partitions are there, in the broker's data dir.
        String topic = Clients.unique("cli-log-dirs");
        Clients.createTopic(broker, topic, 2);
        Clients.produce(broker, topic, 20);
        String out = Tools.run(LOG_DIRS, null, "--bootstrap-server", broker.bootstrap(), "--describe",
                "--topic-list", topic).assertOk().stdout();
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst()
                .orElseThrow(() -> new AssertionError(out));
        assertTrue(json.contains("\"logDir\":\"" + broker.dataDir() + "\""), json);
        assertTrue(json.contains("\"error\":null"), json);
        for (int partition = 0; partition < 2; partition++) {
            assertTrue(json.contains("\"partition\":\"" + topic + "-" + partition + "\""), json);
        }
        assertFalse(json.contains("\"size\":0,"), json);
    }
}
