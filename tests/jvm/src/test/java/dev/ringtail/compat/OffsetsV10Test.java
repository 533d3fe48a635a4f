package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.NodeApiVersions;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.OffsetCommitRequestData;
import org.apache.kafka.common.message.OffsetCommitResponseData;
import org.apache.kafka.common.message.OffsetFetchRequestData;
import org.apache.kafka.common.message.OffsetFetchResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.AbstractRequest;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsRequest;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.OffsetCommitRequest;
import org.apache.kafka.common.requests.OffsetCommitResponse;
import org.apache.kafka.common.requests.OffsetFetchRequest;
import org.apache.kafka.common.requests.OffsetFetchResponse;
import org.apache.kafka.common.requests.RequestHeader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * OffsetCommit v10 and OffsetFetch v10 (topics by id) as Kafka's own Java 4.1.1 code writes and
 * reads them. In 4.1.1 these versions are still marked unstable (a Kafka 4.1 broker advertises them
 * only with unstable.api.versions.enable) and the consumer and Admin build these requests by topic
 * name (Builder.forTopicNames, capped at v9), so the stock 4.1.1 consumer sends v9 to Ringtail as
 * to Kafka. The v10 requests are therefore built with the client library's own request classes
 * (Builder.forTopicIdsOrNames) and sent over a plain socket, beside the consumer's own
 * commitSync/committed (v9): both must see the same offsets.
 */
class OffsetsV10Test {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    private static int correlationId = 0;

    /** One request at {@code version} and its parsed answer, on a fresh loopback connection. */
    private static AbstractResponse call(AbstractRequest.Builder<?> builder, short version) throws Exception {
        AbstractRequest request = builder.build(version);
        RequestHeader header = new RequestHeader(request.apiKey(), version, "v10-test", ++correlationId);
        ByteBuffer frame = request.serializeWithHeader(header);
        byte[] bytes = new byte[frame.remaining()];
        frame.get(bytes);
        String[] hostPort = broker.bootstrap().split(":");
        try (Socket socket = new Socket(hostPort[0], Integer.parseInt(hostPort[1]))) {
            socket.setSoTimeout((int) Clients.PATIENCE.toMillis());
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            out.writeInt(bytes.length);
            out.write(bytes);
            out.flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] body = new byte[in.readInt()];
            in.readFully(body);
            return AbstractResponse.parseResponse(ByteBuffer.wrap(body), header);
        }
    }

    private static OffsetCommitResponseData commitById(String group, Uuid topicId, int partition, long offset)
            throws Exception {
        OffsetCommitRequestData data = new OffsetCommitRequestData()
                .setGroupId(group)
                .setGenerationIdOrMemberEpoch(-1)
                .setMemberId("")
                .setTopics(List.of(new OffsetCommitRequestData.OffsetCommitRequestTopic()
                        .setTopicId(topicId)
                        .setPartitions(List.of(new OffsetCommitRequestData.OffsetCommitRequestPartition()
                                .setPartitionIndex(partition)
                                .setCommittedOffset(offset)
                                .setCommittedMetadata("by-id")))));
        OffsetCommitResponse response =
                (OffsetCommitResponse) call(OffsetCommitRequest.Builder.forTopicIdsOrNames(data, true), (short) 10);
        return response.data();
    }

    private static OffsetFetchResponseData.OffsetFetchResponseGroup fetchById(String group, Uuid topicId)
            throws Exception {
        OffsetFetchRequestData data = new OffsetFetchRequestData().setGroups(List.of(
                new OffsetFetchRequestData.OffsetFetchRequestGroup()
                        .setGroupId(group)
                        .setTopics(List.of(new OffsetFetchRequestData.OffsetFetchRequestTopics()
                                .setTopicId(topicId)
                                .setPartitionIndexes(List.of(0, 1))))));
        OffsetFetchResponse response = (OffsetFetchResponse) call(
                OffsetFetchRequest.Builder.forTopicIdsOrNames(data, false, true), (short) 10);
        assertEquals(1, response.data().groups().size());
        return response.data().groups().get(0);
    }

    /** Ringtail advertises v10; a client building by id negotiates 10, by name (the 4.1.1 consumer) 9. */
    @Test
    void brokerAdvertisesV10() throws Exception {
        ApiVersionsResponse response =
                (ApiVersionsResponse) call(new ApiVersionsRequest.Builder(), (short) 3);
        NodeApiVersions versions = NodeApiVersions.create(response.data().apiKeys());
        for (ApiKeys api : List.of(ApiKeys.OFFSET_COMMIT, ApiKeys.OFFSET_FETCH)) {
            assertEquals(10, versions.apiVersion(api).maxVersion(), api.name);
            assertEquals(10, versions.latestUsableVersion(api, api.oldestVersion(), api.latestVersion(true)), api.name);
        }
        AbstractRequest.Builder<?> byName = OffsetCommitRequest.Builder.forTopicNames(new OffsetCommitRequestData());
        assertEquals(9, versions.latestUsableVersion(
                ApiKeys.OFFSET_COMMIT, byName.oldestAllowedVersion(), byName.latestAllowedVersion()));
    }

    /**
     * The consumer commits by name (v9), Kafka's v10 OffsetFetch reads the same offsets by topic id;
     * Kafka's v10 OffsetCommit by id is what the consumer's committed() then returns; an id no topic
     * has is UNKNOWN_TOPIC_ID.
     */
    @Test
    void commitsByIdAndByNameAreTheSameOffsets() throws Exception {
        String topic = Clients.unique("by-id");
        Clients.createTopic(broker, topic, 2);
        Uuid topicId;
        try (Admin admin = Clients.admin(broker)) {
            topicId = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).topicId();
        }
        String group = Clients.unique("v10-group");
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        Properties props = Clients.consumerProps(broker, group);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(p0, p1));
            consumer.commitSync(Map.of(p0, new OffsetAndMetadata(5, "by-name"), p1, new OffsetAndMetadata(6)));

            OffsetFetchResponseData.OffsetFetchResponseGroup fetched = fetchById(group, topicId);
            assertEquals(Errors.NONE.code(), fetched.errorCode());
            assertEquals(1, fetched.topics().size());
            assertEquals(topicId, fetched.topics().get(0).topicId());
            List<OffsetFetchResponseData.OffsetFetchResponsePartitions> partitions = fetched.topics().get(0).partitions();
            assertEquals(List.of(5L, 6L), partitions.stream().map(p -> p.committedOffset()).toList());
            assertEquals("by-name", partitions.get(0).metadata());

            OffsetCommitResponseData committed = commitById(group, topicId, 0, 9);
            assertEquals(topicId, committed.topics().get(0).topicId());
            assertEquals(Errors.NONE.code(), committed.topics().get(0).partitions().get(0).errorCode());
            assertEquals(new OffsetAndMetadata(9, "by-id"), consumer.committed(Set.of(p0)).get(p0));

            Uuid unknown = Uuid.randomUuid();
            OffsetCommitResponseData refused = commitById(group, unknown, 0, 1);
            assertEquals(unknown, refused.topics().get(0).topicId());
            assertEquals(Errors.UNKNOWN_TOPIC_ID.code(), refused.topics().get(0).partitions().get(0).errorCode());
        }
    }
}
