package workflow

import (
	"context"
	"fmt"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
)

// AllowOptions is `kafkaup allow NAME [CIDR...] [--my-ip] [--revoke]`.
type AllowOptions struct {
	Name   string
	Region string
	CIDRs  []string
	MyIP   bool // also this machine's public IP, as a /32 (or /128)
	Revoke bool // take the CIDRs out instead of letting them in
	// OpenToWorld allows 0.0.0.0/0 or ::/0 on a broker without TLS and a
	// login (see CheckOpenToWorld).
	OpenToWorld bool
}

// AllowOutcome is what the security group lets in afterwards.
type AllowOutcome struct {
	Name    string   `json:"name"`
	Region  string   `json:"region"`
	Added   []string `json:"added,omitempty"`
	Revoked []string `json:"revoked,omitempty"`
	Allowed []string `json:"allowed"` // CIDRs let in on the ports below
	Ports   []int32  `json:"ports"`
}

// Allow lets more addresses reach an EC2 cluster's SSH, Kafka (and metrics)
// ports, or takes some out, on its security group, and records the result
// so a rerun of create keeps it. Given no CIDR, it lists what is allowed.
func Allow(ctx context.Context, env Env, o AllowOptions) (*AllowOutcome, error) {
	if o.Revoke && len(o.CIDRs) == 0 && !o.MyIP {
		return nil, provision.Inputf("--revoke needs what to take out: CIDR blocks, or --my-ip")
	}
	if _, err := cloud.ParseCIDRs(o.CIDRs); err != nil {
		return nil, input(err)
	}
	rec, err := loadExisting(env, o.Name)
	if err != nil {
		return nil, err
	}
	if rec.EC2 == nil {
		return nil, provision.Inputf("%s was set up with provision --host: kafkaup did not make its firewall, so it cannot change who may reach it", o.Name)
	}
	cidrs := append([]string{}, o.CIDRs...)
	if o.MyIP {
		ip, err := env.CallerIP(ctx)
		if err != nil {
			return nil, fmt.Errorf("find your public IP: %w. Give the address instead: kafkaup allow %s 203.0.113.7/32", err, o.Name)
		}
		cidr, err := cloud.HostCIDR(ip)
		if err != nil {
			return nil, err
		}
		cidrs = append(cidrs, cidr)
	}
	if _, err := cloud.ParseCIDRs(cidrs); err != nil {
		return nil, input(err)
	}
	var spec provision.Spec
	if len(rec.Nodes) > 0 {
		if spec, err = state.SpecFor(rec, 0); err != nil {
			return nil, err
		}
	} else {
		spec = provision.DefaultSpec()
	}
	out := &AllowOutcome{Name: o.Name, Ports: ingressPorts(spec)}
	var add, revoke []string
	if o.Revoke {
		revoke, out.Revoked = cidrs, cidrs
	} else {
		if err := CheckOpenToWorld(env.UI, o.Name, cidrs, spec.Security.Mode, o.OpenToWorld); err != nil {
			return nil, err
		}
		add, out.Added = cidrs, cidrs
	}
	cl, err := newCloud(ctx, env, o.Region, rec)
	if err != nil {
		return nil, err
	}
	out.Region = cl.RegionName()
	if out.Allowed, err = cl.Allow(ctx, o.Name, out.Ports, add, revoke); err != nil {
		return nil, validationError(err)
	}
	if len(cidrs) > 0 {
		rec.EC2.AllowCIDRs = out.Allowed
		if err := env.Store.Save(rec); err != nil {
			return out, err
		}
	}
	if len(out.Allowed) == 0 {
		env.UI.Printf("warning: no address may reach %s now, not even this machine: kafkaup allow %s --my-ip lets it in again", o.Name, o.Name)
	}
	return out, nil
}
