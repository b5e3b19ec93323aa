package workflow

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// Outcome is what provision, create, reprovision and start did.
type Outcome struct {
	Name   string
	Spec   provision.Spec       // node 1's spec, as applied
	Result *provision.Result    // node 1's run
	Client *secrets.ClientFiles // where a secured broker's client settings are
	Topics []string             // created by create --topics
	// CreatePlan is what a create --dry-run would make (nothing was).
	CreatePlan *CreatePlan

	// Nodes is every node's run, in node order, for a cluster of several
	// nodes (Spec and Result are then node 1's).
	Nodes []NodeOutcome
	// Verified is the cluster's check from this machine (several nodes).
	Verified *kafkaclient.Verification
	// Bootstrap is the cluster's bootstrap servers list.
	Bootstrap string
	// Timeline is where a create's time went.
	Timeline *provision.Timeline
	// Roll is what a cluster's rolling reprovision did on each node, and
	// Finalize what it did about metadata.version after an upgrade.
	Roll     []RolledNode
	Finalize *Finalize

	connect, console timed // the SSH connection and the console read
}

// RunOptions are the choices every provisioning run shares.
type RunOptions struct {
	DryRun     bool
	SkipVerify bool
	Dial       DialOptions
}

// ProvisionOptions is `kafkaup provision --host`.
type ProvisionOptions struct {
	Name   string // default: derived from the (first) host
	Target Target
	// Nodes, when it has more than one entry, are the hosts of a cluster in
	// node order (node ids 1..N), and Target is not used.
	Nodes     []NodeTarget
	Overrides state.Overrides
	RunOptions
}

// NodeTarget is one host of a cluster.
type NodeTarget struct {
	Target
	// InternalHost is the address the other nodes reach this one at, when
	// it is not the SSH address (a private address). Empty: the recorded
	// one, else the SSH address.
	InternalHost string
	// AdvertisedHost is what clients are told; empty: the SSH address.
	AdvertisedHost string
}

// Provision sets up a broker on an existing host, or a cluster on several
// (see ProvisionCluster). Unset settings take their defaults (reprovision
// is the command that keeps the recorded ones).
func Provision(ctx context.Context, env Env, o ProvisionOptions) (*Outcome, error) {
	switch {
	case len(o.Nodes) > 1:
		return provisionCluster(ctx, env, o)
	case len(o.Nodes) == 1:
		n := o.Nodes[0]
		if n.InternalHost != "" {
			return nil, provision.Inputf("--internal-host is for a cluster of several hosts: a single broker keeps its controller on loopback")
		}
		if n.AdvertisedHost != "" {
			o.Overrides.AdvertisedHost = &n.AdvertisedHost
		}
		o.Target = n.Target
	}
	name := o.Name
	if name == "" {
		name = state.NameForHost(o.Target.Host)
	}
	if err := state.ValidateName(name); err != nil {
		return nil, provision.Inputf("--name: %v", err)
	}
	spec, err := o.Overrides.Apply(state.Cluster{Name: name}, 0, o.Target.Host)
	if err != nil {
		return nil, err
	}
	if err := checkLocalTarball(&spec); err != nil {
		return nil, err
	}
	rec, _, err := loadOrNew(env, name)
	if err != nil {
		return nil, err
	}
	if len(rec.Nodes) > 0 && rec.Nodes[0].Host != o.Target.Host && rec.EC2 == nil {
		return nil, provision.Inputf("the name %q is already used for host %s; pick another --name or run `kafkaup forget %s` first", name, rec.Nodes[0].Host, name)
	}
	setTarget(&rec, 0, o.Target)
	state.Remember(&rec, 0, spec)
	return provisionNode(ctx, env, &rec, 0, spec, o.RunOptions)
}

// setTarget records how to reach node i; an empty identity keeps the
// recorded one.
func setTarget(c *state.Cluster, i int, t Target) {
	n := c.Node(i)
	n.Host, n.Port, n.User = t.Host, t.Port, t.User
	if t.Identity != "" {
		if abs, err := filepath.Abs(t.Identity); err == nil {
			t.Identity = abs
		}
		n.Identity = t.Identity
	}
}

// ReprovisionOptions is `kafkaup reprovision NAME`.
type ReprovisionOptions struct {
	Name      string
	User      string // a new SSH user; empty keeps the recorded one
	Identity  string // a new key; empty keeps the recorded one
	Region    string
	Overrides state.Overrides
	RunOptions
	Waits RollWaits // a cluster's roll
}

// Reprovision converges a known cluster to its recorded spec plus the
// user's changes. An EC2 node is looked up first: its public address may
// have changed.
func Reprovision(ctx context.Context, env Env, o ReprovisionOptions) (*Outcome, error) {
	rec, err := loadExisting(env, o.Name)
	if err != nil {
		return nil, err
	}
	if len(rec.Nodes) > 1 {
		if rec.EC2 != nil {
			if err := followInstances(ctx, env, &rec, o); err != nil {
				return nil, err
			}
		}
		return reprovisionCluster(ctx, env, rec, o)
	}
	t := target(rec, 0)
	if o.User != "" {
		t.User = o.User
	}
	if o.Identity != "" {
		t.Identity = o.Identity
	}
	setTarget(&rec, 0, t)
	spec, err := o.Overrides.Apply(rec, 0, t.Host)
	if err != nil {
		return nil, err
	}
	if err := checkLocalTarball(&spec); err != nil {
		return nil, err
	}
	if rec.EC2 == nil {
		state.Remember(&rec, 0, spec)
		return provisionNode(ctx, env, &rec, 0, spec, o.RunOptions)
	}
	cl, err := newCloud(ctx, env, o.Region, rec)
	if err != nil {
		return nil, err
	}
	inst, err := cl.Describe(ctx, rec.Name)
	if err != nil {
		return nil, err
	}
	if inst.State != "running" {
		return nil, fmt.Errorf("the instance of %s is %s: run kafkaup start %s", rec.Name, inst.State, rec.Name)
	}
	o.Dial.RetryAuth = true
	return provisionInstance(ctx, env, cl, &rec, 0, inst, spec, o.Overrides.AdvertisedHost != nil, 0, o.RunOptions)
}

// provisionNode connects to node i, runs the engine there and keeps the
// record: saved once the host answers and before any change, so a run that
// fails midway is resumed by name, and again with what the run learned.
func provisionNode(ctx context.Context, env Env, rec *state.Cluster, i int, spec provision.Spec, o RunOptions) (*Outcome, error) {
	connect := timed{Start: time.Now()}
	host, err := dialNode(ctx, env, *rec, i, o.Dial)
	if err != nil {
		return nil, err
	}
	connect.End = time.Now()
	defer host.Close()
	if !o.DryRun {
		if err := env.Store.Save(*rec); err != nil {
			return nil, err
		}
	}
	// Secrets are made and kept before the host changes, so a run cut short
	// resumes with the same CA and password.
	sec, err := secrets.Ensure(env.StateDir, rec.Name, secrets.Want{Mode: spec.Security.Mode,
		Hosts: []string{spec.AdvertisedHost}, DryRun: o.DryRun})
	if err != nil {
		return nil, err
	}
	spec.Security.KeystorePEM = sec.KeystorePEM
	if sec.Reissued && !o.DryRun {
		env.UI.Printf("issued a broker certificate for %s from the CA in %s", spec.AdvertisedHost, sec.Dir)
	}
	nodeHost := rec.Nodes[i].Host
	res, err := env.engine()(ctx, host, spec, nodeHost, provision.Options{
		DryRun: o.DryRun, SkipVerify: o.SkipVerify, Progress: env.UI,
		Auth: sec.Auth(), NewPassword: sec.NewPassword,
	})
	out := &Outcome{Name: rec.Name, Spec: spec, Result: res, connect: connect}
	if res != nil && res.ClusterID != "" && !o.DryRun {
		rec.ClusterID, rec.Nodes[i].Systemd = res.ClusterID, res.Systemd
		if serr := env.Store.Save(*rec); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return out, reachAdvice(*rec, interrupted(ctx, nodeHost, res, err))
	}
	if !o.DryRun {
		if out.Client, err = sec.WriteClientFiles(rec.Bootstrap()); err != nil {
			return out, err
		}
	}
	return out, nil
}

// checkLocalTarball hashes a tarball to upload and checks it against the
// expected digest (--kafka-sha512, else a .sha512 file beside it) here,
// before anything is sent.
func checkLocalTarball(s *provision.Spec) error {
	path := s.Source.LocalTarball
	if path == "" {
		return nil
	}
	if base := filepath.Base(path); base != s.DistName()+".tgz" {
		return provision.Inputf("--kafka-tarball %s: expected a file named %s.tgz for --kafka-version %s", path, s.DistName(), s.KafkaVersion)
	}
	f, err := os.Open(path)
	if err != nil {
		return provision.Inputf("--kafka-tarball: %v", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if s.Source.SHA512 != "" && s.Source.SHA512 != sum {
		return fmt.Errorf("checksum mismatch for %s: --kafka-sha512 says %s but the file has %s; nothing was uploaded", path, s.Source.SHA512, sum)
	}
	if s.Source.SHA512 == "" {
		if sidecar, err := os.ReadFile(path + ".sha512"); err == nil {
			want, err := provision.ParseSHA512File(string(sidecar))
			if err != nil {
				return fmt.Errorf("%s.sha512: %w; nothing was uploaded. Fix or remove that file, or pass --kafka-sha512", path, err)
			}
			if want != sum {
				return fmt.Errorf("checksum mismatch for %s: %s.sha512 says %s but the file has %s; nothing was uploaded", path, path, want, sum)
			}
		}
	}
	s.Source.SHA512 = sum
	return nil
}
