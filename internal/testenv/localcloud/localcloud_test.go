package localcloud

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
)

// fixture is a started cloud with what a launch needs: an AMI, a key pair
// (the test key) and a security group open to 127.0.0.1 on 22.
type fixture struct {
	c      *Cloud
	ec2    *ec2.Client
	ami    string
	key    string // private key file
	keyPub string
	sg     string
}

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts moto and namespace hosts (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespace hosts, binding port 22 on 127.0.0.N")
	}
	if _, err := exec.LookPath("moto_server"); err != nil {
		t.Skip("moto_server not installed (test/deps.sh)")
	}
}

func start(t *testing.T, opts Options) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	cfg, err := c.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{c: c, ec2: ec2.NewFromConfig(cfg)}
	_, amis, err := c.Moto.PutAMIParameters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.ami = amis["amd64"]
	if f.key, err = testssh.EnsureKey(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(f.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f.keyPub = strings.TrimSpace(string(pub))
	if _, err := f.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("test"), PublicKeyMaterial: pub}); err != nil {
		t.Fatal(err)
	}
	sg, err := f.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("test"), Description: aws.String("test")})
	if err != nil {
		t.Fatal(err)
	}
	f.sg = aws.ToString(sg.GroupId)
	f.allow(t, 22)
	return f
}

func (f *fixture) allow(t *testing.T, port int32) {
	t.Helper()
	if _, err := f.ec2.AuthorizeSecurityGroupIngress(context.Background(), &ec2.AuthorizeSecurityGroupIngressInput{
		GroupId: aws.String(f.sg), IpPermissions: []ec2types.IpPermission{{IpProtocol: aws.String("tcp"),
			FromPort: aws.Int32(port), ToPort: aws.Int32(port), IpRanges: []ec2types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}}},
	}); err != nil {
		t.Fatal(err)
	}
}

// run launches one instance with userData and returns its id. Its
// security group is given on its network interface, as kafkaup does.
func (f *fixture) run(ctx context.Context, t *testing.T, userData string) string {
	t.Helper()
	in := f.runInput(userData)
	in.SecurityGroupIds = nil
	in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0),
		Groups: []string{f.sg}, AssociatePublicIpAddress: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}}
	out, err := f.ec2.RunInstances(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

func (f *fixture) runInput(userData string) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		ImageId: aws.String(f.ami), InstanceType: ec2types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String("test"), SecurityGroupIds: []string{f.sg},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte(userData))),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
			Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(16)}}},
	}
}

// describe returns the instance as DescribeInstances shows it, and fails
// the test if the answer shows a public address that is not loopback.
func (f *fixture) describe(ctx context.Context, t *testing.T, id string) ec2types.Instance {
	t.Helper()
	out, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	noLeak(t, out)
	return out.Reservations[0].Instances[0]
}

// noLeak fails the test if any public address or DNS name in a
// DescribeInstances answer is not on loopback.
func noLeak(t *testing.T, out *ec2.DescribeInstancesOutput) {
	t.Helper()
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			vals := []*string{in.PublicIpAddress, in.PublicDnsName}
			for _, ni := range in.NetworkInterfaces {
				if ni.Association != nil {
					vals = append(vals, ni.Association.PublicIp, ni.Association.PublicDnsName)
				}
				for _, p := range ni.PrivateIpAddresses {
					if p.Association != nil {
						vals = append(vals, p.Association.PublicIp, p.Association.PublicDnsName)
					}
				}
			}
			for _, v := range vals {
				s := aws.ToString(v)
				if m := ipInText.FindStringSubmatch(s); m != nil && m[1] != "127" {
					t.Errorf("instance %s: public address %q is not loopback", aws.ToString(in.InstanceId), s)
				}
			}
		}
	}
}

// waitState waits until DescribeInstances shows the instance in state.
func (f *fixture) waitState(ctx context.Context, t *testing.T, id string, state ec2types.InstanceStateName) ec2types.Instance {
	t.Helper()
	seen := map[ec2types.InstanceStateName]bool{}
	for {
		in := f.describe(ctx, t, id)
		seen[in.State.Name] = true
		if in.State.Name == state {
			t.Logf("%s: %s (states seen: %v)", id, state, seen)
			return in
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still %s, want %s", id, in.State.Name, state)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// console is what GetConsoleOutput returns, decoded.
func (f *fixture) console(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	out, err := f.ec2.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostKey is the host key sshd at addr:22 presents, "type base64".
func hostKey(t *testing.T, addr string) string {
	t.Helper()
	var got string
	cfg := &ssh.ClientConfig{User: "nobody", Auth: []ssh.AuthMethod{ssh.Password("x")}, Timeout: 20 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			return nil
		}}
	if c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg); err == nil {
		c.Close()
	}
	if got == "" {
		t.Fatalf("no host key from %s", addr)
	}
	return got
}

// consoleKeys are the lines of the last SSH HOST KEY KEYS block.
func consoleKeys(console string) []string {
	const begin, end = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
	i := strings.LastIndex(console, begin)
	j := strings.LastIndex(console, end)
	if i < 0 || j < i {
		return nil
	}
	var keys []string
	for _, l := range strings.Split(strings.ReplaceAll(console[i+len(begin):j], "\r", ""), "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			keys = append(keys, f[0]+" "+f[1])
		}
	}
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// silent reports whether a connection to addr is accepted and then says
// nothing for a second (a dropped connection, as a security group drops
// it), rather than answering or closing.
func silent(addr string) (bool, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = bufio.NewReader(conn).ReadByte()
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout(), err
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestNamespaceHostLifecycle launches an instance on a namespace host and
// follows it through everything EC2 does to it.
func TestNamespaceHostLifecycle(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := start(t, Options{Backend: NamespaceHosts{}, ConsoleDelay: 3 * time.Second})

	userData := "#!/bin/sh\necho boot >> /var/tmp/user-data-runs\nid -un > /var/tmp/user-data-user\n"
	id := f.run(ctx, t, userData)
	launched := time.Now()
	in := f.describe(ctx, t, id)
	pub := aws.ToString(in.PublicIpAddress)
	if ip := net.ParseIP(pub); ip == nil || !ip.IsLoopback() {
		t.Fatalf("public IP %q, want a loopback address of the cloud", pub)
	}
	if want := "ec2-" + strings.ReplaceAll(pub, ".", "-") + "."; !strings.HasPrefix(aws.ToString(in.PublicDnsName), want) {
		t.Errorf("public DNS name %q, want %s...", aws.ToString(in.PublicDnsName), want)
	}
	if got := f.console(ctx, t, id); got != "" {
		t.Errorf("console output right after launch: %q, want none yet", got)
	}
	for name, value := range map[string]string{"ip-address": pub, "dns-name": aws.ToString(in.PublicDnsName)} {
		out, err := f.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		if err != nil || len(out.Reservations) != 1 {
			t.Errorf("filter %s=%s: %d reservations, %v", name, value, len(out.Reservations), err)
		}
	}
	f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning)

	// The key pair's key logs in as ubuntu at the public address, with
	// sudo; the user-data ran once, as root.
	target := testssh.Target{Addr: pub, User: DefaultUser, KeyPath: f.key}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	t.Logf("ssh as %s@%s after %s", DefaultUser, pub, time.Since(launched).Round(10*time.Millisecond))
	inst := f.c.Instance(id)
	hostname := inst.Spec().Hostname
	if got, err := testssh.Run(ctx, target, "hostname; sudo -n id -un"); err != nil || got != hostname+"\nroot\n" {
		t.Errorf("hostname and sudo: %q, %v (want %s, root)", got, err, hostname)
	}
	waitFile := func(path, want string) {
		t.Helper()
		for {
			got, _ := testssh.Run(ctx, target, "cat "+path+" 2>/dev/null")
			if got == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s = %q, want %q; console:\n%s", path, got, want, inst.Console())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	waitFile("/var/tmp/user-data-user", "root\n")

	// The console output comes after the delay, with the host keys sshd
	// presents at the public address.
	for time.Since(launched) < 3*time.Second {
		if got := f.console(ctx, t, id); got != "" && time.Since(launched) < 2500*time.Millisecond {
			t.Fatalf("console output %s after launch, before the 3s delay", time.Since(launched))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var console string
	for console = f.console(ctx, t, id); len(consoleKeys(console)) == 0; console = f.console(ctx, t, id) {
		if ctx.Err() != nil {
			t.Fatalf("no host keys in the console output:\n%s", console)
		}
		time.Sleep(200 * time.Millisecond)
	}
	live := hostKey(t, pub)
	if !contains(consoleKeys(console), live) {
		t.Fatalf("sshd's key %s is not in the console's block %v", live, consoleKeys(console))
	}

	// Security groups: 9092 is not open, so a connection hangs; once a
	// rule allows it, it reaches the host.
	if _, err := inst.NamespaceHost().Run(ctx, "setsid python3 -m http.server 9092 >/dev/null 2>&1 < /dev/null &"); err != nil {
		t.Fatal(err)
	}
	if hung, err := silent(pub + ":9092"); !hung {
		t.Errorf("9092 without a rule: want a silent connection, got %v", err)
	}
	f.allow(t, 9092)
	var got string
	for i := 0; i < 50; i++ {
		if out, err := exec.CommandContext(ctx, "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://"+pub+":9092/").Output(); err == nil {
			if got = string(out); got == "200" {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != "200" {
		t.Errorf("9092 with a rule: HTTP %q", got)
	}

	// Stop: stopping until the host is down, then stopped, without a
	// public address. A start while stopping is refused like EC2 does.
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	stopped := f.waitState(ctx, t, id, ec2types.InstanceStateNameStopped)
	if a := aws.ToString(stopped.PublicIpAddress); a != "" {
		t.Errorf("stopped instance has public IP %q", a)
	}
	if inst.Running() {
		t.Error("the namespace host still runs after the stop")
	}
	if _, err := net.DialTimeout("tcp", pub+":22", time.Second); err == nil {
		t.Errorf("%s:22 still answers after the stop", pub)
	}

	// Start: a new public address, the same disk and host keys, and the
	// user-data does not run again.
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	started := f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning)
	pub2 := aws.ToString(started.PublicIpAddress)
	if pub2 == pub || net.ParseIP(pub2) == nil || !net.ParseIP(pub2).IsLoopback() {
		t.Fatalf("public IP after start %q (before %s): want a new loopback address", pub2, pub)
	}
	target.Addr = pub2
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	if again := hostKey(t, pub2); again != live {
		t.Errorf("host key changed across stop and start: %s -> %s", live, again)
	}
	waitFile("/var/tmp/user-data-runs", "boot\n")
	if inst.Boots() != 2 {
		t.Errorf("boots = %d, want 2", inst.Boots())
	}

	// Terminate: the host and its disk go.
	host := inst.NamespaceHost()
	if _, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	gone := f.waitState(ctx, t, id, ec2types.InstanceStateNameTerminated)
	if a := aws.ToString(gone.PublicIpAddress); a != "" {
		t.Errorf("terminated instance has public IP %q", a)
	}
	if err := inst.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if inst.Running() || inst.NamespaceHost() != nil {
		t.Error("the namespace host still runs after the termination")
	}
	if _, err := os.Stat(filepath.Join("/run/netns", host.NetNS)); !os.IsNotExist(err) {
		t.Errorf("network namespace %s still there: %v", host.NetNS, err)
	}
	if _, err := os.Stat(inst.Spec().Dir); !os.IsNotExist(err) {
		t.Errorf("instance directory %s still there: %v", inst.Spec().Dir, err)
	}
	if err := inst.Err(); err != nil {
		t.Errorf("backend error: %v", err)
	}
}

// TestElasticIPAndCapacity: Elastic IPs live on loopback and reach the
// instance they are associated with, across a stop and start; more
// instances than MaxRunning are refused as EC2 refuses them.
func TestElasticIPAndCapacity(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := start(t, Options{Backend: NamespaceHosts{}, MaxRunning: 1, LatestConsoleUnsupported: true})

	if _, err := f.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc, Address: aws.String("54.1.2.3")}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("an Elastic IP at 54.1.2.3: %v, want InvalidParameterValue", err)
	}
	eip, err := f.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
	if err != nil {
		t.Fatal(err)
	}
	addr := aws.ToString(eip.PublicIp)
	if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
		t.Fatalf("Elastic IP %q is not on loopback", addr)
	}

	out, err := f.ec2.RunInstances(ctx, f.runInput("")) // groups given as SecurityGroupIds
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	if _, err := f.ec2.RunInstances(ctx, f.runInput("")); apiCode(err) != "InsufficientInstanceCapacity" {
		t.Errorf("a second instance with MaxRunning 1: %v, want InsufficientInstanceCapacity", err)
	}
	if _, err := f.ec2.GetConsoleOutput(ctx, &ec2.GetConsoleOutputInput{InstanceId: aws.String(id), Latest: aws.Bool(true)}); apiCode(err) != "UnsupportedOperation" {
		t.Errorf("GetConsoleOutput Latest=true: %v, want UnsupportedOperation", err)
	}
	if _, err := f.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress); got != addr {
		t.Fatalf("public IP %q, want the Elastic IP %s", got, addr)
	}
	target := testssh.Target{Addr: addr, User: DefaultUser, KeyPath: f.key}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	f.waitState(ctx, t, id, ec2types.InstanceStateNameStopped)
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress); got != addr {
		t.Fatalf("public IP after start %q, want the Elastic IP %s", got, addr)
	}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	// Without the Elastic IP, the instance gets an address of its own.
	if _, err := f.ec2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{PublicIp: aws.String(addr)}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.describe(ctx, t, id).PublicIpAddress); got == addr {
		t.Errorf("public IP still the Elastic IP %s after disassociating it", got)
	} else {
		t.Logf("after disassociating the Elastic IP: public IP %q", got)
	}
	if _, err := f.ec2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: eip.AllocationId}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr+":22", time.Second); err == nil {
		t.Errorf("released Elastic IP %s still answers", addr)
	}
}

func TestRewrite(t *testing.T) {
	const answer = `<?xml version="1.0" encoding="utf-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><networkInterfaceSet><item><association><publicDnsName>ip-54-214-1-2.ec2.internal</publicDnsName><publicIp>54.214.1.2</publicIp></association></item></networkInterfaceSet><instanceState><code>16</code><name>running</name></instanceState><dnsName>ec2-54-214-1-2.compute-1.amazonaws.com</dnsName><ipAddress>54.214.1.2</ipAddress><privateIpAddress>172.31.1.2</privateIpAddress><tagSet><item><key>a&amp;b</key><value>x &lt; y</value></item></tagSet><reason/></item></instancesSet></item></reservationSet><requestId>r</requestId></DescribeInstancesResponse>`
	tree, err := parseXML([]byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	item := tree.instances()[0]
	replaceAddr(item, "54.214.1.2", "127.0.0.9")
	setState(item.child("instanceState"), phaseStopping)
	out := string(writeXML(tree))
	for _, want := range []string{`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15">`,
		"<ipAddress>127.0.0.9</ipAddress>", "<dnsName>ec2-127-0-0-9.compute-1.amazonaws.com</dnsName>",
		"<publicIp>127.0.0.9</publicIp>", "<code>64</code><name>stopping</name>", "<key>a&amp;b</key><value>x &lt; y</value>",
		"<privateIpAddress>172.31.1.2</privateIpAddress>", "<reason/>"} {
		if !strings.Contains(out, want) {
			t.Errorf("rewritten answer lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "54") {
		t.Errorf("moto's address survived:\n%s", out)
	}
	// With no public address, the elements go empty; the leak guard
	// empties any other public address.
	tree, _ = parseXML([]byte(answer))
	replaceAddr(tree.instances()[0], "54.214.1.2", "")
	c := &Cloud{logf: t.Logf, instances: map[string]*Instance{}}
	tree.instances()[0].child("ipAddress").text = "54.9.9.9"
	c.rewrite(tree)
	if out := string(writeXML(tree)); strings.Contains(out, "54") || !strings.Contains(out, "<ipAddress/>") {
		t.Errorf("public addresses left:\n%s", out)
	}
}

// TestNamespaceHostBoothook: a #cloud-boothook user-data runs as root
// before the default user exists, on every boot, with INSTANCE_ID set.
func TestNamespaceHostBoothook(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := start(t, Options{Backend: NamespaceHosts{}})
	id := f.run(ctx, t, "#cloud-boothook\n#!/bin/sh\n"+
		"echo \"$(id -un) user:$(id -u ubuntu >/dev/null 2>&1 && echo yes || echo no) id:${INSTANCE_ID:+set}\" >> /var/tmp/boothook-runs\n")
	pub := aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress)
	target := testssh.Target{Addr: pub, User: DefaultUser, KeyPath: f.key}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	if got, err := testssh.Run(ctx, target, "cat /var/tmp/boothook-runs"); err != nil || got != "root user:no id:set\n" {
		t.Errorf("boothook runs: %q, %v", got, err)
	}
}

// TestShutdownFromInside: an instance whose machine goes off by itself is
// stopped, as EC2 stops one shut down from inside, and starts again.
func TestShutdownFromInside(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := start(t, Options{Backend: NamespaceHosts{}})
	id := f.run(ctx, t, "")
	pub := aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress)
	target := testssh.Target{Addr: pub, User: DefaultUser, KeyPath: f.key}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	// sshd is what keeps a namespace host up: its end is the host's.
	_, _ = testssh.Run(ctx, target, "sudo -n sh -c 'kill $(cat /run/sshd.pid)'")
	in := f.waitState(ctx, t, id, ec2types.InstanceStateNameStopped)
	if a := aws.ToString(in.PublicIpAddress); a != "" {
		t.Errorf("stopped instance has public IP %q", a)
	}
	if f.c.Instance(id).Running() {
		t.Error("the cloud still counts the machine as running")
	}
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	target.Addr = aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress)
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
}

// TestNamespaceHostsPrivateLAN: with a LAN, three instances launched in
// three default subnets reach each other at the private IPs moto gave
// them (as instances of one VPC), still reached from here at their
// public addresses; a stopped and started instance is back at the same
// private IP.
func TestNamespaceHostsPrivateLAN(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	lan, err := nshost.NewLAN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lan.Close() })
	f := start(t, Options{Backend: NamespaceHosts{LAN: lan}})
	subs, err := f.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("default-for-az"), Values: []string{"true"}}}})
	if err != nil || len(subs.Subnets) < 3 {
		t.Fatalf("default subnets: %v, %v", subs, err)
	}
	var ids, privs []string
	var targets []testssh.Target
	for i := 0; i < 3; i++ {
		in := f.runInput("")
		in.SecurityGroupIds = nil
		in.NetworkInterfaces = []ec2types.InstanceNetworkInterfaceSpecification{{DeviceIndex: aws.Int32(0), SubnetId: subs.Subnets[i].SubnetId,
			Groups: []string{f.sg}, AssociatePublicIpAddress: aws.Bool(true), DeleteOnTermination: aws.Bool(true)}}
		out, err := f.ec2.RunInstances(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, aws.ToString(out.Instances[0].InstanceId))
	}
	for _, id := range ids {
		inst := f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning)
		privs = append(privs, aws.ToString(inst.PrivateIpAddress))
		target := testssh.Target{Addr: aws.ToString(inst.PublicIpAddress), User: DefaultUser, KeyPath: f.key}
		if err := testssh.WaitLogin(ctx, target); err != nil {
			t.Fatal(err)
		}
		targets = append(targets, target)
	}
	t.Logf("private addresses %v in subnets of %s, %s, %s", privs, aws.ToString(subs.Subnets[0].AvailabilityZone),
		aws.ToString(subs.Subnets[1].AvailabilityZone), aws.ToString(subs.Subnets[2].AvailabilityZone))
	reach := func(from int) {
		t.Helper()
		for to, ip := range privs {
			if to == from {
				continue
			}
			if _, err := testssh.Run(ctx, targets[from], "timeout 5 bash -c 'echo >/dev/tcp/"+ip+"/22'"); err != nil {
				t.Errorf("instance %d cannot reach instance %d at %s:22: %v", from+1, to+1, ip, err)
			}
		}
	}
	for i := range ids {
		if got, err := testssh.Run(ctx, targets[i], "ip -4 -o addr show dev eth1"); err != nil || !strings.Contains(got, privs[i]+"/16") {
			t.Errorf("instance %d's eth1: %q, %v", i+1, got, err)
		}
		reach(i)
	}
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	f.waitState(ctx, t, ids[0], ec2types.InstanceStateNameStopped)
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids[:1]}); err != nil {
		t.Fatal(err)
	}
	inst := f.waitState(ctx, t, ids[0], ec2types.InstanceStateNameRunning)
	if aws.ToString(inst.PrivateIpAddress) != privs[0] {
		t.Errorf("private address after start %s, was %s", aws.ToString(inst.PrivateIpAddress), privs[0])
	}
	targets[0].Addr = aws.ToString(inst.PublicIpAddress)
	if err := testssh.WaitLogin(ctx, targets[0]); err != nil {
		t.Fatal(err)
	}
	reach(0)
	reach(1)
}

// TestReplaceHostKeys: SetConsoleHostKeys puts its keys in place of the
// lines of each SSH HOST KEY KEYS block and leaves the rest of the console
// as it was.
func TestReplaceHostKeys(t *testing.T) {
	console := "boot\r\n-----BEGIN SSH HOST KEY KEYS-----\r\nssh-ed25519 AAAAold1\r\nssh-rsa AAAAold2\r\n-----END SSH HOST KEY KEYS-----\r\nCloud-init finished\r\n"
	got := replaceHostKeys(console, []string{"ssh-ed25519 AAAAforged"})
	want := "boot\r\n-----BEGIN SSH HOST KEY KEYS-----\r\nssh-ed25519 AAAAforged\r\n-----END SSH HOST KEY KEYS-----\r\nCloud-init finished\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if keys := consoleKeys(got); len(keys) != 1 || keys[0] != "ssh-ed25519 AAAAforged" {
		t.Errorf("keys in the forged console: %v", keys)
	}
	if got := replaceHostKeys("no block yet", []string{"ssh-ed25519 AAAAforged"}); got != "no block yet" {
		t.Errorf("a console without the block: %q", got)
	}
}
