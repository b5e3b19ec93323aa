package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// RollClient is the Kafka client a roll uses (*kafkaclient.Client has it).
type RollClient interface {
	ClusterView
	MetadataVersion(ctx context.Context) (*kafkaclient.MetadataVersion, error)
	FinalizeMetadataVersion(ctx context.Context, level int16) error
	Close()
}

func (e Env) rollClient(ctx context.Context, b *Broker) (RollClient, error) {
	if e.RollClient != nil {
		return e.RollClient(ctx, b)
	}
	return b.Kafka(ctx)
}

// RestartOptions is `kafkaup broker restart NAME [--node N]`.
type RestartOptions struct {
	Name  string
	Node  int // node id; 0: every node (a cluster's rolling restart)
	Dial  DialOptions
	Waits RollWaits
}

// RollOutcome is what a rolling restart did.
type RollOutcome struct {
	Name  string        `json:"name"`
	Nodes []RolledNode  `json:"nodes"`
	Took  time.Duration `json:"-"`
}

// Restart restarts the broker and waits until it serves again. On a
// cluster of several nodes it is a rolling restart (one node, with
// --node): one node at a time, followers first and the active controller
// last, only while every partition is fully replicated and a majority of
// controllers is caught up, and each node back in the ISR of its
// partitions before the next.
func Restart(ctx context.Context, env Env, o RestartOptions) (*RollOutcome, error) {
	b, err := Open(env, o.Name, o.Node)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rec := b.Record
	restartNode := func(ctx context.Context, i int) (bool, error) {
		spec, err := state.SpecFor(rec, i)
		if err != nil {
			return false, err
		}
		host, err := dialNode(ctx, env, rec, i, o.Dial)
		if err != nil {
			return false, err
		}
		defer host.Close()
		return true, provision.ControlBroker(ctx, host, spec, "restart")
	}
	if len(rec.Nodes) == 1 {
		_, err := restartNode(ctx, 0)
		n := rec.Nodes[0]
		took := time.Since(start)
		return &RollOutcome{Name: rec.Name, Took: took, Nodes: []RolledNode{{ID: n.ID, Host: n.Host, Restarted: err == nil, Took: took, Seconds: took.Seconds()}}}, err
	}
	todo := []int{}
	for i := range rec.Nodes {
		if o.Node == 0 || i == b.Index {
			todo = append(todo, i)
		}
	}
	cl, err := env.rollClient(ctx, b)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	r := &roller{rec: rec, view: cl, ui: env.UI, waits: o.Waits, verb: "restart"}
	nodes, err := r.run(ctx, todo, restartNode)
	return &RollOutcome{Name: rec.Name, Nodes: nodes, Took: time.Since(start)}, err
}

// reprovisionCluster converges every node of a cluster to its recorded
// spec plus the user's changes, one node at a time: every node's plan is
// made first (nothing changes if the cluster is not healthy enough to
// start), nodes with nothing to do are left alone, and the others go
// through the roll (see roller). After a Kafka upgrade, metadata.version
// is finalized once every node runs the new version.
func reprovisionCluster(ctx context.Context, env Env, rec state.Cluster, o ReprovisionOptions) (*Outcome, error) {
	if o.Overrides.AdvertisedHost != nil {
		return nil, provision.Inputf("--advertised-host does not apply to a cluster's reprovision: each node keeps its recorded address (provision --host with --advertised-host changes them)")
	}
	oldVersion := rec.Spec.KafkaVersion
	for i := range rec.Nodes {
		t := target(rec, i)
		if o.User != "" {
			t.User = o.User
		}
		if o.Identity != "" {
			t.Identity = o.Identity
		}
		setTarget(&rec, i, t)
	}
	specs, err := clusterSpecs(rec, o.Overrides, true)
	if err != nil {
		return nil, err
	}
	for i := range specs {
		state.Remember(&rec, i, specs[i])
	}
	hosts := make([]Host, len(rec.Nodes))
	dialErrs := make([]error, len(rec.Nodes))
	eachNode(len(rec.Nodes), func(i int) { hosts[i], dialErrs[i] = dialNode(ctx, env, rec, i, o.Dial) })
	defer func() {
		for _, h := range hosts {
			if h != nil {
				h.Close()
			}
		}
	}()
	if err := nodeErrors(rec, dialErrs); err != nil {
		return nil, err
	}
	sec, err := clusterSecrets(env, rec, specs, o.DryRun)
	if err != nil {
		return nil, err
	}
	runOn := func(ctx context.Context, i int, dryRun bool, before func([]provision.Step) (func(), error)) NodeOutcome {
		n := rec.Nodes[i]
		ui := nodeUI(env.UI, fmt.Sprintf("[node %d %s]", n.ID, n.Host))
		res, err := env.engine()(ctx, hosts[i], specs[i], n.Host, provision.Options{
			DryRun: dryRun, SkipVerify: o.SkipVerify, Progress: ui,
			Auth: sec.Auth(), NewPassword: sec.NewPassword, BeforeApply: before,
		})
		return NodeOutcome{ID: n.ID, Host: n.Host, Spec: specs[i], Result: res, Err: interrupted(ctx, n.Host, res, err)}
	}

	// Plan every node first: the roll touches only nodes with changes.
	outs := make([]NodeOutcome, len(rec.Nodes))
	eachNode(len(rec.Nodes), func(i int) { outs[i] = runOn(ctx, i, true, nil) })
	out := &Outcome{Name: rec.Name, Spec: specs[0], Result: outs[0].Result, Nodes: outs, Bootstrap: rec.Bootstrap()}
	todo := []int{}
	var errs []error
	for i, no := range outs {
		if no.Err != nil {
			errs = append(errs, fmt.Errorf("node %d (%s): %w", no.ID, no.Host, no.Err))
		} else if len(no.Result.Plan) > 0 {
			todo = append(todo, i)
		}
	}
	if err := errors.Join(errs...); err != nil || o.DryRun {
		return out, err
	}

	b := &Broker{Record: rec, Spec: specs[0], Sec: sec}
	cl, err := env.rollClient(ctx, b)
	if err != nil {
		return out, err
	}
	defer cl.Close()
	r := &roller{rec: rec, view: cl, ui: env.UI, waits: o.Waits, verb: "reprovision"}
	out.Roll, err = r.run(ctx, todo, func(ctx context.Context, i int) (bool, error) {
		touched := false
		outs[i] = runOn(ctx, i, false, func(steps []provision.Step) (func(), error) {
			touched = touched || provision.TouchesBroker(steps)
			return nil, nil
		})
		return touched, outs[i].Err
	})
	out.Result = outs[0].Result
	var refused *RollRefusedError
	if errors.As(err, &refused) {
		return out, err // nothing changed: the record stays as it was
	}
	for i, no := range outs {
		if no.Result != nil && no.Result.ClusterID != "" {
			rec.Nodes[i].Systemd = no.Result.Systemd
		}
	}
	if serr := env.Store.Save(rec); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return out, err
	}
	if !o.SkipVerify {
		if out.Verified, err = env.verifyCluster()(ctx, specs, provision.Options{Auth: sec.Auth()}); err != nil {
			return out, err
		}
	}
	if specs[0].KafkaVersion != oldVersion {
		versions := map[int]string{}
		for _, no := range outs {
			versions[no.ID] = no.Result.FactsAfter.KafkaCurrent
			if len(no.Result.Plan) == 0 || no.Result.DryRun {
				versions[no.ID] = no.Result.Facts.KafkaCurrent
			}
		}
		out.Finalize, err = finalizeMetadata(ctx, cl, specs[0].KafkaVersion, versions)
		if err != nil {
			return out, err
		}
	}
	if out.Client, err = sec.WriteClientFiles(rec.Bootstrap()); err != nil {
		return out, err
	}
	return out, nil
}
