package kafkaclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupTest connects to the shared broker, with a context long enough for
// consumer groups to form.
func groupTest(t *testing.T) (*Client, context.Context) {
	t.Helper()
	c, _ := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c, ctx
}

// produceKeyed writes n records "<prefix>-<i>" with keys spread over the
// topic's partitions and returns how many landed in each partition.
func produceKeyed(t *testing.T, ctx context.Context, c *Client, topic, prefix string, n int) map[int32]int64 {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := fmt.Sprintf("%s-%d", prefix, i)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}
	}
	per := map[int32]int64{}
	for _, r := range c.cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("produce to %s: %v", topic, r.Err)
		}
		per[r.Record.Partition]++
	}
	return per
}

// groupMember is a franz-go consumer in group, reading topic with offsets
// committed only by hand; reset is where it starts in a partition with
// no committed offset.
func groupMember(t *testing.T, c *Client, group, topic string, reset kgo.Offset, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := c.kgoOpts()
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts,
		kgo.ClientID("groups-test"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeN polls until it has n records.
func consumeN(t *testing.T, ctx context.Context, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollRecords(ctx, n-len(got))
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	return got
}

// waitGroup polls DescribeGroup until ok accepts the group.
func waitGroup(t *testing.T, ctx context.Context, c *Client, group string, what string, ok func(*GroupInfo) bool) *GroupInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, err := c.DescribeGroup(ctx, group)
		if err == nil && ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s not %s after 30s: %+v, %v", group, what, g, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	slices.Sort(out)
	return out
}

// A group that never existed, and one deleted, are unknown to every
// group call. On a fresh broker this is also the first group request, which
// meets the coordinator while __consumer_offsets is being created.
func TestGroupUnknown(t *testing.T) {
	c, ctx := groupTest(t)
	topic := topicName(t, "unknown-group")
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	check := func(group string) {
		t.Helper()
		isUnknown := func(what string, err error) {
			t.Helper()
			if ue, ok := err.(*UnknownGroupError); !ok || ue.Group != group {
				t.Errorf("%s(%s) = %v, want *UnknownGroupError", what, group, err)
			}
		}
		_, err := c.DescribeGroup(ctx, group)
		isUnknown("DescribeGroup", err)
		isUnknown("DeleteGroup", c.DeleteGroup(ctx, group))
		_, err = c.PlanReset(ctx, group, topic, ResetTarget{Kind: ResetEarliest})
		isUnknown("PlanReset", err)
		err = c.ExecuteReset(ctx, &ResetPlan{Group: group, Topic: topic, Target: ResetTarget{Kind: ResetEarliest}, Partitions: []ResetPartition{{}}})
		isUnknown("ExecuteReset", err)
		list, err := c.ListGroups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range list {
			if g.Name == group {
				t.Errorf("ListGroups shows %s: %+v", group, g)
			}
		}
	}
	check("never-" + topic)

	// A group made by committing an offset from outside (no consumer),
	// then deleted.
	group := "deleted-" + topic
	if err := c.adm.CommitAllOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1}}}); err != nil {
		t.Fatal(err)
	}
	g, err := c.DescribeGroup(ctx, group)
	if err != nil || g.State != "Empty" || g.ProtocolType != "" || len(g.Partitions) != 1 || g.Partitions[0].Committed != 0 {
		t.Fatalf("group with only a commit: %+v, %v", g, err)
	}
	if err := c.DeleteGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	check(group)

	if _, err := c.DescribeGroup(ctx, ""); err == nil || !strings.Contains(err.Error(), "the consumer group name is empty") {
		t.Errorf("DescribeGroup(\"\") = %v", err)
	}
}

// A consumer reads N records, commits and stops; K more are written:
// the group lags by exactly K, per partition and in total. A reset to the
// earliest offsets makes the next consumer of the group read everything
// again.
func TestGroupLagAndResetToEarliest(t *testing.T) {
	c, ctx := groupTest(t)
	topic := topicName(t, "lag")
	group := "lag-" + topic
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	const n, k = 30, 7
	first := produceKeyed(t, ctx, c, topic, "a", n)

	cons := groupMember(t, c, group, topic, kgo.NewOffset().AtStart())
	read := consumeN(t, ctx, cons, n)
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	g := waitGroup(t, ctx, c, group, "stable with its member", func(g *GroupInfo) bool { return g.State == "Stable" && len(g.Members) == 1 })
	m := g.Members[0]
	if m.ClientID != "groups-test" || m.Host != "127.0.0.1" || len(m.Assigned) != 1 || m.Assigned[0].Topic != topic || !slices.Equal(m.Assigned[0].Partitions, []int32{0, 1, 2}) {
		t.Errorf("member = %+v", m)
	}
	if g.Type != GroupClassic || g.ProtocolType != "consumer" || g.Assignor == "" || g.Coordinator != 1 || g.Lag != 0 {
		t.Errorf("group with a consumer that read everything = %+v", g)
	}
	cons.Close()
	waitGroup(t, ctx, c, group, "empty", func(g *GroupInfo) bool { return g.State == "Empty" && len(g.Members) == 0 })

	more := produceKeyed(t, ctx, c, topic, "b", k)
	g, err := c.DescribeGroup(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if g.Lag != k || g.LagUnknown != 0 || len(g.Partitions) != 3 {
		t.Fatalf("after %d more records: lag %d (unknown %d), %d partitions: %+v", k, g.Lag, g.LagUnknown, len(g.Partitions), g)
	}
	for _, p := range g.Partitions {
		want := GroupPartition{Topic: topic, Partition: p.Partition, Committed: first[p.Partition], End: first[p.Partition] + more[p.Partition], Lag: more[p.Partition]}
		if p != want {
			t.Errorf("partition %d = %+v, want %+v", p.Partition, p, want)
		}
	}
	list, err := c.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(s GroupSummary) bool { return s.Name == group })
	if i < 0 || list[i] != (GroupSummary{Name: group, Type: GroupClassic, State: "Empty", ProtocolType: "consumer", Members: 0, Lag: k}) {
		t.Errorf("ListGroups entry = %+v (index %d)", list, i)
	}
	if !slices.IsSortedFunc(list, func(a, b GroupSummary) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("ListGroups not sorted: %+v", list)
	}

	plan, err := c.PlanReset(ctx, group, topic, ResetTarget{Kind: ResetEarliest})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Group != group || plan.Topic != topic || len(plan.Partitions) != 3 || plan.Changes() != 3 {
		t.Fatalf("plan = %+v", plan)
	}
	for i, p := range plan.Partitions {
		want := ResetPartition{Partition: int32(i), Current: first[int32(i)], New: 0, Start: 0, End: first[int32(i)] + more[int32(i)]}
		if p != want {
			t.Errorf("plan partition %d = %+v, want %+v", i, p, want)
		}
	}
	// Planning changes nothing.
	if g, err := c.DescribeGroup(ctx, group); err != nil || g.Lag != k {
		t.Fatalf("after planning: lag %+v, %v", g, err)
	}
	if err := c.ExecuteReset(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if g, err := c.DescribeGroup(ctx, group); err != nil || g.Lag != n+k {
		t.Fatalf("after the reset: %+v, %v; want lag %d", g, err, n+k)
	}

	// Starting "at the end" for partitions without a committed offset,
	// this consumer reads everything only because of the committed reset.
	again := groupMember(t, c, group, topic, kgo.NewOffset().AtEnd())
	reread := consumeN(t, ctx, again, n+k)
	want := append(values(read), values(produceValues("b", k))...)
	slices.Sort(want)
	if got := values(reread); !slices.Equal(got, want) {
		t.Errorf("re-read %d records %v, want %v", len(got), got, want)
	}
}

func produceValues(prefix string, n int) []*kgo.Record {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}
	}
	return recs
}

// While a consumer is in the group, delete and reset are refused with a
// *GroupActiveError, for a classic group and for a KIP-848 consumer group;
// once it stops, both work.
func TestGroupActiveRefused(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		opts []kgo.Opt
	}{
		{GroupClassic, nil},
		{GroupConsumer, []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			c, ctx := groupTest(t)
			topic := topicName(t, "active-"+tc.typ)
			group := "active-" + topic
			if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			produceKeyed(t, ctx, c, topic, "a", 10)
			cons := groupMember(t, c, group, topic, kgo.NewOffset().AtStart(), tc.opts...)
			consumeN(t, ctx, cons, 10)
			if err := cons.CommitUncommittedOffsets(ctx); err != nil {
				t.Fatal(err)
			}
			g := waitGroup(t, ctx, c, group, "stable with both partitions assigned", func(g *GroupInfo) bool {
				return g.State == "Stable" && len(g.Members) == 1 && len(g.Members[0].Assigned) == 1 && len(g.Members[0].Assigned[0].Partitions) == 2
			})
			if g.Type != tc.typ || g.Members[0].ClientID != "groups-test" || g.Lag != 0 || len(g.Partitions) != 2 || g.Partitions[0].ClientID != "groups-test" {
				t.Errorf("active group = %+v", g)
			}
			if list, err := c.ListGroups(ctx); err != nil || !slices.ContainsFunc(list, func(s GroupSummary) bool {
				return s.Name == group && s.Type == tc.typ && s.State == "Stable" && s.Members == 1
			}) {
				t.Errorf("ListGroups = %+v, %v", list, err)
			}

			isActive := func(what string, err error) {
				t.Helper()
				ae, ok := err.(*GroupActiveError)
				if !ok || ae.Group != group {
					t.Fatalf("%s = %v, want *GroupActiveError", what, err)
				}
				if !strings.Contains(err.Error(), "stop its consumers first") {
					t.Errorf("%s message: %s", what, err)
				}
				t.Logf("%s: %v", what, err)
			}
			isActive("DeleteGroup", c.DeleteGroup(ctx, group))
			_, err := c.PlanReset(ctx, group, topic, ResetTarget{Kind: ResetEarliest})
			isActive("PlanReset", err)
			// A plan made while the group was empty, executed once a
			// consumer is back, is refused too.
			stale := &ResetPlan{Group: group, Topic: topic, Target: ResetTarget{Kind: ResetEarliest},
				Partitions: []ResetPartition{{Partition: 0}, {Partition: 1}}}
			isActive("ExecuteReset", c.ExecuteReset(ctx, stale))
			if after, err := c.DescribeGroup(ctx, group); err != nil || !slices.Equal(after.Partitions, g.Partitions) {
				t.Errorf("the refused calls changed the group: %+v, %v; before: %+v", after, err, g.Partitions)
			}

			cons.Close()
			waitGroup(t, ctx, c, group, "empty", func(g *GroupInfo) bool { return g.State == "Empty" && len(g.Members) == 0 })
			plan, err := c.PlanReset(ctx, group, topic, ResetTarget{Kind: ResetEarliest})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.ExecuteReset(ctx, plan); err != nil {
				t.Fatal(err)
			}
			if g, err := c.DescribeGroup(ctx, group); err != nil || g.Lag != 10 {
				t.Errorf("after the reset: %+v, %v", g, err)
			}
			if err := c.DeleteGroup(ctx, group); err != nil {
				t.Fatal(err)
			}
			if _, err := c.DescribeGroup(ctx, group); !isErr[*UnknownGroupError](err) {
				t.Errorf("DescribeGroup after delete = %v", err)
			}
		})
	}
}

// Shift and datetime resets against real offsets and timestamps, and the
// errors a reset gives for a missing topic or a shift with nothing
// committed.
func TestGroupResetShiftAndDatetime(t *testing.T) {
	c, ctx := groupTest(t)
	topic := topicName(t, "reset")
	group := "reset-" + topic
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, topic, [][]byte{[]byte("0"), []byte("1"), []byte("2"), []byte("3"), []byte("4")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	mark := time.Now()
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Produce(ctx, topic, [][]byte{[]byte("5"), []byte("6"), []byte("7"), []byte("8"), []byte("9")}); err != nil {
		t.Fatal(err)
	}
	if err := c.adm.CommitAllOffsets(ctx, group, kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 8, LeaderEpoch: -1}}}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		to   ResetTarget
		want int64
	}{
		{ResetTarget{Kind: ResetShift, Shift: -3}, 5},
		{ResetTarget{Kind: ResetShift, Shift: 1}, 9},
		{ResetTarget{Kind: ResetShift, Shift: 100}, 10},
		{ResetTarget{Kind: ResetShift, Shift: -100}, 0},
		{ResetTarget{Kind: ResetDatetime, Time: mark}, 5},
		{ResetTarget{Kind: ResetDatetime, Time: mark.Add(time.Hour)}, 10},
		{ResetTarget{Kind: ResetDatetime, Time: mark.Add(-time.Hour)}, 0},
		{ResetTarget{Kind: ResetLatest}, 10},
		{ResetTarget{Kind: ResetEarliest}, 0},
	} {
		plan, err := c.PlanReset(ctx, group, topic, tc.to)
		if err != nil {
			t.Fatalf("%v: %v", tc.to, err)
		}
		if want := []ResetPartition{{Partition: 0, Current: 8, New: tc.want, Start: 0, End: 10}}; !slices.Equal(plan.Partitions, want) {
			t.Errorf("%v: plan %+v, want %+v", tc.to, plan.Partitions, want)
		}
	}
	plan, err := c.PlanReset(ctx, group, topic, ResetTarget{Kind: ResetShift, Shift: -3})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ExecuteReset(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if g, err := c.DescribeGroup(ctx, group); err != nil || len(g.Partitions) != 1 || g.Partitions[0].Committed != 5 || g.Lag != 5 {
		t.Errorf("after shift by -3: %+v, %v", g, err)
	}

	if _, err := c.PlanReset(ctx, group, topic+"-missing", ResetTarget{Kind: ResetEarliest}); !isNoTopic(err, topic+"-missing") {
		t.Errorf("PlanReset of a missing topic = %v", err)
	}
	other := topicName(t, "reset-other")
	if err := c.CreateTopic(ctx, TopicSpec{Name: other, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PlanReset(ctx, group, other, ResetTarget{Kind: ResetShift, Shift: -1})
	if err == nil || !strings.Contains(err.Error(), "has no committed offset on "+other+" partition 0, 1") || !strings.Contains(err.Error(), "use --to-earliest") {
		t.Errorf("shift with nothing committed = %v", err)
	}
	// A reset to a fixed position needs no committed offset: the group
	// starts reading the other topic at its end.
	plan, err = c.PlanReset(ctx, group, other, ResetTarget{Kind: ResetLatest})
	if err != nil || len(plan.Partitions) != 2 || plan.Partitions[0].Current != -1 {
		t.Fatalf("plan on a topic the group never read: %+v, %v", plan, err)
	}
	if err := c.ExecuteReset(ctx, plan); err != nil {
		t.Fatal(err)
	}
	if g, err := c.DescribeGroup(ctx, group); err != nil || len(g.Partitions) != 3 {
		t.Errorf("after resetting another topic: %+v, %v", g, err)
	}
}
