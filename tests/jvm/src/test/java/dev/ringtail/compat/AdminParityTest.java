package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java AdminClient 4.1 on the admin APIs a one-broker cluster answers (issue 16): cluster and
 * topic descriptions with authorized operations, the paged DescribeTopicPartitions, the broker's
 * configs, APPEND/SUBTRACT, leader elections, reassignments, features; and kafka-configs on the
 * broker entity.
 */
class AdminParityTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker("--retention-ms", "86400000");

    static final String CONFIGS = "kafka.admin.ConfigCommand";

    @Test
    void describeClusterReportsAuthorizedOperationsWhenAsked() throws Exception {
        try (Admin admin = Clients.admin(broker)) {
            DescribeClusterResult cluster =
                    admin.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true));
            assertEquals(1, cluster.nodes().get().size());
            assertEquals(0, cluster.controller().get().id());
            Set<AclOperation> operations = cluster.authorizedOperations().get();
            assertNotNull(operations);
            assertTrue(operations.contains(AclOperation.DESCRIBE), operations.toString());
            assertTrue(operations.contains(AclOperation.IDEMPOTENT_WRITE), operations.toString());
        }
    }

    @Test
    void describeTopicsPagesThroughDescribeTopicPartitions() throws Exception {
        // 3.8+ clients describe topics with DescribeTopicPartitions; a limit of 2 makes it page.
        String topic = Clients.unique("parity-describe");
        Clients.createTopic(broker, topic, 5);
        try (Admin admin = Clients.admin(broker)) {
            DescribeTopicsOptions options =
                    new DescribeTopicsOptions().includeAuthorizedOperations(true).partitionSizeLimitPerResponse(2);
            TopicDescription description =
                    admin.describeTopics(List.of(topic), options).allTopicNames().get().get(topic);
            assertEquals(5, description.partitions().size());
            for (int i = 0; i < 5; i++) {
                assertEquals(i, description.partitions().get(i).partition());
                assertEquals(0, description.partitions().get(i).leader().id());
            }
            assertFalse(Uuid.ZERO_UUID.equals(description.topicId()));
            assertTrue(description.authorizedOperations().contains(AclOperation.READ));
        }
    }

    @Test
    void describeConfigsOfTheBrokerShowsItsSettingsTyped() throws Exception {
        ConfigResource resource = new ConfigResource(ConfigResource.Type.BROKER, "0");
        try (Admin admin = Clients.admin(broker)) {
            Config config = admin.describeConfigs(List.of(resource), new DescribeConfigsOptions()
                    .includeSynonyms(true).includeDocumentation(true)).all().get().get(resource);
            ConfigEntry retention = config.get("log.retention.ms");
            assertEquals("86400000", retention.value());
            assertEquals(ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG, retention.source());
            assertEquals(ConfigEntry.ConfigType.LONG, retention.type());
            // Dynamic in Kafka (AlterConfigs on the broker may change it), so not read-only.
            assertFalse(retention.isReadOnly());
            assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, config.get("num.partitions").source());
            assertEquals("PLAINTEXT://" + broker.bootstrap(), config.get("advertised.listeners").value());
            assertNotNull(config.get("log.dirs").value());
        }
    }

    @Test
    void incrementalAlterConfigsAppendsAndSubtractsListItems() throws Exception {
        String topic = Clients.unique("parity-lists");
        Clients.createTopic(broker, topic, 1);
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Clients.admin(broker)) {
            admin.incrementalAlterConfigs(Map.of(resource, List.of(new AlterConfigOp(
                    new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)))).all().get();
            assertEquals("delete,compact", value(admin, resource, "cleanup.policy"));
            admin.incrementalAlterConfigs(Map.of(resource, List.of(new AlterConfigOp(
                    new ConfigEntry("cleanup.policy", "delete"), AlterConfigOp.OpType.SUBTRACT)))).all().get();
            assertEquals("compact", value(admin, resource, "cleanup.policy"));
            Config all = admin.describeConfigs(List.of(resource)).all().get().get(resource);
            assertEquals(ConfigEntry.ConfigType.LONG, all.get("retention.bytes").type());
            assertEquals(ConfigEntry.ConfigType.LIST, all.get("cleanup.policy").type());
            assertEquals(ConfigEntry.ConfigSource.STATIC_BROKER_CONFIG, all.get("retention.ms").source());
        }
    }

    private static String value(Admin admin, ConfigResource resource, String name) throws Exception {
        return admin.describeConfigs(List.of(resource)).all().get().get(resource).get(name).value();
    }

    @Test
    void electLeadersAndReassignmentsHaveNothingToDo() throws Exception {
        String topic = Clients.unique("parity-elect");
        Clients.createTopic(broker, topic, 2);
        TopicPartition partition = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(broker)) {
            Map<TopicPartition, Optional<Throwable>> elected =
                    admin.electLeaders(ElectionType.PREFERRED, Set.of(partition)).partitions().get();
            assertInstanceOf(ElectionNotNeededException.class, elected.get(partition).orElseThrow());
            assertTrue(admin.listPartitionReassignments().reassignments().get().isEmpty());
        }
    }

    @Test
    void describeFeaturesReportsAFinalizedMetadataVersion() throws Exception {
        try (Admin admin = Clients.admin(broker)) {
            FeatureMetadata features = admin.describeFeatures().featureMetadata().get();
            assertTrue(features.finalizedFeatures().containsKey("metadata.version"), features.toString());
            assertFalse(features.finalizedFeatures().containsKey("transaction.version"), features.toString());
        }
    }

    @Test
    void kafkaConfigsDescribesTheBroker() throws Exception {
        String out = Tools.run(CONFIGS, null, "--bootstrap-server", broker.bootstrap(), "--describe",
                "--entity-type", "brokers", "--entity-name", "0", "--all").assertOk().stdout();
        assertTrue(out.contains("log.retention.ms=86400000"), out);
        assertTrue(out.contains("STATIC_BROKER_CONFIG"), out);
    }
}
