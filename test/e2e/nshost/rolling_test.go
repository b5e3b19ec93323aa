package nshost_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// TestClusterRolling: on a 3-node cluster, with a no-loss checker
// producing (acks=all, idempotent) and consuming all along: a roll refuses
// to start while a partition is under-replicated and changes nothing, and
// so does a broker stop of another node; a
// rolling restart restarts every broker once, followers first and the
// active controller last; a rolling upgrade 4.0.0 -> 4.0.1 leaves every
// broker on 4.0.1 with the data kept and the finalize step reported;
// broker stop and start without --node take the whole cluster down and
// up at once. No acknowledged record is lost in any of them.
func TestClusterRolling(t *testing.T) {
	tr := setupTrio(t, "4.0.1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r := tr.provision(ctx, "--internal-host", strings.Join(tr.internal[:], ","))
	harness.MustSucceed(t, r)
	t.Logf("3-node provision took %s", r.Took.Round(time.Millisecond))

	cl, err := kafkaclient.Dial(ctx, strings.ReplaceAll(tr.publicList(), ",", ":9092,")+":9092")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.CreateTopic(ctx, kafkaclient.TopicSpec{Name: "rollcheck", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	kept := []string{"before-1", "before-2", "before-3"}
	if err := cl.CreateTopic(ctx, kafkaclient.TopicSpec{Name: "kept", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Produce(ctx, "kept", [][]byte{[]byte(kept[0]), []byte(kept[1]), []byte(kept[2])}); err != nil {
		t.Fatal(err)
	}
	// keptRecords checks the records produced at the start are all still
	// there, after what.
	keptRecords := func(t *testing.T, what string) {
		t.Helper()
		var got []string
		if _, err := cl.Consume(ctx, "kept", true, len(kept), 30*time.Second, func(m kafkaclient.Message) error {
			got = append(got, string(m.Value))
			return nil
		}); err != nil || len(got) != len(kept) {
			t.Errorf("records produced before %s: %v, %v", what, got, err)
		}
	}
	// checked runs fn with the checker producing and consuming around it.
	checked := func(t *testing.T, fn func()) kafkaclient.CheckReport {
		t.Helper()
		k, err := kafkaclient.StartCheck(ctx, cl, kafkaclient.CheckOptions{Topic: "rollcheck"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // a steady state before the roll
		fn()
		time.Sleep(2 * time.Second)
		stopCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		rep, err := k.Stop(stopCtx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("checker: %v", rep)
		if rep.Lost != 0 || rep.Acked == 0 {
			t.Errorf("acknowledged records lost: %v", rep)
		}
		return rep
	}

	t.Run("produce --check reports from the CLI", func(t *testing.T) {
		r := tr.cli.Run(ctx, "produce", clusterName, "rollcheck", "--check", "3s")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, ", lost 0, ") || !strings.Contains(r.Stdout, "longest stall") {
			t.Errorf("produce --check:\n%s", r)
		}
	})

	t.Run("a roll refuses to start while a partition is under-replicated", func(t *testing.T) {
		checked(t, func() {
			harness.MustSucceed(t, tr.cli.Run(ctx, "broker", "stop", clusterName, "--node", "3"))
			urp := waitHealth(t, ctx, cl, func(h *kafkaclient.PartitionHealth) bool { return len(h.NotInISR[3]) > 0 })
			t.Logf("with node 3 stopped: %d partitions under-replicated", len(urp.UnderReplicated))
			before := [2]string{nodePID(t, tr, 0), nodePID(t, tr, 1)}
			var conf [3]string
			for i := range tr.hosts {
				conf[i] = tr.sh(t, i, "cat /etc/kafka/* | md5sum")
			}
			for _, args := range [][]string{{"broker", "restart", clusterName}, {"reprovision", clusterName, "--heap", "300m"}} {
				r := tr.cli.Run(ctx, args...)
				harness.MustFail(t, r, 1, "did not start, and no node was changed", "under-replicated", "node 3 is down or behind", "kafkaup broker start trio --node 3")
				t.Logf("kafkaup %s refused:\n%s", strings.Join(args, " "), r.Stderr)
			}
			if after := [2]string{nodePID(t, tr, 0), nodePID(t, tr, 1)}; after != before {
				t.Errorf("brokers restarted by a refused roll: pids %v -> %v", before, after)
			}
			for i := range tr.hosts {
				if now := tr.sh(t, i, "cat /etc/kafka/* | md5sum"); now != conf[i] {
					t.Errorf("a refused reprovision changed node %d's files in /etc/kafka", i+1)
				}
			}
			r := tr.cli.Run(ctx, "broker", "stop", clusterName, "--node", "2")
			harness.MustFail(t, r, 1, "node 2 of trio was not stopped", "missing from their ISR: node 3", "--force")
			t.Logf("kafkaup broker stop --node 2 refused:\n%s", r.Stderr)
			if after := [2]string{nodePID(t, tr, 0), nodePID(t, tr, 1)}; after != before {
				t.Errorf("brokers stopped by a refused stop: pids %v -> %v", before, after)
			}
			harness.MustSucceed(t, tr.cli.Run(ctx, "broker", "start", clusterName, "--node", "3"))
			waitHealth(t, ctx, cl, func(h *kafkaclient.PartitionHealth) bool { return h.OK() && len(h.NotInISR) == 0 })
		})
	})

	t.Run("a rolling restart restarts every broker once, the active controller last", func(t *testing.T) {
		before := tr.pids(t)
		q, err := cl.Quorum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var r harness.Result
		rep := checked(t, func() { r = tr.cli.Run(ctx, "broker", "restart", clusterName) })
		harness.MustSucceed(t, r)
		t.Logf("rolling restart in %s (leader before: node %d):\n%s\n%s", r.Took.Round(time.Millisecond), q.LeaderID, r.Stderr, r.Stdout)
		after := tr.pids(t)
		for i := range before {
			if before[i] == after[i] {
				t.Errorf("node %d's broker was not restarted (pid %s)", i+1, before[i])
			}
		}
		order := rollOrder(r.Stderr, "restart")
		if len(order) != 3 || order[0].role != "follower" || order[1].role != "follower" || order[2].role != "active controller" {
			t.Errorf("roll order %+v, want two followers then the active controller", order)
		}
		t.Logf("rolling restart: longest producer stall %s, p99 %s, duplicated %d", rep.LongestStall, rep.P99, rep.Duplicated)
	})

	t.Run("a rolling upgrade to 4.0.1 keeps the data and finalizes", func(t *testing.T) {
		var r harness.Result
		rep := checked(t, func() { r = tr.cli.Run(ctx, "reprovision", clusterName, "--kafka-version", "4.0.1") })
		harness.MustSucceed(t, r)
		t.Logf("rolling upgrade in %s:\n%s\n%s", r.Took.Round(time.Millisecond), r.Stderr, r.Stdout)
		if order := rollOrder(r.Stderr, "reprovision"); len(order) != 3 || order[2].role != "active controller" {
			t.Errorf("roll order %+v", order)
		}
		if !strings.Contains(r.Stdout, "metadata.version is already at 4.0-IV3, the newest every node running Kafka 4.0.1 supports") {
			t.Errorf("no finalize report:\n%s", r.Stdout)
		}
		for i := range tr.hosts {
			pid := nodePID(t, tr, i)
			jars := tr.sh(t, i, "ls -l /proc/"+pid+"/fd 2>/dev/null | grep -o 'kafka_2.13-4.0.[0-9]/libs/kafka-clients-4.0.[0-9].jar' | sort -u")
			if jars != "kafka_2.13-4.0.1/libs/kafka-clients-4.0.1.jar" {
				t.Errorf("node %d's broker (pid %s) has these Kafka jars open: %q, want 4.0.1's only", i+1, pid, jars)
			}
		}
		mv, err := cl.MetadataVersion(ctx)
		if err != nil || len(mv.Supported) != 3 || kafkaclient.MetadataVersionName(mv.Finalized) != "4.0-IV3" {
			t.Errorf("metadata.version after the upgrade: %+v, %v", mv, err)
		}
		keptRecords(t, "the upgrade")
		t.Logf("rolling upgrade: longest producer stall %s, p99 %s, duplicated %d", rep.LongestStall, rep.P99, rep.Duplicated)
	})

	t.Run("broker stop and start without --node act on every node at once and keep the data", func(t *testing.T) {
		rep := checked(t, func() {
			r := tr.cli.Run(ctx, "broker", "stop", clusterName)
			harness.MustSucceed(t, r)
			t.Logf("stop of the whole cluster: %s", strings.TrimSpace(r.Stdout))
			if !strings.Contains(r.Stdout, "stopped on all 3 nodes at once") {
				t.Errorf("broker stop:\n%s", r)
			}
			for i := range tr.hosts {
				if pid := nodePID(t, tr, i); pid != "" {
					t.Errorf("node %d's broker still runs (pid %s) after broker stop", i+1, pid)
				}
			}
			r = tr.cli.Run(ctx, "broker", "start", clusterName)
			harness.MustSucceed(t, r)
			t.Logf("start of the whole cluster: %s", strings.TrimSpace(r.Stdout))
			waitHealth(t, ctx, cl, func(h *kafkaclient.PartitionHealth) bool { return h.OK() && len(h.NotInISR) == 0 })
		})
		keptRecords(t, "the stop")
		t.Logf("whole-cluster stop and start: longest producer stall %s, duplicated %d, failed attempts %d", rep.LongestStall, rep.Duplicated, rep.Errors)
	})
}

type rolled struct {
	node int
	role string
}

// rollOrder reads the roll's progress lines ("node 2 (host), follower: restart").
func rollOrder(stderr, verb string) []rolled {
	var out []rolled
	for _, m := range regexp.MustCompile(`node (\d) \([^)]*\), (follower|active controller): `+verb).FindAllStringSubmatch(stderr, -1) {
		var n int
		fmt.Sscan(m[1], &n)
		out = append(out, rolled{n, m[2]})
	}
	return out
}

// nodePID is the broker's pid on node i ("" when none runs).
func nodePID(t *testing.T, tr *trio, i int) string {
	return tr.sh(t, i, `for f in /proc/[0-9]*/cmdline; do if tr '\0' ' ' <"$f" 2>/dev/null | grep -q ' kafka\.Kafka '; then p=${f#/proc/}; echo ${p%/cmdline}; fi; done | head -n 1`)
}

// waitHealth polls the partitions' health until ok says so (3 minutes).
func waitHealth(t *testing.T, ctx context.Context, cl *kafkaclient.Client, ok func(*kafkaclient.PartitionHealth) bool) *kafkaclient.PartitionHealth {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		h, err := cl.PartitionHealth(ctx)
		if err == nil && ok(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition health not as expected after 3m: %+v, %v", h, err)
		}
		time.Sleep(time.Second)
	}
}
