package cloud

// Issue #5: AWS throttling and eventual consistency are retried, not
// reported as failures; a fault that never clears ends in a clear error
// within a bounded time. Against moto, with faults from faults_test.go.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestMotoThrottledEveryCall: the first two attempts of every call kafkaup
// makes (every operation, every waiter poll, every page) answer a
// throttle: RequestLimitExceeded, Throttling, ThrottlingException or 503
// Unavailable. Create with an Elastic IP, Describe, List, Stop, Start and
// Destroy all succeed, with one instance launched and nothing left.
func TestMotoThrottledEveryCall(t *testing.T) {
	e := newEnv(t)
	phase := func(a, b string) {
		e.faults.clear()
		e.faults.add(fault{op: "*", codes: []string{a, b}, perCall: true})
	}
	req := e.request("thr")
	req.ElasticIP = true

	phase("RequestLimitExceeded", "Unavailable")
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.converged("thr", b, req.AllowCIDRs)

	phase("Throttling", "ThrottlingException")
	if d, err := e.c.Describe(e.ctx, "thr"); err != nil || d.InstanceID != b.InstanceID {
		t.Fatalf("Describe: %+v %v", d, err)
	}
	if l, err := e.c.List(e.ctx); err != nil || len(l) != 1 {
		t.Fatalf("List: %+v %v", l, err)
	}
	phase("ThrottlingException", "RequestLimitExceeded")
	if s, err := e.c.Stop(e.ctx, "thr"); err != nil || s.State != "stopped" {
		t.Fatalf("Stop: %+v %v", s, err)
	}
	if s, err := e.c.Start(e.ctx, "thr"); err != nil || s.State != "running" {
		t.Fatalf("Start: %+v %v", s, err)
	}
	phase("Unavailable", "Throttling")
	if _, err := e.c.Destroy(e.ctx, "thr", false); err != nil {
		t.Fatal(err)
	}
	e.faults.clear()

	hit, missed := e.faults.ops()
	if len(missed) > 0 {
		t.Fatalf("operations never throttled: %v", missed)
	}
	calls := int(e.faults.calls.Load())
	if n := e.faults.count("throttle") + e.faults.count("server"); n != 2*calls {
		t.Fatalf("%d faults over %d calls, want 2 per call", n, calls)
	}
	// The SDK chose real pauses (throttle backoff: up to 1s, then 2s).
	for _, d := range e.sdkPauses {
		if d <= 0 || d > 2*time.Second {
			t.Fatalf("SDK pauses %v", e.sdkPauses)
		}
	}
	if n := e.launched("thr"); n != 1 {
		t.Fatalf("%d instances launched, want 1", n)
	}
	e.mustBeEmpty("after destroy")
	t.Logf("%d calls to %d operations, each throttled twice: %s", calls, len(hit), strings.Join(hit, " "))
	e.summary(t, "thr")
}

// TestMotoSustainedThrottling: throttling that goes on for many calls
// (each throttled twice) does not exhaust a client-wide retry budget: the
// SDK's default quota would stop retrying after about 100 such calls.
func TestMotoSustainedThrottling(t *testing.T) {
	e := newEnv(t)
	if _, err := e.c.Create(e.ctx, e.request("sus")); err != nil {
		t.Fatal(err)
	}
	e.c.Log = nil // a line per retry
	e.faults.add(fault{op: "*", codes: []string{"RequestLimitExceeded", "Throttling"}, perCall: true})
	for i := 0; i < 40; i++ {
		if l, err := e.c.List(e.ctx); err != nil || len(l) != 1 {
			t.Fatalf("List %d, after %d calls: %v %v", i, e.faults.calls.Load(), l, err)
		}
	}
	e.faults.clear()
	if n := e.faults.count("throttle"); n < 300 {
		t.Fatalf("%d throttles, want at least 300", n)
	}
	if _, err := e.c.Destroy(e.ctx, "sus", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
	e.summary(t, "sus")
}

// TestMotoLostAnswers: EC2 carries out a request but its answer is lost
// (a 503 comes back instead); the SDK retries. RunInstances carries one
// client token on every attempt, so the retry gets the instance already
// launched (EC2's idempotency, emulated here since moto lacks it), not a
// second one. A lost AuthorizeSecurityGroupIngress answer is followed by
// InvalidPermission.Duplicate, and lost deletions by NotFound: kafkaup
// reads the state again instead of failing, and leaves nothing.
func TestMotoLostAnswers(t *testing.T) {
	e := newEnv(t)
	e.faults.add(
		fault{op: "RunInstances", mode: loseAnswer, codes: []string{"Unavailable"}},
		fault{op: "RunInstances", codes: []string{"RequestLimitExceeded"}},
		fault{op: "AuthorizeSecurityGroupIngress", mode: loseAnswer, codes: []string{"InternalError"}},
	)
	req := e.request("lost")
	req.ElasticIP = true
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.converged("lost", b, req.AllowCIDRs)
	if n := e.launched("lost"); n != 1 {
		t.Fatalf("%d instances launched, want 1", n)
	}
	tokens := e.faults.tokens
	if len(tokens) != 3 || tokens[0] != tokens[1] || tokens[1] != tokens[2] || !strings.HasPrefix(tokens[0], "kafkaup-lost-") {
		t.Fatalf("RunInstances client tokens %q, want one kafkaup-lost-... on all 3 attempts", tokens)
	}

	// Not TerminateInstances: EC2 answers a repeated one as it did the
	// first (it is idempotent), moto with InvalidNetworkInterfaceID.NotFound.
	e.faults.add(
		fault{op: "ReleaseAddress", mode: loseAnswer, codes: []string{"Unavailable"}},
		fault{op: "DeleteSecurityGroup", mode: loseAnswer, codes: []string{"InternalError"}},
	)
	if _, err := e.c.Destroy(e.ctx, "lost", false); err != nil {
		t.Fatal(err)
	}
	if n := e.faults.count("lost"); n != 4 {
		t.Fatalf("%d answers lost, want 4", n)
	}
	e.mustBeEmpty("after destroy")
	e.summary(t, "lost")
}

// TestMotoNotYetVisibleCreate: the calls that name what Create has just
// made answer NotFound for a while, as EC2 does; Create waits them out.
func TestMotoNotYetVisibleCreate(t *testing.T) {
	e := newEnv(t)
	e.faults.add(
		fault{op: "AuthorizeSecurityGroupIngress", codes: rep("InvalidGroup.NotFound", 3)},
		fault{op: "RunInstances", codes: []string{"InvalidGroup.NotFound", "InvalidGroup.NotFound", "InvalidKeyPair.NotFound"}},
		fault{op: "DescribeInstances", match: byInstanceID, codes: rep("InvalidInstanceID.NotFound", 3)},
		fault{op: "AssociateAddress", codes: []string{"InvalidAllocationID.NotFound", "InvalidAllocationID.NotFound", "InvalidInstanceID.NotFound"}},
	)
	req := e.request("nv")
	req.ElasticIP = true
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.converged("nv", b, req.AllowCIDRs)
	if !b.EIPOwned || b.EIPAllocationID == "" {
		t.Fatalf("broker %+v has no elastic IP", *b)
	}
	// kafkaup paused 1s, 2s, 4s for each of the three calls; the waiter
	// polled through its NotFound answers.
	if got, want := fmt.Sprint(e.sleeps), "[1s 2s 4s 1s 2s 4s 1s 2s 4s]"; got != want {
		t.Fatalf("pauses %s, want %s", got, want)
	}
	if n := e.faults.count("notfound"); n != 12 {
		t.Fatalf("%d NotFound answers, want 12", n)
	}
	// Reading the instance back right after.
	e.faults.add(fault{op: "DescribeInstances", match: byInstanceID, codes: rep("InvalidInstanceID.NotFound", 2)})
	inst, err := e.c.describeInstance(e.ctx, b.InstanceID)
	if err != nil || aws.ToString(inst.InstanceId) != b.InstanceID {
		t.Fatalf("describe: %v %v", inst, err)
	}
	if n := e.launched("nv"); n != 1 {
		t.Fatalf("%d instances launched, want 1", n)
	}
	if _, err := e.c.Destroy(e.ctx, "nv", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
	e.summary(t, "nv")
}

// TestMotoNotYetVisibleStopStartDestroy: right after create, stop, start
// and destroy meet NotFound and not-yet-in-that-state answers; none of
// them is taken as "gone" (nothing leaks) or reported as a failure.
func TestMotoNotYetVisibleStopStartDestroy(t *testing.T) {
	e := newEnv(t)
	req := e.request("ssd")
	req.ElasticIP = true
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}

	e.faults.add(
		fault{op: "StopInstances", codes: []string{"IncorrectInstanceState", "InvalidInstanceID.NotFound"}},
		fault{op: "DescribeInstances", match: byInstanceID, codes: rep("InvalidInstanceID.NotFound", 2)},
	)
	s, err := e.c.Stop(e.ctx, "ssd")
	if err != nil || s.State != "stopped" {
		t.Fatalf("Stop: %+v %v", s, err)
	}
	e.faults.clear()
	e.faults.add(
		fault{op: "StartInstances", codes: []string{"IncorrectInstanceState", "InvalidInstanceID.NotFound"}},
		fault{op: "DescribeInstances", match: byInstanceID, codes: rep("InvalidInstanceID.NotFound", 2)},
	)
	r, err := e.c.Start(e.ctx, "ssd")
	if err != nil || r.State != "running" || r.InstanceID != b.InstanceID || r.EIPAllocationID != b.EIPAllocationID {
		t.Fatalf("Start: %+v %v", r, err)
	}
	e.faults.clear()
	before := e.faults.count("notfound") + e.faults.count("state")
	e.faults.add(
		fault{op: "TerminateInstances", codes: rep("InvalidInstanceID.NotFound", 2)},
		fault{op: "DescribeInstances", match: byInstanceID, codes: rep("InvalidInstanceID.NotFound", 2)},
		// Still associated for a moment, then not visible to release
		// although DescribeAddresses lists it.
		fault{op: "ReleaseAddress", codes: []string{"InvalidIPAddress.InUse", "InvalidAllocationID.NotFound"}},
		// Not visible to delete although listed, then still in use.
		fault{op: "DeleteSecurityGroup", codes: []string{"InvalidGroup.NotFound", "DependencyViolation"}},
	)
	if _, err := e.c.Destroy(e.ctx, "ssd", false); err != nil {
		t.Fatal(err)
	}
	if n := e.faults.count("notfound") + e.faults.count("state") - before; n != 8 {
		t.Fatalf("%d destroy faults, want 8", n)
	}
	e.mustBeEmpty("after destroy")
	e.summary(t, "ssd")
}

// TestMotoTagLookupLags: the lookups by tag do not show yet what an
// earlier run created seconds ago. The failed run still reports what it
// created, and the rerun finds its key pair and security group by name
// (ImportKeyPair and CreateSecurityGroup answer Duplicate) instead of
// calling them someone else's.
func TestMotoTagLookupLags(t *testing.T) {
	e := newEnv(t)
	lag := func() {
		e.faults.clear()
		e.faults.add(
			fault{op: "DescribeKeyPairs", match: byBrokerTag, mode: lagLookup, forever: "lag"},
			fault{op: "DescribeSecurityGroups", match: byBrokerTag, mode: lagLookup, forever: "lag"},
		)
	}
	lag()
	e.inj.fail("RunInstances", "InsufficientInstanceCapacity")
	req := e.request("lag")
	_, err := e.c.Create(e.ctx, req)
	var ce *CreateError
	if !errors.As(err, &ce) || ce.ListErr != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("error:\n%v", err)
	var kinds []string
	for _, l := range ce.Existing.Lines() {
		kinds = append(kinds, strings.Fields(l)[0])
	}
	if strings.Join(kinds, " ") != "security key" {
		t.Fatalf("existing %v, want the security group and key pair this run created", ce.Existing.Lines())
	}

	lag() // still lagging on the rerun
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.converged("lag", b, req.AllowCIDRs)
	if n := e.faults.count("lag"); n < 4 {
		t.Fatalf("%d lagging lookups, want at least 4", n)
	}
	e.faults.clear()
	if _, err := e.c.Destroy(e.ctx, "lag", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
	e.summary(t, "lag")
}

// TestMotoNameTaken: a key pair or security group with the broker's
// resource name that kafkaup did not tag is never adopted or touched: a
// clear error, at once.
func TestMotoNameTaken(t *testing.T) {
	e := newEnv(t)
	if _, err := e.raw.ImportKeyPair(e.ctx, &ec2.ImportKeyPairInput{KeyName: aws.String("kafkaup-kp"), PublicKeyMaterial: []byte(testPubKey)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.Create(e.ctx, e.request("kp"))
	var ce *CreateError
	if !errors.As(err, &ce) || !strings.Contains(ce.Step, "key pair kafkaup-kp") || !strings.Contains(err.Error(), "not tagged as kafkaup's") ||
		!strings.Contains(err.Error(), "no AWS resource of broker kp exists") {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("error:\n%v", err)

	vpcs, err := e.raw.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("isDefault"), Values: []string{"true"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("kafkaup-sg"), Description: aws.String("not kafkaup's"), VpcId: vpcs.Vpcs[0].VpcId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Create(e.ctx, e.request("sg"))
	if !errors.As(err, &ce) || !strings.Contains(ce.Step, "security group kafkaup-sg") || !strings.Contains(err.Error(), "not tagged as kafkaup's") {
		t.Fatalf("Create: %v", err)
	}
	t.Logf("error:\n%v", err)
	if len(e.sleeps) != 0 {
		t.Fatalf("waited %v for a name that is simply taken", e.sleeps)
	}
	if _, err := e.c.Destroy(e.ctx, "sg", false); err != nil {
		t.Fatal(err)
	}
	s := e.snapshot()
	if fmt.Sprint(s.KeyPairs, s.SecurityGroups, s.Instances) != "[kafkaup-kp] [kafkaup-sg] []" {
		t.Fatalf("left %+v, want only the two untagged resources", s)
	}
}

// TestMotoFaultNeverClears: a fault that never clears ends in an error
// that says what happened and what to do, within a bounded time (pauses
// are counted, not slept).
func TestMotoFaultNeverClears(t *testing.T) {
	type check func(e *env, err error)
	createX := func(e *env) {
		if _, err := e.c.Create(e.ctx, e.request("x")); err != nil {
			e.t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(e *env) // before the faults; optional
		rules []fault
		run   func(e *env) error // default: create broker x
		want  []string
		check check
	}{
		{
			name:  "RunInstances throttled",
			rules: []fault{{op: "RunInstances", forever: "RequestLimitExceeded"}},
			want:  []string{"run instance", "throttling", "rerun `kafkaup create x`", "exceeded maximum number of attempts, 10"},
			check: func(e *env, err error) {
				if n := e.faults.attempts["RunInstances"]; n != DefaultRetryMaxAttempts {
					e.t.Fatalf("%d RunInstances attempts, want %d", n, DefaultRetryMaxAttempts)
				}
				var sum time.Duration
				for _, d := range e.sdkPauses {
					sum += d
				}
				// Throttle pauses: at most 1s, 2s, 4s, 8s, 16s, then 20s.
				if len(e.sdkPauses) != DefaultRetryMaxAttempts-1 || sum > 111*time.Second {
					e.t.Fatalf("SDK pauses %v (sum %s)", e.sdkPauses, sum)
				}
			},
		},
		{
			name:  "EC2 unavailable",
			rules: []fault{{op: "DescribeInstances", forever: "Unavailable"}},
			want:  []string{"find existing resources", "failing on its side", "could not list what exists now"},
		},
		{
			name:  "security group never visible",
			rules: []fault{{op: "AuthorizeSecurityGroupIngress", forever: "InvalidGroup.NotFound"}},
			want:  []string{"security group rules", "still answered InvalidGroup.NotFound", "wait a few minutes", "rerun `kafkaup create x`"},
			check: func(e *env, err error) {
				var nv *NotVisibleError
				if !errors.As(err, &nv) || nv.Waited > 2*time.Minute || nv.Attempts != len(e.sleeps)+1 {
					e.t.Fatalf("NotVisibleError %+v after pauses %v", nv, e.sleeps)
				}
			},
		},
		{
			name:  "instance never visible to the waiter",
			rules: []fault{{op: "DescribeInstances", match: byInstanceID, forever: "InvalidInstanceID.NotFound"}},
			setup: func(e *env) { e.c.WaitTimeout = time.Second },
			want:  []string{"wait for instance", "still answered InvalidInstanceID.NotFound", "instance i-"},
		},
		{
			name:  "terminate never sees the instance",
			setup: createX,
			rules: []fault{{op: "TerminateInstances", forever: "InvalidInstanceID.NotFound"}},
			run:   func(e *env) error { _, err := e.c.Destroy(e.ctx, "x", false); return err },
			want:  []string{"destroy broker x: terminate", "still answered InvalidInstanceID.NotFound", "rerun `kafkaup destroy x` to finish"},
		},
		{
			name:  "stop never sees the instance",
			setup: createX,
			rules: []fault{{op: "StopInstances", forever: "InvalidInstanceID.NotFound"}},
			run:   func(e *env) error { _, err := e.c.Stop(e.ctx, "x"); return err },
			want:  []string{"stop broker x", "still answered InvalidInstanceID.NotFound", "run the command again"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.setup != nil {
				tc.setup(e)
			}
			run := tc.run
			if run == nil {
				run = func(e *env) error { _, err := e.c.Create(e.ctx, e.request("x")); return err }
			}
			e.faults.add(tc.rules...)
			start := time.Now()
			err := run(e)
			took := time.Since(start)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("after %s:\n%v", took.Round(time.Millisecond), err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error does not say %q", w)
				}
			}
			if took > 20*time.Second {
				t.Fatalf("took %s", took)
			}
			if tc.check != nil {
				tc.check(e, err)
			}
			e.faults.clear()
			if _, err := e.c.Destroy(e.ctx, "x", false); err != nil {
				t.Fatal(err)
			}
			e.mustBeEmpty("after destroy")
			e.summary(t, "x")
		})
	}
}

func rep(code string, n int) []string {
	var s []string
	for i := 0; i < n; i++ {
		s = append(s, code)
	}
	return s
}
