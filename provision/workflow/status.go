package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// NodeStatus is one node of a cluster in `kafkaup status`.
type NodeStatus struct {
	ID           int    `json:"id"`
	Host         string `json:"host"`
	InternalHost string `json:"internal_host"`
	// SSH: kafkaup logged in to the host and read the broker's status.
	SSH bool `json:"ssh"`
	// Kafka: the node is a live broker in the cluster's metadata (it is
	// registered and not fenced).
	Kafka bool   `json:"kafka"`
	Roles string `json:"roles"` // broker,controller on every node of a cluster
	// Quorum is the node's place in the metadata quorum: leader,
	// follower, observer, or absent.
	Quorum string                `json:"quorum"`
	OnHost *provision.HostStatus `json:"on_host,omitempty"`
	Down   bool                  `json:"down"` // neither SSH nor Kafka answer
}

// Quorum places.
const (
	QuorumLeader   = "leader"
	QuorumFollower = "follower"
	QuorumObserver = "observer"
	QuorumAbsent   = "absent"
)

// Bounds of one status check, so that a dead node cannot make it slow
// (variables for the tests).
var (
	nodeCheckTimeout  = 20 * time.Second // SSH login and status.sh on one node
	kafkaCheckTimeout = 20 * time.Second // the cluster's metadata, quorum and partitions
)

// maxFollowerCatchUp is how long ago a follower voter may last have been
// caught up with the leader before status calls it behind.
const maxFollowerCatchUp = 30 * time.Second

// clusterStatus checks every node of a cluster at once over SSH and the
// cluster over the Kafka protocol (one client, any live node answers),
// each bounded in time, and says which node is wrong and what to do.
func clusterStatus(ctx context.Context, env Env, b *Broker, o StatusOptions) (*Status, error) {
	start := time.Now()
	rec := b.Record
	st := &Status{Name: b.Name(), Host: b.Node().Host, Bootstrap: b.Bootstrap(), Security: b.Auth().String()}
	st.Nodes = make([]NodeStatus, len(rec.Nodes))
	sshErrs := make([]error, len(rec.Nodes))
	var view *kafkaView
	var kafkaErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		view, kafkaErr = viewCluster(ctx, env, b)
	}()
	eachNode(len(rec.Nodes), func(i int) {
		st.Nodes[i], sshErrs[i] = nodeOnHost(ctx, env, rec, i, o.Dial)
	})
	wg.Wait()

	if kafkaErr != nil {
		st.Problems = append(st.Problems, "cannot talk to the cluster over Kafka: "+kafkaErr.Error())
	} else {
		st.Reachable = true
		st.Cluster, st.Quorum, st.Partitions = view.info, view.quorum, view.parts
	}
	for i := range st.Nodes {
		placeNode(&st.Nodes[i], rec.Nodes[i], view)
	}
	for i, n := range st.Nodes {
		advertised := provision.BrokerAddr(rec.Nodes[i].AdvertisedHost, b.Spec.BrokerPort)
		st.Problems = append(st.Problems, nodeProblems(rec, n, advertised, sshErrs[i], view)...)
	}
	if view != nil {
		st.Problems = append(st.Problems, quorumProblems(rec, view.quorum)...)
		st.Problems = append(st.Problems, partitionProblems(rec, view.parts)...)
	}
	st.Healthy = len(st.Problems) == 0
	st.CheckedTook = time.Since(start).Round(time.Millisecond).String()
	if !st.Healthy {
		return st, &UnhealthyError{Name: b.Name()}
	}
	return st, nil
}

// kafkaView is what the cluster says about itself.
type kafkaView struct {
	info   *kafkaclient.ClusterInfo
	quorum *kafkaclient.Quorum
	parts  *kafkaclient.PartitionHealth
}

func viewCluster(ctx context.Context, env Env, b *Broker) (*kafkaView, error) {
	ctx, cancel := context.WithTimeout(ctx, adminDialTimeout+kafkaCheckTimeout)
	defer cancel()
	adm, err := openAdmin(ctx, env, b)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	v := &kafkaView{}
	if v.info, err = adm.Cluster(ctx); err != nil {
		return nil, err
	}
	if v.quorum, err = adm.Quorum(ctx); err != nil {
		return nil, err
	}
	if v.parts, err = adm.PartitionHealth(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// nodeOnHost logs in to node i (no retries: a dead host must not hold
// status up) and reads the broker's status there.
func nodeOnHost(ctx context.Context, env Env, rec state.Cluster, i int, o DialOptions) (NodeStatus, error) {
	n := rec.Nodes[i]
	ns := NodeStatus{ID: n.ID, Host: n.Host, InternalHost: n.Internal(), Roles: "broker,controller", Quorum: QuorumAbsent}
	ctx, cancel := context.WithTimeout(ctx, nodeCheckTimeout)
	defer cancel()
	o.RetryFor, o.RetryAuth = 0, false
	host, err := dialNode(ctx, env, rec, i, o)
	if err != nil {
		return ns, fmt.Errorf("cannot log in over SSH: %w", err)
	}
	defer host.Close()
	spec, err := state.SpecFor(rec, i)
	if err != nil {
		return ns, err
	}
	if ns.OnHost, err = provision.StatusOnHost(ctx, host, spec); err != nil {
		return ns, err
	}
	ns.SSH = true
	return ns, nil
}

// placeNode fills in what the cluster says of the node: is it a live
// broker, and where is it in the quorum (by node id and recorded directory
// id: a voter with another directory id is an older incarnation).
func placeNode(ns *NodeStatus, n state.Node, view *kafkaView) {
	if view == nil {
		ns.Down = !ns.SSH
		return
	}
	for _, br := range view.info.Brokers {
		if br.ID == int32(n.ID) {
			ns.Kafka = true
		}
	}
	q := view.quorum
	for _, v := range q.Voters {
		if v.ID == int32(n.ID) && (n.DirectoryID == "" || v.DirectoryID == n.DirectoryID) {
			ns.Quorum = QuorumFollower
			if v.ID == q.LeaderID {
				ns.Quorum = QuorumLeader
			}
		}
	}
	for _, ob := range q.Observers {
		if ns.Quorum == QuorumAbsent && ob.ID == int32(n.ID) && (n.DirectoryID == "" || ob.DirectoryID == n.DirectoryID) {
			ns.Quorum = QuorumObserver
		}
	}
	ns.Down = !ns.SSH && !ns.Kafka
}

// nodeProblems says what is wrong with one node, and what to do.
func nodeProblems(rec state.Cluster, ns NodeStatus, advertised string, sshErr error, view *kafkaView) []string {
	who := fmt.Sprintf("node %d (%s)", ns.ID, ns.Host)
	if ns.Down && rec.EC2 != nil {
		return []string{fmt.Sprintf("%s is down: it is not a live broker of the cluster and %v. If its instance is only stopped, kafkaup start %s; "+
			"if the instance is gone (terminated, or it will not come back), replace it with a new one: kafkaup node replace %s --node %d",
			who, sshErr, rec.Name, rec.Name, ns.ID)}
	}
	if ns.Down {
		return []string{fmt.Sprintf("%s is down: it is not a live broker of the cluster and %v. If the host is only stopped, start it and then its broker "+
			"(kafkaup broker start %s --node %d); if it is gone, replace it: kafkaup node replace %s --node %d --host NEWHOST [--internal-host ADDR]",
			who, sshErr, rec.Name, ns.ID, rec.Name, ns.ID)}
	}
	var out []string
	if sshErr != nil {
		out = append(out, fmt.Sprintf("%s: %v (its broker answers over Kafka; check SSH access: kafkaup ssh %s --node %d)", who, sshErr, rec.Name, ns.ID))
	} else if !ns.OnHost.Running() {
		out = append(out, fmt.Sprintf("%s: the broker is not running on the host (service %s); start it with kafkaup broker start %s --node %d",
			who, ns.OnHost.ServiceState, rec.Name, ns.ID))
	}
	if view == nil {
		return out
	}
	if !ns.Kafka && sshErr == nil && ns.OnHost.Running() {
		out = append(out, fmt.Sprintf("%s is not a live broker of the cluster (not registered, or fenced): see kafkaup logs %s --node %d", who, rec.Name, ns.ID))
	}
	for _, br := range view.info.Brokers {
		if br.ID == int32(ns.ID) && br.Addr != advertised {
			out = append(out, fmt.Sprintf("%s advertises %s but kafkaup expects %s: run kafkaup reprovision %s", who, br.Addr, advertised, rec.Name))
		}
	}
	switch ns.Quorum {
	case QuorumAbsent:
		out = append(out, fmt.Sprintf("%s is not in the metadata quorum (neither voter nor observer with directory id %s)", who, nodeByID(rec, ns.ID).DirectoryID))
	case QuorumObserver:
		out = append(out, fmt.Sprintf("%s is an observer, not a voter, of the metadata quorum: a node replace did not finish; rerun kafkaup node replace %s --node %d --host %s",
			who, rec.Name, ns.ID, ns.Host))
	}
	return out
}

// quorumProblems: voters that are behind, and voters kafkaup does not know.
func quorumProblems(rec state.Cluster, q *kafkaclient.Quorum) []string {
	var out []string
	known := map[string]bool{}
	for _, n := range rec.Nodes {
		known[fmt.Sprintf("%d/%s", n.ID, n.DirectoryID)] = true
	}
	for _, v := range q.Voters {
		if !known[fmt.Sprintf("%d/%s", v.ID, v.DirectoryID)] {
			out = append(out, fmt.Sprintf("voter %d with directory id %s is not a node in kafkaup's record (an old incarnation of node %d?): if node %d was replaced, rerun kafkaup node replace %s --node %d to finish",
				v.ID, v.DirectoryID, v.ID, v.ID, rec.Name, v.ID))
			continue
		}
		if v.ID == q.LeaderID {
			continue
		}
		switch {
		case v.Lag < 0 || v.LastCaughtUpAgo < 0:
			out = append(out, fmt.Sprintf("controller %d has not fetched from the quorum leader (node %d) since it was elected (epoch %d)", v.ID, q.LeaderID, q.LeaderEpoch))
		case v.LastCaughtUpAgo > maxFollowerCatchUp:
			out = append(out, fmt.Sprintf("controller %d is behind the quorum leader (node %d): %d records behind, last caught up %s ago", v.ID, q.LeaderID, v.Lag, v.LastCaughtUpAgo.Round(time.Second)))
		}
	}
	if majority := len(q.Voters)/2 + 1; len(q.CaughtUp(maxVoterLag)) < majority {
		out = append(out, fmt.Sprintf("only %d of %d controllers are caught up with the leader; the quorum needs %d to accept changes", len(q.CaughtUp(maxVoterLag)), len(q.Voters), majority))
	}
	return out
}

// maxVoterLag is how many metadata records behind the leader a voter may
// be and still count as caught up (cp-ansible's threshold).
const maxVoterLag = 1000

// partitionProblems: partitions that are not fully replicated, and which
// node is missing from their ISR.
func partitionProblems(rec state.Cluster, h *kafkaclient.PartitionHealth) []string {
	var out []string
	if len(h.Offline) > 0 {
		out = append(out, fmt.Sprintf("%d partitions have no leader (offline: no reads or writes): %s", len(h.Offline), listPartitions(h.Offline, 5)))
	}
	if len(h.UnderMinISR) > 0 {
		out = append(out, fmt.Sprintf("%d partitions have fewer in-sync replicas than min.insync.replicas, so acks=all writes to them fail: %s", len(h.UnderMinISR), listPartitions(h.UnderMinISR, 5)))
	}
	if len(h.UnderReplicated) > 0 {
		var missing []string
		ids := make([]int32, 0, len(h.NotInISR))
		for id := range h.NotInISR {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			missing = append(missing, fmt.Sprintf("node %d is out of the ISR of %d", id, len(h.NotInISR[id])))
		}
		out = append(out, fmt.Sprintf("%d partitions are under-replicated (%s): %s. They catch up by themselves once the node is back; if it is gone, replace it with kafkaup node replace %s --node N --host NEWHOST",
			len(h.UnderReplicated), strings.Join(missing, ", "), listPartitions(h.UnderReplicated, 5), rec.Name))
	}
	return out
}

// listPartitions names up to 5 partitions.
func nodeByID(rec state.Cluster, id int) state.Node {
	i, err := rec.FindNode(id)
	if err != nil {
		return state.Node{ID: id}
	}
	return rec.Nodes[i]
}
