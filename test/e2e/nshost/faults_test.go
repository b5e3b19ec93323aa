package nshost_test

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// cutter is a TCP proxy in front of a host's sshd that can cut every
// connection at once, like a network failure.
type cutter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return c
}

func (c *cutter) port() string { return strconv.Itoa(c.ln.Addr().(*net.TCPAddr).Port) }

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// TestSSHCutAtRandomPoints cuts the SSH connection at random moments of
// `provision` (fresh installs, and restarts for a new heap) and checks that
// rerunning converges every time: the broker ends healthy, the data dir is
// formatted once (the cluster id never changes) and no message is lost.
func TestSSHCutAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("KAFKAUP_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	rng := rand.New(rand.NewSource(seed))
	t.Logf("fault seed %d (rerun with KAFKAUP_FAULT_SEED=%d)", seed, seed)
	dir := t.TempDir()
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		t.Fatal(err)
	}

	const wantCuts = 20
	cuts, lost, hosts := 0, 0, 0
	for cuts < wantCuts {
		hosts++
		h, err := nshost.Start(ctx, nshost.Options{Name: fmt.Sprintf("fault-%d", hosts)})
		if err != nil {
			t.Fatal(err)
		}
		mirror, err := kafkadist.StartMirror([]*kafkadist.Dist{dist}, h.HostSideAddr+":0")
		if err != nil {
			t.Fatal(err)
		}
		proxy := newCutter(t, h.Addr+":22")
		cli, err := harness.NewCLI(bin, t.TempDir(), h.KeyPath)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("fault-%d", hosts)
		provision := func(cutAfter time.Duration, extra ...string) harness.Result {
			args := append([]string{"provision", "--host", "127.0.0.1", "--port", proxy.port(), "--name", name,
				"--advertised-host", h.Addr, "--swap", "0", "--kafka-url", mirror.URL(0, "4.0.0"), "--connect-timeout", "5s"},
				cli.ConnArgs("root")...)
			done := make(chan harness.Result, 1)
			go func() { done <- cli.Run(ctx, append(args, extra...)...) }()
			if cutAfter > 0 {
				select {
				case r := <-done:
					return r
				case <-time.After(cutAfter):
					proxy.cut()
				}
			}
			return <-done
		}
		clusterID := ""
		checkFormatOnce := func() {
			id, _ := h.Run(ctx, "sed -n 's/^cluster.id=//p' /var/lib/kafka/data/meta.properties 2>/dev/null")
			id = strings.TrimSpace(id)
			if clusterID != "" && id != clusterID {
				t.Errorf("host %d: data dir reformatted: cluster id %s -> %q", hosts, clusterID, id)
			}
			if id != "" {
				clusterID = id
			}
		}
		// converge cuts the connection at random points until a run succeeds
		// on its own, counting the cuts that hit a run.
		// window bounds the cut points: the steps before the broker starts
		// take a few seconds here, so a short window spreads the cuts over
		// download, directories, config and format, not only the start.
		converge := func(phase string, window time.Duration, extra ...string) {
			for attempt := 0; ; attempt++ {
				if attempt > 12 {
					t.Fatalf("host %d %s: no convergence after %d attempts", hosts, phase, attempt)
				}
				// At most 3 cuts per phase: a restart cut off every time
				// before it completes can never converge.
				cutAfter := 50*time.Millisecond + time.Duration(rng.Int63n(int64(window)))
				if cuts >= wantCuts || attempt >= 3 {
					cutAfter = 0
				}
				r := provision(cutAfter, extra...)
				checkFormatOnce()
				if r.ExitCode == 0 {
					t.Logf("host %d %s: converged after %d cut(s)", hosts, phase, attempt)
					return
				}
				cuts++
				if cutAfter == 0 {
					t.Fatalf("host %d %s: a run without a cut failed:\n%s", hosts, phase, r)
				}
				t.Logf("host %d %s: cut %d after %s: %s", hosts, phase, cuts, cutAfter, harness.LastLine(r.Stderr))
			}
		}
		converge("fresh install", 3500*time.Millisecond)
		bootstrap := h.Addr + ":9092"
		msg := fmt.Sprintf("kept-%d", hosts)
		if err := harness.KcatProduce(ctx, bootstrap, "faults", msg); err != nil {
			t.Fatal(err)
		}
		converge("heap change", 8*time.Second, "--heap", "512m")
		// Converged means: a clean rerun changes nothing, one broker runs,
		// the message is there, nothing is left half-done.
		r := provision(0, "--heap", "512m")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing changed") {
			t.Errorf("host %d: not converged:\n%s", hosts, r)
		}
		if n, _ := h.Run(ctx, `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' <"$f" 2>/dev/null | grep -q ' kafka\.Kafka ' && echo x; done | wc -l`); strings.TrimSpace(n) != "1" {
			t.Errorf("host %d: %s brokers running", hosts, strings.TrimSpace(n))
		}
		if left, _ := h.Run(ctx, "ls -A /var/lib/kafka/data | grep kafkaup-format; ls /opt/kafka/.download; ls /etc/kafka | grep tmp; true"); strings.TrimSpace(left) != "" {
			t.Errorf("host %d: leftovers: %s", hosts, left)
		}
		got, err := harness.KcatConsumeAll(ctx, bootstrap, "faults")
		if err != nil || strings.Join(got, ",") != msg {
			lost++
			t.Errorf("host %d: message lost: %v, %v", hosts, got, err)
		}
		mirror.Close()
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Logf("faults injected: %d SSH cuts over %d hosts; reformats: 0 (checked after every run); messages lost: %d", cuts, hosts, lost)
}
