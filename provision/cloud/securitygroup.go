package cloud

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// SSHPort and KafkaPort are the ports the security group opens when
// CreateRequest.Ports is empty.
const (
	SSHPort   = 22
	KafkaPort = 9092
)

// defaultPorts is what an empty CreateRequest.Ports means.
var defaultPorts = []int32{SSHPort, KafkaPort}

// IngressPorts are the TCP ports the security group opens for req.
func IngressPorts(req CreateRequest) []int32 {
	if len(req.Ports) == 0 {
		return defaultPorts
	}
	return req.Ports
}

// ensureSecurityGroup returns the broker's security group, which must be
// in the VPC of the subnet the instance is launched in, creating it
// (without ingress rules) if needed.
func (cr *creation) ensureSecurityGroup(ctx context.Context) (*types.SecurityGroup, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)
	return ensureOwned(ctx, c, name, ownedKind[types.SecurityGroup]{
		kind: "security group", createOp: "create", duplicate: "InvalidGroup.Duplicate",
		where: " in " + p.vpcID,
		id:    func(sg types.SecurityGroup) string { return aws.ToString(sg.GroupId) },
		tags:  func(sg types.SecurityGroup) []types.Tag { return sg.Tags },
		tagged: func(ctx context.Context) ([]types.SecurityGroup, error) {
			return c.describeSecurityGroups(ctx, brokerFilters(name))
		},
		named: func(ctx context.Context) (*types.SecurityGroup, error) {
			return c.securityGroupByName(ctx, rn, p.vpcID)
		},
		keep: func(_ context.Context, sg types.SecurityGroup) (bool, error) {
			if v := aws.ToString(sg.VpcId); v != p.vpcID {
				return false, fmt.Errorf("the broker's security group %s is in %s but subnet %s is in %s: create it in the same VPC as before (--subnet), or destroy broker %s first", aws.ToString(sg.GroupId), v, p.subnetID, p.vpcID, name)
			}
			c.logf("security group %s: found %s", rn, aws.ToString(sg.GroupId))
			return true, nil
		},
		create: cr.createSecurityGroup,
	})
}

// createSecurityGroup creates the broker's security group in the subnet's
// VPC, tagged.
func (cr *creation) createSecurityGroup(ctx context.Context) (*types.SecurityGroup, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)
	out, err := c.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(rn),
		Description:       aws.String(fmt.Sprintf("kafkaup broker %s: SSH and Kafka from allowed addresses", name)),
		VpcId:             aws.String(p.vpcID),
		TagSpecifications: tagSpec(types.ResourceTypeSecurityGroup, name),
	})
	if err != nil {
		return nil, err
	}
	cr.made.SecurityGroups = append(cr.made.SecurityGroups, SecurityGroup{ID: aws.ToString(out.GroupId), Name: rn, VpcID: p.vpcID})
	c.logf("security group %s: created %s in %s", rn, aws.ToString(out.GroupId), p.vpcID)
	// Just created: no ingress rules yet (AWS adds only the default egress).
	return &types.SecurityGroup{GroupId: out.GroupId, GroupName: aws.String(rn), VpcId: aws.String(p.vpcID)}, nil
}

// securityGroupByName is the group named rn in vpcID, waiting for EC2 to
// show it (CreateSecurityGroup has just said it exists).
func (c *Cloud) securityGroupByName(ctx context.Context, rn, vpcID string) (*types.SecurityGroup, error) {
	return c.securityGroupWhere(ctx, "find security group "+rn+" in "+vpcID+" by name", []types.Filter{
		{Name: aws.String("group-name"), Values: []string{rn}},
		{Name: aws.String("vpc-id"), Values: []string{vpcID}},
	})
}

// securityGroupByID reads group id again, waiting for EC2 to show it.
func (c *Cloud) securityGroupByID(ctx context.Context, id string) (*types.SecurityGroup, error) {
	return c.securityGroupWhere(ctx, "read security group "+id, []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}})
}

func (c *Cloud) securityGroupWhere(ctx context.Context, what string, filters []types.Filter) (*types.SecurityGroup, error) {
	var sg *types.SecurityGroup
	err := c.untilVisible(ctx, what, notYet("InvalidGroup.NotFound"), func() error {
		sgs, err := c.describeSecurityGroups(ctx, filters)
		if err != nil {
			return err
		}
		if len(sgs) != 1 {
			return errNotListed
		}
		sg = &sgs[0]
		return nil
	})
	return sg, err
}

// rule is one ingress permission for one source.
type rule struct {
	proto    string
	from, to int32
	source   string // CIDR, "sg:ID", "pl:ID"
}

func (r rule) String() string {
	if r.from == r.to {
		return fmt.Sprintf("%s/%d from %s", r.proto, r.from, r.source)
	}
	return fmt.Sprintf("%s/%d-%d from %s", r.proto, r.from, r.to, r.source)
}

func (r rule) permission() types.IpPermission {
	perm := types.IpPermission{IpProtocol: aws.String(r.proto)}
	if r.proto != "-1" {
		perm.FromPort, perm.ToPort = aws.Int32(r.from), aws.Int32(r.to)
	}
	switch {
	case strings.HasPrefix(r.source, "sg:"):
		perm.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: aws.String(strings.TrimPrefix(r.source, "sg:"))}}
	case strings.HasPrefix(r.source, "pl:"):
		perm.PrefixListIds = []types.PrefixListId{{PrefixListId: aws.String(strings.TrimPrefix(r.source, "pl:"))}}
	case strings.Contains(r.source, ":"):
		perm.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(r.source)}}
	default:
		perm.IpRanges = []types.IpRange{{CidrIp: aws.String(r.source)}}
	}
	return perm
}

func rulesOf(perms []types.IpPermission) []rule {
	var out []rule
	for _, p := range perms {
		r := rule{proto: aws.ToString(p.IpProtocol), from: aws.ToInt32(p.FromPort), to: aws.ToInt32(p.ToPort)}
		for _, x := range p.IpRanges {
			r.source = aws.ToString(x.CidrIp)
			out = append(out, r)
		}
		for _, x := range p.Ipv6Ranges {
			r.source = aws.ToString(x.CidrIpv6)
			out = append(out, r)
		}
		for _, x := range p.UserIdGroupPairs {
			r.source = "sg:" + aws.ToString(x.GroupId)
			out = append(out, r)
		}
		for _, x := range p.PrefixListIds {
			r.source = "pl:" + aws.ToString(x.PrefixListId)
			out = append(out, r)
		}
	}
	return out
}

// wantedRules: TCP on each of ports from each of cidrs.
func wantedRules(cidrs []netip.Prefix, ports []int32) []rule {
	var out []rule
	for _, port := range ports {
		for _, c := range cidrs {
			out = append(out, rule{proto: "tcp", from: port, to: port, source: c.String()})
		}
	}
	return out
}

// diffRules: what to revoke (in have, not wanted) and to add (wanted, not
// in have).
func diffRules(have, want []rule) (revoke, add []rule) {
	inHave, inWant := map[rule]bool{}, map[rule]bool{}
	for _, r := range have {
		inHave[r] = true
	}
	for _, r := range want {
		inWant[r] = true
		if !inHave[r] {
			add = append(add, r)
		}
	}
	for _, r := range have {
		if !inWant[r] {
			revoke = append(revoke, r)
		}
	}
	return revoke, add
}

// reconcileIngress makes the group's ingress exactly the rules in want:
// it revokes every other rule and adds the missing ones (tagged).
// A group created a moment ago may answer InvalidGroup.NotFound for a
// while; that is waited out. A change EC2 made but whose answer was lost
// (the SDK then retries it) answers InvalidPermission.Duplicate or
// .NotFound: the rules are read again and the rest is done.
func (c *Cloud) reconcileIngress(ctx context.Context, sg *types.SecurityGroup, want []rule, name string) error {
	id := aws.ToString(sg.GroupId)
	have := rulesOf(sg.IpPermissions)
	for pass := 1; ; pass++ {
		err := c.applyIngress(ctx, id, have, want, name)
		if err == nil || pass == 3 || !hasCode(err, "InvalidPermission.Duplicate", "InvalidPermission.NotFound") {
			return err
		}
		c.logf("security group %s: %s; reading its rules again", id, errorCode(err))
		g, rerr := c.securityGroupByID(ctx, id)
		if rerr != nil {
			return fmt.Errorf("%w (after: %v)", rerr, err)
		}
		have = rulesOf(g.IpPermissions)
	}
}

func (c *Cloud) applyIngress(ctx context.Context, id string, have, want []rule, name string) error {
	revoke, add := diffRules(have, want)
	groupNotYet := notYet("InvalidGroup.NotFound")
	if len(revoke) > 0 {
		var perms []types.IpPermission
		for _, r := range revoke {
			perms = append(perms, r.permission())
		}
		what := fmt.Sprintf("revoke %s on %s", joinRules(revoke), id)
		err := c.untilVisible(ctx, what, groupNotYet, func() error {
			_, err := c.EC2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: perms})
			return err
		})
		if err != nil {
			return err
		}
		c.logf("security group %s: revoked %s", id, joinRules(revoke))
	}
	if len(add) > 0 {
		var perms []types.IpPermission
		for _, r := range add {
			perms = append(perms, r.permission())
		}
		what := fmt.Sprintf("allow %s on %s", joinRules(add), id)
		err := c.untilVisible(ctx, what, groupNotYet, func() error {
			_, err := c.EC2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
				GroupId: aws.String(id), IpPermissions: perms,
				TagSpecifications: tagSpec(types.ResourceTypeSecurityGroupRule, name),
			})
			return err
		})
		if err != nil {
			return err
		}
		c.logf("security group %s: allowed %s", id, joinRules(add))
	}
	return nil
}

func joinRules(rs []rule) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
