package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Two data dirs: AdminClient.alterReplicaLogDirs moves a partition, describeLogDirs follows it. */
class LogDirsTest {
    static final Path SECOND_DIR = tempDir();

    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker("--data-dir", SECOND_DIR.toString());

    static Path tempDir() {
        try {
            return Files.createTempDirectory("ringtail-jvm-second-dir");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The data dir holding the partition (not as a future replica), or null. */
    static String home(Admin admin, int nodeId, TopicPartition tp) throws Exception {
        Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(nodeId))
                .allDescriptions().get(30, TimeUnit.SECONDS).get(nodeId);
        for (Map.Entry<String, LogDirDescription> dir : dirs.entrySet()) {
            ReplicaInfo replica = dir.getValue().replicaInfos().get(tp);
            if (replica != null && !replica.isFuture()) {
                return dir.getKey();
            }
        }
        return null;
    }

    @Test
    void alterReplicaLogDirsMovesAPartitionAndItsRecordsFollow() throws Exception {
        String topic = Clients.unique("log-dirs-move");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 50);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Clients.admin(broker)) {
            int nodeId = admin.describeCluster().nodes().get().iterator().next().id();
            String from = home(admin, nodeId, tp);
            String to = SECOND_DIR.toString().equals(from) ? broker.dataDir().toString() : SECOND_DIR.toString();
            admin.alterReplicaLogDirs(Map.of(new TopicPartitionReplica(topic, 0, nodeId), to))
                    .all().get(30, TimeUnit.SECONDS);
            Clients.await("the partition lives in " + to, () -> {
                try {
                    return to.equals(home(admin, nodeId, tp));
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        }
        List<ConsumerRecord<String, String>> records = Clients.readAll(broker, topic, 50);
        assertEquals(50, records.size());
        for (int i = 0; i < records.size(); i++) {
            assertEquals(i, records.get(i).offset());
        }
        assertTrue(Files.isDirectory(Path.of(home0(), topic + "-0")) ^ Files.isDirectory(SECOND_DIR.resolve(topic + "-0")),
                "exactly one copy");
    }

    static String home0() {
        return broker.dataDir().toString();
    }
}
