package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * What Kafka's controller refuses when a topic is laid out, refused the same way (found by
 * comparing the AdminClient against Kafka 4.1.1): replication factors other than -1 and 1 on
 * one broker, manual assignments naming unknown or repeated brokers, empty or with gaps, names
 * colliding on '.' and '_', null config values, a config key twice in one change; and a topic
 * described by its id.
 */
class TopicLayoutParityTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    /** The broker's node id (the default, 0). */
    static final int NODE = 0;

    private static Throwable createFails(Admin admin, NewTopic topic) {
        ExecutionException failed = assertThrows(ExecutionException.class,
                () -> admin.createTopics(List.of(topic)).all().get());
        return failed.getCause();
    }

    @Test
    void aTopicIsDescribedByItsId() throws Exception {
        String topic = Clients.unique("layout-by-id");
        Clients.createTopic(broker, topic, 2);
        try (Admin admin = Clients.admin(broker)) {
            Uuid id = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId();
            assertFalse(Uuid.ZERO_UUID.equals(id));
            TopicDescription byId =
                    admin.describeTopics(TopicCollection.ofTopicIds(List.of(id))).allTopicIds().get().get(id);
            assertEquals(topic, byId.name());
            assertEquals(2, byId.partitions().size());
        }
    }

    @Test
    void replicationFactorsBelowOneAreRefused() throws Exception {
        try (Admin admin = Clients.admin(broker)) {
            for (short factor : new short[] {0, -2}) {
                String topic = Clients.unique("layout-rf");
                Throwable cause = createFails(admin, new NewTopic(topic, 1, factor));
                assertInstanceOf(InvalidReplicationFactorException.class, cause, "factor " + factor);
                assertFalse(admin.listTopics().names().get().contains(topic));
            }
            // -1 (the default) and 1 are taken.
            admin.createTopics(List.of(new NewTopic(Clients.unique("layout-rf-default"), Optional.of(1),
                    Optional.empty()))).all().get();
        }
    }

    @Test
    void manualAssignmentsMustNameThisBrokerOnceEachConsecutively() throws Exception {
        List<Map<Integer, List<Integer>>> refused = List.of(
                Map.of(0, List.of(5)),
                Map.of(0, List.of(NODE, NODE)),
                Map.of(0, List.of()),
                Map.of(0, List.of(NODE), 2, List.of(NODE)));
        try (Admin admin = Clients.admin(broker)) {
            for (Map<Integer, List<Integer>> assignment : refused) {
                String topic = Clients.unique("layout-assign");
                Throwable cause = createFails(admin, new NewTopic(topic, assignment));
                assertInstanceOf(InvalidReplicaAssignmentException.class, cause, assignment.toString());
            }
            String topic = Clients.unique("layout-assign-ok");
            admin.createTopics(List.of(new NewTopic(topic, Map.of(0, List.of(NODE), 1, List.of(NODE)))))
                    .all().get();
            assertEquals(2, admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic)
                    .partitions().size());
            // Adding partitions: the same checks, and one assignment per partition added.
            for (List<List<Integer>> assignments : List.of(List.of(List.of(5), List.of(NODE)),
                    List.of(List.of(NODE)))) {
                ExecutionException failed = assertThrows(ExecutionException.class, () -> admin.createPartitions(
                        Map.of(topic, NewPartitions.increaseTo(4, assignments))).all().get());
                assertInstanceOf(InvalidReplicaAssignmentException.class, failed.getCause(), assignments.toString());
            }
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4,
                    List.of(List.of(NODE), List.of(NODE))))).all().get();
            assertEquals(4, admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic)
                    .partitions().size());
        }
    }

    @Test
    void namesCollidingOnDotAndUnderscoreAreRefused() throws Exception {
        String base = Clients.unique("layout");
        try (Admin admin = Clients.admin(broker)) {
            admin.createTopics(List.of(new NewTopic(base + ".x", 1, (short) 1))).all().get();
            Throwable cause = createFails(admin, new NewTopic(base + "_x", 1, (short) 1));
            assertInstanceOf(InvalidTopicException.class, cause);
            assertTrue(cause.getMessage().contains("collides with existing topic"), cause.getMessage());
        }
    }

    @Test
    void aNullConfigValueIsRefusedAndNothingIsCreated() throws Exception {
        String topic = Clients.unique("layout-null-config");
        Map<String, String> configs = new HashMap<>();
        configs.put("retention.ms", null);
        try (Admin admin = Clients.admin(broker)) {
            Throwable cause = createFails(admin, new NewTopic(topic, 1, (short) 1).configs(configs));
            assertInstanceOf(InvalidConfigurationException.class, cause);
            assertFalse(admin.listTopics().names().get().contains(topic));
        }
    }

    @Test
    void aConfigKeyTwiceInOneChangeIsRefusedAndNothingChanges() throws Exception {
        String topic = Clients.unique("layout-dup-keys");
        Clients.createTopic(broker, topic, 1);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Clients.admin(broker)) {
            List<AlterConfigOp> twice = new ArrayList<>();
            twice.add(new AlterConfigOp(new ConfigEntry("retention.ms", "5000"), AlterConfigOp.OpType.SET));
            twice.add(new AlterConfigOp(new ConfigEntry("retention.ms", "6000"), AlterConfigOp.OpType.SET));
            ExecutionException failed = assertThrows(ExecutionException.class,
                    () -> admin.incrementalAlterConfigs(Map.of(resource, twice)).all().get());
            assertInstanceOf(InvalidRequestException.class, failed.getCause());
            String retention = admin.describeConfigs(List.of(resource)).all().get().get(resource)
                    .get("retention.ms").value();
            assertFalse(retention.equals("5000") || retention.equals("6000"), retention);
        }
    }
}
