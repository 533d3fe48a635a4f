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
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionReplica;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Two data dirs: AdminClient.alterReplicaLogDirs moves a partition, describeLogDirs and
 * describeReplicaLogDirs follow it; kafka-reassign-partitions with log_dirs (--execute, then
 * --verify until done) and kafka-log-dirs --describe, run unchanged.
 */
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

    static final String REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
    static final String LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand";

    /** The other data dir than `from`. */
    static String otherDir(String from) {
        return SECOND_DIR.toString().equals(from) ? home0() : SECOND_DIR.toString();
    }

    @Test
    void reassignPartitionsWithLogDirsExecutesAndVerifiesAndLogDirsDescribesTheMove() throws Exception {
        // kafka-reassign-partitions --execute with a log_dirs entry moves the partition between
        // this broker's data dirs; --verify reports it complete; kafka-log-dirs --describe then
        // shows it (not as a future replica) in its new dir; describeReplicaLogDirs agrees.
        String topic = Clients.unique("reassign-log-dirs");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 30);
        TopicPartition tp = new TopicPartition(topic, 0);
        int nodeId;
        String to;
        try (Admin admin = Clients.admin(broker)) {
            nodeId = admin.describeCluster().nodes().get().iterator().next().id();
            to = otherDir(home(admin, nodeId, tp));
        }
        Path plan = Files.createTempFile("reassign", ".json");
        try {
            Files.writeString(plan, "{\"version\":1,\"partitions\":[{\"topic\":\"" + topic
                    + "\",\"partition\":0,\"replicas\":[" + nodeId + "],\"log_dirs\":[\"" + to + "\"]}]}");
            Tools.run(REASSIGN, null, "--bootstrap-server", broker.bootstrap(), "--execute",
                    "--reassignment-json-file", plan.toString()).assertOk();
            Clients.await("kafka-reassign-partitions --verify reports the move complete", () -> {
                try {
                    String out = Tools.run(REASSIGN, null, "--bootstrap-server", broker.bootstrap(), "--verify",
                            "--reassignment-json-file", plan.toString()).assertOk().stdout();
                    return out.contains("Reassignment of replica " + new TopicPartitionReplica(topic, 0, nodeId)
                            + " completed successfully");
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        } finally {
            Files.deleteIfExists(plan);
        }
        String out = Tools.run(LOG_DIRS, null, "--bootstrap-server", broker.bootstrap(), "--describe",
                "--topic-list", topic).assertOk().stdout();
        String json = out.lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow(() -> new AssertionError(out));
        String found = null;
        for (JsonNode dir : new ObjectMapper().readTree(json).get("brokers").get(0).get("logDirs")) {
            for (JsonNode partition : dir.get("partitions")) {
                if (partition.get("partition").asText().equals(topic + "-0")) {
                    assertEquals(false, partition.get("isFuture").asBoolean(), json);
                    assertEquals(null, found, "one entry: " + json);
                    found = dir.get("logDir").asText();
                }
            }
        }
        assertEquals(to, found, json);
        try (Admin admin = Clients.admin(broker)) {
            TopicPartitionReplica replica = new TopicPartitionReplica(topic, 0, nodeId);
            ReplicaLogDirInfo info = admin.describeReplicaLogDirs(List.of(replica)).all()
                    .get(30, TimeUnit.SECONDS).get(replica);
            assertEquals(to, info.getCurrentReplicaLogDir());
            assertEquals(null, info.getFutureReplicaLogDir());
        }
        assertEquals(30, Clients.readAll(broker, topic, 30).size());
    }

    @Test
    void describeReplicaLogDirsShowsTheFutureDirWhileAMoveRuns() throws Exception {
        // Asked right after alterReplicaLogDirs, describeReplicaLogDirs names the current dir and,
        // while the copy runs, the future one; once done, the current dir is the destination.
        String topic = Clients.unique("replica-log-dirs");
        Clients.createTopic(broker, topic, 1);
        Clients.produce(broker, topic, 20);
        try (Admin admin = Clients.admin(broker)) {
            int nodeId = admin.describeCluster().nodes().get().iterator().next().id();
            TopicPartition tp = new TopicPartition(topic, 0);
            String from = home(admin, nodeId, tp);
            String to = otherDir(from);
            TopicPartitionReplica replica = new TopicPartitionReplica(topic, 0, nodeId);
            ReplicaLogDirInfo before = admin.describeReplicaLogDirs(List.of(replica)).all()
                    .get(30, TimeUnit.SECONDS).get(replica);
            assertEquals(from, before.getCurrentReplicaLogDir());
            admin.alterReplicaLogDirs(Map.of(replica, to)).all().get(30, TimeUnit.SECONDS);
            Clients.await("describeReplicaLogDirs shows the partition in " + to, () -> {
                try {
                    ReplicaLogDirInfo now = admin.describeReplicaLogDirs(List.of(replica)).all()
                            .get(30, TimeUnit.SECONDS).get(replica);
                    if (now.getFutureReplicaLogDir() != null) {
                        assertEquals(to, now.getFutureReplicaLogDir(), "a future replica only in the destination");
                    }
                    return to.equals(now.getCurrentReplicaLogDir()) && now.getFutureReplicaLogDir() == null;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
        }
    }

    static String home0() {
        return broker.dataDir().toString();
    }
}
