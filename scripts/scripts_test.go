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
	return holdLockAt(t, filepath.Join(t.TempDir(), "lock-frontend"))
}

// holdLockAt takes that lock on path (made if missing).
func holdLockAt(t *testing.T, path string) (string, func()) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
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

// TestWaitForAptLocks: a lock held past the limit stops the script with
// advice naming the lock and its holder; one released in time is waited
// for, and the wait is said.
func TestWaitForAptLocks(t *testing.T) {
	path, release := holdLock(t)
	vars := "APT_LOCK_TIMEOUT=1\nDPKG_LOCK_FILES=" + Quote(path)
	out, code := runLib(t, vars, "wait_for_apt_locks; echo done")
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
	out, code = runLib(t, "APT_LOCK_TIMEOUT=30\nDPKG_LOCK_FILES="+Quote(path), "wait_for_apt_locks; echo done")
	if code != 0 || !strings.HasSuffix(out, "done\n") || !strings.Contains(out, "waiting for the dpkg lock") || !strings.Contains(out, "the apt and dpkg locks are free after waiting") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Errorf("returned after %s, before the lock was released", took)
	}
}

// TestWaitForAptListsLock: apt-get update takes the lists lock and fails at
// once while another holds it, so the wait covers it (and the archives
// lock) too: each lock waited for is named, one after the other, and the
// time in all is one budget (APT_LOCK_TIMEOUT), not one per lock.
func TestWaitForAptListsLock(t *testing.T) {
	dir := t.TempDir()
	dpkg, releaseDpkg := holdLockAt(t, filepath.Join(dir, "dpkg", "lock-frontend"))
	lists, releaseLists := holdLockAt(t, filepath.Join(dir, "apt", "lists", "lock"))
	archives := filepath.Join(dir, "apt", "archives", "lock")
	vars := "DPKG_LOCK_FILES=" + Quote(dpkg+" "+lists+" "+archives)
	time.AfterFunc(1*time.Second, releaseDpkg)
	time.AfterFunc(2500*time.Millisecond, releaseLists)
	start := time.Now()
	out, code := runLib(t, "APT_LOCK_TIMEOUT=30\n"+vars, "wait_for_apt_locks; echo done")
	took := time.Since(start)
	if code != 0 || !strings.HasSuffix(out, "done\n") || took < 2400*time.Millisecond {
		t.Fatalf("exit %d after %s:\n%s", code, took, out)
	}
	for _, want := range []string{"waiting for the dpkg lock: " + dpkg, "waiting for the apt lists lock: " + lists, "free after waiting"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// One budget: 3s on the dpkg lock, then the lists lock held for good;
	// the script gives up when the 4s are used (about 4s), not 4s after
	// the second (7s). The 3s between leave room for a loaded machine.
	_, releaseDpkg = holdLockAt(t, dpkg)
	_, releaseLists = holdLockAt(t, lists)
	defer releaseLists()
	time.AfterFunc(3*time.Second, releaseDpkg)
	start = time.Now()
	out, code = runLib(t, "APT_LOCK_TIMEOUT=4\n"+vars, "wait_for_apt_locks; echo done")
	took = time.Since(start)
	if code != 3 || !strings.Contains(out, "held the apt lists lock "+lists) || !strings.Contains(out, "for all of the 4s") || took > 5500*time.Millisecond {
		t.Errorf("exit %d after %s:\n%s", code, took, out)
	}
}

// TestAptTryRetriesATakenLock: a lock taken between the wait and apt-get
// ("Could not get lock", which apt-get update answers at once) is waited
// for and apt-get run again; with no time left the failure is returned.
func TestAptTryRetriesATakenLock(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	fake := "#!/bin/bash\necho \"$*\" >>" + Quote(calls) + "\n" +
		"if [ \"$(wc -l <" + Quote(calls) + ")\" -lt 2 ]; then\n" +
		"  echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)' >&2; exit 100\nfi\necho 'Reading package lists...'\n"
	os.WriteFile(filepath.Join(bin, "apt-get"), []byte(fake), 0o755)
	free := filepath.Join(t.TempDir(), "lock")
	os.WriteFile(free, nil, 0o644)
	vars := "PATH=" + Quote(bin) + ":$PATH\nDPKG_LOCK_FILES=" + Quote(free)
	out, code := runLib(t, "APT_LOCK_TIMEOUT=30\n"+vars, `apt_try update; echo "ok: $apt_out"`)
	n, _ := os.ReadFile(calls)
	if code != 0 || !strings.Contains(out, "ok: Reading package lists") || strings.Count(string(n), "\n") != 2 ||
		!strings.Contains(out, "apt-get update could not get /var/lib/apt/lists/lock") || !strings.Contains(string(n), "DPkg::Lock::Timeout=") {
		t.Errorf("exit %d, apt-get called:\n%s\noutput:\n%s", code, n, out)
	}
	os.Remove(calls)
	out, code = runLib(t, "APT_LOCK_TIMEOUT=0\n"+vars, `apt_try update || echo "failed: $apt_out"`)
	if n, _ := os.ReadFile(calls); code != 0 || !strings.Contains(out, "failed: E: Could not get lock") || strings.Count(string(n), "\n") != 1 {
		t.Errorf("no time left: exit %d, apt-get called:\n%s\noutput:\n%s", code, n, out)
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

// TestLoggedSinceMark: service.sh's wait for "Kafka Server started" counts
// only lines written since its mark, also when log4j renamed server.log
// away meanwhile (it rolls it every hour) and the new file is already
// longer than the old one was.
func TestLoggedSinceMark(t *testing.T) {
	dir := t.TempDir()
	vars := "L=" + Quote(filepath.Join(dir, "server.log"))
	for _, tc := range []struct {
		name, body string
		want       bool
	}{
		{"an earlier broker's line", `echo 'Kafka Server started' >"$L"; mark_log "$L"; echo other >>"$L"`, false},
		{"written since", `echo 'Kafka Server started' >"$L"; mark_log "$L"; echo 'Kafka Server started' >>"$L"`, true},
		{"no log before", `rm -f "$L"*; mark_log "$L"; echo 'Kafka Server started' >"$L"`, true},
		{"rolled, new file longer than the old one, line at its start", `rm -f "$L"*; echo 'Kafka Server started' >"$L"; mark_log "$L"; mv "$L" "$L.2026-12-02-07"; { echo 'Kafka Server started'; printf '%0300d\n' 0; } >"$L"`, true},
		{"rolled, line in the renamed file after the mark", `rm -f "$L"*; echo a >"$L"; mark_log "$L"; echo 'Kafka Server started' >>"$L"; mv "$L" "$L.2026-12-02-07"; echo b >"$L"`, true},
		{"rolled, only the earlier broker's line", `rm -f "$L"*; echo 'Kafka Server started' >"$L"; mark_log "$L"; mv "$L" "$L.2026-12-02-07"; printf '%0300d\n' 0 >"$L"`, false},
	} {
		out, code := runLib(t, vars, tc.body+"; logged_since_mark \"$L\" 'Kafka Server started'")
		if (code == 0) != tc.want {
			t.Errorf("%s: exit %d (%q), want found=%t", tc.name, code, out, tc.want)
		}
	}
}
