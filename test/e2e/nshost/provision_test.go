// Package nshost_test proves `kafkaup provision` on a namespace host: a fast
// disposable SSH host without systemd (sshd in its own network, mount and PID
// namespaces over an overlay of this machine's root), with a real Kafka
// runtime from the local mirror and real clients over the network.
package nshost_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

type env struct {
	host   *nshost.Host
	cli    *harness.CLI
	mirror *kafkadist.Mirror
	dists  map[string]*kafkadist.Dist
	url    map[string]string // version -> mirror URL reachable from the host
}

func setup(t *testing.T) *env {
	if testing.Short() {
		t.Skip("end-to-end: needs root, namespaces and the Kafka runtime (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e := &env{dists: map[string]*kafkadist.Dist{}, url: map[string]string{}}
	for _, v := range []string{"4.0.0", "4.0.1"} {
		d, err := kafkadist.Build(ctx, v)
		if err != nil {
			t.Fatalf("build Kafka %s runtime: %v", v, err)
		}
		e.dists[v] = d
	}
	h, err := nshost.Start(ctx, nshost.Options{Name: "kafkaup-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close namespace host: %v", err)
		}
	})
	t.Logf("namespace host %s up in %s", h.Addr, h.Started.Round(time.Millisecond))
	e.host = h
	e.mirror, err = kafkadist.StartMirror([]*kafkadist.Dist{e.dists["4.0.0"], e.dists["4.0.1"]}, h.HostSideAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.mirror.Close() })
	for v := range e.dists {
		e.url[v] = e.mirror.URL(0, v)
	}
	dir := t.TempDir()
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.cli, err = harness.NewCLI(bin, dir, h.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const name = "nsbroker"

func (e *env) provision(ctx context.Context, extra ...string) harness.Result {
	args := append([]string{"provision", "--host", e.host.Addr, "--name", name}, e.cli.ConnArgs("root")...)
	return e.cli.Run(ctx, append(args, extra...)...)
}

func (e *env) sh(t *testing.T, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.host.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("on host: %v", err)
	}
	return strings.TrimSpace(out)
}

func brokerPID(t *testing.T, e *env) string {
	return e.sh(t, `for f in /proc/[0-9]*/cmdline; do if tr '\0' ' ' <"$f" 2>/dev/null | grep -q ' kafka\.Kafka '; then p=${f#/proc/}; echo ${p%/cmdline}; fi; done | head -n 1`)
}

func brokerCmdline(t *testing.T, e *env) string {
	pid := brokerPID(t, e)
	if pid == "" {
		t.Fatal("no broker process on the host")
	}
	return e.sh(t, "tr '\\0' ' ' </proc/"+pid+"/cmdline")
}

func TestProvisionNamespaceHost(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	bootstrap := e.host.Addr + ":9092"
	url := e.url["4.0.0"]

	t.Run("bad input is refused before connecting", func(t *testing.T) {
		r := e.provision(ctx, "--heap", "lots")
		harness.MustFail(t, r, 2, "--heap")
		r = e.provision(ctx, "--advertised-host", "0.0.0.0")
		harness.MustFail(t, r, 2, "cannot be advertised")
		r = e.provision(ctx, "--kafka-version", "3.9.0")
		harness.MustFail(t, r, 2, "Kafka 4.x")
		r = e.provision(ctx, "--kafka-url", "ftp://mirror/kafka_2.13-4.0.0.tgz")
		harness.MustFail(t, r, 2, "http")
		if out := e.sh(t, "ls /opt/kafka 2>/dev/null || echo none"); out != "none" {
			t.Errorf("something was installed: %s", out)
		}
	})

	t.Run("unreachable host and wrong key are clear errors", func(t *testing.T) {
		args := append([]string{"provision", "--host", "127.0.0.1", "--port", "1"}, e.cli.ConnArgs("root")...)
		r := e.cli.Run(ctx, append(args, "--connect-timeout", "1s")...)
		harness.MustFail(t, r, 1, "refused the SSH connection", "--port")

		otherKey, err := testssh.EnsureKey(filepath.Join(t.TempDir(), "other"))
		if err != nil {
			t.Fatal(err)
		}
		r = e.cli.Run(ctx, "provision", "--host", e.host.Addr, "--user", "root", "--identity", otherKey, "--known-hosts", e.cli.KnownHosts)
		harness.MustFail(t, r, 1, "refused the SSH key", "--identity")
	})

	t.Run("swap on overlayfs is refused before any change", func(t *testing.T) {
		r := e.provision(ctx, "--kafka-url", url)
		harness.MustFail(t, r, 1, "overlayfs", "--swap 0", "Nothing on the host was changed")
		if out := e.sh(t, "ls /opt/kafka /swapfile 2>/dev/null || echo none"); out != "none" {
			t.Errorf("something was written: %s", out)
		}
	})

	t.Run("wrong checksum installs nothing", func(t *testing.T) {
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url, "--kafka-sha512", strings.Repeat("ab", 64))
		harness.MustFail(t, r, 1, "checksum mismatch", "nothing was installed")
		if out := e.sh(t, "ls -A /opt/kafka | grep -v '^.download$' || true"); out != "" {
			t.Errorf("half-installed: /opt/kafka has %s", out)
		}
	})

	var clusterID, firstPID string
	t.Run("fresh host: provision, then real clients over the network", func(t *testing.T) {
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url, "--json")
		harness.MustSucceed(t, r)
		var out struct {
			OK     bool
			Result struct {
				ClusterID string `json:"cluster_id"`
				Bootstrap string
				Systemd   bool
				Applied   []struct{ ID string }
				Warnings  []string
				Verified  *struct{ Advertised []string }
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("--json output: %v\n%s", err, r.Stdout)
		}
		if !out.OK || out.Result.Bootstrap != bootstrap || out.Result.Systemd || out.Result.Verified == nil {
			t.Fatalf("result: %+v", out)
		}
		if len(out.Result.Warnings) == 0 || !strings.Contains(out.Result.Warnings[0], "reboot") {
			t.Errorf("no warning that the daemon will not survive a reboot: %v", out.Result.Warnings)
		}
		clusterID = out.Result.ClusterID
		md, err := harness.KcatMetadata(ctx, bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(md, "broker 1 at "+bootstrap) {
			t.Errorf("kcat -L does not list the broker at %s:\n%s", bootstrap, md)
		}
		if err := harness.KcatProduce(ctx, bootstrap, "e2e", "m1", "m2"); err != nil {
			t.Fatal(err)
		}
		got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
		if err != nil || strings.Join(got, ",") != "m1,m2" {
			t.Fatalf("consumed %v, %v", got, err)
		}
		if _, err := harness.FranzRoundTrip(ctx, bootstrap, "e2e-franz", "f1"); err != nil {
			t.Fatal(err)
		}
		firstPID = brokerPID(t, e)
	})

	t.Run("heap for the broker only", func(t *testing.T) {
		cmdline := brokerCmdline(t, e)
		if !strings.Contains(cmdline, "-Xmx400m") || !strings.Contains(cmdline, "-Xms400m") {
			t.Errorf("broker runs without -Xmx400m -Xms400m: %s", cmdline)
		}
		if out := e.sh(t, "bash -lc 'echo ${KAFKA_HEAP_OPTS:-unset}'; grep -rl KAFKA_HEAP_OPTS /etc/environment /etc/profile /etc/profile.d /etc/bash.bashrc 2>/dev/null || true"); out != "unset" {
			t.Errorf("KAFKA_HEAP_OPTS leaks into login shells: %s", out)
		}
		// A Kafka tool started the usual way gets its own default heap.
		out := e.sh(t, "KAFKA_OPTS=-XshowSettings:vm /opt/kafka/current/bin/kafka-topics.sh --version 2>&1 | grep -i 'max. heap' || true")
		if !strings.Contains(out, "256") || strings.Contains(out, "400") {
			t.Errorf("kafka-topics.sh heap: %q, want the tools' 256M default", out)
		}
	})

	t.Run("second run plans nothing and keeps the broker", func(t *testing.T) {
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing changed") {
			t.Errorf("rerun was not a no-op:\n%s", r)
		}
		if pid := brokerPID(t, e); pid != firstPID {
			t.Errorf("broker restarted on a no-op run: pid %s -> %s", firstPID, pid)
		}
		t.Logf("no-op rerun took %s", r.Took.Round(time.Millisecond))
		r = e.provision(ctx, "--swap", "0", "--kafka-url", url, "--dry-run")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing to do") {
			t.Errorf("dry run on a converged host:\n%s", r)
		}
	})

	t.Run("new heap restarts the broker and keeps data", func(t *testing.T) {
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url, "--heap", "512m", "--dry-run")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "restart") || strings.Contains(r.Stdout, "format") {
			t.Errorf("dry run for a heap change:\n%s", r.Stdout)
		}
		r = e.provision(ctx, "--swap", "0", "--kafka-url", url, "--heap", "512m")
		harness.MustSucceed(t, r)
		if !strings.Contains(brokerCmdline(t, e), "-Xmx512m") {
			t.Error("broker not running with -Xmx512m")
		}
		if pid := brokerPID(t, e); pid == firstPID {
			t.Error("broker not restarted")
		}
		assertDataKept(ctx, t, e, bootstrap, clusterID)
	})

	t.Run("reprovision --kafka-version upgrades 4.0.0 to 4.0.1 and keeps data", func(t *testing.T) {
		before := brokerPID(t, e)
		// The recorded mirror URL follows the version; heap and swap come from the record.
		r := e.cli.Run(ctx, "reprovision", name, "--kafka-version", "4.0.1")
		harness.MustSucceed(t, r)
		if got := e.sh(t, "readlink /opt/kafka/current"); got != "kafka_2.13-4.0.1" {
			t.Errorf("current -> %s", got)
		}
		if pid := brokerPID(t, e); pid == before {
			t.Error("broker not restarted on the new version")
		}
		if !strings.Contains(brokerCmdline(t, e), "-Xmx512m") {
			t.Error("the recorded heap was not kept")
		}
		if got := e.sh(t, "ls -d /opt/kafka/kafka_2.13-4.0.0"); got == "" {
			t.Error("the previous version was removed (kept for a rollback)")
		}
		assertDataKept(ctx, t, e, bootstrap, clusterID)
	})

	t.Run("air-gapped repair: a damaged install is replaced from an uploaded tarball", func(t *testing.T) {
		e.sh(t, "rm /opt/kafka/current/.kafkaup-sha512 /opt/kafka/current/bin/kafka-storage.sh")
		dist := e.dists["4.0.1"]
		r := e.provision(ctx, "--swap", "0", "--heap", "512m", "--kafka-version", "4.0.1", "--kafka-tarball", dist.Tarball)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stderr, "upload and install Kafka 4.0.1") {
			t.Errorf("no upload:\n%s", r.Stderr)
		}
		if got := e.sh(t, "test -x /opt/kafka/current/bin/kafka-storage.sh && cat /opt/kafka/current/.kafkaup-sha512"); got != dist.SHA512 {
			t.Errorf("install not repaired: %q", got)
		}
		assertDataKept(ctx, t, e, bootstrap, clusterID)
	})

	t.Run("day-2 commands", func(t *testing.T) { day2(ctx, t, e, bootstrap) })
	t.Run("consumer groups", func(t *testing.T) { groups(ctx, t, e, bootstrap) })
	t.Run("top", func(t *testing.T) { top(ctx, t, e, bootstrap) })

	t.Run("non-apt OS is refused", func(t *testing.T) {
		if err := e.host.HideAPT(ctx); err != nil {
			t.Fatal(err)
		}
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url)
		harness.MustFail(t, r, 1, "without apt", "Debian and Ubuntu")
	})
}

// assertDataKept checks messages produced earlier are still there and the
// cluster id did not change.
func assertDataKept(ctx context.Context, t *testing.T, e *env, bootstrap, clusterID string) {
	t.Helper()
	got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
	if err != nil || len(got) < 2 || got[0] != "m1" || got[1] != "m2" {
		t.Errorf("earlier messages: %v, %v", got, err)
	}
	id := e.sh(t, "sed -n 's/^cluster.id=//p' /var/lib/kafka/data/meta.properties")
	if id != clusterID {
		t.Errorf("cluster id changed: %s -> %s", clusterID, id)
	}
}
