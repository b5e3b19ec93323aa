package workflow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision"
)

func isInput(err error) bool {
	var ie *provision.InputError
	return errors.As(err, &ie)
}

// TestCreateClusterOfThree: create --nodes 3 asks for three nodes, records
// each at its public address (SSH and clients), its private address (the
// other nodes: voters and replication) and its zone (broker.rack), runs
// the three nodes at once with the same voters and cluster id, and
// verifies the cluster; a rerun launches nothing and keeps the ids; stop
// and start give new public addresses, which are advertised, while the
// private ones and the voters stay.
func TestCreateClusterOfThree(t *testing.T) {
	f := newClusterFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.Nodes, o.SkipVerify = 3, false
	f.barrier = make(chan struct{}, 3) // the nodes must run at once
	out, err := Create(context.Background(), f.env, o)
	if err != nil {
		t.Fatal(err)
	}
	f.barrier = nil
	if f.cloud.lastReq.Nodes != 3 || f.cloud.created != 3 || f.maxAtOnce != 3 || len(f.verified) != 1 || len(out.Nodes) != 3 {
		t.Fatalf("asked %d nodes, created %d, %d at once, verified %d times, %d outcomes", f.cloud.lastReq.Nodes, f.cloud.created, f.maxAtOnce, len(f.verified), len(out.Nodes))
	}
	rec, err := f.store.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	insts := f.cloud.instances["demo"]
	var voters []string
	for i, n := range rec.Nodes {
		b := insts[i]
		if n.ID != i+1 || n.Host != b.PublicIP || n.AdvertisedHost != b.PublicIP || n.InternalHost != b.PrivateIP || n.Rack != fakeZones[i] ||
			n.InstanceID != b.InstanceID || n.DirectoryID == "" || n.User != "ubuntu" {
			t.Errorf("node %d recorded as %+v (instance %+v)", i+1, n, *b)
		}
		voters = append(voters, fmt.Sprintf("%d@%s:9093:%s", n.ID, b.PrivateIP, n.DirectoryID))
	}
	if rec.ClusterID == "" || rec.EC2 == nil || rec.Bootstrap() != insts[0].PublicIP+":9092,"+insts[1].PublicIP+":9092,"+insts[2].PublicIP+":9092" {
		t.Errorf("record %+v", rec)
	}
	checkSpecs := func(when string, run int) {
		t.Helper()
		for i := range rec.Nodes {
			s := f.specs[i+1][run]
			var got []string
			for _, v := range s.Voters {
				got = append(got, fmt.Sprintf("%d@%s:9093:%s", v.NodeID, v.Host, v.DirectoryID))
			}
			if strings.Join(got, ",") != strings.Join(voters, ",") || s.InternalHost != insts[i].PrivateIP ||
				s.AdvertisedHost != insts[i].PublicIP || s.Rack != fakeZones[i] || s.ClusterID != rec.ClusterID {
				t.Errorf("%s: node %d spec: voters %v internal %s advertised %s rack %s cluster %s", when, i+1, got, s.InternalHost, s.AdvertisedHost, s.Rack, s.ClusterID)
			}
		}
	}
	checkSpecs("create", 0)

	// A rerun without --nodes resumes the recorded size and launches nothing.
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if f.cloud.created != 3 || f.cloud.lastReq.Nodes != 3 {
		t.Errorf("rerun: created %d, asked %d nodes", f.cloud.created, f.cloud.lastReq.Nodes)
	}
	checkSpecs("rerun", 1)

	// Stop and start: new public addresses advertised, private ones kept.
	// Stop takes the brokers down over SSH first, all at once.
	oldPublic := insts[0].PublicIP
	f.dialed = nil
	stopped, err := Stop(context.Background(), f.env, StopOptions{Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Brokers == nil || len(stopped.Brokers.Nodes) != 3 || len(f.dialed) != 3 {
		t.Errorf("stop: brokers %+v after %d dials; want every node's broker stopped first", stopped.Brokers, len(f.dialed))
	}
	// A node out of reach does not keep the instances running.
	if _, err := Start(context.Background(), f.env, StartOptions{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	f.dialErr = errors.New("connection refused")
	stopped, err = Stop(context.Background(), f.env, StopOptions{Name: "demo"})
	f.dialErr = nil
	if err != nil || stopped.Brokers != nil || stopped.BrokersErr == nil || insts[0].State != "stopped" {
		t.Errorf("stop with the nodes out of reach: %+v, %v; want the instances stopped anyway", stopped, err)
	}
	if !strings.Contains(strings.Join(f.lines, "\n"), "their instances' shutdown stops them") {
		t.Errorf("no word on the brokers not stopped first:\n%s", strings.Join(f.lines, "\n"))
	}
	if _, err := Start(context.Background(), f.env, StartOptions{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	if insts[0].PublicIP == oldPublic {
		t.Fatal("the fake gave the same address")
	}
	checkSpecs("start", 3) // the second start
	if rec, _ = f.store.Load("demo"); rec.Nodes[0].Host != insts[0].PublicIP || rec.Nodes[2].AdvertisedHost != insts[2].PublicIP {
		t.Errorf("record after start: %+v", rec.Nodes)
	}
	if len(f.verified) != 3 { // create and both starts (the rerun skipped it)
		t.Errorf("verified %d times", len(f.verified))
	}
}

// TestCreateNodeCounts: even counts and more than 9 are refused before any
// AWS call, with the quorum's reason; a recorded cluster keeps its size;
// one --advertised-host for several nodes is refused.
func TestCreateNodeCounts(t *testing.T) {
	for _, n := range []int{2, 4, 11} {
		f := newFakes(t)
		t.Setenv("HOME", t.TempDir())
		o := createOptions()
		o.Nodes = n
		_, err := Create(context.Background(), f.env, o)
		if !isInput(err) || f.cloud.created != 0 {
			t.Errorf("--nodes %d: %v (created %d)", n, err, f.cloud.created)
		}
		if n == 2 && !strings.Contains(fmt.Sprint(err), "majority") {
			t.Errorf("--nodes 2: %v", err)
		}
	}
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	o := createOptions()
	o.Nodes = 3
	if _, err := Create(context.Background(), f.env, o); !isInput(err) || !strings.Contains(err.Error(), "has 1 nodes") {
		t.Errorf("growing a single broker: %v", err)
	}
	o = createOptions()
	o.Name, o.Nodes = "other", 3
	adv := "kafka.example.com"
	o.Overrides.AdvertisedHost = &adv
	if _, err := Create(context.Background(), f.env, o); !isInput(err) {
		t.Errorf("--advertised-host with 3 nodes: %v", err)
	}
}

// TestCreateClusterResumesAfterCloudFailure: the cluster's size is
// recorded before AWS is asked, so a create --nodes 3 that failed in AWS
// resumes as three nodes (with or without --nodes).
func TestCreateClusterResumesAfterCloudFailure(t *testing.T) {
	f := newClusterFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.Nodes = 3
	f.cloud.failCreate = errors.New("InsufficientInstanceCapacity")
	if _, err := Create(context.Background(), f.env, o); err == nil {
		t.Fatal("create succeeded")
	}
	if rec, err := f.store.Load("demo"); err != nil || len(rec.Nodes) != 3 {
		t.Fatalf("record after the failure: %+v, %v", rec, err)
	}
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if f.cloud.lastReq.Nodes != 3 || f.cloud.created != 3 {
		t.Errorf("rerun asked %d nodes, created %d", f.cloud.lastReq.Nodes, f.cloud.created)
	}
	if rec, _ := f.store.Load("demo"); rec.Nodes[2].InternalHost == "" || rec.Nodes[2].Rack != fakeZones[2] {
		t.Errorf("node 3 after the rerun: %+v", rec.Nodes[2])
	}
}

// TestCreateClusterSaysSharedZones: fewer zones than nodes is said before
// anything is made.
func TestCreateClusterSaysSharedZones(t *testing.T) {
	f := newClusterFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.Nodes, o.DryRun = 5, true
	out, err := Create(context.Background(), f.env, o)
	if err != nil {
		t.Fatal(err)
	}
	if p := out.CreatePlan; p == nil || p.Nodes != 5 || !p.SharedZones || p.Placements[3].Zone != fakeZones[0] || f.cloud.created != 0 {
		t.Fatalf("plan %+v", out.CreatePlan)
	}
	if !strings.Contains(strings.Join(f.lines, "\n"), "node 4 in us-east-1a") {
		t.Errorf("no note on shared zones: %v", f.lines)
	}
}

// TestReprovisionEC2ClusterFollowsInstances: reprovision of a cluster made
// on EC2 looks its instances up first: a node whose public address changed
// outside kafkaup is reached and advertised at the new one, and a stopped
// instance is refused before any host is touched, naming kafkaup start.
func TestReprovisionEC2ClusterFollowsInstances(t *testing.T) {
	f := newClusterFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.Nodes = 3
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	c := newFakeCluster()
	c.leader = 1
	f.env.RollClient = func(context.Context, *Broker) (RollClient, error) { return c, nil }
	insts := f.cloud.instances["demo"]
	moved := "198.51.100.77"
	insts[1].PublicIP, insts[1].PublicDNS = moved, "ec2-198-51-100-77.compute-1.amazonaws.com"
	runs := len(f.specs[2])
	before, _ := f.store.Load("demo")
	before.Nodes[1].HostKeys = []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}
	if err := f.store.Save(before); err != nil {
		t.Fatal(err)
	}
	if _, err := Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	rec, err := f.store.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Nodes[1].Host != moved || rec.Nodes[1].AdvertisedHost != moved || rec.Nodes[1].InternalHost != insts[1].PrivateIP {
		t.Errorf("node 2 after reprovision: %+v", rec.Nodes[1])
	}
	if len(f.specs[2]) == runs || f.specs[2][len(f.specs[2])-1].AdvertisedHost != moved {
		t.Errorf("node 2 was not converged at %s: %d runs", moved, len(f.specs[2]))
	}
	if !slices.Equal(rec.Nodes[1].HostKeys, before.Nodes[1].HostKeys) {
		t.Errorf("the recorded host keys changed: %v", rec.Nodes[1].HostKeys)
	}

	insts[2].State = "stopped"
	runs = len(f.specs[1])
	_, err = Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "demo"})
	if err == nil || !strings.Contains(err.Error(), "node 3") || !strings.Contains(err.Error(), "kafkaup start demo") || len(f.specs[1]) != runs {
		t.Errorf("a stopped instance: %v (node 1 ran %d more times)", err, len(f.specs[1])-runs)
	}
}
