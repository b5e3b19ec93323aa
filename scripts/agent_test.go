package scripts

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// runAgent runs the rendered fetch-agent.sh as this (root) user.
func runAgent(t *testing.T, in FetchAgent) (string, int) {
	t.Helper()
	script, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", string(script))
	cmd.Env = append(os.Environ(), "LOCK_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestFetchAgent runs fetch-agent.sh against a local mirror: a good jar is
// verified and put in place whole; a mirror error is retried; a wrong
// checksum or a wrong upload installs nothing and says what to do.
func TestFetchAgent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("fetch-agent.sh gives the jar to root: run as root")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	jar := []byte("PK\x03\x04 not really a jar, but bytes with a known sha256")
	sum := sha256.Sum256(jar)
	want := hex.EncodeToString(sum[:])
	var fail500 atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail500.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write(jar)
	}))
	defer srv.Close()
	url := srv.URL + "/jmx_prometheus_javaagent-1.0.1.jar"

	installed := func(t *testing.T, path string) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(jar) {
			t.Fatalf("jar at %s: %q, %v", path, got, err)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
			t.Errorf("jar mode %v, want 0644 (the kafka user reads it)", st.Mode().Perm())
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".fetch.*")); len(left) > 0 {
			t.Errorf("work dirs left behind: %v", left)
		}
	}

	t.Run("download, after a mirror error", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jmx-exporter", "jmx_prometheus_javaagent-1.0.1.jar")
		fail500.Store(1)
		out, code := runAgent(t, FetchAgent{AgentPath: path, URLs: []string{url}, SHA256: want, DownloadRetries: 2})
		if code != 0 || !strings.Contains(out, "attempt 1 of 3") || !strings.Contains(out, "sha256 verified") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		installed(t, path)
	})

	t.Run("wrong checksum installs nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jmx_prometheus_javaagent-1.0.1.jar")
		out, code := runAgent(t, FetchAgent{AgentPath: path, URLs: []string{url}, SHA256: strings.Repeat("0", 64), DownloadRetries: 2})
		if code != 3 || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "got "+want+" twice") || !strings.Contains(out, "--metrics-agent-url") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("a jar was installed: %v", err)
		}
	})

	t.Run("uploaded jar", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "lib", "jmx_prometheus_javaagent-1.0.1.jar")
		staged := filepath.Join(dir, "staging.jar")
		os.WriteFile(staged, jar, 0o600)
		out, code := runAgent(t, FetchAgent{AgentPath: path, URLs: []string{"http://127.0.0.1:1/never-asked.jar"}, SHA256: want, LocalAgent: staged})
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		installed(t, path)
		if _, err := os.Stat(staged); !os.IsNotExist(err) {
			t.Error("the staged upload was left behind")
		}

		os.WriteFile(staged, []byte("another file"), 0o600)
		os.Remove(path)
		out, code = runAgent(t, FetchAgent{AgentPath: path, SHA256: want, LocalAgent: staged})
		if code != 3 || !strings.Contains(out, "checksum mismatch for the uploaded") || !strings.Contains(out, "--metrics-agent-jar") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("a wrong upload was installed: %v", err)
		}
	})
}

// TestChecksumOf: lib.sh picks the digest by the expected one's length, so
// Kafka's sha512 and the agent's sha256 go through one fetch.
func TestChecksumOf(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("abc"), 0o644)
	script := "checksum_name " + strings.Repeat("0", 64) + "; checksum_of " + strings.Repeat("0", 64) + " " + Quote(f) +
		"; checksum_name " + strings.Repeat("0", 128) + "; checksum_of " + strings.Repeat("0", 128) + " " + Quote(f)
	out, code := runLib(t, "", script)
	want := "sha256\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nsha512\n" +
		"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f\n"
	if code != 0 || out != want {
		t.Errorf("got %q (exit %d); want %q", out, code, want)
	}
}
