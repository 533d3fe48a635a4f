package compat

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig(t *testing.T) *sarama.Config {
	cfg := sarama.NewConfig()
	// Kafka 4 brokers reject the oldest protocol versions sarama would otherwise use; 3.6 is a
	// version every current deployment runs, and what sarama users set.
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Return.Errors = true
	return cfg
}

func saramaCodec(t *testing.T, name string) sarama.CompressionCodec {
	var codec sarama.CompressionCodec
	if err := codec.UnmarshalText([]byte(name)); err != nil {
		t.Fatal(err)
	}
	return codec
}

func saramaAdmin(t *testing.T, addr string) sarama.ClusterAdmin {
	adm, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adm.Close() })
	return adm
}

// saramaConsume reads n records from every partition's start, without a group.
func saramaConsume(t *testing.T, addr, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{addr}, saramaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	messages := make(chan *sarama.ConsumerMessage, n)
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				messages <- m
			}
		}()
	}
	var got []*sarama.ConsumerMessage
	timeout := time.After(patience)
	for len(got) < n {
		select {
		case m := <-messages:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("got %d of %d records", len(got), n)
		}
	}
	return got
}

func TestSaramaProduceConsumeEveryCodec(t *testing.T) {
	b := startBroker(t)
	adm := saramaAdmin(t, b.addr)
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			topic := "sarama-" + codec
			if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
				t.Fatal(err)
			}
			cfg := saramaConfig(t)
			cfg.Producer.Compression = saramaCodec(t, codec)
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1 // sarama requires it with idempotence
			producer, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer producer.Close()
			var want, msgs = []string{}, []*sarama.ProducerMessage{}
			for i := 0; i < 200; i++ {
				v := fmt.Sprintf("%s message %d, compressible compressible compressible", codec, i)
				want = append(want, v)
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)),
					Value:   sarama.StringEncoder(v),
					Headers: []sarama.RecordHeader{{Key: []byte("codec"), Value: []byte(codec)}}})
			}
			if err := producer.SendMessages(msgs); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range saramaConsume(t, b.addr, topic, len(want)) {
				got = append(got, string(m.Value))
				if len(m.Headers) != 1 || string(m.Headers[0].Value) != codec {
					t.Fatalf("headers %v", m.Headers)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			if fmt.Sprint(want) != fmt.Sprint(got) {
				t.Fatalf("records differ")
			}
		})
	}
}

type saramaHandler struct {
	mu      sync.Mutex
	values  map[string]bool
	want    int
	done    chan struct{}
	closing sync.Once
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.values[string(m.Value)] = true
		if len(h.values) >= h.want {
			h.closing.Do(func() { close(h.done) })
		}
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func TestSaramaConsumerGroupAndAdmin(t *testing.T) {
	b := startBroker(t)
	adm := saramaAdmin(t, b.addr)
	topic, group := "sarama-group", "sarama-group-1"
	if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	producer, err := sarama.NewSyncProducer([]string{b.addr}, saramaConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := 0; i < 90; i++ {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := saramaConfig(t)
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{b.addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &saramaHandler{values: map[string]bool{}, want: 90, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-h.done:
	case err := <-consumed:
		t.Fatalf("consume: %v", err)
	case <-time.After(patience):
		t.Fatalf("group read %d of 90", len(h.values))
	}
	cancel()
	if err := <-consumed; err != nil {
		t.Fatal(err)
	}
	if err := cg.Close(); err != nil { // commits the marked offsets
		t.Fatal(err)
	}
	groups, err := adm.ListConsumerGroups()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups[group]; !ok {
		t.Fatalf("group not listed: %v", groups)
	}
	offsets, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	for p := int32(0); p < 3; p++ {
		committed += offsets.GetBlock(topic, p).Offset
	}
	if committed != 90 {
		t.Fatalf("committed offsets sum to %d, want 90", committed)
	}
	desc, err := adm.DescribeTopics([]string{topic})
	if err != nil || len(desc) != 1 || len(desc[0].Partitions) != 3 {
		t.Fatalf("describe topics: %v %+v", err, desc)
	}
	if err := adm.DeleteConsumerGroup(group); err != nil {
		t.Fatal(err)
	}
	if err := adm.DeleteTopic(topic); err != nil {
		t.Fatal(err)
	}
}
