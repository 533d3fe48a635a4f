package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The Java client over SASL_SSL with SCRAM, and {@code kafka-configs} managing SCRAM users
 * (AlterUserScramCredentials / DescribeUserScramCredentials) through the same listener.
 */
class SecurityTest {
    @RegisterExtension
    // Authentication is under test here, not ACLs (AclTest): what no ACL names is allowed.
    static final RingtailBroker broker = RingtailBroker.secured("--allow-everyone-if-no-acl-found");

    static final String CONFIGS = "kafka.admin.ConfigCommand";

    static Properties saslSsl(String mechanism, String user, String password) {
        return saslSsl(broker, mechanism, user, password);
    }

    static Properties saslSsl(RingtailBroker target, String mechanism, String user, String password) {
        Properties props = new Properties();
        props.put("bootstrap.servers", target.saslSslBootstrap());
        props.put("security.protocol", "SASL_SSL");
        props.put("ssl.truststore.type", "PEM");
        props.put("ssl.truststore.location", target.caPem().toString());
        props.put("sasl.mechanism", mechanism);
        props.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                + user + "\" password=\"" + password + "\";");
        return props;
    }

    static List<String> roundTrip(Properties auth, String topic, int count) throws Exception {
        Properties producerProps = new Properties();
        producerProps.putAll(auth);
        producerProps.put("key.serializer", StringSerializer.class.getName());
        producerProps.put("value.serializer", StringSerializer.class.getName());
        producerProps.put("acks", "all");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps)) {
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, 0, null, "v" + i)).get();
            }
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(auth);
        consumerProps.put("key.deserializer", StringDeserializer.class.getName());
        consumerProps.put("value.deserializer", StringDeserializer.class.getName());
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps)) {
            TopicPartition partition = new TopicPartition(topic, 0);
            consumer.assign(List.of(partition));
            consumer.seekToBeginning(List.of(partition));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (got.size() < count && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    got.add(record.value());
                }
            }
        }
        return got;
    }

    @Test
    void javaClientOverSaslSslWithBothScrams() throws Exception {
        for (String mechanism : List.of("SCRAM-SHA-256", "SCRAM-SHA-512")) {
            String topic = Clients.unique("sasl-ssl");
            List<String> got = roundTrip(saslSsl(mechanism, "admin", RingtailBroker.ADMIN_PASSWORD), topic, 20);
            assertEquals(20, got.size(), mechanism);
            assertEquals("v19", got.get(19));
        }
    }

    @Test
    void wrongPasswordIsRejected() {
        Properties props = saslSsl("SCRAM-SHA-256", "admin", "not-the-password");
        try (Admin admin = Admin.create(props)) {
            ExecutionException failed = assertThrows(ExecutionException.class,
                    () -> admin.listTopics().names().get());
            assertTrue(failed.getCause() instanceof SaslAuthenticationException, failed.toString());
        }
    }

    @Test
    void kafkaConfigsAddsAScramUserWhoThenLogsIn() throws Exception {
        Path commandConfig = Files.createTempFile("admin", ".properties");
        try {
            Properties admin = saslSsl("SCRAM-SHA-512", "admin", RingtailBroker.ADMIN_PASSWORD);
            admin.remove("bootstrap.servers");
            try (var out = Files.newOutputStream(commandConfig)) {
                admin.store(out, null);
            }
            String bs = broker.saslSslBootstrap();
            Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--command-config", commandConfig.toString(),
                    "--alter", "--entity-type", "users", "--entity-name", "erin",
                    "--add-config", "SCRAM-SHA-256=[iterations=8192,password=erin-secret]").assertOk();
            String described = Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--command-config",
                    commandConfig.toString(), "--describe", "--entity-type", "users", "--entity-name", "erin")
                    .assertOk().stdout();
            assertTrue(described.contains("SCRAM-SHA-256=iterations=8192"), described);
            List<String> got = roundTrip(saslSsl("SCRAM-SHA-256", "erin", "erin-secret"), Clients.unique("erin"), 5);
            assertEquals(5, got.size());
            Tools.run(CONFIGS, null, "--bootstrap-server", bs, "--command-config", commandConfig.toString(),
                    "--alter", "--entity-type", "users", "--entity-name", "erin",
                    "--delete-config", "SCRAM-SHA-256").assertOk();
            try (Admin erin = Admin.create(saslSsl("SCRAM-SHA-256", "erin", "erin-secret"))) {
                ExecutionException failed = assertThrows(ExecutionException.class,
                        () -> erin.listTopics().names().get());
                assertTrue(failed.getCause() instanceof SaslAuthenticationException, failed.toString());
            }
        } finally {
            Files.deleteIfExists(commandConfig);
        }
    }
}
