package nshost_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// tgzPath is the mirror's URL path of a version's tarball.
func tgzPath(version string) string {
	return "/kafka/" + version + "/kafka_2.13-" + version + ".tgz"
}

// requestsFor lists the mirror's answers to GETs of path, in order
// ("503", "200", "truncated"...).
func requestsFor(m *kafkadist.Mirror, path string) []string {
	var out []string
	for _, r := range m.Requests() {
		if rest, ok := strings.CutPrefix(r, "GET "+path+" "); ok {
			out = append(out, rest)
		}
	}
	return out
}

var retryRE = regexp.MustCompile(`kafkaup: note: attempt (\d+) of (\d+) to download (\S+) failed: (.*); retrying in (\d+)s`)

// retries returns the retry lines fetch-kafka.sh logged for url: attempt
// number, reason and the delay before the next one.
func retries(log, url string) [][]string {
	var out [][]string
	for _, m := range retryRE.FindAllStringSubmatch(log, -1) {
		if m[3] == url {
			out = append(out, []string{m[1], m[4], m[5]})
		}
	}
	return out
}

func lastLog(t *testing.T, e *env) string {
	t.Helper()
	log, err := e.cli.LastLog()
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// TestMirrorFaults: a flaky mirror costs retries, never a broken install.
// The mirror answers 503 to the first two requests of a fresh install, then
// an upgrade's download is cut short twice: once so that curl can tell (a
// Content-Length and half the body) and once so that only the checksum can
// (no Content-Length, half the body, a clean close).
func TestMirrorFaults(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bootstrap := e.host.Addr + ":9092"
	injected := map[string]int{}
	seen := 0 // retries in the logs

	t.Run("503 twice: retried with backoff, then installed", func(t *testing.T) {
		url, path := e.url["4.0.0"], tgzPath("4.0.0")
		e.mirror.FailNext(path, 2, http.StatusServiceUnavailable)
		injected["HTTP 503"] += 2
		r := e.provision(ctx, "--swap", "0", "--kafka-url", url)
		harness.MustSucceed(t, r)
		got := retries(lastLog(t, e), url)
		seen += len(got)
		want := [][]string{{"1", "HTTP 503", "2"}, {"2", "HTTP 503", "4"}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("retries logged: %v, want %v", got, want)
		}
		// The user sees them as they happen, under the step's line.
		if strings.Count(r.Stderr, "HTTP 503; retrying in") != 2 {
			t.Errorf("the retries are not shown in the progress:\n%s", r.Stderr)
		}
		if got := requestsFor(e.mirror, path); strings.Join(got, ",") != "503,503,200" {
			t.Errorf("mirror answered %v", got)
		}
		if err := harness.KcatProduce(ctx, bootstrap, "e2e", "m1"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("download cut short twice: fetched again, a partial file is never unpacked", func(t *testing.T) {
		url, path, dist := e.url["4.0.1"], tgzPath("4.0.1"), e.dists["4.0.1"]
		e.mirror.TruncateNext(path, 1)
		e.mirror.CutNext(path, 1)
		injected["truncated body (Content-Length)"]++
		injected["cut body (no Content-Length)"]++
		r := e.provision(ctx, "--swap", "0", "--kafka-version", "4.0.1", "--kafka-url", url)
		harness.MustSucceed(t, r)
		log := lastLog(t, e)
		got := retries(log, url)
		seen += len(got)
		if len(got) != 2 || !strings.Contains(got[0][1], "(18)") || !strings.Contains(got[1][1], "wrong sha512 (cut short or damaged in transit)") {
			t.Errorf("retries logged: %q", got)
		}
		if got := requestsFor(e.mirror, path); strings.Join(got, ",") != "truncated,cut,200" {
			t.Errorf("mirror answered %v", got)
		}
		// Verified once, after both retries; tar never saw a short file.
		if n := strings.Count(log, "kafkaup: sha512 verified"); n != 1 || strings.Index(log, "kafkaup: sha512 verified") < strings.LastIndex(log, "retrying in") {
			t.Errorf("sha512 verified %d times, or before the last retry:\n%s", n, log)
		}
		for _, bad := range []string{"unexpected end of file", "tar: "} {
			if strings.Contains(log, bad) {
				t.Errorf("the log has %q: a short file was unpacked", bad)
			}
		}
		if ls := e.sh(t, "ls -A /opt/kafka | tr '\\n' ' '"); ls != ".download current kafka_2.13-4.0.0 kafka_2.13-4.0.1" {
			t.Errorf("/opt/kafka holds %q", ls)
		}
		if left := e.sh(t, "find /opt/kafka/.download -mindepth 1; find /opt/kafka /root /tmp -name '*.part'"); left != "" {
			t.Errorf("left behind: %s", left)
		}
		if sum := e.sh(t, "readlink /opt/kafka/current; cat /opt/kafka/current/.kafkaup-sha512"); sum != "kafka_2.13-4.0.1\n"+dist.SHA512 {
			t.Errorf("installed: %q", sum)
		}
		got2, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
		if err != nil || strings.Join(got2, ",") != "m1" {
			t.Errorf("after the upgrade: %v, %v", got2, err)
		}
	})
	t.Logf("faults injected: %v; served by the mirror: %d; retries in kafkaup's logs: %d", injected, e.mirror.FaultsServed(), seen)
}

// TestMirrorDown: a mirror that fails every request ends in a clear error
// after the retries (with backoff between them), with nothing under the
// install dir; once the mirror recovers, a rerun converges. A checksum file
// that cannot be had stops the run before any download, with its own error.
func TestMirrorDown(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	url, path := e.url["4.0.0"], tgzPath("4.0.0")

	// The host fetches the .sha512 (retrying a 503, not a 404) and kafkaup
	// reads it; with none to be had, the tarball is never asked for.
	e.mirror.FailNext(path+".sha512", 1, http.StatusServiceUnavailable)
	e.mirror.FailNext(path+".sha512", 1, http.StatusNotFound)
	r := e.provision(ctx, "--swap", "0", "--kafka-url", url)
	harness.MustFail(t, r, 1, "could not get the sha512 checksum of kafka_2.13-4.0.0: "+url+".sha512 (HTTP 404). Nothing was installed.", "--kafka-sha512")
	if got := retries(lastLog(t, e), url+".sha512"); fmt.Sprint(got) != "[[1 HTTP 503 2]]" {
		t.Errorf("checksum retries logged: %v", got)
	}
	if got := requestsFor(e.mirror, path+".sha512"); strings.Join(got, ",") != "503,404" {
		t.Errorf("mirror answered %v for the checksum", got)
	}
	if got := requestsFor(e.mirror, path); len(got) != 0 {
		t.Errorf("the tarball was downloaded without a checksum: %v", got)
	}
	if left := e.sh(t, "ls -A /opt/kafka 2>/dev/null | grep -v '^.download$' || true"); left != "" {
		t.Errorf("after the failed checksum /opt/kafka holds %q", left)
	}

	checksumFaults := e.mirror.FaultsServed()

	e.mirror.FailNext(path, 1<<20, http.StatusServiceUnavailable)
	r = e.provision(ctx, "--swap", "0", "--kafka-url", url)
	harness.MustFail(t, r, 1, "could not download kafka_2.13-4.0.0.tgz: "+url+" (HTTP 503, on all 5 attempts)",
		"Nothing was installed", "--kafka-url with another mirror", "--kafka-tarball", "rerun")
	got := retries(lastLog(t, e), url)
	var delays []string
	for _, g := range got {
		delays = append(delays, g[2])
	}
	if strings.Join(delays, ",") != "2,4,8,16" {
		t.Errorf("delays between attempts %v, want 2,4,8,16 (s)", delays)
	}
	if r.Took < 30*time.Second {
		t.Errorf("gave up after %s, before the backoff (30s in all) ran out", r.Took)
	}
	served := len(requestsFor(e.mirror, path))
	if served != 5 {
		t.Errorf("the mirror saw %d downloads, want 5", served)
	}
	if ls := e.sh(t, "ls -A /opt/kafka; find /opt/kafka/.download -mindepth 1"); ls != ".download" {
		t.Errorf("after the failed download /opt/kafka holds %q", ls)
	}
	if pid := brokerPID(t, e); pid != "" {
		t.Errorf("a broker runs: %s", pid)
	}
	failedFor := r.Took

	e.mirror.ClearFaults(path)
	r = e.provision(ctx, "--swap", "0", "--kafka-url", url)
	harness.MustSucceed(t, r)
	r = e.provision(ctx, "--swap", "0", "--kafka-url", url)
	harness.MustSucceed(t, r)
	if !strings.Contains(r.Stdout, "nothing changed") {
		t.Errorf("not converged:\n%s", r)
	}
	t.Logf("faults injected: HTTP 503 on every download, %d served; the run gave up after %s with delays %vs between attempts", e.mirror.FaultsServed()-checksumFaults, failedFor.Round(100*time.Millisecond), delays)
}
