package kafkaclient

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRates(t *testing.T) {
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	prev := &Snapshot{Time: t0,
		Topics: []TopicStat{
			{Name: "steady", ID: "A", EndOffsets: 1000},
			{Name: "idle", ID: "B", EndOffsets: 50},
			{Name: "recreated", ID: "C", EndOffsets: 900},
			{Name: "shrunk", EndOffsets: 900}, // no ids (old broker): a drop means unknown
			{Name: "partly", ID: "E", EndOffsets: 10, Unknown: 1},
		},
		Groups: []GroupSummary{
			{Name: "behind", Lag: 100},
			{Name: "catching-up", Lag: 100},
			{Name: "half-known", Lag: 5, LagUnknown: 1},
			{Name: "share", Lag: -1, Members: -1},
		},
	}
	cur := &Snapshot{Time: t0.Add(2 * time.Second),
		Topics: []TopicStat{
			{Name: "idle", ID: "B", EndOffsets: 50},
			{Name: "new", ID: "N", EndOffsets: 10},
			{Name: "partly", ID: "E", EndOffsets: 30},
			{Name: "recreated", ID: "D", EndOffsets: 1200}, // more records, but another topic
			{Name: "shrunk", EndOffsets: 20},
			{Name: "steady", ID: "A", EndOffsets: 1500},
		},
		Groups: []GroupSummary{
			{Name: "behind", Lag: 160},
			{Name: "catching-up", Lag: 40},
			{Name: "fresh", Lag: 7},
			{Name: "half-known", Lag: 9},
			{Name: "share", Lag: -1, Members: -1},
		},
	}
	got := Rates(prev, cur)
	want := RateReport{Seconds: 2,
		Topics: []TopicRate{
			{Name: "idle", RecordsPerSec: 0, Known: true},
			{Name: "new"},
			{Name: "partly"},
			{Name: "recreated"},
			{Name: "shrunk"},
			{Name: "steady", RecordsPerSec: 250, Known: true},
		},
		Groups: []GroupTrend{
			{Name: "behind", Lag: 160, LagPerSec: 30, Known: true},
			{Name: "catching-up", Lag: 40, LagPerSec: -30, Known: true},
			{Name: "fresh", Lag: 7},
			{Name: "half-known", Lag: 9},
			{Name: "share", Lag: -1},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Rates:\n got %+v\nwant %+v", got, want)
	}

	// The first frame, a repeated frame and a clock that went back: no
	// rate is known, and nothing divides by zero.
	for name, p := range map[string]*Snapshot{"no previous": nil, "same time": cur, "later previous": {Time: cur.Time.Add(time.Second), Topics: cur.Topics, Groups: cur.Groups}} {
		r := Rates(p, cur)
		if r.Seconds != 0 || len(r.Topics) != len(cur.Topics) || len(r.Groups) != len(cur.Groups) {
			t.Errorf("%s: %+v", name, r)
		}
		for _, tr := range r.Topics {
			if tr.Known || tr.RecordsPerSec != 0 {
				t.Errorf("%s: topic %+v", name, tr)
			}
		}
		for _, g := range r.Groups {
			if g.Known || g.LagPerSec != 0 {
				t.Errorf("%s: group %+v", name, g)
			}
		}
	}
	if r := Rates(prev, nil); r.Topics == nil || r.Groups == nil || len(r.Topics)+len(r.Groups) != 0 {
		t.Errorf("Rates(prev, nil) = %+v", r)
	}
}

// Two snapshots while a producer runs show its topic's rate, and the lag
// of a stopped group on that topic growing.
func TestSnapshotRates(t *testing.T) {
	c, ctx := groupTest(t)
	topic := topicName(t, "top")
	group := "top-" + topic
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if per := produceKeyed(t, ctx, c, topic, "a", 20); len(per) != 2 {
		// The check of lag against records written below needs a
		// committed offset in each partition.
		t.Fatalf("records went to partitions %v, want both", per)
	}
	cons := groupMember(t, c, group, topic, kgo.NewOffset().AtStart())
	consumeN(t, ctx, cons, 20)
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	waitGroup(t, ctx, c, group, "empty", func(g *GroupInfo) bool { return g.State == "Empty" })

	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var produced int
	go func() {
		defer wg.Done()
		for pctx.Err() == nil {
			if _, err := c.Produce(pctx, topic, [][]byte{[]byte("x"), []byte("y")}); err == nil {
				produced += 2
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { stop(); wg.Wait() }()

	time.Sleep(300 * time.Millisecond)
	s1, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s2, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	wg.Wait()

	b := broker(t)
	if len(s2.Brokers) != 1 || s2.Brokers[0] != (BrokerInfo{ID: 1, Addr: b.Bootstrap}) || s2.Offline != 0 || s2.UnderReplicated != 0 {
		t.Errorf("snapshot cluster = brokers %+v, offline %d, under-replicated %d", s2.Brokers, s2.Offline, s2.UnderReplicated)
	}
	for _, ts := range s2.Topics {
		if ts.Name == "__consumer_offsets" || ts.Name == VerifyTopic {
			t.Errorf("snapshot lists %s", ts.Name)
		}
	}
	i := slices.IndexFunc(s2.Topics, func(ts TopicStat) bool { return ts.Name == topic })
	if i < 0 {
		t.Fatalf("snapshot lacks %s: %+v", topic, s2.Topics)
	}
	if ts := s2.Topics[i]; ts.Partitions != 2 || ts.EndOffsets < 20 || ts.Unknown != 0 || len(ts.ID) != 22 {
		t.Errorf("topic in snapshot = %+v", ts)
	}
	r := Rates(s1, s2)
	t.Logf("%.2fs apart; %d records produced in all", r.Seconds, produced)
	ti := slices.IndexFunc(r.Topics, func(tr TopicRate) bool { return tr.Name == topic })
	if ti < 0 || !r.Topics[ti].Known || r.Topics[ti].RecordsPerSec <= 0 {
		t.Errorf("topic rate = %+v", r.Topics)
	} else {
		t.Logf("%s: %.1f records/s", topic, r.Topics[ti].RecordsPerSec)
	}
	gi := slices.IndexFunc(r.Groups, func(g GroupTrend) bool { return g.Name == group })
	if gi < 0 {
		t.Fatalf("rates lack group %s: %+v", group, r.Groups)
	}
	g1 := s1.Groups[slices.IndexFunc(s1.Groups, func(g GroupSummary) bool { return g.Name == group })]
	g2 := s2.Groups[slices.IndexFunc(s2.Groups, func(g GroupSummary) bool { return g.Name == group })]
	if gt := r.Groups[gi]; !gt.Known || gt.LagPerSec <= 0 || g2.Lag <= g1.Lag || g2.State != "Empty" {
		t.Errorf("stopped group: lag %d then %d (%s), trend %+v", g1.Lag, g2.Lag, g2.State, gt)
	} else {
		t.Logf("%s: lag %d -> %d, %+.1f/s", group, g1.Lag, g2.Lag, gt.LagPerSec)
	}
	// The records the snapshots saw written match the lag they saw grow:
	// nobody consumed in between.
	ts1 := s1.Topics[slices.IndexFunc(s1.Topics, func(ts TopicStat) bool { return ts.Name == topic })]
	if grew, written := g2.Lag-g1.Lag, s2.Topics[i].EndOffsets-ts1.EndOffsets; grew != written {
		t.Errorf("lag grew by %d but %d records were written", grew, written)
	}
}
