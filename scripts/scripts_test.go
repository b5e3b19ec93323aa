package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// samples gives every script typed inputs, including values that would break
// naive quoting.
var samples = []Script{
	Observe{InstallDir: "/opt/kafka", DataDir: "/var/lib/kafka/data", LogDir: "/var/log/kafka", ConfigDir: "/etc/kafka", StateDir: "/var/lib/kafkaup", SwapFile: "/swapfile", Service: "kafka", ManagedFiles: []string{"/etc/kafka/server.properties"}},
	InstallPackages{WantJava: true, JavaPackages: []string{"openjdk-17-jre-headless"}, CloudInitTimeout: 600, APTLockTimeout: 300},
	WaitAPT{CloudInitTimeout: 600, APTLockTimeout: 300},
	FetchKafka{InstallDir: "/opt/kafka", DistName: "kafka_2.13-4.0.0", URLs: []string{"https://x/a b'c"}, ExpectedSHA512: strings.Repeat("a", 128), DownloadRetries: 3, StateDir: "/var/lib/kafkaup"},
	FetchChecksum{URL: "https://x/a b'c.tgz.sha512", DownloadRetries: 3},
	FetchAgent{AgentPath: "/opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar", URLs: []string{"https://x/a'b.jar"}, SHA256: "00", DownloadRetries: 3},
	SetupDirs{DataDir: "/d", LogDir: "/l", ConfigDir: "/c", StateDir: "/s"},
	Swap{File: "/swapfile", Bytes: 2 << 30},
	InstallFiles{Staging: "/home/u/.kafkaup", Src: []string{"a"}, Dest: []string{"/etc/kafka/a"}, Mode: []string{"0640"}, Owner: []string{"root:kafka"}, StateDir: "/s"},
	Format{KafkaHome: "/opt/kafka/current", Config: "/etc/kafka/server.properties", DataDir: "/d", ClusterID: "abc"},
	Topics{Action: "create", Topic: "t", Partitions: 3, ReplicationFactor: 1, Configs: []string{"retention.ms=1"}, KafkaHome: "/opt/kafka/current", Bootstrap: "localhost:9092"},
	Status{Service: "kafka", InstallDir: "/opt/kafka", DataDir: "/var/lib/kafka/data"},
	Logs{Service: "kafka", LogDir: "/var/log/kafka", Lines: 100, Follow: true},
	HeadStart{Dir: "/var/lib/kafkaup-head-start", DistName: "kafka_2.13-4.0.0", URLs: []string{"https://x/a b'c"}, DownloadRetries: 3, JavaPackages: []string{"openjdk-17-jre-headless"}, APTLockTimeout: 300},
	HeadStartLaunch{Dir: "/var/lib/kafkaup-head-start", Script: "#!/bin/bash\necho 'it''s'\n", Unit: "kafkaup-head-start"},
	WaitHeadStart{Dir: "/var/lib/kafkaup-head-start", Unit: "kafkaup-head-start", DistName: "kafka_2.13-4.0.0", Timeout: 1800, StallTimeout: 180},
	Service{Action: "start", Service: "kafka", KafkaHome: "/opt/kafka/current", Config: "/c", EnvFile: "/e", LogDir: "/l", StateDir: "/s", BrokerPort: 9092, StartTimeout: 300, StopTimeout: 300},
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":            "''",
		"plain":       "'plain'",
		"it's":        `'it'\''s'`,
		"$(rm -rf /)": "'$(rm -rf /)'",
		"a\nb":        "'a\nb'",
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestQuotedValuesSurviveBash proves the rendered assignments give bash back
// exactly the Go values, however hostile.
func TestQuotedValuesSurviveBash(t *testing.T) {
	hostile := []string{"it's", "$(touch /tmp/pwned)", "`id`", "a b\tc", "line1\nline2", `back\slash`, "*", "--", ""}
	for _, v := range hostile {
		s := FetchKafka{DistName: v, URLs: []string{v, "x"}}
		body, err := assignments(s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("bash", "-c", body+`printf '%s|%s' "$DIST_NAME" "${URLS[0]}"`).Output()
		if err != nil {
			t.Fatalf("bash on %q: %v", v, err)
		}
		if want := v + "|" + v; string(out) != want {
			t.Errorf("value %q came back as %q", v, out)
		}
	}
}

func TestEveryScriptRendersWithStrictMode(t *testing.T) {
	names, err := Names()
	if err != nil {
		t.Fatal(err)
	}
	rendered := map[string]bool{}
	for _, s := range samples {
		out, err := Render(s)
		if err != nil {
			t.Fatalf("%s: %v", s.ScriptName(), err)
		}
		if !strings.Contains(string(out), "\nset -euo pipefail\n") {
			t.Errorf("%s lacks strict mode", s.ScriptName())
		}
		if err := exec.Command("bash", "-n", "-c", string(out)).Run(); err != nil {
			t.Errorf("%s: bash -n: %v", s.ScriptName(), err)
		}
		rendered[s.ScriptName()] = true
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".sh") && n != "lib.sh" && !rendered[n] {
			t.Errorf("script %s has no typed input in the samples", n)
		}
	}
}

// TestShellcheck lints every rendered script, so variables the Go side does
// not define are caught (SC2154 stays on).
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed (make test-deps installs it)")
	}
	for _, s := range samples {
		out, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("shellcheck", "-s", "bash", "-S", "warning", "-")
		cmd.Stdin = strings.NewReader(string(out))
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: shellcheck:\n%s", s.ScriptName(), msg)
		}
	}
}

func TestMutatingScriptsTakeTheirLock(t *testing.T) {
	for _, s := range samples {
		out, _ := Render(s)
		locks := strings.Contains(string(out), "\none_at_a_time '")
		if locks == (readOnly[s.ScriptName()] || standalone[s.ScriptName()]) {
			t.Errorf("%s: lock taken = %v", s.ScriptName(), locks)
		}
	}
}

// TestLockSerializesRuns runs two copies of a locked script at once and
// checks the second waited for the first.
func TestLockSerializesRuns(t *testing.T) {
	lib, _ := files.ReadFile("lib.sh")
	dir := t.TempDir()
	script := "set -euo pipefail\nLOCK_DIR=" + dir + "\n" + string(lib) +
		"\none_at_a_time swap\necho start >>" + dir + "/log; sleep 0.5; echo end >>" + dir + "/log\n"
	a := exec.Command("bash", "-c", script)
	b := exec.Command("bash", "-c", script)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	b.Wait()
	log, _ := os.ReadFile(dir + "/log")
	if string(log) != "start\nend\nstart\nend\n" {
		t.Errorf("runs interleaved:\n%s", log)
	}
}

// holdLock takes the kind of lock apt and dpkg take on their lock files (an
// fcntl write lock over the whole file) on a new file, for this process.
func holdLock(t *testing.T) (path string, release func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "lock-frontend")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return path, func() { f.Close() } // closing drops the lock
}

// runLib runs body after lib.sh under strict mode, with the given variables.
func runLib(t *testing.T, vars, body string) (string, int) {
	t.Helper()
	lib, _ := files.ReadFile("lib.sh")
	out, err := exec.Command("bash", "-c", "set -euo pipefail\n"+vars+"\n"+string(lib)+"\n"+body).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestLockHolderFindsFcntlLocks: /proc/locks names the holder of an apt
// style lock, by pid and command line.
func TestLockHolderFindsFcntlLocks(t *testing.T) {
	path, release := holdLock(t)
	defer release()
	free := filepath.Join(t.TempDir(), "free")
	os.WriteFile(free, nil, 0o644)
	out, code := runLib(t, "", "lock_holder "+Quote(free)+" /nonexistent "+Quote(path))
	want := path + "\tpid " + strconv.Itoa(os.Getpid()) + ": " + os.Args[0]
	if code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("lock_holder = %q (exit %d), want %q...", out, code, want)
	}
	release()
	if out, code := runLib(t, "", "lock_holder "+Quote(path)); code != 0 || out != "" {
		t.Errorf("after release: lock_holder = %q (exit %d)", out, code)
	}
}

// TestWaitForDpkgLock: a lock held past the limit stops the script with
// advice naming the lock and its holder; one released in time is waited for.
func TestWaitForDpkgLock(t *testing.T) {
	path, release := holdLock(t)
	vars := "APT_LOCK_TIMEOUT=1\nDPKG_LOCK_FILES=" + Quote(path)
	out, code := runLib(t, vars, "wait_for_dpkg_lock; echo done")
	for _, want := range []string{"held the dpkg lock " + path, "pid " + strconv.Itoa(os.Getpid()), "--apt-lock-timeout", "no package was installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 3 || strings.Contains(out, "done") {
		t.Errorf("exit %d, want 3 (advice) before going on:\n%s", code, out)
	}

	time.AfterFunc(1500*time.Millisecond, release)
	start := time.Now()
	out, code = runLib(t, "APT_LOCK_TIMEOUT=30\nDPKG_LOCK_FILES="+Quote(path), "wait_for_dpkg_lock; echo done")
	if code != 0 || !strings.HasSuffix(out, "done\n") || !strings.Contains(out, "the dpkg lock is free after waiting") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Errorf("returned after %s, before the lock was released", took)
	}
}

// TestRestartMarker: mark_restart_pending and clear_restart_pending work on
// the one path restart_marker names, under STATE_DIR, and refuse to run
// without a STATE_DIR rather than mark /restart-pending.
func TestRestartMarker(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	vars := "STATE_DIR=" + Quote(dir)
	out, code := runLib(t, vars, `mark_restart_pending; restart_marker; test -f "$STATE_DIR/restart-pending"`)
	if code != 0 || out != dir+"/restart-pending\n" {
		t.Errorf("mark: exit %d, %q", code, out)
	}
	if out, code := runLib(t, vars, `clear_restart_pending; clear_restart_pending; test ! -e "$STATE_DIR/restart-pending"`); code != 0 {
		t.Errorf("clear: exit %d, %q", code, out)
	}
	if out, code := runLib(t, "", "mark_restart_pending"); code == 0 || !strings.Contains(out, "STATE_DIR") {
		t.Errorf("without STATE_DIR: exit %d, %q", code, out)
	}
}
