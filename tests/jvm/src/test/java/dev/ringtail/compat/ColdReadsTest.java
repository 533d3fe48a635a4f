package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java client reads a backlog that was fsynced and dropped from the page cache, so the broker
 * serves it through its cold path (issue 13): every record once, in offset order, with the value it
 * was produced with, the client checking each batch's CRC-32C ({@code check.crcs}, on by default).
 * /metrics shows the cold path ran, so a data dir the kernel cannot evict fails the test instead of
 * passing it on warm data.
 */
class ColdReadsTest {
    static final int METRICS_PORT = freePort();
    static final HttpClient HTTP = HttpClient.newHttpClient();

    @RegisterExtension
    static final RingtailBroker broker =
            new RingtailBroker("--metrics-listen", "127.0.0.1:" + METRICS_PORT);

    /** Value sizes (bytes), cycled: uneven, so batches straddle the 4 MiB cold chunks and 8 MiB segments. */
    static final int[] VALUE_BYTES = {101, 1_993, 4_099, 7_001, 12_007, 26_003};

    private static int freePort() {
        try {
            return RingtailBroker.freePort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Record i's value: its number, then hex that does not repeat within a page. */
    static String value(int i) throws Exception {
        StringBuilder value = new StringBuilder("record " + i + ":");
        int size = VALUE_BYTES[i % VALUE_BYTES.length];
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        for (int block = 0; value.length() < size; block++) {
            value.append(HexFormat.of().formatHex(sha.digest((i + "/" + block).getBytes(StandardCharsets.UTF_8))));
        }
        return value.substring(0, size);
    }

    /** fdatasync and drop every file of the data dir from the page cache (GNU dd's nocache flag). */
    static void dropFromPageCache(Path dataDir) throws Exception {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dataDir)) {
            files = walk.filter(Files::isRegularFile).toList();
        }
        for (Path file : files) {
            Process dd = new ProcessBuilder("dd", "of=" + file, "oflag=nocache", "conv=notrunc,fdatasync",
                    "count=0", "status=none").redirectErrorStream(true).start();
            String said = new String(dd.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            boolean exited = dd.waitFor(30, TimeUnit.SECONDS);
            if (!exited) {
                dd.destroyForcibly();
            }
            assertTrue(exited && dd.exitValue() == 0, "dd on " + file + ": " + said);
        }
    }

    /** Segment files of each of the topic's partition directories ({@code <topic>-<partition>}). */
    static Map<String, Long> segmentsPerPartition(Path dataDir, String topic) throws IOException {
        Map<String, Long> segments = new HashMap<>();
        try (Stream<Path> dirs = Files.list(dataDir)) {
            for (Path dir : dirs.filter(d -> d.getFileName().toString().startsWith(topic + "-")).toList()) {
                try (Stream<Path> files = Files.list(dir)) {
                    segments.put(dir.getFileName().toString(),
                            files.filter(f -> f.toString().endsWith(".log")).count());
                }
            }
        }
        return segments;
    }

    static double coldBytes() throws Exception {
        HttpResponse<String> response = HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + METRICS_PORT + "/metrics"))
                        .timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, response.statusCode());
        for (String line : response.body().split("\n")) {
            if (line.startsWith("ringtail_fetch_cold_bytes_total ")) {
                return Double.parseDouble(line.substring(line.indexOf(' ') + 1));
            }
        }
        throw new AssertionError("/metrics has no ringtail_fetch_cold_bytes_total");
    }

    @Test
    void aBacklogDroppedFromThePageCacheIsReadRecordForRecord() throws Exception {
        String topic = Clients.unique("cold");
        int partitions = 3;
        int count = 7_000;
        Clients.createTopic(broker, topic, partitions);
        Properties props = Clients.producerProps(broker);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, "lz4");
        props.put(ProducerConfig.BATCH_SIZE_CONFIG, 262_144);
        props.put(ProducerConfig.LINGER_MS_CONFIG, 20);
        Map<TopicPartition, Map<Long, Integer>> produced = new HashMap<>();
        long valueBytes = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String value = value(i);
                valueBytes += value.length();
                acks.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 30), value)));
            }
            for (int i = 0; i < count; i++) {
                RecordMetadata ack = acks.get(i).get(60, TimeUnit.SECONDS);
                produced.computeIfAbsent(new TopicPartition(topic, ack.partition()), p -> new HashMap<>())
                        .put(ack.offset(), i);
            }
        }

        // Every partition rolled (8 MiB segments in these tests), so reads cross segment ends.
        Map<String, Long> segments = segmentsPerPartition(broker.dataDir(), topic);
        assertEquals(partitions, segments.size(), "partition directories: " + segments);
        assertTrue(segments.values().stream().allMatch(n -> n >= 2), "a partition did not roll: " + segments);
        dropFromPageCache(broker.dataDir());
        double coldBefore = coldBytes();

        Map<TopicPartition, Long> next = new HashMap<>();
        List<ConsumerRecord<String, String>> records = Clients.readAll(broker, topic, count);
        assertEquals(count, records.size());
        for (ConsumerRecord<String, String> record : records) {
            TopicPartition partition = new TopicPartition(topic, record.partition());
            long expectedOffset = next.getOrDefault(partition, 0L);
            assertEquals(expectedOffset, record.offset(), "offsets of " + partition);
            next.put(partition, expectedOffset + 1);
            Integer i = produced.getOrDefault(partition, Map.of()).get(record.offset());
            assertNotNull(i, partition + " offset " + record.offset() + " was never acknowledged");
            assertEquals(value(i), record.value(), partition + " offset " + record.offset());
        }

        // At least a quarter of the values' bytes must have come the cold way (lz4 leaves their
        // hex about as large; the margin is for ranges a neighbour's read made resident again).
        double cold = coldBytes() - coldBefore;
        assertTrue(cold >= valueBytes / 4.0,
                cold + " bytes read cold for " + valueBytes + " bytes of values: was the backlog dropped?");
    }
}
