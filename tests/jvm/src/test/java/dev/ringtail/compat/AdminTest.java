package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * AdminClient against Ringtail. What Ringtail does not implement (see docs/COMPATIBILITY.md) must
 * fail fast with UnsupportedVersionException: the broker does not list the API in ApiVersions,
 * so the client refuses before sending; never a hang or a dropped connection.
 */
class AdminTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    @Test
    void createListDescribeDeleteTopicsAndCreatePartitions() throws Exception {
        String topic = Clients.unique("admin-topic");
        try (Admin admin = Clients.admin(broker)) {
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000")))).all().get();
            assertTrue(admin.listTopics().names().get().contains(topic));
            TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            assertEquals(3, description.partitions().size());
            assertFalse(description.isInternal());
            description.partitions().forEach(p -> assertEquals(1, p.replicas().size()));

            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get();
            Clients.await("5 partitions", () -> partitionCount(admin, topic) == 5);

            admin.deleteTopics(List.of(topic)).all().get();
            Clients.await("topic gone", () -> !names(admin).contains(topic));
            ExecutionException error = assertThrows(ExecutionException.class,
                    () -> admin.describeTopics(List.of(topic)).allTopicNames().get());
            assertInstanceOf(UnknownTopicOrPartitionException.class, error.getCause());
        }
    }

    private static int partitionCount(Admin admin, String topic) {
        try {
            return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    private static Set<String> names(Admin admin) {
        try {
            return admin.listTopics().names().get();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void describeConfigsAndIncrementalAlterConfigs() throws Exception {
        String topic = Clients.unique("admin-config");
        Clients.createTopic(broker, topic, 1);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Clients.admin(broker)) {
            Config before = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            assertEquals("delete", before.get("cleanup.policy").value());
            admin.incrementalAlterConfigs(Map.of(resource, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "123456"), AlterConfigOp.OpType.SET))))
                    .all().get();
            Config after = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            assertEquals("123456", after.get("retention.ms").value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, after.get("retention.ms").source());
            admin.incrementalAlterConfigs(Map.of(resource, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE))))
                    .all().get();
            Config reset = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            assertFalse("123456".equals(reset.get("retention.ms").value()));
        }
    }

    @Test
    void listOffsetsEarliestLatestAndTimestamp() throws Exception {
        String topic = Clients.unique("admin-offsets");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = System.currentTimeMillis() - 100_000;
        try (KafkaProducer<String, String> producer = Clients.producer(broker)) {
            for (int i = 0; i < 10; i++) {
                // The newest timestamp is at offset 5, not at the end: max-timestamp must find it.
                long ts = i == 5 ? base + 50_000 : base + i * 1000L;
                producer.send(new ProducerRecord<>(topic, 0, ts, "k", "v" + i));
            }
            producer.flush();
        }
        try (Admin admin = Clients.admin(broker)) {
            assertEquals(0, offset(admin, tp, OffsetSpec.earliest()).offset());
            assertEquals(10, offset(admin, tp, OffsetSpec.latest()).offset());
            ListOffsetsResultInfo byTime = offset(admin, tp, OffsetSpec.forTimestamp(base + 6500));
            assertEquals(5, byTime.offset(), "first record with timestamp >= the one asked");
            // KIP-734 (ListOffsets v7+): the record with the largest timestamp, not the last one.
            ListOffsetsResultInfo newest = offset(admin, tp, OffsetSpec.maxTimestamp());
            assertEquals(5, newest.offset());
            assertEquals(base + 50_000, newest.timestamp());
        }
    }

    private static ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
    }

    @Test
    void describeClusterNamesTheOneBrokerAsController() throws Exception {
        try (Admin admin = Clients.admin(broker)) {
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<org.apache.kafka.common.Node> nodes = cluster.nodes().get();
            assertEquals(1, nodes.size());
            org.apache.kafka.common.Node node = nodes.iterator().next();
            assertEquals("127.0.0.1", node.host());
            assertEquals(Integer.parseInt(broker.bootstrap().split(":")[1]), node.port());
            assertEquals(node.id(), cluster.controller().get().id());
            assertTrue(cluster.clusterId().get() != null);
        }
    }

    @Test
    void consumerGroupsListDescribeOffsetsAlterAndDelete() throws Exception {
        String topic = Clients.unique("admin-groups");
        Clients.createTopic(broker, topic, 2);
        Clients.produce(broker, topic, 50);
        String group = Clients.unique("admin-group");
        try (Admin admin = Clients.admin(broker)) {
            try (KafkaConsumer<String, String> consumer = Clients.consumer(broker, group)) {
                consumer.subscribe(List.of(topic));
                Clients.pollAtLeast(consumer, 50);
                consumer.commitSync();
                Collection<GroupListing> groups = admin.listGroups().all().get();
                assertTrue(groups.stream().anyMatch(g -> g.groupId().equals(group)), groups.toString());
                Collection<org.apache.kafka.clients.admin.ConsumerGroupListing> consumerGroups =
                        admin.listConsumerGroups().all().get();
                assertTrue(consumerGroups.stream().anyMatch(g -> g.groupId().equals(group)));
                ConsumerGroupDescription description =
                        admin.describeConsumerGroups(List.of(group)).all().get().get(group);
                assertEquals(GroupState.STABLE, description.groupState());
                assertEquals(1, description.members().size());
                assertEquals(2, description.members().iterator().next().assignment().topicPartitions().size());
            }
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            assertEquals(50, offsets.values().stream().mapToLong(OffsetAndMetadata::offset).sum());

            // The group is empty now: its offsets can be altered, then it can be deleted.
            TopicPartition p0 = new TopicPartition(topic, 0);
            Clients.await("group empty", () -> state(admin, group) == GroupState.EMPTY);
            admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all().get();
            assertEquals(1, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                    .get(p0).offset());
            admin.deleteConsumerGroups(List.of(group)).all().get();
            assertFalse(admin.listConsumerGroups().all().get().stream().anyMatch(g -> g.groupId().equals(group)));
        }
    }

    private static GroupState state(Admin admin, String group) {
        try {
            return admin.describeConsumerGroups(List.of(group)).all().get().get(group).groupState();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void describeLogDirsIsUnsupportedAndSaysSo() throws Exception {
        // Gap (docs/COMPATIBILITY.md): Ringtail has no DescribeLogDirs.
        try (Admin admin = Clients.admin(broker)) {
            int nodeId = admin.describeCluster().nodes().get().iterator().next().id();
            ExecutionException error = assertThrows(ExecutionException.class,
                    () -> admin.describeLogDirs(List.of(nodeId)).allDescriptions().get(30, TimeUnit.SECONDS));
            assertInstanceOf(UnsupportedVersionException.class, error.getCause(), error.toString());
            // The admin client still works afterwards.
            assertFalse(admin.listTopics().names().get(30, TimeUnit.SECONDS) == null);
        }
    }
}
