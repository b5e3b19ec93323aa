package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/scripts"
)

// fakeCluster is a 3-node cluster as a roll sees it. A node restarted by
// the fake action is out of the ISR of one partition for a few looks
// (rejoinLooks; -1: never back), and the quorum leader can move.
type fakeCluster struct {
	mu          sync.Mutex
	leader      int32
	moveLeader  map[int32]int32 // after node k's restart, the leader is v
	urp         []kafkaclient.TopicPartition
	missing     map[int32][]kafkaclient.TopicPartition
	stale       map[int32]bool // voters last caught up long ago
	rejoinLooks int
	outFor      map[int32]int
	unregister  map[int32]bool
	order       []int32
	finalized   []int16
	mv          kafkaclient.MetadataVersion
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{leader: 1, moveLeader: map[int32]int32{}, missing: map[int32][]kafkaclient.TopicPartition{},
		stale: map[int32]bool{}, outFor: map[int32]int{}, unregister: map[int32]bool{}, rejoinLooks: 2,
		mv: kafkaclient.MetadataVersion{Finalized: 25, Supported: map[int32]int16{1: 25, 2: 25, 3: 25}}}
}

func (c *fakeCluster) PartitionHealth(context.Context) (*kafkaclient.PartitionHealth, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := &kafkaclient.PartitionHealth{UnderReplicated: append([]kafkaclient.TopicPartition{}, c.urp...), NotInISR: map[int32][]kafkaclient.TopicPartition{}}
	for id, tps := range c.missing {
		h.NotInISR[id] = tps
	}
	for id, n := range c.outFor {
		if n == 0 {
			continue
		}
		tp := kafkaclient.TopicPartition{Topic: "orders", Partition: id}
		h.UnderReplicated = append(h.UnderReplicated, tp)
		h.NotInISR[id] = append(h.NotInISR[id], tp)
		if n > 0 {
			c.outFor[id] = n - 1
		}
	}
	return h, nil
}

func (c *fakeCluster) Quorum(context.Context) (*kafkaclient.Quorum, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := &kafkaclient.Quorum{LeaderID: c.leader}
	for id := int32(1); id <= 3; id++ {
		v := kafkaclient.QuorumReplica{ID: id, LogEndOffset: 100, LastCaughtUpAgo: 100 * time.Millisecond}
		if c.stale[id] {
			v.Lag, v.LastCaughtUpAgo = 40, 3*time.Minute
		}
		q.Voters = append(q.Voters, v)
	}
	return q, nil
}

func (c *fakeCluster) Cluster(context.Context) (*kafkaclient.ClusterInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := &kafkaclient.ClusterInfo{}
	for id := int32(1); id <= 3; id++ {
		if !c.unregister[id] {
			info.Brokers = append(info.Brokers, kafkaclient.BrokerInfo{ID: id})
		}
	}
	return info, nil
}

func (c *fakeCluster) MetadataVersion(context.Context) (*kafkaclient.MetadataVersion, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mv := c.mv
	return &mv, nil
}

func (c *fakeCluster) FinalizeMetadataVersion(_ context.Context, level int16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finalized = append(c.finalized, level)
	return nil
}

func (c *fakeCluster) Close() {}

// restarted is what the fake action does to node id.
func (c *fakeCluster) restarted(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order = append(c.order, id)
	c.outFor[id] = c.rejoinLooks
	if to, ok := c.moveLeader[id]; ok {
		c.leader = to
	}
}

func rollTrio() state.Cluster {
	rec := state.Cluster{Name: "trio", ClusterID: "cid"}
	for i := 1; i <= 3; i++ {
		rec.Nodes = append(rec.Nodes, state.Node{ID: i, Host: fmt.Sprintf("203.0.113.%d", i)})
	}
	return rec
}

var fastWaits = RollWaits{Rejoin: 300 * time.Millisecond, Healthy: 300 * time.Millisecond, Poll: time.Millisecond, Progress: 50 * time.Millisecond}

func rollAll(t *testing.T, c *fakeCluster, todo []int) ([]RolledNode, *fakeUI, error) {
	t.Helper()
	ui := &fakeUI{}
	r := &roller{rec: rollTrio(), view: c, ui: ui, waits: fastWaits, verb: "restart"}
	nodes, err := r.run(context.Background(), todo, func(_ context.Context, i int) (bool, error) {
		c.restarted(int32(i + 1))
		return true, nil
	})
	return nodes, ui, err
}

func TestRollFollowersFirstLeaderLast(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader int32
		moves  map[int32]int32
		want   string
	}{
		{"leader 1", 1, nil, "[2 3 1]"},
		{"leader 2", 2, nil, "[1 3 2]"},
		{"leader 3", 3, nil, "[1 2 3]"},
		// Node 1's restart moves the leadership to node 2, not yet done:
		// node 2 then waits for last, and node 3 goes before it.
		{"the leader moves to a node not done", 3, map[int32]int32{1: 2}, "[1 3 2]"},
		// First restarted, node 1 becomes the leader again later on: a
		// node already done can lead, the others go in order.
		{"the leader moves to a node done", 2, map[int32]int32{1: 3, 3: 1}, "[1 2 3]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeCluster()
			c.leader = tc.leader
			if tc.moves != nil {
				c.moveLeader = tc.moves
			}
			nodes, ui, err := rollAll(t, c, []int{0, 1, 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(c.order); got != tc.want {
				t.Errorf("order %s, want %s\n%s", got, tc.want, strings.Join(ui.lines, "\n"))
			}
			last := nodes[c.order[2]-1]
			if last.Role != "active controller" || !last.Restarted {
				t.Errorf("last node %+v, want the active controller, restarted", last)
			}
			for _, n := range nodes {
				if n.Skipped || !n.Restarted || n.Seconds < 0 {
					t.Errorf("node %+v", n)
				}
			}
		})
	}
}

func TestRollRefusesUnderReplicated(t *testing.T) {
	c := newFakeCluster()
	c.urp = []kafkaclient.TopicPartition{{Topic: "orders", Partition: 0}, {Topic: "__consumer_offsets", Partition: 7}}
	c.missing[3] = c.urp
	_, _, err := rollAll(t, c, []int{0, 1, 2})
	var refused *RollRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("err = %v, want a *RollRefusedError", err)
	}
	if len(c.order) != 0 {
		t.Errorf("nodes restarted although the roll was refused: %v", c.order)
	}
	msg := err.Error()
	for _, want := range []string{"did not start, and no node was changed", "2 partitions under-replicated", "orders-0", "__consumer_offsets-7",
		"node 3 (2 partitions)", "kafkaup broker start trio --node 3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestRollRefusesQuorumBehind(t *testing.T) {
	c := newFakeCluster()
	c.leader = 1
	c.stale[3] = true // node 2 goes first: without it, only voter 1 is caught up
	_, _, err := rollAll(t, c, []int{0, 1, 2})
	var refused *RollRefusedError
	if !errors.As(err, &refused) || len(c.order) != 0 {
		t.Fatalf("err = %v, order %v: want refused with nothing restarted", err, c.order)
	}
	if msg := err.Error(); !strings.Contains(msg, "too few of the 3 controllers are caught up") || !strings.Contains(msg, "voter 3 (40 records behind, last caught up 3m0s ago)") {
		t.Errorf("message:\n%s", msg)
	}
}

func TestRollWaitsForHealthBetweenNodes(t *testing.T) {
	c := newFakeCluster()
	c.rejoinLooks = 0 // the rejoin check passes at once...
	c.leader = 1
	// ...but the restarted node's partitions stay under-replicated for a few more looks: the next node waits.
	ui := &fakeUI{}
	r := &roller{rec: rollTrio(), view: c, ui: ui, waits: fastWaits, verb: "restart"}
	_, err := r.run(context.Background(), []int{0, 1, 2}, func(_ context.Context, i int) (bool, error) {
		c.restarted(int32(i + 1))
		c.mu.Lock()
		c.urp = []kafkaclient.TopicPartition{{Topic: "orders", Partition: 1}}
		c.mu.Unlock()
		go func() { time.Sleep(20 * time.Millisecond); c.mu.Lock(); c.urp = nil; c.mu.Unlock() }()
		return true, nil
	})
	if err != nil || fmt.Sprint(c.order) != "[2 3 1]" {
		t.Fatalf("err %v, order %v", err, c.order)
	}
}

func TestRollStopsWhenNodeDoesNotRejoin(t *testing.T) {
	c := newFakeCluster()
	c.leader = 1
	c.rejoinLooks = -1 // node 2 never gets back in the ISR
	nodes, ui, err := rollAll(t, c, []int{0, 1, 2})
	var stopped *RollStoppedError
	var rejoin *RejoinError
	if !errors.As(err, &stopped) || !errors.As(err, &rejoin) {
		t.Fatalf("err = %v, want a *RollStoppedError from a *RejoinError", err)
	}
	if fmt.Sprint(c.order) != "[2]" || stopped.Node != 2 || fmt.Sprint(stopped.NotRolled) != "[1 3]" {
		t.Errorf("order %v, stopped %+v", c.order, stopped)
	}
	if msg := err.Error(); !strings.Contains(msg, "stopped at node 2 (203.0.113.2)") || !strings.Contains(msg, "not yet back in the ISR of 1 partitions (orders-2)") ||
		!strings.Contains(msg, "Not touched: node 1, node 3") || !strings.Contains(msg, "The other nodes keep serving") {
		t.Errorf("message:\n%s", msg)
	}
	if nodes[0].Role != "" || nodes[2].Role != "" {
		t.Errorf("untouched nodes have a role: %+v", nodes)
	}
	if !strings.Contains(strings.Join(ui.lines, "\n"), "node 2: registered, not yet back in the ISR") {
		t.Errorf("no progress line while waiting:\n%s", strings.Join(ui.lines, "\n"))
	}
}

func TestRollStopsWhenNodeDoesNotRegister(t *testing.T) {
	c := newFakeCluster()
	c.leader = 3
	c.unregister[1] = true
	_, _, err := rollAll(t, c, []int{0, 1, 2})
	if err == nil || !strings.Contains(err.Error(), "node 1 was restarted but after 300ms it is not registered with the controller yet") {
		t.Fatalf("err = %v", err)
	}
}

func TestRollOnlyTheNodesWithWork(t *testing.T) {
	c := newFakeCluster()
	c.leader = 2
	nodes, ui, err := rollAll(t, c, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.order) != "[2]" || !nodes[0].Skipped || !nodes[2].Skipped || nodes[1].Role != "active controller" {
		t.Errorf("order %v, nodes %+v", c.order, nodes)
	}
	if !strings.Contains(strings.Join(ui.lines, "\n"), "node 1 (203.0.113.1): nothing to change, not restarted") {
		t.Errorf("lines:\n%s", strings.Join(ui.lines, "\n"))
	}
}

func TestFinalizeDecision(t *testing.T) {
	mv := func(fin int16, sup ...int16) *kafkaclient.MetadataVersion {
		m := &kafkaclient.MetadataVersion{Finalized: fin, Supported: map[int32]int16{}}
		for i, s := range sup {
			m.Supported[int32(i+1)] = s
		}
		return m
	}
	all := func(v string) map[int]string { return map[int]string{1: v, 2: v, 3: v} }
	for _, tc := range []struct {
		name     string
		versions map[int]string
		mv       *kafkaclient.MetadataVersion
		level    int16
		finalize bool
		msg      string
	}{
		{"4.0.0 to 4.0.1 keeps 4.0-IV3", all("4.0.1"), mv(25, 25, 25, 25), 0, false, "already at 4.0-IV3, the newest every node running Kafka 4.0.1 supports"},
		{"a real raise", all("4.0.0"), mv(21, 25, 25, 25), 25, true, "finalized from 3.9-IV0 to 4.0-IV3"},
		{"the lowest supported wins", all("4.0.0"), mv(21, 25, 23, 25), 23, true, "to 4.0-IV1"},
		{"a node on the old version", map[int]string{1: "4.0.1", 2: "4.0.0", 3: "4.0.1"}, mv(25, 25, 25, 25), 0, false, "error: metadata.version stays at 4.0-IV3: not every node runs Kafka 4.0.1 (node 2 runs 4.0.0)"},
		{"a broker did not answer", all("4.0.1"), mv(21, 25, 25), 0, false, "error: metadata.version stays at 3.9-IV0: only 2 of 3 brokers answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			level, f, err := finalizeDecision("4.0.1", tc.versions, tc.mv)
			if tc.name == "a real raise" || tc.name == "the lowest supported wins" {
				level, f, err = finalizeDecision("4.0.0", tc.versions, tc.mv)
			}
			got := f.Message
			if err != nil {
				got = "error: " + err.Error()
			}
			if level != tc.level || f.Finalize != tc.finalize || !strings.Contains(got, tc.msg) {
				t.Errorf("level %d finalize %v %q; want %d %v %q", level, f.Finalize, got, tc.level, tc.finalize, tc.msg)
			}
		})
	}
}

// TestReprovisionClusterRolls: a reprovision of a cluster plans every
// node, rolls only the nodes with changes (followers first), and
// finalizes after an upgrade; refused, it changes neither a node nor the
// record.
func TestReprovisionClusterRolls(t *testing.T) {
	f := newClusterFakes(t)
	if _, err := provisionTrio(t, f, threeHosts()); err != nil {
		t.Fatal(err)
	}
	c := newFakeCluster()
	c.leader = 1
	f.env.RollClient = func(context.Context, *Broker) (RollClient, error) { return c, nil }
	var mu sync.Mutex
	var applied []int
	unchanged := map[int]bool{3: true}
	f.env.Engine = func(_ context.Context, _ provision.Host, s provision.Spec, host string, o provision.Options) (*provision.Result, error) {
		res := &provision.Result{Host: host, ClusterID: "cid", Systemd: true, DryRun: o.DryRun}
		res.Facts.KafkaCurrent = "4.0.0"
		if unchanged[s.NodeID] {
			res.Facts.KafkaCurrent = s.KafkaVersion
			return res, nil
		}
		steps := []provision.Step{{ID: "kafka"}, {ID: "service", Script: scripts.Service{Action: "restart"}}}
		for _, st := range steps {
			res.Plan = append(res.Plan, provision.PlannedStep{ID: st.ID})
		}
		if o.DryRun {
			return res, nil
		}
		if _, err := o.BeforeApply(steps); err != nil {
			return res, err
		}
		mu.Lock()
		applied = append(applied, s.NodeID)
		mu.Unlock()
		c.restarted(int32(s.NodeID))
		res.FactsAfter.KafkaCurrent = s.KafkaVersion
		return res, nil
	}
	v := "4.0.1"
	before, err := f.store.Load("trio")
	if err != nil {
		t.Fatal(err)
	}

	c.urp = []kafkaclient.TopicPartition{{Topic: "orders", Partition: 0}}
	_, err = Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "trio", Overrides: state.Overrides{KafkaVersion: &v}, Waits: fastWaits})
	var refused *RollRefusedError
	if !errors.As(err, &refused) || len(applied) != 0 {
		t.Fatalf("with a partition under-replicated: err %v, applied on %v", err, applied)
	}
	if after, _ := f.store.Load("trio"); after.Spec.KafkaVersion != before.Spec.KafkaVersion {
		t.Errorf("a refused roll recorded Kafka %s", after.Spec.KafkaVersion)
	}

	c.urp = nil
	out, err := Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "trio", Overrides: state.Overrides{KafkaVersion: &v}, Waits: fastWaits})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(applied) != "[2 1]" || fmt.Sprint(c.order) != "[2 1]" {
		t.Errorf("applied on %v, restarted %v; want node 2 then the leader 1, node 3 untouched", applied, c.order)
	}
	if !out.Roll[2].Skipped || out.Roll[0].Role != "active controller" {
		t.Errorf("roll %+v", out.Roll)
	}
	if out.Finalize == nil || out.Finalize.Finalize || !strings.Contains(out.Finalize.Message, "already at 4.0-IV3") || len(c.finalized) != 0 {
		t.Errorf("finalize %+v (calls %v)", out.Finalize, c.finalized)
	}
	if after, _ := f.store.Load("trio"); after.Spec.KafkaVersion != "4.0.1" {
		t.Errorf("recorded Kafka %s after the roll", after.Spec.KafkaVersion)
	}
}
