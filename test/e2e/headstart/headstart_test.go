// Package headstart_test proves the head start's host side and the SSH run
// that follows it on namespace hosts (fast, several at once): the boothook
// kafkaup puts in create's user-data is run on the host as cloud-init
// would, then `kafkaup provision` (the engine create runs) observes it,
// waits for it, checks its download and does what it left undone. The VM
// package (test/e2e/headstartvm) runs the same through `kafkaup create` on
// the local cloud, with cloud-init, systemd and a reboot.
package headstart_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

type env struct {
	dist *kafkadist.Dist
	bin  string
}

func setup(t *testing.T) *env {
	if testing.Short() {
		t.Skip("end-to-end: needs root, namespaces and the Kafka runtime (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for namespace hosts")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	d, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := harness.BuildCLI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{dist: d, bin: bin}
}

// node is a fresh namespace host with its own mirror and kafkaup home.
type node struct {
	h      *nshost.Host
	mirror *kafkadist.Mirror
	url    string
	cli    *harness.CLI
	name   string
}

func (e *env) node(t *testing.T, name string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := nshost.Start(ctx, nshost.Options{Name: "kafkaup-" + name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	m, err := kafkadist.StartMirror([]*kafkadist.Dist{e.dist}, h.HostSideAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cli, err := harness.NewCLI(e.bin, t.TempDir(), h.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return &node{h: h, mirror: m, url: m.URL(0, "4.0.0"), cli: cli, name: name}
}

// spec is what `provision --kafka-url URL` asks for.
func spec(url string) provision.Spec {
	s := provision.DefaultSpec()
	s.Source.URL = url
	return s
}

// launchHeadStart runs create's boothook on the host, as root, as
// cloud-init runs it at boot; it returns once the head start is started.
func (n *node) launchHeadStart(t *testing.T, url string) {
	t.Helper()
	hook, err := provision.HeadStartBoothook(spec(url))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(string(hook), "#cloud-boothook\n")
	cmd := "echo " + base64.StdEncoding.EncodeToString([]byte(body)) + " | base64 -d >/tmp/boothook && bash /tmp/boothook"
	if out, err := n.run(cmd); err != nil {
		t.Fatalf("boothook: %v\n%s", err, out)
	}
}

func (n *node) run(cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return n.h.Run(ctx, cmd)
}

func (n *node) sh(t *testing.T, cmd string) string {
	t.Helper()
	out, err := n.run(cmd)
	if err != nil {
		t.Fatalf("on %s: %s: %v\n%s", n.name, cmd, err, out)
	}
	return strings.TrimSpace(out)
}

// status is the head start's record.
func (n *node) status(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(n.sh(t, "cat "+provision.HeadStartDir+"/status 2>/dev/null || true"), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (n *node) waitStatus(t *testing.T, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st := n.status(t)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			log, _ := n.run("cat " + provision.HeadStartDir + "/log")
			t.Fatalf("%s: head start never %s: %v\nlog:\n%s", n.name, what, st, log)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (n *node) provision(ctx context.Context, url string, extra ...string) harness.Result {
	args := append([]string{"provision", "--host", n.h.Addr, "--name", n.name, "--swap", "0", "--kafka-url", url}, n.cli.ConnArgs("root")...)
	return n.cli.Run(ctx, append(args, extra...)...)
}

// tree lists the files kafkaup installs, each with its sha256 (the host's
// own address replaced, so hosts compare), and the symlinks' targets.
func (n *node) tree(t *testing.T) string {
	return n.sh(t, `addr=`+n.h.Addr+`; cd / && find opt/kafka etc/kafka \( -type f -o -type l \) ! -path 'opt/kafka/.download/*' | sort |
while read -r f; do
  if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(sed "s/$addr/HOST/g" "$f" | sha256sum | cut -c1-16) $(stat -c '%a %U:%G' "$f")"; fi
done`)
}

// appliedDownload reads the kafka step's download report from --json.
func appliedDownload(t *testing.T, r harness.Result) *provision.Transfer {
	t.Helper()
	var out struct {
		Result struct {
			Applied []provision.StepResult `json:"applied"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.Stdout)
	}
	for _, a := range out.Result.Applied {
		if a.ID == "kafka" {
			return a.Download
		}
	}
	return nil
}

func count(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestHeadStart runs each case on fresh namespace hosts.
func TestHeadStart(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	tgz := "/kafka/4.0.0/kafka_2.13-4.0.0.tgz"

	t.Run("finished: its verified download is used, and the host is the same as without it", func(t *testing.T) {
		a, b := e.node(t, "hs-a"), e.node(t, "hs-b")
		a.launchHeadStart(t, a.url)
		st := a.waitStatus(t, "finished", func(m map[string]string) bool { return m["finished"] != "" })
		if st["result"] != "ok" || st["java.result"] != "present" || st["download.result"] != "ok" || st["download.bytes"] == "" {
			t.Fatalf("head start: %v", st)
		}
		ra := a.provision(ctx, a.url, "--json")
		harness.MustSucceed(t, ra)
		if d := appliedDownload(t, ra); d == nil || d.Source != "head-start" {
			t.Errorf("kafka step's download: %+v", d)
		}
		if n := count(a.mirror.Requests(), "GET "+tgz+" "); n != 1 {
			t.Errorf("the tarball was fetched %d times, want once (by the head start): %v", n, a.mirror.Requests())
		}
		if left := a.sh(t, "ls -A "+provision.HeadStartDir+"/kafka"); left != "" {
			t.Errorf("staging left behind: %s", left)
		}
		rb := b.provision(ctx, b.url)
		harness.MustSucceed(t, rb)
		if ta, tb := a.tree(t), b.tree(t); ta != tb {
			t.Errorf("the hosts differ:\n--- with the head start\n%s\n--- without\n%s", ta, tb)
		}
		again := a.provision(ctx, a.url)
		harness.MustSucceed(t, again)
		if !strings.Contains(again.Stdout, "already as specified") {
			t.Errorf("rerun after the head start changed something:\n%s", again)
		}
	})

	t.Run("running: the plan waits for it, says for what, then uses its download", func(t *testing.T) {
		n := e.node(t, "hs-run")
		slow := serveSlowly(t, n.h.HostSideAddr, e.dist, 4<<20)
		n.launchHeadStart(t, slow.url)
		n.waitStatus(t, "started its download", func(m map[string]string) bool { return m["download.start"] != "" })
		r := n.provision(ctx, slow.url, "--json")
		harness.MustSucceed(t, r)
		for _, want := range []string{"-> head-start wait for the head start begun at boot", "waiting for the head start begun at boot: downloading kafka_2.13-4.0.0.tgz:"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
			}
		}
		if d := appliedDownload(t, r); d == nil || d.Source != "head-start" {
			t.Errorf("kafka step's download: %+v", d)
		}
		if got := slow.tarballGets.Load(); got != 1 {
			t.Errorf("the tarball was fetched %d times, want once", got)
		}
	})

	t.Run("corrupt download: caught by its sha512 and fetched again over SSH", func(t *testing.T) {
		n := e.node(t, "hs-bad")
		n.mirror.CutNext(tgz, 1) // half the body, then the connection closes: curl sees a whole answer
		n.launchHeadStart(t, n.url)
		st := n.waitStatus(t, "finished", func(m map[string]string) bool { return m["finished"] != "" })
		if st["download.result"] != "ok" {
			t.Fatalf("the head start (which has no digest to check) refused the cut download: %v", st)
		}
		r := n.provision(ctx, n.url, "--json")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stderr, "has the wrong sha512") || !strings.Contains(r.Stderr, "downloading it again") {
			t.Errorf("stderr does not say the head start's download was refused:\n%s", r.Stderr)
		}
		if d := appliedDownload(t, r); d == nil || d.Source != "download" {
			t.Errorf("kafka step's download: %+v", d)
		}
		if got := count(n.mirror.Requests(), "GET "+tgz+" "); got != 2 {
			t.Errorf("tarball GETs %d, want 2: %v", got, n.mirror.Requests())
		}
		if sum := n.sh(t, "cat /opt/kafka/current/.kafkaup-sha512"); sum != e.dist.SHA512 {
			t.Errorf("installed %s, want %s", sum, e.dist.SHA512)
		}
	})

	t.Run("killed midway: the plan does its work and says so", func(t *testing.T) {
		n := e.node(t, "hs-kill")
		slow := serveSlowly(t, n.h.HostSideAddr, e.dist, 2<<20)
		n.launchHeadStart(t, slow.url)
		st := n.waitStatus(t, "started its download", func(m map[string]string) bool { return m["download.start"] != "" })
		n.sh(t, "kill -KILL -- -"+st["pid"])
		r := n.provision(ctx, n.url)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stderr, "the head start's download was cut off before it finished") {
			t.Errorf("stderr does not say the head start was cut off:\n%s", r.Stderr)
		}
		if strings.Contains(r.Stderr, "-> head-start") {
			t.Error("waited for a head start that was gone")
		}
		if left := n.sh(t, "ls -A "+provision.HeadStartDir+"/kafka"); left != "" {
			t.Errorf("the cut-off download's leftovers are still there: %s", left)
		}
	})
}

// slowServer serves a dist's tarball at a fixed rate, and its .sha512.
type slowServer struct {
	url         string
	tarballGets atomic.Int32
}

func serveSlowly(t *testing.T, addr string, d *kafkadist.Dist, bytesPerSec int) *slowServer {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &slowServer{url: fmt.Sprintf("http://%s/kafka/4.0.0/%s", l.Addr(), d.FileName)}
	var wg sync.WaitGroup
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, ".sha512"):
			http.ServeFile(w, r, d.SHA512File)
		case strings.HasSuffix(r.URL.Path, ".tgz"):
			s.tarballGets.Add(1)
			f, err := os.Open(d.Tarball)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
			chunk := bytesPerSec / 10
			for {
				if _, err := io.CopyN(w, f, int64(chunk)); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		default:
			http.NotFound(w, r)
		}
	})}
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return s
}
