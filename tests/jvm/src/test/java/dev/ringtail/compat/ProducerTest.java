package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** KafkaProducer with its defaults (idempotent, acks=all), every codec, headers, large records. */
class ProducerTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    @Test
    void defaultsAreIdempotentWithAcksAllAndKeepOrderPerPartition() throws Exception {
        String topic = Clients.unique("defaults");
        Clients.createTopic(broker, topic, 3);
        Properties props = Clients.producerProps(broker);
        // The defaults themselves are what is under test: nothing set but the serializers.
        ProducerConfig effective = new ProducerConfig(props);
        assertEquals("-1", effective.getString(ProducerConfig.ACKS_CONFIG), "acks=all (stored as -1)");
        assertTrue(effective.getBoolean(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG));
        int count = 300;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            RecordMetadata last = null;
            for (int i = 0; i < count; i++) {
                last = producer.send(new ProducerRecord<>(topic, "k" + (i % 7), Integer.toString(i))).get();
            }
            assertTrue(last.hasOffset());
        }
        List<ConsumerRecord<String, String>> records = Clients.readAll(broker, topic, count);
        assertEquals(count, records.size(), "each record exactly once");
        // Per key (so per partition) the values come back in the order sent.
        for (int key = 0; key < 7; key++) {
            String k = "k" + key;
            List<Integer> values = records.stream().filter(r -> r.key().equals(k))
                    .map(r -> Integer.parseInt(r.value())).toList();
            assertEquals(values.stream().sorted().toList(), values, "order of " + k);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void everyCodecRoundTrips(String codec) throws Exception {
        String topic = Clients.unique("codec-" + codec);
        Clients.createTopic(broker, topic, 2);
        Properties props = Clients.producerProps(broker);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 20); // batches of many records, so codecs compress
        int count = 500;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, "key-" + i, ("payload " + i + " ").repeat(20)));
            }
            producer.flush();
        }
        List<ConsumerRecord<String, String>> records = Clients.readAll(broker, topic, count);
        assertEquals(count, records.size());
        for (ConsumerRecord<String, String> record : records) {
            int i = Integer.parseInt(record.key().substring("key-".length()));
            assertEquals(("payload " + i + " ").repeat(20), record.value());
        }
    }

    @Test
    void headersRoundTripInOrderWithDuplicatesAndNulls() throws Exception {
        String topic = Clients.unique("headers");
        Clients.createTopic(broker, topic, 1);
        List<Header> sent = List.of(
                new RecordHeader("trace-id", "abc".getBytes(StandardCharsets.UTF_8)),
                new RecordHeader("dup", new byte[] {1}),
                new RecordHeader("dup", new byte[] {2}),
                new RecordHeader("empty", new byte[0]),
                new RecordHeader("null", null));
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            producer.send(new ProducerRecord<>(topic, null, "k", "v", sent)).get();
        }
        ConsumerRecord<String, String> record = Clients.readAll(broker, topic, 1).get(0);
        Header[] got = record.headers().toArray();
        assertEquals(sent.size(), got.length);
        for (int i = 0; i < got.length; i++) {
            assertEquals(sent.get(i).key(), got[i].key());
            assertArrayEquals(sent.get(i).value(), got[i].value(), "header " + i);
        }
    }

    @Test
    void recordsNearMaxMessageBytesPassAndLargerOnesAreRejected() throws Exception {
        String topic = Clients.unique("large");
        int maxMessageBytes = 256 * 1024;
        Clients.createTopic(broker, topic, 1, Map.of("max.message.bytes", Integer.toString(maxMessageBytes)));
        Properties props = Clients.producerProps(broker);
        props.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 4 * 1024 * 1024); // let the broker decide
        byte[] fill = new byte[maxMessageBytes - 1024]; // batch and record overheads are < 1 KiB
        Arrays.fill(fill, (byte) 'x');
        String nearMax = new String(fill, StandardCharsets.US_ASCII);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.send(new ProducerRecord<>(topic, "near", nearMax)).get();
            String tooLarge = nearMax + nearMax;
            ExecutionException error = assertThrows(ExecutionException.class,
                    () -> producer.send(new ProducerRecord<>(topic, "too-large", tooLarge)).get());
            assertInstanceOf(RecordTooLargeException.class, error.getCause());
        }
        ConsumerRecord<String, String> record = Clients.readAll(broker, topic, 1).get(0);
        assertEquals("near", record.key());
        assertEquals(nearMax, record.value());
    }

    @Test
    void aOneMegabyteRecordUnderTheDefaultLimitRoundTrips() throws Exception {
        // Kafka's default max.message.bytes is 1048588; the producer's max.request.size 1 MiB.
        String topic = Clients.unique("one-mb");
        Clients.createTopic(broker, topic, 1);
        String value = "y".repeat(1_000_000);
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            producer.send(new ProducerRecord<>(topic, "big", value)).get();
        }
        assertEquals(value, Clients.readAll(broker, topic, 1).get(0).value());
    }
}
