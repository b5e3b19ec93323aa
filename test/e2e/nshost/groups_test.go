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
		defer cancel()
		cmd := exec.CommandContext(cctx, "kcat", "-b", bootstrap, "-G", group, "-q", topic)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
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
