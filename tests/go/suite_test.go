package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// What the clients' own suites (franz_suite_test.go, kafkago_suite_test.go) share: users
// created before the broker starts, and a `go test -json` run of another module's package read
// back test by test.

// addUser gives `name` a SCRAM credential for `mechanism` in the data dir of a broker that will
// run on `dir` (launchBroker's layout), with `ringtail users add`.
func addUser(t *testing.T, dir, name, mechanism, password string) {
	t.Helper()
	add := exec.Command(ringtailBinary(t), "users", "add", name, "--mechanism", mechanism, "--password-stdin",
		"--data-dir", filepath.Join(dir, "data"))
	add.Stdin = strings.NewReader(password + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ringtail users add %s: %v\n%s", name, err, out)
	}
}

type goTestEvent struct {
	Action string
	Test   string
	Output string
}

// suiteRun is what `go test -json` reported of a package: its tests by outcome (skipped ones
// sorted), each test's output, and how the run itself ended.
type suiteRun struct {
	passed, failed, skipped []string
	outputs                 map[string]*strings.Builder
	waitErr                 error
	stderr                  string
}

// runGoSuite runs `go test -count=1 -json` on `pkg` (with `args` before it) under the
// environment plus `env`, within `timeout`.
func runGoSuite(t *testing.T, pkg string, timeout time.Duration, env []string, args ...string) suiteRun {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is needed to run %s's suite: %v", pkg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	command := append([]string{"test", "-count=1", "-json", "-timeout", timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, goBin, append(command, pkg)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := suiteRun{outputs: map[string]*strings.Builder{}}
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for scanner.Scan() {
		var event goTestEvent
		if json.Unmarshal(scanner.Bytes(), &event) != nil || event.Test == "" {
			continue
		}
		if run.outputs[event.Test] == nil {
			run.outputs[event.Test] = &strings.Builder{}
		}
		switch event.Action {
		case "output":
			run.outputs[event.Test].WriteString(event.Output)
		case "pass":
			run.passed = append(run.passed, event.Test)
		case "fail":
			run.failed = append(run.failed, event.Test)
		case "skip":
			run.skipped = append(run.skipped, event.Test)
		}
	}
	run.waitErr = cmd.Wait()
	run.stderr = stderr.String()
	sort.Strings(run.skipped)
	return run
}

// check fails `t` for every failed test, for a run that ended badly without one, and for fewer
// than `minPassed` passes (a suite that stopped running its tests must not pass by running none).
// Skips are each suite's own to judge.
func (run suiteRun) check(t *testing.T, suite, pkg string, minPassed int) {
	t.Helper()
	for _, name := range run.failed {
		t.Errorf("%s's %s failed against ringtail:\n%s", suite, name, tail(run.outputs[name].String(), 40))
	}
	if len(run.passed) < minPassed {
		t.Errorf("only %d of %s's tests passed (at least %d expected)", len(run.passed), suite, minPassed)
	}
	if run.waitErr != nil && len(run.failed) == 0 {
		t.Errorf("go test %s: %v\n%s", pkg, run.waitErr, tail(run.stderr, 40))
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
