package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * What Ringtail does not serve (docs/COMPATIBILITY.md, "Not implemented"), as the Java
 * AdminClient sees it: Kafka's documented error, at once, never a hang.
 */
class GapsTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    private static Throwable fails(org.apache.kafka.common.KafkaFuture<?> future) {
        ExecutionException failed =
                assertThrows(ExecutionException.class, () -> future.get(30, TimeUnit.SECONDS));
        return failed.getCause();
    }

    @Test
    void describeQuorumIsUnsupported() {
        try (Admin admin = Clients.admin(broker)) {
            assertInstanceOf(UnsupportedVersionException.class,
                    fails(admin.describeMetadataQuorum().quorumInfo()));
        }
    }

    @Test
    void updateFeaturesIsUnsupported() {
        try (Admin admin = Clients.admin(broker)) {
            FeatureUpdate upgrade = new FeatureUpdate((short) 1, FeatureUpdate.UpgradeType.UPGRADE);
            assertInstanceOf(UnsupportedVersionException.class, fails(admin.updateFeatures(
                    Map.of("group.version", upgrade), new UpdateFeaturesOptions().validateOnly(true)).all()));
        }
    }

    @Test
    void abortingAnotherProducersTransactionIsUnsupported() throws Exception {
        // kafka-transactions abort sends WriteTxnMarkers to the partition's leader.
        String topic = Clients.unique("gaps-abort");
        Clients.createTopic(broker, topic, 1);
        try (Admin admin = Clients.admin(broker)) {
            AbortTransactionSpec spec = new AbortTransactionSpec(new TopicPartition(topic, 0), 1000L, (short) 0, 0);
            assertInstanceOf(UnsupportedVersionException.class, fails(admin.abortTransaction(spec).all()));
        }
    }

    @Test
    void brokerLoggerConfigsAreRefused() {
        try (Admin admin = Clients.admin(broker)) {
            ConfigResource loggers = new ConfigResource(ConfigResource.Type.BROKER_LOGGER, "0");
            assertInstanceOf(InvalidRequestException.class,
                    fails(admin.describeConfigs(List.of(loggers)).all()));
        }
    }
}
