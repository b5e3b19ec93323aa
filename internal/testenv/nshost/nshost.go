// Package nshost starts "namespace hosts": fast disposable SSH hosts without
// systemd for the end-to-end tests. Each one is sshd running as root inside
// its own network, mount, UTS, IPC and PID namespaces, with an overlayfs over
// this machine's root filesystem as its root. Whatever the tool under test
// writes there (/etc, /opt, /var, /swapfile, users) lands in the overlay's
// upper directory and never touches this machine; processes inside see only
// each other.
//
// Layout on this machine, per host ("slot" N, 1..254):
//
//	/var/tmp/kafkaup-nshost/slot-N.lock  flock held while the host lives
//	/var/tmp/kafkaup-nshost/N/{upper,work,root}, console.log
//	/run/netns/kafkaup-nsN               the network namespace (ip netns)
//	kup-hN 10.213.N.1/30 <-veth-> eth0 10.213.N.2/30 inside
//
// The overlay and every other mount exist only in the host's private mount
// namespace: they vanish with its last process, so this machine's mount
// table never holds any of them. The slot lock is an flock, which the kernel
// drops when the owning test process dies, so a crashed run leaves slots that
// the next Start finds unlocked and cleans.
//
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), util-linux (unshare, nsenter,
// pivot_root), iproute2 and openssh-server on this machine.
package nshost

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
)

// initScript is PID 1 of every namespace host: it builds the root
// filesystem, pivots into it and runs sshd. See init.sh.
//
//go:embed init.sh
var initScript string

// BaseDir holds the slot locks and the per-host state directories. It must
// be on this machine's root filesystem (the overlay's lower layer), which
// /var/tmp is here. Inside the hosts it is hidden behind an empty tmpfs.
var BaseDir = "/var/tmp/kafkaup-nshost"

const (
	maxSlots    = 254
	netnsPrefix = "kafkaup-ns" // + N: network namespace name
	vethPrefix  = "kup-h"      // + N: this machine's end of the veth pair
	startLimit  = 60 * time.Second
)

// Options configure Start.
type Options struct {
	// Name becomes the host's hostname (and is added to its /etc/hosts with
	// Addr). Default: the network namespace's name, kafkaup-nsN.
	Name string
	// Disk is a directory under BaseDir that holds the host's writes (the
	// overlay's upper and work directories) instead of its slot: created
	// when missing and kept by Close, so a host started again with it
	// finds its files, users and SSH host keys as it left them (an EC2 stop
	// and start; processes do not survive, there is no init system to
	// start them again). The caller removes it.
	Disk string
}

// Host is a running namespace host. Close it when done.
type Host struct {
	Addr         string // the namespace's end of the veth, 10.213.N.2; SSH on :22, Kafka on :9092
	Port         int    // 22
	User         string // "root"
	KeyPath      string // private key authorized for root
	HostSideAddr string // this machine's end of the veth, 10.213.N.1: bind test services here
	RootDir      string // the host's / as seen from this machine: /proc/PID/root of its PID 1
	UpperDir     string // the overlay's upper dir: everything written inside

	Hostname string        // hostname inside
	NetNS    string        // network namespace name (ip netns exec NAME ...)
	HostIf   string        // this machine's veth interface
	LogPath  string        // init.sh and sshd output
	Started  time.Duration // how long Start took

	slot    int
	disk    string   // Options.Disk, or "" for the slot's own layers
	lock    *os.File // the slot's flock
	cmd     *exec.Cmd
	initPID int           // PID 1 of the host, as seen from this machine
	exited  chan struct{} // closed when cmd has exited

	cgroupDir string // LimitCPU's cgroup, removed by Close

	closeOnce sync.Once
	closeErr  error
}

// Start creates a namespace host and returns once a real SSH login as root
// works. On error nothing is left behind.
func Start(ctx context.Context, opts Options) (*Host, error) {
	begin := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("nshost: needs root (namespaces, overlayfs, veth)")
	}
	for _, tool := range []string{"ip", "nsenter", "unshare", "pivot_root", "/usr/sbin/sshd", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("nshost: %s not found: %w", tool, err)
		}
	}
	keyPath, pubKey, rsaHostKey, err := ensureKeys()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(BaseDir, 0o755); err != nil {
		return nil, fmt.Errorf("nshost: %w", err)
	}
	if err := Sweep(); err != nil {
		return nil, err
	}
	h, err := allocate()
	if err != nil {
		return nil, err
	}
	h.KeyPath = keyPath
	h.Hostname = opts.Name
	if opts.Disk != "" {
		if rel, err := filepath.Rel(BaseDir, opts.Disk); err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			h.Close()
			return nil, fmt.Errorf("nshost: Disk %s must be below %s (hidden inside the hosts)", opts.Disk, BaseDir)
		}
		h.disk = opts.Disk
		h.UpperDir = filepath.Join(opts.Disk, "upper")
	}
	if h.Hostname == "" {
		h.Hostname = h.NetNS
	}
	if err := h.start(ctx, pubKey, rsaHostKey); err != nil {
		if cerr := h.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed start: %w", cerr))
		}
		return nil, fmt.Errorf("nshost: start %s: %w", h.NetNS, err)
	}
	h.Started = time.Since(begin)
	return h, nil
}

// Target is where and as whom to log in.
func (h *Host) Target() testssh.Target {
	return testssh.Target{Addr: h.Addr, Port: h.Port, User: h.User, KeyPath: h.KeyPath}
}

// Run runs cmd as root on the host over SSH and returns its stdout.
func (h *Host) Run(ctx context.Context, cmd string) (string, error) {
	return testssh.Run(ctx, h.Target(), cmd)
}

// hideAPTScript makes the host look like a non-apt distribution: the apt and
// dpkg front ends disappear from every PATH directory (whiteouts in the
// overlay) and os-release says Fedora.
const hideAPTScript = `set -e
for b in apt apt-get apt-cache apt-config apt-mark apt-key \
         dpkg dpkg-query dpkg-deb dpkg-divert dpkg-split dpkg-statoverride dpkg-trigger; do
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    rm -f "$d/$b"
  done
done
rm -f /etc/os-release /usr/lib/os-release /etc/debian_version
cat >/usr/lib/os-release <<'EOF'
NAME="Fedora Linux"
VERSION="40 (Server Edition)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Server Edition)"
ANSI_COLOR="0;38;2;60;110;180"
CPE_NAME="cpe:/o:fedoraproject:fedora:40"
HOME_URL="https://fedoraproject.org/"
VARIANT="Server Edition"
VARIANT_ID=server
EOF
ln -s ../usr/lib/os-release /etc/os-release
hash -r
if command -v apt-get || command -v apt || command -v dpkg; then
  echo "apt still visible" >&2; exit 1
fi
`

// HideAPT makes the host look like a non-apt OS (no apt-get, apt or dpkg on
// PATH; a Fedora /etc/os-release), for the "unsupported OS" path. Only the
// overlay changes.
func (h *Host) HideAPT(ctx context.Context) error {
	if _, err := h.Run(ctx, hideAPTScript); err != nil {
		return fmt.Errorf("nshost: hide apt on %s: %w", h.NetNS, err)
	}
	return nil
}

// SmallDisk mounts a tmpfs of size bytes at dir inside the host (created
// if missing, hiding what was there), so whatever lands there sees a nearly
// full small disk. The mount lives in the host's mount namespace only and
// goes with it.
func (h *Host) SmallDisk(ctx context.Context, dir string, size int64) error {
	cmd := fmt.Sprintf("mkdir -p %s && mount -t tmpfs -o size=%d,mode=0755 nshost-small %s", shellQuote(dir), size, shellQuote(dir))
	if _, err := h.Run(ctx, cmd); err != nil {
		return fmt.Errorf("nshost: small disk at %s on %s: %w", dir, h.NetNS, err)
	}
	return nil
}

// waitGone waits until process pid has exited (gone or a zombie).
func waitGone(pid int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Exited is closed once the host is gone: its init ended (sshd died,
// Close, or something killed it).
func (h *Host) Exited() <-chan struct{} { return h.exited }

// Shutdown stops the host the way an orderly power-off does: every process
// but the host's PID 1 and its sshd (whose exit ends the host) gets SIGTERM
// and up to timeout to exit (a broker's controlled shutdown), then Close
// kills what is left. With Options.Disk the host's files stay for a new
// Start.
func (h *Host) Shutdown(timeout time.Duration) error {
	nsPath := filepath.Join("/run/netns", h.NetNS)
	var ns syscall.Stat_t
	if h.initPID != 0 && syscall.Stat(nsPath, &ns) == nil {
		others := func() []int {
			var out []int
			for _, pid := range netnsPIDs(ns) {
				if pid == h.initPID || h.cmd != nil && h.cmd.Process != nil && pid == h.cmd.Process.Pid {
					continue
				}
				if ppid, comm := parentAndName(pid); ppid == h.initPID && comm == "sshd" {
					continue
				}
				out = append(out, pid)
			}
			return out
		}
		for _, pid := range others() {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(timeout)
		for len(others()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return h.Close()
}

// Close kills everything in the host (SIGKILL to its PID 1 takes the whole
// PID namespace, and with it the mount namespace and overlay), then deletes
// the veth pair, the network namespace and the state directory. It is safe
// to call more than once and on a half-started host.
func (h *Host) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.close() })
	return h.closeErr
}

func (h *Host) close() error {
	var errs []error
	if h.cmd != nil && h.cmd.Process != nil {
		// unshare runs with --kill-child: its death SIGKILLs our PID 1.
		_ = h.cmd.Process.Kill()
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("unshare (pid %d) did not exit after SIGKILL", h.cmd.Process.Pid))
		}
	}
	// The host's PID 1 gets its SIGKILL from unshare's death a moment later
	// (PR_SET_PDEATHSIG); make sure it is gone before the files go.
	if h.initPID != 0 {
		_ = syscall.Kill(h.initPID, syscall.SIGKILL)
		if !waitGone(h.initPID, 10*time.Second) {
			errs = append(errs, fmt.Errorf("PID 1 of the host (%d) still runs 10s after SIGKILL", h.initPID))
		}
	}
	// Whatever may still run in the network namespace, then the veth, the
	// namespace and the files.
	if err := cleanSlot(h.slot); err != nil {
		errs = append(errs, err)
	}
	if err := h.removeCgroup(); err != nil {
		errs = append(errs, err)
	}
	if h.lock != nil {
		_ = h.lock.Close() // drops the flock: the slot is free
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nshost: close %s: %w", h.NetNS, err)
	}
	return nil
}

// start sets up the network, launches init.sh and waits for an SSH login.
func (h *Host) start(ctx context.Context, pubKey, rsaHostKey string) error {
	dir := slotDir(h.slot)
	layers := dir
	if h.disk != "" {
		layers = h.disk
	}
	// A disk that was used before: the host starts again with what it wrote.
	_, err := os.Stat(filepath.Join(layers, "upper", "root"))
	restart := err == nil
	for _, d := range []string{filepath.Join(layers, "upper"), filepath.Join(layers, "work"), filepath.Join(dir, "root")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := h.setupNetwork(ctx); err != nil {
		return err
	}

	// A fresh, empty /root instead of this machine's (its dotfiles, caches
	// and tool chains): an opaque directory in the upper layer hides the
	// lower one in O(1). init.sh adds Debian's stock dotfiles.
	restartFlag := ""
	if restart {
		restartFlag = "1"
	} else {
		if err := os.Mkdir(filepath.Join(layers, "upper", "root"), 0o700); err != nil {
			return err
		}
		if err := syscall.Setxattr(filepath.Join(layers, "upper", "root"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("make /root opaque: %w", err)
		}
	}
	// PID 1 runs init.sh from the state dir (see init.sh for why the
	// parameters travel in the environment).
	if err := os.WriteFile(filepath.Join(dir, "nshost-init"), []byte(initScript), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child keeps its own copy
	// nsenter joins the network namespace; unshare makes the rest: PID 1
	// (bash running init.sh) gets new mount, UTS, IPC and PID namespaces.
	h.cmd = exec.Command("nsenter", "--net=/run/netns/"+h.NetNS, "--",
		"unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--",
		"bash", "nshost-init")
	h.cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8",
		"NSHOST_STATE=" + dir,
		"NSHOST_UPPER=" + filepath.Join(layers, "upper"),
		"NSHOST_WORK=" + filepath.Join(layers, "work"),
		"NSHOST_RESTART=" + restartFlag,
		"NSHOST_HIDE=" + BaseDir,
		"NSHOST_HOSTNAME=" + h.Hostname,
		"NSHOST_ADDR=" + h.Addr,
		"NSHOST_PUBKEY=" + pubKey,
		"NSHOST_RSA_KEY=" + rsaHostKey,
	}
	h.cmd.Dir = dir
	h.cmd.Stdin = nil
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	if err := h.cmd.Start(); err != nil {
		return fmt.Errorf("launch init: %w", err)
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startLimit)
		defer cancel()
	}
	// Stop waiting as soon as init dies: its log says why.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-h.exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Poll the port quickly (sshd is usually up in well under a second),
	// then require a real login.
	sshAddr := net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))
	for {
		c, err := net.DialTimeout("tcp", sshAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-ctx.Done():
			return h.startFailure(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := testssh.WaitLogin(ctx, h.Target()); err != nil {
		return h.startFailure(err)
	}
	pid, err := childPID(h.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("find the host's PID 1: %w", err)
	}
	h.initPID = pid
	h.RootDir = fmt.Sprintf("/proc/%d/root", pid)
	return nil
}

// startFailure wraps err with the end of the host's log.
func (h *Host) startFailure(err error) error {
	select {
	case <-h.exited:
		err = fmt.Errorf("init exited (%v): %w", h.cmd.ProcessState, err)
	default:
	}
	return fmt.Errorf("%w; log %s:\n%s", err, h.LogPath, tail(h.LogPath, 2048))
}

// setupNetwork creates the network namespace and the veth pair between it
// and this machine. No default route inside: the host reaches this machine
// at HostSideAddr and nothing else.
func (h *Host) setupNetwork(ctx context.Context) error {
	// ip netns add mounts /run/netns on first use; serialize our ip calls
	// across test processes so two first uses do not race.
	unlock, err := flock(filepath.Join(BaseDir, ".setup.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	cmds := [][]string{
		{"netns", "add", h.NetNS},
		{"link", "add", h.HostIf, "type", "veth", "peer", "name", "eth0", "netns", h.NetNS},
		{"addr", "add", h.HostSideAddr + "/30", "dev", h.HostIf},
		{"link", "set", h.HostIf, "up"},
		{"-n", h.NetNS, "link", "set", "lo", "up"},
		{"-n", h.NetNS, "addr", "add", h.Addr + "/30", "dev", "eth0"},
		{"-n", h.NetNS, "link", "set", "eth0", "up"},
	}
	for _, args := range cmds {
		if err := runCmd(ctx, "ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// allocate locks the first free slot, clears any remains of a crashed run
// in it, and returns a Host describing it.
func allocate() (*Host, error) {
	inUse, err := hostAddrs()
	if err != nil {
		return nil, err
	}
	for n := 1; n <= maxSlots; n++ {
		f, ok, err := tryLock(lockPath(n))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // another live host
		}
		if err := cleanSlot(n); err != nil {
			f.Close()
			return nil, fmt.Errorf("nshost: clean stale slot %d: %w", n, err)
		}
		// Skip subnets something else on this machine already uses.
		if inUse(net.IPv4(10, 213, byte(n), 1)) {
			f.Close()
			continue
		}
		return &Host{
			Addr:         fmt.Sprintf("10.213.%d.2", n),
			Port:         22,
			User:         "root",
			HostSideAddr: fmt.Sprintf("10.213.%d.1", n),
			UpperDir:     filepath.Join(slotDir(n), "upper"),
			NetNS:        netnsName(n),
			HostIf:       vethName(n),
			LogPath:      filepath.Join(slotDir(n), "console.log"),
			slot:         n,
			lock:         f,
		}, nil
	}
	return nil, fmt.Errorf("nshost: all %d slots busy", maxSlots)
}

// Sweep cleans the remains of every namespace host and LAN whose test
// process is gone (its slot lock is free). Start calls it; a TestMain may too.
func Sweep() error {
	locks, err := filepath.Glob(filepath.Join(BaseDir, "slot-*.lock"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range locks {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "slot-"), ".lock"))
		if err != nil || n < 1 || n > maxSlots {
			continue
		}
		f, ok, err := tryLock(p)
		if err != nil || !ok {
			continue
		}
		if err := cleanSlot(n); err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", n, err))
		}
		f.Close()
	}
	if err := sweepLANs(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nshost: sweep stale hosts: %w", err)
	}
	return nil
}

// cleanSlot removes everything slot n may have left: processes in its
// network namespace, the veth, the namespace and the state directory. The
// caller holds the slot's lock.
func cleanSlot(n int) error {
	var errs []error
	nsPath := filepath.Join("/run/netns", netnsName(n))
	if _, err := os.Stat(nsPath); err == nil {
		// Every process of the host (unshare, its PID 1, sshd, daemons)
		// lives in this network namespace.
		if err := killNetnsProcs(nsPath, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := net.InterfaceByName(vethName(n)); err == nil {
		if err := runCmd(context.Background(), "ip", "link", "del", vethName(n)); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Lstat(nsPath); err == nil {
		if err := runCmd(context.Background(), "ip", "netns", "del", netnsName(n)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(slotDir(n)); err != nil {
		errs = append(errs, fmt.Errorf("remove state dir: %w", err))
	}
	return errors.Join(errs...)
}

// killNetnsProcs SIGKILLs every process whose network namespace is the one
// bound at nsPath, until none is left or limit passes.
func killNetnsProcs(nsPath string, limit time.Duration) error {
	var want syscall.Stat_t
	if err := syscall.Stat(nsPath, &want); err != nil {
		return fmt.Errorf("stat %s: %w", nsPath, err)
	}
	deadline := time.Now().Add(limit)
	for {
		pids := netnsPIDs(want)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v in %s survive SIGKILL", pids, nsPath)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// netnsPIDs lists the processes whose /proc/PID/ns/net is the namespace
// file ns (same device and inode). Zombies have no namespace and are skipped.
func netnsPIDs(ns syscall.Stat_t) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		if st.Dev == ns.Dev && st.Ino == ns.Ino {
			pids = append(pids, pid)
		}
	}
	return pids
}

// parentAndName reads a process's parent PID and command name.
func parentAndName(pid int) (int, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, ""
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return 0, ""
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid, s[open+1 : end]
}

// childPID returns the single child of pid (unshare --fork's child).
func childPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("process %d has children %q, want one", pid, f)
	}
	return strconv.Atoi(f[0])
}

// hostAddrs returns a predicate telling whether an address's /24 is
// already used by an interface on this machine.
func hostAddrs() (func(net.IP) bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("nshost: list addresses: %w", err)
	}
	return func(ip net.IP) bool {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.Mask(net.CIDRMask(24, 32)).Equal(ip.Mask(net.CIDRMask(24, 32))) {
				return true
			}
		}
		return false
	}, nil
}

// ensureKeys returns the client key authorized for root (its private key
// file and public line) and the shared RSA host key file, creating them once
// under the cache dir, under a lock so concurrent test processes agree.
func ensureKeys() (keyPath, pubKey, rsaHostKey string, err error) {
	dir := filepath.Join(testenv.CacheDir(), "nshost")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", fmt.Errorf("nshost: key dir: %w", err)
	}
	unlock, err := flock(filepath.Join(dir, ".key.lock"))
	if err != nil {
		return "", "", "", err
	}
	defer unlock()
	keyPath, err = testssh.EnsureKey(dir)
	if err != nil {
		return "", "", "", fmt.Errorf("nshost: test key: %w", err)
	}
	pub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		return "", "", "", fmt.Errorf("nshost: test key: %w", err)
	}
	rsaHostKey = filepath.Join(dir, "ssh_host_rsa_key")
	if _, err := os.Stat(rsaHostKey + ".pub"); errors.Is(err, os.ErrNotExist) {
		os.Remove(rsaHostKey) // a half-written pair from an interrupted run
		if err := runCmd(context.Background(), "ssh-keygen", "-q", "-t", "rsa", "-b", "3072",
			"-N", "", "-C", "root@nshost", "-f", rsaHostKey); err != nil {
			return "", "", "", fmt.Errorf("nshost: RSA host key: %w", err)
		}
	} else if err != nil {
		return "", "", "", fmt.Errorf("nshost: RSA host key: %w", err)
	}
	return keyPath, strings.TrimSpace(string(pub)), rsaHostKey, nil
}

// tryLock takes an exclusive flock on path without blocking. ok is false
// when another open file (any process, this one included) holds it. The
// lock lives as long as the returned file stays open, and no longer than
// this process.
func tryLock(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("nshost: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("nshost: lock %s: %w", path, err)
	}
	return f, true, nil
}

// flock takes an exclusive flock on path, waiting for it, and returns the
// function that releases it.
func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nshost: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("nshost: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// runCmd runs a setup command, failing with its output.
func runCmd(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tail returns up to the last n bytes of a file.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

func netnsName(n int) string { return netnsPrefix + strconv.Itoa(n) }
func vethName(n int) string  { return vethPrefix + strconv.Itoa(n) }
func slotDir(n int) string   { return filepath.Join(BaseDir, strconv.Itoa(n)) }
func lockPath(n int) string  { return filepath.Join(BaseDir, fmt.Sprintf("slot-%d.lock", n)) }
