// Package localcloud is a local EC2 as strict as AWS where it matters to
// kafkaup: an instance is booted when RunInstances asks for it, runs
// cloud-init with the call's user-data, gets a public address only when
// launched (a new one after a stop and start), and posts its console output
// late.
//
// It is a reverse proxy in front of moto (package moto): the SDK talks to
// it through AWS_ENDPOINT_URL (Env, Config), it passes every call through
// to moto, and on the calls that matter it also acts on an instance
// backend (VMs: Debian under qemu with cloud-init; NamespaceHosts: fast,
// several at once):
//   - RunInstances boots a backend with a NoCloud seed: instance id,
//     hostname, the key pair's public key, the UserData;
//   - GetConsoleOutput answers with the backend's serial console, base64,
//     only once ConsoleDelay has passed since the boot (empty before, as
//     EC2 posts it minutes after boot);
//   - StopInstances powers the backend off in an orderly way (disk kept),
//     StartInstances boots it again, TerminateInstances removes it; until
//     the backend is done, DescribeInstances says pending, stopping or
//     shutting-down, and a call EC2 would refuse in that state is refused
//     (IncorrectInstanceState);
//   - more instances than MaxRunning: InsufficientInstanceCapacity.
//
// For the cases that break SSH host keys: SetConsoleHostKeys makes the
// console show other keys than the instance presents, and
// Options.RecycleAddresses hands a new instance the public address another
// gave up. Two "what is my IP" services on loopback (CallerIPURLs, in Env)
// stand in for the internet's.
//
// The network rule: tests dial only loopback. Every instance's public
// address is a 127.0.0.N of the cloud's (auto-assigned at launch and at
// each start, released at stop; an Elastic IP is allocated at a 127.0.0.N
// too), where a relay forwards Options.Ports to the backend, and only for
// sources its security groups allow (others hang, as on AWS). Answers are
// rewritten so moto's made-up 54.x addresses and DNS names never leave the
// proxy: PublicIpAddress is the 127.0.0.N, PublicDnsName
// ec2-127-0-0-N.compute-1.amazonaws.com (which does not resolve: give
// clients the IP).
//
// Use:
//
//	img, err := vm.BuildCloudImage(ctx) // or Backend: localcloud.NamespaceHosts{}
//	lc, err := localcloud.Start(ctx, localcloud.Options{
//		Backend: localcloud.VMs{Image: img}, ConsoleDelay: time.Minute, Logf: t.Logf})
//	defer lc.Close()
//	amiParam, _, err := lc.Moto.PutAMIParameters(ctx) // --ami-parameter
//	cli.Env = lc.Env()                                 // the kafkaup binary
//	cfg, err := lc.Config(ctx)                         // the SDK in the test
//	inst := lc.Instance(id) // PublicAddr, Console, WaitIdle, VM, NamespaceHost
//
// The VMs reach this machine's loopback at 10.0.2.2 (a Kafka mirror
// there); namespace hosts at their Host.HostSideAddr.
//
// Several instances of a cluster: NamespaceHosts{LAN: lan} puts every
// instance on one private LAN (nshost.NewLAN) at the private IP moto gave
// it (172.31.x.y/16, in the default subnet of its zone), so the instances
// reach each other at their private addresses as in a VPC, while this
// machine reaches them only at their public (loopback) addresses.
package localcloud

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kafkaup/kafkaup/internal/testenv/moto"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
)

// Options configure Start.
type Options struct {
	// Backend runs the instances: VMs{Image: img} or NamespaceHosts{}.
	Backend Backend
	// ConsoleDelay is how long after each boot GetConsoleOutput stays
	// empty (EC2 posts the output minutes after boot). Zero: at once. See
	// SetConsoleDelay.
	ConsoleDelay time.Duration
	// LatestConsoleUnsupported refuses GetConsoleOutput with Latest=true,
	// as EC2 does on instance types that are not Nitro.
	LatestConsoleUnsupported bool
	// MaxRunning is how many instances may run at once (default: the
	// backend's, 1 VM or 16 namespace hosts).
	MaxRunning int
	// Ports are the TCP ports relayed from an instance's public address
	// (default 22 and 9092).
	Ports []int
	// IgnoreSecurityGroups relays every connection; by default one is
	// relayed only when a rule of the instance's security groups allows
	// its port from its source address.
	IgnoreSecurityGroups bool
	// RecycleAddresses gives a launched (or started) instance the public
	// address another instance gave up last, when it is free, as EC2 hands
	// released addresses to new instances: a test then meets what a
	// recycled IP does to known_hosts. By default a new address is a free
	// one that no instance gave up (while there are such).
	RecycleAddresses bool
	// VendorData is cloud-init vendor-data given to every instance (a
	// cloud's own first-boot behaviour), e.g. VendorDataAPTAtFirstBoot.
	VendorData string
	// Moto is the moto server to front; nil: Start runs one, Close stops it.
	Moto *moto.Server
	// Logf receives what the cloud does (boots, stops, refusals). Default
	// log.Printf.
	Logf func(format string, args ...any)
}

// VendorDataAPTAtFirstBoot makes every instance run apt's daily jobs
// (apt-get update, then unattended-upgrades) right at its first boot, as
// Ubuntu's and Debian's cloud images do when their timers are overdue:
// the apt and dpkg locks are held for a while after SSH is up.
const VendorDataAPTAtFirstBoot = `#cloud-config
bootcmd:
  - [cloud-init-per, once, localcloud-apt, systemctl, start, --no-block, apt-daily.service, apt-daily-upgrade.service]
`

// Cloud is a running local cloud. Close it when done.
type Cloud struct {
	// Moto is the emulator behind the proxy (for PutAMIParameters; its own
	// endpoint skips the proxy: use Env and Config).
	Moto *moto.Server
	// Endpoint is the proxy's URL, http://127.0.0.1:PORT.
	Endpoint string
	// CallerIPURLs are two "what is my IP" services on loopback that answer
	// with the caller's address (127.0.0.1): Env points kafkaup at them
	// (KAFKAUP_CALLER_IP_URLS), in place of the ones on the internet.
	CallerIPURLs []string

	opts      Options
	ownMoto   bool
	ln        net.Listener
	srv       *http.Server
	ipServers []*http.Server // the caller-IP services
	ec2       *ec2.Client    // straight to moto
	dir       string         // this cloud's instance directories
	unlock    func()         // the flock that marks dir as live
	logf      func(format string, args ...any)
	wg        sync.WaitGroup

	mu           sync.Mutex
	instances    map[string]*Instance
	addrs        map[string]*publicAddr // reserved public addresses by IP
	allocIDs     map[string]string      // Elastic IP allocation id -> IP
	eipOf        map[string]string      // instance id -> its Elastic IP, as moto's addresses say
	consoleDelay time.Duration
	consoleKeys  []string               // forged SSH HOST KEY KEYS lines (SetConsoleHostKeys)
	recycled     []string               // auto-assigned addresses given up, the last one last
	held         map[string]*publicAddr // with RecycleAddresses: given up, still reserved for the next instance
	closed       bool
}

// runsDir holds every cloud's instance directories. It is below
// nshost.BaseDir because a namespace host's disk must be (hidden inside the
// hosts); VM disks live there too.
func runsDir() string { return filepath.Join(nshost.BaseDir, "localcloud") }

// Start runs the proxy (and moto, unless Options.Moto) on loopback.
func Start(ctx context.Context, opts Options) (*Cloud, error) {
	if opts.Backend == nil {
		return nil, errors.New("localcloud: Options.Backend is required (VMs{Image: ...} or NamespaceHosts{})")
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if len(opts.Ports) == 0 {
		opts.Ports = []int{22, 9092}
	}
	if opts.MaxRunning == 0 {
		opts.MaxRunning = opts.Backend.DefaultMaxRunning()
	}
	c := &Cloud{opts: opts, Moto: opts.Moto, logf: opts.Logf, consoleDelay: opts.ConsoleDelay,
		instances: map[string]*Instance{}, addrs: map[string]*publicAddr{}, held: map[string]*publicAddr{}, allocIDs: map[string]string{}}
	if err := c.makeDir(); err != nil {
		return nil, err
	}
	var err error
	if c.Moto == nil {
		if c.Moto, err = moto.Start(ctx); err != nil {
			c.unlock()
			os.RemoveAll(c.dir)
			return nil, err
		}
		c.ownMoto = true
	}
	cfg, err := c.Moto.Config(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.ec2 = ec2.NewFromConfig(cfg)
	if c.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		c.Close()
		return nil, fmt.Errorf("localcloud: listen: %w", err)
	}
	c.Endpoint = "http://" + c.ln.Addr().String()
	if err := c.startCallerIPServices(); err != nil {
		c.Close()
		return nil, err
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serve), ReadHeaderTimeout: 30 * time.Second}
	go c.srv.Serve(c.ln)
	c.logf("localcloud: EC2 at %s (moto %s), %s backend, console after %s, at most %d running",
		c.Endpoint, c.Moto.Endpoint(), opts.Backend.Kind(), opts.ConsoleDelay, opts.MaxRunning)
	return c, nil
}

// makeDir creates this cloud's directory, held by an flock for as long as
// the process lives, after removing those of clouds whose process died.
func (c *Cloud) makeDir() error {
	root := runsDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("localcloud: %w", err)
	}
	locks, _ := filepath.Glob(filepath.Join(root, "run-*.lock"))
	for _, l := range locks {
		if f, ok := tryFlock(l); ok {
			os.RemoveAll(strings.TrimSuffix(l, ".lock"))
			os.Remove(l)
			f.Close()
		}
	}
	dir, err := os.MkdirTemp(root, "run-")
	if err != nil {
		return fmt.Errorf("localcloud: %w", err)
	}
	f, ok := tryFlock(dir + ".lock")
	if !ok {
		os.RemoveAll(dir)
		return fmt.Errorf("localcloud: cannot lock %s.lock", dir)
	}
	c.dir, c.unlock = dir, func() { f.Close() }
	return nil
}

func tryFlock(path string) (*os.File, bool) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return f, true
}

// Env is what a process (the kafkaup binary under test) needs in its
// environment to use this cloud: moto.Server.Env with the proxy's
// endpoint, and KAFKAUP_CALLER_IP_URLS naming the cloud's caller-IP
// services (CallerIPURLs).
func (c *Cloud) Env() []string {
	var env []string
	for _, kv := range c.Moto.Env() {
		if strings.HasPrefix(kv, "AWS_ENDPOINT_URL=") {
			kv = "AWS_ENDPOINT_URL=" + c.Endpoint
		}
		env = append(env, kv)
	}
	return append(env, CallerIPURLsEnv+"="+strings.Join(c.CallerIPURLs, ","))
}

// CallerIPURLsEnv is kafkaup's variable for its caller-IP lookup services
// (cloud.CallerIPURLsEnv; the harness does not import product code).
const CallerIPURLsEnv = "KAFKAUP_CALLER_IP_URLS"

// Config is an SDK configuration for this cloud (moto.Server.Config with
// the proxy's endpoint).
func (c *Cloud) Config(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	return c.Moto.Config(ctx, append(optFns, config.WithBaseEndpoint(c.Endpoint))...)
}

// SetConsoleDelay changes how long after each boot the console output
// stays empty, from now on.
func (c *Cloud) SetConsoleDelay(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consoleDelay = d
}

// SetConsoleHostKeys makes GetConsoleOutput show keys (authorized_keys
// lines, "ssh-ed25519 AAAA...") in place of every instance's own in its
// -----BEGIN SSH HOST KEY KEYS----- block, from now on: what kafkaup sees
// when the console it reads belongs to another machine than the one that
// answers at the address (someone in the middle, or an address handed on).
// nil shows the instances' own keys again.
func (c *Cloud) SetConsoleHostKeys(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.consoleKeys = keys
}

// Instance returns the instance with that id, or nil.
func (c *Cloud) Instance(id string) *Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.instances[id]
}

// Instances lists every instance launched through the cloud (terminated
// ones too), by id.
func (c *Cloud) Instances() []*Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Instance
	for _, i := range c.instances {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Reset terminates every instance's backend, frees every public address
// and wipes moto (moto.Server.Reset).
func (c *Cloud) Reset(ctx context.Context) error {
	err := c.terminateAll(ctx)
	c.mu.Lock()
	for ip, a := range c.addrs {
		a.close()
		delete(c.addrs, ip)
	}
	for ip, a := range c.held {
		a.close()
		delete(c.held, ip)
	}
	c.instances = map[string]*Instance{}
	c.mu.Unlock()
	return errors.Join(err, c.Moto.Reset())
}

func (c *Cloud) terminateAll(ctx context.Context) error {
	var errs []error
	for _, i := range c.Instances() {
		if err := i.destroy(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close terminates every backend, stops the proxy (and moto if Start ran
// it) and removes the instances' directories.
func (c *Cloud) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.srv.Shutdown(ctx)
		cancel()
	}
	for _, s := range c.ipServers {
		s.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs = append(errs, c.terminateAll(ctx))
	c.wg.Wait()
	c.mu.Lock()
	for ip, a := range c.addrs {
		a.close()
		delete(c.addrs, ip)
	}
	for ip, a := range c.held {
		a.close()
		delete(c.held, ip)
	}
	c.mu.Unlock()
	if c.ownMoto && c.Moto != nil {
		errs = append(errs, c.Moto.Close())
	}
	if c.dir != "" {
		errs = append(errs, os.RemoveAll(c.dir))
		os.Remove(c.dir + ".lock")
		c.unlock()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localcloud: close: %w", err)
	}
	return nil
}
