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

// clusterFakes are fakes safe for nodes run at once: the engine records
// every node's spec and how many nodes ran together.
type clusterFakes struct {
	*fakes
	mu        sync.Mutex
	specs     map[int][]provision.Spec // by node id, one per run
	dialed    []string
	dialErr   error // when set, every dial's answer
	inFlight  int
	maxAtOnce int
	barrier   chan struct{} // when set, each engine run waits until every node is in
	restart   bool          // the engine's plan restarts a running broker
	restarts  int           // restarts under way now
	maxRest   int           // restarts under way at once, at most
	fail      map[int]error // by node id
	verified  [][]provision.Spec
	lines     []string
}

type safeDialer struct{ f *clusterFakes }

func (d safeDialer) Dial(_ context.Context, t Target, _ DialOptions) (Host, error) {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	d.f.dialed = append(d.f.dialed, t.Host)
	if d.f.dialErr != nil {
		return nil, d.f.dialErr
	}
	return &fakeHost{}, nil
}

type safeUI struct{ f *clusterFakes }

func (u safeUI) StepStarted(provision.Step)                    {}
func (u safeUI) StepDone(provision.Step, time.Duration, error) {}
func (u safeUI) Printf(format string, args ...any) {
	u.f.mu.Lock()
	defer u.f.mu.Unlock()
	u.f.lines = append(u.f.lines, fmt.Sprintf(format, args...))
}
func (u safeUI) Confirm(string) (bool, error) { return false, errors.New("no") }

func newClusterFakes(t *testing.T) *clusterFakes {
	f := &clusterFakes{fakes: newFakes(t), specs: map[int][]provision.Spec{}, fail: map[int]error{}}
	f.env.Dial = safeDialer{f}
	f.env.UI = safeUI{f}
	f.env.Engine = f.run
	f.env.VerifyCluster = func(_ context.Context, specs []provision.Spec, _ provision.Options) (*kafkaclient.Verification, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.verified = append(f.verified, specs)
		return &kafkaclient.Verification{ClusterID: specs[0].ClusterID}, nil
	}
	return f
}

func (f *clusterFakes) run(ctx context.Context, _ provision.Host, s provision.Spec, host string, o provision.Options) (*provision.Result, error) {
	f.mu.Lock()
	f.specs[s.NodeID] = append(f.specs[s.NodeID], s)
	f.inFlight++
	f.maxAtOnce = max(f.maxAtOnce, f.inFlight)
	barrier := f.barrier
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight--; f.mu.Unlock() }()
	if barrier != nil {
		barrier <- struct{}{}
		select {
		case <-waitFull(barrier):
		case <-time.After(5 * time.Second):
			return nil, errors.New("the nodes did not run at once")
		}
	}
	res := &provision.Result{Host: host, Bootstrap: s.Bootstrap(), ClusterID: s.ClusterID, Systemd: true}
	if f.restart && o.BeforeApply != nil {
		steps := []provision.Step{{ID: "service", Script: scripts.Service{Action: "restart"}}}
		release, err := o.BeforeApply(steps)
		if err != nil {
			return res, err
		}
		f.mu.Lock()
		f.restarts++
		f.maxRest = max(f.maxRest, f.restarts)
		f.mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		f.mu.Lock()
		f.restarts--
		f.mu.Unlock()
		release()
	}
	if err := f.fail[s.NodeID]; err != nil {
		return res, err
	}
	return res, nil
}

// waitFull returns a channel closed once barrier is full.
func waitFull(barrier chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for len(barrier) < cap(barrier) {
			time.Sleep(time.Millisecond)
		}
		close(done)
	}()
	return done
}

func threeHosts() []NodeTarget {
	var nodes []NodeTarget
	for i := 1; i <= 3; i++ {
		nodes = append(nodes, NodeTarget{Target: Target{Host: fmt.Sprintf("203.0.113.%d", i), Port: 22, User: "admin"},
			InternalHost: fmt.Sprintf("10.0.0.%d", i)})
	}
	return nodes
}

func provisionTrio(t *testing.T, f *clusterFakes, nodes []NodeTarget) (*Outcome, error) {
	t.Helper()
	return Provision(context.Background(), f.env, ProvisionOptions{Name: "trio", Nodes: nodes, RunOptions: RunOptions{}})
}

func TestProvisionClusterInParallel(t *testing.T) {
	f := newClusterFakes(t)
	f.barrier = make(chan struct{}, 3)
	out, err := provisionTrio(t, f, threeHosts())
	if err != nil {
		t.Fatal(err)
	}
	if f.maxAtOnce != 3 {
		t.Errorf("%d nodes ran at once, want 3", f.maxAtOnce)
	}
	rec, err := f.store.Load("trio")
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Nodes) != 3 || rec.ClusterID == "" {
		t.Fatalf("record: %+v", rec)
	}
	first := f.specs[1][0].InitialControllers()
	for i, n := range rec.Nodes {
		s := f.specs[n.ID][0]
		if n.ID != i+1 || n.DirectoryID == "" || n.InternalHost != fmt.Sprintf("10.0.0.%d", i+1) || n.AdvertisedHost != n.Host || !n.Systemd {
			t.Errorf("recorded node %d: %+v", i+1, n)
		}
		if s.ClusterID != rec.ClusterID || s.InitialControllers() != first || s.InternalHost != n.InternalHost || s.AdvertisedHost != n.Host || !s.Clustered() {
			t.Errorf("node %d's spec: %+v", n.ID, s)
		}
		if !strings.Contains(first, fmt.Sprintf("%d@%s:9093:%s", n.ID, n.InternalHost, n.DirectoryID)) {
			t.Errorf("--initial-controllers %s lacks node %d as recorded", first, n.ID)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("node %d's spec does not validate: %v", n.ID, err)
		}
	}
	if len(f.verified) != 1 || len(f.verified[0]) != 3 {
		t.Errorf("cluster verified %d times (%v)", len(f.verified), f.verified)
	}
	if len(out.Nodes) != 3 || out.Bootstrap != "203.0.113.1:9092,203.0.113.2:9092,203.0.113.3:9092" || out.Result == nil {
		t.Errorf("outcome: %+v", out)
	}
}

// TestProvisionClusterRerunKeepsIDs: a rerun formats (if it must) with the
// recorded cluster id and directory ids, and keeps the internal addresses
// given the first time.
func TestProvisionClusterRerunKeepsIDs(t *testing.T) {
	f := newClusterFakes(t)
	if _, err := provisionTrio(t, f, threeHosts()); err != nil {
		t.Fatal(err)
	}
	before, _ := f.store.Load("trio")
	nodes := threeHosts()
	for i := range nodes {
		nodes[i].InternalHost = "" // not given again: the recorded ones
	}
	if _, err := provisionTrio(t, f, nodes); err != nil {
		t.Fatal(err)
	}
	after, _ := f.store.Load("trio")
	if after.ClusterID != before.ClusterID {
		t.Errorf("cluster id %s -> %s", before.ClusterID, after.ClusterID)
	}
	for i := range after.Nodes {
		if after.Nodes[i].DirectoryID != before.Nodes[i].DirectoryID || after.Nodes[i].InternalHost != before.Nodes[i].InternalHost {
			t.Errorf("node %d: %+v -> %+v", i+1, before.Nodes[i], after.Nodes[i])
		}
		if a, b := f.specs[i+1][0].InitialControllers(), f.specs[i+1][1].InitialControllers(); a != b {
			t.Errorf("node %d formats with %s, then %s", i+1, a, b)
		}
	}
}

// TestProvisionClusterRestartsOneAtATime: nodes run at once, but brokers
// that must restart do it one after another.
func TestProvisionClusterRestartsOneAtATime(t *testing.T) {
	f := newClusterFakes(t)
	if _, err := provisionTrio(t, f, threeHosts()); err != nil {
		t.Fatal(err)
	}
	f.restart = true
	if _, err := provisionTrio(t, f, threeHosts()); err != nil {
		t.Fatal(err)
	}
	if f.maxRest != 1 {
		t.Errorf("%d brokers restarted at once, want 1", f.maxRest)
	}
}

func TestProvisionClusterRefuses(t *testing.T) {
	single := func(f *clusterFakes) {
		if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "trio", Target: Target{Host: "203.0.113.1", Port: 22, User: "u"}}); err != nil {
			t.Fatal(err)
		}
	}
	trio := func(f *clusterFakes) {
		if _, err := provisionTrio(t, f, threeHosts()); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		before func(*clusterFakes)
		nodes  func() []NodeTarget
		want   string
	}{
		{"a single broker does not grow into a cluster", single, threeHosts, "static"},
		{"other hosts under a cluster's name", trio, func() []NodeTarget {
			n := threeHosts()
			n[2].Host = "203.0.113.9"
			return n
		}, "same hosts in the same order"},
		{"a node's internal address cannot change", trio, func() []NodeTarget {
			n := threeHosts()
			n[1].InternalHost = "10.9.9.9"
			return n
		}, "cannot change"},
		{"a host given twice", nil, func() []NodeTarget {
			n := threeHosts()
			n[2].Host = n[0].Host
			return n
		}, "given twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newClusterFakes(t)
			if c.before != nil {
				c.before(f)
			}
			dials := len(f.dialed)
			recBefore, _ := f.store.Load("trio")
			_, err := provisionTrio(t, f, c.nodes())
			var ie *provision.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want an input error with %q", err, c.want)
			}
			if len(f.dialed) != dials {
				t.Error("a host was contacted")
			}
			if recAfter, _ := f.store.Load("trio"); fmt.Sprint(recAfter.Nodes) != fmt.Sprint(recBefore.Nodes) {
				t.Errorf("record changed: %+v", recAfter.Nodes)
			}
		})
	}
	f := newClusterFakes(t)
	adv := "kafka.example.com"
	_, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "trio", Nodes: threeHosts(), Overrides: state.Overrides{AdvertisedHost: &adv}})
	if err == nil || !strings.Contains(err.Error(), "one address per --host") {
		t.Errorf("one --advertised-host for 3 nodes: %v", err)
	}
	_, err = Provision(context.Background(), f.env, ProvisionOptions{Name: "one", Nodes: threeHosts()[:1]})
	if err == nil || !strings.Contains(err.Error(), "--internal-host is for a cluster") {
		t.Errorf("--internal-host on a single broker: %v", err)
	}
}

// TestProvisionClusterNodeFails: the error names the failed node, the
// others ran, and the record keeps the ids for the rerun.
func TestProvisionClusterNodeFails(t *testing.T) {
	f := newClusterFakes(t)
	f.fail[2] = errors.New("step packages: apt is broken")
	out, err := provisionTrio(t, f, threeHosts())
	if err == nil || !strings.Contains(err.Error(), "node 2 (203.0.113.2): step packages: apt is broken") || strings.Contains(err.Error(), "node 1") {
		t.Fatalf("err = %v", err)
	}
	if len(f.specs) != 3 || out == nil || out.Nodes[1].Err == nil || out.Nodes[0].Err != nil {
		t.Errorf("runs %d, outcome %+v", len(f.specs), out)
	}
	if len(f.verified) != 0 {
		t.Error("verified a cluster with a failed node")
	}
	rec, _ := f.store.Load("trio")
	if rec.ClusterID == "" || rec.Nodes[1].DirectoryID == "" {
		t.Errorf("record after the failed run: %+v", rec)
	}
}

// TestProvisionClusterDryRun changes nothing and saves no record.
func TestProvisionClusterDryRun(t *testing.T) {
	f := newClusterFakes(t)
	out, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "trio", Nodes: threeHosts(), RunOptions: RunOptions{DryRun: true}})
	if err != nil || len(out.Nodes) != 3 {
		t.Fatalf("%+v %v", out, err)
	}
	if _, err := f.store.Load("trio"); !errors.Is(err, state.ErrNoBroker) {
		t.Errorf("a dry run saved a record: %v", err)
	}
	if len(f.verified) != 0 {
		t.Error("a dry run verified")
	}
}
