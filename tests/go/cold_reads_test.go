package compat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"
)

// Value sizes cycle through these (bytes): uneven, so batches straddle the broker's 4 MiB cold
// chunks and the tests' 8 MiB segments; none a multiple of a page.
var coldValueBytes = []int{97, 2_003, 5_119, 8_191, 15_013, 30_011}

// coldValue is record i's value: its number, then hex that does not repeat within a page.
func coldValue(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "record %d:", i)
	size := coldValueBytes[i%len(coldValueBytes)]
	for block := 0; b.Len() < size; block++ {
		sum := sha256.Sum256([]byte(fmt.Sprintf("%d/%d", i, block)))
		b.WriteString(hex.EncodeToString(sum[:]))
	}
	return []byte(b.String()[:size])
}

// dropFromPageCache fsyncs and drops (POSIX_FADV_DONTNEED) every file under dir.
func dropFromPageCache(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || !entry.Type().IsRegular() {
			return err
		}
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		if err := file.Sync(); err != nil {
			return err
		}
		return unix.Fadvise(int(file.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// segmentsPerPartition counts the segment files of each of topic's partition directories.
func segmentsPerPartition(t *testing.T, dataDir, topic string) map[string]int {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(dataDir, topic+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	segments := map[string]int{}
	for _, dir := range dirs {
		logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
		if err != nil {
			t.Fatal(err)
		}
		segments[filepath.Base(dir)] = len(logs)
	}
	return segments
}

// metricValue reads one unlabelled sample from a /metrics body.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// TestFranzReadsABacklogDroppedFromThePageCache: franz-go (which checks each batch's CRC-32C)
// reads, from offset 0, a zstd-compressed backlog that was fsynced and dropped from the page
// cache, so the broker serves it through its cold path; every record arrives once, in offset
// order per partition, with the value it was produced with. /metrics shows the cold path ran (a
// data dir the kernel cannot evict fails the test instead of passing it on warm data).
func TestFranzReadsABacklogDroppedFromThePageCache(t *testing.T) {
	dir := t.TempDir()
	addr, metricsAddr := launchBrokerWithMetrics(t, dir)

	const topic, partitions, records = "cold-backlog", 3, 9_000
	producer := mustFranz(t, kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerBatchMaxBytes(1<<20))
	defer producer.Close()
	franzCreateTopic(t, kadm.NewClient(producer), topic, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	// Where each record landed, from its produce acknowledgement.
	type place struct {
		partition int32
		offset    int64
	}
	produced := make(map[place]int, records)
	valueBytes := 0
	for start := 0; start < records; start += 500 {
		var batch []*kgo.Record
		for i := start; i < start+500; i++ {
			value := coldValue(i)
			valueBytes += len(value)
			batch = append(batch, &kgo.Record{Key: []byte(fmt.Sprintf("k%d", i%30)), Value: value})
		}
		results := producer.ProduceSync(ctx, batch...)
		if err := results.FirstErr(); err != nil {
			t.Fatal(err)
		}
		// Results come in the order their partitions answered, not the order given: a record
		// is known by its value's number.
		for _, result := range results {
			var i int
			if _, err := fmt.Sscanf(string(result.Record.Value), "record %d:", &i); err != nil {
				t.Fatalf("acknowledged value %.20q: %v", result.Record.Value, err)
			}
			produced[place{result.Record.Partition, result.Record.Offset}] = i
		}
	}
	if len(produced) != records {
		t.Fatalf("%d distinct (partition, offset) acknowledged for %d records", len(produced), records)
	}

	// Every partition rolled (8 MiB segments in these tests), so reads cross segment ends.
	segments := segmentsPerPartition(t, filepath.Join(dir, "data"), topic)
	if len(segments) != partitions {
		t.Fatalf("partition directories: %v", segments)
	}
	for name, n := range segments {
		if n < 2 {
			t.Fatalf("%s has %d segment file(s), want a roll: %v", name, n, segments)
		}
	}
	dropFromPageCache(t, filepath.Join(dir, "data"))
	coldBefore := metricValue(t, scrapeMetrics(t, metricsAddr), "ringtail_fetch_cold_bytes_total")

	got := franzConsume(t, addr, topic, records)
	if len(got) != records {
		t.Fatalf("read %d records, want %d", len(got), records)
	}
	next := map[int32]int64{}
	for _, r := range got {
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, next[r.Partition]-1)
		}
		next[r.Partition]++
		i, ok := produced[place{r.Partition, r.Offset}]
		if !ok {
			t.Fatalf("partition %d offset %d was never acknowledged", r.Partition, r.Offset)
		}
		if string(r.Value) != string(coldValue(i)) {
			t.Fatalf("partition %d offset %d: value differs from record %d's", r.Partition, r.Offset, i)
		}
	}

	// Compressed, the records take less room than their values: at least a quarter of the
	// values' bytes must have come the cold way (zstd takes the values' hex to about half).
	cold := metricValue(t, scrapeMetrics(t, metricsAddr), "ringtail_fetch_cold_bytes_total") - coldBefore
	if cold < float64(valueBytes)/4 {
		t.Fatalf("%.0f bytes read cold for %d bytes of values: was the backlog dropped?", cold, valueBytes)
	}
}
