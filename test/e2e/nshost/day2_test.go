package nshost_test

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// day2 drives every day-2 command against the provisioned broker, the way a
// user would, and checks the results with real clients.
func day2(ctx context.Context, t *testing.T, e *env, bootstrap string) {
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }

	t.Run("status healthy", func(t *testing.T) {
		r := run("status", name)
		harness.MustSucceed(t, r)
		for _, want := range []string{"healthy", "reachable from here  yes", "controller", "kafka version", "4.0.1"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("status lacks %q:\n%s", want, r.Stdout)
			}
		}
	})

	t.Run("env", func(t *testing.T) {
		r := run("env", name)
		harness.MustSucceed(t, r)
		if strings.TrimSpace(r.Stdout) != "KAFKA_BOOTSTRAP_SERVERS="+bootstrap {
			t.Errorf("env: %q", r.Stdout)
		}
	})

	t.Run("topics round trip and mistakes", func(t *testing.T) {
		harness.MustSucceed(t, run("topics", "create", name, "orders", "--partitions", "3", "--config", "retention.ms=3600000"))
		r := run("topics", "list", name)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "orders") || strings.Contains(r.Stdout, "_kafkaup_verify") {
			t.Errorf("topics list:\n%s", r.Stdout)
		}
		r = run("topics", "describe", name, "orders")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "3 partitions") || !strings.Contains(r.Stdout, "retention.ms=3600000") {
			t.Errorf("describe:\n%s", r.Stdout)
		}
		// kcat sees the same topic over the network.
		md, err := harness.KcatMetadata(ctx, bootstrap)
		if err != nil || !strings.Contains(md, `topic "orders" with 3 partitions`) {
			t.Errorf("kcat -L: %v\n%s", err, md)
		}
		harness.MustFail(t, run("topics", "create", name, "orders"), 1, "already exists")
		harness.MustFail(t, run("topics", "create", name, "bad/name"), 2, "bad/name")
		harness.MustFail(t, run("topics", "create", name, ".."), 2)
		harness.MustFail(t, run("topics", "create", name, "twice", "--replication-factor", "2"), 1, "replication factor 2")
		harness.MustFail(t, run("topics", "create", name, "cfg", "--config", "retention.ms"), 2, "--config")
		harness.MustFail(t, run("topics", "describe", name, "missing"), 1, "missing")
		harness.MustFail(t, run("topics", "delete", name, "missing", "--yes"), 1, "missing")
		harness.MustFail(t, run("topics", "delete", name, "orders"), 2, "--yes")
		harness.MustSucceed(t, run("topics", "delete", name, "orders", "--yes"))
		if r := run("topics", "list", name); strings.Contains(r.Stdout, "orders") {
			t.Errorf("orders still listed after delete:\n%s", r.Stdout)
		}
	})

	t.Run("topics via ssh", func(t *testing.T) {
		harness.MustSucceed(t, run("topics", "create", name, "viassh", "--via-ssh"))
		r := run("topics", "list", name, "--via-ssh")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "viassh") {
			t.Errorf("list via ssh:\n%s", r)
		}
	})

	t.Run("produce and consume", func(t *testing.T) {
		harness.MustSucceed(t, run("topics", "create", name, "smoke"))
		harness.MustSucceed(t, run("produce", name, "smoke", "--message", "one", "--message", "two"))
		r := run("consume", name, "smoke", "--from-beginning", "--max", "2")
		harness.MustSucceed(t, r)
		if strings.Fields(r.Stdout)[0] != "one" || len(strings.Fields(r.Stdout)) != 2 {
			t.Errorf("consumed %q", r.Stdout)
		}
		// What kafkaup produced, kcat reads.
		if got, err := harness.KcatConsumeAll(ctx, bootstrap, "smoke"); err != nil || strings.Join(got, ",") != "one,two" {
			t.Errorf("kcat read %v, %v", got, err)
		}
		harness.MustFail(t, run("produce", name, "nosuchtopic", "--message", "x"), 1, "nosuchtopic")
	})

	t.Run("ssh runs a command with its exit status", func(t *testing.T) {
		harness.MustSucceed(t, run("ssh", name, "--", "true"))
		r := run("ssh", name, "--", "exit 3")
		if r.ExitCode != 3 {
			t.Errorf("exit status %d, want 3:\n%s", r.ExitCode, r)
		}
		r = run("ssh", name, "--", "hostname")
		if strings.TrimSpace(r.Stdout) != "kafkaup-e2e" {
			t.Errorf("hostname: %q", r.Stdout)
		}
	})

	t.Run("logs, and -f streams new lines", func(t *testing.T) {
		r := run("logs", name, "--lines", "5")
		harness.MustSucceed(t, r)
		if n := len(strings.Split(strings.TrimSpace(r.Stdout), "\n")); n != 5 {
			t.Errorf("logs --lines 5 printed %d lines", n)
		}
		fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(fctx, e.cli.Bin, "logs", name, "-f", "--lines", "0")
		cmd.Env = append(cmd.Environ(), "KAFKAUP_HOME="+e.cli.Home)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		time.Sleep(2 * time.Second) // the tail is running
		harness.MustSucceed(t, run("topics", "create", name, "logged-topic"))
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "logged-topic") {
				found = true
				break
			}
		}
		if !found {
			t.Error("logs -f did not show the broker's lines about the new topic")
		}
	})

	t.Run("broker stop makes status unhealthy; start brings it back", func(t *testing.T) {
		r := run("broker", "stop", name)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "stopped in") {
			t.Errorf("stop: %s", r.Stdout)
		}
		r = run("status", name)
		if r.ExitCode != 1 || !strings.Contains(r.Stdout, "UNHEALTHY") || !strings.Contains(r.Stdout, "broker start") {
			t.Errorf("status of a stopped broker:\n%s", r)
		}
		harness.MustSucceed(t, run("broker", "start", name))
		harness.MustSucceed(t, run("status", name))
		harness.MustSucceed(t, run("broker", "restart", name))
		if got, err := harness.KcatConsumeAll(ctx, bootstrap, "smoke"); err != nil || strings.Join(got, ",") != "one,two" {
			t.Errorf("after restart: %v, %v", got, err)
		}
	})

	t.Run("reprovision converges from the record", func(t *testing.T) {
		r := run("reprovision", name)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing changed") {
			t.Errorf("reprovision of a converged broker:\n%s", r)
		}
		r = run("list")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, name) || !strings.Contains(r.Stdout, "4.0.1") {
			t.Errorf("list:\n%s", r.Stdout)
		}
		// Runs that never reached a host leave no record behind.
		if strings.Contains(r.Stdout, "host-127-0-0-1") || strings.Contains(r.Stdout, "host-10-213") {
			t.Errorf("records of hosts never reached:\n%s", r.Stdout)
		}
	})
}
