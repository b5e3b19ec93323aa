// Package vm_test proves `kafkaup provision` on a fresh Debian VM under qemu
// with systemd, so swap, fstab, the service and reboots are real. One VM
// boots per package and the scenarios run on it in order.
package vm_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

type env struct {
	vm    *vm.VM
	cli   *harness.CLI
	url   string // Kafka 4.0.0 on the local mirror, as the guest reaches it
	alias string // a second loopback address forwarded to the same VM
}

func setup(t *testing.T) *env {
	if testing.Short() {
		t.Skip("end-to-end: boots a VM under qemu (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	img, err := vm.BuildImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Boot(ctx, img, vm.Options{Name: "e2e-provision", Aliases: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := v.SerialLog(); err == nil {
				t.Logf("serial console (tail):\n%s", tail(log, 60))
			}
		}
		v.Close()
	})
	dir := t.TempDir()
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := harness.NewCLI(bin, dir, v.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	return &env{vm: v, cli: cli, alias: v.Aliases[0],
		url: mirror.URLVia(0, v.HostGateway, "4.0.0")}
}

func (e *env) provision(ctx context.Context, user string, extra ...string) harness.Result {
	args := append([]string{"provision", "--host", e.vm.Addr, "--kafka-url", e.url}, e.cli.ConnArgs(user)...)
	return e.cli.Run(ctx, append(args, extra...)...)
}

func (e *env) sh(t *testing.T, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := e.vm.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("on the VM: %v", err)
	}
	return strings.TrimSpace(out)
}

func (e *env) mainPID(t *testing.T) string {
	return e.sh(t, "systemctl show -p MainPID --value kafka")
}

// restarts is systemd's count of the broker's automatic restarts.
func (e *env) restarts(t *testing.T) int {
	t.Helper()
	s := e.sh(t, "systemctl show -p NRestarts --value kafka")
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("NRestarts: %q", s)
	}
	return n
}

func (e *env) cmdline(t *testing.T) string {
	return e.sh(t, "sudo tr '\\0' ' ' </proc/$(systemctl show -p MainPID --value kafka)/cmdline")
}

// lockHolder takes locks the way apt and dpkg do (fcntl write locks on the
// whole file: dpkg's lock-frontend and lock for a package run, apt's
// lists/lock for apt-get update), on the files named after $1, writes its
// pid, and lets go after $1 seconds or when killed. Runs as root.
const lockHolder = `pidfile=/run/lockholder.$$.pid
setsid perl -MFcntl -e '
  $0 = "lock-holder";
  my ($secs, $pidfile, @paths) = @ARGV;
  my @held;
  for my $p (@paths) {
    open(my $fh, "+>>", $p) or die "open $p: $!";
    my $lk = pack("s s x4 q q i x4", F_WRLCK, 0, 0, 0, 0); # struct flock on x86_64
    fcntl($fh, F_SETLK, $lk) or die "lock $p: $!";
    push @held, $fh;
  }
  open(my $pf, ">", "$pidfile.tmp") or die "pid file: $!";
  print $pf "$$\n";
  close $pf;
  rename "$pidfile.tmp", $pidfile;
  sleep $secs;
' "$1" "$pidfile" "${@:2}" </dev/null >/dev/null 2>/run/lockholder.err &
for _ in $(seq 100); do [ -s "$pidfile" ] && break; sleep 0.1; done
cat "$pidfile" /run/lockholder.err
`

// The locks a package run takes: dpkg's, and apt's for apt-get update.
var (
	dpkgLocks = []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"}
	listsLock = []string{"/var/lib/apt/lists/lock"}
)

// holdLocks starts lockHolder in the VM on paths for secs seconds and
// returns its pid.
func (e *env) holdLocks(t *testing.T, secs int, paths []string) string {
	t.Helper()
	script := base64.StdEncoding.EncodeToString([]byte(lockHolder))
	pid := e.sh(t, "echo "+script+" | base64 -d | sudo -n bash -s "+strconv.Itoa(secs)+" "+strings.Join(paths, " "))
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("the lock holder did not start: %q", pid)
	}
	return pid
}

// waitForLog waits until the debug log of the run in progress (a log
// other than before) says want; the run ending first fails the test.
func (e *env) waitForLog(t *testing.T, before string, done chan harness.Result, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); {
		select {
		case r := <-done:
			done <- r
			t.Fatalf("the run ended before its log said %q:\n%s", want, r)
		case <-time.After(500 * time.Millisecond):
		}
		if log, err := e.cli.LastLog(); err == nil && log != before && strings.Contains(log, want) {
			return
		}
	}
	t.Fatalf("the run's log never said %q", want)
}

// untouched fails the test if a refused run left anything kafkaup makes.
func (e *env) untouched(t *testing.T) {
	t.Helper()
	left := e.sh(t, "ls -d /opt/kafka /swapfile /etc/kafka /var/lib/kafka /var/lib/kafkaup /etc/systemd/system/kafka.service ~/.kafkaup-staging 2>/dev/null; "+
		"id kafka 2>/dev/null; dpkg-query -W -f '${Package} ${Status}\\n' 'openjdk-*' 2>/dev/null | grep ' installed$'; "+
		"grep -c swapfile /etc/fstab | grep -v '^0$'; true")
	if left != "" {
		t.Errorf("the refused run changed the host: %s", left)
	}
}

func TestProvisionDebianVM(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	bootstrap := e.vm.Addr + ":9092"

	t.Run("a user without sudo is a clear error", func(t *testing.T) {
		r := e.provision(ctx, e.vm.NoSudoUser)
		harness.MustFail(t, r, 1, "passwordless sudo", "--user")
		if out := e.sh(t, "ls /opt/kafka /swapfile 2>/dev/null || echo none"); out != "none" {
			t.Errorf("something was installed: %s", out)
		}
	})

	t.Run("a swapfile bigger than the disk is refused before any change", func(t *testing.T) {
		r := e.provision(ctx, e.vm.User, "--swap", "64G")
		harness.MustFail(t, r, 1, "a 64G swapfile does not fit", "--swap", "Nothing on the host was changed")
		e.untouched(t)
	})

	t.Run("dpkg lock held past --apt-lock-timeout: clear error, nothing changed", func(t *testing.T) {
		holder := e.holdLocks(t, 600, dpkgLocks)
		defer e.sh(t, "sudo -n kill "+holder+" 2>/dev/null || true")
		r := e.provision(ctx, e.vm.User, "--apt-lock-timeout", "5s")
		harness.MustFail(t, r, 1, "held the dpkg lock /var/lib/dpkg/lock-frontend", "pid "+holder+": lock-holder",
			"for all of the 5s", "unattended-upgrades", "--apt-lock-timeout")
		t.Logf("refused after %s: %s", r.Took.Round(100*time.Millisecond), harness.LastLine(r.Stderr))
		e.untouched(t)
	})

	t.Run("apt lists lock held past --apt-lock-timeout: clear error, nothing changed", func(t *testing.T) {
		holder := e.holdLocks(t, 600, listsLock)
		defer e.sh(t, "sudo -n kill "+holder+" 2>/dev/null || true")
		r := e.provision(ctx, e.vm.User, "--apt-lock-timeout", "5s")
		harness.MustFail(t, r, 1, "held the apt lists lock /var/lib/apt/lists/lock", "pid "+holder+": lock-holder",
			"for all of the 5s", "--apt-lock-timeout")
		t.Logf("refused after %s: %s", r.Took.Round(100*time.Millisecond), harness.LastLine(r.Stderr))
		e.untouched(t)
	})

	var clusterID, pid string
	t.Run("fresh VM, apt busy (dpkg's locks, then apt-get update's lists lock): provision waits for both, then real clients at the advertised address", func(t *testing.T) {
		// The lists lock alone used to fail apt-get update at once: the
		// wait covered only dpkg's locks, which apt-get update does not take.
		// Each holder lets go once kafkaup says it waits for its lock (the
		// lists lock 15s later), so the test does not race the run's start.
		dpkg := e.holdLocks(t, 900, dpkgLocks)
		lists := e.holdLocks(t, 900, listsLock)
		defer e.sh(t, "sudo -n kill "+dpkg+" "+lists+" 2>/dev/null || true")
		before, _ := e.cli.LastLog()
		done := make(chan harness.Result, 1)
		go func() { done <- e.provision(ctx, e.vm.User, "--json") }()
		e.waitForLog(t, before, done, "waiting for the dpkg lock: /var/lib/dpkg/lock-frontend")
		e.sh(t, "sudo -n kill "+dpkg)
		e.waitForLog(t, before, done, "waiting for the apt lists lock: /var/lib/apt/lists/lock is held by another apt or dpkg (pid "+lists+": lock-holder")
		time.Sleep(15 * time.Second)
		e.sh(t, "sudo -n kill "+lists)
		r := <-done
		harness.MustSucceed(t, r)
		t.Logf("full provision:\n%s", r.Stderr)
		m := regexp.MustCompile(`ok +wait-apt .*  ([0-9.]+)s\n`).FindStringSubmatch(r.Stderr)
		log, err := e.cli.LastLog()
		if err != nil {
			t.Fatal(err)
		}
		freed := regexp.MustCompile(`the apt and dpkg locks are free after waiting (\d+)s`).FindStringSubmatch(log)
		if m == nil || freed == nil {
			t.Fatalf("no wait for the apt locks in the progress or the debug log:\n%s", log)
		}
		for _, want := range []string{"waiting for the dpkg lock: /var/lib/dpkg/lock-frontend", "waiting for the apt lists lock: /var/lib/apt/lists/lock is held by another apt or dpkg (pid " + lists + ": lock-holder"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("the progress does not say %q", want)
			}
		}
		if waited, _ := strconv.Atoi(freed[1]); waited < 15 {
			t.Errorf("waited only %ds, although the lists lock was held 15s after kafkaup began waiting for it", waited)
		}
		t.Logf("waited %ss for the apt and dpkg locks (step wait-apt: %ss)", freed[1], m[1])
		var out struct {
			Result struct {
				ClusterID string `json:"cluster_id"`
				Systemd   bool
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatal(err)
		}
		if !out.Result.Systemd || out.Result.ClusterID == "" {
			t.Errorf("result %+v", out.Result)
		}
		clusterID = out.Result.ClusterID
		md, err := harness.KcatMetadata(ctx, bootstrap)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(md, "broker 1 at "+bootstrap) {
			t.Errorf("kcat -L:\n%s", md)
		}
		if err := harness.KcatProduce(ctx, bootstrap, "e2e", "before-reboot-1", "before-reboot-2"); err != nil {
			t.Fatal(err)
		}
		if got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e"); err != nil || len(got) != 2 {
			t.Fatalf("consumed %v, %v", got, err)
		}
		if _, err := harness.FranzRoundTrip(ctx, bootstrap, "e2e-franz", "hello"); err != nil {
			t.Fatal(err)
		}
		pid = e.mainPID(t)
	})

	t.Run("swap and fstab", func(t *testing.T) {
		swaps := e.sh(t, "/usr/sbin/swapon --show=NAME,SIZE --bytes --noheadings")
		if !strings.Contains(swaps, "/swapfile") || !strings.Contains(swaps, "2147479552") && !strings.Contains(swaps, "2147483648") {
			t.Errorf("swapon --show: %q", swaps)
		}
		if n := e.sh(t, "grep -c '^/swapfile ' /etc/fstab"); n != "1" {
			t.Errorf("/etc/fstab has %s entries for /swapfile", n)
		}
	})

	t.Run("service and heap", func(t *testing.T) {
		if s := e.sh(t, "systemctl is-enabled kafka; systemctl is-active kafka"); s != "enabled\nactive" {
			t.Errorf("service: %q", s)
		}
		cmd := e.cmdline(t)
		if !strings.Contains(cmd, "-Xmx400m") || !strings.Contains(cmd, " kafka.Kafka ") {
			t.Errorf("broker cmdline: %s", cmd)
		}
		if out := e.sh(t, "bash -lc 'echo ${KAFKA_HEAP_OPTS:-unset}'"); out != "unset" {
			t.Errorf("KAFKA_HEAP_OPTS leaks into login shells: %s", out)
		}
	})

	t.Run("second run: empty plan, same broker", func(t *testing.T) {
		r := e.provision(ctx, e.vm.User)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "nothing changed") {
			t.Errorf("not a no-op:\n%s", r)
		}
		if got := e.mainPID(t); got != pid {
			t.Errorf("broker restarted: pid %s -> %s", pid, got)
		}
		if n := e.sh(t, "grep -c '^/swapfile ' /etc/fstab"); n != "1" {
			t.Errorf("/etc/fstab has %s entries after a rerun", n)
		}
		t.Logf("no-op rerun: %s", r.Took.Round(time.Millisecond))
	})

	t.Run("broker killed: systemd brings it back, status shows the restart", func(t *testing.T) {
		before := e.mainPID(t)
		restartsBefore := e.restarts(t)
		since := e.sh(t, "date '+%Y-%m-%d %H:%M:%S'")
		e.sh(t, "sudo -n kill -9 "+before)
		killed := time.Now()
		var after string
		for {
			after = e.mainPID(t)
			if after != before && after != "0" && e.sh(t, "systemctl is-active kafka || true") == "active" {
				break
			}
			if time.Since(killed) > 2*time.Minute {
				t.Fatalf("systemd did not restart the broker: MainPID %s", after)
			}
			time.Sleep(500 * time.Millisecond)
		}
		restarted := time.Since(killed)
		for {
			if _, err := harness.KcatMetadata(ctx, bootstrap); err == nil {
				break
			}
			if time.Since(killed) > 8*time.Minute {
				t.Fatal("the restarted broker does not answer")
			}
			time.Sleep(2 * time.Second)
		}
		serving := time.Since(killed)
		r := e.cli.Run(ctx, "status", state.NameForHost(e.vm.Addr))
		harness.MustSucceed(t, r)
		// Status reports systemd's own count. One kill is one restart; a
		// start that failed on its way up (seen once in CI under load, cause
		// not captured) is another, and is no fault of the kill: the
		// journal of every start since the kill is logged then.
		restarts := e.restarts(t)
		if restarts-restartsBefore != 1 {
			t.Logf("systemd restarted the broker %d times after one kill -9; its journal since then:\n%s",
				restarts-restartsBefore, e.sh(t, "sudo -n journalctl -u kafka --no-pager --since '"+since+"' | grep -v ' INFO \\| = ' | tail -60"))
		}
		want := regexp.MustCompile(`restarts +` + strconv.Itoa(restarts) + ` \(systemd brought the broker back`)
		if !strings.Contains(r.Stdout, "(healthy)") || restarts <= restartsBefore || !want.MatchString(r.Stdout) {
			t.Errorf("status after the restart (systemd counts %d restarts, %d before the kill):\n%s", restarts, restartsBefore, r.Stdout)
		}
		got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
		if err != nil || strings.Join(got, ",") != "before-reboot-1,before-reboot-2" {
			t.Errorf("earlier messages after the restart: %v, %v", got, err)
		}
		t.Logf("kill -9 of pid %s: systemd started pid %s after %s, serving again after %s", before, after,
			restarted.Round(100*time.Millisecond), serving.Round(100*time.Millisecond))
	})

	t.Run("reboot: broker back by itself with swap and data", func(t *testing.T) {
		if err := e.vm.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for {
			got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
			if err == nil && strings.Join(got, ",") == "before-reboot-1,before-reboot-2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after reboot: %v, %v", got, err)
			}
			time.Sleep(5 * time.Second)
		}
		if swaps := e.sh(t, "/usr/sbin/swapon --show=NAME --noheadings"); !strings.Contains(swaps, "/swapfile") {
			t.Errorf("swap not active after reboot: %q", swaps)
		}
	})

	t.Run("new advertised host: restart, clients follow, data kept", func(t *testing.T) {
		aliasBootstrap := e.alias + ":9092"
		r := e.provision(ctx, e.vm.User, "--advertised-host", e.alias)
		harness.MustSucceed(t, r)
		md, err := harness.KcatMetadata(ctx, aliasBootstrap)
		if err != nil || !strings.Contains(md, "broker 1 at "+aliasBootstrap) {
			t.Errorf("kcat -L at %s: %v\n%s", aliasBootstrap, err, md)
		}
		assertDataKept(ctx, t, e, aliasBootstrap, clusterID)
	})

	t.Run("new heap: restart with it, data kept", func(t *testing.T) {
		r := e.provision(ctx, e.vm.User, "--advertised-host", e.alias, "--heap", "512m")
		harness.MustSucceed(t, r)
		if cmd := e.cmdline(t); !strings.Contains(cmd, "-Xmx512m") {
			// Seen once in CI under load; what follows is what would tell why.
			t.Errorf("cmdline after heap change: %s\nprovision:\n%s\nenv file, service state, journal:\n%s", cmd, r.Stderr,
				e.sh(t, "sudo -n cat /etc/kafka/kafka.env; systemctl show -p MainPID,NRestarts,ActiveState,ExecMainStartTimestamp kafka; "+
					"sudo -n journalctl -u kafka --no-pager -n 200 | grep -v ' INFO \\| = ' | tail -40"))
		}
		assertDataKept(ctx, t, e, e.alias+":9092", clusterID)
	})
}

func assertDataKept(ctx context.Context, t *testing.T, e *env, bootstrap, clusterID string) {
	t.Helper()
	got, err := harness.KcatConsumeAll(ctx, bootstrap, "e2e")
	if err != nil || strings.Join(got, ",") != "before-reboot-1,before-reboot-2" {
		t.Errorf("earlier messages: %v, %v", got, err)
	}
	if id := e.sh(t, "sudo sed -n 's/^cluster.id=//p' /var/lib/kafka/data/meta.properties"); id != clusterID {
		t.Errorf("cluster id changed: %s -> %s", clusterID, id)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
