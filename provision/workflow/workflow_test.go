package workflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// fakeHost is a connection that is never used for real: the fake engine
// does not run scripts.
type fakeHost struct{ closed bool }

func (h *fakeHost) RunScript(context.Context, string, []byte) ([]byte, error) { return nil, nil }
func (h *fakeHost) Upload(context.Context, io.Reader, string, uint32) error   { return nil }
func (h *fakeHost) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no tunnel in tests")
}
func (h *fakeHost) StreamScript(context.Context, string, []byte, io.Writer) error { return nil }
func (h *fakeHost) Exec(context.Context, string, io.Reader, io.Writer, io.Writer) error {
	return nil
}
func (h *fakeHost) Close() error { h.closed = true; return nil }

type dialed struct {
	Target
	DialOptions
}

// fakeDialer connects to fake hosts. A host with a key in hostKeys has it
// checked the way SSHDialer does (remote.HostKeys, against the pin file
// pins, trusting on first use); err, when set, is every dial's answer.
type fakeDialer struct {
	dials    []dialed
	pins     string
	hostKeys map[string]ssh.PublicKey
	trusted  []string // hosts trusted on first use
	err      error
}

func (d *fakeDialer) Dial(_ context.Context, t Target, o DialOptions) (Host, error) {
	d.dials = append(d.dials, dialed{t, o})
	if d.err != nil {
		return nil, d.err
	}
	if k := d.hostKeys[t.Host]; k != nil {
		hk := &remote.HostKeys{PinFile: d.pins, Expected: o.ExpectedHostKeys, ExpectedFrom: o.ExpectedFrom,
			OnPin: func(host, _ string) { d.trusted = append(d.trusted, host) }}
		if err := hk.Callback()(net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), &net.TCPAddr{}, k); err != nil {
			return nil, err
		}
	}
	return &fakeHost{}, nil
}

// fakeEngine records the specs it was asked to apply.
type fakeEngine struct {
	specs []provision.Spec
	fail  func(ctx context.Context) error
}

func (e *fakeEngine) run(ctx context.Context, _ provision.Host, s provision.Spec, host string, _ provision.Options) (*provision.Result, error) {
	e.specs = append(e.specs, s)
	res := &provision.Result{Host: host, Bootstrap: s.Bootstrap(), ClusterID: "cluster-1", Systemd: true}
	if e.fail != nil {
		res.Applied = []provision.StepResult{{ID: "packages"}, {ID: "kafka", Error: "context canceled"}}
		return res, e.fail(ctx)
	}
	return res, nil
}

// fakeCloud is one instance per node per name, with a public IP that
// changes on every start (no Elastic IP), a private IP that does not, and
// nodes spread over three zones.
type fakeCloud struct {
	lastReq   cloud.CreateRequest
	instances map[string][]*cloud.Broker
	created   int
	destroyed []string
	nextIP    int
	fixedIP   string // every instance gets this address (an Elastic IP)
	// keys are what the console shows; consoleWaits the bound of each read.
	keys         []ssh.PublicKey
	consoleMu    sync.Mutex // nodes read their consoles at once
	consoleWaits []time.Duration
	// allowed are the CIDRs of each security group, allowPorts its ports.
	allowed    map[string][]string
	allowPorts []int32
	// failCreate, when set, is the next CreateNodes' answer (then cleared).
	failCreate error
	// launches are LaunchReplacement's requests; byToken its instances
	// (a token seen before gets its instance again, as EC2's client
	// token does); terminated the ids TerminateReplaced ended.
	launches   []cloud.ReplacementRequest
	byToken    map[string]*cloud.Broker
	terminated []string
	// failTerminate, when set, is the next TerminateReplaced's answer;
	// onTerminate runs before each termination.
	failTerminate error
	onTerminate   func(id string)
	moves         []string // MoveNodeEIP's: "old -> new"
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{instances: map[string][]*cloud.Broker{}, nextIP: 10, allowed: map[string][]string{}}
}

func (c *fakeCloud) ip() string {
	if c.fixedIP != "" {
		return c.fixedIP
	}
	c.nextIP++
	return fmt.Sprintf("203.0.113.%d", c.nextIP)
}

var fakeZones = []string{"us-east-1a", "us-east-1b", "us-east-1c"}

func (c *fakeCloud) RegionName() string { return "us-east-1" }
func (c *fakeCloud) Layout(_ context.Context, req cloud.CreateRequest) ([]cloud.Placement, error) {
	n := max(req.Nodes, 1)
	if err := cloud.CheckNodeCount(n); err != nil {
		return nil, err
	}
	out := make([]cloud.Placement, n)
	for i := range out {
		z := fakeZones[i%len(fakeZones)]
		out[i] = cloud.Placement{SubnetID: "subnet-" + z, Zone: z}
	}
	return out, nil
}
func (c *fakeCloud) CreateNodes(ctx context.Context, req cloud.CreateRequest) ([]*cloud.Broker, error) {
	c.lastReq = req
	if err := c.failCreate; err != nil {
		c.failCreate = nil
		return nil, err
	}
	if bs, ok := c.instances[req.Name]; ok {
		return bs, nil // found by tag: resumed
	}
	places, err := c.Layout(ctx, req)
	if err != nil {
		return nil, err
	}
	c.allowed[req.Name] = append([]string{}, req.AllowCIDRs...)
	var bs []*cloud.Broker
	for i, p := range places {
		c.created++
		b := &cloud.Broker{Name: req.Name, Node: i + 1, Zone: p.Zone, InstanceID: fmt.Sprintf("i-%d", c.created), State: "running",
			PublicIP: c.ip(), PrivateIP: fmt.Sprintf("172.31.%d.%d", i*16, 10+c.created)}
		b.PublicDNS = "ec2-" + strings.ReplaceAll(b.PublicIP, ".", "-") + ".compute-1.amazonaws.com"
		bs = append(bs, b)
	}
	c.instances[req.Name] = bs
	return bs, nil
}

// Create is CreateNodes for one node.
func (c *fakeCloud) Create(ctx context.Context, req cloud.CreateRequest) (*cloud.Broker, error) {
	bs, err := c.CreateNodes(ctx, req)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}
func (c *fakeCloud) Describe(_ context.Context, name string) (*cloud.Broker, error) {
	if bs, ok := c.instances[name]; ok {
		return bs[0], nil
	}
	return nil, fmt.Errorf("no instance for %s", name)
}
func (c *fakeCloud) DescribeAll(_ context.Context, name string) ([]*cloud.Broker, error) {
	if bs, ok := c.instances[name]; ok {
		return bs, nil
	}
	return nil, fmt.Errorf("no instance for %s", name)
}
func (c *fakeCloud) StartAll(_ context.Context, name string) ([]*cloud.Broker, error) {
	bs, ok := c.instances[name]
	if !ok {
		return nil, fmt.Errorf("no instance for %s", name)
	}
	for _, b := range bs {
		b.State, b.PublicIP = "running", c.ip()
		b.PublicDNS = "ec2-" + strings.ReplaceAll(b.PublicIP, ".", "-") + ".compute-1.amazonaws.com"
	}
	return bs, nil
}
func (c *fakeCloud) StopAll(_ context.Context, name string) ([]*cloud.Broker, error) {
	bs, ok := c.instances[name]
	if !ok {
		return nil, fmt.Errorf("no instance for %s", name)
	}
	for _, b := range bs {
		b.State, b.PublicIP, b.PublicDNS = "stopped", "", ""
	}
	return bs, nil
}
func (c *fakeCloud) Find(_ context.Context, name string) (*cloud.Resources, error) {
	r := &cloud.Resources{}
	for _, b := range c.instances[name] {
		r.Instances = append(r.Instances, cloud.Instance{ID: b.InstanceID, State: b.State, Node: b.Node})
	}
	return r, nil
}
func (c *fakeCloud) Destroy(_ context.Context, name string, _ bool) (*cloud.Resources, error) {
	delete(c.instances, name)
	c.destroyed = append(c.destroyed, name)
	return &cloud.Resources{}, nil
}
func (c *fakeCloud) WaitConsoleHostKeys(_ context.Context, _ string, w cloud.ConsoleWait) ([]ssh.PublicKey, error) {
	c.consoleMu.Lock()
	defer c.consoleMu.Unlock()
	c.consoleWaits = append(c.consoleWaits, w.Timeout)
	return c.keys, nil
}

// LaunchReplacement gives node r.Node a new instance in r.Zone, in place
// of its old one in c.instances.
func (c *fakeCloud) LaunchReplacement(_ context.Context, r cloud.ReplacementRequest) (*cloud.Broker, error) {
	c.launches = append(c.launches, r)
	if b, ok := c.byToken[r.Token]; ok {
		return b, nil
	}
	if c.byToken == nil {
		c.byToken = map[string]*cloud.Broker{}
	}
	c.created++
	b := &cloud.Broker{Name: r.Name, Node: r.Node, Zone: r.Zone, InstanceID: fmt.Sprintf("i-%d", c.created), State: "running",
		PublicIP: c.ip(), PrivateIP: fmt.Sprintf("172.31.99.%d", 10+c.created)}
	c.byToken[r.Token] = b
	c.instances[r.Name][r.Node-1] = b
	return b, nil
}

func (c *fakeCloud) TerminateReplaced(_ context.Context, _ string, _ int, id string) error {
	if c.onTerminate != nil {
		c.onTerminate(id)
	}
	if err := c.failTerminate; err != nil {
		c.failTerminate = nil
		return err
	}
	c.terminated = append(c.terminated, id)
	return nil
}

// MoveNodeEIP gives instance id the fixed address (the Elastic IP).
func (c *fakeCloud) MoveNodeEIP(_ context.Context, name string, node int, old, id string) (*cloud.Broker, error) {
	c.moves = append(c.moves, fmt.Sprintf("%s -> %s", old, id))
	b := c.instances[name][node-1]
	if b.InstanceID != id {
		return nil, fmt.Errorf("node %d runs %s, not %s", node, b.InstanceID, id)
	}
	b.PublicIP, b.EIPAllocationID, b.EIPOwned = c.fixedIP, "eipalloc-moved", true
	return b, nil
}

func (c *fakeCloud) Allow(_ context.Context, name string, ports []int32, add, revoke []string) ([]string, error) {
	if _, ok := c.instances[name]; !ok {
		return nil, fmt.Errorf("broker %s has no security group", name)
	}
	c.allowPorts = ports
	var out []string
	for _, a := range c.allowed[name] {
		if !slices.Contains(revoke, a) {
			out = append(out, a)
		}
	}
	for _, a := range add {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	c.allowed[name] = out
	return out, nil
}

type fakeUI struct{ lines []string }

func (u *fakeUI) StepStarted(provision.Step)                    {}
func (u *fakeUI) StepDone(provision.Step, time.Duration, error) {}
func (u *fakeUI) Printf(format string, args ...any) {
	u.lines = append(u.lines, fmt.Sprintf(format, args...))
}
func (u *fakeUI) Confirm(q string) (bool, error) { return false, errors.New("asked: " + q) }

type fakes struct {
	env    Env
	dial   *fakeDialer
	engine *fakeEngine
	cloud  *fakeCloud
	ui     *fakeUI
	store  state.Store
}

func newFakes(t *testing.T) *fakes {
	dir := t.TempDir()
	f := &fakes{dial: &fakeDialer{pins: state.KnownHostsFile(dir)}, engine: &fakeEngine{}, cloud: newFakeCloud(), ui: &fakeUI{}, store: state.Store{Dir: dir}}
	f.env = Env{StateDir: dir, Store: f.store, Dial: f.dial, Engine: f.engine.run, UI: f.ui,
		NewCloud: func(context.Context, string) (Cloud, error) { return f.cloud, nil },
		CallerIP: func(context.Context) (string, error) { return "198.51.100.7", nil }}
	return f
}

func createOptions() CreateOptions {
	return CreateOptions{Name: "demo", Request: cloud.CreateRequest{InstanceType: "t3.micro", RootSizeGB: 16},
		SSHKey: "", User: "ubuntu", AddressKind: "ip", Yes: true, RunOptions: RunOptions{SkipVerify: true}}
}

func TestCreateResumes(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir()) // no default SSH keys: kafkaup would make one
	heap := "512m"
	o := createOptions()
	o.Overrides.Heap = &heap
	// The first run fails while provisioning (the broker is not up yet).
	f.engine.fail = func(context.Context) error { return errors.New("packages: apt is broken") }
	if _, err := Create(context.Background(), f.env, o); err == nil {
		t.Fatal("first create succeeded")
	}
	rec, err := f.store.Load("demo")
	if err != nil || len(rec.Nodes) != 1 || rec.Nodes[0].InstanceID != "i-1" || rec.Spec.Heap != "512m" {
		t.Fatalf("record after the failed run: %+v, %v", rec, err)
	}
	// The rerun, without --heap: the same instance, the recorded heap.
	f.engine.fail = nil
	out, err := Create(context.Background(), f.env, createOptions())
	if err != nil {
		t.Fatal(err)
	}
	if f.cloud.created != 1 {
		t.Errorf("a rerun launched %d instances", f.cloud.created)
	}
	if got := f.engine.specs[1]; got.HeapMB != 512 || got.AdvertisedHost != "203.0.113.11" {
		t.Errorf("resumed spec: heap %d advertised %s", got.HeapMB, got.AdvertisedHost)
	}
	if last := f.dial.dials[len(f.dial.dials)-1]; !last.RetryAuth || last.Host != "203.0.113.11" || last.User != "ubuntu" {
		t.Errorf("dial: %+v", last)
	}
	rec, _ = f.store.Load("demo")
	if rec.ClusterID != "cluster-1" || !rec.Nodes[0].Systemd || out.Name != "demo" {
		t.Errorf("record after create: %+v", rec)
	}
}

func TestCreateDryRunMakesNothing(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.DryRun = true
	out, err := Create(context.Background(), f.env, o)
	if err != nil {
		t.Fatal(err)
	}
	p := out.CreatePlan
	if p == nil || p.SecurityGroup != cloud.ResourceName("demo") || p.AllowCIDRs[0] != "198.51.100.7/32" || f.cloud.created != 0 {
		t.Errorf("plan %+v, created %d", p, f.cloud.created)
	}
	if _, err := f.store.Load("demo"); !errors.Is(err, state.ErrNoBroker) {
		t.Errorf("a dry run saved a record: %v", err)
	}
}

func TestReprovisionNewHeap(t *testing.T) {
	f := newFakes(t)
	_, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev",
		Target: Target{Host: "10.0.0.5", Port: 22, User: "admin"}, RunOptions: RunOptions{SkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	heap := "768m"
	if _, err := Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "dev", Overrides: state.Overrides{Heap: &heap}}); err != nil {
		t.Fatal(err)
	}
	got := f.engine.specs[1]
	if got.HeapMB != 768 || got.AdvertisedHost != "10.0.0.5" || got.SwapBytes != provision.DefaultSwapBytes {
		t.Errorf("reprovision spec: %+v", got)
	}
	if d := f.dial.dials[1]; d.Host != "10.0.0.5" || d.User != "admin" {
		t.Errorf("reprovision dialed %+v", d)
	}
	rec, _ := f.store.Load("dev")
	if rec.Spec.Heap != "768m" {
		t.Errorf("record heap %s", rec.Spec.Heap)
	}
	// Nothing given: the recorded heap again.
	if _, err := Reprovision(context.Background(), f.env, ReprovisionOptions{Name: "dev"}); err != nil {
		t.Fatal(err)
	}
	if f.engine.specs[2].HeapMB != 768 {
		t.Errorf("second reprovision heap %d", f.engine.specs[2].HeapMB)
	}
}

// TestStartFollowsNewAddress: start moves the broker to the instance's new
// public IP and keeps the recorded swap and mirror (the bug the codec
// fixed: start used to make a 2 GiB swapfile and forget the mirror).
func TestStartFollowsNewAddress(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	swap, url := "0", "http://10.0.2.2:8080/kafka/4.0.0/kafka_2.13-4.0.0.tgz"
	o.Overrides.Swap, o.Overrides.KafkaURL = &swap, &url
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if _, err := Stop(context.Background(), f.env, StopOptions{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), f.env, StartOptions{Name: "demo", RunOptions: RunOptions{SkipVerify: true}}); err != nil {
		t.Fatal(err)
	}
	got := f.engine.specs[len(f.engine.specs)-1]
	if got.AdvertisedHost != "203.0.113.12" || got.SwapBytes != 0 || got.Source.URL != url {
		t.Errorf("start's spec: advertised %s swap %d source %+v", got.AdvertisedHost, got.SwapBytes, got.Source)
	}
	if d := f.dial.dials[len(f.dial.dials)-1]; d.Host != "203.0.113.12" || !d.RetryAuth {
		t.Errorf("start dialed %+v", d)
	}
	rec, _ := f.store.Load("demo")
	if rec.Nodes[0].Host != "203.0.113.12" || rec.Spec.Swap != "0" || rec.Spec.KafkaURL != url {
		t.Errorf("record after start: %+v", rec)
	}
}

func TestDestroyWithRecordGone(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Delete("demo"); err != nil {
		t.Fatal(err)
	}
	var shown []string
	out, err := Destroy(context.Background(), f.env, DestroyOptions{Name: "demo", Yes: true,
		Found: func(_ string, lines []string) { shown = lines }})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Deleted || len(f.cloud.destroyed) != 1 || len(shown) == 0 {
		t.Errorf("destroy without a record: %+v, destroyed %v, shown %v", out, f.cloud.destroyed, shown)
	}
	out, err = Destroy(context.Background(), f.env, DestroyOptions{Name: "demo", Yes: true})
	if err != nil || !out.NothingLeft {
		t.Errorf("second destroy: %+v %v", out, err)
	}
}

func TestDestroyRefusesHostBroker(t *testing.T) {
	f := newFakes(t)
	if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}}); err != nil {
		t.Fatal(err)
	}
	_, err := Destroy(context.Background(), f.env, DestroyOptions{Name: "dev", Yes: true})
	var ie *provision.InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "kafkaup forget dev") {
		t.Errorf("destroy of a host broker: %v", err)
	}
}

// TestInterrupted: Ctrl-C during the engine's run says what was applied
// and that a rerun finishes it, as a typed error.
func TestInterrupted(t *testing.T) {
	f := newFakes(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.engine.fail = func(ctx context.Context) error {
		cancel()
		return fmt.Errorf("step kafka: %w", ctx.Err())
	}
	_, err := Provision(ctx, f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}})
	var ie *InterruptedError
	if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %T %v", err, err)
	}
	for _, want := range []string{"after applying packages", "step kafka was cut short", "run the same command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if _, err := f.store.Load("dev"); err != nil {
		t.Errorf("no record to resume from: %v", err)
	}
}

func TestProvisionNameTaken(t *testing.T) {
	f := newFakes(t)
	if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}}); err != nil {
		t.Fatal(err)
	}
	_, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.6", Port: 22, User: "u"}})
	var ie *provision.InputError
	if !errors.As(err, &ie) || len(f.dial.dials) != 1 {
		t.Errorf("second host under one name: %v (dials %d)", err, len(f.dial.dials))
	}
}

func TestLocalTarballChecked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kafka_2.13-4.0.0.tgz")
	os.WriteFile(path, []byte("not kafka"), 0o600)
	apache := "kafka_2.13-4.0.0.tgz: " + strings.TrimSpace(strings.Repeat("00722AB0 A6B954E0 \n", 8)) + "\n"
	os.WriteFile(path+".sha512", []byte(apache), 0o600)
	s := provision.DefaultSpec()
	s.Source.LocalTarball = path
	if err := checkLocalTarball(&s); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("sidecar mismatch: %v", err)
	}
	os.WriteFile(path+".sha512", []byte("kafka_2.13-4.0.0.tgz: 00722AB0\n"), 0o600)
	if err := checkLocalTarball(&s); err == nil || !strings.Contains(err.Error(), "Fix or remove that file") {
		t.Errorf("damaged sidecar: %v", err)
	}
	os.Remove(path + ".sha512")
	s.Source.SHA512 = ""
	if err := checkLocalTarball(&s); err != nil || len(s.Source.SHA512) != 128 {
		t.Errorf("no sidecar: %v %q", err, s.Source.SHA512)
	}
}

// TestCreateMetricsPort: with --metrics the security group opens the
// metrics port too (to the allowed CIDRs only), and kafkaup metrics names
// the endpoint; without it, only 22 and 9092, and kafkaup metrics refuses.
func TestCreateMetricsPort(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if got := cloud.IngressPorts(f.cloud.lastReq); fmt.Sprint(got) != "[22 9092]" {
		t.Errorf("ports without --metrics: %v", got)
	}
	var ie *provision.InputError
	if _, err := Metrics(f.env, "demo"); !errors.As(err, &ie) || !strings.Contains(err.Error(), "--metrics") {
		t.Errorf("metrics of a broker without them: %v", err)
	}
	on := true
	o := createOptions()
	o.Overrides.Metrics = &on
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if got := cloud.IngressPorts(f.cloud.lastReq); fmt.Sprint(got) != "[22 9092 9404]" {
		t.Errorf("ports with --metrics: %v", got)
	}
	// A rerun without the flag keeps the recorded setting, and the port.
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if got := cloud.IngressPorts(f.cloud.lastReq); fmt.Sprint(got) != "[22 9092 9404]" {
		t.Errorf("ports on a rerun: %v", got)
	}
	m, err := Metrics(f.env, "demo")
	if err != nil || len(m.URLs) != 1 || m.URLs[0] != "http://203.0.113.11:9404/metrics" || !strings.Contains(m.ScrapeConfig, "'203.0.113.11:9404'") {
		t.Errorf("metrics endpoints: %+v %v", m, err)
	}
}
