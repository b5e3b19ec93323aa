package cloud

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// clientToken makes RunInstances idempotent for this Create: every retry
// of a node's launch, by the SDK or by kafkaup, carries the same token
// (this one, then "-N" for node N), so EC2 answers a repeated launch with
// the instance it already started, and each node gets its own.
func clientToken(name string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a client token: %w", err)
	}
	return fmt.Sprintf("%s-%x", ResourceName(name), b), nil // with "-N", at most 63 of the 64 characters EC2 takes
}

// runInstance launches the broker's instance. The security group and key
// pair may have been created a moment ago, so InvalidGroup.NotFound and
// InvalidKeyPair.NotFound are waited out; the client token makes every
// attempt the same launch.
func (cr *creation) runInstance(ctx context.Context, node int, keyName, sgID string) (string, error) {
	c, p, name := cr.c, cr.p, cr.name
	at := p.placements[node-1]
	in := &ec2.RunInstancesInput{
		ClientToken:  aws.String(fmt.Sprintf("%s-%d", cr.clientToken, node)),
		ImageId:      aws.String(p.ami),
		InstanceType: types.InstanceType(p.req.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		KeyName:      aws.String(keyName),
		NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              aws.Int32(0),
			SubnetId:                 aws.String(at.SubnetID),
			Groups:                   []string{sgID},
			AssociatePublicIpAddress: aws.Bool(true),
			DeleteOnTermination:      aws.Bool(true),
		}},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String(p.rootDevice),
			Ebs: &types.EbsBlockDevice{
				VolumeSize:          aws.Int32(int32(p.req.RootSizeGB)),
				VolumeType:          types.VolumeTypeGp3,
				Encrypted:           aws.Bool(true),
				DeleteOnTermination: aws.Bool(true),
			},
		}},
		UserData: userData(p.req.UserData),
		TagSpecifications: append(append(
			tagSpec(types.ResourceTypeInstance, name, nodeTag(node)),
			tagSpec(types.ResourceTypeVolume, name, nodeTag(node))...),
			tagSpec(types.ResourceTypeNetworkInterface, name, nodeTag(node))...),
	}
	var out *ec2.RunInstancesOutput
	what := fmt.Sprintf("launch %s from %s in %s", p.req.InstanceType, p.ami, at.Zone)
	err := c.untilVisible(ctx, what, notYet("InvalidGroup.NotFound", "InvalidKeyPair.NotFound"), func() error {
		var err error
		out, err = c.EC2.RunInstances(ctx, in)
		return err
	})
	if err != nil {
		return "", err
	}
	if len(out.Instances) != 1 {
		return "", fmt.Errorf("RunInstances returned %d instances, want 1", len(out.Instances))
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	cr.note(func(m *Resources) { m.Instances = append(m.Instances, Instance{ID: id, State: "launched", Node: node}) })
	c.logf("instance %s: launched %s for node %d (%s, %s, %s)", ResourceName(name), id, node, p.req.InstanceType, p.ami, at.Zone)
	return id, nil
}

// userData is the RunInstances field: base64, or nil for none.
func userData(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	return aws.String(base64.StdEncoding.EncodeToString(b))
}

// warnDrift logs where an existing instance differs from the request:
// create never changes a running instance.
func (cr *creation) warnDrift(inst *types.Instance) {
	if t := string(inst.InstanceType); t != cr.p.req.InstanceType {
		cr.c.logf("instance %s is a %s, not %s as requested: kept (destroy and create to change it)", aws.ToString(inst.InstanceId), t, cr.p.req.InstanceType)
	}
	if a := aws.ToString(inst.ImageId); a != cr.p.ami {
		cr.c.logf("instance %s runs AMI %s, not %s as resolved now: kept", aws.ToString(inst.InstanceId), a, cr.p.ami)
	}
}

// describeInstance reads instance id, which kafkaup has just launched or
// found: InvalidInstanceID.NotFound (or an answer without it) is waited
// out.
func (c *Cloud) describeInstance(ctx context.Context, id string) (*types.Instance, error) {
	var inst *types.Instance
	err := c.untilVisible(ctx, "describe instance "+id, notYet("InvalidInstanceID.NotFound"), func() error {
		out, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return advise(err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if aws.ToString(i.InstanceId) == id {
					inst = &i
					return nil
				}
			}
		}
		return errNotListed
	})
	return inst, err
}

func (c *Cloud) waitRunning(ctx context.Context, id string) (*types.Instance, error) {
	var watch instanceWatch
	w := ec2.NewInstanceRunningWaiter(c.EC2, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
		o.Retryable = watch.wrap(o.Retryable)
	})
	out, err := w.WaitForOutput(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, c.waitTimeout())
	if err != nil {
		if nv := watch.explain("instance "+id, err); nv != err {
			return nil, nv
		}
		// Say why, when EC2 knows (e.g. Server.InsufficientInstanceCapacity).
		if inst, derr := c.describeInstance(ctx, id); derr == nil && inst.StateReason != nil {
			return nil, fmt.Errorf("instance %s is %s (%s): %w", id, stateName(*inst), aws.ToString(inst.StateReason.Message), err)
		}
		return nil, err
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.InstanceId) == id {
				c.logf("instance %s: running", id)
				return &i, nil
			}
		}
	}
	return nil, fmt.Errorf("instance %s: running, but missing from DescribeInstances", id)
}
