package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// ClusterView is what a roll asks the cluster before and after each node
// (*kafkaclient.Client has it).
type ClusterView interface {
	PartitionHealth(ctx context.Context) (*kafkaclient.PartitionHealth, error)
	Quorum(ctx context.Context) (*kafkaclient.Quorum, error)
	Cluster(ctx context.Context) (*kafkaclient.ClusterInfo, error)
}

// RollWaits bound a roll's waits; zero fields take the defaults.
type RollWaits struct {
	// Rejoin is how long a restarted node has to be registered again and
	// back in the ISR of all its partitions (default 5 minutes).
	Rejoin time.Duration
	// Healthy is how long the roll waits, before a node other than the
	// first, for the cluster to be healthy again (default 2 minutes).
	// Before the first node it does not wait: it refuses at once.
	Healthy time.Duration
	// Poll is the pause between two looks at the cluster (default 1s).
	Poll time.Duration
	// Progress is how often a wait prints a line (default 10s).
	Progress time.Duration
}

func (w RollWaits) withDefaults() RollWaits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&w.Rejoin, 5*time.Minute)
	def(&w.Healthy, 2*time.Minute)
	def(&w.Poll, time.Second)
	def(&w.Progress, 10*time.Second)
	return w
}

// Voters within this many metadata records of the leader, and caught up
// within quorumFresh, count as caught up (cp-ansible accepts a lag under
// 1000; a stopped voter's lag grows slowly, so freshness is checked too).
const (
	quorumMaxLag = 1000
	quorumFresh  = 30 * time.Second
)

// RolledNode is what a roll did on one node.
type RolledNode struct {
	ID        int           `json:"id"`
	Host      string        `json:"host"`
	Role      string        `json:"role,omitempty"` // follower or active controller, when rolled
	Restarted bool          `json:"restarted"`
	Skipped   bool          `json:"skipped"` // nothing to do on this node
	Took      time.Duration `json:"-"`
	Seconds   float64       `json:"seconds"`
}

// nodeAction does a roll's work on node i (its index in the record) and
// says whether the broker was restarted or started.
type nodeAction func(ctx context.Context, i int) (restarted bool, err error)

// roller runs one node at a time: followers first, the active controller
// last (the leader is read again before each node: it moves), with the
// health gates before each node and the rejoin wait after it.
type roller struct {
	rec   state.Cluster
	view  ClusterView
	ui    UI
	waits RollWaits
	verb  string // what is done to a node, for messages: "restart", "reprovision"
}

// run does act on the nodes whose indexes are in todo, and reports every
// node (the others as skipped) in node order.
func (r *roller) run(ctx context.Context, todo []int, act nodeAction) ([]RolledNode, error) {
	r.waits = r.waits.withDefaults()
	report := make([]RolledNode, len(r.rec.Nodes))
	for i, n := range r.rec.Nodes {
		report[i] = RolledNode{ID: n.ID, Host: n.Host, Skipped: !slices.Contains(todo, i)}
	}
	for i, n := range r.rec.Nodes {
		if report[i].Skipped {
			r.ui.Printf("node %d (%s): nothing to change, not restarted", n.ID, n.Host)
		}
	}
	left := slices.Clone(todo)
	for len(left) > 0 {
		q, err := r.view.Quorum(ctx)
		if err != nil {
			return report, r.stopped(report, -1, left, fmt.Errorf("read the controller quorum: %w", err))
		}
		i, role := nextNode(r.rec, left, q.LeaderID)
		n := r.rec.Nodes[i]
		first := len(left) == len(todo)
		if err := r.gate(ctx, int32(n.ID), first); err != nil {
			if first {
				return report, &RollRefusedError{Name: r.rec.Name, Verb: r.verb, Err: err}
			}
			return report, r.stopped(report, i, left, err)
		}
		start := time.Now()
		r.ui.Printf("node %d (%s), %s: %s", n.ID, n.Host, role, r.verb)
		restarted, err := act(ctx, i)
		if err == nil && restarted {
			err = r.waitRejoin(ctx, int32(n.ID), start)
		}
		report[i].Role, report[i].Restarted = role, restarted
		report[i].Took = time.Since(start)
		report[i].Seconds = report[i].Took.Round(time.Millisecond).Seconds()
		if err != nil {
			return report, r.stopped(report, i, left, err)
		}
		left = slices.DeleteFunc(left, func(j int) bool { return j == i })
		what := "no restart needed"
		if restarted {
			what = "restarted, registered and back in the ISR of its partitions"
		}
		r.ui.Printf("node %d (%s): done in %s (%s)", n.ID, n.Host, report[i].Took.Round(100*time.Millisecond), what)
	}
	return report, nil
}

// nextNode picks, among the nodes left (indexes), the first one that is
// not the quorum's leader; the leader goes last.
func nextNode(rec state.Cluster, left []int, leader int32) (int, string) {
	for _, i := range left {
		if int32(rec.Nodes[i].ID) != leader {
			return i, "follower"
		}
	}
	return left[0], "active controller"
}

// gate checks the cluster is healthy enough to take node down: no
// partition under-replicated, under its minimum ISR or offline, and a
// majority of the voters caught up without it. Before the first node it
// looks once; later it waits up to waits.Healthy for the cluster to heal.
func (r *roller) gate(ctx context.Context, node int32, first bool) error {
	deadline := time.Now().Add(r.waits.Healthy)
	lastLine := time.Now()
	for {
		g, err := r.look(ctx, node)
		if err != nil {
			return err
		}
		if g == nil {
			return nil
		}
		g.Name = r.rec.Name
		if first || !time.Now().Before(deadline) {
			return g
		}
		if time.Since(lastLine) >= r.waits.Progress {
			r.ui.Printf("waiting for the cluster to be healthy before node %d: %s", node, g.summary())
			lastLine = time.Now()
		}
		if err := sleep(ctx, r.waits.Poll); err != nil {
			return err
		}
	}
}

// look reads the cluster's health and quorum and judges them for node.
func (r *roller) look(ctx context.Context, node int32) (*GateError, error) {
	h, err := r.view.PartitionHealth(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the partitions' health: %w", err)
	}
	q, err := r.view.Quorum(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the controller quorum: %w", err)
	}
	return gateProblem(h, q, node), nil
}

// gateProblem is the gate's decision, nil when node may go down.
func gateProblem(h *kafkaclient.PartitionHealth, q *kafkaclient.Quorum, node int32) *GateError {
	g := &GateError{Node: node, Leader: q.LeaderID, Voters: len(q.Voters),
		UnderReplicated: h.UnderReplicated, UnderMinISR: h.UnderMinISR, Offline: h.Offline, Missing: map[int32]int{}}
	for id, tps := range h.NotInISR {
		g.Missing[id] = len(tps)
	}
	caughtUp := 0
	for _, v := range q.Voters {
		fresh := v.LastCaughtUpAgo >= 0 && v.LastCaughtUpAgo <= quorumFresh
		switch {
		case v.LogEndOffset >= 0 && v.Lag <= quorumMaxLag && fresh:
			if v.ID != node {
				caughtUp++
			}
		default:
			g.Lagging = append(g.Lagging, v)
		}
	}
	// The voters left while node is down must still be a majority of all.
	g.QuorumShort = caughtUp < len(q.Voters)/2+1
	if h.OK() && !g.QuorumShort {
		return nil
	}
	return g
}

// waitRejoin waits until node is registered again and in the ISR of every
// partition it is a replica of.
func (r *roller) waitRejoin(ctx context.Context, node int32, start time.Time) error {
	deadline := time.Now().Add(r.waits.Rejoin)
	lastLine := time.Now()
	for {
		registered, out, err := r.rejoined(ctx, node)
		if err == nil && registered && len(out) == 0 {
			return nil
		}
		state := "not registered with the controller yet"
		switch {
		case err != nil:
			state = "the cluster did not answer: " + err.Error()
		case registered:
			state = fmt.Sprintf("registered, not yet back in the ISR of %d partitions (%s)", len(out), listPartitions(out, 5))
		}
		if !time.Now().Before(deadline) {
			return &RejoinError{Node: node, Waited: r.waits.Rejoin, State: state, Partitions: out}
		}
		if time.Since(lastLine) >= r.waits.Progress {
			r.ui.Printf("node %d: %s (%s so far)", node, state, time.Since(start).Round(time.Second))
			lastLine = time.Now()
		}
		if err := sleep(ctx, r.waits.Poll); err != nil {
			return err
		}
	}
}

func (r *roller) rejoined(ctx context.Context, node int32) (bool, []kafkaclient.TopicPartition, error) {
	info, err := r.view.Cluster(ctx)
	if err != nil {
		return false, nil, err
	}
	registered := slices.ContainsFunc(info.Brokers, func(b kafkaclient.BrokerInfo) bool { return b.ID == node })
	h, err := r.view.PartitionHealth(ctx)
	if err != nil {
		return registered, nil, err
	}
	return registered, h.NotInISR[node], nil
}

// stopped is the error of a roll that stopped at node index i (-1: between
// nodes), with the nodes left untouched named.
func (r *roller) stopped(report []RolledNode, i int, left []int, err error) error {
	e := &RollStoppedError{Name: r.rec.Name, Verb: r.verb, Err: err}
	if i >= 0 {
		e.Node, e.Host = r.rec.Nodes[i].ID, r.rec.Nodes[i].Host
	}
	for _, j := range left {
		if j != i {
			e.NotRolled = append(e.NotRolled, r.rec.Nodes[j].ID)
		}
	}
	for _, n := range report {
		if n.Role != "" && n.ID != e.Node {
			e.Rolled = append(e.Rolled, n.ID)
		}
	}
	return e
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// listPartitions names up to n partitions, and how many more there are.
func listPartitions(tps []kafkaclient.TopicPartition, n int) string {
	var names []string
	for i, tp := range tps {
		if i == n {
			names = append(names, fmt.Sprintf("and %d more", len(tps)-n))
			break
		}
		names = append(names, tp.String())
	}
	return strings.Join(names, ", ")
}
