package workflow

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
)

// ec2Trio is deadNode3's trio as made by create: each node on an
// instance (i-old-N) in its zone, node 3's dead; the console shows the
// new instances' host key.
func ec2Trio(t *testing.T) (*clusterFakes, state.Cluster, *fakeAdmin) {
	f, rec, a := deadNode3(t)
	rec.EC2 = &state.EC2{Region: "us-east-1", AddressKind: "ip"}
	var insts []*cloud.Broker
	for i := range rec.Nodes {
		n := &rec.Nodes[i]
		n.InstanceID, n.Rack = fmt.Sprintf("i-old-%d", n.ID), fakeZones[i]
		n.SetHostKeys([]ssh.PublicKey{edKey(t)})
		insts = append(insts, &cloud.Broker{Name: "trio", Node: n.ID, InstanceID: n.InstanceID, Zone: n.Rack, State: "running", PublicIP: n.Host, PrivateIP: n.Internal()})
	}
	f.cloud.instances["trio"] = insts
	f.cloud.keys = []ssh.PublicKey{edKey(t)}
	if err := f.store.Save(rec); err != nil {
		t.Fatal(err)
	}
	return f, rec, a
}

func ec2ReplaceOpts() ReplaceOptions {
	o := replaceOpts()
	o.Host, o.InternalHost = "", ""
	return o
}

// TestReplaceEC2Node: without --host, node 3 gets a new instance in its
// zone, recorded (id, addresses, rack, pinned host key) before the old
// one is terminated; the new host is formatted to join at its private
// IP, the voters are swapped, and the record names the new instance.
func TestReplaceEC2Node(t *testing.T) {
	f, rec, a := ec2Trio(t)
	var atTermination state.Node
	f.cloud.onTerminate = func(string) {
		back, _ := f.store.Load("trio")
		atTermination = back.Nodes[2]
	}
	out, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.cloud.launches) != 1 {
		t.Fatalf("launches %+v", f.cloud.launches)
	}
	l := f.cloud.launches[0]
	if l.Node != 3 || l.OldInstanceID != "i-old-3" || l.Zone != "us-east-1c" || l.Token != cloud.ReplacementToken("trio", rec.ClusterID, 3, 1) {
		t.Errorf("launch request %+v", l)
	}
	inst := f.cloud.byToken[l.Token]
	if !slices.Equal(f.cloud.terminated, []string{"i-old-3"}) {
		t.Errorf("terminated %v", f.cloud.terminated)
	}
	if atTermination.InstanceID != inst.InstanceID || atTermination.ReplacedInstanceID != "i-old-3" || atTermination.InternalHost != inst.PrivateIP || len(atTermination.HostKeys) != 1 {
		t.Errorf("the record when the old instance was terminated: %+v", atTermination)
	}
	back, _ := f.store.Load("trio")
	n := back.Nodes[2]
	if n.InstanceID != inst.InstanceID || n.Host != inst.PublicIP || n.AdvertisedHost != inst.PublicIP || n.InternalHost != inst.PrivateIP ||
		n.Rack != "us-east-1c" || n.DirectoryID != newDir || n.ReplacedDirectoryID != "" || n.ReplacedInstanceID != "" || n.Replacements != 1 {
		t.Errorf("recorded node 3: %+v", n)
	}
	if keys, _ := n.PublicHostKeys(); len(keys) != 1 || !reflect.DeepEqual(keys[0].Marshal(), f.cloud.keys[0].Marshal()) {
		t.Errorf("node 3's pinned host keys %v", n.HostKeys)
	}
	want := []string{"remove 3/" + rec.Nodes[2].DirectoryID, "add 3/" + newDir + " at CONTROLLER " + inst.PrivateIP + ":9093"}
	if got := a.called(); !slices.Equal(got, want) {
		t.Errorf("quorum changes %q, want %q", got, want)
	}
	specs := f.specs[3]
	if s := specs[len(specs)-1]; !s.JoinQuorum || s.InternalHost != inst.PrivateIP || s.AdvertisedHost != inst.PublicIP || s.Rack != "us-east-1c" {
		t.Errorf("the new host's spec: %+v", s)
	}
	if out.InstanceID != inst.InstanceID || out.OldInstanceID != "i-old-3" || out.Zone != "us-east-1c" {
		t.Errorf("outcome %+v", out)
	}
	// Again: nothing to replace, nothing launched.
	if _, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts()); err != nil || len(f.cloud.launches) != 1 || len(f.cloud.terminated) != 1 {
		t.Errorf("rerun: %v, %d launches, terminated %v", err, len(f.cloud.launches), f.cloud.terminated)
	}
}

// TestReplaceEC2Resumes: a run that fails to terminate the old instance
// has recorded the new one; the rerun launches nothing new (the same
// token, the same instance), terminates the old one and finishes. A run
// interrupted before the new instance was recorded relaunches with the
// same token, so EC2 answers with the same instance.
func TestReplaceEC2Resumes(t *testing.T) {
	f, rec, a := ec2Trio(t)
	f.cloud.failTerminate = errors.New("RequestLimitExceeded")
	if _, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts()); err == nil || !strings.Contains(err.Error(), "Rerun the same command") {
		t.Fatalf("first run: %v", err)
	}
	mid, _ := f.store.Load("trio")
	first := f.cloud.byToken[f.cloud.launches[0].Token]
	if n := mid.Nodes[2]; n.InstanceID != first.InstanceID || n.ReplacedInstanceID != "i-old-3" || n.ReplacedDirectoryID != rec.Nodes[2].DirectoryID || len(a.called()) != 0 {
		t.Fatalf("after the failed termination: %+v, calls %q", n, a.called())
	}
	if _, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts()); err != nil {
		t.Fatal(err)
	}
	back, _ := f.store.Load("trio")
	if len(f.cloud.launches) != 1 || !slices.Equal(f.cloud.terminated, []string{"i-old-3"}) || back.Nodes[2].InstanceID != first.InstanceID || back.Nodes[2].Replacements != 1 {
		t.Errorf("resumed: %d launches, terminated %v, node 3 %+v", len(f.cloud.launches), f.cloud.terminated, back.Nodes[2])
	}

	// Interrupted after the launch, before the record: the rerun asks with
	// the same token.
	f, _, _ = ec2Trio(t)
	crashed := false
	f.cloud.onTerminate = func(string) { crashed = true }
	f.cloud.failTerminate = errors.New("interrupted")
	ReplaceNode(context.Background(), f.env, ec2ReplaceOpts())
	mid, _ = f.store.Load("trio")
	mid.Nodes[2].InstanceID, mid.Nodes[2].Host = "i-old-3", rec.Nodes[2].Host // as if the record was not saved
	f.store.Save(mid)
	if _, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts()); err != nil || !crashed {
		t.Fatal(err)
	}
	if len(f.cloud.launches) != 2 || f.cloud.launches[0].Token != f.cloud.launches[1].Token || len(f.cloud.byToken) != 1 {
		t.Errorf("launches after the crash %+v", f.cloud.launches)
	}
	// The next replacement of the node is another launch, with another token.
	if cloud.ReplacementToken("trio", rec.ClusterID, 3, 2) == f.cloud.launches[0].Token {
		t.Errorf("the next replacement reuses the token")
	}
}

// TestReplaceEC2Refuses: --host (or a login) for an EC2 cluster, an
// unknown node, a lost quorum: an input error,
// nothing launched or terminated, the record unchanged.
func TestReplaceEC2Refuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*clusterFakes, *fakeAdmin, *ReplaceOptions)
		want  string
	}{
		{"--host", func(_ *clusterFakes, _ *fakeAdmin, o *ReplaceOptions) { o.Host = "203.0.113.9" }, "leave out --host"},
		{"--identity", func(_ *clusterFakes, _ *fakeAdmin, o *ReplaceOptions) { o.Identity = "/k" }, "leave out --host, --internal-host, --user, --identity"},
		{"no such node", func(_ *clusterFakes, _ *fakeAdmin, o *ReplaceOptions) { o.Node = 7 }, "trio has no node 7"},
		{"two of three down", func(_ *clusterFakes, a *fakeAdmin, _ *ReplaceOptions) { a.killNode(2) }, "would leave trio without a quorum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _, a := ec2Trio(t)
			o := ec2ReplaceOpts()
			tc.setup(f, a, &o)
			before, _ := f.store.Load("trio")
			_, err := ReplaceNode(context.Background(), f.env, o)
			if !isInput(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want an input error saying %q", err, tc.want)
			}
			after, _ := f.store.Load("trio")
			if !reflect.DeepEqual(after.Nodes, before.Nodes) || len(f.cloud.launches) != 0 || len(f.cloud.terminated) != 0 || len(a.called()) != 0 {
				t.Errorf("something changed: launches %d, terminated %v, calls %q", len(f.cloud.launches), f.cloud.terminated, a.called())
			}
		})
	}
}

// TestReplaceEC2ElasticIP: a node with its own Elastic IP keeps its
// public address: the address moves to the new instance after the old
// one is terminated, and the record names it.
func TestReplaceEC2ElasticIP(t *testing.T) {
	f, rec, _ := ec2Trio(t)
	rec.Nodes[2].EIPAllocationID = "eipalloc-3"
	f.store.Save(rec)
	f.cloud.fixedIP = rec.Nodes[2].Host // the Elastic IP; the new instance's own address until the move
	moved := 0
	f.cloud.onTerminate = func(string) {
		moved = len(f.cloud.moves)
		f.env.Dial.(*nodesDialer).dead[rec.Nodes[2].Host] = false // the address now reaches the new instance
	}
	if _, err := ReplaceNode(context.Background(), f.env, ec2ReplaceOpts()); err != nil {
		t.Fatal(err)
	}
	back, _ := f.store.Load("trio")
	n := back.Nodes[2]
	if moved != 0 || !slices.Equal(f.cloud.moves, []string{"i-old-3 -> " + n.InstanceID}) {
		t.Errorf("moves %v (%d before the termination)", f.cloud.moves, moved)
	}
	if n.Host != rec.Nodes[2].Host || n.AdvertisedHost != rec.Nodes[2].Host || n.EIPAllocationID != "eipalloc-3" || n.ReplacedInstanceID != "" {
		t.Errorf("recorded node 3: %+v", n)
	}
}
