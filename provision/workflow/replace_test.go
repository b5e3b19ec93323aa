package workflow

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

const newDir = "NNNNNNNNNNNNNNNNNNNNNQ" // what the fake format gives node 3's new host

// deadNode3 is the trio with node 3 dead, partitions short of it, and an
// engine that formats the new host (directory id newDir), after which it
// shows up as an observer.
func deadNode3(t *testing.T) (*clusterFakes, state.Cluster, *fakeAdmin) {
	f, rec, a, d := trioRecord(t)
	d.dead["203.0.113.3"] = true
	a.killNode(3)
	a.health = []*kafkaclient.PartitionHealth{urpHealth(3, 4), urpHealth(3, 2), okHealth()}
	a.joins = &kafkaclient.QuorumReplica{ID: 3, DirectoryID: newDir, LogEndOffset: 900, Lag: 0}
	f.env.Engine = func(ctx context.Context, h provision.Host, s provision.Spec, host string, o provision.Options) (*provision.Result, error) {
		res, err := f.run(ctx, h, s, host, o)
		res.FactsAfter.DirectoryID = newDir
		a.mu.Lock()
		a.ran = true
		if !slices.Contains(a.brokers, 3) {
			a.brokers = append(a.brokers, 3) // the new host's broker registers
		}
		a.mu.Unlock()
		return res, err
	}
	return f, rec, a
}

func replaceOpts() ReplaceOptions {
	return ReplaceOptions{Name: "trio", Node: 3, Host: "203.0.113.9", InternalHost: "10.0.0.9", Poll: time.Millisecond, Wait: 5 * time.Second}
}

// TestReplaceNode: the new host is formatted to join, the old voter goes,
// the new one comes (after one retriable refusal), the partitions come
// back, and the record names the new host and directory id.
func TestReplaceNode(t *testing.T) {
	f, rec, a := deadNode3(t)
	a.addErrs = []error{kerr.RequestTimedOut}
	out, err := ReplaceNode(context.Background(), f.env, replaceOpts())
	if err != nil {
		t.Fatal(err)
	}
	old := rec.Nodes[2].DirectoryID
	want := []string{"remove 3/" + old, "add 3/" + newDir + " at CONTROLLER 10.0.0.9:9093", "add 3/" + newDir + " at CONTROLLER 10.0.0.9:9093"}
	if got := a.called(); !slices.Equal(got, want) {
		t.Errorf("quorum changes %q, want %q", got, want)
	}
	specs := f.specs[3]
	s := specs[len(specs)-1]
	if !s.JoinQuorum || s.InternalHost != "10.0.0.9" || s.AdvertisedHost != "203.0.113.9" || s.Voters[2].Host != "10.0.0.9" || s.Voters[2].DirectoryID != "" || s.ClusterID != rec.ClusterID {
		t.Errorf("the new host's spec: %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("the joining spec does not validate: %v", err)
	}
	back, _ := f.store.Load("trio")
	n := back.Nodes[2]
	if n.Host != "203.0.113.9" || n.InternalHost != "10.0.0.9" || n.AdvertisedHost != "203.0.113.9" || n.DirectoryID != newDir || n.ReplacedDirectoryID != "" {
		t.Errorf("recorded node 3: %+v", n)
	}
	if !reflect.DeepEqual(back.Nodes[:2], rec.Nodes[:2]) || back.ClusterID != rec.ClusterID {
		t.Errorf("the other nodes' record changed")
	}
	if out.DirectoryID != newDir || out.OldDirectoryID != old || len(out.Voters) != 3 {
		t.Errorf("outcome: %+v", out)
	}
	if !said(f, "node 3 is catching up: out of the ISR of 4 partitions") || !said(f, "node 3 is catching up: out of the ISR of 2 partitions") || !said(f, "every partition is back to full ISR") {
		t.Errorf("progress:\n%s", strings.Join(f.lines, "\n"))
	}
	if spec, _ := state.SpecFor(back, 0); spec.Validate() != nil || spec.Voters[2].DirectoryID != newDir {
		t.Errorf("node 1's spec after the replacement: %+v", spec.Voters)
	}
	// The same command again: nothing to replace, nothing changed.
	calls, runs := len(a.called()), len(f.specs[3])
	if _, err := ReplaceNode(context.Background(), f.env, replaceOpts()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if len(a.called()) != calls || len(f.specs[3]) != runs || !said(f, "nothing to replace") {
		t.Errorf("the rerun changed things: calls %q, node 3 provisioned %d times", a.called(), len(f.specs[3]))
	}
	if again, _ := f.store.Load("trio"); !reflect.DeepEqual(again.Nodes, back.Nodes) {
		t.Errorf("the rerun changed the record: %+v", again.Nodes[2])
	}
}

// TestReplaceSameAddress: without --host, the dead node's recorded host
// (rebuilt, empty) is formatted to join and swapped in.
func TestReplaceSameAddress(t *testing.T) {
	f, rec, a := deadNode3(t)
	f.env.Dial.(*nodesDialer).dead["203.0.113.3"] = false // rebuilt
	o := replaceOpts()
	o.Host, o.InternalHost = "", ""
	if _, err := ReplaceNode(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	back, _ := f.store.Load("trio")
	if n := back.Nodes[2]; n.Host != rec.Nodes[2].Host || n.InternalHost != rec.Nodes[2].InternalHost || n.DirectoryID != newDir {
		t.Errorf("recorded node 3: %+v", n)
	}
	if got := a.called(); len(got) != 2 || !strings.HasPrefix(got[0], "remove 3/"+rec.Nodes[2].DirectoryID) || !strings.HasPrefix(got[1], "add 3/"+newDir+" at CONTROLLER 10.0.0.3:9093") {
		t.Errorf("quorum changes %q", got)
	}
}

// TestReplaceResumes: a run that fails adding the new voter leaves the
// replacement recorded; the rerun (without --host) does not remove or
// format again, and finishes.
func TestReplaceResumes(t *testing.T) {
	f, rec, a := deadNode3(t)
	a.addErrs = []error{kerr.InvalidRequest}
	if _, err := ReplaceNode(context.Background(), f.env, replaceOpts()); err == nil {
		t.Fatal("first run succeeded")
	}
	mid, _ := f.store.Load("trio")
	if n := mid.Nodes[2]; n.ReplacedDirectoryID != rec.Nodes[2].DirectoryID || n.DirectoryID != newDir || n.Host != "203.0.113.9" {
		t.Fatalf("record after the failed run: %+v", n)
	}
	o := replaceOpts()
	o.Host, o.InternalHost = "", ""
	if _, err := ReplaceNode(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	removes := 0
	for _, c := range a.called() {
		if strings.HasPrefix(c, "remove") {
			removes++
		}
	}
	if removes != 1 {
		t.Errorf("the old voter was removed %d times: %q", removes, a.called())
	}
	if back, _ := f.store.Load("trio"); back.Nodes[2].ReplacedDirectoryID != "" || back.Nodes[2].DirectoryID != newDir {
		t.Errorf("record: %+v", back.Nodes[2])
	}
	o.Host = "203.0.113.77"
	mid.Nodes[2].ReplacedDirectoryID = "xxxxxxxxxxxxxxxxxxxxxx"
	if err := f.store.Save(mid); err != nil {
		t.Fatal(err)
	}
	if _, err := ReplaceNode(context.Background(), f.env, o); !isInput(err) || !strings.Contains(err.Error(), "rerun it with --host 203.0.113.9") {
		t.Errorf("moving a replacement halfway: %v", err)
	}
}

// TestReplaceRefuses: no majority left, a healthy node, an EC2 cluster, a
// host of another node: refused with advice, nothing changed.
func TestReplaceRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*clusterFakes, *fakeAdmin, *ReplaceOptions)
		want  string
	}{
		{"two of three down", func(_ *clusterFakes, a *fakeAdmin, _ *ReplaceOptions) { a.killNode(2) }, "would leave trio without a quorum: of its 3 controllers only 1 other(s) are caught up"},
		{"healthy node", func(_ *clusterFakes, a *fakeAdmin, _ *ReplaceOptions) {
			a.brokers, a.quorum.Voters[2].Lag, a.quorum.Voters[2].LastCaughtUpAgo = []int32{1, 2, 3}, 0, time.Second
		}, "rerun with --force"},
		{"another node's host", func(_ *clusterFakes, _ *fakeAdmin, o *ReplaceOptions) { o.InternalHost = "10.0.0.2" }, "10.0.0.2 is node 2 of trio"},
		{"EC2 with --host", func(f *clusterFakes, _ *fakeAdmin, _ *ReplaceOptions) {
			rec, _ := f.store.Load("trio")
			rec.EC2 = &state.EC2{Region: "us-east-1"}
			f.store.Save(rec)
		}, "launches node 3's new instance itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, rec, a := deadNode3(t)
			o := replaceOpts()
			tc.setup(f, a, &o)
			before, _ := f.store.Load("trio")
			_, err := ReplaceNode(context.Background(), f.env, o)
			if !isInput(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want an input error saying %q", err, tc.want)
			}
			after, _ := f.store.Load("trio")
			if !reflect.DeepEqual(after.Nodes, before.Nodes) || len(a.called()) != 0 || len(f.specs[3]) != 1 {
				t.Errorf("something changed: calls %q, node 3 provisioned %d times, record %+v (was %+v)", a.called(), len(f.specs[3]), after.Nodes[2], rec.Nodes[2])
			}
		})
	}
}

func said(f *clusterFakes, s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}
