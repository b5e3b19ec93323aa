package cloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ensureEIP associates node n's own Elastic IP (allocating it if needed)
// or the user's, and returns it.
func (cr *creation) ensureEIP(ctx context.Context, node int, instanceID string) (*types.Address, error) {
	c, p, name := cr.c, cr.p, cr.name
	var addr *types.Address
	if p.req.EIPAllocationID != "" {
		a, err := c.userAddress(ctx, p.req.EIPAllocationID)
		if err != nil {
			return nil, err
		}
		addr = a
	} else {
		out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: brokerFilters(name)})
		if err != nil {
			return nil, fmt.Errorf("find elastic IP: %w", err)
		}
		var owned []types.Address
		for _, a := range out.Addresses {
			if eipOwned(a, name) && nodeOf(a.Tags) == node {
				owned = append(owned, a)
			}
		}
		switch len(owned) {
		case 0:
			tags := tagSpec(types.ResourceTypeElasticIp, name,
				types.Tag{Key: aws.String(TagEIPOwned), Value: aws.String("true")}, nodeTag(node))
			got, err := c.EC2.AllocateAddress(ctx, &ec2.AllocateAddressInput{
				Domain: types.DomainTypeVpc, TagSpecifications: tags,
			})
			if err != nil {
				return nil, fmt.Errorf("allocate elastic IP: %w", err)
			}
			cr.note(func(m *Resources) {
				m.ElasticIPs = append(m.ElasticIPs, ElasticIP{AllocationID: aws.ToString(got.AllocationId), PublicIP: aws.ToString(got.PublicIp), Owned: true})
			})
			c.logf("elastic IP %s: allocated %s for node %d", aws.ToString(got.PublicIp), aws.ToString(got.AllocationId), node)
			addr = &types.Address{AllocationId: got.AllocationId, PublicIp: got.PublicIp, Tags: tags[0].Tags}
		case 1:
			addr = &owned[0]
			c.logf("elastic IP %s: found %s", aws.ToString(addr.PublicIp), aws.ToString(addr.AllocationId))
		default:
			return nil, fmt.Errorf("broker %s has %d elastic IPs of its own for node %d; destroy it and create it again", name, len(owned), node)
		}
	}
	switch other := aws.ToString(addr.InstanceId); {
	case other == instanceID:
		return addr, nil
	case other != "" || aws.ToString(addr.AssociationId) != "":
		if other == "" {
			other = "network interface " + aws.ToString(addr.NetworkInterfaceId)
		}
		return nil, fmt.Errorf("Elastic IP %s (%s) is in use by %s: disassociate it first (aws ec2 disassociate-address --association-id %s) or use another one",
			aws.ToString(addr.PublicIp), aws.ToString(addr.AllocationId), other, aws.ToString(addr.AssociationId))
	}
	// The address may have been allocated, and the instance launched, a
	// moment ago.
	var out *ec2.AssociateAddressOutput
	what := fmt.Sprintf("associate elastic IP %s with %s", aws.ToString(addr.AllocationId), instanceID)
	err := c.untilVisible(ctx, what, notYet("InvalidAllocationID.NotFound", "InvalidInstanceID.NotFound"), func() error {
		var err error
		out, err = c.EC2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId: addr.AllocationId, InstanceId: aws.String(instanceID), AllowReassociation: aws.Bool(false),
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	addr.AssociationId, addr.InstanceId = out.AssociationId, aws.String(instanceID)
	c.logf("elastic IP %s: associated with %s", aws.ToString(addr.PublicIp), instanceID)
	return addr, nil
}
