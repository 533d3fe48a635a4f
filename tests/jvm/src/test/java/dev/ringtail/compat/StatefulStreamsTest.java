package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Produced;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * A stateful Streams app: re-key each word (a repartition topic), groupByKey → count (a state
 * store with its changelog topic), counts to an output topic. Checked after a first run, and after
 * a restart with its local state wiped, so the counts must come back from the changelog.
 */
class StatefulStreamsTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    static final String APP = "word-count-app";
    static final String INPUT = "words";
    static final String OUTPUT = "word-counts";

    private static KafkaStreams start(Path stateDir) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, APP);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0); // every update downstream
        // Streams does not leave its group on close (to spare rolling restarts a rebalance), so
        // the restarted app waits for the old member's session to time out: 6 s (the broker's
        // minimum) rather than the default 45 s.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(INPUT)
                .selectKey((key, word) -> word)
                .groupByKey()
                .count()
                .toStream()
                .to(OUTPUT, Produced.with(Serdes.String(), Serdes.Long()));
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        streams.start();
        return streams;
    }

    private static void produceWords(List<String> words) throws Exception {
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (String word : words) {
                producer.send(new ProducerRecord<>(INPUT, null, word));
            }
            producer.flush();
        }
    }

    /** The latest count per word in the output topic, once it equals {@code expected}. */
    private static void awaitCounts(Map<String, Long> expected) throws Exception {
        Properties props = Clients.consumerProps(broker, null);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Map<String, Long> latest = new HashMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = consumer.partitionsFor(OUTPUT).stream()
                    .map(p -> new TopicPartition(OUTPUT, p.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            while (!latest.equals(expected)) {
                assertTrue(System.nanoTime() < deadline, "counts " + latest + ", expected " + expected);
                for (ConsumerRecord<String, Long> record : consumer.poll(Duration.ofMillis(200))) {
                    latest.put(record.key(), record.value());
                }
            }
        }
    }

    private static Map<String, Long> count(List<String> words) {
        return words.stream().collect(Collectors.groupingBy(w -> w, Collectors.counting()));
    }

    @Test
    void countsSurviveARestartFromTheChangelog() throws Exception {
        Clients.createTopic(broker, INPUT, 2);
        Clients.createTopic(broker, OUTPUT, 2);
        List<String> first = List.of("kafka", "ringtail", "kafka", "streams", "kafka", "ringtail");
        List<String> second = List.of("ringtail", "streams", "kafka", "new");
        Path stateDir = Files.createTempDirectory("streams-count");
        try {
            produceWords(first);
            try (KafkaStreams streams = start(stateDir)) {
                awaitCounts(count(first));
                streams.close(Duration.ofSeconds(30));
            }
            try (Admin admin = Clients.admin(broker)) {
                Set<String> topics = admin.listTopics().names().get();
                assertTrue(topics.stream().anyMatch(t -> t.startsWith(APP) && t.endsWith("-repartition")), topics.toString());
                assertTrue(topics.stream().anyMatch(t -> t.startsWith(APP) && t.endsWith("-changelog")), topics.toString());
            }
            // Wipe the local store: the restarted app must restore the counts from the changelog.
            RingtailBroker.deleteTree(stateDir);
            Files.createDirectories(stateDir);
            produceWords(second);
            List<String> all = new java.util.ArrayList<>(first);
            all.addAll(second);
            try (KafkaStreams streams = start(stateDir)) {
                awaitCounts(count(all));
                streams.close(Duration.ofSeconds(30));
            }
        } finally {
            RingtailBroker.deleteTree(stateDir);
        }
    }
}
