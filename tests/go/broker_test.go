// Package compat runs Go's three common Kafka clients (franz-go, sarama, segmentio/kafka-go)
// against the real `ringtail` binary, as tests/compat does for Python and tests/jvm for Java.
// Each test starts its own broker (target/release/ringtail, or $RINGTAIL_BIN) on a free loopback
// port with a fresh data dir, and stops it with SIGTERM at the end, requiring a clean exit.
package compat

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 20 * time.Second
	stopTimeout  = 20 * time.Second
	// Segments are preallocated: at 1 GiB a few dozen test topics would fill the disk.
	segmentBytes = 8 << 20
	// How long a test waits for records or a group to settle before failing (not a timing claim).
	patience = 60 * time.Second
)

type broker struct {
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan error
}

func ringtailBinary(t *testing.T) string {
	if bin := os.Getenv("RINGTAIL_BIN"); bin != "" {
		return bin
	}
	bin, err := filepath.Abs("../../target/release/ringtail")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no ringtail binary at %s (cargo build --release -p ringtail-server): %v", bin, err)
	}
	return bin
}

// lowestTestPort is the lowest port freePort hands out.
const lowestTestPort = 10000

// freePort is a loopback port no one listens on right now, below the kernel's ephemeral range when
// it can be: that range is also where clients' source ports come from, so a broker restarted on a
// port from it could find another test's connection holding the port ("address already in use";
// seen in CI). Below it, only another test's own pick can collide.
func freePort(t *testing.T) int {
	ephemeralStart := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if fields := strings.Fields(string(raw)); len(fields) > 0 {
			if start, err := strconv.Atoi(fields[0]); err == nil {
				ephemeralStart = start
			}
		}
	}
	var candidates []int
	if span := ephemeralStart - lowestTestPort; span > 1000 {
		for i := 0; i < 100; i++ {
			candidates = append(candidates, lowestTestPort+rand.IntN(span))
		}
	}
	for _, port := range append(candidates, 0) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	t.Fatal("no free loopback port")
	return 0
}

// startBroker starts ringtail for this test; t.Cleanup stops it and fails the test on an unclean
// exit. The log is kept in the test's temp dir and printed when the test failed.
func startBroker(t *testing.T) *broker {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	return launchBroker(t, t.TempDir(), addr, "--listen", addr)
}

// launchBroker starts ringtail on `dir`/data with the common flags and `flags` (which name the
// listeners); `addr` is a PLAINTEXT listener among them, probed for readiness (the broker binds
// every listener before it accepts on any).
func launchBroker(t *testing.T, dir, addr string, flags ...string) *broker {
	t.Helper()
	b := &broker{
		addr:    addr,
		logPath: filepath.Join(dir, "ringtail.log"),
		exited:  make(chan error, 1),
	}
	log, err := os.Create(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", filepath.Join(dir, "data"),
		"--shards", "2", "--flush", "every_batch", "--segment-bytes", fmt.Sprint(segmentBytes)}, flags...)
	b.cmd = exec.Command(ringtailBinary(t), args...)
	b.cmd.Stdout, b.cmd.Stderr = log, log
	b.cmd.Env = append(os.Environ(), "NO_COLOR=1")
	// Die with the test binary if it is killed.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exited <- b.cmd.Wait(); log.Close() }()
	t.Cleanup(func() { b.stop(t) })
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case err := <-b.exited:
			b.exited <- err
			t.Fatalf("ringtail exited before listening: %v\n%s", err, b.tail())
		default:
		}
		if conn, err := net.DialTimeout("tcp", b.addr, 500*time.Millisecond); err == nil {
			conn.Close()
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("ringtail not listening on %s within %v\n%s", b.addr, readyTimeout, b.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *broker) stop(t *testing.T) {
	select {
	case err := <-b.exited:
		t.Errorf("ringtail exited during the test: %v\n%s", err, b.tail())
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exited:
		if err != nil {
			t.Errorf("ringtail exited with %v after SIGTERM\n%s", err, b.tail())
		}
	case <-time.After(stopTimeout):
		_ = b.cmd.Process.Kill()
		<-b.exited
		t.Errorf("ringtail ignored SIGTERM for %v\n%s", stopTimeout, b.tail())
	}
	if t.Failed() {
		t.Logf("broker log:\n%s", b.tail())
	}
}

func (b *broker) tail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// codecs are every compression Kafka defines.
var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}
