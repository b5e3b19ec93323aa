package workflow

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// StartOptions is `kafkaup start NAME`.
type StartOptions struct {
	Name   string
	Region string
	RunOptions
}

// Start starts a cluster's stopped instances again and converges each node
// to its recorded spec at its new address (advertised.listeners and the
// broker certificate follow a changed public IP).
func Start(ctx context.Context, env Env, o StartOptions) (*Outcome, error) {
	rec, cl, err := ec2Cluster(ctx, env, o.Name, o.Region, "start")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	insts, err := cl.StartAll(ctx, rec.Name)
	if err != nil {
		return nil, err
	}
	for _, inst := range insts {
		env.UI.Printf("instance %s running at %s%s (%s)", inst.InstanceID, inst.PublicIP, zoneNote(inst, len(insts)), time.Since(start).Round(100*time.Millisecond))
	}
	o.Dial.RetryAuth = true
	if len(rec.Nodes) > 1 || len(insts) > 1 {
		return startCluster(ctx, env, cl, &rec, insts, o.RunOptions)
	}
	inst := insts[0]
	spec, err := state.SpecFor(rec, 0)
	if err != nil {
		return nil, err
	}
	return provisionInstance(ctx, env, cl, &rec, 0, inst, spec, false, 0, o.RunOptions)
}

// StopOptions is `kafkaup stop NAME`.
type StopOptions struct {
	Name   string
	Region string
	Dial   DialOptions
}

// StopOutcome is what Stop did.
type StopOutcome struct {
	// Brokers is the whole-cluster broker stop done first (nil for a
	// single broker, or when it failed: BrokersErr says why).
	Brokers    *ControlOutcome
	BrokersErr error
	Took       time.Duration
}

// Stop stops a cluster's instances, all at once (their volumes, the data
// and their private addresses stay). On a cluster of several nodes the
// brokers are stopped first, all at once over SSH, as kafkaup broker stop
// NAME does: left to each instance's own shutdown, every broker would
// begin its controlled shutdown while the controllers on the other nodes
// go down with their hosts, wait for a quorum that is gone (Kafka waits up
// to 5 minutes), hold up its instance's stop until EC2 forces it, and
// recover its logs at the next start. A node whose broker cannot be
// stopped so (unreachable over SSH) is stopped with its instance anyway.
func Stop(ctx context.Context, env Env, o StopOptions) (*StopOutcome, error) {
	rec, cl, err := ec2Cluster(ctx, env, o.Name, o.Region, "stop")
	if err != nil {
		return nil, err
	}
	out := &StopOutcome{}
	start := time.Now()
	if len(rec.Nodes) > 1 {
		if o.Dial.RetryFor == 0 {
			o.Dial.RetryFor = 15 * time.Second
		}
		out.Brokers, out.BrokersErr = Control(ctx, env, ControlOptions{Name: o.Name, Action: "stop", Dial: o.Dial})
		if out.BrokersErr != nil {
			out.Brokers = nil
			env.UI.Printf("the brokers of %s were not all stopped over SSH first (%v): their instances' shutdown stops them", o.Name, out.BrokersErr)
		}
	}
	_, err = cl.StopAll(ctx, rec.Name)
	out.Took = time.Since(start)
	return out, err
}

// ec2Cluster loads a cluster made by create, with its cloud.
func ec2Cluster(ctx context.Context, env Env, name, region, action string) (state.Cluster, Cloud, error) {
	rec, err := loadExisting(env, name)
	if err != nil {
		return rec, nil, err
	}
	if rec.EC2 == nil {
		return rec, nil, provision.Inputf("%s was set up with provision --host: kafkaup can only stop and start EC2 instances it created (use kafkaup broker %s %s for the broker itself)", name, action, name)
	}
	cl, err := newCloud(ctx, env, region, rec)
	return rec, cl, err
}

// DestroyOptions is `kafkaup destroy NAME`.
type DestroyOptions struct {
	Name   string
	Region string
	DryRun bool
	Yes    bool
	// Found is shown what was found (one line per resource) before anything
	// is deleted.
	Found func(region string, lines []string)
}

// DestroyOutcome says what destroy did.
type DestroyOutcome struct {
	Region      string
	NothingLeft bool // nothing of the cluster was found in AWS
	Deleted     bool
	Took        time.Duration
}

// Destroy deletes everything kafkaup made for a cluster in EC2, found by
// tag (so a lost record leaks nothing), then the local record and secrets.
func Destroy(ctx context.Context, env Env, o DestroyOptions) (*DestroyOutcome, error) {
	if err := state.ValidateName(o.Name); err != nil {
		return nil, input(err)
	}
	rec, found, err := loadOrNew(env, o.Name)
	if err != nil {
		return nil, err
	}
	if found && rec.EC2 == nil {
		return nil, provision.Inputf("%s was set up with provision --host, not created on EC2: kafkaup does not delete hosts it did not make. Use kafkaup forget %s to drop its record", o.Name, o.Name)
	}
	cl, err := newCloud(ctx, env, o.Region, rec)
	if err != nil {
		return nil, err
	}
	out := &DestroyOutcome{Region: cl.RegionName()}
	res, err := cl.Find(ctx, o.Name)
	if err != nil {
		return nil, err
	}
	if res.Empty() {
		out.NothingLeft = true
		if !o.DryRun {
			return out, forgetLocally(env, rec, res)
		}
		return out, nil
	}
	if o.Found != nil {
		o.Found(out.Region, res.Lines())
	}
	if o.DryRun {
		return out, nil
	}
	if !o.Yes {
		ok, err := env.UI.Confirm(fmt.Sprintf("Delete these, and every message stored in broker %s?", o.Name))
		if err != nil || !ok {
			return out, err
		}
	}
	start := time.Now()
	if _, err := cl.Destroy(ctx, o.Name, false); err != nil {
		return out, err
	}
	if err := forgetLocally(env, rec, res); err != nil {
		return out, err
	}
	out.Deleted, out.Took = true, time.Since(start)
	return out, nil
}

// Forget drops the record of a cluster set up with provision --host (its
// hosts are not touched).
func Forget(env Env, name string) error {
	rec, err := loadExisting(env, name)
	if err != nil {
		return err
	}
	if rec.EC2 != nil {
		return provision.Inputf("%s is an EC2 broker: kafkaup destroy %s deletes it and its record", name, name)
	}
	return forgetLocally(env, rec, nil)
}

// forgetLocally drops what this machine keeps about a cluster: the host
// keys pinned for its nodes' addresses (and for the public IPs of the
// instances and Elastic IPs found in AWS, res), then its record, secrets
// and generated key. An address EC2 gives to a later instance then meets
// no stale pin.
func forgetLocally(env Env, rec state.Cluster, res *cloud.Resources) error {
	var addrs []string
	for _, n := range rec.Nodes {
		if n.Host != "" {
			addrs = append(addrs, sshAddr(n))
		}
	}
	for _, ip := range res.PublicIPs() {
		addrs = append(addrs, net.JoinHostPort(ip, "22"))
	}
	if err := remote.RemovePins(state.KnownHostsFile(env.StateDir), addrs...); err != nil {
		return err
	}
	return env.Store.Delete(rec.Name)
}
