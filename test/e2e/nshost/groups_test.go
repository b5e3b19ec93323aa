package nshost_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// groups drives `kafkaup groups` against a real consumer group: kcat's
// balanced consumer (-G) reads a topic and commits, stops, falls behind by a
// known number of records, and kafkaup reports and resets its lag.
func groups(ctx context.Context, t *testing.T, e *env, bootstrap string) {
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }
	const topic, group = "lagging", "billing"
	harness.MustSucceed(t, run("topics", "create", name, topic, "--partitions", "2"))
	if err := harness.KcatProduce(ctx, bootstrap, topic, "a1", "a2", "a3", "a4", "a5"); err != nil {
		t.Fatal(err)
	}
	consumeAll := func() []string {
		t.Helper()
		out, err := harness.Kcat(ctx, "", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", topic)
		if err != nil {
			t.Fatalf("kcat -G: %v", err)
		}
		return strings.Fields(out)
	}
	if got := consumeAll(); len(got) != 5 {
		t.Fatalf("the group read %v, want 5 records", got)
	}
	if err := harness.KcatProduce(ctx, bootstrap, topic, "b1", "b2", "b3"); err != nil {
		t.Fatal(err)
	}
	lag := func() int64 {
		t.Helper()
		r := run("groups", "describe", name, group, "--json")
		harness.MustSucceed(t, r)
		var out struct {
			Result struct {
				Lag        int64 `json:"lag"`
				Partitions []struct {
					Lag int64 `json:"lag"`
				} `json:"partitions"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("describe --json: %v\n%s", err, r.Stdout)
		}
		var sum int64
		for _, p := range out.Result.Partitions {
			sum += p.Lag
		}
		if sum != out.Result.Lag {
			t.Errorf("partition lags add up to %d, total says %d", sum, out.Result.Lag)
		}
		return out.Result.Lag
	}
	t.Run("lag is exactly what was produced since", func(t *testing.T) {
		if got := lag(); got != 3 {
			t.Errorf("lag %d, want 3", got)
		}
		r := run("groups", "list", name)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, group) {
			t.Errorf("groups list:\n%s", r.Stdout)
		}
	})
	t.Run("reset to earliest: plan, then execute, then the records are read again", func(t *testing.T) {
		r := run("groups", "reset-offsets", name, group, "--topic", topic, "--to-earliest")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "Nothing changed") || lag() != 3 {
			t.Errorf("plan changed something:\n%s", r.Stdout)
		}
		harness.MustSucceed(t, run("groups", "reset-offsets", name, group, "--topic", topic, "--to-earliest", "--execute"))
		if got := lag(); got != 8 {
			t.Errorf("lag after the reset %d, want 8", got)
		}
		if got := consumeAll(); len(got) != 8 {
			t.Errorf("after the reset the group read %v, want all 8 records", got)
		}
	})
	t.Run("an active group is refused", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cmd := exec.CommandContext(cctx, "kcat", "-b", bootstrap, "-G", group, "-q", topic)
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := run("groups", "describe", name, group)
			if r.ExitCode == 0 && strings.Contains(r.Stdout, "1 member(s)") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the consumer never joined:\n%s", r)
			}
			time.Sleep(time.Second)
		}
		harness.MustFail(t, run("groups", "reset-offsets", name, group, "--topic", topic, "--to-latest", "--execute"), 2, "active member", "stop its consumers")
		harness.MustFail(t, run("groups", "delete", name, group, "--yes"), 2, "active member")
	})
	t.Run("mistakes", func(t *testing.T) {
		harness.MustFail(t, run("groups", "describe", name, "nosuch"), 2, "no consumer group named nosuch")
		harness.MustFail(t, run("groups", "reset-offsets", name, group, "--topic", topic, "--to-datetime", "yesterday"), 2, "yesterday")
		harness.MustFail(t, run("groups", "reset-offsets", name, group, "--topic", topic), 2)
	})
}

// top checks `kafkaup top --once --json` while a producer runs: a rate on
// its topic, the lag of a stopped group growing between two frames, and
// the node's heap, RSS and disk read on the host.
func top(ctx context.Context, t *testing.T, e *env, bootstrap string) {
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }
	const topic, group = "flowing", "watchers"
	harness.MustSucceed(t, run("topics", "create", name, topic))
	if err := harness.KcatProduce(ctx, bootstrap, topic, "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := harness.Kcat(ctx, "", "-b", bootstrap, "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", topic); err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	produced := make(chan int)
	go func() {
		n := 0
		defer func() { produced <- n }()
		for pctx.Err() == nil {
			if err := harness.KcatProduce(pctx, bootstrap, topic, "a", "b", "c", "d", "e"); err == nil {
				n += 5
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	type frame struct {
		Result struct {
			Topics []struct {
				Name          string  `json:"name"`
				RecordsPerSec float64 `json:"records_per_sec"`
				RateKnown     bool    `json:"rate_known"`
			} `json:"topics"`
			Groups []struct {
				Name string `json:"name"`
				Lag  int64  `json:"lag"`
			} `json:"groups"`
			Nodes []struct {
				HeapUsedBytes int64  `json:"heap_used_bytes"`
				RSSBytes      int64  `json:"rss_bytes"`
				DataFreeBytes int64  `json:"data_free_bytes"`
				Error         string `json:"error"`
			} `json:"nodes"`
		} `json:"result"`
	}
	snapshot := func() (rate float64, lag int64) {
		t.Helper()
		r := run("top", name, "--once", "--json", "--interval", "2s")
		harness.MustSucceed(t, r)
		var f frame
		if err := json.Unmarshal([]byte(r.Stdout), &f); err != nil {
			t.Fatalf("top --json: %v\n%s", err, r.Stdout)
		}
		for _, tp := range f.Result.Topics {
			if tp.Name == topic && tp.RateKnown {
				rate = tp.RecordsPerSec
			}
		}
		lag = -1
		for _, g := range f.Result.Groups {
			if g.Name == group {
				lag = g.Lag
			}
		}
		if len(f.Result.Nodes) != 1 || f.Result.Nodes[0].Error != "" || f.Result.Nodes[0].RSSBytes == 0 || f.Result.Nodes[0].DataFreeBytes == 0 {
			t.Errorf("node stats: %+v", f.Result.Nodes)
		} else if f.Result.Nodes[0].HeapUsedBytes == 0 {
			t.Errorf("no heap in use read from the broker's hsperfdata: %+v", f.Result.Nodes)
		}
		return rate, lag
	}
	rate1, lag1 := snapshot()
	rate2, lag2 := snapshot()
	stop()
	n := <-produced
	t.Logf("while %d records were produced: %.1f and %.1f records/s, the stopped group's lag %d then %d", n, rate1, rate2, lag1, lag2)
	if rate1 <= 0 || rate2 <= 0 {
		t.Errorf("no rate on %s: %.1f, %.1f", topic, rate1, rate2)
	}
	if lag1 <= 0 || lag2 <= lag1 {
		t.Errorf("the stopped group's lag did not grow: %d then %d", lag1, lag2)
	}
	harness.MustFail(t, run("top", name, "--once", "--interval", "1ns"), 2, "--interval")
}
