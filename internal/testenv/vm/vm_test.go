package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
)

func TestHostKeys(t *testing.T) {
	console := "boot\r\n-----BEGIN SSH HOST KEY KEYS-----\r\nssh-ed25519 AAAA1 root@a\r\n-----END SSH HOST KEY KEYS-----\r\n" +
		"reboot\r\n-----BEGIN SSH HOST KEY KEYS-----\r\necdsa-sha2-nistp256 BBBB root@a\r\nssh-ed25519 AAAA2 root@a\r\n-----END SSH HOST KEY KEYS-----\r\nlogin:"
	got := HostKeys(console)
	want := []string{"ecdsa-sha2-nistp256 BBBB root@a", "ssh-ed25519 AAAA2 root@a"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("HostKeys = %q, want %q", got, want)
	}
	if HostKeys("no block here") != nil || HostKeys("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 X") != nil {
		t.Fatal("HostKeys must return nil without a complete block")
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/tmp/a\040b/proc`); got != "/tmp/a b/proc" {
		t.Fatalf("unescapeMount = %q", got)
	}
}

// TestBuildImage checks the cached images' files. Run it from two
// processes at once on an empty cache to exercise the build lock.
func TestBuildImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the VM images (minutes when not cached)")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and mmdebstrap")
	}
	if imageHash(Plain) == imageHash(Cloud) {
		t.Fatal("the flavors share a cache key")
	}
	for _, f := range []Flavor{Plain, Cloud} {
		t.Run(string(f), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			start := time.Now()
			img, err := Build(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Build(%s) took %s: %+v", f, time.Since(start).Round(100*time.Millisecond), *img)
			if filepath.Base(img.Dir) != imageHash(f) {
				t.Errorf("image dir %s is not named by the content hash %s", img.Dir, imageHash(f))
			}
			if fi, err := os.Stat(img.Disk); err != nil || fi.Size() != 8<<30 {
				t.Errorf("disk %s: %v, want 8 GiB sparse", img.Disk, err)
			}
			if (img.KeyPath != "") != (f == Plain) {
				t.Errorf("KeyPath %q: only the plain image has a baked-in login", img.KeyPath)
			}
			if stale, _ := filepath.Glob(filepath.Join(filepath.Dir(img.Dir), "tmp-*")); len(stale) > 0 {
				t.Errorf("temporary build dirs left: %v", stale)
			}
			pkgs, err := os.ReadFile(filepath.Join(img.Dir, packagesFile))
			if err != nil {
				t.Fatal(err)
			}
			has := func(p string) bool { return strings.Contains("\n"+string(pkgs), "\n"+p+" ") }
			for _, p := range append([]string{"systemd", "openssh-server", "linux-image-amd64"}, packages(f)...) {
				if !has(p) {
					t.Errorf("package %s missing from the image", p)
				}
			}
			absent := []string{"openjdk-17-jre-headless", "default-jre-headless"}
			if f == Plain {
				absent = append(absent, "cloud-init", "unattended-upgrades")
			}
			for _, p := range absent {
				if has(p) {
					t.Errorf("package %s must not be in the %s image", p, f)
				}
			}
		})
	}
}

// TestVM builds the image, boots a real VM and checks everything the
// end-to-end tests rely on. It takes a few minutes (TCG emulation).
func TestVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a qemu VM (minutes)")
	}
	// The end-to-end packages boot, reboot and use VMs through this harness
	// on every run; this self-test checks the harness's own promises in
	// detail and costs another VM, so CI leaves it to `make test-harness`.
	if os.Getenv("KAFKAUP_VM_SELFTEST") == "" {
		t.Skip("harness self-test: run with KAFKAUP_VM_SELFTEST=1 (make test-harness)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "mmdebstrap"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: mmdebstrap root mode and forwarding port 22")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	start := time.Now()
	img, err := BuildImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	start = time.Now()
	if _, err := BuildImage(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("BuildImage: first call %s (cold if the cache was empty), cached call %s; image %s",
		first.Round(100*time.Millisecond), time.Since(start).Round(time.Microsecond), img.Dir)
	baseBefore, err := os.Stat(img.Disk)
	if err != nil {
		t.Fatal(err)
	}

	v, err := Boot(ctx, img, Options{Name: "selftest", Aliases: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			if log, err := v.SerialLog(); err == nil {
				t.Logf("serial console:\n%s", log)
			}
		}
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	}()
	run := func(cmd string) string {
		t.Helper()
		out, err := v.Run(ctx, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}

	// systemd came up without failed units (degraded is tolerated, logged).
	state := run("systemctl is-system-running --wait || true")
	if state != "running" && state != "degraded" {
		t.Fatalf("system state %q", state)
	}
	if state == "degraded" {
		t.Logf("system degraded; failed units:\n%s", run("systemctl --failed --no-legend"))
	}
	t.Logf("guest: %s; %s", run("uname -r"), run("systemd-analyze | head -1"))
	if got := run("hostname"); got != "kafkaup-test" {
		t.Errorf("hostname %q", got)
	}
	if got := run("findmnt -no SOURCE,FSTYPE /"); got != "/dev/vda ext4" {
		t.Errorf("root mount %q", got)
	}

	// sudo: debian has it without a password, nosudo has none at all.
	run("sudo -n true")
	noSudo := v.NoSudoTarget()
	if got, err := testssh.Run(ctx, noSudo, "id -un"); err != nil || strings.TrimSpace(got) != "nosudo" {
		t.Fatalf("login as nosudo: %q, %v", got, err)
	}
	if _, err := testssh.Run(ctx, noSudo, "sudo -n true"); err == nil {
		t.Fatal("sudo -n true worked for nosudo")
	}

	// Swap works on this filesystem (the product makes a swapfile).
	// /usr/sbin is not on the user's PATH: go through sudo.
	run("sudo -n swapon --show")
	swap := run("sudo -n sh -c 'fallocate -l 64M /swaptest && chmod 600 /swaptest && mkswap /swaptest >/dev/null && swapon /swaptest && swapon --show --noheadings; swapoff /swaptest; rm -f /swaptest'")
	if !strings.Contains(swap, "/swaptest") {
		t.Errorf("swapfile not active: %q", swap)
	}

	// The serial log carries the host keys, and they are the keys sshd shows.
	console, err := v.SerialLog()
	if err != nil {
		t.Fatal(err)
	}
	keys := HostKeys(console)
	if len(keys) == 0 {
		t.Fatal("no SSH host key block in the serial log")
	}
	live := hostKey(t, v.Addr)
	if !containsKey(keys, live) {
		t.Fatalf("sshd's host key %q is not in the console block %q", live, keys)
	}

	// A server on the guest's 9092 answers at Addr:9092.
	run("sudo -n systemd-run --unit=selftest-9092 systemd-socket-activate --inetd -a -l 9092 /bin/echo hello-from-vm")
	if got := readLine(t, net.JoinHostPort(v.Addr, "9092")); got != "hello-from-vm" {
		t.Fatalf("Addr:9092 answered %q", got)
	}
	if len(v.Aliases) != 1 || v.Aliases[0] == v.Addr {
		t.Fatalf("Aliases = %v (Addr %s), want one more address", v.Aliases, v.Addr)
	}
	if got := readLine(t, net.JoinHostPort(v.Aliases[0], "9092")); got != "hello-from-vm" {
		t.Fatalf("alias %s:9092 answered %q", v.Aliases[0], got)
	}
	if got, err := testssh.Run(ctx, testssh.Target{Addr: v.Aliases[0], User: v.User, KeyPath: v.KeyPath}, "hostname"); err != nil || strings.TrimSpace(got) != "kafkaup-test" {
		t.Fatalf("ssh via alias %s: %q, %v", v.Aliases[0], got, err)
	}

	// The guest reaches the host's loopback at HostGateway.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello-from-host") })}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if got := run(fmt.Sprintf("curl -fsS http://%s:%d/", v.HostGateway, port)); got != "hello-from-host" {
		t.Fatalf("guest -> host gateway answered %q", got)
	}

	// apt works inside (the product installs the JDK with it).
	start = time.Now()
	run("sudo -n apt-get update -q >/dev/null")
	t.Logf("apt-get update in the guest took %s", time.Since(start).Round(100*time.Millisecond))

	rss, peak, err := v.QemuMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("qemu RSS after boot and checks: %d MiB (peak %d MiB)", rss>>20, peak>>20)

	// Reboot from inside: SSH comes back with the same host key.
	if err := v.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest after reboot: %s", run("systemd-analyze | head -1"))
	if again := hostKey(t, v.Addr); again != live {
		t.Fatalf("host key changed across reboot: %q -> %q", live, again)
	}
	console, _ = v.SerialLog()
	if n := strings.Count(console, "-----BEGIN SSH HOST KEY KEYS-----"); n != 2 {
		t.Errorf("want the host key block once per boot (2), got %d", n)
	}
	if !containsKey(HostKeys(console), live) {
		t.Errorf("host key block after reboot does not hold %q", live)
	}
	rss, peak, _ = v.QemuMemory()
	t.Logf("qemu RSS after reboot: %d MiB (peak %d MiB); boot %s, reboot %s",
		rss>>20, peak>>20, v.BootTime.Round(100*time.Millisecond), v.LastRebootTime.Round(100*time.Millisecond))

	// Close removes the overlay and leaves the base image untouched.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.dir); !os.IsNotExist(err) {
		t.Errorf("vm dir %s still there after Close (%v)", v.dir, err)
	}
	baseAfter, err := os.Stat(img.Disk)
	if err != nil {
		t.Fatal(err)
	}
	if !baseAfter.ModTime().Equal(baseBefore.ModTime()) {
		t.Errorf("base image %s was modified", img.Disk)
	}
	if log, err := v.SerialLog(); err != nil || !strings.Contains(log, "kafkaup-test") {
		t.Errorf("SerialLog after Close: %d bytes, %v", len(log), err)
	}
}

// hostKey returns the host key sshd at addr:22 presents, as "type base64".
func hostKey(t *testing.T, addr string) string {
	t.Helper()
	var got string
	cfg := &ssh.ClientConfig{
		User: "nobody",
		Auth: []ssh.AuthMethod{ssh.Password("x")},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			return nil
		},
		Timeout: 20 * time.Second,
	}
	c, err := ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg)
	if err == nil {
		c.Close()
	}
	if got == "" {
		t.Fatalf("no host key from %s: %v", addr, err)
	}
	return got
}

// containsKey reports whether a console key line ("type base64 comment")
// matches key ("type base64").
func containsKey(lines []string, key string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 2 && f[0]+" "+f[1] == key {
			return true
		}
	}
	return false
}

// readLine reads the first line a TCP server sends, retrying briefly while
// it starts.
func readLine(t *testing.T, addr string) string {
	t.Helper()
	var last error
	for i := 0; i < 20; i++ {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil {
				return strings.TrimSpace(line)
			}
			err = rerr
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("read from %s: %v", addr, last)
	return ""
}

// TestCloudVM boots the Cloud image the way the local cloud does: a
// NoCloud seed with the instance's key and user-data, no wait for SSH;
// then shuts it down with the power button and boots its disk again.
func TestCloudVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a qemu VM (minutes)")
	}
	if os.Getenv("KAFKAUP_VM_SELFTEST") == "" {
		t.Skip("harness self-test: run with KAFKAUP_VM_SELFTEST=1 (make test-harness)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: mmdebstrap root mode and forwarding port 22")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	img, err := BuildCloudImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, err := testssh.EnsureKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"meta-data": "instance-id: i-0123456789abcdef0\nlocal-hostname: ip-172-31-9-9\npublic-keys:\n  - " + strings.TrimSpace(string(pub)) + "\n",
		"user-data": "#cloud-config\nruncmd:\n  - [sh, -c, 'echo ran > /var/tmp/user-data-ran']\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	overlay := filepath.Join(dir, "disk.qcow2")
	opts := Options{Name: "cloud-selftest", Overlay: overlay, DiskGB: 12, Seed: seed, NoWait: true, MemoryMB: 1024, Logf: t.Logf}
	begin := time.Now()
	v, err := Boot(ctx, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	t.Logf("qemu ready in %s", time.Since(begin).Round(100*time.Millisecond))
	target := testssh.Target{Addr: v.Addr, User: "ubuntu", KeyPath: key}
	if err := testssh.WaitLogin(ctx, target); err != nil {
		log, _ := v.SerialLog()
		t.Fatalf("%v\nconsole:\n%s", err, log)
	}
	t.Logf("boot to SSH login as ubuntu: %s", time.Since(begin).Round(100*time.Millisecond))
	run := func(cmd string) string {
		t.Helper()
		out, err := testssh.Run(ctx, target, cmd)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	status := run("cloud-init status --wait --long || true")
	t.Logf("cloud-init after %s: %s", time.Since(begin).Round(100*time.Millisecond), status)
	if !strings.Contains(status, "status: done") {
		t.Errorf("cloud-init did not finish cleanly; its warnings:\n%s", run("sudo -n grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log | tail -40 || true"))
	}
	if got := run("cat /var/tmp/user-data-ran || sudo -n tail -20 /var/log/cloud-init-output.log"); got != "ran" {
		t.Errorf("user-data: %q", got)
	}
	if got := run("hostname"); got != "ip-172-31-9-9" {
		t.Errorf("hostname %q", got)
	}
	run("sudo -n true")
	if got := run("df -BG --output=size / | tail -1"); got != "12G" && got != "11G" {
		t.Errorf("root size %q, want the 12 GB disk", got)
	}
	console, _ := v.SerialLog()
	keys := HostKeys(console)
	live := hostKey(t, v.Addr)
	if !containsKey(keys, live) {
		t.Fatalf("sshd's host key %q is not in the console block %q", live, keys)
	}
	t.Logf("console: %d bytes, host keys %d", len(console), len(keys))

	clean, err := v.Shutdown(ctx, 3*time.Minute)
	if err != nil || !clean {
		t.Fatalf("shutdown: clean=%v, %v", clean, err)
	}
	if _, err := os.Stat(overlay); err != nil {
		t.Fatalf("overlay gone after shutdown: %v", err)
	}
	begin = time.Now()
	v2, err := Boot(ctx, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	target.Addr = v2.Addr
	if err := testssh.WaitLogin(ctx, target); err != nil {
		t.Fatal(err)
	}
	t.Logf("second boot to SSH: %s", time.Since(begin).Round(100*time.Millisecond))
	if again := hostKey(t, v2.Addr); again != live {
		t.Errorf("host key changed across stop and start: %q -> %q", live, again)
	}
	if got := run("cat /var/tmp/user-data-ran"); got != "ran" {
		t.Errorf("disk not kept: %q", got)
	}
}
