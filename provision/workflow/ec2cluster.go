package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
)

// checkNodes settles the cluster's size (--nodes, else the recorded one,
// else 1) and refuses what cannot be: a count the quorum does not want, a
// recorded cluster of another size (kafkaup does not add or remove nodes),
// and one address for several nodes.
func checkNodes(o *CreateOptions, rec state.Cluster, found bool) error {
	recorded := 0
	if found && rec.EC2 != nil {
		recorded = len(rec.Nodes)
	}
	if o.Nodes == 0 {
		o.Nodes = max(recorded, 1)
	}
	if err := cloud.CheckNodeCount(o.Nodes); err != nil {
		return input(err)
	}
	if recorded > 0 && recorded != o.Nodes {
		return provision.Inputf("%s has %d nodes; create resumes it with the same --nodes %d (kafkaup does not add or remove nodes yet). To make a cluster of %d, destroy it or pick another name",
			o.Name, recorded, recorded, o.Nodes)
	}
	if o.Nodes > 1 && o.Overrides.AdvertisedHost != nil {
		return provision.Inputf("--advertised-host names one address, and each of the %d nodes is advertised at its own public address: leave it out (--address ip|dns chooses which)", o.Nodes)
	}
	o.Request.Nodes = o.Nodes
	return nil
}

// sayPlacements tells where the nodes go when two of them share a zone.
func sayPlacements(ui UI, name string, ps []cloud.Placement, subnetGiven bool) {
	if len(ps) < 2 || !cloud.SharedZones(ps) {
		return
	}
	zones := make([]string, len(ps))
	for i, p := range ps {
		zones[i] = fmt.Sprintf("node %d in %s", i+1, p.Zone)
	}
	why := "the region has fewer availability zones (with a default subnet and the instance type) than nodes"
	if subnetGiven {
		why = "--subnet puts every node in its subnet's zone"
	}
	ui.Printf("note: %s: %s. Losing a zone that holds a majority of the nodes stops %s's quorum", why, strings.Join(zones, ", "), name)
}

// confirmCreate is the question asked before anything is made.
func confirmCreate(o CreateOptions, region string) string {
	eip := ""
	if o.Request.ElasticIP {
		eip = " and Elastic IP"
	}
	if o.Nodes > 1 {
		if eip != "" {
			eip = " and an Elastic IP each"
		}
		return fmt.Sprintf("Create %d %s instances%s, their security group and key pair for cluster %s in %s (billed to your AWS account, %d times a single broker's cost)?",
			o.Nodes, o.Request.InstanceType, eip, o.Name, region, o.Nodes)
	}
	return fmt.Sprintf("Create a %s instance and its security group, key pair%s for broker %s in %s (billed to your AWS account)?",
		o.Request.InstanceType, eip, o.Name, region)
}

// zoneNote names a cluster node's zone in a progress line.
func zoneNote(b *cloud.Broker, nodes int) string {
	if nodes < 2 {
		return ""
	}
	return fmt.Sprintf(" (node %d in %s, private %s)", b.Node, b.Zone, b.PrivateIP)
}

// createCluster provisions the cluster whose instances create has just
// made or found: each node's host keys come from its console, its record
// gets its addresses (the private IP for the other nodes, the public one
// for clients) and its zone as broker.rack, then every node is set up at
// once by the same routine as provision --host.
func createCluster(ctx context.Context, env Env, cl Cloud, rec *state.Cluster, insts []*cloud.Broker, o CreateOptions) (*Outcome, error) {
	keys, err := nodeHostKeys(ctx, env, cl, rec, insts, o.ConsoleTimeout)
	if err != nil {
		return nil, err
	}
	if err := layOutInstances(rec, insts, keys); err != nil {
		return nil, err
	}
	specs, err := clusterSpecs(*rec, o.Overrides, true)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		state.Remember(rec, i, specs[i])
	}
	out, err := runCluster(ctx, env, rec, specs, o.RunOptions)
	if err != nil {
		return out, err
	}
	return out, createTopicsAfter(ctx, env, *rec, o, out)
}

// startCluster converges a cluster whose instances have just started:
// new public addresses are advertised, the private ones must not have
// changed (the quorum keeps them).
func startCluster(ctx context.Context, env Env, cl Cloud, rec *state.Cluster, insts []*cloud.Broker, o RunOptions) (*Outcome, error) {
	keys, err := nodeHostKeys(ctx, env, cl, rec, insts, 0)
	if err != nil {
		return nil, err
	}
	if err := layOutInstances(rec, insts, keys); err != nil {
		return nil, err
	}
	specs, err := clusterSpecs(*rec, state.Overrides{}, true)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		state.Remember(rec, i, specs[i])
	}
	return runCluster(ctx, env, rec, specs, o)
}

// followInstances looks up a cluster's instances before a reprovision:
// each must be running (else: kafkaup start), and a node whose public
// address changed outside kafkaup (a stop and start in the console) is
// reached, and advertised, at its new one. Host keys stay as recorded.
func followInstances(ctx context.Context, env Env, rec *state.Cluster, o ReprovisionOptions) error {
	cl, err := newCloud(ctx, env, o.Region, *rec)
	if err != nil {
		return err
	}
	insts, err := cl.DescribeAll(ctx, rec.Name)
	if err != nil {
		return err
	}
	if len(insts) != len(rec.Nodes) {
		return fmt.Errorf("%s has %d nodes in kafkaup's record but %d instances in EC2: destroy it and create it again", rec.Name, len(rec.Nodes), len(insts))
	}
	var stopped []string
	for i, inst := range insts {
		if inst.State != "running" {
			stopped = append(stopped, fmt.Sprintf("node %d (%s) is %s", i+1, inst.InstanceID, inst.State))
		}
	}
	if len(stopped) > 0 {
		return fmt.Errorf("%s: %s. Run kafkaup start %s first", rec.Name, strings.Join(stopped, ", "), rec.Name)
	}
	return layOutInstances(rec, insts, nil)
}

// nodeHostKeys reads every node's SSH host keys (instanceHostKeys) at once.
func nodeHostKeys(ctx context.Context, env Env, cl Cloud, rec *state.Cluster, insts []*cloud.Broker, wait time.Duration) ([][]ssh.PublicKey, error) {
	if len(rec.Nodes) > len(insts) {
		return nil, fmt.Errorf("%s has %d nodes in kafkaup's record but %d instances in EC2: destroy it and create it again", rec.Name, len(rec.Nodes), len(insts))
	}
	rec.Node(len(insts) - 1)
	keys := make([][]ssh.PublicKey, len(insts))
	errs := make([]error, len(insts))
	eachNode(len(insts), func(i int) {
		nenv := env
		nenv.UI = nodeUI(env.UI, fmt.Sprintf("[node %d]", i+1))
		keys[i], errs[i] = instanceHostKeys(ctx, nenv, cl, rec.Nodes[i], insts[i], wait)
	})
	return keys, nodeErrors(*rec, errs)
}

// layOutInstances records where each node's instance is: its public
// address (SSH and what clients are told, the IP or the DNS name after
// the record's address kind), its private address (what the other nodes
// use: the controllers and replication), its zone (broker.rack), the
// instance, its host keys and its Elastic IP; and, for a new cluster, the
// cluster id and each voter's directory id. A node's private address is
// kept in the quorum's metadata: an instance that comes back with
// another (it was replaced) is refused.
func layOutInstances(rec *state.Cluster, insts []*cloud.Broker, keys [][]ssh.PublicKey) error {
	if rec.ClusterID == "" {
		rec.ClusterID = provision.NewClusterID()
	}
	first := rec.Nodes[0]
	var errs []error
	for i, inst := range insts {
		n := rec.Node(i)
		switch {
		case inst.PublicIP == "":
			errs = append(errs, fmt.Errorf("node %d: instance %s has no public IP: its subnet does not assign one. Use --elastic-ip, or a public subnet (--subnet)", i+1, inst.InstanceID))
			continue
		case inst.PrivateIP == "":
			errs = append(errs, fmt.Errorf("node %d: instance %s has no private IP", i+1, inst.InstanceID))
			continue
		case n.InternalHost != "" && n.InternalHost != inst.PrivateIP:
			errs = append(errs, fmt.Errorf("node %d of %s talks to the other nodes at %s, but its instance %s has the private address %s: the quorum keeps the old address, so this node cannot rejoin. To move the node to a new instance, run kafkaup node replace %s --node %d",
				n.ID, rec.Name, n.InternalHost, inst.InstanceID, inst.PrivateIP, rec.Name, n.ID))
			continue
		}
		n.Host, n.Port, n.User, n.Identity = inst.PublicIP, 22, first.User, first.Identity
		n.InternalHost, n.Rack, n.InstanceID = inst.PrivateIP, inst.Zone, inst.InstanceID
		n.AdvertisedHost = advertisedAddr(*rec, inst)
		if keys != nil { // nil: the recorded keys stay
			n.SetHostKeys(keys[i])
		}
		if inst.EIPOwned {
			n.EIPAllocationID = inst.EIPAllocationID
		}
		if n.DirectoryID == "" {
			n.DirectoryID = provision.NewDirectoryID()
		}
	}
	return errors.Join(errs...)
}
