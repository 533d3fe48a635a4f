package dev.ringtail.compat;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The real {@code ringtail} binary for one test class, like tests/compat's fixture: a free
 * loopback port, a fresh data dir, {@code --shards 2 --flush every_batch} and 8 MiB segments
 * (segments are preallocated; at 1 GiB a few dozen test topics would fill the disk). After the
 * class it gets SIGTERM and must exit 0 within {@link #STOP_TIMEOUT_S}; otherwise the class fails
 * with the tail of the broker's log, which is kept under target/ringtail-logs.
 */
public final class RingtailBroker implements BeforeAllCallback, AfterAllCallback {
    static final int READY_TIMEOUT_S = 20;
    static final int STOP_TIMEOUT_S = 20;
    static final int SEGMENT_BYTES = 8 * 1024 * 1024;

    private final List<String> extraArgs;
    private final boolean secured;
    private Process process;
    private int port;
    private int saslSslPort;
    private Path dataDir;
    private Path certDir;
    private Path logPath;

    public RingtailBroker(String... extraArgs) {
        this(false, extraArgs);
    }

    private RingtailBroker(boolean secured, String... extraArgs) {
        this.secured = secured;
        this.extraArgs = List.of(extraArgs);
    }

    /**
     * A broker with a SASL_SSL listener beside the PLAINTEXT one: a test CA and server certificate
     * made with the openssl CLI, and the user {@code admin} (password {@link #ADMIN_PASSWORD}, both
     * SCRAM mechanisms) created with {@code ringtail users add} before the first start.
     */
    public static RingtailBroker secured(String... extraArgs) {
        return new RingtailBroker(true, extraArgs);
    }

    static final String ADMIN_PASSWORD = "admin-secret";

    public String saslSslBootstrap() {
        return "127.0.0.1:" + saslSslPort;
    }

    /** The CA certificate (PEM) that signed the broker's certificate. */
    public Path caPem() {
        return certDir.resolve("ca.pem");
    }

    public String bootstrap() {
        return "127.0.0.1:" + port;
    }

    public Path logPath() {
        return logPath;
    }

    /** The broker's data dir, as given with --data-dir. */
    public Path dataDir() {
        return dataDir;
    }

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        String name = context.getRequiredTestClass().getSimpleName();
        dataDir = Files.createTempDirectory("ringtail-jvm-" + name);
        Path logs = Path.of("target", "ringtail-logs");
        Files.createDirectories(logs);
        logPath = logs.resolve(name + ".log");
        // Not a port the extra arguments name (a test's --metrics-listen, picked before this).
        do {
            port = freePort();
        } while (namesPort(port));
        if (secured) {
            do {
                saslSslPort = freePort();
            } while (saslSslPort == port || namesPort(saslSslPort));
            certDir = Files.createTempDirectory("ringtail-jvm-certs-" + name);
            makeCerts(certDir);
            for (String mechanism : List.of("SCRAM-SHA-256", "SCRAM-SHA-512")) {
                runChecked(ADMIN_PASSWORD + "\n", binary(), "users", "add", "admin", "--mechanism", mechanism,
                        "--password-stdin", "--data-dir", dataDir.toString());
            }
        }
        start();
    }

    private boolean namesPort(int candidate) {
        return extraArgs.stream().anyMatch(arg -> arg.endsWith(":" + candidate));
    }

    private static String binary() {
        return System.getProperty("ringtail.bin", "../../target/release/ringtail");
    }

    /** A P-256 CA and a server certificate for 127.0.0.1, as tests/compat/secure_broker.py makes them. */
    private static void makeCerts(Path dir) throws Exception {
        List<String> ec = List.of("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes");
        List<String> ca = new ArrayList<>(List.of("openssl", "req", "-x509"));
        ca.addAll(ec);
        ca.addAll(List.of("-keyout", dir.resolve("ca.key").toString(), "-out", dir.resolve("ca.pem").toString(),
                "-days", "2", "-subj", "/CN=ringtail-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign"));
        runChecked(null, ca.toArray(String[]::new));
        List<String> csr = new ArrayList<>(List.of("openssl", "req"));
        csr.addAll(ec);
        csr.addAll(List.of("-keyout", dir.resolve("server.key").toString(), "-out",
                dir.resolve("server.csr").toString(), "-subj", "/CN=localhost"));
        runChecked(null, csr.toArray(String[]::new));
        Files.writeString(dir.resolve("server.ext"),
                "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        runChecked(null, "openssl", "x509", "-req", "-in", dir.resolve("server.csr").toString(),
                "-CA", dir.resolve("ca.pem").toString(), "-CAkey", dir.resolve("ca.key").toString(),
                "-CAcreateserial", "-out", dir.resolve("server.pem").toString(), "-days", "2",
                "-extfile", dir.resolve("server.ext").toString());
    }

    private static void runChecked(String stdin, String... command) throws Exception {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        if (stdin != null) {
            process.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
        }
        process.getOutputStream().close();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!process.waitFor(60, TimeUnit.SECONDS) || process.exitValue() != 0) {
            throw new IllegalStateException(String.join(" ", command) + " failed:\n" + output);
        }
    }

    @Override
    public void afterAll(ExtensionContext context) throws Exception {
        try {
            stop();
        } finally {
            deleteTree(dataDir);
            deleteTree(certDir);
        }
    }

    /** Stops (SIGTERM, must exit 0) and starts again on the same port and data dir. */
    public void restart() throws Exception {
        stop();
        start();
    }

    /**
     * SIGKILL (no clean close: what was not fsynced is lost, nothing is flushed at exit) and a
     * start on the same port and data dir, so recovery runs.
     */
    public void killAndRestart() throws Exception {
        Process killed = process;
        process = null;
        killed.destroyForcibly(); // SIGKILL on Unix
        if (!killed.waitFor(STOP_TIMEOUT_S, TimeUnit.SECONDS)) {
            throw new AssertionError("ringtail outlived SIGKILL for " + STOP_TIMEOUT_S + " s");
        }
        awaitPortFree();
        start();
    }

    /**
     * A killed broker's listeners outlive its process while the kernel tears down its io_uring
     * (an accept was in flight), and the restarted broker refuses a port that something still
     * listens on: wait until a plain bind succeeds.
     */
    private void awaitPortFree() throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(READY_TIMEOUT_S);
        while (true) {
            try (ServerSocket probe = new ServerSocket()) {
                probe.setReuseAddress(true); // past TIME_WAIT connections, never past a listener
                probe.bind(new InetSocketAddress("127.0.0.1", port));
                return;
            } catch (IOException stillListening) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("port " + port + " still in use " + READY_TIMEOUT_S
                            + " s after SIGKILL", stillListening);
                }
                Thread.sleep(50);
            }
        }
    }

    private void start() throws Exception {
        String binary = binary();
        if (!Files.isExecutable(Path.of(binary))) {
            throw new IllegalStateException(
                    "no ringtail binary at " + binary
                            + " (cargo build --release -p ringtail-server, or -Dringtail.bin=PATH)");
        }
        List<String> command = new ArrayList<>(List.of(
                binary, "--data-dir", dataDir.toString(),
                "--shards", "2", "--flush", "every_batch",
                "--segment-bytes", Integer.toString(SEGMENT_BYTES)));
        if (secured) {
            command.addAll(List.of("--listeners",
                    "PLAINTEXT://" + bootstrap() + ",SASL_SSL://" + saslSslBootstrap(),
                    "--tls-cert-file", certDir.resolve("server.pem").toString(),
                    "--tls-key-file", certDir.resolve("server.key").toString()));
        } else {
            command.addAll(List.of("--listen", bootstrap()));
        }
        command.addAll(extraArgs);
        Files.writeString(logPath, "=== " + String.join(" ", command) + "\n", StandardCharsets.UTF_8,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        ProcessBuilder builder = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(logPath.toFile()));
        builder.environment().put("NO_COLOR", "1");
        process = builder.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(READY_TIMEOUT_S);
        while (true) {
            if (!process.isAlive()) {
                throw new IllegalStateException("ringtail exited with " + process.exitValue()
                        + " before accepting connections\n" + logTail());
            }
            try (Socket socket = new Socket()) {
                socket.connect(new InetSocketAddress("127.0.0.1", port), 500);
                return;
            } catch (IOException notYet) {
                // not listening yet
            }
            if (System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new IllegalStateException("ringtail did not listen on " + bootstrap()
                        + " within " + READY_TIMEOUT_S + " s\n" + logTail());
            }
            Thread.sleep(50);
        }
    }

    private void stop() throws Exception {
        if (process == null) {
            return;
        }
        Process stopping = process;
        process = null;
        stopping.destroy(); // SIGTERM
        if (!stopping.waitFor(STOP_TIMEOUT_S, TimeUnit.SECONDS)) {
            stopping.destroyForcibly().waitFor();
            throw new AssertionError("ringtail ignored SIGTERM for " + STOP_TIMEOUT_S + " s\n" + logTail());
        }
        if (stopping.exitValue() != 0) {
            throw new AssertionError("ringtail exited with " + stopping.exitValue() + " after SIGTERM\n" + logTail());
        }
    }

    public String logTail() {
        try {
            List<String> lines = Files.readAllLines(logPath, StandardCharsets.UTF_8);
            return "--- tail of " + logPath + " ---\n"
                    + String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    /** The lowest port {@link #freePort} hands out. */
    static final int LOWEST_TEST_PORT = 10000;

    /**
     * A loopback port no one listens on right now, below the kernel's ephemeral range when it can
     * be: that range is also where clients' source ports come from, so a broker restarted on a port
     * from it could find another test's connection holding the port ("Address already in use"; seen
     * in CI). Below it, only another test's own pick can collide.
     */
    static int freePort() throws IOException {
        int ephemeralStart = 32768;
        try {
            String range = Files.readString(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).trim();
            ephemeralStart = Integer.parseInt(range.split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            // Not Linux, or unreadable: keep the usual start.
        }
        int span = ephemeralStart - LOWEST_TEST_PORT;
        for (int attempt = 0; span > 1000 && attempt < 100; attempt++) {
            int port = LOWEST_TEST_PORT + java.util.concurrent.ThreadLocalRandom.current().nextInt(span);
            try (ServerSocket socket = new ServerSocket()) {
                socket.bind(new InetSocketAddress("127.0.0.1", port));
                return socket.getLocalPort();
            } catch (IOException taken) {
                // Try another.
            }
        }
        try (ServerSocket socket = new ServerSocket()) {
            socket.bind(new InetSocketAddress("127.0.0.1", 0));
            return socket.getLocalPort();
        }
    }

    static void deleteTree(Path root) throws IOException {
        if (root == null || !Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        }
    }
}
