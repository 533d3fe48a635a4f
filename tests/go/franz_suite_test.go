package compat

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// franz-go's own integration tests (package kgo of the franz-go version in go.mod), run against
// ringtail as its author runs them against Kafka: KGO_SEEDS names the broker, KGO_TEST_RF=1 (one
// broker), KGO_TEST_SCRAM* a SASL_PLAINTEXT listener and a SCRAM user. They create and delete
// their own topics and groups and cover produce, consume, groups (classic and KIP-848),
// transactions (TestTxnEtl: a consume-transform-produce chain with group rebalances and aborts),
// regex subscriptions, pausing, admin requests and SASL.
const (
	suitePackage = "github.com/twmb/franz-go/pkg/kgo"
	suiteTimeout = 20 * time.Minute
	scramUser    = "kgo"
	scramPass    = "kgo-secret"
	// A suite that stopped running its tests (a changed version, an environment variable it now
	// needs) must not pass by running none: it had 156 tests passing against ringtail.
	suiteMinPassed = 140
)

// suiteSkipReasons (lower case) are the only reasons a test of the suite may skip for: features ringtail
// does not have. Any other skip fails this test, naming it.
var suiteSkipReasons = []string{
	// KIP-932 share groups (ShareFetch/ShareAcknowledge): not implemented.
	"broker does not support share groups",
	// SASL/OAUTHBEARER: not implemented (PLAIN and SCRAM are).
	"kgo_test_oauth_seeds not set",
}

func TestFranzGoOwnSuite(t *testing.T) {
	dir := t.TempDir()
	for _, mechanism := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		addUser(t, dir, scramUser, mechanism, scramPass)
	}
	plain := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sasl := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := launchBroker(t, dir, plain,
		"--listeners", "PLAINTEXT://"+plain+",SASL_PLAINTEXT://"+sasl, "--allow-everyone-if-no-acl-found")

	run := runGoSuite(t, suitePackage, suiteTimeout, []string{
		"KGO_SEEDS=" + b.addr,
		"KGO_TEST_RF=1",
		"KGO_LOG_LEVEL=none",
		"KGO_TEST_SCRAM_SEEDS=" + sasl,
		"KGO_TEST_SCRAM=" + scramUser + ":" + scramPass + ":256",
	})
	for _, name := range run.skipped {
		out := run.outputs[name].String()
		if !containsAny(out, suiteSkipReasons...) {
			t.Errorf("franz-go's %s skipped for a reason not on the list:\n%s", name, tail(out, 10))
		}
	}
	t.Logf("franz-go %s: %d passed, %d failed, %d skipped (%s)", suitePackage, len(run.passed), len(run.failed),
		len(run.skipped), strings.Join(run.skipped, ", "))
	run.check(t, "franz-go", suitePackage, suiteMinPassed)
}
