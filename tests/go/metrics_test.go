package compat

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Names promlint flags for their abbreviated units, kept because users' dashboards and
// docs/OPERATIONS.md name them. No other lint problem is allowed.
var metricNamesKeptDespiteLint = map[string]string{
	// Kafka's own field is throttle_time_ms; the counter adds up what was answered in it.
	"ringtail_quota_throttle_time_ms_total": "metric names should not contain abbreviated units",
	// The flag's value (--fetch-cold-read-bytes-per-sec), shown as set.
	"ringtail_fetch_cold_read_bytes_per_sec": "metric names should not contain abbreviated units",
}

// launchBrokerWithMetrics starts ringtail in dir (launchBroker) with /metrics on a second free
// port; returns the Kafka and the metrics address.
func launchBrokerWithMetrics(t *testing.T, dir string) (addr, metricsAddr string) {
	t.Helper()
	kafkaPort := freePort(t)
	metricsPort := freePort(t)
	for metricsPort == kafkaPort {
		metricsPort = freePort(t)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	metricsAddr = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	launchBroker(t, dir, addr, "--listen", addr, "--metrics-listen", metricsAddr)
	return addr, metricsAddr
}

// scrapeMetrics reads the broker's /metrics as Prometheus would, and returns the body.
func scrapeMetrics(t *testing.T, metricsAddr string) string {
	t.Helper()
	client := http.Client{Timeout: patience}
	response, err := client.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answered %s", response.Status)
	}
	if kind := response.Header.Get("Content-Type"); !strings.HasPrefix(kind, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want the text exposition format (text/plain)", kind)
	}
	body, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestMetricsParseAndLintAsPrometheusDoes scrapes /metrics after produce, fetch and group traffic
// and reads it with Prometheus's own text parser (expfmt, with the classic name rules) and linter
// (promlint, as `promtool check metrics` runs it): a hand-written exposition must not break a
// scrape. It also checks the families issue 13 promised, with their types.
func TestMetricsParseAndLintAsPrometheusDoes(t *testing.T) {
	addr, metricsAddr := launchBrokerWithMetrics(t, t.TempDir())

	const topic, records = "metrics", 500
	cl := mustFranz(t, kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	franzCreateTopic(t, kadm.NewClient(cl), topic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	for i := 0; i < records; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("record %d", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	consumer := mustFranz(t, kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumerGroup("metrics-group"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got < records; {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records: %v", got, records, ctx.Err())
		}
		got += fetches.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}

	body := scrapeMetrics(t, metricsAddr)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus's text parser refuses /metrics: %v\n%s", err, body)
	}

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, problem := range problems {
		if metricNamesKeptDespiteLint[problem.Metric] == problem.Text {
			continue
		}
		t.Errorf("promlint: %s: %s", problem.Metric, problem.Text)
	}

	// What issue 13 asked /metrics to show, and what an operator's queries rely on.
	want := map[string]dto.MetricType{
		"ringtail_fetch_hot_bytes_total":         dto.MetricType_COUNTER,
		"ringtail_fetch_cold_bytes_total":        dto.MetricType_COUNTER,
		"ringtail_fetch_cold_read_wait_seconds":  dto.MetricType_HISTOGRAM,
		"ringtail_fetch_residency_check_seconds": dto.MetricType_HISTOGRAM,
		"ringtail_produce_stage_seconds":         dto.MetricType_HISTOGRAM,
		"ringtail_request_latency_seconds":       dto.MetricType_SUMMARY,
		"ringtail_requests_total":                dto.MetricType_COUNTER,
	}
	for name, kind := range want {
		family, ok := families[name]
		if !ok {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if family.GetType() != kind {
			t.Errorf("%s is a %s, want a %s", name, family.GetType(), kind)
		}
		if family.GetHelp() == "" {
			t.Errorf("%s has no HELP", name)
		}
	}

	// The produce stages: each histogram's buckets rise to +Inf with the count (what
	// histogram_quantile needs), and the stages every produce passes counted this traffic
	// (order_wait counts only a produce pipelined behind another on its connection).
	stages := families["ringtail_produce_stage_seconds"]
	if stages == nil || len(stages.GetMetric()) == 0 {
		t.Fatalf("no produce stage histograms")
	}
	counted := map[string]uint64{}
	for _, metric := range stages.GetMetric() {
		histogram := metric.GetHistogram()
		stage := ""
		for _, label := range metric.GetLabel() {
			if label.GetName() == "stage" {
				stage = label.GetValue()
			}
		}
		counted[stage] = histogram.GetSampleCount()
		buckets := histogram.GetBucket()
		for i := 1; i < len(buckets); i++ {
			if buckets[i].GetUpperBound() <= buckets[i-1].GetUpperBound() ||
				buckets[i].GetCumulativeCount() < buckets[i-1].GetCumulativeCount() {
				t.Errorf("produce stage %q: buckets out of order at le=%v", stage, buckets[i].GetUpperBound())
			}
		}
		if n := len(buckets); n == 0 || buckets[n-1].GetCumulativeCount() > histogram.GetSampleCount() {
			t.Errorf("produce stage %q: buckets do not end within the count", stage)
		}
	}
	for _, stage := range []string{"frame_read", "decode", "hop", "append", "write", "flush", "response_write"} {
		if counted[stage] == 0 {
			t.Errorf("produce stage %q counted nothing after %d records (stages: %v)", stage, records, counted)
		}
	}
	if produced := families["ringtail_requests_total"]; produced != nil {
		var total float64
		for _, metric := range produced.GetMetric() {
			total += metric.GetCounter().GetValue()
		}
		if total == 0 {
			t.Errorf("ringtail_requests_total counted no requests")
		}
	}
}
