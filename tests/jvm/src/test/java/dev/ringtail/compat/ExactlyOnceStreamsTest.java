package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
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
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Produced;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Kafka Streams with {@code processing.guarantee=exactly_once_v2}: a word count through a
 * repartition topic and a state store with its changelog. With the record cache off, every input
 * word emits its new count, so exactly-once output is checkable to the record: under
 * read_committed each word's counts are exactly 1, 2, …, n, in order, once each — a duplicate
 * or a replay after a crash would repeat or skip a number.
 */
class ExactlyOnceStreamsTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    static final List<String> VOCABULARY = List.of("kafka", "ringtail", "streams", "exactly", "once", "count", "word");
    /** The word on which {@link #start}'s topology throws, once, after counting it. */
    static final String POISON = "poison";

    /** The app's config: exactly_once_v2, every count update sent downstream. */
    private static Properties props(String bootstrap, String app, Path stateDir) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.String().getClass());
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0); // every update downstream
        // As in StatefulStreamsTest: a replaced or killed member's predecessor is not waited for
        // longer than the broker's minimum session.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        return props;
    }

    /**
     * input → re-key by word (repartition topic) → count (store + changelog) → output. With
     * {@code crashOnce} set, the first {@link #POISON} count throws, after its store update and
     * output were made in the open transaction; {@code delayMs} slows every count down so that a
     * kill finds a transaction open.
     */
    private static Topology topology(String input, String output, AtomicBoolean crashOnce, long delayMs) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
                .selectKey((key, word) -> word)
                .groupByKey()
                .count()
                .toStream()
                .peek((word, count) -> {
                    if (word.equals(POISON) && crashOnce.compareAndSet(true, false)) {
                        throw new IllegalStateException("injected crash on " + word + " = " + count);
                    }
                    if (delayMs > 0) {
                        try {
                            Thread.sleep(delayMs);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                })
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    /** Starts the app; a dead stream thread is replaced, counted in {@code replaced}. */
    private static KafkaStreams start(String app, String input, String output, Path stateDir,
                                      AtomicBoolean crashOnce, AtomicInteger replaced) {
        KafkaStreams streams = new KafkaStreams(topology(input, output, crashOnce, 0),
                props(broker.bootstrap(), app, stateDir));
        streams.setUncaughtExceptionHandler(exception -> {
            replaced.incrementAndGet();
            return StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        streams.start();
        return streams;
    }

    /** The app in its own JVM, to be SIGKILLed: args bootstrap, app, input, output, state dir. */
    public static void main(String[] args) throws Exception {
        Topology topology = topology(args[2], args[3], new AtomicBoolean(false), CHILD_DELAY_MS);
        KafkaStreams streams = new KafkaStreams(topology, props(args[0], args[1], Path.of(args[4])));
        streams.start();
        Thread.sleep(Long.MAX_VALUE);
    }

    /** Per count in the child: 300 words take it ~6 s, so the kill lands mid-stream. */
    static final long CHILD_DELAY_MS = 20;

    private static Process startChild(String app, String input, String output, Path stateDir) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path log = Path.of("target", "ringtail-logs", app + "-child.log");
        return new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", ExactlyOnceStreamsTest.class.getName(),
                broker.bootstrap(), app, input, output, stateDir.toString())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
    }

    private static void produceWords(String topic, List<String> words) throws Exception {
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (String word : words) {
                producer.send(new ProducerRecord<>(topic, null, word));
            }
            producer.flush();
        }
    }

    private static List<String> randomWords(long seed, int count) {
        Random random = new Random(seed);
        List<String> words = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            words.add(VOCABULARY.get(random.nextInt(VOCABULARY.size())));
        }
        return words;
    }

    /**
     * Reads {@code output} under read_committed until every word's latest count is its expected
     * one, and returns every count seen per word, in offset order.
     */
    private static Map<String, List<Long>> awaitCounts(String output, Map<String, Long> expected) {
        Properties props = Clients.consumerProps(broker, null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        Map<String, List<Long>> seen = new HashMap<>();
        Map<String, Long> latest = new HashMap<>();
        try (KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = consumer.partitionsFor(output).stream()
                    .map(p -> new TopicPartition(output, p.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            while (!latest.equals(expected)) {
                assertTrue(System.nanoTime() < deadline, "counts " + latest + ", expected " + expected);
                for (ConsumerRecord<String, Long> record : consumer.poll(Duration.ofMillis(200))) {
                    latest.put(record.key(), record.value());
                    seen.computeIfAbsent(record.key(), k -> new ArrayList<>()).add(record.value());
                }
            }
        }
        return seen;
    }

    /** How many records of {@code output} read_committed sees now. */
    private static int committedRecords(String output) {
        Properties props = Clients.consumerProps(broker, null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = consumer.partitionsFor(output).stream()
                    .map(p -> new TopicPartition(output, p.partition())).toList();
            // Under read_committed the end offset is the LSO; the output holds only data and
            // markers, so this counts committed records plus markers: enough to see progress.
            return consumer.endOffsets(partitions).values().stream().mapToInt(Long::intValue).sum();
        }
    }

    /** Each word's counts must be exactly 1..n: no count lost, repeated or out of order. */
    private static void assertExactlyOnce(Map<String, Long> expected, Map<String, List<Long>> seen) {
        for (Map.Entry<String, Long> entry : expected.entrySet()) {
            List<Long> oneToN = LongStream.rangeClosed(1, entry.getValue()).boxed().toList();
            assertEquals(oneToN, seen.get(entry.getKey()), "counts of " + entry.getKey());
        }
        assertEquals(expected.keySet(), seen.keySet());
    }

    private static Map<String, Long> count(List<String> words) {
        return words.stream().collect(Collectors.groupingBy(w -> w, Collectors.counting()));
    }

    private void runApp(List<String> words, AtomicBoolean crashOnce, AtomicInteger replaced) throws Exception {
        String app = Clients.unique("eos-app");
        String input = app + "-words";
        String output = app + "-counts";
        Clients.createTopic(broker, input, 2);
        Clients.createTopic(broker, output, 2);
        Path stateDir = Files.createTempDirectory("streams-eos");
        try {
            try (KafkaStreams streams = start(app, input, output, stateDir, crashOnce, replaced)) {
                produceWords(input, words);
                Map<String, Long> expected = count(words);
                assertExactlyOnce(expected, awaitCounts(output, expected));
                streams.close(Duration.ofSeconds(30));
            }
        } finally {
            RingtailBroker.deleteTree(stateDir);
        }
    }

    @Test
    void wordCountsAreExactUnderExactlyOnceV2() throws Exception {
        AtomicInteger replaced = new AtomicInteger();
        runApp(randomWords(18, 300), new AtomicBoolean(false), replaced);
        assertEquals(0, replaced.get(), "no stream thread died");
    }

    @Test
    void aStreamThreadCrashingMidTransactionIsReplacedAndCountsStayExact() throws Exception {
        // The thread dies between a store update + output send and their commit: the transaction
        // is aborted, the task's state is restored from the changelog's committed records, the
        // input re-read from the committed offsets, and the counts come out exactly once.
        List<String> words = new ArrayList<>(randomWords(447, 200));
        words.add(100, POISON);
        words.addAll(randomWords(890, 200));
        AtomicBoolean crashOnce = new AtomicBoolean(true);
        AtomicInteger replaced = new AtomicInteger();
        runApp(words, crashOnce, replaced);
        assertEquals(false, crashOnce.get(), "the injected crash happened");
        assertEquals(1, replaced.get(), "one stream thread died and was replaced");
    }

    static final Duration CHILD_START_PATIENCE = Duration.ofSeconds(150);

    @Test
    @Timeout(360) // the child JVM's start, then a takeover after its session times out
    void aStreamsInstanceSigkilledMidStreamIsTakenOverAndCountsStayExact() throws Exception {
        // A Streams JVM is SIGKILLed while it counts (no close, no commit, a transaction open);
        // a new instance on the same state dir takes over: it fences the dead one's producer,
        // wipes and restores the uncommitted local state from the changelog, re-reads from the
        // committed offsets, and the counts come out exactly once.
        String app = Clients.unique("eos-killed");
        String input = app + "-words";
        String output = app + "-counts";
        Clients.createTopic(broker, input, 2);
        Clients.createTopic(broker, output, 2);
        Path stateDir = Files.createTempDirectory("streams-eos-killed");
        try {
            List<String> words = new ArrayList<>(randomWords(98, 300));
            produceWords(input, words);
            Process child = startChild(app, input, output, stateDir);
            try {
                // A fresh JVM loading Streams on a busy 2-core machine has taken ~50 s to start.
                long deadline = System.nanoTime() + CHILD_START_PATIENCE.toNanos();
                while (committedRecords(output) < 20) {
                    if (!child.isAlive()) {
                        throw new AssertionError("the child Streams JVM exited with " + child.exitValue());
                    }
                    assertTrue(System.nanoTime() < deadline, "the child did not count within " + CHILD_START_PATIENCE);
                    Thread.sleep(50);
                }
            } finally {
                child.destroyForcibly(); // SIGKILL
                child.waitFor();
            }
            List<String> more = randomWords(99, 100);
            produceWords(input, more);
            words.addAll(more);
            AtomicInteger replaced = new AtomicInteger();
            try (KafkaStreams streams = start(app, input, output, stateDir, new AtomicBoolean(false), replaced)) {
                Map<String, Long> expected = count(words);
                assertExactlyOnce(expected, awaitCounts(output, expected));
                streams.close(Duration.ofSeconds(30));
            }
            assertEquals(0, replaced.get(), "no stream thread died");
        } finally {
            RingtailBroker.deleteTree(stateDir);
        }
    }
}
