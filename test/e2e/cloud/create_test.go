// Package cloud_test proves `kafkaup create`, `stop`/`start` and `destroy`
// end to end on the local cloud (internal/testenv/localcloud): moto's EC2
// API behind a proxy that boots a real Debian VM under qemu when
// RunInstances asks for one. The VM runs cloud-init from a NoCloud seed
// (the user "ubuntu" with the imported key), posts its console output late,
// gets a public loopback address at launch and a new one after a stop and
// start, and is reachable only on the ports its security group opens.
// hostkeys_test.go runs the same cloud on namespace hosts (no VM) for what
// breaks SSH host keys: a console that shows other keys than the address
// presents, and an address handed from one instance to the next.
package cloud_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

const name = "demo"

// consoleDelay is how long after each boot the local cloud keeps the
// console output empty (EC2 posts it minutes after boot).
const consoleDelay = 60 * time.Second

func setup(t *testing.T) *env {
	if testing.Short() {
		t.Skip("end-to-end: moto and a VM under qemu (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	img, err := vm.BuildCloudImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One VM at a time: a second RunInstances fails with
	// InsufficientInstanceCapacity.
	e := startCloud(ctx, t, localcloud.Options{Backend: localcloud.VMs{Image: img}, ConsoleDelay: consoleDelay, Logf: t.Logf})
	// The VM reaches this machine's loopback at qemu's gateway.
	e.url = mirror.URLVia(0, "10.0.2.2", "4.0.0")
	return e
}

// createArgs are the flags of a create on the local cloud: everything else
// (the user, the address) is what it would be on AWS.
func (e *env) createArgs(extra ...string) []string {
	// cloud-init prints the host keys in its final stage: under TCG on a
	// loaded machine that came 3m47s after "running" (the default
	// --console-timeout is 4m, then create would trust on first use).
	// No --allow-cidr: kafkaup looks this machine's address up at the local
	// cloud's two caller-IP services (lc.Env), as it would on the internet.
	args := []string{"create", name, "--yes",
		"--ssh-key", e.key + ".pub", "--identity", e.key, "--address", "ip",
		"--ami-parameter", e.amiParam, "--kafka-url", e.url, "--console-timeout", "10m"}
	return append(args, extra...)
}

// liveHostKey is the host key sshd presents at addr:22.
func liveHostKey(t *testing.T, addr string) ssh.PublicKey {
	t.Helper()
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{User: "nobody", Auth: []ssh.AuthMethod{ssh.Password("x")}, Timeout: 30 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error { got = key; return nil }}
	if c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg); err == nil {
		c.Close()
	}
	if got == nil {
		t.Fatalf("no host key from %s:22", addr)
	}
	return got
}

// instance is the broker's instance as EC2 describes it now.
func (e *env) instance(ctx context.Context, t *testing.T) ec2types.Instance {
	t.Helper()
	found, err := e.cloud.Find(ctx, name)
	if err != nil || len(found.Instances) != 1 {
		t.Fatalf("instances of %s: %+v, %v", name, found, err)
	}
	out, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{found.Instances[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Reservations[0].Instances[0]
}

// publicIP is the broker's public address, which the local cloud puts on
// loopback.
func (e *env) publicIP(ctx context.Context, t *testing.T) string {
	t.Helper()
	ip := aws.ToString(e.instance(ctx, t).PublicIpAddress)
	if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
		t.Fatalf("public IP %q is not a loopback address of the local cloud", ip)
	}
	return ip
}

// leftovers is everything in moto still tagged as kafkaup's.
func (e *env) leftovers(ctx context.Context, t *testing.T) []string {
	t.Helper()
	var out []string
	tagged := []ec2types.Filter{{Name: aws.String("tag-key"), Values: []string{cloud.TagManaged}}}
	inst, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: tagged})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range inst.Reservations {
		for _, i := range r.Instances {
			if i.State.Name != ec2types.InstanceStateNameTerminated {
				out = append(out, "instance "+aws.ToString(i.InstanceId))
			}
		}
	}
	sgs, err := e.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: tagged})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range sgs.SecurityGroups {
		out = append(out, "security group "+aws.ToString(g.GroupId))
	}
	keys, err := e.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: tagged})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.KeyPairs {
		out = append(out, "key pair "+aws.ToString(k.KeyName))
	}
	addrs, err := e.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: tagged})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs.Addresses {
		out = append(out, "elastic ip "+aws.ToString(a.PublicIp))
	}
	return out
}

func TestCreateStopStartDestroy(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }
	var bootstrap string // the broker's public address, known once create launched it

	t.Run("bad input creates nothing", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{e.createArgs("--region", "xx-nowhere-9"), "region"},
			{append(e.createArgs()[:2], append([]string{"--allow-cidr", "10.0.0.300/32"}, e.createArgs()[2:]...)...), "10.0.0.300"},
			{e.createArgs("--instance-type", "t3.gigantic"), "t3.gigantic"},
			{append([]string{"create", "Bad_Name"}, e.createArgs()[2:]...), "Bad_Name"},
			{e.createArgs("--heap", "lots"), "--heap"},
			{e.createArgs("--ssh-key", "/nonexistent.pub"), "--ssh-key"},
		}
		for _, c := range cases {
			r := run(c.args...)
			if r.ExitCode == 0 || !strings.Contains(r.Stderr, c.want) {
				t.Errorf("want a failure mentioning %q:\n%s", c.want, r)
			}
		}
		// Missing credentials.
		noCreds := &harness.CLI{Bin: e.cli.Bin, Home: e.cli.Home, Key: e.cli.Key, KnownHosts: e.cli.KnownHosts,
			Env: append(append([]string{}, e.lc.Env()...), "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")}
		r := noCreds.Run(ctx, e.createArgs()...)
		if r.ExitCode == 0 || !strings.Contains(strings.ToLower(r.Stderr), "credentials") {
			t.Errorf("missing credentials:\n%s", r)
		}
		if left := e.leftovers(ctx, t); len(left) > 0 {
			t.Fatalf("bad input created %v", left)
		}
	})

	t.Run("dry run creates nothing", func(t *testing.T) {
		r := run(e.createArgs("--dry-run")...)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "Nothing was created") {
			t.Errorf("dry run:\n%s", r.Stdout)
		}
		if left := e.leftovers(ctx, t); len(left) > 0 {
			t.Fatalf("dry run created %v", left)
		}
	})

	// The broker is created with TLS and SCRAM: clients (kcat here) use the
	// settings kafkaup writes, and after the move to a new address below the
	// certificate follows.
	clientConf := filepath.Join(e.cli.Home, "secrets", name, "librdkafka.conf")
	t.Run("create: broker answers at the public address", func(t *testing.T) {
		r := run(e.createArgs("--topics", "orders,events", "--tls", "--auth", "scram")...)
		harness.MustSucceed(t, r)
		t.Logf("create:\n%s", r.Stderr)
		bootstrap = e.publicIP(ctx, t) + ":9092"
		// EC2 posts the console late (here consoleDelay after boot): create
		// waits for it and pins the host key from it, never on first use.
		if strings.Contains(r.Stderr, "on first use") || !strings.Contains(r.Stderr, "read from its console output") {
			t.Errorf("create did not pin the host key from the console output (posted %s after boot):\n%s", consoleDelay, r.Stderr)
		}
		if localcloud.CallerIPURLsEnv != cloud.CallerIPURLsEnv {
			t.Errorf("the local cloud names the caller-IP variable %s, kafkaup reads %s", localcloud.CallerIPURLsEnv, cloud.CallerIPURLsEnv)
		}
		if !strings.Contains(r.Stdout, "Bootstrap servers: "+bootstrap+" (SASL_SSL") || !strings.Contains(r.Stdout, "orders, events") ||
			!strings.Contains(r.Stdout, "kcat -F "+clientConf) {
			t.Errorf("create output:\n%s", r.Stdout)
		}
		md, err := harness.KcatConfig(ctx, clientConf, "", "-L")
		if err != nil || !strings.Contains(md, "broker 1 at "+bootstrap) || !strings.Contains(md, `topic "orders"`) {
			t.Errorf("kcat -L: %v\n%s", err, md)
			// What became of the broker that create had just verified.
			t.Logf("status:\n%s", run("status", name))
			t.Logf("broker log:\n%s", run("logs", name, "--lines", "60"))
			t.Logf("on the host:\n%s", run("ssh", name, "--", "sudo systemctl status kafka --no-pager; free -m; sudo dmesg | grep -i -E 'oom|killed process' | tail -5; sudo journalctl -u kafka --no-pager -n 20"))
		}
		if _, err := harness.KcatConfig(ctx, clientConf, "o1\no2\n", "-t", "orders", "-P"); err != nil {
			t.Fatal(err)
		}
		if md, err := harness.KcatMetadata(ctx, bootstrap); err == nil {
			t.Errorf("kcat without TLS and login listed the broker:\n%s", md)
		}
		harness.MustSucceed(t, run("status", name))
	})

	t.Run("what AWS holds: tags, security group, IMDSv2, encrypted gp3", func(t *testing.T) {
		found, err := e.cloud.Find(ctx, name)
		if err != nil || len(found.Instances) != 1 || len(found.SecurityGroups) != 1 || len(found.KeyPairs) != 1 {
			t.Fatalf("found %+v, %v", found, err)
		}
		sg, err := e.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{found.SecurityGroups[0].ID}})
		if err != nil {
			t.Fatal(err)
		}
		var rules []string
		for _, p := range sg.SecurityGroups[0].IpPermissions {
			for _, r := range p.IpRanges {
				rules = append(rules, aws.ToString(p.IpProtocol)+"/"+strconv.Itoa(int(aws.ToInt32(p.FromPort)))+"-"+strconv.Itoa(int(aws.ToInt32(p.ToPort)))+" "+aws.ToString(r.CidrIp))
			}
			if len(p.Ipv6Ranges) > 0 || len(p.UserIdGroupPairs) > 0 || len(p.PrefixListIds) > 0 {
				t.Errorf("unexpected ingress %+v", p)
			}
		}
		sort.Strings(rules)
		if strings.Join(rules, ",") != "tcp/22-22 127.0.0.1/32,tcp/9092-9092 127.0.0.1/32" {
			t.Errorf("ingress rules: %v", rules)
		}
		out, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{found.Instances[0].ID}})
		if err != nil {
			t.Fatal(err)
		}
		inst := out.Reservations[0].Instances[0]
		if inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens != ec2types.HttpTokensStateRequired {
			t.Errorf("IMDSv2 not required: %+v", inst.MetadataOptions)
		}
		vols, err := e.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{aws.ToString(inst.InstanceId)}}}})
		if err != nil || len(vols.Volumes) == 0 {
			t.Fatalf("volumes: %v", err)
		}
		if v := vols.Volumes[0]; v.VolumeType != ec2types.VolumeTypeGp3 || !aws.ToBool(v.Encrypted) {
			t.Errorf("root volume %s encrypted=%v", v.VolumeType, aws.ToBool(v.Encrypted))
		}
		if got := aws.ToString(inst.PublicIpAddress) + ":9092"; got != bootstrap {
			t.Errorf("public IP %s, want the bootstrap address %s", got, bootstrap)
		}
		// The image's own behaviour: cloud-init made the user and ran to the end.
		state, err := testssh.Run(ctx, testssh.Target{Addr: aws.ToString(inst.PublicIpAddress), User: "ubuntu", KeyPath: e.key},
			"cloud-init status; systemctl is-enabled unattended-upgrades apt-daily.timer")
		if err != nil || !strings.Contains(state, "status: done") {
			t.Errorf("cloud-init on the instance: %q, %v", state, err)
		}
		// The console output, posted late, holds the host key the
		// instance presents at its public address.
		var keys []ssh.PublicKey
		for deadline := time.Now().Add(consoleDelay + 2*time.Minute); len(keys) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Second) {
			if keys, err = e.cloud.ConsoleHostKeys(ctx, aws.ToString(inst.InstanceId)); err != nil {
				t.Fatal(err)
			}
		}
		live := liveHostKey(t, aws.ToString(inst.PublicIpAddress))
		listed := false
		for _, k := range keys {
			listed = listed || string(k.Marshal()) == string(live.Marshal())
		}
		if !listed {
			t.Errorf("the host key %s is not among the %d keys of the console output", ssh.FingerprintSHA256(live), len(keys))
		}
	})

	t.Run("rerunning create converges without creating more", func(t *testing.T) {
		r := run(e.createArgs()...)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing changed") {
			t.Errorf("rerun:\n%s", r)
		}
		found, _ := e.cloud.Find(ctx, name)
		if len(found.Instances) != 1 || len(found.SecurityGroups) != 1 {
			t.Errorf("rerun duplicated resources: %+v", found)
		}
	})

	t.Run("stop and start: a new public address, advertised listener follows, data kept", func(t *testing.T) {
		before := e.publicIP(ctx, t)
		r := run("stop", name)
		harness.MustSucceed(t, r)
		inst := e.instance(ctx, t)
		if inst.State.Name != ec2types.InstanceStateNameStopped || aws.ToString(inst.PublicIpAddress) != "" {
			t.Errorf("after stop: %s with public IP %q, want stopped without one", inst.State.Name, aws.ToString(inst.PublicIpAddress))
		}
		if lc := e.lc.Instance(aws.ToString(inst.InstanceId)); lc == nil || lc.Running() {
			t.Error("the VM still runs after kafkaup stop")
		}
		r = run("start", name)
		harness.MustSucceed(t, r)
		after := e.publicIP(ctx, t)
		if after == before {
			t.Fatalf("the instance came back at the same address %s: a start without an Elastic IP gives a new one", after)
		}
		newBootstrap := after + ":9092"
		if !strings.Contains(r.Stderr, "issued a broker certificate for "+after) {
			t.Errorf("no new certificate for the new address:\n%s", r.Stderr)
		}
		// kcat checks the certificate against the address it dials.
		md, err := harness.KcatConfig(ctx, clientConf, "", "-L")
		if err != nil || !strings.Contains(md, "broker 1 at "+newBootstrap) {
			t.Errorf("after start, kcat -L at %s: %v\n%s", newBootstrap, err, md)
		}
		got, err := harness.KcatConfig(ctx, clientConf, "", "-t", "orders", "-C", "-o", "beginning", "-e", "-q")
		if err != nil || strings.Join(strings.Fields(got), ",") != "o1,o2" {
			t.Errorf("messages after start: %q, %v", got, err)
		}
		r = run("env", name)
		if !strings.Contains(r.Stdout, "KAFKA_BOOTSTRAP_SERVERS="+newBootstrap+"\n") || !strings.Contains(r.Stdout, "KAFKA_SECURITY_PROTOCOL=SASL_SSL") {
			t.Errorf("env after start: %q", r.Stdout)
		}
	})

	t.Run("destroy works without the local state and leaves nothing", func(t *testing.T) {
		// An Elastic IP the user associated by hand is theirs: destroy
		// must not release it.
		eip, err := e.ec2.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: eip.AllocationId, InstanceId: e.instance(ctx, t).InstanceId}); err != nil {
			t.Fatal(err)
		}
		id := aws.ToString(e.instance(ctx, t).InstanceId)
		if err := os.Remove(filepath.Join(e.cli.Home, "brokers", name+".json")); err != nil {
			t.Fatal(err)
		}
		r := run("destroy", name, "--dry-run")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "instance") || !strings.Contains(r.Stdout, "Dry run") {
			t.Errorf("destroy --dry-run:\n%s", r.Stdout)
		}
		harness.MustFail(t, run("destroy", name), 2, "--yes")
		harness.MustSucceed(t, run("destroy", name, "--yes"))
		if left := e.leftovers(ctx, t); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
		if _, err := os.Stat(filepath.Dir(clientConf)); !os.IsNotExist(err) {
			t.Errorf("the broker's secrets outlive it: %v", err)
		}
		addrs, err := e.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{aws.ToString(eip.AllocationId)}})
		if err != nil || len(addrs.Addresses) != 1 {
			t.Errorf("the user's Elastic IP: %v, %v", addrs, err)
		}
		inst := e.lc.Instance(id)
		if err := inst.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		if inst.Running() {
			t.Error("the VM still runs after destroy")
		}
		r = run("destroy", name, "--yes")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "Nothing of broker demo is left") {
			t.Errorf("second destroy:\n%s", r.Stdout)
		}
	})
}
