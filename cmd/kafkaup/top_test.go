package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func TestPrintTop(t *testing.T) {
	f := workflow.TopFrame{Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Brokers: 1,
		Topics: []workflow.TopTopic{{Name: "orders", Partitions: 3, Records: 1200, RecordsPerSec: 40, RateKnown: true}, {Name: "new", Partitions: 1}},
		Groups: []kafkaclient.GroupTrend{{Name: "billing", Lag: 25, LagPerSec: 2.5, Known: true}},
		Nodes: []workflow.TopNode{{ID: 1, Host: "203.0.113.7", HeapUsedBytes: 120 << 20, HeapMax: "400m", RSSBytes: 300 << 20, DataFreeBytes: 10 << 30},
			{ID: 2, Host: "203.0.113.8", Error: "cannot log in: timeout"}}}
	var out bytes.Buffer
	printTop(&out, "dev", f)
	for _, want := range []string{"dev at 10:00:00: 1 broker(s)", "orders", "40.0", "billing", "+2.5", "120M/400m", "300M", "10G", "cannot log in: timeout"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("top lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), "new") || !strings.Contains(out.String(), "-\n") {
		t.Errorf("a topic without a rate yet should show -:\n%s", out.String())
	}
}
