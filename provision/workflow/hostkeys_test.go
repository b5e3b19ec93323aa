package workflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

func edKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pinned lists the keys kafkaup's pin file holds for host (port 22).
func pinned(t *testing.T, f *fakes, host string) []string {
	t.Helper()
	data, err := os.ReadFile(state.KnownHostsFile(f.env.StateDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) == 3 && fields[0] == host {
			out = append(out, fields[1]+" "+fields[2])
		}
	}
	return out
}

func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func (u *fakeUI) said(s string) bool {
	for _, l := range u.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestCreatePinsConsoleKeys: create waits for the console's host keys,
// checks the host against them (no trusting on first use), records them,
// pins them, and start and day-2 commands check against the record
// without reading the console again.
func TestCreatePinsConsoleKeys(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	hostKey, other := edKey(t), ecKey(t)
	f.cloud.keys = []ssh.PublicKey{other, hostKey}
	f.dial.hostKeys = map[string]ssh.PublicKey{"203.0.113.11": hostKey, "203.0.113.12": hostKey}
	o := createOptions()
	o.ConsoleTimeout = cloud.DefaultConsoleTimeout
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if len(f.dial.trusted) > 0 || f.ui.said("trusting") {
		t.Errorf("trusted on first use although the console had the keys: %v\n%s", f.dial.trusted, strings.Join(f.ui.lines, "\n"))
	}
	if len(f.cloud.consoleWaits) != 1 || f.cloud.consoleWaits[0] != cloud.DefaultConsoleTimeout || !f.ui.said("read from its console output") {
		t.Errorf("console read with bounds %v; said:\n%s", f.cloud.consoleWaits, strings.Join(f.ui.lines, "\n"))
	}
	want := []string{authorized(other), authorized(hostKey)}
	rec, _ := f.store.Load("demo")
	if strings.Join(rec.Nodes[0].HostKeys, "|") != strings.Join(want, "|") {
		t.Errorf("recorded host keys %q, want %q", rec.Nodes[0].HostKeys, want)
	}
	if got := pinned(t, f, "203.0.113.11"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("pinned %q", got)
	}

	// Day 2: the record's keys, not the console.
	b, err := Open(f.env, "demo", 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := b.Dial(context.Background(), f.env, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if last := f.dial.dials[len(f.dial.dials)-1]; len(last.ExpectedHostKeys) != 2 || !strings.Contains(last.ExpectedFrom, "record of demo") {
		t.Errorf("day-2 dial: %d expected keys from %q", len(last.ExpectedHostKeys), last.ExpectedFrom)
	}
	// kafkaup ssh hands OpenSSH the pin file: the recorded keys are put
	// back there first, in place of whatever it holds for the address.
	os.WriteFile(state.KnownHostsFile(f.env.StateDir), []byte("203.0.113.11 "+authorized(edKey(t))+"\n"), 0o600)
	if err := b.PinHostKeys(f.env.StateDir); err != nil {
		t.Fatal(err)
	}
	if got := pinned(t, f, "203.0.113.11"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("after PinHostKeys: %q", got)
	}
	// Start: a new address, the same instance and keys; no console read.
	Stop(context.Background(), f.env, StopOptions{Name: "demo"})
	f.cloud.keys = nil
	if _, err := Start(context.Background(), f.env, StartOptions{Name: "demo", RunOptions: RunOptions{SkipVerify: true}}); err != nil {
		t.Fatal(err)
	}
	if last := f.dial.dials[len(f.dial.dials)-1]; last.Host != "203.0.113.12" || len(last.ExpectedHostKeys) != 2 || len(f.cloud.consoleWaits) != 1 {
		t.Errorf("start dialed %s with %d expected keys after %d console reads", last.Host, len(last.ExpectedHostKeys), len(f.cloud.consoleWaits))
	}
	if got := pinned(t, f, "203.0.113.12"); len(got) != 2 || len(f.dial.trusted) > 0 {
		t.Errorf("after start: pinned %q, trusted %v", got, f.dial.trusted)
	}
}

// TestConsoleKeyMismatchAborts: a host that presents a key the console did
// not show is refused before the engine runs, with a clear message, and
// nothing is pinned.
func TestConsoleKeyMismatchAborts(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	f.cloud.keys = []ssh.PublicKey{edKey(t)}
	f.dial.hostKeys = map[string]ssh.PublicKey{"203.0.113.11": edKey(t)}
	_, err := Create(context.Background(), f.env, createOptions())
	var mismatch *remote.HostKeyMismatchError
	if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), "printed on its console") || !strings.Contains(err.Error(), "stopped before sending anything") ||
		!strings.Contains(err.Error(), "kafkaup destroy demo removes it") {
		t.Fatalf("err = %v", err)
	}
	if len(f.engine.specs) > 0 || len(pinned(t, f, "203.0.113.11")) > 0 {
		t.Errorf("engine ran %d times; pinned %v", len(f.engine.specs), pinned(t, f, "203.0.113.11"))
	}
}

// TestDestroyThenCreateOnSameAddress: an Elastic IP (or an address EC2
// recycles) comes back with another instance behind it. destroy drops the
// old pin, so a create whose console shows no keys trusts the new host on
// first use instead of failing with a host key mismatch; and console keys
// replace a stale pin that was left behind anyway.
func TestDestroyThenCreateOnSameAddress(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	const ip = "203.0.113.50"
	f.cloud.fixedIP = ip
	first := edKey(t)
	f.dial.hostKeys = map[string]ssh.PublicKey{ip: first}
	o := createOptions()
	o.ConsoleTimeout = time.Minute
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if got := pinned(t, f, ip); len(got) != 1 || len(f.dial.trusted) != 1 || !f.ui.said("trusting the host key on first use") {
		t.Fatalf("first create: pinned %v, trusted %v", got, f.dial.trusted)
	}
	// A rerun on the same instance reads the console once, not for the
	// whole wait again: it had its chance.
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.cloud.consoleWaits) != "[1m0s 0s]" {
		t.Errorf("console waits %v", f.cloud.consoleWaits)
	}
	if _, err := Destroy(context.Background(), f.env, DestroyOptions{Name: "demo", Yes: true}); err != nil {
		t.Fatal(err)
	}
	if got := pinned(t, f, ip); len(got) != 0 {
		t.Fatalf("destroy left the pin: %v", got)
	}
	f.dial.hostKeys[ip] = edKey(t) // a new instance behind the same address
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatalf("create on the same address after destroy: %v", err)
	}

	// A pin left by an older kafkaup: the console keys replace it.
	if _, err := Destroy(context.Background(), f.env, DestroyOptions{Name: "demo", Yes: true}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(state.KnownHostsFile(f.env.StateDir), []byte(ip+" "+authorized(first)+"\n"), 0o600)
	third := edKey(t)
	f.dial.hostKeys[ip], f.cloud.keys = third, []ssh.PublicKey{third}
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatalf("create over a stale pin with console keys: %v", err)
	}
	if got := pinned(t, f, ip); len(got) != 1 || got[0] != authorized(third) {
		t.Errorf("pins after the console keys: %v", got)
	}
}

// TestForgetRemovesPins: forget drops the host's pin with the record, so
// the host can be rebuilt and provisioned again under the same address.
func TestForgetRemovesPins(t *testing.T) {
	f := newFakes(t)
	f.dial.hostKeys = map[string]ssh.PublicKey{"10.0.0.5": edKey(t)}
	if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}}); err != nil {
		t.Fatal(err)
	}
	if len(pinned(t, f, "10.0.0.5")) != 1 {
		t.Fatal("not pinned")
	}
	if err := Forget(f.env, "dev"); err != nil {
		t.Fatal(err)
	}
	if got := pinned(t, f, "10.0.0.5"); len(got) != 0 {
		t.Errorf("forget left the pin: %v", got)
	}
	f.dial.hostKeys["10.0.0.5"] = edKey(t) // rebuilt
	if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}}); err != nil {
		t.Errorf("provision after forget: %v", err)
	}
}

// TestUnreachableNamesAllow: SSH or Kafka timing out on an EC2 cluster
// says the caller's IP may have changed and names kafkaup allow; a refused
// connection, a host set up with provision --host and a broker that
// advertises an unreachable address do not.
func TestUnreachableNamesAllow(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}
	f.dial.err = &remote.UnreachableError{Addr: "203.0.113.11:22", Port: 22, Timeout: true, Err: timeout}
	b, err := Open(f.env, "demo", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Dial(context.Background(), f.env, DialOptions{})
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "kafkaup allow demo --my-ip") || !strings.Contains(err.Error(), "port 22") {
		t.Errorf("ssh time-out: %v", err)
	}

	rec, _ := f.store.Load("demo")
	for name, tc := range map[string]struct {
		err    error
		advice bool
	}{
		"kafka time-out":       {kafkaUnreachable(timeout), true},
		"kafka refused":        {kafkaUnreachable(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), false},
		"ssh unreachable net":  {&remote.UnreachableError{Addr: "x:22", Port: 22, Err: errors.New("no route to host")}, false},
		"advertised time-out":  {advertised(timeout), false},
		"already with advice":  {&UnreachableError{Name: "demo", Err: errors.New("x")}, true},
		"another error":        {errors.New("permission denied"), false},
		"provision --host too": {nil, false},
	} {
		err := tc.err
		c := rec
		if err == nil {
			c.EC2, err = nil, kafkaUnreachable(timeout)
		}
		got := reachAdvice(c, err)
		if has := strings.Count(got.Error(), "kafkaup allow demo --my-ip"); has != map[bool]int{true: 1, false: 0}[tc.advice] {
			t.Errorf("%s: %v", name, got)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func kafkaUnreachable(err error) error {
	return &kafkaclient.UnreachableError{Addr: "203.0.113.11:9092", Err: err}
}

func advertised(err error) error {
	return &kafkaclient.AdvertisedError{Bootstrap: "203.0.113.11:9092", Advertised: "10.0.0.1:9092", Err: kafkaUnreachable(err)}
}
