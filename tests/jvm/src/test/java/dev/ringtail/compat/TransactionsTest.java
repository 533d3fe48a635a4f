package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.protocol.Errors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java transactional producer (KIP-98, KIP-447) against the coordinator and the read side:
 * commit and abort seen through read_committed and read_uncommitted consumers,
 * consume-transform-produce with sendOffsetsToTransaction, zombie fencing, the timeout abort and a
 * broker SIGKILL in the middle of transactions.
 */
class TransactionsTest {
    /** The broker's transaction.max.timeout.ms: small, so a test can ask for more and be refused. */
    static final int MAX_TIMEOUT_MS = 30_000;

    @RegisterExtension
    static final RingtailBroker broker =
            new RingtailBroker("--transaction-max-timeout-ms", Integer.toString(MAX_TIMEOUT_MS));

    private static KafkaProducer<String, String> txnProducer(String transactionalId, int timeoutMs) {
        Properties props = Clients.producerProps(broker);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, timeoutMs);
        return new KafkaProducer<>(props);
    }

    private static KafkaProducer<String, String> initialized(String transactionalId) {
        KafkaProducer<String, String> producer = txnProducer(transactionalId, 20_000);
        producer.initTransactions();
        return producer;
    }

    /** Sends {@code prefix-i} for i in [0, count) round-robin over partitions 0 and 1, then flushes. */
    private static void sendAll(KafkaProducer<String, String> producer, String topic, String prefix, int count) {
        for (int i = 0; i < count; i++) {
            producer.send(new ProducerRecord<>(topic, i % 2, "k", prefix + "-" + i));
        }
        producer.flush();
    }

    private static List<String> values(String prefix, int count) {
        return IntStream.range(0, count).mapToObj(i -> prefix + "-" + i).toList();
    }

    /**
     * Every value of {@code topic} under {@code isolation} ("read_committed" or
     * "read_uncommitted"), read until each partition's position reaches the end the consumer
     * itself sees (the last stable offset under read_committed).
     */
    static List<String> readAll(String topic, String isolation) {
        Properties props = Clients.consumerProps(broker, null);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(info -> new TopicPartition(topic, info.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            List<String> values = new ArrayList<>();
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
                assertTrue(System.nanoTime() < deadline, topic + " not read to " + ends + " under " + isolation);
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    values.add(record.value());
                }
            }
            return values;
        }
    }

    private static Stream<Throwable> causes(Throwable error) {
        return Stream.iterate(error, e -> e != null, Throwable::getCause);
    }

    private static List<String> sorted(List<String> values) {
        return values.stream().sorted().toList();
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    @Test
    void readCommittedSeesCommittedRecordsOnlyAndReadUncommittedSeesAbortedOnesToo() throws Exception {
        // A commit, an abort and a commit: the aborted records are in the log (read_uncommitted)
        // and filtered out by the aborted-transaction index (read_committed).
        String topic = Clients.unique("txn");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> producer = initialized(Clients.unique("commit-abort"))) {
            producer.beginTransaction();
            sendAll(producer, topic, "committed", 10);
            producer.commitTransaction();
            producer.beginTransaction();
            sendAll(producer, topic, "aborted", 10);
            producer.abortTransaction();
            producer.beginTransaction();
            sendAll(producer, topic, "last", 3);
            producer.commitTransaction();
        }
        List<String> committed = concat(values("committed", 10), values("last", 3));
        assertEquals(sorted(committed), sorted(readAll(topic, "read_committed")));
        assertEquals(sorted(concat(committed, values("aborted", 10))), sorted(readAll(topic, "read_uncommitted")));
    }

    @Test
    void openTransactionHoldsReadCommittedBackUntilItCommits() throws Exception {
        // While a transaction is open, read_committed stops at its first record (the LSO);
        // read_uncommitted reads past it; the commit releases it.
        String topic = Clients.unique("txn-lso");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> producer = initialized(Clients.unique("lso"))) {
            producer.beginTransaction();
            sendAll(producer, topic, "open", 4);
            assertEquals(List.of(), readAll(topic, "read_committed"));
            assertEquals(sorted(values("open", 4)), sorted(readAll(topic, "read_uncommitted")));
            producer.commitTransaction();
        }
        assertEquals(sorted(values("open", 4)), sorted(readAll(topic, "read_committed")));
    }

    /** The group's committed offsets as Admin sees them (an absent partition: nothing committed). */
    private static Map<TopicPartition, Long> groupOffsets(String group) throws Exception {
        try (Admin admin = Clients.admin(broker)) {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Map<TopicPartition, Long> plain = new HashMap<>();
            offsets.forEach((tp, offset) -> {
                if (offset != null) {
                    plain.put(tp, offset.offset());
                }
            });
            return plain;
        }
    }

    /** Polls {@code count} records, sends each upper-cased to {@code output} in the transaction. */
    private static Map<TopicPartition, OffsetAndMetadata> transform(
            KafkaConsumer<String, String> consumer, KafkaProducer<String, String> producer, String output, int count) {
        Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
        for (ConsumerRecord<String, String> record : Clients.pollAtLeast(consumer, count)) {
            producer.send(new ProducerRecord<>(output, record.key(), record.value().toUpperCase()));
            next.put(new TopicPartition(record.topic(), record.partition()), new OffsetAndMetadata(record.offset() + 1));
        }
        return next;
    }

    @Test
    void consumeTransformProduceCommitsTheGroupsOffsetsOnlyWithTheTransaction() throws Exception {
        // KIP-447: a first pass is aborted, so neither its output nor its offsets count; the group
        // re-reads from its (absent) committed offsets and a second pass commits both at once.
        String input = Clients.unique("ctp-in");
        String output = Clients.unique("ctp-out");
        String group = Clients.unique("ctp-group");
        Clients.createTopic(broker, input, 2);
        Clients.createTopic(broker, output, 2);
        int count = 40;
        Clients.produce(broker, input, count);
        Properties props = Clients.consumerProps(broker, group);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
             KafkaProducer<String, String> producer = initialized(Clients.unique("ctp"))) {
            consumer.subscribe(List.of(input));
            producer.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = transform(consumer, producer, output, count);
            producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            producer.flush();
            assertEquals(Map.of(), groupOffsets(group), "offsets visible before the commit");
            producer.abortTransaction();
            assertEquals(Map.of(), groupOffsets(group), "offsets of an aborted transaction");

            // Rewind to the committed position (none: the beginning), as an application does
            // after an abort, and process everything again.
            consumer.assignment().forEach(tp -> consumer.seek(tp, 0));
            producer.beginTransaction();
            offsets = transform(consumer, producer, output, count);
            producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            producer.flush();
            assertEquals(Map.of(), groupOffsets(group), "offsets visible before the commit");
            producer.commitTransaction();
            Map<TopicPartition, Long> expected = new HashMap<>();
            offsets.forEach((tp, offset) -> expected.put(tp, offset.offset()));
            assertEquals(expected, groupOffsets(group));
            assertEquals(count, expected.values().stream().mapToLong(Long::longValue).sum());
        }
        List<String> upper = IntStream.range(0, count).mapToObj(i -> "VALUE-" + i).sorted().toList();
        assertEquals(upper, sorted(readAll(output, "read_committed")));
        assertEquals(2 * count, readAll(output, "read_uncommitted").size());
    }

    @Test
    void aSecondProducerWithTheSameTransactionalIdFencesTheFirst() throws Exception {
        // The zombie's open transaction is aborted by the new producer's init, and every later
        // call of the zombie fails with a fencing error; the new producer commits normally.
        String topic = Clients.unique("txn-zombie");
        Clients.createTopic(broker, topic, 2);
        String id = Clients.unique("zombie");
        try (KafkaProducer<String, String> zombie = initialized(id)) {
            zombie.beginTransaction();
            sendAll(zombie, topic, "zombie", 6);
            try (KafkaProducer<String, String> successor = initialized(id)) {
                KafkaException fenced = assertThrows(KafkaException.class, zombie::commitTransaction);
                assertTrue(fenced instanceof ProducerFencedException || fenced instanceof InvalidProducerEpochException,
                        "expected a fencing error, got " + fenced);
                successor.beginTransaction();
                sendAll(successor, topic, "successor", 6);
                successor.commitTransaction();
            }
        }
        assertEquals(sorted(values("successor", 6)), sorted(readAll(topic, "read_committed")));
        assertEquals(12, readAll(topic, "read_uncommitted").size());
    }

    @Test
    void aTimeoutAbortsTheTransactionAndFencesItsProducer() throws Exception {
        // A transaction left open past transaction.timeout.ms is aborted by the coordinator with a
        // bumped epoch: its records never become visible to read_committed and its producer's
        // commit is fenced. A timeout above the broker's maximum is refused at init.
        try (KafkaProducer<String, String> tooLong = txnProducer(Clients.unique("too-long"), MAX_TIMEOUT_MS + 1)) {
            // The client wraps INVALID_TRANSACTION_TIMEOUT in a fatal KafkaException whose
            // message is the error code's own text.
            KafkaException refused = assertThrows(KafkaException.class, tooLong::initTransactions);
            assertTrue(causes(refused).anyMatch(e -> String.valueOf(e.getMessage())
                            .contains(Errors.INVALID_TRANSACTION_TIMEOUT.message())),
                    "expected INVALID_TRANSACTION_TIMEOUT, got " + refused);
        }
        String topic = Clients.unique("txn-timeout");
        Clients.createTopic(broker, topic, 2);
        String id = Clients.unique("timeout");
        try (KafkaProducer<String, String> producer = txnProducer(id, 1_000);
             Admin admin = Clients.admin(broker)) {
            producer.initTransactions();
            producer.beginTransaction();
            sendAll(producer, topic, "timed-out", 4);
            Clients.await("the coordinator aborts " + id, () -> {
                try {
                    TransactionDescription description =
                            admin.describeTransactions(List.of(id)).description(id).get();
                    return description.state() == TransactionState.COMPLETE_ABORT;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            KafkaException fenced = assertThrows(KafkaException.class, producer::commitTransaction);
            assertTrue(fenced instanceof ProducerFencedException || fenced instanceof InvalidProducerEpochException,
                    "expected a fencing error, got " + fenced);
        }
        assertEquals(List.of(), readAll(topic, "read_committed"));
        assertEquals(sorted(values("timed-out", 4)), sorted(readAll(topic, "read_uncommitted")));
    }

    @Test
    void aBrokerSigkillInTheMiddleOfTransactionsLosesNoCommitAndShowsNoAbort() throws Exception {
        // The broker is SIGKILLed with a transaction open twice: the first one is committed after
        // the restart, the second aborted; then a fresh producer with the same id commits a third.
        // read_committed sees exactly the first and third, read_uncommitted all three.
        String topic = Clients.unique("txn-kill");
        Clients.createTopic(broker, topic, 2);
        String id = Clients.unique("kill");
        try (KafkaProducer<String, String> producer = initialized(id)) {
            producer.beginTransaction();
            sendAll(producer, topic, "continued", 8);
            broker.killAndRestart();
            producer.commitTransaction();

            producer.beginTransaction();
            sendAll(producer, topic, "aborted", 8);
            broker.killAndRestart();
            producer.abortTransaction();
        }
        try (KafkaProducer<String, String> fresh = initialized(id)) {
            fresh.beginTransaction();
            sendAll(fresh, topic, "fresh", 4);
            fresh.commitTransaction();
        }
        List<String> committed = concat(values("continued", 8), values("fresh", 4));
        assertEquals(sorted(committed), sorted(readAll(topic, "read_committed")));
        assertEquals(sorted(concat(committed, values("aborted", 8))), sorted(readAll(topic, "read_uncommitted")));
    }
}
