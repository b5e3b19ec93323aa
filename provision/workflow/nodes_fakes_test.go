package workflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// fakeAdmin is a cluster seen over Kafka: its live brokers, its quorum
// (changed by AddVoter and RemoveVoter) and a sequence of partition
// health answers (the last one repeats).
type fakeAdmin struct {
	mu       sync.Mutex
	brokers  []int32
	quorum   kafkaclient.Quorum
	health   []*kafkaclient.PartitionHealth
	healthAt int
	calls    []string
	addErrs  []error // answers to AddVoter before it succeeds
	// joins, when set, is the observer that appears once the engine ran.
	joins *kafkaclient.QuorumReplica
	ran   bool
}

func (a *fakeAdmin) Cluster(context.Context) (*kafkaclient.ClusterInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	info := &kafkaclient.ClusterInfo{ClusterID: "c", ControllerID: a.quorum.LeaderID}
	for _, id := range a.brokers {
		info.Brokers = append(info.Brokers, kafkaclient.BrokerInfo{ID: id, Addr: fmt.Sprintf("203.0.113.%d:9092", id)})
	}
	return info, nil
}

func (a *fakeAdmin) Quorum(context.Context) (*kafkaclient.Quorum, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.quorum
	q.Voters = slices.Clone(q.Voters)
	q.Observers = slices.Clone(q.Observers)
	if a.joins != nil && a.ran && !slices.ContainsFunc(q.Voters, func(v kafkaclient.QuorumReplica) bool { return v.DirectoryID == a.joins.DirectoryID }) {
		q.Observers = append(q.Observers, *a.joins)
	}
	return &q, nil
}

func (a *fakeAdmin) PartitionHealth(context.Context) (*kafkaclient.PartitionHealth, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.health[min(a.healthAt, len(a.health)-1)]
	a.healthAt++
	return h, nil
}

func (a *fakeAdmin) AddVoter(_ context.Context, id int32, dir string, ep kafkaclient.ControllerEndpoint) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, fmt.Sprintf("add %d/%s at %s %s:%d", id, dir, ep.Listener, ep.Host, ep.Port))
	if len(a.addErrs) > 0 {
		err := a.addErrs[0]
		a.addErrs = a.addErrs[1:]
		return &kafkaclient.VoterChangeError{Op: "add", ID: id, DirectoryID: dir, Err: err}
	}
	a.quorum.Voters = append(a.quorum.Voters, kafkaclient.QuorumReplica{ID: id, DirectoryID: dir, LastCaughtUpAgo: 0})
	return nil
}

func (a *fakeAdmin) RemoveVoter(_ context.Context, id int32, dir string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, fmt.Sprintf("remove %d/%s", id, dir))
	a.quorum.Voters = slices.DeleteFunc(a.quorum.Voters, func(v kafkaclient.QuorumReplica) bool { return v.ID == id && v.DirectoryID == dir })
	return nil
}

func (a *fakeAdmin) Close() {}

func (a *fakeAdmin) called() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// healthyAdmin is rec's cluster with every node live, node 1 leading.
func healthyAdmin(rec state.Cluster) *fakeAdmin {
	a := &fakeAdmin{quorum: kafkaclient.Quorum{LeaderID: 1, LeaderEpoch: 3, HighWatermark: 900},
		health: []*kafkaclient.PartitionHealth{okHealth()}}
	for _, n := range rec.Nodes {
		a.brokers = append(a.brokers, int32(n.ID))
		a.quorum.Voters = append(a.quorum.Voters, kafkaclient.QuorumReplica{ID: int32(n.ID), DirectoryID: n.DirectoryID, LogEndOffset: 900, LastCaughtUpAgo: 200 * time.Millisecond})
	}
	return a
}

// killNode makes node id dead in a's view: no broker, a voter far behind.
func (a *fakeAdmin) killNode(id int32) {
	a.brokers = slices.DeleteFunc(a.brokers, func(b int32) bool { return b == id })
	for i := range a.quorum.Voters {
		if a.quorum.Voters[i].ID == id {
			a.quorum.Voters[i].Lag, a.quorum.Voters[i].LastCaughtUpAgo = 2000, 3*time.Minute
		}
	}
}

func okHealth() *kafkaclient.PartitionHealth {
	return &kafkaclient.PartitionHealth{NotInISR: map[int32][]kafkaclient.TopicPartition{}}
}

func urpHealth(missing int32, n int) *kafkaclient.PartitionHealth {
	h := okHealth()
	for p := 0; p < n; p++ {
		tp := kafkaclient.TopicPartition{Topic: "orders", Partition: int32(p)}
		h.UnderReplicated = append(h.UnderReplicated, tp)
		h.NotInISR[missing] = append(h.NotInISR[missing], tp)
	}
	return h
}

// statusHost answers status.sh with a running broker.
type statusHost struct{ fakeHost }

func (statusHost) RunScript(context.Context, string, []byte) ([]byte, error) {
	return []byte("systemd=1\nservice_state=active\nservice_enabled=enabled\nbroker_pid=42\nheap=400m\nkafka_version=4.0.0\n" +
		"swap_total_bytes=0\nswap_used_bytes=0\ndata_free_bytes=1000000\ndata_used_bytes=2000\n"), nil
}

// nodesDialer logs in to every host but the dead ones, which refuse
// (or, with hang, never answer until the context ends).
type nodesDialer struct {
	mu    sync.Mutex
	dead  map[string]bool
	hang  bool
	dials []string
}

func (d *nodesDialer) Dial(ctx context.Context, t Target, _ DialOptions) (Host, error) {
	d.mu.Lock()
	d.dials = append(d.dials, t.Host)
	dead := d.dead[t.Host]
	d.mu.Unlock()
	if !dead {
		return &statusHost{}, nil
	}
	if d.hang {
		<-ctx.Done()
		return nil, fmt.Errorf("ssh %s: %w", t.Host, ctx.Err())
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}
}

// trioRecord provisions a 3-node record with the cluster fakes and
// switches the env to the nodes' fakes: a, the cluster over Kafka, and d,
// the hosts over SSH.
func trioRecord(t *testing.T) (*clusterFakes, state.Cluster, *fakeAdmin, *nodesDialer) {
	t.Helper()
	f := newClusterFakes(t)
	if _, err := provisionTrio(t, f, threeHosts()); err != nil {
		t.Fatal(err)
	}
	rec, err := f.store.Load("trio")
	if err != nil {
		t.Fatal(err)
	}
	a := healthyAdmin(rec)
	d := &nodesDialer{dead: map[string]bool{}}
	f.env.Dial = d
	f.env.Admin = func(context.Context, string, kafkaclient.Auth) (ClusterAdmin, error) { return a, nil }
	return f, rec, a, d
}
