package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Client quotas through kafka-configs and the Java AdminClient, and a Java producer under one. */
class ClientQuotasTest {
    @RegisterExtension
    static final RingtailBroker broker = new RingtailBroker();

    static final String CONFIGS = "kafka.admin.ConfigCommand";

    @Test
    void kafkaConfigsAltersAndDescribesUserAndClientQuotas() throws Exception {
        String bs = broker.bootstrap();
        String user = Clients.unique("quota-user");
        String client = Clients.unique("quota-client");
        Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--alter", "--entity-type", "users",
                "--entity-name", user, "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152")
                .assertOk();
        Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--alter", "--entity-type", "clients",
                "--entity-name", client, "--add-config", "producer_byte_rate=4096").assertOk();
        String users = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--describe", "--entity-type", "users",
                "--entity-name", user).assertOk().stdout();
        assertTrue(users.contains(user) && users.contains("producer_byte_rate=1048576.0")
                && users.contains("consumer_byte_rate=2097152.0"), users);
        String clients = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--describe", "--entity-type", "clients",
                "--entity-name", client).assertOk().stdout();
        assertTrue(clients.contains(client) && clients.contains("producer_byte_rate=4096.0"), clients);
        Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--alter", "--entity-type", "clients",
                "--entity-name", client, "--delete-config", "producer_byte_rate").assertOk();
        String deleted = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--describe", "--entity-type", "clients",
                "--entity-name", client).assertOk().stdout();
        assertTrue(!deleted.contains("producer_byte_rate"), deleted);
    }

    @Test
    void adminClientAltersAndDescribesWithFiltersAndRefusesBadKeys() throws Exception {
        String user = Clients.unique("admin-user");
        ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, user));
        java.util.HashMap<String, String> defaultClient = new java.util.HashMap<>();
        defaultClient.put(ClientQuotaEntity.USER, user);
        defaultClient.put(ClientQuotaEntity.CLIENT_ID, null);
        ClientQuotaEntity perClient = new ClientQuotaEntity(defaultClient);
        try (Admin admin = Clients.admin(broker)) {
            admin.alterClientQuotas(List.of(
                    new ClientQuotaAlteration(entity, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1024.0))),
                    new ClientQuotaAlteration(perClient, List.of(new ClientQuotaAlteration.Op("request_percentage", 50.0)))))
                    .all().get();
            ClientQuotaFilter exact = ClientQuotaFilter.containsOnly(
                    List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user)));
            Map<ClientQuotaEntity, Map<String, Double>> only = admin.describeClientQuotas(exact).entities().get();
            assertEquals(Map.of(entity, Map.of("producer_byte_rate", 1024.0)), only);
            ClientQuotaFilter loose = ClientQuotaFilter.contains(
                    List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user)));
            Map<ClientQuotaEntity, Map<String, Double>> both = admin.describeClientQuotas(loose).entities().get();
            assertEquals(Map.of("request_percentage", 50.0), both.get(perClient));
            assertEquals(2, both.size());
            // validate_only stores nothing; an unknown key is INVALID_REQUEST.
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1.0)))),
                    new AlterClientQuotasOptions().validateOnly(true)).all().get();
            assertEquals(only, admin.describeClientQuotas(exact).entities().get());
            ExecutionException bad = assertThrows(ExecutionException.class, () -> admin.alterClientQuotas(List.of(
                    new ClientQuotaAlteration(entity, List.of(new ClientQuotaAlteration.Op("bogus_rate", 1.0)))))
                    .all().get());
            assertTrue(bad.getCause() instanceof InvalidRequestException, bad.toString());
        }
    }

    @Test
    void aJavaProducerOverItsQuotaSeesThrottleTime() throws Exception {
        String topic = Clients.unique("quota-topic");
        String clientId = Clients.unique("quota-producer");
        Clients.createTopic(broker, topic, 1);
        try (Admin admin = Clients.admin(broker)) {
            ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId));
            admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 8192.0))))).all().get();
        }
        Properties props = Clients.producerProps(broker);
        props.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        String value = "x".repeat(16 * 1024);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            // 160 KiB against 8 KiB/s: past the 10 s window's allowance of 80 KiB, so throttled.
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(topic, value)).get();
            }
            double throttleMax = producer.metrics().entrySet().stream()
                    .filter(e -> e.getKey().name().equals("produce-throttle-time-max"))
                    .mapToDouble(e -> ((Number) e.getValue().metricValue()).doubleValue())
                    .max().orElse(Double.NaN);
            assertTrue(throttleMax > 0, "produce-throttle-time-max " + throttleMax);
        }
    }
}
