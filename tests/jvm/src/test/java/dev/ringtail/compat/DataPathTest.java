package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The data-path APIs of Kafka 4.x with the Java client and tools: DeleteRecords (AdminClient and
 * kafka-delete-records), ListOffsets max-timestamp, topic ids in kafka-topics --describe, and a
 * consumer at the newest Fetch version (topic ids) validating its position after a seek.
 */
class DataPathTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
    static final String DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand";

    @Test
    void adminDeleteRecordsMovesTheStartForConsumersAndListOffsets() throws Exception {
        String topic = Clients.unique("jvm-delete");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 30);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(broker)) {
            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(12)))
                    .lowWatermarks().get(tp).get().lowWatermark();
            assertEquals(12, low);
            ListOffsetsResultInfo earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest()))
                    .partitionResult(tp).get();
            assertEquals(12, earliest.offset());
            ExecutionException beyond = assertThrows(ExecutionException.class, () -> admin
                    .deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(31))).lowWatermarks().get(tp).get());
            assertInstanceOf(OffsetOutOfRangeException.class, beyond.getCause());
        }
        List<ConsumerRecord<String, String>> records = Clients.readAll(broker, topic, 18);
        assertEquals(12, records.get(0).offset(), "the consumer starts at the new start offset");
        assertEquals(18, records.size());
    }

    @Test
    void kafkaDeleteRecordsTool() throws Exception {
        String topic = Clients.unique("cli-delete");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 10);
        Path json = Files.createTempFile("delete-records", ".json");
        try {
            Files.writeString(json, "{\"version\":1,\"partitions\":[{\"topic\":\"" + topic
                    + "\",\"partition\":0,\"offset\":7}]}");
            String out = Tools.run(DELETE_RECORDS, null, "--bootstrap-server", broker.bootstrap(),
                    "--offset-json-file", json.toString()).assertOk().stdout();
            assertTrue(out.contains("low_watermark: 7"), out);
        } finally {
            Files.deleteIfExists(json);
        }
    }

    @Test
    void listOffsetsMaxTimestampFindsTheNewestRecord() throws Exception {
        String topic = Clients.unique("jvm-maxts");
        Clients.createTopic(broker, topic, 1);
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (long timestamp : new long[] {5_000, 9_000, 7_000}) {
                producer.send(new ProducerRecord<>(topic, 0, timestamp, "k", "v" + timestamp)).get();
            }
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(broker)) {
            ListOffsetsResultInfo newest = admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp()))
                    .partitionResult(tp).get();
            assertEquals(1, newest.offset());
            assertEquals(9_000, newest.timestamp());
        }
    }

    @Test
    void kafkaTopicsDescribeShowsThePersistedTopicId() throws Exception {
        String topic = Clients.unique("cli-topic-id");
        Clients.createTopic(broker, topic, 1);
        String id;
        try (Admin admin = Clients.admin(broker)) {
            id = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId().toString();
        }
        String described = Tools.run(TOPICS, null, "--bootstrap-server", broker.bootstrap(), "--describe",
                "--topic", topic).assertOk().stdout();
        assertTrue(described.contains("TopicId: " + id), described);
    }

    @Test
    void consumerFetchesByTopicIdAndValidatesItsPositionAfterASeek() throws Exception {
        // Fetch v17 names the topic by id; a seek to a committed-style position with a leader
        // epoch makes the consumer validate it with OffsetForLeaderEpoch before fetching.
        String topic = Clients.unique("jvm-fetch-v17");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 20);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, null)) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, new org.apache.kafka.clients.consumer.OffsetAndMetadata(
                    5, java.util.Optional.of(0), ""));
            List<ConsumerRecord<String, String>> records = Clients.pollAtLeast(consumer, 15);
            assertEquals(5, records.get(0).offset());
            assertEquals(java.util.Optional.of(0), records.get(0).leaderEpoch());
            assertEquals(20, consumer.position(tp, Duration.ofSeconds(10)));
        }
    }
}
