package workflow

import (
	"context"
	"fmt"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
)

// replaceableOnEC2 refuses what node replace does not do on a cluster
// made by kafkaup create: a host of the user's choosing (it launches the
// new instance itself).
func replaceableOnEC2(rec state.Cluster, n state.Node, o ReplaceOptions) error {
	if o.Host != "" || o.InternalHost != "" || o.User != "" || o.Identity != "" || o.Port != 0 {
		return provision.Inputf("%s runs on EC2 instances made by kafkaup create, so node replace launches node %d's new instance itself (in the old one's subnet and availability zone, like the other nodes) and logs in as create does: "+
			"leave out --host, --internal-host, --user, --identity and --port, and run kafkaup node replace %s --node %d", rec.Name, n.ID, rec.Name, n.ID)
	}
	if n.InstanceID == "" && n.ReplacedInstanceID == "" {
		return provision.Inputf("kafkaup's record of %s names no instance for node %d: rerun kafkaup create %s to finish the cluster first", rec.Name, n.ID, rec.Name)
	}
	return nil
}

// startInstanceReplacement records, before anything is launched, that
// node n moves off its instance: the old instance's id (terminated once
// its successor is recorded) and the next launch number (the launch's
// idempotency token). The old host keys are forgotten.
func startInstanceReplacement(n *state.Node) {
	n.Replacements++
	n.ReplacedInstanceID = n.InstanceID
	n.HostKeys = nil
}

// newInstance gives the node a running instance of its own and ends the
// old one, in the order that makes an interrupted run resumable:
//
//  1. launch (or find, after a crash) the new instance, with the token of
//     the recorded launch number;
//  2. read its host keys from its console and record it: instance id,
//     addresses (its private IP is the node's new internal address), zone
//     as rack, pinned host keys;
//  3. only then terminate the old instance; move the node's Elastic IP,
//     if it has one, to the new instance (its public address is then the
//     old one's again) and record that the old instance is gone.
//
// destroy finds both by tag at any point. Nothing to do when no
// replacement of an instance is under way.
func (r *replacement) newInstance(ctx context.Context) error {
	rec := &r.b.Record
	n := r.node()
	if rec.EC2 == nil || n.ReplacedInstanceID == "" {
		return nil
	}
	cl, err := newCloud(ctx, r.env, "", *rec)
	if err != nil {
		return err
	}
	if n.InstanceID == n.ReplacedInstanceID {
		if err := r.launchInstance(ctx, cl); err != nil {
			return err
		}
	}
	r.printf("terminating node %d's old instance %s", n.ID, n.ReplacedInstanceID)
	if err := cl.TerminateReplaced(ctx, rec.Name, n.ID, n.ReplacedInstanceID); err != nil {
		return fmt.Errorf("node %d's new instance %s is recorded; %w. Rerun the same command to finish", n.ID, n.InstanceID, err)
	}
	if n.EIPAllocationID != "" {
		inst, err := cl.MoveNodeEIP(ctx, rec.Name, n.ID, n.ReplacedInstanceID, n.InstanceID)
		if err != nil {
			return fmt.Errorf("node %d's new instance %s is recorded and the old one terminated; %w. Rerun the same command to finish", n.ID, n.InstanceID, err)
		}
		n.Host, n.AdvertisedHost = inst.PublicIP, advertisedAddr(*rec, inst)
		r.printf("node %d's Elastic IP %s is on its new instance %s", n.ID, inst.PublicIP, n.InstanceID)
	}
	n.ReplacedInstanceID = ""
	return r.env.Store.Save(*rec)
}

// launchInstance launches node's new instance and records it.
func (r *replacement) launchInstance(ctx context.Context, cl Cloud) error {
	rec := &r.b.Record
	n := r.node()
	req := cloud.ReplacementRequest{Name: rec.Name, Node: n.ID, OldInstanceID: n.ReplacedInstanceID, Zone: n.Rack,
		Token: cloud.ReplacementToken(rec.Name, rec.ClusterID, n.ID, n.Replacements)}
	r.printf("launching node %d's new instance in %s (launch %d of the node, in place of %s)", n.ID, n.Rack, n.Replacements, n.ReplacedInstanceID)
	inst, err := cl.LaunchReplacement(ctx, req)
	if err != nil {
		return fmt.Errorf("launch node %d's new instance: %w", n.ID, err)
	}
	if inst.PublicIP == "" || inst.PrivateIP == "" {
		return fmt.Errorf("node %d's new instance %s has no public or private IP (public %q, private %q)", n.ID, inst.InstanceID, inst.PublicIP, inst.PrivateIP)
	}
	wait := r.o.ConsoleTimeout
	if wait == 0 {
		wait = cloud.DefaultConsoleTimeout
	}
	nenv := r.env
	nenv.UI = nodeUI(r.env.UI, fmt.Sprintf("[node %d]", n.ID))
	keys, err := instanceHostKeys(ctx, nenv, cl, *n, inst, wait)
	if err != nil {
		return err
	}
	n.InstanceID, n.Rack = inst.InstanceID, inst.Zone
	n.Host, n.Port, n.AdvertisedHost = inst.PublicIP, 22, advertisedAddr(*rec, inst)
	n.InternalHost = inst.PrivateIP
	n.SetHostKeys(keys)
	if err := r.env.Store.Save(*rec); err != nil {
		return err
	}
	r.printf("node %d's new instance %s runs in %s at %s (private %s); recorded", n.ID, inst.InstanceID, inst.Zone, inst.PublicIP, inst.PrivateIP)
	return nil
}

// advertisedAddr is what clients are told to reach inst at: its public IP,
// or its public DNS name when the record says so.
func advertisedAddr(rec state.Cluster, inst *cloud.Broker) string {
	if rec.EC2 != nil && rec.EC2.AddressKind == "dns" && inst.PublicDNS != "" {
		return inst.PublicDNS
	}
	return inst.PublicIP
}
