package kafkaclient

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestCheckReadsBackEveryAckedRecord runs the no-loss check against the
// real broker, with the broker frozen (SIGSTOP) for a while in the middle:
// every acknowledged record is read back once, records already in the
// topic are not counted, and the freeze shows as the longest stall.
func TestCheckReadsBackEveryAckedRecord(t *testing.T) {
	c, ctx := dial(t)
	b := broker(t)
	topic := topicName(t, "check")
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, topic, [][]byte{[]byte("before the check")}); err != nil {
		t.Fatal(err)
	}

	k, err := StartCheck(ctx, c, CheckOptions{Topic: topic, Every: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	const freeze = 1500 * time.Millisecond
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(freeze)
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)

	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := k.Stop(stopCtx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %v", r)
	if r.Acked < 100 || r.Lost != 0 || r.Duplicated != 0 || r.Consumed != r.Acked {
		t.Errorf("want >= 100 acked, all consumed once; got %v", r)
	}
	if r.LongestStall < freeze-200*time.Millisecond || r.LongestStall > freeze+5*time.Second {
		t.Errorf("longest stall %v, want about the %v freeze", r.LongestStall, freeze)
	}
	if r.P50 <= 0 || r.P99 < r.P50 || r.P99 < freeze/2 {
		t.Errorf("latency p50 %v p99 %v: want 0 < p50 <= p99, and p99 showing the freeze", r.P50, r.P99)
	}
	if r.String() == "" {
		t.Error("empty report text")
	}
}

// TestCheckReportCounts is the arithmetic of the report on figures set by
// hand: a record acked and never read is lost, one read twice is
// duplicated, one read but never acked is neither.
func TestCheckReportCounts(t *testing.T) {
	k := &Check{
		acked:     map[int64]bool{1: true, 2: true, 3: true},
		consumed:  map[int64]int{1: 1, 3: 2, 4: 1},
		latencies: []time.Duration{5, 1, 3, 2, 4},
		stall:     time.Second,
		errors:    2,
	}
	r := k.report()
	want := CheckReport{Acked: 3, Consumed: 3, Lost: 1, Duplicated: 1, LongestStall: time.Second, P50: 3, P99: 5, Errors: 2}
	if r != want {
		t.Errorf("report = %+v, want %+v", r, want)
	}
	if k.allRead() {
		t.Error("allRead with record 2 unread")
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}
