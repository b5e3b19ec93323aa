package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ReplacementRequest asks for a new instance for node Node of cluster
// Name, whose instance OldInstanceID died: in the old instance's subnet
// (else the default subnet of Zone, the node's recorded zone), launched
// as create launched the cluster's other nodes.
type ReplacementRequest struct {
	Name          string
	Node          int
	OldInstanceID string
	Zone          string
	// Token makes the launch idempotent (ReplacementToken): a rerun of
	// the same replacement carries the same one.
	Token string
}

// ReplacementToken is the client token of node's replacement number
// generation in cluster clusterID: the same on every rerun of one
// replacement, another for the next one (the first launch's token named
// the old instance). Its length is clientToken's.
func ReplacementToken(name, clusterID string, node, generation int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", clusterID, node, generation))
	return fmt.Sprintf("%s-%x", ResourceName(name), sum[:6])
}

// LaunchReplacement makes node r.Node's new instance run and returns it:
// the one an earlier run launched (a live instance tagged with the node,
// other than the old one), else a new one. It copies what create chose
// from a running instance of another node (instance type, AMI, key pair,
// security group, root volume size and user-data) and is tagged like
// create's (kafkaup:node included), so destroy finds it. The old instance
// is left alone: TerminateReplaced ends it once the caller has recorded
// the new one.
func (c *Cloud) LaunchReplacement(ctx context.Context, r ReplacementRequest) (*Broker, error) {
	if err := checkName(r.Name); err != nil {
		return nil, err
	}
	insts, err := c.describeInstances(ctx, append(brokerFilters(r.Name),
		types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}}))
	if err != nil {
		return nil, fmt.Errorf("find the instances of cluster %s: %w", r.Name, err)
	}
	found, template, err := replacementCandidates(r, insts)
	if err != nil {
		return nil, err
	}
	p, err := c.replacementPlan(ctx, r, template)
	if err != nil {
		return nil, err
	}
	like := brokerFromInstance(*template)
	if like.SecurityGroupID == "" {
		return nil, fmt.Errorf("instance %s has no security group", like.InstanceID)
	}
	sgID := like.SecurityGroupID
	cr := &creation{c: c, p: p, name: r.Name, clientToken: r.Token, made: &Resources{Broker: r.Name}}
	var live *Instance
	if found != nil {
		live = &Instance{ID: aws.ToString(found.InstanceId), State: stateName(*found), Node: r.Node}
	}
	b, step, err := cr.node(ctx, r.Node, live, aws.ToString(template.KeyName), sgID)
	if err != nil {
		return nil, c.createError(ctx, r.Name, step, err, nil, cr.made)
	}
	return b, nil
}

// replacementCandidates finds, among a cluster's live instances, node
// r.Node's replacement from an earlier run (nil if none) and a running
// instance of another node to copy the launch from.
func replacementCandidates(r ReplacementRequest, insts []types.Instance) (found, template *types.Instance, err error) {
	for i := range insts {
		inst := &insts[i]
		id, n := aws.ToString(inst.InstanceId), nodeOf(inst.Tags)
		switch {
		case n == r.Node && id != r.OldInstanceID && found != nil:
			return nil, nil, fmt.Errorf("cluster %s has two new instances for node %d (%s, %s); terminate the one kafkaup's record does not name, then rerun", r.Name, r.Node, aws.ToString(found.InstanceId), id)
		case n == r.Node && id != r.OldInstanceID:
			found = inst
		case n != r.Node && stateName(*inst) == "running" && template == nil:
			template = inst
		}
	}
	if template == nil {
		return nil, nil, fmt.Errorf("cluster %s has no running instance of another node to copy node %d's launch from", r.Name, r.Node)
	}
	return found, template, nil
}

// replacementPlan is the launch of node r.Node's new instance, as create
// made template (another node's), in the old instance's placement.
func (c *Cloud) replacementPlan(ctx context.Context, r ReplacementRequest, template *types.Instance) (*plan, error) {
	at, err := c.replacementPlacement(ctx, r)
	if err != nil {
		return nil, err
	}
	size, err := c.rootSize(ctx, *template)
	if err != nil {
		return nil, err
	}
	ud, err := c.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: template.InstanceId, Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		return nil, fmt.Errorf("read the user-data of %s: %w", aws.ToString(template.InstanceId), advise(err))
	}
	var userData []byte
	if ud.UserData != nil && aws.ToString(ud.UserData.Value) != "" {
		if userData, err = base64.StdEncoding.DecodeString(aws.ToString(ud.UserData.Value)); err != nil {
			return nil, fmt.Errorf("the user-data of %s is not base64: %w", aws.ToString(template.InstanceId), err)
		}
	}
	nodes := max(r.Node, 2) // a node of a cluster: progress lines name it
	p := &plan{
		req: CreateRequest{Name: r.Name, Nodes: nodes, InstanceType: string(template.InstanceType), RootSizeGB: size, UserData: userData},
		ami: aws.ToString(template.ImageId), rootDevice: aws.ToString(template.RootDeviceName),
		placements: make([]Placement, nodes),
	}
	p.placements[r.Node-1] = at
	return p, nil
}

// replacementPlacement is the old instance's subnet and zone when EC2
// still shows them, else the default subnet of r.Zone.
func (c *Cloud) replacementPlacement(ctx context.Context, r ReplacementRequest) (Placement, error) {
	if r.OldInstanceID != "" {
		out, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.OldInstanceID}})
		if err != nil && !hasCode(err, "InvalidInstanceID.NotFound") {
			return Placement{}, fmt.Errorf("describe the old instance %s: %w", r.OldInstanceID, advise(err))
		}
		for _, res := range outReservations(out) {
			for _, i := range res.Instances {
				if sub := aws.ToString(i.SubnetId); sub != "" && i.Placement != nil {
					return Placement{SubnetID: sub, Zone: aws.ToString(i.Placement.AvailabilityZone)}, nil
				}
			}
		}
	}
	if r.Zone == "" {
		return Placement{}, fmt.Errorf("node %d's old instance %s shows no subnet and kafkaup recorded no zone for it", r.Node, r.OldInstanceID)
	}
	subs, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{r.Zone}},
		{Name: aws.String("default-for-az"), Values: []string{"true"}},
	}})
	if err != nil {
		return Placement{}, fmt.Errorf("look up the default subnet of %s: %w", r.Zone, advise(err))
	}
	if len(subs.Subnets) == 0 {
		return Placement{}, fmt.Errorf("node %d's old instance %s shows no subnet, and %s has no default subnet to launch its replacement in", r.Node, r.OldInstanceID, r.Zone)
	}
	return Placement{SubnetID: aws.ToString(subs.Subnets[0].SubnetId), Zone: r.Zone}, nil
}

func outReservations(out *ec2.DescribeInstancesOutput) []types.Reservation {
	if out == nil {
		return nil
	}
	return out.Reservations
}

// rootSize is the size in GB of inst's root volume.
func (c *Cloud) rootSize(ctx context.Context, inst types.Instance) (int, error) {
	for _, bd := range inst.BlockDeviceMappings {
		if aws.ToString(bd.DeviceName) != aws.ToString(inst.RootDeviceName) || bd.Ebs == nil {
			continue
		}
		out, err := c.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{aws.ToString(bd.Ebs.VolumeId)}})
		if err != nil {
			return 0, fmt.Errorf("read the root volume of %s: %w", aws.ToString(inst.InstanceId), advise(err))
		}
		if len(out.Volumes) == 1 && out.Volumes[0].Size != nil {
			return int(*out.Volumes[0].Size), nil
		}
	}
	return DefaultRootSizeGB, nil
}

// TerminateReplaced terminates node's old instance id of cluster name
// and waits until it is gone. It does nothing when the instance is
// already terminated or unknown, and refuses an instance that is not
// tagged as the cluster's node (a wrong id in the record must not end
// another machine).
func (c *Cloud) TerminateReplaced(ctx context.Context, name string, node int, id string) error {
	out, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if hasCode(err, "InvalidInstanceID.NotFound") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("describe the old instance %s: %w", id, advise(err))
	}
	var inst *types.Instance
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == id {
				inst = &r.Instances[i]
			}
		}
	}
	if inst == nil || stateName(*inst) == "terminated" {
		return nil
	}
	if tagValue(inst.Tags, TagBroker) != name || tagValue(inst.Tags, TagManaged) != "true" || nodeOf(inst.Tags) != node {
		return fmt.Errorf("instance %s is not tagged as node %d of cluster %s: kafkaup leaves it alone", id, node, name)
	}
	if _, err := c.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		return fmt.Errorf("terminate the old instance %s: %w", id, advise(err))
	}
	c.logf("instance %s: terminating (node %d's old instance)", id, node)
	var watch instanceWatch
	w := ec2.NewInstanceTerminatedWaiter(c.EC2, func(o *ec2.InstanceTerminatedWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
		o.Retryable = watch.wrap(keepWaitingWhile(o.Retryable, "pending", "stopping"))
	})
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, c.waitTimeout()); err != nil {
		return fmt.Errorf("wait for the old instance %s to terminate: %w", id, watch.explain("instance "+id, err))
	}
	c.logf("instance %s: terminated", id)
	return nil
}

// MoveNodeEIP associates node's own Elastic IP (the one kafkaup
// allocated for it) with its new instance, taking it off the old
// instance first if EC2 still shows it there, and returns the new
// instance read back (its public IP is the Elastic IP's). Call it once
// the old instance is terminated: the address then serves only the new
// one.
func (c *Cloud) MoveNodeEIP(ctx context.Context, name string, node int, oldInstanceID, instanceID string) (*Broker, error) {
	out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: brokerFilters(name)})
	if err != nil {
		return nil, fmt.Errorf("find node %d's elastic IP: %w", node, advise(err))
	}
	for _, a := range out.Addresses {
		if !eipOwned(a, name) || nodeOf(a.Tags) != node || aws.ToString(a.InstanceId) != oldInstanceID || aws.ToString(a.AssociationId) == "" {
			continue
		}
		_, err := c.EC2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: a.AssociationId})
		if err != nil && !hasCode(err, "InvalidAssociationID.NotFound") {
			return nil, fmt.Errorf("take elastic IP %s off the old instance %s: %w", aws.ToString(a.PublicIp), oldInstanceID, advise(err))
		}
		c.logf("elastic IP %s: taken off %s", aws.ToString(a.PublicIp), oldInstanceID)
	}
	cr := &creation{c: c, p: &plan{req: CreateRequest{Name: name, ElasticIP: true}}, name: name, made: &Resources{Broker: name}}
	if _, err := cr.ensureEIP(ctx, node, instanceID); err != nil {
		return nil, fmt.Errorf("node %d's elastic IP: %w", node, err)
	}
	inst, err := c.describeInstance(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	return c.brokerWithEIP(ctx, name, inst)
}
