package cloud

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestCheckNodeCount: 1 and odd counts up to MaxNodes; even counts are
// refused with the quorum's reason.
func TestCheckNodeCount(t *testing.T) {
	for n, ok := range map[int]bool{0: false, 1: true, 2: false, 3: true, 4: false, 5: true, 9: true, 10: false, 11: false} {
		err := CheckNodeCount(n)
		if (err == nil) != ok {
			t.Errorf("CheckNodeCount(%d) = %v", n, err)
		}
		if n == 2 && (err == nil || !strings.Contains(err.Error(), "majority of them (2 of 2)") || !strings.Contains(err.Error(), "(or 3)")) {
			t.Errorf("2 nodes: %v", err)
		}
	}
}

// TestPlaceNodes: distinct zones while there are enough, then round robin
// (and SharedZones says so); node 1 is the first zone, as a single broker.
func TestPlaceNodes(t *testing.T) {
	cands := []Placement{{"subnet-a", "z-a"}, {"subnet-b", "z-b"}, {"subnet-c", "z-c"}}
	for _, tc := range []struct {
		nodes  int
		cands  []Placement
		want   string
		shared bool
	}{
		{1, cands, "z-a", false},
		{3, cands, "z-a z-b z-c", false},
		{3, cands[:2], "z-a z-b z-a", true},
		{5, cands, "z-a z-b z-c z-a z-b", true},
		{3, cands[:1], "z-a z-a z-a", true},
	} {
		p := &plan{req: CreateRequest{Nodes: tc.nodes}}
		p.place(tc.cands)
		var got []string
		for _, pl := range p.placements {
			got = append(got, pl.Zone)
		}
		if strings.Join(got, " ") != tc.want || SharedZones(p.placements) != tc.shared || p.zone != "z-a" || p.subnetID != "subnet-a" {
			t.Errorf("%d nodes over %d zones: %v shared %v (node 1 %s %s)", tc.nodes, len(tc.cands), got, SharedZones(p.placements), p.subnetID, p.zone)
		}
	}
}

// TestSelfRule: the cluster's own ports from the group itself, read back
// as the same rule (so a rerun revokes nothing).
func TestSelfRule(t *testing.T) {
	r := selfRules("sg-123")
	perm := r[0].permission()
	if aws.ToInt32(perm.FromPort) != 9093 || aws.ToInt32(perm.ToPort) != 9094 || len(perm.IpRanges) != 0 ||
		len(perm.UserIdGroupPairs) != 1 || aws.ToString(perm.UserIdGroupPairs[0].GroupId) != "sg-123" {
		t.Fatalf("permission %+v", perm)
	}
	if back := rulesOf([]types.IpPermission{perm}); len(back) != 1 || back[0] != r[0] {
		t.Fatalf("read back %+v, want %+v", back, r)
	}
	want := append(wantedRules([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, defaultPorts), r...)
	if revoke, add := diffRules(rulesOf([]types.IpPermission{perm}), want); len(revoke) != 0 || len(add) != 2 {
		t.Errorf("diff: revoke %v add %v", revoke, add)
	}
}

// TestMotoCreateNodes: three instances in moto's three default subnets
// (one zone each), tagged with their node, with a private address each;
// the security group admits 22 and 9092 from the CIDRs and 9093-9094 from
// itself; an Elastic IP per node; a rerun makes nothing new; StopAll and
// StartAll act on all three (private addresses kept); Destroy removes it
// all.
func TestMotoCreateNodes(t *testing.T) {
	e := newEnv(t)
	req := e.request("trio")
	req.Nodes, req.ElasticIP = 3, true
	places, err := e.c.Layout(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("placements: %+v", places)
	bs, err := e.c.CreateNodes(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 {
		t.Fatalf("%d brokers", len(bs))
	}
	zones, privs := map[string]bool{}, map[string]bool{}
	for i, b := range bs {
		t.Logf("node %d: %s %s public %s private %s eip %s", b.Node, b.InstanceID, b.Zone, b.PublicIP, b.PrivateIP, b.EIPAllocationID)
		if b.Node != i+1 || b.Zone != places[i].Zone || b.PrivateIP == "" || b.PublicIP == "" || !b.EIPOwned || b.State != "running" {
			t.Errorf("node %d: %+v", i+1, *b)
		}
		zones[b.Zone], privs[b.PrivateIP] = true, true
		inst, err := e.c.describeInstance(e.ctx, b.InstanceID)
		if err != nil {
			t.Fatal(err)
		}
		wantTags(t, fmt.Sprintf("instance of node %d", i+1), inst.Tags, "trio", TagNode, fmt.Sprint(i+1))
		if aws.ToString(inst.SubnetId) != places[i].SubnetID {
			t.Errorf("node %d in subnet %s, want %s", i+1, aws.ToString(inst.SubnetId), places[i].SubnetID)
		}
		addrs, err := e.raw.DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{b.EIPAllocationID}})
		if err != nil {
			t.Fatal(err)
		}
		wantTags(t, fmt.Sprintf("elastic IP of node %d", i+1), addrs.Addresses[0].Tags, "trio", TagEIPOwned, "true", TagNode, fmt.Sprint(i+1))
	}
	if len(zones) != 3 || len(privs) != 3 {
		t.Errorf("zones %v, private addresses %v: want 3 distinct each", zones, privs)
	}
	checkClusterRules(t, e, bs[0].SecurityGroupID, req.AllowCIDRs)
	all, err := e.c.DescribeAll(e.ctx, "trio")
	if err != nil || len(all) != 3 || all[2].InstanceID != bs[2].InstanceID || all[2].EIPAllocationID != bs[2].EIPAllocationID {
		t.Errorf("DescribeAll: %v, %v", all, err)
	}
	if _, err := e.c.Describe(e.ctx, "trio"); err == nil || !strings.Contains(err.Error(), "single broker's instance only") {
		t.Errorf("Describe of a cluster: %v", err)
	}

	again, err := e.c.CreateNodes(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bs {
		if again[i].InstanceID != bs[i].InstanceID || again[i].EIPAllocationID != bs[i].EIPAllocationID {
			t.Errorf("rerun: node %d %+v, was %+v", i+1, *again[i], *bs[i])
		}
	}
	if s := e.snapshot(); len(s.Instances) != 3 || len(s.EIPs) != 3 || len(s.SecurityGroups) != 1 || len(s.KeyPairs) != 1 {
		t.Fatalf("after the rerun: %+v", s)
	}
	checkClusterRules(t, e, bs[0].SecurityGroupID, req.AllowCIDRs)
	one := req
	one.Nodes = 1
	if _, err := e.c.CreateNodes(e.ctx, one); err == nil || !strings.Contains(err.Error(), "more nodes than the 1 asked for") {
		t.Errorf("create --nodes 1 over a 3-node cluster: %v", err)
	}

	stopped, err := e.c.StopAll(e.ctx, "trio")
	if err != nil {
		t.Fatal(err)
	}
	started, err := e.c.StartAll(e.ctx, "trio")
	if err != nil {
		t.Fatal(err)
	}
	for i := range bs {
		if stopped[i].State != "stopped" || started[i].State != "running" || started[i].PrivateIP != bs[i].PrivateIP || started[i].Node != i+1 {
			t.Errorf("node %d: stopped %+v, started %+v", i+1, *stopped[i], *started[i])
		}
	}
	if _, err := e.c.Stop(e.ctx, "trio"); err == nil || !strings.Contains(err.Error(), "3 instances") {
		t.Errorf("Stop of a cluster: %v", err)
	}
	if found, err := e.c.Find(e.ctx, "trio"); err != nil || len(found.Instances) != 3 || found.Instances[0].State != "running" {
		t.Errorf("Stop of a cluster changed something: %v %v", found.Lines(), err)
	}

	gone, err := e.c.Destroy(e.ctx, "trio", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("destroyed: %v", gone.Lines())
	e.mustBeEmpty("after destroy")
}

// checkClusterRules: 22 and 9092 from each CIDR, 9093-9094 from the group.
func checkClusterRules(t *testing.T, e *env, sgID string, cidrs []string) {
	t.Helper()
	out, err := e.raw.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{sgID}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rulesOf(out.SecurityGroups[0].IpPermissions) {
		got = append(got, r.String())
	}
	want := []string{"tcp/9093-9094 from sg:" + sgID}
	for _, port := range []int{22, 9092} {
		for _, c := range cidrs {
			want = append(want, fmt.Sprintf("tcp/%d from %s", port, c))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("security group %s:\n got %v\nwant %v", sgID, got, want)
	}
}
