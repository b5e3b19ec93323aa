package cloud

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Allow changes who may reach broker name: each CIDR of add is let in on
// each of ports (empty: 22 and 9092), and every rule for a CIDR of revoke
// is taken out, whatever its port; other rules are left as they are.
// With neither, nothing changes. It returns the CIDRs the security group
// lets in afterwards, sorted. Malformed CIDRs are a *RequestError, before
// any call.
func (c *Cloud) Allow(ctx context.Context, name string, ports []int32, add, revoke []string) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	addP, err := ParseCIDRs(add)
	if err != nil {
		return nil, err
	}
	revokeP, err := ParseCIDRs(revoke)
	if err != nil {
		return nil, err
	}
	if len(ports) == 0 {
		ports = defaultPorts
	}
	sgs, err := c.describeSecurityGroups(ctx, brokerFilters(name))
	if err != nil {
		return nil, fmt.Errorf("find the security group of broker %s: %w", name, err)
	}
	switch len(sgs) {
	case 0:
		return nil, fmt.Errorf("broker %s has no security group in %s: kafkaup create %s makes it again", name, c.Region, name)
	case 1:
	default:
		return nil, fmt.Errorf("broker %s has %d security groups in %s; kafkaup makes one: destroy it and create it again", name, len(sgs), c.Region)
	}
	sg := &sgs[0]
	have := rulesOf(sg.IpPermissions)
	gone := map[string]bool{}
	for _, p := range revokeP {
		gone[p.String()] = true
	}
	var want []rule
	for _, r := range have {
		if !gone[r.source] {
			want = append(want, r)
		}
	}
	want = append(want, wantedRules(addP, ports)...)
	if len(add)+len(revoke) > 0 {
		if err := c.reconcileIngress(ctx, sg, want, name); err != nil {
			return nil, fmt.Errorf("security group %s of broker %s: %w", aws.ToString(sg.GroupId), name, advise(err))
		}
	}
	return cidrsOf(want), nil
}

// cidrsOf lists the CIDR sources of rules (not security groups or prefix
// lists), each once, sorted.
func cidrsOf(rules []rule) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rules {
		if strings.HasPrefix(r.source, "sg:") || strings.HasPrefix(r.source, "pl:") || seen[r.source] {
			continue
		}
		if _, err := netip.ParsePrefix(r.source); err != nil {
			continue
		}
		seen[r.source] = true
		out = append(out, r.source)
	}
	sort.Strings(out)
	return out
}
