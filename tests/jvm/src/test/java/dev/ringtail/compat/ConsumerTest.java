package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** KafkaConsumer: both group protocols, every classic assignor, offsets, seeks, pause/resume. */
class ConsumerTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    /**
     * Two members of one group share a 4-partition topic: every partition is owned by exactly one
     * of them once the group settles, and together they read every record exactly once.
     */
    private static void twoMembersSplitTheTopic(Properties base) throws Exception {
        String topic = Clients.unique("split");
        Clients.createTopic(broker, topic, 4);
        int count = 400;
        Clients.produce(broker, topic, count);
        try (KafkaConsumer<String, String> a = new KafkaConsumer<>(base);
             KafkaConsumer<String, String> b = new KafkaConsumer<>(base)) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            Map<String, Integer> seen = new HashMap<>();
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            // Poll both until everything is read and both own partitions (the group settled).
            while (seen.size() < count || a.assignment().isEmpty() || b.assignment().isEmpty()) {
                assertTrue(System.nanoTime() < deadline, "group did not settle: " + seen.size()
                        + " records, assignments " + a.assignment() + " / " + b.assignment());
                for (KafkaConsumer<String, String> c : List.of(a, b)) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                        seen.merge(r.value(), 1, Integer::sum);
                    }
                }
            }
            assertEquals(count, seen.size());
            // A record read twice is allowed only across a rebalance before a commit; with
            // auto-commit that can happen, so count distinct values, and check the split.
            Set<TopicPartition> union = new HashSet<>(a.assignment());
            union.addAll(b.assignment());
            assertEquals(4, union.size(), "every partition assigned");
            assertEquals(4, a.assignment().size() + b.assignment().size(), "no partition assigned twice");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "org.apache.kafka.clients.consumer.RangeAssignor",
        "org.apache.kafka.clients.consumer.RoundRobinAssignor",
        "org.apache.kafka.clients.consumer.StickyAssignor",
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"})
    void classicGroupWithEachAssignor(String assignor) throws Exception {
        Properties props = Clients.consumerProps(broker, Clients.unique("classic"));
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        twoMembersSplitTheTopic(props);
    }

    @Test
    void consumerGroupProtocolKip848() throws Exception {
        Properties props = Clients.consumerProps(broker, Clients.unique("kip848"));
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        twoMembersSplitTheTopic(props);
    }

    @Test
    void commitSyncAndCommitAsyncAreWhatCommittedReturns() throws Exception {
        String topic = Clients.unique("commit");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 20);
        String group = Clients.unique("commit-group");
        TopicPartition tp = new TopicPartition(topic, 0);
        Properties props = Clients.consumerProps(broker, group);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(List.of(topic));
            Clients.pollAtLeast(consumer, 20);
            consumer.commitSync(Map.of(tp, new OffsetAndMetadata(7, "sync")));
            assertEquals(new OffsetAndMetadata(7, "sync"), consumer.committed(Set.of(tp)).get(tp));
            CountDownLatch done = new CountDownLatch(1);
            AtomicReference<Exception> failure = new AtomicReference<>();
            consumer.commitAsync(Map.of(tp, new OffsetAndMetadata(12, "async")), (offsets, error) -> {
                failure.set(error);
                done.countDown();
            });
            long deadline = System.nanoTime() + Clients.PATIENCE.toNanos();
            while (done.getCount() > 0 && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(50)); // async callbacks run inside poll
            }
            assertTrue(done.await(0, TimeUnit.SECONDS), "commitAsync callback not called");
            assertEquals(null, failure.get());
            assertEquals(12, consumer.committed(Set.of(tp)).get(tp).offset());
            consumer.commitSync(); // the consumed position: 20
            assertEquals(20, consumer.committed(Set.of(tp)).get(tp).offset());
        }
        // A new member of the group resumes at the committed offset.
        Clients.produce(broker, topic, 5);
        try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, group)) {
            consumer.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> records = Clients.pollAtLeast(consumer, 5);
            assertEquals(20, records.get(0).offset());
        }
    }

    @Test
    void seekSeekToBeginningEndAndOffsetsForTimes() throws Exception {
        String topic = Clients.unique("seek");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = System.currentTimeMillis() - 100_000;
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (int i = 0; i < 10; i++) {
                // Explicit create times 1 s apart, so offsetsForTimes has something to find.
                producer.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k", "v" + i));
            }
            producer.flush();
        }
        try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, null)) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, 4);
            assertEquals("v4", Clients.pollAtLeast(consumer, 1).get(0).value());
            consumer.seekToEnd(List.of(tp));
            assertEquals(10, consumer.position(tp));
            consumer.seekToBeginning(List.of(tp));
            assertEquals(0, consumer.position(tp));
            Map<TopicPartition, OffsetAndTimestamp> found =
                    consumer.offsetsForTimes(Map.of(tp, base + 6500));
            assertEquals(7, found.get(tp).offset(), "first record at or after the time");
            assertEquals(base + 7000, found.get(tp).timestamp());
            assertEquals(null, consumer.offsetsForTimes(Map.of(tp, base + 60_000)).get(tp),
                    "no record that late");
            assertEquals(Map.of(tp, 0L), consumer.beginningOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 10L), consumer.endOffsets(List.of(tp)));
        }
    }

    @Test
    void pauseStopsFetchingAndResumeContinues() throws Exception {
        String topic = Clients.unique("pause");
        Clients.createTopic(broker, topic, 2);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(topic, i % 2, "k", "v" + i));
            }
            producer.flush();
        }
        try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, null)) {
            consumer.assign(List.of(p0, p1));
            consumer.seekToBeginning(List.of(p0, p1));
            consumer.pause(List.of(p1));
            assertEquals(Set.of(p1), consumer.paused());
            List<ConsumerRecord<String, String>> first = Clients.pollAtLeast(consumer, 5);
            // Everything of p0 and nothing of p1 while paused (a few extra polls to be sure).
            for (int i = 0; i < 5; i++) {
                consumer.poll(Duration.ofMillis(100)).forEach(first::add);
            }
            assertTrue(first.stream().allMatch(r -> r.partition() == 0), "paused partition was fetched");
            assertEquals(5, first.size());
            consumer.resume(List.of(p1));
            List<ConsumerRecord<String, String>> rest = Clients.pollAtLeast(consumer, 5);
            assertTrue(rest.stream().allMatch(r -> r.partition() == 1));
        }
    }

    @Test
    void rebalanceListenerCommitsInOnPartitionsRevoked() throws Exception {
        // The primer's pattern: process, and commit what was processed when partitions are taken
        // away, so the next owner resumes exactly there.
        String topic = Clients.unique("revoke");
        Clients.createTopic(broker, topic, 2);
        Clients.produce(broker, topic, 100);
        String group = Clients.unique("revoke-group");
        Properties props = Clients.consumerProps(broker, group);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        Map<TopicPartition, OffsetAndMetadata> processed = new ConcurrentHashMap<>();
        List<Map<TopicPartition, OffsetAndMetadata>> committedOnRevoke = new ArrayList<>();
        try (KafkaConsumer<String, String> first = new KafkaConsumer<>(props)) {
            first.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    Map<TopicPartition, OffsetAndMetadata> mine = new HashMap<>();
                    for (TopicPartition tp : partitions) {
                        if (processed.containsKey(tp)) {
                            mine.put(tp, processed.get(tp));
                        }
                    }
                    first.commitSync(mine);
                    committedOnRevoke.add(mine);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}
            });
            for (ConsumerRecord<String, String> r : Clients.pollAtLeast(first, 100)) {
                processed.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
            }
        } // close() leaves the group, which revokes: the listener commits
        assertEquals(1, committedOnRevoke.size());
        assertEquals(processed, committedOnRevoke.get(0));
        Clients.produce(broker, topic, 10);
        try (KafkaConsumer<String, String> second = Clients.consumer(broker, group)) {
            second.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> records = Clients.pollAtLeast(second, 10);
            for (int i = 0; i < 10; i++) {
                second.poll(Duration.ofMillis(100)).forEach(records::add);
            }
            assertEquals(10, records.size(), "only the records produced after the commit");
            ConsumerRecords<String, String> none = second.poll(Duration.ofMillis(100));
            assertTrue(none.isEmpty());
            assertNotNull(second.committed(Set.of(new TopicPartition(topic, 0))));
            assertFalse(records.stream().anyMatch(r -> r.offset() < processed.get(
                    new TopicPartition(topic, r.partition())).offset()));
        }
    }
}
