// Package workflow holds one function per user action (Create, Provision,
// Reprovision, Start, Stop, Destroy, Status, Control), between the CLI and
// the engine. A workflow loads the cluster's record, lays the user's
// overrides over it with the record's codec (package state), runs the
// engine (package provision) on each node and saves the record. Each takes
// an options struct and an Env of small interfaces (dial a host, the cloud,
// the record store, the UI), so it runs under unit tests with fakes.
//
// Where to find things: when the broker restarts is decided by the
// engine's plan (provision.Plan, the service step's doc comment); what
// create does when a resource exists already is in package cloud (each
// resource is found by its kafkaup tag before one is made); how a record
// becomes a Spec is state.SpecFor and state.Overrides.Apply.
package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// Host is a connection to one node's host (remote.Client is one).
type Host interface {
	provision.Host
	provision.Tunnel
	StreamScript(ctx context.Context, name string, script []byte, w io.Writer) error
	Exec(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error
	Close() error
}

// Target is where to SSH.
type Target struct {
	Host     string
	Port     int
	User     string
	Identity string // private key file; empty: ssh-agent and the default keys
}

// DialOptions tune one connection.
type DialOptions struct {
	// RetryFor keeps retrying refused or timed-out connections this long.
	RetryFor time.Duration
	// RetryAuth retries "permission denied (publickey)" too: normal while a
	// new instance's cloud-init installs the key.
	RetryAuth bool
	// ExpectedHostKeys, when set, are the only host keys accepted (read from
	// an EC2 instance's console output); they replace the address's older
	// pins. ExpectedFrom says where they came from, for a mismatch.
	ExpectedHostKeys []ssh.PublicKey
	ExpectedFrom     string
}

// Dialer opens connections to hosts.
type Dialer interface {
	Dial(ctx context.Context, t Target, o DialOptions) (Host, error)
}

// Store keeps cluster records (state.Store is the real one).
type Store interface {
	Load(name string) (state.Cluster, error) // an error wrapping state.ErrNoBroker when there is none
	Save(c state.Cluster) error
	Delete(name string) error
	SaveKey(name string, pem []byte) (string, error)
}

// Cloud is what the workflows need of EC2 (*cloud.Cloud has it).
type Cloud interface {
	RegionName() string
	// Layout checks a create request and says where each node goes.
	Layout(ctx context.Context, req cloud.CreateRequest) ([]cloud.Placement, error)
	// CreateNodes makes (or finds) every node's instance, in node order.
	CreateNodes(ctx context.Context, req cloud.CreateRequest) ([]*cloud.Broker, error)
	Describe(ctx context.Context, name string) (*cloud.Broker, error)
	// DescribeAll is every instance of a cluster, in node order.
	DescribeAll(ctx context.Context, name string) ([]*cloud.Broker, error)
	// StartAll and StopAll act on every instance of a cluster at once and
	// return them in node order.
	StartAll(ctx context.Context, name string) ([]*cloud.Broker, error)
	StopAll(ctx context.Context, name string) ([]*cloud.Broker, error)
	Find(ctx context.Context, name string) (*cloud.Resources, error)
	Destroy(ctx context.Context, name string, dryRun bool) (*cloud.Resources, error)
	WaitConsoleHostKeys(ctx context.Context, instanceID string, w cloud.ConsoleWait) ([]ssh.PublicKey, error)
	// LaunchReplacement makes a node's new instance run (the one an
	// earlier run launched, else a new one); TerminateReplaced ends its
	// old one.
	LaunchReplacement(ctx context.Context, r cloud.ReplacementRequest) (*cloud.Broker, error)
	TerminateReplaced(ctx context.Context, name string, node int, instanceID string) error
	// MoveNodeEIP gives the node's new instance its own Elastic IP.
	MoveNodeEIP(ctx context.Context, name string, node int, oldInstanceID, instanceID string) (*cloud.Broker, error)
	Allow(ctx context.Context, name string, ports []int32, add, revoke []string) ([]string, error)
}

// UI shows progress (on stderr) and asks questions.
type UI interface {
	provision.Progress
	Printf(format string, args ...any)
	// Confirm asks a yes/no question; without a terminal it refuses with
	// advice to pass --yes.
	Confirm(question string) (bool, error)
}

// Engine provisions one host (provision.Provision).
type Engine func(ctx context.Context, h provision.Host, s provision.Spec, hostName string, opt provision.Options) (*provision.Result, error)

// Env is what every workflow is given.
type Env struct {
	StateDir string // secrets and generated keys live under it
	Store    Store
	Dial     Dialer
	// NewCloud connects to EC2 in region (empty: the user's configured one).
	NewCloud func(ctx context.Context, region string) (Cloud, error)
	// CallerIP finds this machine's public IP (for the security group).
	CallerIP func(ctx context.Context) (string, error)
	Engine   Engine
	UI       UI
	// VerifyCluster checks a cluster of several nodes from this machine
	// once every node is up (provision.VerifyCluster when nil).
	VerifyCluster func(ctx context.Context, specs []provision.Spec, opt provision.Options) (*kafkaclient.Verification, error)
	// Admin connects to a cluster's brokers over the Kafka protocol for
	// its health and quorum changes (kafkaclient.DialWith when nil).
	Admin func(ctx context.Context, bootstrap string, auth kafkaclient.Auth) (ClusterAdmin, error)
	// RollClient connects the Kafka client a rolling restart or
	// reprovision watches the cluster with (Broker.Kafka when nil).
	RollClient func(ctx context.Context, b *Broker) (RollClient, error)
}

func (e Env) engine() Engine {
	if e.Engine == nil {
		return provision.Provision
	}
	return e.Engine
}

func (e Env) verifyCluster() func(context.Context, []provision.Spec, provision.Options) (*kafkaclient.Verification, error) {
	if e.VerifyCluster == nil {
		return provision.VerifyCluster
	}
	return e.VerifyCluster
}

// InterruptedError is a run stopped by the user (Ctrl-C) or a deadline:
// what was applied stays applied, and every step is safe to run again.
type InterruptedError struct {
	Host    string
	Applied []string // steps that completed
	Cut     string   // the step that was cut short, if any
	Err     error
}

func (e *InterruptedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "interrupted while provisioning %s", e.Host)
	if len(e.Applied) > 0 {
		fmt.Fprintf(&b, " after applying %s", strings.Join(e.Applied, ", "))
	} else {
		b.WriteString(" before any step completed")
	}
	if e.Cut != "" {
		fmt.Fprintf(&b, " (step %s was cut short)", e.Cut)
	}
	b.WriteString(". Every step is safe to repeat: run the same command again to finish")
	return b.String()
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// interrupted turns an engine error caused by a cancelled context into an
// InterruptedError that says what was applied.
func interrupted(ctx context.Context, host string, res *provision.Result, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	ie := &InterruptedError{Host: host, Err: err}
	if res != nil {
		for _, a := range res.Applied {
			if a.Error == "" {
				ie.Applied = append(ie.Applied, a.ID)
			} else {
				ie.Cut = a.ID
			}
		}
	}
	return ie
}

// input marks err as a mistake in what the user asked for.
func input(err error) error {
	var ie *provision.InputError
	if err == nil || errors.As(err, &ie) {
		return err
	}
	return &provision.InputError{Err: err}
}

// loadExisting reads a record that must exist.
func loadExisting(env Env, name string) (state.Cluster, error) {
	if name == "" {
		return state.Cluster{}, provision.Inputf("name the broker (kafkaup list shows them)")
	}
	if err := state.ValidateName(name); err != nil {
		return state.Cluster{}, input(err)
	}
	return env.Store.Load(name)
}

// loadOrNew reads a record that may not exist yet.
func loadOrNew(env Env, name string) (state.Cluster, bool, error) {
	c, err := env.Store.Load(name)
	switch {
	case errors.Is(err, state.ErrNoBroker):
		return state.Cluster{Name: name}, false, nil
	case err != nil:
		return c, false, err
	}
	return c, true, nil
}

// target is how to reach node i.
func target(c state.Cluster, i int) Target {
	n := c.Nodes[i]
	return Target{Host: n.Host, Port: n.Port, User: n.User, Identity: n.Identity}
}

// sshAddr is node n's SSH address, host:port, as host keys are pinned
// under it.
func sshAddr(n state.Node) string {
	port := n.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(n.Host, strconv.Itoa(port))
}

// dialNode connects to node i of c. The node's recorded host keys (read
// from its instance's console) are the only ones accepted unless o names
// others; a host that does not answer on an EC2 cluster is an
// *UnreachableError saying how to let this machine in again.
func dialNode(ctx context.Context, env Env, c state.Cluster, i int, o DialOptions) (Host, error) {
	if len(o.ExpectedHostKeys) == 0 {
		keys, err := c.Nodes[i].PublicHostKeys()
		if err != nil {
			return nil, err
		}
		o.ExpectedHostKeys = keys
		o.ExpectedFrom = fmt.Sprintf("kafkaup's record of %s, read from the instance's console output", c.Name)
	}
	h, err := env.Dial.Dial(ctx, target(c, i), o)
	return h, reachAdvice(c, err)
}
