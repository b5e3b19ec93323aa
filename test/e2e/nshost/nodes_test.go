package nshost_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

func (tr *trio) status(ctx context.Context, t *testing.T) (harness.ClusterStatus, harness.Result) {
	t.Helper()
	return tr.cli.Status(ctx, t, clusterName, "--known-hosts", tr.cli.KnownHosts)
}

// spare starts a fourth namespace host on the trio's LAN, able to fetch
// Kafka from the same mirror URL, and returns it with its LAN address.
func (tr *trio) spare(ctx context.Context, t *testing.T) (*nshost.Host, string) {
	t.Helper()
	h, err := nshost.Start(ctx, nshost.Options{Name: "kafkaup-node4"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close namespace host: %v", err)
		}
	})
	internal, err := tr.lan.Join(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.mirror.AddListener(fmt.Sprintf("%s:%d", h.HostSideAddr, tr.mirror.Port(0))); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Run(ctx, "echo '"+h.HostSideAddr+" kafkaup-mirror' >>/etc/hosts"); err != nil {
		t.Fatal(err)
	}
	return h, internal
}

// tearDown kills node i the hard way: its broker's JVM gets SIGKILL, then
// its namespace host goes. Its public address is made unreachable on this
// machine (a route of type unreachable for its /30), so that the clients
// and kafkaup that still try it fail at once and nothing leaves for the
// default route.
func (tr *trio) tearDown(t *testing.T, i int) {
	t.Helper()
	pid := tr.pids(t)[i]
	tr.sh(t, i, "kill -9 "+pid)
	if err := tr.hosts[i].Close(); err != nil {
		t.Fatal(err)
	}
	addr := tr.hosts[i].Addr
	prefix := addr[:strings.LastIndex(addr, ".")] + ".0/30"
	if out, err := exec.Command("ip", "route", "add", "unreachable", prefix).CombinedOutput(); err != nil {
		t.Fatalf("ip route add unreachable %s: %v\n%s", prefix, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "route", "del", "unreachable", prefix).CombinedOutput(); err != nil {
			t.Errorf("ip route del unreachable %s: %v\n%s", prefix, err, out)
		}
	})
	t.Logf("node %d: broker pid %s killed (SIGKILL), host %s torn down", i+1, pid, addr)
}

// TestClusterNodeFailureAndReplace: on a 3-node cluster with a no-loss
// checker producing (acks=all) throughout, status reports a healthy
// cluster; node 3 is killed (its JVM, then its host) and producing goes
// on while status exits 1 naming node 3 as down, with the partitions it
// left under-replicated; node replace puts node 3 on a fourth host, after
// which the quorum has 3 voters (node 3 with its new directory id), every
// partition is back to full ISR, kcat lists 3 brokers, status exits 0,
// and no acknowledged record was lost. The same node replace again finds
// nothing to replace.
func TestClusterNodeFailureAndReplace(t *testing.T) {
	tr := setupTrio(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	harness.MustSucceed(t, tr.provision(ctx, "--internal-host", strings.Join(tr.internal[:], ",")))
	spare, spareInternal := tr.spare(ctx, t)
	old := loadRecord(t, tr.cli)

	harness.MustSucceed(t, tr.cli.Run(ctx, "topics", "create", clusterName, "checked", "--partitions", "3"))
	kc, err := kafkaclient.Dial(ctx, tr.hosts[0].Addr+":9092,"+tr.hosts[1].Addr+":9092,"+tr.hosts[2].Addr+":9092")
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	check, err := kafkaclient.StartCheck(ctx, kc, kafkaclient.CheckOptions{Topic: "checked"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			check.Stop(context.Background())
		}
	}()

	t.Run("a healthy cluster", func(t *testing.T) {
		st, r := tr.status(ctx, t)
		if r.ExitCode != 0 || !st.OK || !st.Result.Healthy {
			t.Fatalf("status on a healthy cluster:\n%s", r)
		}
		leaders := 0
		for _, n := range st.Result.Nodes {
			if !n.SSH || !n.Kafka || n.Down {
				t.Errorf("node %+v", n)
			}
			if n.Quorum == "leader" {
				leaders++
			}
		}
		if len(st.Result.Nodes) != 3 || leaders != 1 || len(st.Result.Quorum.Voters) != 3 || len(st.Result.Partitions.UnderReplicated) != 0 {
			t.Errorf("%d nodes, %d leaders, %d voters, %d under-replicated:\n%s", len(st.Result.Nodes), leaders, len(st.Result.Quorum.Voters), len(st.Result.Partitions.UnderReplicated), r.Stdout)
		}
		text := tr.cli.Run(ctx, append([]string{"status", clusterName}, "--known-hosts", tr.cli.KnownHosts)...)
		harness.MustSucceed(t, text)
		t.Logf("status of a healthy cluster (%s):\n%s", text.Took.Round(time.Millisecond), text.Stdout)
	})
	if t.Failed() {
		return
	}

	tr.tearDown(t, 2)
	down := tr.hosts[2].Addr
	t.Run("node 3 down: status names it and the under-replicated partitions", func(t *testing.T) {
		// The broker is fenced after its session times out (9s) and the
		// ISRs shrink after replica.lag.time.max.ms (30s): ask until both.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			st, r := tr.status(ctx, t)
			all := strings.Join(st.Result.Problems, "\n")
			named := strings.Contains(all, fmt.Sprintf("node 3 (%s) is down", down))
			if r.ExitCode == 1 && named && len(st.Result.Partitions.UnderReplicated) > 0 && len(st.Result.Nodes) == 3 && st.Result.Nodes[2].Down {
				// Bounded, not instant: ~21s was seen in 2 of 6 runs,
				// after the quorum leader died (see the README).
				if r.Took > 30*time.Second {
					t.Errorf("status took %s with a node down", r.Took)
				}
				text := tr.cli.Run(ctx, append([]string{"status", clusterName}, "--known-hosts", tr.cli.KnownHosts)...)
				if text.Took > 30*time.Second {
					t.Errorf("status took %s with a node down", text.Took)
				}
				for _, want := range []string{"node 3 (" + down + ") is down", "kafkaup node replace " + clusterName + " --node 3", "partitions are under-replicated (node 3 is out of the ISR of", "(DOWN)"} {
					if text.ExitCode != 1 || !strings.Contains(text.Stdout, want) {
						t.Errorf("status does not say %q with exit 1:\n%s", want, text)
					}
				}
				t.Logf("status with node 3 down (%s, exit %d):\n%s", text.Took.Round(time.Millisecond), text.ExitCode, text.Stdout)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never named node 3 down with under-replicated partitions:\n%s", r)
			}
			time.Sleep(5 * time.Second)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("node replace onto a fourth host", func(t *testing.T) {
		args := append([]string{"node", "replace", clusterName, "--node", "3", "--host", spare.Addr, "--internal-host", spareInternal}, tr.cli.ConnArgs("root")...)
		r := tr.cli.Run(ctx, args...)
		harness.MustSucceed(t, r)
		t.Logf("node replace took %s:\n%s\n%s", r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
		rec := loadRecord(t, tr.cli)
		n3 := rec.Nodes[2]
		if n3.Host != spare.Addr || n3.InternalHost != spareInternal || n3.DirectoryID == old.Nodes[2].DirectoryID {
			t.Errorf("recorded node 3: %+v (was %+v)", n3, old.Nodes[2])
		}
		meta := strings.TrimSpace(mustRun(t, spare, "cat /var/lib/kafka/data/meta.properties"))
		if !strings.Contains(meta, "directory.id="+n3.DirectoryID) || !strings.Contains(meta, "node.id=3") {
			t.Errorf("the new host's meta.properties:\n%s", meta)
		}

		st, sr := tr.status(ctx, t)
		if sr.ExitCode != 0 || !st.Result.Healthy {
			t.Fatalf("status after the replacement:\n%s", sr)
		}
		voters := map[int]string{}
		for _, v := range st.Result.Quorum.Voters {
			voters[v.ID] = v.DirectoryID
		}
		if len(voters) != 3 || voters[3] != n3.DirectoryID || voters[1] != old.Nodes[0].DirectoryID || voters[2] != old.Nodes[1].DirectoryID {
			t.Errorf("voters %v; want nodes 1 and 2 as before and node 3 with %s", voters, n3.DirectoryID)
		}
		if p := st.Result.Partitions; len(p.UnderReplicated)+len(p.UnderMinISR)+len(p.Offline) != 0 {
			t.Errorf("partitions not healthy: %+v", p)
		}
		md, err := harness.KcatMetadata(ctx, tr.hosts[0].Addr+":9092")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(md, "3 brokers:") || !strings.Contains(md, "broker 3 at "+spare.Addr+":9092") {
			t.Errorf("kcat -L:\n%s", md)
		}
		text := tr.cli.Run(ctx, append([]string{"status", clusterName}, "--known-hosts", tr.cli.KnownHosts)...)
		harness.MustSucceed(t, text)
		t.Logf("status after the replacement:\n%s", text.Stdout)

		again := tr.cli.Run(ctx, args...)
		harness.MustSucceed(t, again)
		if !strings.Contains(again.Stderr, "nothing to replace") || again.Took > 30*time.Second {
			t.Errorf("the same node replace again (%s):\n%s", again.Took, again)
		}
		if after := loadRecord(t, tr.cli); fmt.Sprint(after.Nodes) != fmt.Sprint(rec.Nodes) {
			t.Errorf("a rerun changed the record: %+v -> %+v", rec.Nodes, after.Nodes)
		}
	})

	stopCtx, stopCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer stopCancel()
	report, err := check.Stop(stopCtx)
	stopped = true
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checker over the whole test: %s", report)
	if report.Lost != 0 || report.Acked == 0 {
		t.Errorf("checker: %s; want 0 lost", report)
	}
}

func mustRun(t *testing.T, h *nshost.Host, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
