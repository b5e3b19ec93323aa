package cloud

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// CreateRequest.Ports, as checkLocal resolves it, makes the rules the
// security group gets; a port added or dropped later changes only its own
// rules.
func TestPortsMakeRules(t *testing.T) {
	const cidr4, cidr6 = "203.0.113.7/32", "2001:db8::/64"
	cases := []struct {
		name  string
		ports []int32
		want  string // joinRules of the wanted rules, or "error: " and a part of it
	}{
		{"empty: SSH and Kafka", nil,
			"tcp/22 from 2001:db8::/64, tcp/22 from 203.0.113.7/32, tcp/9092 from 2001:db8::/64, tcp/9092 from 203.0.113.7/32"},
		{"empty slice: SSH and Kafka", []int32{},
			"tcp/22 from 2001:db8::/64, tcp/22 from 203.0.113.7/32, tcp/9092 from 2001:db8::/64, tcp/9092 from 203.0.113.7/32"},
		{"with metrics", []int32{SSHPort, KafkaPort, 9404},
			"tcp/22 from 2001:db8::/64, tcp/22 from 203.0.113.7/32, tcp/9092 from 2001:db8::/64, tcp/9092 from 203.0.113.7/32, tcp/9404 from 2001:db8::/64, tcp/9404 from 203.0.113.7/32"},
		{"duplicates dropped", []int32{9404, 22, 9404, 22},
			"tcp/22 from 2001:db8::/64, tcp/22 from 203.0.113.7/32, tcp/9404 from 2001:db8::/64, tcp/9404 from 203.0.113.7/32"},
		{"one port", []int32{22}, "tcp/22 from 2001:db8::/64, tcp/22 from 203.0.113.7/32"},
		{"edges", []int32{1, 65535}, "tcp/1 from 2001:db8::/64, tcp/1 from 203.0.113.7/32, tcp/65535 from 2001:db8::/64, tcp/65535 from 203.0.113.7/32"},
		{"zero", []int32{22, 0}, "error: port 0 is out of range: use 1 to 65535"},
		{"negative", []int32{-22}, "error: port -22 is out of range"},
		{"too high", []int32{65536}, "error: port 65536 is out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan{req: CreateRequest{Name: "demo", AllowCIDRs: []string{cidr4, cidr6}, Ports: tc.ports}}
			err := p.checkLocal()
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want an error with %q", err, want)
				}
				if lerr := ValidateLocal("", p.req); lerr == nil || lerr.Error() != err.Error() {
					t.Fatalf("ValidateLocal: %v, want %v", lerr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := joinRules(wantedRules(p.cidrs, p.ports)); got != tc.want {
				t.Errorf("rules %s\nwant  %s", got, tc.want)
			}
		})
	}

	// Adding the metrics port to a converged group adds only its rules;
	// dropping it again revokes only them.
	p := &plan{req: CreateRequest{Name: "demo", AllowCIDRs: []string{cidr4}}}
	if err := p.checkLocal(); err != nil {
		t.Fatal(err)
	}
	plain := wantedRules(p.cidrs, p.ports)
	withMetrics := wantedRules(p.cidrs, []int32{SSHPort, KafkaPort, 9404})
	revoke, add := diffRules(plain, withMetrics)
	if len(revoke) != 0 || joinRules(add) != "tcp/9404 from 203.0.113.7/32" {
		t.Errorf("add metrics: revoke %s, add %s", joinRules(revoke), joinRules(add))
	}
	revoke, add = diffRules(withMetrics, plain)
	if len(add) != 0 || joinRules(revoke) != "tcp/9404 from 203.0.113.7/32" {
		t.Errorf("drop metrics: revoke %s, add %s", joinRules(revoke), joinRules(add))
	}
}

// On moto: a create with the metrics port opens it; the next create
// without it (empty Ports) closes it again and keeps the rest.
func TestMotoPorts(t *testing.T) {
	e := newEnv(t)
	req := e.request("ports")
	req.Ports = []int32{SSHPort, KafkaPort, 9404}
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rules := func() string {
		out, err := e.raw.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{b.SecurityGroupID}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range out.SecurityGroups[0].IpPermissions {
			for _, r := range p.IpRanges {
				got = append(got, fmt.Sprintf("%s/%d-%d %s", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIp)))
			}
		}
		sort.Strings(got)
		return strings.Join(got, ", ")
	}
	want := "tcp/22-22 198.51.100.0/24, tcp/22-22 203.0.113.7/32, tcp/9092-9092 198.51.100.0/24, tcp/9092-9092 203.0.113.7/32, tcp/9404-9404 198.51.100.0/24, tcp/9404-9404 203.0.113.7/32"
	if got := rules(); got != want {
		t.Fatalf("with 9404:\n got %s\nwant %s", got, want)
	}
	req.Ports = nil
	if b, err = e.c.Create(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	e.converged("ports", b, req.AllowCIDRs)
	if _, err := e.c.Destroy(e.ctx, "ports", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}
