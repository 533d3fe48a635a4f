package compat

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func franzCodec(t *testing.T, name string) kgo.CompressionCodec {
	switch name {
	case "none":
		return kgo.NoCompression()
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	t.Fatalf("unknown codec %s", name)
	return kgo.NoCompression()
}

func franzCreateTopic(t *testing.T, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
}

// franzConsume reads n records from the topic's start without a group.
func franzConsume(t *testing.T, addr, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var records []*kgo.Record
	for len(records) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records: %v", len(records), n, ctx.Err())
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		records = append(records, fetches.Records()...)
	}
	return records
}

func TestFranzProduceConsumeEveryCodec(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(b.addr)))
	defer adm.Close()
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			topic := "franz-" + codec
			franzCreateTopic(t, adm, topic, 2)
			// Defaults otherwise: idempotent, acks=all.
			cl := mustFranz(t, kgo.SeedBrokers(b.addr), kgo.ProducerBatchCompression(franzCodec(t, codec)),
				kgo.DefaultProduceTopic(topic))
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			var want []string
			var batch []*kgo.Record
			for i := 0; i < 200; i++ {
				value := fmt.Sprintf("%s record %d with some repetition repetition repetition", codec, i)
				want = append(want, value)
				batch = append(batch, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(value),
					Headers: []kgo.RecordHeader{{Key: "codec", Value: []byte(codec)}}})
			}
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range franzConsume(t, b.addr, topic, len(want)) {
				got = append(got, string(r.Value))
				if len(r.Headers) != 1 || string(r.Headers[0].Value) != codec {
					t.Fatalf("headers %v", r.Headers)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Fatalf("records differ:\nwant %v\ngot  %v", want, got)
			}
		})
	}
}

func mustFranz(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestFranzGroupCommitsAndResumes(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(b.addr)))
	defer adm.Close()
	topic, group := "franz-group", "franz-group-1"
	franzCreateTopic(t, adm, topic, 3)
	prod := mustFranz(t, kgo.SeedBrokers(b.addr), kgo.DefaultProduceTopic(topic))
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	produce := func(from, to int) {
		var rs []*kgo.Record
		for i := from; i < to; i++ {
			rs = append(rs, kgo.StringRecord(fmt.Sprint(i)))
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	consume := func(n int) []string {
		cl := mustFranz(t, kgo.SeedBrokers(b.addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		defer cl.Close()
		var got []string
		for len(got) < n {
			fetches := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("got %d of %d: %v", len(got), n, ctx.Err())
			}
			fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}
		return got
	}
	produce(0, 60)
	if got := consume(60); len(got) != 60 {
		t.Fatalf("first run read %d", len(got))
	}
	produce(60, 70)
	got := consume(10)
	sort.Strings(got)
	if len(got) != 10 || got[0] != "60" {
		t.Fatalf("second run should read only the 10 new records, got %v", got)
	}
	// kadm sees the group and its offsets.
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if lag := lags[group]; lag.Error() != nil || lag.Lag.Total() != 0 {
		t.Fatalf("lag %+v (err %v)", lag.Lag, lag.Error())
	}
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[group]; !ok {
		t.Fatalf("group not listed: %v", groups.Groups())
	}
}

func TestFranzAdminBasics(t *testing.T) {
	b := startBroker(t)
	adm := kadm.NewClient(mustFranz(t, kgo.SeedBrokers(b.addr)))
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	franzCreateTopic(t, adm, "franz-admin", 2)
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := topics["franz-admin"]; !ok || len(d.Partitions) != 2 {
		t.Fatalf("topic not listed with 2 partitions: %v", topics.Names())
	}
	if _, err := adm.CreatePartitions(ctx, 2, "franz-admin"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "franz-admin")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("franz-admin", nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs: %v %v", err, rc.Err)
	}
	found := false
	for _, c := range rc.Configs {
		found = found || (c.Key == "cleanup.policy" && c.MaybeValue() == "delete")
	}
	if !found {
		t.Fatalf("cleanup.policy=delete not among %v", rc.Configs)
	}
	ends, err := adm.ListEndOffsets(ctx, "franz-admin")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ends["franz-admin"]); n != 4 {
		t.Fatalf("end offsets of %d partitions, want 4", n)
	}
	// DeleteRecords moves the partition's log start offset: franz-go's admin sees the new low
	// watermark, and ListStartOffsets agrees. Nothing was produced, so 0 is the high watermark.
	deleted, err := adm.DeleteRecords(ctx, kadm.Offsets{"franz-admin": {0: {Topic: "franz-admin", At: 0}}})
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	deleted.Each(func(r kadm.DeleteRecordsResponse) {
		if r.Err != nil || r.LowWatermark != 0 {
			t.Fatalf("DeleteRecords of %s/%d: low watermark %d, err %v", r.Topic, r.Partition, r.LowWatermark, r.Err)
		}
	})
	beyond, err := adm.DeleteRecords(ctx, kadm.Offsets{"franz-admin": {0: {Topic: "franz-admin", At: 5}}})
	if err != nil {
		t.Fatalf("DeleteRecords beyond the high watermark: %v", err)
	}
	if r, ok := beyond.Lookup("franz-admin", 0); !ok || !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("DeleteRecords beyond the high watermark: want OFFSET_OUT_OF_RANGE, got %+v", r)
	}
	if _, err := adm.DeleteTopics(ctx, "franz-admin"); err != nil {
		t.Fatal(err)
	}
}
