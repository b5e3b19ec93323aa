package workflow

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// ReplaceOptions is `kafkaup node replace NAME --node N`.
type ReplaceOptions struct {
	Name string
	Node int // the Kafka node.id to replace
	// Host is the new host's SSH address (and the address clients are
	// told); empty: the recorded one (the same address, a rebuilt host).
	Host string
	// InternalHost is the address the other nodes reach the new host at;
	// empty: Host.
	InternalHost string
	// User, Identity and Port log in to the new host; empty or 0: the
	// recorded ones.
	User, Identity string
	Port           int
	// Force replaces a node that is still a healthy voter.
	Force bool
	Dial  DialOptions
	// Wait bounds each wait: for the new controller to catch up, and for
	// its partitions to be back in full ISR (15 minutes when zero).
	Wait time.Duration
	// Poll is how often the cluster is asked while waiting (2s when zero).
	Poll time.Duration
	// ConsoleTimeout bounds the wait for a new EC2 instance's console to
	// show its SSH host keys (cloud.DefaultConsoleTimeout when zero).
	ConsoleTimeout time.Duration
}

// DefaultReplaceWait bounds each of node replace's waits.
const DefaultReplaceWait = 15 * time.Minute

// ReplaceOutcome is what node replace did.
type ReplaceOutcome struct {
	Name           string                      `json:"name"`
	Node           int                         `json:"node"`
	Host           string                      `json:"host"`
	InternalHost   string                      `json:"internal_host"`
	OldDirectoryID string                      `json:"old_directory_id"`
	InstanceID     string                      `json:"instance_id,omitempty"`     // EC2: the node's new instance
	OldInstanceID  string                      `json:"old_instance_id,omitempty"` // EC2: the one terminated
	Zone           string                      `json:"zone,omitempty"`
	DirectoryID    string                      `json:"directory_id"`
	Provisioned    *provision.Result           `json:"provisioned,omitempty"`
	Voters         []kafkaclient.QuorumReplica `json:"voters"`
	CaughtUpIn     string                      `json:"caught_up_in"` // new voter added -> full ISR
	Took           string                      `json:"took"`
}

// ReplaceNode puts node o.Node on a new host after its old one died,
// keeping its node.id so that its partitions come back to it. The new
// host is o.Host (or the same address, rebuilt) for a cluster made by
// provision; for one made by create, a new instance that ReplaceNode
// launches in the old one's subnet and zone (newInstance):
//
//  1. refuse when the cluster would lose its quorum majority, or the node
//     is still a healthy voter (unless Force);
//  2. record the new addresses (on EC2: launch the new instance, record
//     it, then terminate the old one), and the old voter's directory id
//     as the one being replaced;
//  3. provision the new host, formatted to join (--no-initial-controllers),
//     and record the directory id Kafka gave it; it starts as an observer;
//  4. once it has caught up, remove the old voter and add the new one;
//  5. wait until every partition is back to full ISR, with progress.
//
// Each step looks at the cluster first, so a rerun after a failure
// midway picks up where it stopped.
func ReplaceNode(ctx context.Context, env Env, o ReplaceOptions) (*ReplaceOutcome, error) {
	start := time.Now()
	if o.Node < 1 {
		return nil, provision.Inputf("say which node to replace with --node N (its Kafka node.id; kafkaup status %s lists them)", o.Name)
	}
	b, err := Open(env, o.Name, o.Node)
	if err != nil {
		return nil, err
	}
	if err := replaceable(b.Record, o); err != nil {
		return nil, err
	}
	r := &replacement{env: env, o: o, b: b, wait: o.Wait, poll: o.Poll}
	if r.wait == 0 {
		r.wait = DefaultReplaceWait
	}
	if r.poll == 0 {
		r.poll = 2 * time.Second
	}
	if r.adm, err = openAdmin(ctx, env, b); err != nil {
		return nil, fmt.Errorf("node replace needs the rest of the cluster: %w", err)
	}
	defer r.adm.Close()
	done, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	out := &ReplaceOutcome{Name: b.Name(), Node: o.Node, OldDirectoryID: r.node().ReplacedDirectoryID, OldInstanceID: r.node().ReplacedInstanceID}
	if !done {
		if err := r.newInstance(ctx); err != nil {
			return out, err
		}
		if out.Provisioned, err = r.provisionHost(ctx); err != nil {
			return out, err
		}
		if err := r.swapVoters(ctx); err != nil {
			return out, err
		}
	}
	n := r.node()
	out.Host, out.InternalHost, out.DirectoryID = n.Host, n.Internal(), n.DirectoryID
	if b.Record.EC2 != nil {
		out.InstanceID, out.Zone = n.InstanceID, n.Rack
	}
	added := time.Now()
	if err := r.waitFullISR(ctx); err != nil {
		return out, err
	}
	out.CaughtUpIn = time.Since(added).Round(time.Millisecond).String()
	q, err := r.adm.Quorum(ctx)
	if err != nil {
		return out, err
	}
	out.Voters, out.Took = q.Voters, time.Since(start).Round(time.Millisecond).String()
	return out, nil
}

// replaceable refuses what node replace does not do.
func replaceable(rec state.Cluster, o ReplaceOptions) error {
	if len(rec.Nodes) < 2 {
		return provision.Inputf("%s is a single broker; node replace is for a node of a cluster. To move a single broker, provision a new one and move the data with your clients", rec.Name)
	}
	i, _ := rec.FindNode(o.Node)
	n := rec.Nodes[i]
	if rec.EC2 != nil {
		return replaceableOnEC2(rec, n, o)
	}
	if n.ReplacedDirectoryID != "" && o.Host != "" && o.Host != n.Host {
		return provision.Inputf("the replacement of node %d of %s onto %s has not finished; rerun it with --host %s to finish it (kafkaup will not move it elsewhere halfway)",
			o.Node, rec.Name, n.Host, n.Host)
	}
	for j, m := range rec.Nodes {
		if j == i {
			continue
		}
		for _, addr := range []string{o.Host, o.InternalHost} {
			if addr != "" && (addr == m.Host || addr == m.Internal()) {
				return provision.Inputf("%s is node %d of %s; the replacement of node %d needs a host of its own", addr, m.ID, rec.Name, o.Node)
			}
		}
	}
	return nil
}

// replacement is one run of node replace.
type replacement struct {
	env  Env
	o    ReplaceOptions
	b    *Broker
	adm  ClusterAdmin
	wait time.Duration
	poll time.Duration
}

func (r *replacement) node() *state.Node { return &r.b.Record.Nodes[r.b.Index] }

func (r *replacement) printf(format string, args ...any) {
	r.env.UI.Printf("[node replace] "+format, args...)
}

// begin checks the quorum can lose the old voter, then records the new
// host (once: a rerun finds the replacement under way). It says done when
// the node already runs where asked as the voter kafkaup recorded (a rerun
// after the voters were swapped): only the wait for full ISR is left.
func (r *replacement) begin(ctx context.Context) (done bool, err error) {
	n := r.node()
	q, err := r.adm.Quorum(ctx)
	if err != nil {
		return false, err
	}
	if n.ReplacedInstanceID != "" {
		r.printf("resuming the replacement of node %d's instance %s (launch %d of the node)", n.ID, n.ReplacedInstanceID, n.Replacements)
		return false, nil
	}
	if n.ReplacedDirectoryID != "" {
		r.printf("resuming the replacement of node %d onto %s", n.ID, n.Host)
		return false, r.saveLogin()
	}
	info, err := r.adm.Cluster(ctx)
	if err != nil {
		return false, err
	}
	if !r.o.Force && (r.o.Host == "" || r.o.Host == n.Host) && healthyNode(q, info, int32(n.ID), n.DirectoryID) {
		r.printf("node %d already runs on %s as the voter kafkaup recorded (directory id %s), caught up and live: nothing to replace; checking its partitions", n.ID, n.Host, n.DirectoryID)
		return true, nil
	}
	if err := quorumCanLose(r.b.Record, q, info, int32(n.ID), n.DirectoryID, r.o.Force); err != nil {
		return false, err
	}
	old := *n
	n.ReplacedDirectoryID, n.DirectoryID = old.DirectoryID, ""
	if r.b.Record.EC2 != nil {
		startInstanceReplacement(n)
		if err := r.saveLogin(); err != nil {
			return false, err
		}
		r.printf("replacing node %d (instance %s in %s, directory id %s) with a new instance; the record now says so", n.ID, old.InstanceID, old.Rack, old.DirectoryID)
		return false, nil
	}
	if r.o.Host != "" {
		n.Host, n.AdvertisedHost = r.o.Host, r.o.Host
	}
	switch {
	case r.o.InternalHost != "":
		n.InternalHost = r.o.InternalHost
	case r.o.Host != "":
		n.InternalHost = r.o.Host
	}
	n.HostKeys, n.Systemd = nil, false // the old host's
	if err := r.saveLogin(); err != nil {
		return false, err
	}
	r.printf("replacing node %d (%s, directory id %s) with %s (internal %s); the record now names the new host", n.ID, old.Host, old.DirectoryID, n.Host, n.Internal())
	return false, nil
}

// saveLogin records how to log in to the new host, as given.
func (r *replacement) saveLogin() error {
	n := r.node()
	if r.o.User != "" {
		n.User = r.o.User
	}
	if r.o.Identity != "" {
		n.Identity = r.o.Identity
		if abs, err := filepath.Abs(n.Identity); err == nil {
			n.Identity = abs
		}
	}
	if r.o.Port != 0 {
		n.Port = r.o.Port
	}
	return r.env.Store.Save(r.b.Record)
}

// quorumCanLose refuses to replace voter (id, dir) when the other voters
// that are caught up are not a majority of the quorum (the voter changes
// could not commit), or when the node is a healthy voter and a live
// broker (unless force).
func quorumCanLose(rec state.Cluster, q *kafkaclient.Quorum, info *kafkaclient.ClusterInfo, id int32, dir string, force bool) error {
	var others []int32
	for _, v := range q.CaughtUp(maxVoterLag) {
		if v != id {
			others = append(others, v)
		}
	}
	if majority := len(q.Voters)/2 + 1; len(others) < majority {
		return provision.Inputf("replacing node %d would leave %s without a quorum: of its %d controllers only %d other(s) are caught up (%v), and a voter change needs %d. "+
			"Bring another node back first (kafkaup status %s shows which are down)", id, rec.Name, len(q.Voters), len(others), others, majority, rec.Name)
	}
	if healthyNode(q, info, id, dir) && !force {
		return provision.Inputf("node %d of %s is a live broker and a caught-up voter: replacing it throws its data away and makes the cluster re-replicate it. "+
			"If that is what you want, stop its broker (kafkaup broker stop %s --node %d) and rerun with --force", id, rec.Name, rec.Name, id)
	}
	return nil
}

// provisionHost sets the new host up (formatted to join the quorum) and
// records the directory id its storage got.
func (r *replacement) provisionHost(ctx context.Context) (*provision.Result, error) {
	rec, i := r.b.Record, r.b.Index
	n := r.node()
	spec, err := state.SpecFor(rec, i)
	if err != nil {
		return nil, err
	}
	sec, err := r.secrets(rec, i, &spec)
	if err != nil {
		return nil, err
	}
	host, err := dialNode(ctx, r.env, rec, i, r.o.Dial)
	if err != nil {
		return nil, fmt.Errorf("node %d's new host %s: %w", n.ID, n.Host, err)
	}
	defer host.Close()
	ui := nodeUI(r.env.UI, fmt.Sprintf("[node %d %s]", n.ID, n.Host))
	res, err := r.env.engine()(ctx, host, spec, n.Host, provision.Options{Progress: ui, Auth: sec.Auth(), NewPassword: sec.NewPassword})
	if err != nil {
		return res, fmt.Errorf("node %d's new host %s: %w", n.ID, n.Host, interrupted(ctx, n.Host, res, err))
	}
	got := res.FactsAfter.DirectoryID
	switch {
	case got == "":
		return res, fmt.Errorf("node %d's new host %s has no directory id in its meta.properties after provisioning", n.ID, n.Host)
	case n.DirectoryID != "" && n.DirectoryID != got:
		return res, fmt.Errorf("node %d's new host %s has directory id %s, but kafkaup recorded %s", n.ID, n.Host, got, n.DirectoryID)
	}
	n.DirectoryID, n.Systemd = got, res.Systemd
	if err := r.env.Store.Save(r.b.Record); err != nil {
		return res, err
	}
	return res, nil
}

// secrets gives the new host's spec the cluster's keystore; a new
// certificate, when the new address needs one, is the other nodes' at
// their next reprovision.
func (r *replacement) secrets(rec state.Cluster, i int, spec *provision.Spec) (*secrets.Set, error) {
	specs := make([]provision.Spec, len(rec.Nodes))
	for j := range rec.Nodes {
		var err error
		if specs[j], err = state.SpecFor(rec, j); err != nil {
			return nil, err
		}
	}
	sec, err := clusterSecrets(r.env, rec, specs, false)
	if err != nil {
		return nil, err
	}
	spec.Security.KeystorePEM = specs[i].Security.KeystorePEM
	if sec.Reissued {
		r.printf("the broker certificate now covers %s too; the other nodes serve the old one until kafkaup reprovision %s", r.node().AdvertisedHost, rec.Name)
	}
	return sec, nil
}

// swapVoters waits for the new controller to catch up as an observer,
// then removes the old voter and adds the new one. What is already done
// is skipped.
func (r *replacement) swapVoters(ctx context.Context) error {
	n := r.node()
	id, oldDir, newDir := int32(n.ID), n.ReplacedDirectoryID, n.DirectoryID
	q, err := r.waitQuorum(ctx, fmt.Sprintf("node %d's new controller to catch up with the quorum", id), func(q *kafkaclient.Quorum) bool {
		return isVoter(q, id, newDir) || caughtUpObserver(q, id, newDir)
	})
	if err != nil {
		return err
	}
	if oldDir != "" && isVoter(q, id, oldDir) {
		r.printf("removing the old voter %d (directory id %s) from the quorum", id, oldDir)
		if err := r.retry(ctx, func() error { return r.adm.RemoveVoter(ctx, id, oldDir) }); err != nil {
			return fmt.Errorf("remove the old voter of node %d: %w", id, err)
		}
		if _, err := r.waitQuorum(ctx, "the old voter to leave", func(q *kafkaclient.Quorum) bool { return !isVoter(q, id, oldDir) }); err != nil {
			return err
		}
	}
	if !isVoter(q, id, newDir) {
		ep := kafkaclient.ControllerEndpoint{Listener: "CONTROLLER", Host: n.Internal(), Port: uint16(r.b.Spec.ControllerPort)}
		r.printf("adding node %d's new controller (directory id %s, %s:%d) as a voter", id, newDir, ep.Host, ep.Port)
		if err := r.retry(ctx, func() error { return r.adm.AddVoter(ctx, id, newDir, ep) }); err != nil {
			return fmt.Errorf("add node %d's new controller as a voter: %w", id, err)
		}
		if _, err := r.waitQuorum(ctx, "the new voter to join", func(q *kafkaclient.Quorum) bool { return isVoter(q, id, newDir) }); err != nil {
			return err
		}
	}
	n.ReplacedDirectoryID = ""
	if err := r.env.Store.Save(r.b.Record); err != nil {
		return err
	}
	if q, err = r.adm.Quorum(ctx); err == nil {
		r.printf("the quorum's voters: %s", voterList(q))
	}
	return nil
}

// retry sends a voter change again while the quorum answers with a
// retriable error (no leader yet, another change under way, the new voter
// not caught up), for at most a minute.
func (r *replacement) retry(ctx context.Context, change func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := change()
		var vc *kafkaclient.VoterChangeError
		if err == nil || !errors.As(err, &vc) || !vc.Retriable() || time.Now().After(deadline) {
			return err
		}
		r.printf("the quorum asks to retry: %v", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.poll):
		}
	}
}

// waitQuorum asks for the quorum until done says yes, for at most r.wait.
func (r *replacement) waitQuorum(ctx context.Context, what string, done func(*kafkaclient.Quorum) bool) (*kafkaclient.Quorum, error) {
	r.printf("waiting for %s", what)
	deadline := time.Now().Add(r.wait)
	for {
		q, err := r.adm.Quorum(ctx)
		if err == nil && done(q) {
			return q, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("voters %s", voterList(q))
			}
			return nil, fmt.Errorf("gave up waiting %s for %s (%v); rerun the same command to go on", r.wait, what, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.poll):
		}
	}
}

// waitFullISR waits until no partition is under-replicated, printing how
// many of the replaced node's partitions are still catching up.
func (r *replacement) waitFullISR(ctx context.Context) error {
	id := int32(r.node().ID)
	deadline := time.Now().Add(r.wait)
	last := -1
	for {
		h, err := r.adm.PartitionHealth(ctx)
		if err == nil && h.OK() {
			r.printf("every partition is back to full ISR")
			return nil
		}
		if err == nil && len(h.NotInISR[id]) != last {
			last = len(h.NotInISR[id])
			r.printf("node %d is catching up: out of the ISR of %d partitions (%d under-replicated in all)", id, last, len(h.UnderReplicated))
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%d partitions still under-replicated", len(h.UnderReplicated))
			}
			return fmt.Errorf("the partitions are not back to full ISR after %s (%v); the node is in the quorum and keeps catching up: watch kafkaup status %s", r.wait, err, r.b.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.poll):
		}
	}
}

// healthyNode says whether node id is a live broker and the voter with
// directory id dir, caught up with the leader.
func healthyNode(q *kafkaclient.Quorum, info *kafkaclient.ClusterInfo, id int32, dir string) bool {
	caughtUp := false
	for _, v := range q.Voters {
		if v.ID == id && v.DirectoryID == dir && v.LastCaughtUpAgo >= 0 && v.LastCaughtUpAgo <= maxFollowerCatchUp {
			caughtUp = true
		}
	}
	live := false
	for _, br := range info.Brokers {
		live = live || br.ID == id
	}
	return caughtUp && live
}

func isVoter(q *kafkaclient.Quorum, id int32, dir string) bool {
	for _, v := range q.Voters {
		if v.ID == id && v.DirectoryID == dir {
			return true
		}
	}
	return false
}

func caughtUpObserver(q *kafkaclient.Quorum, id int32, dir string) bool {
	for _, v := range q.Observers {
		if v.ID == id && v.DirectoryID == dir && v.Lag >= 0 && v.Lag <= maxVoterLag {
			return true
		}
	}
	return false
}

func voterList(q *kafkaclient.Quorum) string {
	var s []string
	for _, v := range q.Voters {
		s = append(s, fmt.Sprintf("%d (%s)", v.ID, v.DirectoryID))
	}
	return fmt.Sprint(s)
}
