package cloud

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/crypto/ssh"
)

const (
	edKey    = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFFcXXktwI4lNqxGSmk4AwZVU9dEdETDC7b6oTFnxl0 root@ip-172-31-0-4"
	ecdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBs9blFlW86WtD5q/M6avpvwQ7Tl4TVpVcSCEmfwzn65Uy96xFQjEzD9iDf/Fsv0KOvNPEaAGW6KdfJY8qi9YP4= root@ip-172-31-0-4"
)

func TestParseConsoleHostKeys(t *testing.T) {
	cloudInit := "[   10.1] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final'\r\n" +
		"ec2: #############################################################\r\n" +
		"ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n" +
		"ec2: 256 SHA256:abc root@ip-172-31-0-4 (ED25519)\r\n" +
		"ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n" +
		"ec2: #############################################################\r\n" +
		"-----BEGIN SSH HOST KEY KEYS-----\r\n" + ecdsaKey + "\r\n" + edKey + "\r\n-----END SSH HOST KEY KEYS-----\r\n" +
		"[   11.0] cloud-init[812]: Cloud-init v. 24.1 finished\r\n"
	keys, err := ParseConsoleHostKeys(cloudInit)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Type() != "ecdsa-sha2-nistp256" || keys[1].Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("keys %v", keys)
	}

	// Two boots: the last block wins; prefixes and interleaved lines.
	twice := "-----BEGIN SSH HOST KEY KEYS-----\n" + ecdsaKey + "\n-----END SSH HOST KEY KEYS-----\n" +
		"reboot\n-----BEGIN SSH HOST KEY KEYS-----\r\n[   3.2] random: crng init done\r\nec2: " + edKey + "\r\n-----END SSH HOST KEY KEYS-----\r\n"
	keys, err = ParseConsoleHostKeys(twice)
	if err != nil || len(keys) != 1 || keys[0].Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("last block: %v %v", keys, err)
	}

	for name, text := range map[string]string{
		"no block":     "Linux version 2.6.16-xenU\nlogin:",
		"begin only":   "-----BEGIN SSH HOST KEY KEYS-----\n" + edKey + "\n",
		"end only":     edKey + "\n-----END SSH HOST KEY KEYS-----\n",
		"empty string": "",
	} {
		if keys, err := ParseConsoleHostKeys(text); keys != nil || err != nil {
			t.Errorf("%s: %v %v, want nil nil", name, keys, err)
		}
	}
	for name, text := range map[string]string{
		"bad key":     "-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA!!notbase64 root@x\n-----END SSH HOST KEY KEYS-----\n",
		"empty block": "-----BEGIN SSH HOST KEY KEYS-----\n\n-----END SSH HOST KEY KEYS-----\n",
	} {
		if _, err := ParseConsoleHostKeys(text); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// The local VM writes the same block as cloud-init (see
// internal/testenv/vm/image/plain.sh, for the plain image; the cloud image runs cloud-init itself); its serial log is used when the
// VM image is cached.
func TestParseConsoleHostKeysVMFixture(t *testing.T) {
	const customize = "../../internal/testenv/vm/image/plain.sh"
	data, err := os.ReadFile(customize)
	if err != nil {
		t.Skipf("no VM image script: %v", err)
	}
	if !strings.Contains(string(data), hostKeysBegin) || !strings.Contains(string(data), hostKeysEnd) {
		t.Fatalf("%s no longer prints %q ... %q: the parser and the VM disagree", customize, hostKeysBegin, hostKeysEnd)
	}
}

// fakeEC2 implements the methods a test sets; any other call panics.
type fakeEC2 struct {
	EC2API
	consoleOutput func(*ec2.GetConsoleOutputInput) (*ec2.GetConsoleOutputOutput, error)
}

func (f *fakeEC2) GetConsoleOutput(_ context.Context, in *ec2.GetConsoleOutputInput, _ ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error) {
	return f.consoleOutput(in)
}

func TestConsoleHostKeys(t *testing.T) {
	out := ""
	c := &Cloud{EC2: &fakeEC2{consoleOutput: func(in *ec2.GetConsoleOutputInput) (*ec2.GetConsoleOutputOutput, error) {
		if aws.ToString(in.InstanceId) != "i-1" {
			t.Fatalf("instance %s", aws.ToString(in.InstanceId))
		}
		if !aws.ToBool(in.Latest) {
			t.Errorf("read without Latest")
		}
		return &ec2.GetConsoleOutputOutput{Output: aws.String(out)}, nil
	}}}
	ctx := context.Background()
	if keys, err := c.ConsoleHostKeys(ctx, "i-1"); keys != nil || err != nil {
		t.Fatalf("no output yet: %v %v", keys, err)
	}
	out = base64.StdEncoding.EncodeToString([]byte("booting\r\n"))
	if keys, err := c.ConsoleHostKeys(ctx, "i-1"); keys != nil || err != nil {
		t.Fatalf("no block yet: %v %v", keys, err)
	}
	out = base64.StdEncoding.EncodeToString([]byte("-----BEGIN SSH HOST KEY KEYS-----\r\n" + edKey + "\r\n-----END SSH HOST KEY KEYS-----\r\n"))
	keys, err := c.ConsoleHostKeys(ctx, "i-1")
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	out = "%%%"
	if _, err := c.ConsoleHostKeys(ctx, "i-1"); err == nil {
		t.Fatal("bad base64: want an error")
	}
}

// consoleScript is an instance's console as GetConsoleOutput serves it,
// read after read: nothing, then cloud-init's first lines, the block cut
// off, then the whole block.
type consoleScript struct {
	t          *testing.T
	refuse     string // answer this code to any read with Latest
	notFound   int    // answer InvalidInstanceID.NotFound to the first reads
	fail       string // answer this code to every read
	outputs    []string
	reads      int
	withLatest int
}

func (s *consoleScript) read(in *ec2.GetConsoleOutputInput) (*ec2.GetConsoleOutputOutput, error) {
	s.reads++
	if aws.ToBool(in.Latest) {
		s.withLatest++
		if s.refuse != "" {
			return nil, &smithy.GenericAPIError{Code: s.refuse, Message: "the latest console output is not supported for this instance type"}
		}
	}
	switch {
	case s.fail != "":
		return nil, &smithy.GenericAPIError{Code: s.fail, Message: "injected"}
	case s.notFound > 0:
		s.notFound--
		return nil, &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound", Message: "not yet"}
	case len(s.outputs) == 0:
		return &ec2.GetConsoleOutputOutput{}, nil
	}
	text := s.outputs[0]
	if len(s.outputs) > 1 {
		s.outputs = s.outputs[1:]
	}
	return &ec2.GetConsoleOutputOutput{Output: aws.String(base64.StdEncoding.EncodeToString([]byte(text)))}, nil
}

func fakeClockCloud(api EC2API) (*Cloud, *[]time.Duration) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var slept []time.Duration
	c := &Cloud{EC2: api}
	c.now = func() time.Time { return now }
	c.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil }
	return c, &slept
}

// TestWaitConsoleHostKeys: the console is read until the whole block is
// there (with Latest), with progress before each pause; an instance type
// that refuses Latest is read without it from then on; a console without
// the block ends the wait at the timeout with no keys; an instance not
// visible yet is waited for; a refused permission ends the wait at once.
func TestWaitConsoleHostKeys(t *testing.T) {
	block := "ec2: -----BEGIN SSH HOST KEY KEYS-----\r\nec2: " + ecdsaKey + "\r\nec2: " + edKey + "\r\nec2: -----END SSH HOST KEY KEYS-----\r\n"
	boot := "[    0.000000] Linux version 6.8.0-1015-aws\r\n"
	ctx := context.Background()

	t.Run("block appears after a while", func(t *testing.T) {
		s := &consoleScript{t: t, outputs: []string{"", boot, boot + block[:60], boot + block}}
		c, slept := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
		var waits []time.Duration
		keys, err := c.WaitConsoleHostKeys(ctx, "i-1", ConsoleWait{Timeout: time.Minute, Interval: 5 * time.Second,
			Waiting: func(d time.Duration) { waits = append(waits, d) }})
		if err != nil || len(keys) != 2 {
			t.Fatalf("keys %v, %v", keys, err)
		}
		if s.reads != 4 || s.withLatest != 4 || len(*slept) != 3 || fmt.Sprint(waits) != "[0s 5s 10s]" {
			t.Errorf("reads %d (with Latest %d), pauses %v, progress %v", s.reads, s.withLatest, *slept, waits)
		}
	})
	t.Run("Latest refused: read without it", func(t *testing.T) {
		s := &consoleScript{t: t, refuse: "UnsupportedOperation", outputs: []string{boot, boot + block}}
		c, _ := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
		keys, err := c.WaitConsoleHostKeys(ctx, "i-1", ConsoleWait{Timeout: time.Minute})
		if err != nil || len(keys) != 2 {
			t.Fatalf("keys %v, %v", keys, err)
		}
		if s.withLatest != 1 || s.reads != 3 {
			t.Errorf("reads %d, with Latest %d: want Latest asked once", s.reads, s.withLatest)
		}
	})
	t.Run("no block: bounded, no keys", func(t *testing.T) {
		s := &consoleScript{t: t, notFound: 2, outputs: []string{boot}}
		c, slept := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
		keys, err := c.WaitConsoleHostKeys(ctx, "i-1", ConsoleWait{Timeout: 30 * time.Second, Interval: 10 * time.Second})
		if err != nil || keys != nil {
			t.Fatalf("keys %v, %v", keys, err)
		}
		var total time.Duration
		for _, d := range *slept {
			total += d
		}
		if s.reads != 4 || total != 30*time.Second {
			t.Errorf("reads %d over %s, want 4 over the 30s allowed", s.reads, total)
		}
	})
	t.Run("cloud-init finished without printing them: no more waiting", func(t *testing.T) {
		done := boot + "[   41.5] cloud-init[901]: Cloud-init v. 24.1.3 finished at Tue, 01 Dec 2026 10:01:02 +0000. Datasource DataSourceEc2Local.  Up 41.40 seconds\r\n"
		s := &consoleScript{t: t, outputs: []string{boot, done}}
		c, _ := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
		keys, err := c.WaitConsoleHostKeys(ctx, "i-1", ConsoleWait{Timeout: 4 * time.Minute})
		if err != nil || keys != nil || s.reads != 2 {
			t.Errorf("keys %v, %v after %d reads", keys, err, s.reads)
		}
	})
	t.Run("no permission: at once, not retried without Latest", func(t *testing.T) {
		s := &consoleScript{t: t, fail: "UnauthorizedOperation"}
		c, _ := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
		_, err := c.WaitConsoleHostKeys(ctx, "i-1", ConsoleWait{Timeout: time.Minute})
		if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") || s.reads != 1 {
			t.Errorf("err %v after %d reads", err, s.reads)
		}
	})
}

// TestConsoleKeysPostedLateWithinDefault: an instance whose console shows
// the host keys 4m35s after running (an older instance type posting its
// output late, or a slow first boot: under emulation cloud-init printed
// them 3m47s after running) is still waited for with the default timeout,
// so create verifies the host key instead of trusting it on first use.
func TestConsoleKeysPostedLateWithinDefault(t *testing.T) {
	block := "ec2: -----BEGIN SSH HOST KEY KEYS-----\r\nec2: " + edKey + "\r\nec2: -----END SSH HOST KEY KEYS-----\r\n"
	late := 4*time.Minute + 35*time.Second
	s := &consoleScript{t: t, refuse: "UnsupportedOperation"}
	for i := 0; i < int(late/(5*time.Second)); i++ {
		s.outputs = append(s.outputs, "")
	}
	s.outputs = append(s.outputs, "[  OK  ] Started cloud-final.service\r\n"+block)
	c, _ := fakeClockCloud(&fakeEC2{consoleOutput: s.read})
	start := c.clock()
	keys, err := c.WaitConsoleHostKeys(context.Background(), "i-1", ConsoleWait{Timeout: DefaultConsoleTimeout})
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys posted %s after running, default timeout %s: %d keys, %v after %s", late, DefaultConsoleTimeout, len(keys), err, c.clock().Sub(start))
	}
}

func TestHostCIDR(t *testing.T) {
	if cidr, err := HostCIDR("203.0.113.7"); err != nil || cidr != "203.0.113.7/32" {
		t.Fatalf("HostCIDR: %q %v", cidr, err)
	}
	if cidr, err := HostCIDR("2001:db8::1"); err != nil || cidr != "2001:db8::1/128" {
		t.Fatalf("HostCIDR v6: %q %v", cidr, err)
	}
}

func TestNewWithoutCredentialsOrRegion(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // never reached: nothing may be called
	ctx := context.Background()
	_, err := New(ctx, "us-east-1")
	if err == nil || !strings.Contains(err.Error(), "no usable AWS credentials") || !strings.Contains(err.Error(), "aws configure") {
		t.Fatalf("no credentials: %v", err)
	}
	t.Logf("error: %v", err)
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	_, err = New(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "no AWS region") || !strings.Contains(err.Error(), "--region") {
		t.Fatalf("no region: %v", err)
	}
	t.Logf("error: %v", err)
	c, err := New(ctx, "eu-central-1")
	if err != nil || c.Region != "eu-central-1" {
		t.Fatalf("with env credentials: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "demo", "kafka-1", "a" + strings.Repeat("b", 39)} {
		if err := checkName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1demo", "Demo", "demo_1", "demo-", "-demo", "de mo", "a" + strings.Repeat("b", 40), "démo"} {
		if err := checkName(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestDiffRules(t *testing.T) {
	cidrs := []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("2001:db8::/64")}
	have := []rule{
		{"tcp", 22, 22, "203.0.113.7/32"},      // keep
		{"tcp", 22, 22, "0.0.0.0/0"},           // revoke: not wanted
		{"tcp", 9092, 9092, "198.51.100.1/32"}, // revoke
		{"tcp", 0, 65535, "203.0.113.7/32"},    // revoke: wider ports
		{"-1", 0, 0, "sg:sg-1"},                // revoke: group source
	}
	revoke, add := diffRules(have, wantedRules(cidrs, defaultPorts))
	if got := joinRules(revoke); got != "-1/0 from sg:sg-1, tcp/0-65535 from 203.0.113.7/32, tcp/22 from 0.0.0.0/0, tcp/9092 from 198.51.100.1/32" {
		t.Errorf("revoke %s", got)
	}
	if got := joinRules(add); got != "tcp/22 from 2001:db8::/64, tcp/9092 from 2001:db8::/64, tcp/9092 from 203.0.113.7/32" {
		t.Errorf("add %s", got)
	}
	// Round trip through the SDK's shape.
	var perms []rule
	for _, r := range have {
		p := r.permission()
		perms = append(perms, rulesOf([]types.IpPermission{p})...)
	}
	if joinRules(perms) != joinRules(have) {
		t.Errorf("round trip %s != %s", joinRules(perms), joinRules(have))
	}
}

func TestCloseMatches(t *testing.T) {
	names := []string{"t3.micro", "t3.small", "t3a.micro", "t2.micro", "m5.large", "c7g.xlarge"}
	if got := closeMatches("t3.mucro", names, 3); len(got) == 0 || got[0] != "t3.micro" {
		t.Errorf("t3.mucro -> %v", got)
	}
	if got := closeMatches("t3.huge", names, 5); strings.Join(got, ",") != "t3.small,t3.micro" && !strings.Contains(strings.Join(got, ","), "t3.micro") {
		t.Errorf("t3.huge -> %v", got)
	}
	if got := closeMatches("zzzzzz", names, 5); len(got) != 0 {
		t.Errorf("zzzzzz -> %v", got)
	}
	if got := closeMatches("us-east1", []string{"us-east-1", "us-east-2", "eu-west-1"}, 3); len(got) == 0 || got[0] != "us-east-1" {
		t.Errorf("us-east1 -> %v", got)
	}
}

func TestSamePublicKey(t *testing.T) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(edKey))
	if err != nil {
		t.Fatal(err)
	}
	if same, known := samePublicKey(strings.Replace(edKey, "root@ip-172-31-0-4", "other-comment", 1), k); !same || !known {
		t.Error("same key with another comment")
	}
	if same, known := samePublicKey(ecdsaKey, k); same || !known {
		t.Error("different key")
	}
	if _, known := samePublicKey("", k); known {
		t.Error("no key from AWS: unknown")
	}
}
