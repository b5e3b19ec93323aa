package scripts

import (
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// statusOf reads a head start's status file as a map (last value wins).
func statusOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// runHeadStart runs head-start.sh as rendered, in the foreground, on this
// machine (Java 17 is installed here, so it only downloads).
func runHeadStart(t *testing.T, in HeadStart) {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("needs a Java 17+ on this machine, or the head start would run apt")
	}
	script, err := RenderCompact(in) // as the user-data carries it
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", string(script))
	cmd.Env = append(os.Environ(), "LOCK_DIR="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(in.Dir, "log"))
		t.Fatalf("head-start.sh: %v\n%s\nlog:\n%s", err, out, log)
	}
}

func TestHeadStartDownloadsAndRecords(t *testing.T) {
	body := []byte(strings.Repeat("kafka tarball ", 5000))
	sum := sha512.Sum512(body)
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gets.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable) // retried after 2s
			return
		}
		w.Write(body)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name, want, result string
	}{
		{"checked", hex.EncodeToString(sum[:]), "ok"},
		{"unchecked", "", "ok"}, // the SSH run checks it
		{"wrong digest", strings.Repeat("0", 128), "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gets.Store(1) // no 503 after the first case
			if tc.name == "checked" {
				gets.Store(0)
			}
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "status"), []byte("launched=1\n"), 0o644)
			runHeadStart(t, HeadStart{Dir: dir, DistName: "kafka_2.13-4.0.0", URLs: []string{srv.URL + "/a.tgz"},
				ExpectedSHA512: tc.want, DownloadRetries: 2, JavaPackages: []string{"openjdk-17-jre-headless"}, APTLockTimeout: 5})
			st := statusOf(t, dir)
			if st["result"] != tc.result || st["download.result"] != tc.result || st["java.result"] != "present" {
				t.Errorf("status %v, want result %s", st, tc.result)
			}
			for _, k := range []string{"started", "finished", "download.start", "download.end", "java.start", "java.end", "pid"} {
				if st[k] == "" {
					t.Errorf("status lacks %s: %v", k, st)
				}
			}
			staged := filepath.Join(dir, "kafka", "kafka_2.13-4.0.0.tgz")
			got, err := os.ReadFile(staged)
			switch {
			case tc.result == "ok" && (err != nil || string(got) != string(body)):
				t.Errorf("staged tarball: %v (%d bytes)", err, len(got))
			case tc.result == "ok" && st["download.bytes"] != "70000":
				t.Errorf("download.bytes = %q", st["download.bytes"])
			case tc.result == "failed" && err == nil:
				t.Error("a download with the wrong digest was staged")
			}
			if parts, _ := filepath.Glob(staged + ".part"); len(parts) > 0 {
				t.Errorf("left behind: %v", parts)
			}
		})
	}
}

// TestHeadStartState covers each state observe.sh and wait-head-start.sh
// tell apart.
func TestHeadStartState(t *testing.T) {
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id here")
	}
	boot := strings.TrimSpace(string(bootID))
	// A process whose command line names the head start, as the real one's does.
	dir0 := t.TempDir()
	fake := filepath.Join(dir0, "head-start.sh")
	os.WriteFile(fake, []byte("sleep 30\n"), 0o755)
	proc := exec.Command("bash", fake)
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Process.Kill()
	live := proc.Process.Pid
	now := time.Now().Unix()

	for _, tc := range []struct {
		name, status, want string
	}{
		{"none", "", "none"},
		{"just launched", "launched=" + itoa(now) + ".5\nboot_id=" + boot + "\n", "running"},
		{"launched long ago, never started", "launched=" + itoa(now-600) + ".5\nboot_id=" + boot + "\n", "interrupted"},
		{"running", "launched=1\nboot_id=" + boot + "\npid=" + itoa(int64(live)) + "\n", "running"},
		{"pid of another program", "launched=1\nboot_id=" + boot + "\npid=1\n", "interrupted"},
		{"a boot ago", "launched=1\nboot_id=00000000-0000-0000-0000-000000000000\npid=" + itoa(int64(live)) + "\n", "interrupted"},
		{"stopped by kafkaup", "launched=1\nboot_id=" + boot + "\npid=" + itoa(int64(live)) + "\nstopped_by_kafkaup=2\n", "interrupted"},
		{"done", "launched=1\npid=99999999\nresult=ok\nfinished=5\n", "done"},
		{"failed", "launched=1\npid=99999999\nresult=failed\nfinished=5\n", "failed"},
	} {
		dir := t.TempDir()
		if tc.status != "" {
			os.WriteFile(filepath.Join(dir, "status"), []byte(tc.status), 0o644)
		}
		out, code := runLib(t, "", "head_start_state "+Quote(dir))
		if code != 0 || strings.TrimSpace(out) != tc.want {
			t.Errorf("%s: head_start_state = %q (exit %d), want %s", tc.name, out, code, tc.want)
		}
	}
}

// TestHeadStartLaunch: the boothook writes the script and the status,
// starts it detached and returns at once; on a later boot it does nothing.
func TestHeadStartLaunch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hs")
	done := filepath.Join(t.TempDir(), "ran")
	in := HeadStartLaunch{Dir: dir, Unit: "kafkaup-head-start-test",
		Script: "#!/bin/bash\nsleep 4\necho \"it's $$\" >" + Quote(done) + "\n"}
	script, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(script), "one_at_a_time") || strings.Contains(string(script), "fetch_first") {
		t.Error("the launcher carries lib.sh or a lock")
	}
	start := time.Now()
	if out, err := exec.Command("bash", "-c", string(script)).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The head start sleeps 4 s: a launcher that waited for it would take
	// that long; 3 s leaves room for a loaded machine.
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the launcher took %s: it waited for the head start", took)
	}
	st := statusOf(t, dir)
	if st["launched"] == "" || st["boot_id"] == "" {
		t.Errorf("status %v", st)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "head-start.sh")); string(got) != in.Script {
		t.Errorf("script written as %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(done); err == nil && strings.HasPrefix(string(b), "it's ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the head start never ran")
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.Remove(done)
	if out, err := exec.Command("bash", "-c", string(script)).CombinedOutput(); err != nil {
		t.Fatalf("second boot: %v\n%s", err, out)
	}
	time.Sleep(5 * time.Second)
	if _, err := os.Stat(done); err == nil {
		t.Error("the head start ran again on a later boot")
	}
}

// TestWaitHeadStart: the wait returns when the head start finishes, and
// stops one that makes no progress.
func TestWaitHeadStart(t *testing.T) {
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id here")
	}
	start := func(t *testing.T, body string) (string, *exec.Cmd) {
		dir := t.TempDir()
		fake := filepath.Join(dir, "head-start.sh")
		os.WriteFile(fake, []byte(body), 0o755)
		cmd := exec.Command("setsid", "bash", fake)
		cmd.Env = append(os.Environ(), "DIR="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		status := "launched=1\nboot_id=" + strings.TrimSpace(string(bootID)) + "\npid=" + itoa(int64(cmd.Process.Pid)) + "\njava.start=1\napt_update.start=1\n"
		os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644)
		return dir, cmd
	}
	run := func(t *testing.T, dir string, stall int) (string, time.Duration) {
		script, err := Render(WaitHeadStart{Dir: dir, Unit: "kafkaup-head-start-test", DistName: "k", Timeout: 60, StallTimeout: stall})
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-c", string(script))
		cmd.Env = append(os.Environ(), "LOCK_DIR="+t.TempDir())
		began := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return string(out), time.Since(began)
	}

	t.Run("finishes", func(t *testing.T) {
		dir, cmd := start(t, "sleep 2; printf 'result=ok\\nfinished=3\\n' >>\"$DIR/status\"; sleep 30\n")
		defer cmd.Process.Kill()
		out, took := run(t, dir, 30)
		if took < 1500*time.Millisecond || took > 10*time.Second {
			t.Errorf("waited %s for a head start that finished after 2s", took)
		}
		if !regexp.MustCompile(`kafkaup: note: waiting for the head start begun at boot: apt-get update \(\d+s so far\)`).MatchString(out) ||
			!strings.Contains(out, "head start: done after waiting") {
			t.Errorf("output:\n%s", out)
		}
	})
	t.Run("stalls", func(t *testing.T) {
		dir, cmd := start(t, "sleep 60\n")
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		out, took := run(t, dir, 3)
		if took > 10*time.Second || !strings.Contains(out, "stopping the head start: no progress for 3s") {
			t.Errorf("after %s:\n%s", took, out)
		}
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			t.Error("the stalled head start was not stopped")
		}
		if st := statusOf(t, dir); st["stopped_by_kafkaup"] == "" || st["stop_reason"] != "no progress for 3s" {
			t.Errorf("status %v", st)
		}
	})
	// As apt does while dpkg runs a long maintainer script: nothing is
	// logged, but a child of the head start works. Seen on the local
	// cloud: a JDK's setup under TCG silent for over 180s, the head start
	// stopped midway, and dpkg --configure -a to clean up after it.
	t.Run("silent but busy", func(t *testing.T) {
		dir, cmd := start(t, "bash -c 'end=$((SECONDS + 7)); while [ $SECONDS -lt $end ]; do :; done'; printf 'result=ok\\nfinished=9\\n' >>\"$DIR/status\"; sleep 30\n")
		defer cmd.Process.Kill()
		out, took := run(t, dir, 3)
		if strings.Contains(out, "stopping the head start") || !strings.Contains(out, "head start: done after waiting") {
			t.Errorf("after %s:\n%s", took, out)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestRenderCompact: the head start without comments is the same program
// (shellcheck finds nothing new) and much smaller; heredocs are refused.
func TestRenderCompact(t *testing.T) {
	in := HeadStart{Dir: "/d", DistName: "k", URLs: []string{"https://x/k.tgz"}, DownloadRetries: 1, JavaPackages: []string{"j"}, APTLockTimeout: 1}
	full, _ := Render(in)
	compact, err := RenderCompact(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(compact), "#!/usr/bin/env bash\n") || len(compact) > len(full)*3/4 {
		t.Errorf("compact: %d bytes of %d, starts %q", len(compact), len(full), compact[:30])
	}
	if _, err := exec.LookPath("shellcheck"); err == nil {
		cmd := exec.Command("shellcheck", "-s", "bash", "-S", "warning", "-")
		cmd.Stdin = strings.NewReader(string(compact))
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck:\n%s", msg)
		}
	}
	if !heredocRE.MatchString("cat <<'EOF'\n") || !heredocRE.MatchString("x <<-EOF") || heredocRE.MatchString(`read -r a <<<"$b"`) {
		t.Error("heredocRE")
	}
}
