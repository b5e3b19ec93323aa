package provision

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/scripts"
)

// Host is what the engine needs from a connection (remote.Client has it).
type Host interface {
	RunScript(ctx context.Context, name string, script []byte) ([]byte, error)
	Upload(ctx context.Context, data io.Reader, remotePath string, mode uint32) error
}

// Progress is told about each step as it runs.
type Progress interface {
	StepStarted(s Step)
	StepDone(s Step, took time.Duration, err error)
}

// StepResult is one applied step.
type StepResult struct {
	ID       string        `json:"id"`
	Title    string        `json:"title"`
	Reason   string        `json:"reason"`
	Started  time.Time     `json:"-"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	Error    string        `json:"error,omitempty"`
	// Download is what the step's script reported of the tarball it got.
	Download *Transfer `json:"download,omitempty"`
}

// Transfer is how a step got the Kafka tarball (fetch-kafka.sh reports
// it): Source is download, head-start (verified and used) or upload.
type Transfer struct {
	Source  string  `json:"source"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// transferFrom reads fetch-kafka.sh's download_* lines, if any.
func transferFrom(out []byte) *Transfer {
	kv, err := parseKV(out)
	if err != nil || kv["download_source"] == "" {
		return nil
	}
	t := &Transfer{Source: kv["download_source"]}
	t.Bytes, _ = strconv.ParseInt(kv["download_bytes"], 10, 64)
	t.Seconds, _ = strconv.ParseFloat(kv["download_seconds"], 64)
	return t
}

// Observe gathers the host's facts in one remote call.
func Observe(ctx context.Context, h Host, s Spec) (Facts, error) {
	script, err := scripts.Render(scripts.Observe{InstallDir: s.InstallDir, DataDir: s.DataDir, LogDir: s.LogDir,
		ConfigDir: s.ConfigDir, StateDir: s.StateDir, SwapFile: s.SwapFile, Service: s.Service, ManagedFiles: ManagedPaths(s),
		HeadStartDir: HeadStartDir, DistName: s.DistName()})
	if err != nil {
		return Facts{}, err
	}
	began := time.Now()
	out, err := h.RunScript(ctx, "observe", script)
	if err != nil {
		return Facts{}, fmt.Errorf("observe the host: %w", err)
	}
	f, err := ParseFacts(out)
	f.ObservedAt = began.Add(time.Since(began) / 2)
	return f, err
}

// Apply runs the steps in order (adjacent steps of one Group together) and
// stops at the first failure. Every step is idempotent, so running the
// command again finishes an interrupted apply.
func Apply(ctx context.Context, h Host, steps []Step, p Progress) ([]StepResult, error) {
	var results []StepResult
	for i := 0; i < len(steps); {
		j := i + 1
		for steps[i].Group != "" && j < len(steps) && steps[j].Group == steps[i].Group {
			j++
		}
		batch := steps[i:j]
		out := make([]StepResult, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for k := range batch {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				out[k], errs[k] = applyStep(ctx, h, batch[k], p)
			}(k)
		}
		wg.Wait()
		results = append(results, out...)
		if err := errors.Join(errs...); err != nil {
			return results, err
		}
		i = j
	}
	return results, nil
}

func applyStep(ctx context.Context, h Host, s Step, p Progress) (StepResult, error) {
	start := time.Now()
	if p != nil {
		p.StepStarted(s)
	}
	out, err := runStep(ctx, h, s)
	took := time.Since(start)
	if p != nil {
		p.StepDone(s, took, err)
	}
	r := StepResult{ID: s.ID, Title: s.Title, Reason: s.Reason, Started: start, Duration: took,
		Seconds: took.Round(time.Millisecond).Seconds(), Download: transferFrom(out)}
	if err != nil {
		r.Error = err.Error()
		return r, fmt.Errorf("step %s (%s): %w", s.ID, s.Title, err)
	}
	return r, nil
}

// runStep runs one step and returns its script's output.
func runStep(ctx context.Context, h Host, s Step) ([]byte, error) {
	if s.Resolve != nil {
		in, err := s.Resolve(ctx, h)
		if err != nil {
			return nil, err
		}
		s.Script = in
	}
	for _, u := range s.Uploads {
		var data io.Reader = bytes.NewReader(u.Content)
		if u.LocalPath != "" {
			f, err := os.Open(u.LocalPath)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", u.LocalPath, err)
			}
			defer f.Close()
			data = f
		}
		if err := h.Upload(ctx, data, u.RemotePath, u.Mode); err != nil {
			return nil, err
		}
	}
	script, err := scripts.Render(s.Script)
	if err != nil {
		return nil, err
	}
	return h.RunScript(ctx, s.ID, script)
}

// applyRound runs one plan's steps, within opt.BeforeApply's hold when it
// is set (the cluster workflow restarts one node at a time with it).
func applyRound(ctx context.Context, h Host, steps []Step, opt Options) ([]StepResult, error) {
	if opt.BeforeApply != nil {
		release, err := opt.BeforeApply(steps)
		if err != nil {
			return nil, err
		}
		if release != nil {
			defer release()
		}
	}
	return Apply(ctx, h, steps, opt.Progress)
}

// replans tells whether a step asks for a new plan once it has run.
func replans(steps []Step) bool {
	for _, st := range steps {
		if st.Replan {
			return true
		}
	}
	return false
}

// ensureSCRAMUser gives the broker the SCRAM-SHA-512 user of auth, through
// an SSH tunnel to the INTERNAL listener: only the salted password crosses
// the wire, and nothing secret is on any command line. An existing user is
// left alone unless force.
func ensureSCRAMUser(ctx context.Context, h Host, s Spec, auth kafkaclient.Auth, force bool) error {
	tunnel, ok := h.(Tunnel)
	if !ok {
		return errors.New("creating the SCRAM user needs a tunnel to the host, and this connection has none")
	}
	if auth.Username == "" || auth.Password == "" {
		return errors.New("SCRAM is on but kafkaup has no username and password for the broker")
	}
	internal := s.LocalBootstrap()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cl, err := kafkaclient.DialVia(cctx, internal, tunnel.DialContext)
	if err != nil {
		return fmt.Errorf("reach the broker's INTERNAL listener %s through SSH to create the SCRAM user: %w", internal, err)
	}
	defer cl.Close()
	if !force {
		has, err := cl.HasSCRAMUser(cctx, auth.Username)
		if err != nil {
			return fmt.Errorf("look up SCRAM user %q: %w", auth.Username, err)
		}
		if has {
			return nil
		}
	}
	return cl.SetSCRAMUser(cctx, auth.Username, auth.Password)
}

// NewClusterID returns a random KRaft cluster id in Kafka's format (16
// random bytes, URL-safe base64 without padding, never starting with '-').
func NewClusterID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id := base64.RawURLEncoding.EncodeToString(b)
		if id[0] != '-' {
			return id
		}
	}
}

// NewDirectoryID returns a random directory id for a controller's metadata
// log, in the same Uuid format: kafkaup chooses each voter's before the
// storage is formatted, so every node gets the same --initial-controllers.
func NewDirectoryID() string { return NewClusterID() }

// Options tunes one provisioning run.
type Options struct {
	DryRun        bool
	SkipVerify    bool
	VerifyTimeout time.Duration // 2 minutes when zero
	Progress      Progress

	// Auth is how this machine logs in to the broker (the spec's Security
	// decides what the broker asks for). With SCRAM, Provision makes sure
	// the broker has this user with this password.
	Auth kafkaclient.Auth
	// NewPassword says Auth's password was just made: it is set on the
	// broker even if the user exists there already.
	NewPassword bool

	// BeforeApply, when set, is called with the plan before any step runs
	// (not on a dry run). An error stops the run with nothing changed;
	// the returned release (when not nil) is called once the steps are
	// done. The cluster workflow uses it to restart one node at a time.
	BeforeApply func(steps []Step) (release func(), err error)
}

// RestartsBroker says whether the plan restarts a running broker (rather
// than starting a stopped one, or leaving it alone).
func RestartsBroker(steps []Step) bool {
	for _, st := range steps {
		if in, ok := st.Script.(scripts.Service); ok && in.Action == "restart" {
			return true
		}
	}
	return false
}

// TouchesBroker says whether the plan restarts or starts the broker: after
// it, the broker has to register and catch up again.
func TouchesBroker(steps []Step) bool {
	for _, st := range steps {
		if _, ok := st.Script.(scripts.Service); ok {
			return true
		}
	}
	return false
}

// Tunnel is a Host that can open TCP connections from the host (an SSH
// tunnel); remote.Client is one. The SCRAM user is created through it, on
// the broker's loopback-only INTERNAL listener.
type Tunnel interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is what a run did and found.
type Result struct {
	Host       string                    `json:"host"`
	Bootstrap  string                    `json:"bootstrap"`
	ClusterID  string                    `json:"cluster_id,omitempty"`
	Systemd    bool                      `json:"systemd"`
	BrokerPID  int                       `json:"broker_pid,omitempty"`
	DryRun     bool                      `json:"dry_run,omitempty"`
	Plan       []PlannedStep             `json:"plan"`
	Applied    []StepResult              `json:"applied"`
	Verified   *kafkaclient.Verification `json:"verified,omitempty"`
	MetricsURL string                    `json:"metrics_url,omitempty"` // with --metrics: what Prometheus scrapes
	Warnings   []string                  `json:"warnings,omitempty"`
	Facts      Facts                     `json:"-"`
	FactsAfter Facts                     `json:"-"`
	// Observed is when each observation ran (one per plan, and one after);
	// VerifyStarted and VerifyDone bracket the produce and consume from
	// this machine. Create's timeline is made of them.
	Observed                  []Span    `json:"-"`
	VerifyStarted, VerifyDone time.Time `json:"-"`
}

// Span is a stretch of time on this machine's clock.
type Span struct{ Start, End time.Time }

// observe is Observe, remembering when it ran.
func (r *Result) observe(ctx context.Context, h Host, s Spec) (Facts, error) {
	start := time.Now()
	f, err := Observe(ctx, h, s)
	r.Observed = append(r.Observed, Span{start, time.Now()})
	return f, err
}

// maxRounds bounds how often Provision plans again (after the wait for
// the head start): one wait, then the plan that finishes the work.
const maxRounds = 3

// PlannedStep is a step as shown by --dry-run and --json.
type PlannedStep struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Reason string `json:"reason"`
}

// Provision observes, plans, applies and verifies. On error the Result
// still says what was done.
func Provision(ctx context.Context, h Host, s Spec, hostName string, opt Options) (*Result, error) {
	res := &Result{Host: hostName, Bootstrap: s.Bootstrap(), DryRun: opt.DryRun}
	if s.Metrics.Enabled {
		res.MetricsURL = s.MetricsURL(s.AdvertisedHost)
	}
	if err := s.Validate(); err != nil {
		return res, err
	}
	facts, err := res.observe(ctx, h, s)
	if err != nil {
		return res, err
	}
	res.Facts, res.Systemd = facts, facts.Systemd
	if !facts.Systemd {
		res.Warnings = append(res.Warnings, "this host does not run systemd: the broker runs as a daemon started by kafka-server-start.sh -daemon and will not come back by itself after a reboot (rerun kafkaup provision then)")
	}
	// Observe, plan, apply; again after a step that leaves the facts stale
	// (the wait for the head start), so nothing it did is done twice.
	// The new cluster id is used only when s has none and the data dir is fresh.
	clusterID, changed := NewClusterID(), false
	for round := 1; ; round++ {
		steps, err := Plan(s, facts, clusterID)
		if err != nil {
			return res, err
		}
		for _, st := range steps {
			res.Plan = append(res.Plan, PlannedStep{ID: st.ID, Title: st.Title, Reason: st.Reason})
		}
		if opt.DryRun {
			res.ClusterID = facts.ClusterID
			return res, nil
		}
		applied, err := applyRound(ctx, h, steps, opt)
		res.Applied = append(res.Applied, applied...)
		if err != nil {
			return res, err
		}
		changed = changed || len(steps) > 0
		if !replans(steps) {
			break
		}
		if round == maxRounds {
			return res, fmt.Errorf("the plan for %s still waits after %d rounds; rerun the same command", hostName, round)
		}
		if facts, err = res.observe(ctx, h, s); err != nil {
			return res, err
		}
	}
	after := facts
	if changed {
		if after, err = res.observe(ctx, h, s); err != nil {
			return res, err
		}
	}
	res.FactsAfter, res.ClusterID, res.BrokerPID = after, after.ClusterID, after.BrokerPID
	if !after.ServiceActive {
		return res, fmt.Errorf("the broker is not running on %s after provisioning; see `kafkaup logs` or %s/server.log on the host", hostName, s.LogDir)
	}
	if s.Security.SCRAM {
		if err := ensureSCRAMUser(ctx, h, s, opt.Auth, opt.NewPassword); err != nil {
			return res, err
		}
	}
	if s.Metrics.Enabled && !opt.SkipVerify {
		if err := checkMetrics(ctx, h, s); errors.Is(err, errNoTunnel) {
			res.Warnings = append(res.Warnings, "the metrics endpoint was not checked: "+err.Error())
		} else if err != nil {
			return res, err
		}
	}
	if opt.SkipVerify || s.Clustered() {
		// A cluster is verified as a whole once every node is up (VerifyCluster).
		return res, nil
	}
	timeout := opt.VerifyTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	res.VerifyStarted = time.Now()
	res.Verified, err = kafkaclient.VerifyWith(ctx, s.Bootstrap(), timeout, opt.Auth)
	res.VerifyDone = time.Now()
	var authErr *kafkaclient.AuthError
	if errors.As(err, &authErr) && s.Security.SCRAM && !opt.NewPassword {
		// The broker has the user with another password (set outside
		// kafkaup, or kafkaup's copy was replaced): converge to kafkaup's.
		if err := ensureSCRAMUser(ctx, h, s, opt.Auth, true); err != nil {
			return res, err
		}
		res.Verified, err = kafkaclient.VerifyWith(ctx, s.Bootstrap(), timeout, opt.Auth)
		res.VerifyDone = time.Now()
	}
	if err != nil {
		return res, fmt.Errorf("verify from this machine: %w", err)
	}
	if res.Verified.ClusterID != "" && after.ClusterID != "" && res.Verified.ClusterID != after.ClusterID {
		return res, fmt.Errorf("the broker at %s reports cluster id %s but the host's data dir has %s: another broker answers at that address", s.Bootstrap(), res.Verified.ClusterID, after.ClusterID)
	}
	return res, nil
}

// VerifyCluster proves a cluster of several nodes works from this machine,
// once every node is up: its metadata lists each node's broker at its
// advertised address, and a record produced with acks=all to a topic
// replicated on ReplicationFactor nodes is consumed back. specs are the
// nodes' specs, in node order.
func VerifyCluster(ctx context.Context, specs []Spec, opt Options) (*kafkaclient.Verification, error) {
	if len(specs) == 0 {
		return nil, errors.New("verify: no nodes")
	}
	addrs := make([]string, 0, len(specs))
	for _, s := range specs {
		addrs = append(addrs, s.Bootstrap())
	}
	bootstrap := strings.Join(addrs, ",")
	timeout := opt.VerifyTimeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	v, err := kafkaclient.VerifyCluster(ctx, bootstrap, addrs, int16(ReplicationFactor(len(specs))), timeout, opt.Auth)
	if err != nil {
		return v, fmt.Errorf("verify from this machine: %w", err)
	}
	if id := specs[0].ClusterID; id != "" && v.ClusterID != id {
		return v, fmt.Errorf("the brokers at %s report cluster id %s, but the cluster was formatted as %s: another cluster answers at those addresses", bootstrap, v.ClusterID, id)
	}
	return v, nil
}
