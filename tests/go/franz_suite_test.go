package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

type goTestEvent struct {
	Action string
	Test   string
	Output string
}

func TestFranzGoOwnSuite(t *testing.T) {
	dir := t.TempDir()
	bin := ringtailBinary(t)
	for _, mechanism := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512"} {
		add := exec.Command(bin, "users", "add", scramUser, "--mechanism", mechanism, "--password-stdin",
			"--data-dir", filepath.Join(dir, "data"))
		add.Stdin = strings.NewReader(scramPass + "\n")
		if out, err := add.CombinedOutput(); err != nil {
			t.Fatalf("ringtail users add: %v\n%s", err, out)
		}
	}
	plain := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sasl := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := launchBroker(t, dir, plain,
		"--listeners", "PLAINTEXT://"+plain+",SASL_PLAINTEXT://"+sasl, "--allow-everyone-if-no-acl-found")

	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to run franz-go's suite: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "test", "-count=1", "-json", "-timeout", suiteTimeout.String(), suitePackage)
	cmd.Env = append(os.Environ(),
		"KGO_SEEDS="+b.addr,
		"KGO_TEST_RF=1",
		"KGO_LOG_LEVEL=none",
		"KGO_TEST_SCRAM_SEEDS="+sasl,
		"KGO_TEST_SCRAM="+scramUser+":"+scramPass+":256",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	outputs := map[string]*strings.Builder{}
	var passed, failed, skipped []string
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		var event goTestEvent
		if json.Unmarshal(scanner.Bytes(), &event) != nil || event.Test == "" {
			continue
		}
		if outputs[event.Test] == nil {
			outputs[event.Test] = &strings.Builder{}
		}
		switch event.Action {
		case "output":
			outputs[event.Test].WriteString(event.Output)
		case "pass":
			passed = append(passed, event.Test)
		case "fail":
			failed = append(failed, event.Test)
		case "skip":
			skipped = append(skipped, event.Test)
		}
	}
	waitErr := cmd.Wait()

	for _, name := range failed {
		t.Errorf("franz-go's %s failed against ringtail:\n%s", name, tail(outputs[name].String(), 40))
	}
	sort.Strings(skipped)
	for _, name := range skipped {
		out := outputs[name].String()
		if !containsAny(out, suiteSkipReasons...) {
			t.Errorf("franz-go's %s skipped for a reason not on the list:\n%s", name, tail(out, 10))
		}
	}
	t.Logf("franz-go %s: %d passed, %d failed, %d skipped (%s)", suitePackage, len(passed), len(failed),
		len(skipped), strings.Join(skipped, ", "))
	if len(passed) < suiteMinPassed {
		t.Errorf("only %d of franz-go's tests passed (at least %d expected)", len(passed), suiteMinPassed)
	}
	if waitErr != nil && len(failed) == 0 {
		t.Errorf("go test %s: %v\n%s", suitePackage, waitErr, tail(stderr.String(), 40))
	}
}

// tail is the last `lines` lines of `text`.
func tail(text string, lines int) string {
	all := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
