package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// NodeOutcome is what one node's run did, in a cluster's provisioning.
type NodeOutcome struct {
	ID     int
	Host   string
	Spec   provision.Spec
	Result *provision.Result // nil when the run stopped before observing
	Err    error
}

// NodeUI is a UI that can speak for one node of a cluster: the lines it
// prints carry label, so that nodes provisioned in parallel can be told
// apart. The CLI's UI has it; any other UI gets its Printf lines prefixed.
type NodeUI interface {
	ForNode(label string) UI
}

func nodeUI(ui UI, label string) UI {
	if n, ok := ui.(NodeUI); ok {
		return n.ForNode(label)
	}
	return prefixedUI{UI: ui, prefix: label + " "}
}

type prefixedUI struct {
	UI
	prefix string
}

func (p prefixedUI) Printf(format string, args ...any) {
	p.UI.Printf("%s", p.prefix+fmt.Sprintf(format, args...))
}

// provisionCluster sets up a cluster of several nodes on existing hosts,
// every node a broker and a controller, all nodes at once (one goroutine
// each). The record, with the cluster id and each voter's directory id, is
// saved once every host answers and before any changes, so a rerun formats
// with the same ones. A broker that must restart waits until no other
// node's broker is restarting: a rerun never restarts every broker at once.
func provisionCluster(ctx context.Context, env Env, o ProvisionOptions) (*Outcome, error) {
	name := o.Name
	if name == "" {
		name = state.NameForHost(o.Nodes[0].Host)
	}
	if err := state.ValidateName(name); err != nil {
		return nil, provision.Inputf("--name: %v", err)
	}
	if o.Overrides.AdvertisedHost != nil {
		return nil, provision.Inputf("--advertised-host for a cluster takes one address per --host, in the same order")
	}
	if err := distinctHosts(o.Nodes); err != nil {
		return nil, err
	}
	rec, existed, err := loadOrNew(env, name)
	if err != nil {
		return nil, err
	}
	if err := layOutCluster(&rec, existed, o.Nodes); err != nil {
		return nil, err
	}
	specs, err := clusterSpecs(rec, o.Overrides, false)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		state.Remember(&rec, i, specs[i])
	}
	return runCluster(ctx, env, &rec, specs, o.RunOptions)
}

// runCluster provisions every node of rec with its spec, all at once (one
// goroutine each), the way both provision --host and create set up a
// cluster: it connects to every node (checking the host keys the record
// holds, else trusting on first use), saves the record once every host
// answers and before any change (so a rerun formats with the same cluster
// and directory ids), makes or loads the cluster's secrets, runs the
// engine on each node, lets one broker restart at a time, and verifies
// the cluster from this machine (a produce and consume with acks=all to a
// topic replicated on every node, up to 3).
func runCluster(ctx context.Context, env Env, rec *state.Cluster, specs []provision.Spec, o RunOptions) (*Outcome, error) {
	hosts := make([]Host, len(rec.Nodes))
	dialErrs := make([]error, len(rec.Nodes))
	eachNode(len(rec.Nodes), func(i int) { hosts[i], dialErrs[i] = dialNode(ctx, env, *rec, i, o.Dial) })
	defer func() {
		for _, h := range hosts {
			if h != nil {
				h.Close()
			}
		}
	}()
	if err := nodeErrors(*rec, dialErrs); err != nil {
		return nil, err
	}
	if !o.DryRun {
		if err := env.Store.Save(*rec); err != nil {
			return nil, err
		}
	}
	sec, err := clusterSecrets(env, *rec, specs, o.DryRun)
	if err != nil {
		return nil, err
	}
	if len(rec.Nodes) == 2 {
		env.UI.Printf("note: a cluster of 2 nodes stops when either node is down (its quorum needs both); 3 nodes keep serving with one down")
	}

	gate := &restartGate{}
	outs := make([]NodeOutcome, len(rec.Nodes))
	eachNode(len(rec.Nodes), func(i int) {
		n := rec.Nodes[i]
		ui := nodeUI(env.UI, fmt.Sprintf("[node %d %s]", n.ID, n.Host))
		res, err := env.engine()(ctx, hosts[i], specs[i], n.Host, provision.Options{
			DryRun: o.DryRun, SkipVerify: o.SkipVerify, Progress: ui,
			Auth: sec.Auth(), NewPassword: sec.NewPassword, BeforeApply: gate.before(ui),
		})
		outs[i] = NodeOutcome{ID: n.ID, Host: n.Host, Spec: specs[i], Result: res, Err: interrupted(ctx, n.Host, res, err)}
	})

	out := &Outcome{Name: rec.Name, Spec: specs[0], Result: outs[0].Result, Nodes: outs, Bootstrap: rec.Bootstrap()}
	var errs []error
	for i, no := range outs {
		if no.Result != nil && no.Result.ClusterID != "" && !o.DryRun {
			rec.Nodes[i].Systemd = no.Result.Systemd
		}
		if no.Err != nil {
			errs = append(errs, fmt.Errorf("node %d (%s): %w", no.ID, no.Host, no.Err))
		}
	}
	if !o.DryRun {
		if err := env.Store.Save(*rec); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil || o.DryRun {
		return out, err
	}
	if !o.SkipVerify {
		if out.Verified, err = env.verifyCluster()(ctx, specs, provision.Options{Auth: sec.Auth()}); err != nil {
			return out, err
		}
	}
	if out.Client, err = sec.WriteClientFiles(rec.Bootstrap()); err != nil {
		return out, err
	}
	return out, nil
}

// distinctHosts refuses a host or an internal address given twice.
func distinctHosts(nodes []NodeTarget) error {
	seen := map[string]bool{}
	for _, n := range nodes {
		for _, h := range []string{n.Host, n.InternalHost} {
			if h == "" {
				continue
			}
			if seen[h] {
				return provision.Inputf("%s is given twice: each node of a cluster is its own host, with its own address", h)
			}
			seen[h] = true
		}
	}
	return nil
}

// layOutCluster fills rec with the nodes: how to reach each, its addresses,
// and the ids the storage is formatted with. A known cluster keeps its
// cluster id, node ids, directory ids and internal addresses: the quorum
// stores them, so they cannot change; new ones are made for a new cluster.
func layOutCluster(rec *state.Cluster, existed bool, nodes []NodeTarget) error {
	if existed {
		if err := sameCluster(*rec, nodes); err != nil {
			return err
		}
	}
	if rec.ClusterID == "" {
		rec.ClusterID = provision.NewClusterID()
	}
	for i, nt := range nodes {
		setTarget(rec, i, nt.Target)
		n := rec.Node(i)
		switch {
		case nt.InternalHost != "":
			n.InternalHost = nt.InternalHost
		case n.InternalHost == "":
			n.InternalHost = nt.Host
		}
		n.AdvertisedHost = nt.AdvertisedHost
		if n.AdvertisedHost == "" {
			n.AdvertisedHost = nt.Host
		}
		if n.DirectoryID == "" && n.ReplacedDirectoryID == "" { // a replacement's comes from its format
			n.DirectoryID = provision.NewDirectoryID()
		}
	}
	return nil
}

// sameCluster refuses to lay new hosts over a record of something else.
func sameCluster(rec state.Cluster, nodes []NodeTarget) error {
	var given, recorded []string
	for _, n := range nodes {
		given = append(given, n.Host)
	}
	for _, n := range rec.Nodes {
		recorded = append(recorded, n.Host)
	}
	switch {
	case rec.EC2 != nil:
		return provision.Inputf("%s is a broker kafkaup made on EC2; pick another --name for these hosts, or use kafkaup reprovision %s", rec.Name, rec.Name)
	case len(rec.Nodes) == 1 && strings.Contains(","+strings.Join(given, ",")+",", ","+recorded[0]+","):
		return provision.Inputf("%s is a single broker on %s. Its quorum is static (one voter on loopback), and Kafka 4.0 cannot turn a static quorum into a dynamic one, "+
			"so kafkaup will not grow it into a cluster: provision the cluster under another --name, on hosts with no Kafka data", rec.Name, recorded[0])
	case len(rec.Nodes) == 1:
		return provision.Inputf("the name %q is already used for host %s; pick another --name or run `kafkaup forget %s` first", rec.Name, recorded[0], rec.Name)
	case strings.Join(given, ",") != strings.Join(recorded, ","):
		return provision.Inputf("%s is a cluster of %s; give the same hosts in the same order (adding or removing nodes is not supported yet; a dead node moves to a new host with kafkaup node replace %s --node N --host NEWHOST), or pick another --name",
			rec.Name, strings.Join(recorded, ", "), rec.Name)
	}
	for i, n := range nodes {
		if was := rec.Nodes[i].Internal(); n.InternalHost != "" && n.InternalHost != was {
			return provision.Inputf("node %d of %s talks to the other nodes at %s; the quorum keeps that address in its metadata, so it cannot change to %s", rec.Nodes[i].ID, rec.Name, was, n.InternalHost)
		}
	}
	return nil
}

// clusterSpecs is every node's spec: the defaults (or, with keepRecorded,
// the recorded settings, as create and start keep them) and the user's
// settings (provision does not keep recorded settings), the node's own
// addresses and rack, and the cluster's voters. A tarball to upload is
// hashed once.
func clusterSpecs(rec state.Cluster, ov state.Overrides, keepRecorded bool) ([]provision.Spec, error) {
	base := rec
	if !keepRecorded {
		base.Spec = state.SharedSpec{}
	}
	specs := make([]provision.Spec, len(rec.Nodes))
	for i, n := range rec.Nodes {
		spec, err := ov.Apply(base, i, n.Host)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if err := checkLocalTarball(&spec); err != nil {
				return nil, err
			}
		} else {
			spec.Source.SHA512 = specs[0].Source.SHA512
		}
		specs[i] = spec
	}
	return specs, nil
}

// clusterSecrets makes or loads the cluster's CA and login; with TLS the
// broker certificate, which every node shares, covers every advertised
// address.
func clusterSecrets(env Env, rec state.Cluster, specs []provision.Spec, dryRun bool) (*secrets.Set, error) {
	var advertised []string
	for _, s := range specs {
		advertised = append(advertised, s.AdvertisedHost)
	}
	sec, err := secrets.Ensure(env.StateDir, rec.Name, secrets.Want{Mode: specs[0].Security.Mode, Hosts: advertised, DryRun: dryRun})
	if err != nil {
		return nil, err
	}
	for i := range specs {
		specs[i].Security.KeystorePEM = sec.KeystorePEM
	}
	if sec.Reissued && !dryRun {
		env.UI.Printf("issued a broker certificate for %s from the CA in %s", strings.Join(advertised, ", "), sec.Dir)
	}
	return sec, nil
}

// restartGate lets one node at a time restart its running broker.
type restartGate struct{ mu sync.Mutex }

// before is the engine's BeforeApply hook for one node.
func (g *restartGate) before(ui UI) func([]provision.Step) (func(), error) {
	return func(steps []provision.Step) (func(), error) {
		if !provision.RestartsBroker(steps) {
			return nil, nil
		}
		if !g.mu.TryLock() {
			ui.Printf("waits for another node's broker to finish restarting: one broker restarts at a time")
			g.mu.Lock()
		}
		return g.mu.Unlock, nil
	}
}

// eachNode runs fn for nodes 0..n-1 at once and waits for all.
func eachNode(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// nodeErrors joins per-node errors, each named by its node.
func nodeErrors(rec state.Cluster, errs []error) error {
	var out []error
	for i, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("node %d (%s): %w", rec.Nodes[i].ID, rec.Nodes[i].Host, err))
		}
	}
	return errors.Join(out...)
}
