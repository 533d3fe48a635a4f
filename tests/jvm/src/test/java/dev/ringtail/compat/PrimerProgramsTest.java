package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.KStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The two programs of the primer Ringtail was designed from, unchanged in substance: a batch
 * consumer and the Kafka Streams filter/upper-case application. Topic and group names are the
 * primer's; each test has the broker to itself (a fresh one per class, and the two tests use
 * different topics).
 */
class PrimerProgramsTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    /** The primer's batch consumer: subscribe, poll in a loop, process each record. */
    static List<String> batchConsumer(String bootstrap, int expected) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, "batch-processing-group");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<String> processed = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of("batch-data-topic"));
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            // The primer loops forever; the test stops once it saw what it loaded.
            while (processed.size() < expected && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(100));
                for (ConsumerRecord<String, String> record : records) {
                    processed.add(record.value()); // "process": here, keep it
                }
            }
            consumer.commitSync();
        }
        return processed;
    }

    @Test
    void batchConsumerProcessesEveryRecordOnceAndResumesAfterACommit() throws Exception {
        Clients.createTopic(broker, "batch-data-topic", 3);
        List<String> lines = new ArrayList<>();
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (int i = 0; i < 90; i++) {
                lines.add("line " + i);
                producer.send(new ProducerRecord<>("batch-data-topic", "line " + i));
            }
            producer.flush();
        }
        List<String> first = batchConsumer(broker.bootstrap(), 90);
        assertEquals(lines.stream().sorted().toList(), first.stream().sorted().toList());
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            producer.send(new ProducerRecord<>("batch-data-topic", "late line")).get();
        }
        // Run again: only what arrived since the commit.
        assertEquals(List.of("late line"), batchConsumer(broker.bootstrap(), 1));
    }

    @Test
    void streamsAppFiltersAndUpperCasesIntoOutputTopic() throws Exception {
        Clients.createTopic(broker, "stream-data-topic", 1);
        Clients.createTopic(broker, "output-topic", 1);
        Path stateDir = Files.createTempDirectory("streams-primer");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "stream-processing-app");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100); // the test waits on output, not commits

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> source = builder.stream("stream-data-topic");
        source.filter((key, value) -> value.contains("important-data"))
                .mapValues(value -> value.toUpperCase())
                .to("output-topic");

        List<String> input = List.of("noise 1", "some important-data here", "noise 2",
                "important-data: the second", "Important-Data with the wrong case", "last important-data");
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (String value : input) {
                producer.send(new ProducerRecord<>("stream-data-topic", value));
            }
            producer.flush();
        }
        List<String> expected = List.of("SOME IMPORTANT-DATA HERE", "IMPORTANT-DATA: THE SECOND",
                "LAST IMPORTANT-DATA");
        try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
            streams.start();
            List<String> output = Clients.readAll(broker, "output-topic", expected.size()).stream()
                    .map(ConsumerRecord::value).toList();
            assertEquals(expected, output);
            streams.close(Duration.ofSeconds(30));
        } finally {
            RingtailBroker.deleteTree(stateDir);
        }
        // Exactly that, nothing more: the end offset is the count.
        try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, null)) {
            var tp = new org.apache.kafka.common.TopicPartition("output-topic", 0);
            assertEquals(expected.size(), consumer.endOffsets(List.of(tp)).get(tp));
        }
    }
}
