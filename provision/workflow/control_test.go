package workflow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// TestControlCluster: broker start|stop without a node act on every node
// of a cluster at once; with --node on that node only; a node that cannot
// be reached is named and does not keep the others from their action.
func TestControlCluster(t *testing.T) {
	ctx := context.Background()
	f, rec, _, d := trioRecord(t)
	reset := func() { d.mu.Lock(); d.dials = nil; d.mu.Unlock() }

	out, err := Control(ctx, f.env, ControlOptions{Name: "trio", Action: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Nodes, []int{1, 2, 3}) || len(d.dials) != 3 {
		t.Errorf("stop without a node: nodes %v, dials %v; want every node", out.Nodes, d.dials)
	}

	reset()
	out, err = Control(ctx, f.env, ControlOptions{Name: "trio", Node: 2, Action: "start"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Nodes, []int{2}) || !slices.Equal(d.dials, []string{rec.Nodes[1].Host}) {
		t.Errorf("start --node 2: nodes %v, dials %v", out.Nodes, d.dials)
	}

	reset()
	d.dead[rec.Nodes[2].Host] = true
	_, err = Control(ctx, f.env, ControlOptions{Name: "trio", Action: "start"})
	if err == nil || !strings.Contains(err.Error(), "node 3 ("+rec.Nodes[2].Host+")") {
		t.Errorf("start with node 3 unreachable: %v; want an error naming node 3", err)
	}
	if len(d.dials) != 3 {
		t.Errorf("start with node 3 unreachable dialed %v; want all three tried", d.dials)
	}

	if _, err := Control(ctx, f.env, ControlOptions{Name: "trio", Action: "restart"}); err == nil {
		t.Error("a restart of every node through Control: want an error (it is Restart's rolling restart)")
	}
}

// TestStopNodeGate: broker stop --node N on a cluster runs only when the
// cluster can lose node N; it may stop a node that is itself the one
// behind; --force skips the check; nothing is dialed when it refuses.
func TestStopNodeGate(t *testing.T) {
	ctx := context.Background()
	f, _, _, d := trioRecord(t)
	c := newFakeCluster()
	f.env.RollClient = func(context.Context, *Broker) (RollClient, error) { return c, nil }
	urp := []kafkaclient.TopicPartition{{Topic: "orders", Partition: 0}}
	for _, tc := range []struct {
		name    string
		missing int32 // the broker missing from the ISR of orders-0 (0: none)
		force   bool
		refused bool
	}{
		{name: "healthy"},
		{name: "node 3 behind, stopping node 2", missing: 3, refused: true},
		{name: "node 3 behind, stopping node 2 with --force", missing: 3, force: true},
		{name: "node 2 itself behind", missing: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.urp, c.missing = nil, map[int32][]kafkaclient.TopicPartition{}
			if tc.missing != 0 {
				c.urp, c.missing[tc.missing] = urp, urp
			}
			d.mu.Lock()
			d.dials = nil
			d.mu.Unlock()
			_, err := Control(ctx, f.env, ControlOptions{Name: "trio", Node: 2, Action: "stop", Force: tc.force})
			var refused *StopRefusedError
			if got := errors.As(err, &refused); got != tc.refused {
				t.Fatalf("refused %v, want %v: %v", got, tc.refused, err)
			}
			if !tc.refused {
				if err != nil || len(d.dials) != 1 {
					t.Errorf("stop: %v, dials %v", err, d.dials)
				}
				return
			}
			if len(d.dials) != 0 {
				t.Errorf("a refused stop dialed %v", d.dials)
			}
			for _, want := range []string{"node 2 of trio was not stopped", "missing from their ISR: node 3", "--force", "kafkaup broker stop trio without --node"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message lacks %q:\n%v", want, err)
				}
			}
		})
	}
}
