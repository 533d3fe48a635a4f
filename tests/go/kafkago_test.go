package compat

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

func kafkaGoCreateTopic(t *testing.T, addr, topic string, partitions int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: patience}
	resp, err := client.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Errors[topic]; err != nil {
		t.Fatal(err)
	}
}

func kafkaGoCodec(name string) kafka.Compression {
	switch name {
	case "gzip":
		return kafka.Gzip
	case "snappy":
		return kafka.Snappy
	case "lz4":
		return kafka.Lz4
	case "zstd":
		return kafka.Zstd
	}
	return compress.None
}

func TestKafkaGoProduceConsumeEveryCodec(t *testing.T) {
	b := startBroker(t)
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			topic := "kafkago-" + codec
			kafkaGoCreateTopic(t, b.addr, topic, 1)
			w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, Compression: kafkaGoCodec(codec),
				RequiredAcks: kafka.RequireAll, BatchSize: 50, BatchTimeout: 10 * time.Millisecond}
			defer w.Close()
			var msgs []kafka.Message
			var want []string
			for i := 0; i < 200; i++ {
				v := fmt.Sprintf("%s %d compressible compressible compressible", codec, i)
				want = append(want, v)
				msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: []byte(v),
					Headers: []kafka.Header{{Key: "codec", Value: []byte(codec)}}})
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				t.Fatal(err)
			}
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, Topic: topic, Partition: 0,
				MaxWait: 200 * time.Millisecond})
			defer r.Close()
			var got []string
			for len(got) < len(want) {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					t.Fatalf("after %d records: %v", len(got), err)
				}
				if len(m.Headers) != 1 || string(m.Headers[0].Value) != codec {
					t.Fatalf("headers %v", m.Headers)
				}
				got = append(got, string(m.Value))
			}
			sort.Strings(want)
			sort.Strings(got)
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Fatal("records differ")
			}
		})
	}
}

func TestKafkaGoGroupAndAdmin(t *testing.T) {
	b := startBroker(t)
	topic, group := "kafkago-group", "kafkago-group-1"
	kafkaGoCreateTopic(t, b.addr, topic, 2)
	w := &kafka.Writer{Addr: kafka.TCP(b.addr), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: 1,
		BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var msgs []kafka.Message
	for i := 0; i < 40; i++ {
		msgs = append(msgs, kafka.Message{Value: []byte(strconv.Itoa(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.addr}, GroupID: group, Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond})
	seen := map[string]bool{}
	for len(seen) < 40 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d: %v", len(seen), err)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(b.addr), Timeout: patience}
	offsets, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group,
		Topics: map[string][]int{topic: {0, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for _, p := range offsets.Topics[topic] {
		committed += p.CommittedOffset
	}
	if committed != 40 {
		t.Fatalf("committed %d, want 40", committed)
	}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata: %v %+v", err, meta)
	}
	groups, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, g := range groups.Groups {
		listed = listed || g.GroupID == group
	}
	if !listed {
		t.Fatalf("group not listed: %+v", groups.Groups)
	}
	deleted, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || deleted.Errors[topic] != nil {
		t.Fatalf("delete: %v %v", err, deleted.Errors)
	}
}
