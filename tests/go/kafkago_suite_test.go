package compat

import (
	"net"
	"strings"
	"testing"
	"time"
)

// segmentio/kafka-go's own tests (package kafka-go of the version in go.mod), run against
// ringtail as its author runs them against the broker of its docker-compose.yml: PLAINTEXT on
// localhost:9092 and SASL_PLAINTEXT on localhost:9093 (both hard-coded in its tests), topics
// auto-created, users adminscram (SCRAM-SHA-256 and -512) and adminplain (PLAIN), everyone
// allowed without ACLs. They cover Conn, Reader (with groups), Writer, Client admin requests,
// transactions helpers, compression and SASL.
const (
	kafkaGoPackage = "github.com/segmentio/kafka-go"
	kafkaGoTimeout = 10 * time.Minute
	// The ports kafka-go's tests dial; they cannot be told others.
	kafkaGoPlain = "127.0.0.1:9092"
	kafkaGoSASL  = "127.0.0.1:9093"
	// A suite that stopped running its tests must not pass by running none: 569 tests and
	// subtests pass against ringtail.
	kafkaGoMinPassed = 500
)

// kafkaGoExcluded are the tests not run (go test -skip), each with why. Anything else that fails
// fails this test.
var kafkaGoExcluded = []struct{ pattern, reason string }{
	// getOffsets (reader_test.go) calls ConsumerGroup.coordinator on a config whose connect func
	// is nil: a nil-pointer panic against any broker, which ends the whole run.
	{`^TestReaderConsumerGroup$/^(verify_offset_committed|verify_offset_committed_when_using_interval_committer|consumer_group_commits_on_close)$`, "test panics on a nil func"},
	// Two readers over 3 partitions of 8 records must each read 12: only re-reads after a
	// rebalance in mid-read make that possible, so it passes only when the first reader has
	// fetched (and not committed) records of a partition before the second one's join moves it
	// away: a race in the test. With --group-initial-rebalance-delay-ms 0, as its compose broker,
	// it passed one run and timed out the next.
	{`^TestReaderConsumerGroup$/^consumer_group_rebalance$`, "passes only if a rebalance lands in mid-read (a race)"},
	// Creates a topic with segment.bytes 200: below Kafka 4's minimum (1 MiB, KIP-1030) and
	// ringtail's; Kafka 3.7 of the compose file accepted it.
	{`^TestReaderReadCompactedMessage$`, "segment.bytes 200 below the minimum"},
	// A timing assertion: a 500 ms MaxWait must be answered within a 1 s connection deadline.
	// It passes alone; CI runs this suite beside the Python one on 2 cores, where a late wake-up
	// of the client or the broker misses it (seen once under load). No timing claims in tests.
	{`^TestConn$/^read_a_batch_using_explicit_max_wait_time$`, "1 s deadline around a 500 ms wait"},
}

// kafkaGoExpectedSkips are the tests kafka-go itself skips in this setup, with why.
var kafkaGoExpectedSkips = map[string]string{
	// KAFKA_VERSION 4.0.0: "fails on Kafka version 3.0.0 or higher" (old request versions).
	"TestClientAddOffsetsToTxn":    "kafka >= 3.0",
	"TestClientAddPartitionsToTxn": "kafka >= 3.0",
	"TestClientInitProducerId":     "kafka >= 3.0",
	"TestClientTxnOffsetCommit":    "kafka >= 3.0",
	// Always skipped upstream (works only against Kafka 0.10.1.0).
	"TestReadTruncatedMessages": "always skipped",
	// Skipped when the cluster auto-creates topics, as the compose file's does.
	"TestConsumerGroupWithMissingTopic": "auto-create on",
}

func TestKafkaGoOwnSuite(t *testing.T) {
	for _, addr := range []string{kafkaGoPlain, kafkaGoSASL} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("kafka-go's tests need %s free (they dial localhost:9092 and :9093): %v", addr, err)
		}
		l.Close()
	}
	dir := t.TempDir()
	addUser(t, dir, "adminscram", "SCRAM-SHA-256", "admin-secret-256")
	addUser(t, dir, "adminscram", "SCRAM-SHA-512", "admin-secret-512")
	// PLAIN logins are checked against a SCRAM credential.
	addUser(t, dir, "adminplain", "SCRAM-SHA-256", "admin-secret")
	launchBroker(t, dir, kafkaGoPlain,
		"--listeners", "PLAINTEXT://"+kafkaGoPlain+",SASL_PLAINTEXT://"+kafkaGoSASL,
		"--advertised-listeners", "PLAINTEXT://localhost:9092,SASL_PLAINTEXT://localhost:9093",
		"--allow-everyone-if-no-acl-found",
		// As the compose file's broker: KAFKA_CFG_BROKER_ID 1 (TestConn's broker, controller and
		// coordinator subtests and TestDialer* expect that id), and group.initial.rebalance.delay.ms
		// 0 of Kafka's sample server.properties, which its image starts from (a new group's first
		// join answered at once, as its reader tests are timed for).
		"--node-id", "1", "--group-initial-rebalance-delay-ms", "0")

	patterns := make([]string, 0, len(kafkaGoExcluded))
	for _, excluded := range kafkaGoExcluded {
		patterns = append(patterns, excluded.pattern)
	}
	// KAFKA_VERSION: the version its tests gate features on (ktesting.KafkaIsAtLeast).
	run := runGoSuite(t, kafkaGoPackage, kafkaGoTimeout, []string{"KAFKA_VERSION=4.0.0"},
		"-skip", strings.Join(patterns, "|"))
	for _, name := range run.skipped {
		if _, ok := kafkaGoExpectedSkips[name]; !ok {
			t.Errorf("kafka-go's %s skipped, which is not on the list:\n%s", name, tail(run.outputs[name].String(), 10))
		}
	}
	t.Logf("kafka-go %s: %d passed, %d failed, %d skipped (%s), %d patterns excluded", kafkaGoPackage,
		len(run.passed), len(run.failed), len(run.skipped), strings.Join(run.skipped, ", "), len(kafkaGoExcluded))
	run.check(t, "kafka-go", kafkaGoPackage, kafkaGoMinPassed)
}
