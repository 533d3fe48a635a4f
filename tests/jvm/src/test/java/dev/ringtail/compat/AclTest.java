package dev.ringtail.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * ACLs managed with Kafka's own {@code kafka-acls} (AclCommand, by its main class) and the Java
 * AdminClient's createAcls/describeAcls/deleteAcls, as the super user {@code admin} over SASL_SSL.
 */
class AclTest {
    @RegisterExtension
    static final RingtailBroker broker = RingtailBroker.secured("--super-users", "User:admin");

    static final String ACLS = "org.apache.kafka.tools.AclCommand";

    static Properties admin() {
        return SecurityTest.saslSsl(broker, "SCRAM-SHA-512", "admin", RingtailBroker.ADMIN_PASSWORD);
    }

    @Test
    void kafkaAclsAddsListsAndRemovesAcls() throws Exception {
        Path commandConfig = Files.createTempFile("admin", ".properties");
        try {
            Properties props = admin();
            props.remove("bootstrap.servers");
            try (var out = Files.newOutputStream(commandConfig)) {
                props.store(out, null);
            }
            String topic = Clients.unique("acl-cli");
            String[] common = {"--bootstrap-server", broker.saslSslBootstrap(), "--command-config",
                    commandConfig.toString()};
            Tools.run(ACLS, null, concat(common, "--add", "--allow-principal", "User:alice",
                    "--operation", "Read", "--operation", "Write", "--topic", topic)).assertOk();
            Tools.run(ACLS, null, concat(common, "--add", "--deny-principal", "User:bob",
                    "--operation", "All", "--resource-pattern-type", "prefixed", "--group", "billing-")).assertOk();
            String listed = Tools.run(ACLS, null, concat(common, "--list", "--topic", topic)).assertOk().stdout();
            assertTrue(listed.contains("principal=User:alice") && listed.contains("operation=READ")
                    && listed.contains("operation=WRITE"), listed);
            String groups = Tools.run(ACLS, null, concat(common, "--list", "--resource-pattern-type", "prefixed",
                    "--group", "billing-")).assertOk().stdout();
            assertTrue(groups.contains("permissionType=DENY") && groups.contains("patternType=PREFIXED"), groups);
            Tools.run(ACLS, null, concat(common, "--remove", "--force", "--allow-principal", "User:alice",
                    "--operation", "Write", "--topic", topic)).assertOk();
            String after = Tools.run(ACLS, null, concat(common, "--list", "--topic", topic)).assertOk().stdout();
            assertTrue(after.contains("operation=READ"), after);
            assertFalse(after.contains("operation=WRITE"), after);
        } finally {
            Files.deleteIfExists(commandConfig);
        }
    }

    @Test
    void adminClientCreatesDescribesAndDeletesAcls() throws Exception {
        String topic = Clients.unique("acl-admin");
        AclBinding binding = new AclBinding(new ResourcePattern(ResourceType.TOPIC, topic, PatternType.LITERAL),
                new AccessControlEntry("User:carol", "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW));
        AclBindingFilter filter = new AclBindingFilter(
                new ResourcePatternFilter(ResourceType.TOPIC, topic, PatternType.MATCH), AccessControlEntryFilter.ANY);
        try (Admin admin = Admin.create(admin())) {
            admin.createAcls(List.of(binding)).all().get();
            Collection<AclBinding> described = admin.describeAcls(filter).values().get();
            assertEquals(List.of(binding), List.copyOf(described));
            Collection<AclBinding> deleted = admin.deleteAcls(List.of(filter)).all().get();
            assertEquals(List.of(binding), List.copyOf(deleted));
            assertTrue(admin.describeAcls(filter).values().get().isEmpty());
        }
    }

    static String[] concat(String[] first, String... rest) {
        String[] all = new String[first.length + rest.length];
        System.arraycopy(first, 0, all, 0, first.length);
        System.arraycopy(rest, 0, all, first.length, rest.length);
        return all;
    }
}
