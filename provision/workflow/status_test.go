package workflow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// TestClusterStatusHealthy: every node answers over SSH and Kafka, one
// leads the quorum and the others follow: healthy, no error.
func TestClusterStatusHealthy(t *testing.T) {
	f, _, _, _ := trioRecord(t)
	st, err := GetStatus(context.Background(), f.env, StatusOptions{Name: "trio"})
	if err != nil {
		t.Fatalf("%v; problems %q", err, st.Problems)
	}
	if !st.Healthy || len(st.Nodes) != 3 || st.Quorum == nil || st.Partitions == nil {
		t.Fatalf("status: %+v", st)
	}
	for i, n := range st.Nodes {
		want := QuorumFollower
		if i == 0 {
			want = QuorumLeader
		}
		if !n.SSH || !n.Kafka || n.Down || n.Quorum != want || n.Roles != "broker,controller" || n.OnHost.KafkaVersion != "4.0.0" {
			t.Errorf("node %d: %+v", i+1, n)
		}
	}
}

// TestClusterStatusNodeDown: node 3's host does not answer SSH (it hangs)
// and its broker is gone: status comes back within the node's bound, says
// node 3 is down and how to replace it, and lists the partitions it left
// under-replicated.
func TestClusterStatusNodeDown(t *testing.T) {
	f, _, a, d := trioRecord(t)
	d.dead["203.0.113.3"], d.hang = true, true
	a.killNode(3)
	a.health = []*kafkaclient.PartitionHealth{urpHealth(3, 4)}
	defer func(was time.Duration) { nodeCheckTimeout = was }(nodeCheckTimeout)
	nodeCheckTimeout = 300 * time.Millisecond
	start := time.Now()
	st, err := GetStatus(context.Background(), f.env, StatusOptions{Name: "trio"})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("status took %s with one node hanging; its bound is %s", took, nodeCheckTimeout)
	}
	var ue *UnhealthyError
	if !errors.As(err, &ue) || st.Healthy {
		t.Fatalf("err %v, healthy %v; want an UnhealthyError", err, st.Healthy)
	}
	if n := st.Nodes[2]; !n.Down || n.SSH || n.Kafka {
		t.Errorf("node 3: %+v; want down", n)
	}
	if !st.Nodes[0].SSH || !st.Nodes[1].Kafka || st.Nodes[0].Down {
		t.Errorf("nodes 1 and 2: %+v", st.Nodes[:2])
	}
	all := strings.Join(st.Problems, "\n")
	for _, want := range []string{
		"node 3 (203.0.113.3) is down",
		"kafkaup node replace trio --node 3 --host NEWHOST",
		"controller 3 is behind the quorum leader (node 1): 2000 records behind, last caught up 3m0s ago",
		"4 partitions are under-replicated (node 3 is out of the ISR of 4): orders-0, orders-1, orders-2, orders-3",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "node 1 (") || strings.Contains(all, "node 2 (") {
		t.Errorf("a healthy node is named as a problem:\n%s", all)
	}
	// A leader elected since node 3 died knows nothing of it.
	a.quorum.Voters[2].Lag, a.quorum.Voters[2].LastCaughtUpAgo, a.quorum.Voters[2].LogEndOffset = -1, -1, -1
	st, _ = GetStatus(context.Background(), f.env, StatusOptions{Name: "trio"})
	if all := strings.Join(st.Problems, "\n"); !strings.Contains(all, "controller 3 has not fetched from the quorum leader (node 1) since it was elected (epoch 3)") {
		t.Errorf("problems with node 3 unknown to the leader:\n%s", all)
	}
}
