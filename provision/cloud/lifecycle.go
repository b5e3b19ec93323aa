package cloud

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
)

// brokerInstance is the broker's one instance that is not terminated or
// terminating.
func (c *Cloud) brokerInstance(ctx context.Context, name string) (*types.Instance, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	insts, err := c.describeInstances(ctx, append(brokerFilters(name),
		types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}}))
	if err != nil {
		return nil, fmt.Errorf("find the instance of broker %s: %w", name, err)
	}
	switch len(insts) {
	case 0:
		return nil, fmt.Errorf("broker %s has no instance in %s (`kafkaup list` shows the brokers there)", name, c.Region)
	case 1:
		return &insts[0], nil
	}
	return nil, fmt.Errorf("broker %s has %d instances (a cluster made with create --nodes), and this works on a single broker's instance only", name, len(insts))
}

// Describe returns broker name's instance (with its Elastic IP, if any).
func (c *Cloud) Describe(ctx context.Context, name string) (*Broker, error) {
	inst, err := c.brokerInstance(ctx, name)
	if err != nil {
		return nil, err
	}
	return c.brokerWithEIP(ctx, name, inst)
}

func (c *Cloud) brokerWithEIP(ctx context.Context, name string, inst *types.Instance) (*Broker, error) {
	b := brokerFromInstance(*inst)
	b.Name = name
	out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("instance-id"), Values: []string{b.InstanceID}},
	}})
	if err != nil {
		return nil, fmt.Errorf("find the elastic IP of %s: %w", b.InstanceID, advise(err))
	}
	if len(out.Addresses) > 0 {
		b.setEIP(out.Addresses[0])
	}
	return &b, nil
}

// brokerInstances are every instance of broker name that is not
// terminated or terminating, in node order.
func (c *Cloud) brokerInstances(ctx context.Context, name string) ([]types.Instance, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	insts, err := c.describeInstances(ctx, append(brokerFilters(name),
		types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}}))
	if err != nil {
		return nil, fmt.Errorf("find the instances of broker %s: %w", name, err)
	}
	if len(insts) == 0 {
		return nil, fmt.Errorf("broker %s has no instance in %s (`kafkaup list` shows the brokers there)", name, c.Region)
	}
	seen := map[int]string{}
	for _, i := range insts {
		n, id := nodeOf(i.Tags), aws.ToString(i.InstanceId)
		if was, ok := seen[n]; ok {
			return nil, fmt.Errorf("broker %s has two instances for node %d (%s, %s); destroy it and create it again", name, n, was, id)
		}
		seen[n] = id
	}
	sort.Slice(insts, func(a, b int) bool { return nodeOf(insts[a].Tags) < nodeOf(insts[b].Tags) })
	return insts, nil
}

// Stop stops broker name's one instance (a cluster's is refused before
// anything changes: StopAll).
func (c *Cloud) Stop(ctx context.Context, name string) (*Broker, error) {
	return one(c.eachInstance(ctx, name, true, c.stopInstance))
}

// Start starts broker name's one instance (StartAll for a cluster).
func (c *Cloud) Start(ctx context.Context, name string) (*Broker, error) {
	return one(c.eachInstance(ctx, name, true, c.startInstance))
}

func one(bs []*Broker, err error) (*Broker, error) {
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// DescribeAll returns every instance of broker name (with its Elastic
// IP), in node order.
func (c *Cloud) DescribeAll(ctx context.Context, name string) ([]*Broker, error) {
	return c.eachInstance(ctx, name, false, func(_ context.Context, _ string, inst types.Instance) (*types.Instance, error) { return &inst, nil })
}

// StopAll stops every instance of broker name at once and waits until
// they are stopped. Their public IPs go away unless they have Elastic
// IPs; their private IPs stay. The brokers are returned in node order.
func (c *Cloud) StopAll(ctx context.Context, name string) ([]*Broker, error) {
	return c.eachInstance(ctx, name, false, c.stopInstance)
}

// StartAll starts every instance of broker name at once and waits until
// they run. Without Elastic IPs they come back with new public IPs.
func (c *Cloud) StartAll(ctx context.Context, name string) ([]*Broker, error) {
	return c.eachInstance(ctx, name, false, c.startInstance)
}

// eachInstance runs act on every instance of broker name at once (with
// single, only when there is one) and returns them read back, in node
// order.
func (c *Cloud) eachInstance(ctx context.Context, name string, single bool, act func(context.Context, string, types.Instance) (*types.Instance, error)) ([]*Broker, error) {
	insts, err := c.brokerInstances(ctx, name)
	if err != nil {
		return nil, err
	}
	if single && len(insts) > 1 {
		return nil, fmt.Errorf("broker %s has %d instances (a cluster made with create --nodes), and this works on a single broker's instance only", name, len(insts))
	}
	out := make([]*Broker, len(insts))
	errs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i := range insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := act(ctx, name, insts[i])
			if err == nil {
				out[i], err = c.brokerWithEIP(ctx, name, inst)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sortByNode(out)
	return out, nil
}

func (c *Cloud) stopInstance(ctx context.Context, name string, inst types.Instance) (*types.Instance, error) {
	id := aws.ToString(inst.InstanceId)
	if stateName(inst) != "stopped" {
		// Created a moment ago, the instance may not be visible to
		// StopInstances yet, or still be pending (IncorrectInstanceState).
		err := c.untilVisible(ctx, fmt.Sprintf("stop broker %s (%s)", name, id), notYet("InvalidInstanceID.NotFound", "IncorrectInstanceState"), func() error {
			_, err := c.EC2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}})
			return err
		})
		if err != nil {
			return nil, advise(err)
		}
		if err := c.waitStopped(ctx, id); err != nil {
			return nil, fmt.Errorf("wait for broker %s (%s) to stop: %w", name, id, advise(err))
		}
		c.logf("instance %s: stopped", id)
	}
	return c.describeInstance(ctx, id)
}

func (c *Cloud) startInstance(ctx context.Context, name string, inst types.Instance) (*types.Instance, error) {
	id := aws.ToString(inst.InstanceId)
	if s := stateName(inst); s == "stopping" {
		if err := c.waitStopped(ctx, id); err != nil {
			return nil, fmt.Errorf("wait for broker %s (%s) to finish stopping: %w", name, id, advise(err))
		}
	}
	if stateName(inst) != "running" {
		// Stopped a moment ago, the instance may still look stopping to
		// StartInstances (IncorrectInstanceState).
		err := c.untilVisible(ctx, fmt.Sprintf("start broker %s (%s)", name, id), notYet("InvalidInstanceID.NotFound", "IncorrectInstanceState"), func() error {
			_, err := c.EC2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
			return err
		})
		if err != nil {
			return nil, advise(err)
		}
	}
	out, err := c.waitRunning(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("wait for broker %s (%s) to run: %w", name, id, advise(err))
	}
	return out, nil
}

// waitStopped waits until instance id is stopped.
func (c *Cloud) waitStopped(ctx context.Context, id string) error {
	var watch instanceWatch
	w := ec2.NewInstanceStoppedWaiter(c.EC2, func(o *ec2.InstanceStoppedWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
		o.Retryable = watch.wrap(o.Retryable)
	})
	err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, c.waitTimeout())
	return watch.explain("instance "+id, err)
}

const (
	hostKeysBegin = "-----BEGIN SSH HOST KEY KEYS-----"
	hostKeysEnd   = "-----END SSH HOST KEY KEYS-----"
)

// ParseConsoleHostKeys returns the SSH host keys from the last complete
// "-----BEGIN SSH HOST KEY KEYS-----" block cloud-init writes to the serial
// console. No (complete) block yet: nil, nil. Lines may end in "\r\n" and
// carry a "ec2: " or kernel "[  12.3] " prefix; other lines interleaved in
// the block are skipped, but a line that names a key type and does not
// parse is an error, and so is a block with no key.
func ParseConsoleHostKeys(consoleOutput string) ([]ssh.PublicKey, error) {
	text := strings.ReplaceAll(consoleOutput, "\r", "")
	end := strings.LastIndex(text, hostKeysEnd)
	if end < 0 {
		return nil, nil
	}
	begin := strings.LastIndex(text[:end], hostKeysBegin)
	if begin < 0 {
		return nil, nil
	}
	var keys []ssh.PublicKey
	for _, line := range strings.Split(text[begin+len(hostKeysBegin):end], "\n") {
		line = strings.TrimSpace(line)
		i := keyTypeIndex(line)
		if i < 0 {
			continue
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line[i:]))
		if err != nil {
			return nil, fmt.Errorf("console host key line %q: %w", line, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("the console's SSH host key block holds no key")
	}
	return keys, nil
}

var hostKeyTypes = []string{"ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ecdsa-sha2-nistp384 ", "ecdsa-sha2-nistp521 ", "ssh-rsa ", "ssh-dss ",
	"sk-ssh-ed25519@openssh.com ", "sk-ecdsa-sha2-nistp256@openssh.com "}

func keyTypeIndex(line string) int {
	best := -1
	for _, t := range hostKeyTypes {
		if i := strings.Index(line, t); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// ConsoleHostKeys reads the instance's console output once and returns
// the host keys cloud-init printed there; nil, nil while they are not there
// yet. It asks for the latest output (Latest, which Nitro instances serve
// as it is written); an instance that refuses that (Xen-based types do) is
// read without it, from the buffered output EC2 posts some minutes after
// boot, and this Cloud does not ask for Latest again.
func (c *Cloud) ConsoleHostKeys(ctx context.Context, instanceID string) ([]ssh.PublicKey, error) {
	keys, _, err := c.readConsole(ctx, instanceID)
	return keys, err
}

// cloudInitFinished matches the line cloud-init prints on the console when
// its last stage ends ("Cloud-init v. 24.1 finished at ...").
var cloudInitFinished = regexp.MustCompile(`Cloud-init v\. \S+ finished at `)

// readConsole is ConsoleHostKeys that also tells whether cloud-init has
// finished without printing the keys (the image does not print them, so
// waiting longer is pointless).
func (c *Cloud) readConsole(ctx context.Context, instanceID string) ([]ssh.PublicKey, bool, error) {
	in := &ec2.GetConsoleOutputInput{InstanceId: aws.String(instanceID)}
	if !c.consoleNoLatest.Load() {
		in.Latest = aws.Bool(true)
	}
	out, err := c.EC2.GetConsoleOutput(ctx, in)
	if err != nil && in.Latest != nil && latestRefused(err) {
		c.logf("instance %s: GetConsoleOutput refused Latest (%s); reading the buffered console output instead", instanceID, errorCode(err))
		c.consoleNoLatest.Store(true)
		in.Latest = nil
		out, err = c.EC2.GetConsoleOutput(ctx, in)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the console output of %s: %w", instanceID, advise(err))
	}
	if aws.ToString(out.Output) == "" {
		return nil, false, nil
	}
	text, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		return nil, false, fmt.Errorf("decode the console output of %s: %w", instanceID, err)
	}
	keys, err := ParseConsoleHostKeys(string(text))
	if err != nil {
		return nil, false, fmt.Errorf("console output of %s: %w", instanceID, err)
	}
	return keys, len(keys) == 0 && cloudInitFinished.Match(text), nil
}

// latestRefused tells an answer to GetConsoleOutput with Latest that means
// "not for this instance type" from one that reading without Latest would
// get as well (no such instance, no permission).
func latestRefused(err error) bool {
	code := errorCode(err)
	return code != "" && !hasCode(err, "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed", "UnauthorizedOperation",
		"AuthFailure", "Blocked", "OptInRequired", "RequestLimitExceeded", "Throttling")
}

// DefaultConsoleTimeout is how long create waits for an instance's console
// output to show its SSH host keys. cloud-init prints them at the end of
// the first boot, a minute or two after "running" (later while the head
// start's apt work competes for a small instance's CPU); EC2 serves the
// latest output of Nitro instances within seconds of that, but posts other
// types' output only minutes later. Keys that come late are only a wait:
// the wait ends as soon as they show (or cloud-init says it finished
// without them), and the head start installs in the meantime, which the
// SSH run would wait for anyway. Keys that come after the timeout turn a
// verified host key into one trusted on first use, so the bound is
// generous: 5 minutes.
const DefaultConsoleTimeout = 5 * time.Minute

// ConsoleWait bounds WaitConsoleHostKeys.
type ConsoleWait struct {
	// Timeout is how long to keep reading; 0 reads once.
	Timeout time.Duration
	// Interval is the pause between reads (default 5s).
	Interval time.Duration
	// Waiting is told, before each pause, how long the wait has lasted
	// (for progress lines).
	Waiting func(waited time.Duration)
}

// WaitConsoleHostKeys reads the console output of instanceID until it shows
// the SSH host keys, for at most w.Timeout, and returns them; nil, nil when
// they did not appear in time, or cloud-init finished without printing them
// (an image that does not). An instance launched a moment ago may not be
// visible yet (InvalidInstanceID.NotFound): that is waited out too. Any
// other error ends the wait.
func (c *Cloud) WaitConsoleHostKeys(ctx context.Context, instanceID string, w ConsoleWait) ([]ssh.PublicKey, error) {
	interval := w.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	start := c.clock()
	for {
		keys, finished, err := c.readConsole(ctx, instanceID)
		switch {
		case err != nil && !hasCode(err, "InvalidInstanceID.NotFound"):
			return nil, err
		case len(keys) > 0:
			c.logf("instance %s: %d SSH host keys in the console output after %s", instanceID, len(keys), c.clock().Sub(start).Round(time.Second))
			return keys, nil
		case finished:
			c.logf("instance %s: cloud-init finished without printing SSH host keys on the console", instanceID)
			return nil, nil
		}
		waited := c.clock().Sub(start)
		if waited+interval > w.Timeout {
			c.logf("instance %s: no SSH host keys in the console output after %s", instanceID, waited.Round(time.Second))
			return nil, nil
		}
		if w.Waiting != nil {
			w.Waiting(waited)
		}
		if err := c.doSleep(ctx, interval); err != nil {
			return nil, err
		}
	}
}

// HostCIDR is the single-address CIDR of ip: /32 for IPv4, /128 for IPv6.
func HostCIDR(ip string) (string, error) {
	a := net.ParseIP(ip)
	if a == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	if a4 := a.To4(); a4 != nil {
		return a4.String() + "/32", nil
	}
	return a.String() + "/128", nil
}
