package nshost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// needRoot skips unless this is a full (non -short) run as root.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace hosts are integration tests (skipped with -short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("namespace hosts need root")
	}
}

// startTwo starts two hosts concurrently and registers their Close.
func startTwo(t *testing.T, ctx context.Context) [2]*Host {
	t.Helper()
	var hosts [2]*Host
	var errs [2]error
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hosts[i], errs[i] = Start(ctx, Options{Name: fmt.Sprintf("nshost-test-%d", i)})
		}()
	}
	wg.Wait()
	for i, h := range hosts {
		if h != nil {
			t.Cleanup(func() {
				if err := h.Close(); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("start host %d: %v", i, errs[i])
		}
		t.Logf("host %d: %s (%s, veth %s <-> %s) started in %v",
			i, h.Hostname, h.NetNS, h.HostSideAddr, h.Addr, h.Started.Round(time.Millisecond))
	}
	if hosts[0].Addr == hosts[1].Addr || hosts[0].NetNS == hosts[1].NetNS {
		t.Fatalf("hosts share an address or netns: %+v %+v", hosts[0], hosts[1])
	}
	return hosts
}

func TestNamespaceHosts(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hosts := startTwo(t, ctx)

	// A process on this machine that pkill inside must not reach.
	marker := fmt.Sprintf("nshost-outside-%d", os.Getpid())
	outside := exec.Command("bash", "-c", "exec -a "+marker+" sleep 600")
	if err := outside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = outside.Process.Kill(); _ = outside.Wait() })

	for i, h := range hosts {
		t.Run(fmt.Sprintf("host%d", i), func(t *testing.T) {
			run := func(cmd string) string {
				t.Helper()
				out, err := h.Run(ctx, cmd)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}

			// Its own PID namespace: a handful of processes, none of ours.
			ps := run("ps ax")
			if n := len(strings.Split(strings.TrimSpace(ps), "\n")) - 1; n > 8 {
				t.Errorf("ps ax inside shows %d processes:\n%s", n, ps)
			}
			if strings.Contains(ps, marker) {
				t.Errorf("ps ax inside sees this machine's processes:\n%s", ps)
			}
			_, err := h.Run(ctx, "pkill -f "+marker)
			if err == nil {
				t.Errorf("pkill inside found %s", marker)
			}
			if err := alive(outside.Process.Pid); err != nil {
				t.Errorf("pkill inside reached this machine: %v", err)
			}

			// Fresh: nothing of a Kafka install, no process matching "kafka".
			run("! id kafka 2>/dev/null && ! test -e /opt/kafka && ! test -e /swapfile && ! test -e /etc/systemd/system/kafka.service")
			if out, err := h.Run(ctx, "pgrep -a -f kafka"); err == nil {
				t.Errorf("pgrep -f kafka inside matches:\n%s", out)
			}

			// Network rule: the namespace has no route beyond its veth.
			if out, err := h.Run(ctx, "ip route get 8.8.8.8 2>&1"); err == nil {
				t.Errorf("namespace has a route out: %s", out)
			}

			// Identity: Debian, its own hostname.
			if got := strings.TrimSpace(run("hostname")); got != h.Hostname {
				t.Errorf("hostname = %q, want %q", got, h.Hostname)
			}
			if osr := run("cat /etc/os-release"); !strings.Contains(osr, "ID=debian") {
				t.Errorf("os-release inside:\n%s", osr)
			}

			// Writes land in the overlay, not on this machine.
			probe := fmt.Sprintf("probe from %s", h.Hostname)
			run(fmt.Sprintf("echo %q >/etc/kafkaup-probe", probe))
			if _, err := os.Stat("/etc/kafkaup-probe"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/etc/kafkaup-probe on this machine: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(h.UpperDir, "etc/kafkaup-probe")); err != nil || strings.TrimSpace(string(b)) != probe {
				t.Errorf("probe in upper dir: %q, %v", b, err)
			}
			if b, err := os.ReadFile(filepath.Join(h.RootDir, "etc/kafkaup-probe")); err != nil || strings.TrimSpace(string(b)) != probe {
				t.Errorf("probe via RootDir: %q, %v", b, err)
			}

			// A system user, in the overlay's /etc/passwd only.
			run("useradd --system --no-create-home --shell /usr/sbin/nologin kafka && id kafka")
			if b, _ := os.ReadFile("/etc/passwd"); strings.Contains(string(b), "\nkafka:") {
				t.Errorf("kafka user leaked into this machine's /etc/passwd")
			}

			// Loopback is up inside (Kafka's controller listens on 127.0.0.1:9093).
			run("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 9093)); s.listen(); c=socket.create_connection((\"127.0.0.1\", 9093)); print(\"ok\")'")

			// The namespace reaches a server on this machine at HostSideAddr.
			ln, err := net.Listen("tcp", net.JoinHostPort(h.HostSideAddr, "0"))
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "mirror "+h.Hostname)
			})}
			go srv.Serve(ln)
			defer srv.Close()
			got := run("curl -sS --max-time 5 http://" + ln.Addr().String() + "/")
			if got != "mirror "+h.Hostname {
				t.Errorf("curl to this machine from inside: %q", got)
			}

			// This machine reaches a listener inside at Addr:9092.
			run("cd /tmp; nohup setsid python3 -m http.server 9092 >/tmp/http.log 2>&1 </dev/null &")
			body, err := httpGetRetry(ctx, "http://"+net.JoinHostPort(h.Addr, "9092")+"/")
			if err != nil {
				t.Errorf("listener inside on :9092: %v", err)
			} else if !strings.Contains(body, "Directory listing") {
				t.Errorf("listener inside on :9092 answered %q", body)
			}

			// sftp subsystem.
			checkSFTP(t, h)

			// swapon on a file in the overlay fails (the product must say so).
			out, err := h.Run(ctx, "fallocate -l 16M /swapfile && chmod 600 /swapfile && mkswap /swapfile >/dev/null && swapon /swapfile")
			if err == nil {
				h.Run(ctx, "swapoff /swapfile")
				t.Errorf("swapon on overlayfs unexpectedly worked: %s", out)
			} else {
				t.Logf("swapon in the overlay fails as expected: %v", err)
			}
		})
	}
	if err := alive(outside.Process.Pid); err != nil {
		t.Errorf("the process outside died: %v", err)
	}

	// The hosts do not see each other's files.
	if _, err := hosts[0].Run(ctx, "grep -q "+hosts[1].Hostname+" /etc/kafkaup-probe"); err == nil {
		t.Errorf("host 0 sees host 1's probe")
	}

	// HideAPT on one host only.
	t.Run("HideAPT", func(t *testing.T) {
		if err := hosts[1].HideAPT(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := hosts[1].Run(ctx, ". /etc/os-release; echo $ID; command -v apt-get dpkg apt || true")
		if err != nil || strings.TrimSpace(out) != "fedora" {
			t.Errorf("after HideAPT: %q, %v", out, err)
		}
		if out, err := hosts[0].Run(ctx, "command -v apt-get"); err != nil || strings.TrimSpace(out) != "/usr/bin/apt-get" {
			t.Errorf("host 0 lost apt-get: %q, %v", out, err)
		}
		if _, err := os.Stat("/usr/bin/apt-get"); err != nil {
			t.Errorf("this machine lost apt-get: %v", err)
		}
	})

	// LimitCPU on one host: a busy loop there gets its share of a core and
	// no more, over the same SSH sessions the provisioner uses.
	var cgroup string
	t.Run("LimitCPU", func(t *testing.T) {
		err := hosts[0].LimitCPU(0.25)
		if errors.Is(err, ErrNoCPUController) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		cgroup = hosts[0].cgroupDir
		// 2 s of wall clock at a
		// quarter core is about 0.5 s of CPU; unlimited it would be 2 s.
		out, err := hosts[0].Run(ctx, `timeout 2 sh -c 'while :; do :; done' || true; times`)
		if err != nil {
			t.Fatal(err)
		}
		// The second line of times: the CPU its children used.
		lines := strings.Split(strings.TrimSpace(out), "\n")
		cpu := 0.0
		for _, m := range regexp.MustCompile(`(\d+)m([\d.]+)s`).FindAllStringSubmatch(lines[len(lines)-1], -1) {
			min, _ := strconv.ParseFloat(m[1], 64)
			sec, _ := strconv.ParseFloat(m[2], 64)
			cpu += min*60 + sec
		}
		t.Logf("busy loop for 2 s at 0.25 cores used %.2f s of CPU", cpu)
		if cpu > 1.0 {
			t.Errorf("a host limited to 0.25 cores used %.2f s of CPU in 2 s", cpu)
		}
	})

	// Close leaves nothing behind.
	for i, h := range hosts {
		begin := time.Now()
		if err := h.Close(); err != nil {
			t.Fatalf("close host %d: %v", i, err)
		}
		t.Logf("host %d closed in %v", i, time.Since(begin).Round(time.Millisecond))
		assertGone(t, h)
		if i == 0 && cgroup != "" {
			if _, err := os.Stat(cgroup); !os.IsNotExist(err) {
				t.Errorf("Close left the CPU cgroup %s: %v", cgroup, err)
			}
		}
		if err := h.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

// TestStaleHostIsSwept starts a host in a child process that exits without
// Close (as a crashed test run would) and checks the next Start/Sweep
// cleans it up.
func TestStaleHostIsSwept(t *testing.T) {
	needRoot(t)
	if os.Getenv("NSHOST_CRASH_CHILD") != "" {
		h, err := Start(context.Background(), Options{})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		fmt.Printf("SLOT %d %d\n", h.slot, h.initPID)
		os.Exit(0) // no Close: everything stays up, the slot lock is dropped
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleHostIsSwept$")
	cmd.Env = append(os.Environ(), "NSHOST_CRASH_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var slot, pid int
	if _, err := fmt.Sscanf(string(out[strings.Index(string(out), "SLOT"):]), "SLOT %d %d", &slot, &pid); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	stale := &Host{NetNS: netnsName(slot), HostIf: vethName(slot), UpperDir: filepath.Join(slotDir(slot), "upper"), initPID: pid}
	if _, err := os.Stat(filepath.Join("/run/netns", stale.NetNS)); err != nil {
		t.Fatalf("crashed child left no netns to clean: %v", err)
	}
	if err := alive(pid); err != nil {
		t.Fatalf("crashed child's host is not running: %v", err)
	}
	begin := time.Now()
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	t.Logf("swept stale slot %d in %v", slot, time.Since(begin).Round(time.Millisecond))
	assertGone(t, stale)
}

// assertGone checks that nothing of h is left on this machine.
func assertGone(t *testing.T, h *Host) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join("/run/netns", h.NetNS)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s left: %v", h.NetNS, err)
	}
	if _, err := net.InterfaceByName(h.HostIf); err == nil {
		t.Errorf("veth %s left", h.HostIf)
	}
	stateDir := filepath.Dir(h.UpperDir)
	if _, err := os.Lstat(stateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s left: %v", stateDir, err)
	}
	if h.initPID != 0 {
		if err := alive(h.initPID); err == nil {
			t.Errorf("PID 1 of the host (%d) still runs", h.initPID)
		}
	}
	// No mount of the host left in any mount namespace on this machine.
	mounts, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, m := range mounts {
		b, err := os.ReadFile(m)
		if err == nil && strings.Contains(string(b), stateDir+"/") {
			t.Errorf("%s still mentions %s", m, stateDir)
			break
		}
	}
}

// alive returns nil when process pid exists and is not a zombie.
func alive(pid int) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return err
	}
	// pid (comm) state ...; comm may hold spaces, so split after ')'.
	if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
		return fmt.Errorf("process %d is a zombie", pid)
	}
	return nil
}

// checkSFTP writes and reads a file over the sftp subsystem.
func checkSFTP(t *testing.T, h *Host) {
	t.Helper()
	key, err := os.ReadFile(h.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)), &ssh.ClientConfig{
		User:            h.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("ssh for sftp: %v", err)
	}
	defer client.Close()
	sc, err := sftp.NewClient(client)
	if err != nil {
		t.Fatalf("sftp subsystem: %v", err)
	}
	defer sc.Close()
	f, err := sc.Create("/opt/sftp-probe")
	if err != nil {
		t.Fatalf("sftp create: %v", err)
	}
	if _, err := f.Write([]byte("via sftp")); err != nil {
		t.Fatalf("sftp write: %v", err)
	}
	f.Close()
	out, err := h.Run(context.Background(), "cat /opt/sftp-probe")
	if err != nil || out != "via sftp" {
		t.Errorf("file written over sftp reads %q, %v", out, err)
	}
	if _, err := os.Stat("/opt/sftp-probe"); err == nil {
		t.Errorf("sftp write reached this machine's /opt")
	}
}

// httpGetRetry GETs url until it answers or ctx (capped at 15 s) ends.
func httpGetRetry(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestLAN: hosts on a LAN reach each other at their LAN addresses, and
// still not at each other's veth (public) addresses; closing the LAN leaves
// no namespace behind.
func TestLAN(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hosts := startTwo(t, ctx)
	lan, err := NewLAN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lan.Close() })
	var addrs [2]string
	for i, h := range hosts {
		if addrs[i], err = lan.Join(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := lan.Join(ctx, hosts[0]); again != addrs[0] {
		t.Errorf("second join: %s, want %s", again, addrs[0])
	}
	// Host 1's sshd (it listens on every address) answers on the LAN.
	out, err := hosts[0].Run(ctx, "timeout 10 bash -c 'exec 3<>/dev/tcp/"+addrs[1]+"/22; head -c 8 <&3'")
	if err != nil || out != "SSH-2.0-" {
		t.Errorf("host 0 -> host 1 on the LAN: %q, %v", out, err)
	}
	if _, err := hosts[0].Run(ctx, "timeout 3 bash -c 'exec 3<>/dev/tcp/"+hosts[1].Addr+"/22'"); err == nil {
		t.Errorf("host 0 reaches host 1's veth address %s: the LAN test would prove nothing", hosts[1].Addr)
	}
	ns := lan.NetNS
	if err := lan.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("%s left behind", ns)
	}
}
