package workflow

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/state"
)

// ControlOptions is `kafkaup broker start|stop|restart NAME`.
type ControlOptions struct {
	Name   string
	Node   int // node id; 0: every node of a cluster (start, stop), the node of a single broker
	Action string
	// Force stops node Node even when the cluster is not healthy enough
	// to lose it (see stopGate).
	Force bool
	Dial  DialOptions
}

// ClusterStopGrace is how long a broker of a cluster stopped as a whole
// may take over its controlled shutdown (a few seconds when the quorum is
// there) before it is killed.
var ClusterStopGrace = 60 * time.Second

// Control starts, stops or restarts the broker and waits until it is
// really up (or gone). On a cluster without a node, start and stop act on
// every node at once: a node's broker serves only once a majority of the
// controllers runs, and nodes stopped one at a time leave the last one
// waiting for a quorum that is gone (Kafka gives up on a controlled
// shutdown after 5 minutes). Even at once, the node whose controlled
// shutdown is slowest can be left waiting so (KAFKA-19905): a broker
// still shutting down after ClusterStopGrace is killed, its files intact.
// A restart of a whole cluster is Restart's rolling restart.
func Control(ctx context.Context, env Env, o ControlOptions) (*ControlOutcome, error) {
	b, err := Open(env, o.Name, o.Node)
	if err != nil {
		return nil, err
	}
	nodes := []int{b.Index}
	if o.Node == 0 && len(b.Record.Nodes) > 1 {
		if o.Action == "restart" {
			return nil, fmt.Errorf("a restart of every node of %s is a rolling restart: use Restart", o.Name)
		}
		nodes = nodes[:0]
		for i := range b.Record.Nodes {
			nodes = append(nodes, i)
		}
	}
	if o.Action == "stop" && o.Node != 0 && len(b.Record.Nodes) > 1 && !o.Force {
		if err := stopGate(ctx, env, b); err != nil {
			return nil, err
		}
	}
	out := &ControlOutcome{Name: o.Name, Action: o.Action}
	for _, i := range nodes {
		out.Nodes = append(out.Nodes, b.Record.Nodes[i].ID)
	}
	start := time.Now()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for k, i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = controlNode(ctx, env, b.Record, i, o, len(nodes) > 1)
			if errs[k] != nil && len(nodes) > 1 {
				n := b.Record.Nodes[i]
				errs[k] = fmt.Errorf("node %d (%s): %w", n.ID, n.Host, errs[k])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var ie *provision.InputError
		if errors.As(err, &ie) {
			return nil, err
		}
	}
	out.Took = time.Since(start)
	return out, errors.Join(errs...)
}

// ControlOutcome is what Control did.
type ControlOutcome struct {
	Name   string
	Action string
	Nodes  []int // the node ids acted on
	Took   time.Duration
}

// controlNode runs the broker action on node i of rec; wholeCluster: as
// one of every node at once.
func controlNode(ctx context.Context, env Env, rec state.Cluster, i int, o ControlOptions, wholeCluster bool) error {
	spec, err := state.SpecFor(rec, i)
	if err != nil {
		return err
	}
	host, err := dialNode(ctx, env, rec, i, o.Dial)
	if err != nil {
		return err
	}
	defer host.Close()
	if wholeCluster && o.Action == "stop" {
		return provision.StopBrokerOfCluster(ctx, host, spec, ClusterStopGrace)
	}
	return provision.ControlBroker(ctx, host, spec, o.Action)
}

// stopGate refuses to stop node b of a cluster when the cluster is not
// healthy enough to lose it, as a roll's gate does before each node: a
// partition would fall below min.insync.replicas (acks=all writes to it
// stop) or the controllers left would not be a majority. A node that is
// itself the only one down or behind may be stopped (again).
func stopGate(ctx context.Context, env Env, b *Broker) error {
	cl, err := env.rollClient(ctx, b)
	if err != nil {
		return &StopRefusedError{Name: b.Name(), Node: b.Node().ID, Err: err}
	}
	defer cl.Close()
	r := &roller{rec: b.Record, view: cl}
	id := int32(b.Node().ID)
	g, err := r.look(ctx, id)
	if err != nil {
		return &StopRefusedError{Name: b.Name(), Node: b.Node().ID, Err: err}
	}
	if g == nil || onlyBehind(g, id) {
		return nil
	}
	g.Name = b.Name()
	return &StopRefusedError{Name: b.Name(), Node: b.Node().ID, Gate: g}
}

// onlyBehind says the gate's only problem is node itself: it is the one
// broker missing from ISRs (no partition offline or below its minimum
// without it), and the voters left are a majority.
func onlyBehind(g *GateError, node int32) bool {
	ids := g.missingIDs()
	return len(ids) == 1 && ids[0] == node && len(g.Offline) == 0 && len(g.UnderMinISR) == 0 && !g.QuorumShort
}

// StopRefusedError is a broker stop of one node that did not run: the
// cluster could not lose that node now (Gate), or kafkaup could not ask
// the cluster (Err).
type StopRefusedError struct {
	Name string
	Node int
	Gate *GateError
	Err  error
}

func (e *StopRefusedError) Error() string {
	other := fmt.Sprintf("To stop it anyway, add --force; to stop the whole cluster, run kafkaup broker stop %s without --node (every node at once)", e.Name)
	if e.Gate == nil {
		return fmt.Sprintf("node %d of %s was not stopped: it could not ask the cluster whether it can lose that node: %v. %s", e.Node, e.Name, e.Err, other)
	}
	return fmt.Sprintf("node %d of %s was not stopped: %s. Stopping it now could stop acks=all writes (partitions below min.insync.replicas) or the controller quorum, and its own shutdown would wait up to 5 minutes for a quorum. kafkaup status %s shows which node is down or behind. %s",
		e.Node, e.Name, e.Gate.summary(), e.Name, other)
}

func (e *StopRefusedError) Unwrap() error {
	if e.Gate != nil {
		return e.Gate
	}
	return e.Err
}
