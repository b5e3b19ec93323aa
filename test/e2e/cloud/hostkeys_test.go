package cloud_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// nsCloud is the local cloud on namespace hosts (fast: no VM), with
// addresses recycled as EC2 recycles them, and kafkaup pointed at it.
type nsCloud struct {
	*env
	args []string // a create on it
}

func setupNS(t *testing.T) *nsCloud {
	if testing.Short() {
		t.Skip("end-to-end: moto, namespace hosts and Kafka (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespace hosts, port 22 on 127.0.0.N")
	}
	if _, err := exec.LookPath("moto_server"); err != nil {
		t.Skip("moto_server not installed (test/deps.sh)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	e := &nsCloud{env: startCloud(ctx, t, localcloud.Options{Backend: localcloud.NamespaceHosts{}, ConsoleDelay: 5 * time.Second,
		RecycleAddresses: true, Logf: t.Logf})}
	key, amiParam := e.key, e.amiParam
	// No --allow-cidr: the caller's address comes from the local cloud's
	// two caller-IP services. A namespace host has no route out and no
	// swap: the tarball is uploaded, Java is the one this machine has.
	e.args = []string{"create", name, "--yes", "--ssh-key", key + ".pub", "--identity", key, "--address", "ip",
		"--ami-parameter", amiParam, "--kafka-tarball", dist.Tarball, "--kafka-sha512", dist.SHA512, "--swap", "0",
		"--no-head-start", "--console-timeout", "2m"}
	return e
}

// instance is the one instance of the cloud that is not terminated.
func (e *nsCloud) instance(t *testing.T) *localcloud.Instance {
	t.Helper()
	var live []*localcloud.Instance
	for _, i := range e.lc.Instances() {
		if i.PublicAddr() != "" {
			live = append(live, i)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d instances with a public address, want 1", len(live))
	}
	return live[0]
}

// pins are kafkaup's pinned host keys for addr, "type base64" each.
func (e *nsCloud) pins(t *testing.T, addr string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.cli.Home, "known_hosts"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == knownhosts.Normalize(addr) {
			out = append(out, f[1]+" "+f[2])
		}
	}
	return out
}

// TestForgedConsoleKeyAbortsCreate: on the local cloud, a console whose
// keys are not the ones the address presents (someone in the middle, or
// the address is another machine's now) aborts create before anything is
// sent to the host, and says what to do next. No broker is started.
func TestForgedConsoleKeyAbortsCreate(t *testing.T) {
	e := setupNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }

	t.Run("a console key that differs aborts create before any remote change", func(t *testing.T) {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		forged := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		e.lc.SetConsoleHostKeys([]string{forged})
		r := run(e.args...)
		e.lc.SetConsoleHostKeys(nil)
		t.Logf("create with a forged console key:\n%s", r)
		harness.MustFail(t, r, 1, "is not one of the keys the instance printed on its console", ssh.FingerprintSHA256(signer.PublicKey()),
			"stopped before sending anything", "kafkaup destroy "+name)
		if strings.Contains(r.Stderr, "on first use") {
			t.Errorf("create trusted a key on first use:\n%s", r.Stderr)
		}
		inst := e.instance(t)
		h := inst.NamespaceHost()
		if h == nil {
			t.Fatal("the instance does not run")
		}
		got, err := h.Run(ctx, "ls -d /opt/kafka /etc/kafka /var/lib/kafka 2>/dev/null || true")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) != "" {
			t.Errorf("the host was touched after the mismatch:\n%s", got)
		}
		// sshd's log (sshd -e): kafkaup never logged in, it stopped at the
		// host key, before authenticating.
		sshdLog, err := os.ReadFile(h.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(sshdLog), "Accepted publickey for root") {
			t.Fatalf("sshd's log %s shows no login at all (not even the harness's as root): it proves nothing\n%s", h.LogPath, sshdLog)
		}
		if n := strings.Count(string(sshdLog), "Accepted publickey for "+localcloud.DefaultUser); n > 0 {
			t.Errorf("sshd accepted %d logins as %s after the mismatch", n, localcloud.DefaultUser)
		}
		if p := e.pins(t, inst.PublicAddr()); len(p) != 0 {
			t.Errorf("pinned after the mismatch: %v", p)
		}
		harness.MustSucceed(t, run("destroy", name, "--yes"))
	})

}

// TestHostKeysOnRecycledAddress: on the local cloud, destroy drops the
// address's pins, and the next instance, handed the same address (EC2
// recycles them; an Elastic IP kept does the same), is created without a
// mismatch: its console keys replace older pins of that address (the pins
// an older destroy left behind are put back to show it).
func TestHostKeysOnRecycledAddress(t *testing.T) {
	e := setupNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }

	var addr string
	var first []string // the pins of the first instance at addr
	t.Run("create pins the console's keys", func(t *testing.T) {
		r := run(e.args...)
		harness.MustSucceed(t, r)
		if strings.Contains(r.Stderr, "on first use") || !strings.Contains(r.Stderr, "read from its console output") {
			t.Errorf("create did not pin the host key from the console output:\n%s", r.Stderr)
		}
		inst := e.instance(t)
		addr = inst.PublicAddr()
		first = e.pins(t, addr)
		live := hostKeyLine(t, addr)
		if len(first) == 0 || !containsLine(first, live) {
			t.Fatalf("pins for %s: %v, want the key it presents (%s) among them", addr, first, live)
		}
	})
	if addr == "" {
		t.Fatal("no broker to go on with")
	}

	t.Run("destroy, then create on the recycled address", func(t *testing.T) {
		harness.MustSucceed(t, run("destroy", name, "--yes"))
		if p := e.pins(t, addr); len(p) != 0 {
			t.Errorf("destroy left the pins of %s: %v", addr, p)
		}
		// The given-up address stays in the cloud's pool, held against the
		// other tests on this machine until the next instance gets it.
		if release, err := vm.ReserveLoopbackAt(addr, []int{22}); err == nil {
			release()
			t.Errorf("the given-up address %s was free for another test to take", addr)
		}
		// What an older kafkaup's destroy left behind (or a pin from another
		// run): the old instance's keys under the address.
		pinFile := filepath.Join(e.cli.Home, "known_hosts")
		f, err := os.OpenFile(pinFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range first {
			f.WriteString(knownhosts.Normalize(addr) + " " + k + "\n")
		}
		f.Close()

		r := run(e.args...)
		harness.MustSucceed(t, r)
		inst := e.instance(t)
		if inst.PublicAddr() != addr {
			t.Fatalf("the new instance is at %s, not at the recycled %s", inst.PublicAddr(), addr)
		}
		live := hostKeyLine(t, addr)
		if containsLine(first, live) {
			t.Fatalf("the new instance presents the old instance's key %s: the test shows nothing", live)
		}
		now := e.pins(t, addr)
		if !containsLine(now, live) {
			t.Errorf("pins for %s after the new create: %v, want its key %s", addr, now, live)
		}
		for _, k := range now {
			if containsLine(first, k) && !strings.HasPrefix(k, ssh.KeyAlgoRSA) {
				t.Errorf("the old instance's key %s is still pinned for %s", k, addr)
			}
		}
		harness.MustSucceed(t, run("status", name))
		harness.MustSucceed(t, run("destroy", name, "--yes"))
		if p := e.pins(t, addr); len(p) != 0 {
			t.Errorf("destroy left the pins of %s: %v", addr, p)
		}
	})
}

// hostKeyLine is the host key sshd presents at addr:22, "type base64".
func hostKeyLine(t *testing.T, addr string) string {
	t.Helper()
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(liveHostKey(t, addr))))
}

func containsLine(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
