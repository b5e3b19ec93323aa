package localcloud

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
)

// TestVMInstance launches an instance on a VM from the Cloud image: the
// console output is empty until the delay has passed, then holds the real
// host key block cloud-init printed; the key pair's key logs in as ubuntu;
// the vendor-data makes apt's daily jobs run at first boot; a stop and
// start gives a new address and keeps disk and host keys; a termination
// removes the VM. It costs a VM boot and a reboot (several
// minutes under TCG): `make test-harness` runs it, and test/e2e/cloud
// covers the VM backend on every CI run.
func TestVMInstance(t *testing.T) {
	needRoot(t)
	if os.Getenv("KAFKAUP_VM_SELFTEST") == "" {
		t.Skip("harness self-test: run with KAFKAUP_VM_SELFTEST=1 (make test-harness)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	img, err := vm.BuildCloudImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 45 * time.Second
	f := start(t, Options{Backend: VMs{Image: img}, ConsoleDelay: delay, VendorData: VendorDataAPTAtFirstBoot})

	id := f.run(ctx, t, "#cloud-config\nruncmd:\n  - [sh, -c, 'id -un > /var/tmp/user-data-user']\n")
	launched := time.Now()
	pub := aws.ToString(f.describe(ctx, t, id).PublicIpAddress)
	inst := f.c.Instance(id)
	target := testssh.Target{Addr: pub, User: DefaultUser, KeyPath: f.key}
	for time.Since(launched) < delay-5*time.Second {
		if got := f.console(ctx, t, id); got != "" {
			t.Fatalf("console output %s after launch, before the %s delay:\n%s", time.Since(launched), delay, got)
		}
		time.Sleep(2 * time.Second)
	}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, inst.Console())
	}
	t.Logf("launch to SSH as ubuntu at %s: %s", pub, time.Since(launched).Round(100*time.Millisecond))
	out, err := testssh.Run(ctx, target, "cloud-init status --wait >/dev/null; cat /var/tmp/user-data-user; sudo -n id -un")
	if err != nil || out != "root\nroot\n" {
		t.Errorf("user-data and sudo: %q, %v", out, err)
	}
	t.Logf("cloud-init done %s after launch", time.Since(launched).Round(100*time.Millisecond))
	console := f.console(ctx, t, id)
	live := hostKey(t, pub)
	if !contains(consoleKeys(console), live) {
		t.Fatalf("sshd's key %s is not in the console's block %v", live, consoleKeys(console))
	}
	if !strings.Contains(console, "-----BEGIN SSH HOST KEY FINGERPRINTS-----") {
		t.Error("no fingerprint block in the console output")
	}
	if got, err := testssh.Run(ctx, target, "free -m | awk '/^Mem:/ {print $2}'"); err == nil {
		t.Logf("t3.micro guest memory: %s MiB", strings.TrimSpace(got))
	}
	// VendorDataAPTAtFirstBoot: apt's daily jobs were started at boot (the
	// upgrade waits for the update: started, or still queued).
	for _, unit := range []string{"apt-daily.service", "apt-daily-upgrade.service"} {
		got, err := testssh.Run(ctx, target, "systemctl show -p InvocationID --value "+unit+"; systemctl list-jobs --no-legend "+unit)
		if err != nil || strings.TrimSpace(got) == "" {
			t.Errorf("%s neither started nor queued at first boot: %q, %v", unit, got, err)
		}
		t.Logf("%s: %s", unit, strings.Join(strings.Fields(got), " "))
	}

	begin := time.Now()
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	f.waitState(ctx, t, id, ec2types.InstanceStateNameStopped)
	t.Logf("stop took %s", time.Since(begin).Round(100*time.Millisecond))
	begin = time.Now()
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	pub2 := aws.ToString(f.waitState(ctx, t, id, ec2types.InstanceStateNameRunning).PublicIpAddress)
	if pub2 == pub || net.ParseIP(pub2) == nil || !net.ParseIP(pub2).IsLoopback() {
		t.Fatalf("public IP after start %q (before %s): want a new loopback address", pub2, pub)
	}
	target.Addr = pub2
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	t.Logf("start to SSH at %s: %s", pub2, time.Since(begin).Round(100*time.Millisecond))
	if again := hostKey(t, pub2); again != live {
		t.Errorf("host key changed across stop and start: %s -> %s", live, again)
	}

	v := inst.VM()
	if _, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	f.waitState(ctx, t, id, ec2types.InstanceStateNameTerminated)
	select {
	case <-v.Exited():
	case <-time.After(30 * time.Second):
		t.Error("qemu still runs after the termination")
	}
	if _, err := os.Stat(inst.Spec().Dir); !os.IsNotExist(err) {
		t.Errorf("instance directory %s still there: %v", inst.Spec().Dir, err)
	}
}
