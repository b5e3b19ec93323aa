package nshost_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// TestInstallDirTooSmall: a disk too small for Kafka under the install dir
// is refused before anything is written, anywhere on the host.
func TestInstallDirTooSmall(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.host.SmallDisk(ctx, "/opt", 100<<20); err != nil {
		t.Fatal(err)
	}
	before := written(t, e)
	if !strings.Contains(before, "\n/root\n") {
		t.Fatalf("the overlay's upper dir lists no /root: %q", before)
	}
	r := e.provision(ctx, "--swap", "0", "--kafka-url", e.url["4.0.0"])
	harness.MustFail(t, r, 1, "only 100M free for /opt/kafka", "installing Kafka needs about 600M", "Nothing on the host was changed")
	t.Logf("refused after %s, exit %d: %s", r.Took.Round(time.Millisecond), r.ExitCode, harness.LastLine(r.Stderr))
	if after := written(t, e); after != before {
		t.Errorf("the refused run wrote to the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if ls := e.sh(t, "ls -A /opt; id kafka 2>/dev/null || true"); ls != "" {
		t.Errorf("written: %q", ls)
	}
}

// written lists everything written on the host so far (its overlay's upper
// dir, without the login records every SSH session adds).
func written(t *testing.T, e *env) string {
	t.Helper()
	out, err := exec.Command("find", e.host.UpperDir, "-not", "(", "-name", "wtmp", "-o", "-name", "btmp", "-o", "-name", "lastlog", ")").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(out), e.host.UpperDir, "")
}
