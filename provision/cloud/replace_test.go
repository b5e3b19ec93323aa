package cloud

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestMotoLaunchReplacement: node 2's new instance is launched in the old
// one's subnet and zone, as create launched the others (type, AMI, key
// pair, security group, root size, user-data, tags with kafkaup:node 2);
// asking again finds it instead of launching another; the old instance is
// terminated only by TerminateReplaced, which refuses another node's
// instance; DescribeAll then sees three instances, and Destroy ends them.
func TestMotoLaunchReplacement(t *testing.T) {
	e := newEnv(t)
	req := e.request("trio")
	req.Nodes, req.RootSizeGB = 3, 24
	req.UserData = []byte("#cloud-boothook\n#!/bin/sh\necho head start\n")
	bs, err := e.c.CreateNodes(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	old := bs[1]
	oldInst, err := e.c.describeInstance(e.ctx, old.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	r := ReplacementRequest{Name: "trio", Node: 2, OldInstanceID: old.InstanceID, Zone: old.Zone, Token: ReplacementToken("trio", "cid", 2, 1)}
	if len(r.Token) > 64-2 || r.Token == ReplacementToken("trio", "cid", 2, 2) || r.Token == ReplacementToken("trio", "cid", 3, 1) {
		t.Errorf("token %q", r.Token)
	}
	b, err := e.c.LaunchReplacement(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if b.InstanceID == old.InstanceID || b.Node != 2 || b.Zone != old.Zone || b.PrivateIP == "" || b.PublicIP == "" || b.InstanceType != old.InstanceType ||
		b.AMI != old.AMI || b.KeyName != old.KeyName || b.SecurityGroupID != old.SecurityGroupID || b.State != "running" {
		t.Errorf("new %+v\nold %+v", *b, *old)
	}
	inst, err := e.c.describeInstance(e.ctx, b.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	wantTags(t, "the new instance", inst.Tags, "trio", TagNode, "2")
	if aws.ToString(inst.SubnetId) != aws.ToString(oldInst.SubnetId) || aws.ToString(inst.ClientToken) != r.Token+"-2" {
		t.Errorf("subnet %s (old %s), token %s", aws.ToString(inst.SubnetId), aws.ToString(oldInst.SubnetId), aws.ToString(inst.ClientToken))
	}
	if size, err := e.c.rootSize(e.ctx, *inst); err != nil || size != 24 {
		t.Errorf("root volume %d GB (%v)", size, err)
	}
	ud, err := e.raw.DescribeInstanceAttribute(e.ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: inst.InstanceId, Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value)); string(got) != string(req.UserData) {
		t.Errorf("user-data %q", got)
	}
	again, err := e.c.LaunchReplacement(e.ctx, r)
	if err != nil || again.InstanceID != b.InstanceID {
		t.Errorf("asked again: %+v, %v", again, err)
	}
	if i, _ := e.c.describeInstance(e.ctx, old.InstanceID); stateName(*i) != "running" {
		t.Errorf("the old instance is %s before TerminateReplaced", stateName(*i))
	}
	if err := e.c.TerminateReplaced(e.ctx, "trio", 2, bs[2].InstanceID); err == nil || !strings.Contains(err.Error(), "not tagged as node 2") {
		t.Errorf("terminating node 3's instance as node 2's: %v", err)
	}
	if err := e.c.TerminateReplaced(e.ctx, "trio", 2, old.InstanceID); err != nil {
		t.Fatal(err)
	}
	if i, _ := e.c.describeInstance(e.ctx, old.InstanceID); stateName(*i) != "terminated" {
		t.Errorf("the old instance is %s", stateName(*i))
	}
	if err := e.c.TerminateReplaced(e.ctx, "trio", 2, old.InstanceID); err != nil {
		t.Errorf("terminating it again: %v", err)
	}
	all, err := e.c.DescribeAll(e.ctx, "trio")
	if err != nil || len(all) != 3 || all[1].InstanceID != b.InstanceID {
		t.Fatalf("DescribeAll after the replacement: %v, %v", all, err)
	}
	// With the old instance gone from EC2's answers, the zone's default
	// subnet is used.
	r.OldInstanceID, r.Token = "i-00000000000000000", ReplacementToken("trio", "cid", 2, 2)
	if p, err := e.c.replacementPlacement(e.ctx, r); err != nil || p.Zone != old.Zone || p.SubnetID != aws.ToString(oldInst.SubnetId) {
		t.Errorf("placement without the old instance: %+v, %v", p, err)
	}
	if _, err := e.c.Destroy(e.ctx, "trio", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}

// TestMotoMoveNodeEIP: on a cluster with Elastic IPs, node 1's new
// instance gets node 1's own address once the old one is terminated, and
// moving it again changes nothing.
func TestMotoMoveNodeEIP(t *testing.T) {
	e := newEnv(t)
	req := e.request("duo")
	req.Nodes, req.ElasticIP = 3, true
	bs, err := e.c.CreateNodes(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	old := bs[0]
	b, err := e.c.LaunchReplacement(e.ctx, ReplacementRequest{Name: "duo", Node: 1, OldInstanceID: old.InstanceID, Zone: old.Zone, Token: ReplacementToken("duo", "c", 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if b.PublicIP == old.PublicIP || b.EIPAllocationID != "" {
		t.Errorf("the new instance has the old one's Elastic IP before the move: %+v", *b)
	}
	if err := e.c.TerminateReplaced(e.ctx, "duo", 1, old.InstanceID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		moved, err := e.c.MoveNodeEIP(e.ctx, "duo", 1, old.InstanceID, b.InstanceID)
		if err != nil {
			t.Fatal(err)
		}
		if moved.InstanceID != b.InstanceID || moved.PublicIP != old.PublicIP || moved.EIPAllocationID != old.EIPAllocationID || !moved.EIPOwned {
			t.Errorf("after the move %+v, old %+v", *moved, *old)
		}
	}
	if _, err := e.c.Destroy(e.ctx, "duo", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}
