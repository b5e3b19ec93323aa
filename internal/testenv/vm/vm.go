package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
)

// Guest facts fixed by the image and qemu's user-mode network.
const (
	guestUser       = "debian" // passwordless sudo
	guestNoSudoUser = "nosudo" // same key, no sudo
	hostGateway     = "10.0.2.2"
	kernelCmdline   = "root=/dev/vda rw console=ttyS0"

	bootTimeout   = 5 * time.Minute // boot to SSH, unless ctx ends sooner
	rebootTimeout = 5 * time.Minute
)

// Options for Boot.
type Options struct {
	Name          string // for logs and the qemu process name
	Addr          string // host loopback address to forward from, e.g. "127.0.0.2"; empty: pick a free one in AddrNet
	AddrNet       string // the /24 to pick Addr and Aliases from: "127.0.0" (default, N>=2) or e.g. "127.0.1"
	MemoryMB      int    // default 2048
	ExtraForwards []int  // extra guest TCP ports forwarded at Addr with the same port number
	Aliases       int    // how many more free 127.0.0.N to forward the same ports from (VM.Aliases)

	// Overlay is the qcow2 overlay (the guest's disk) to boot from, owned
	// by the caller: created over the image when missing, kept by Close,
	// so a VM shut down and booted again with it keeps its disk (an EC2
	// stop and start). Empty: a throwaway overlay that Close removes.
	Overlay string
	// DiskGB is the guest disk's size when the overlay is created (at
	// least the image's 8 GB; cloud-init's resizefs grows the root to it).
	DiskGB int
	// Seed is a directory given to the guest as a read-only FAT disk
	// labelled "cidata": cloud-init's NoCloud seed (meta-data, user-data,
	// vendor-data).
	Seed string
	// NoWait returns as soon as qemu runs (its port forwards bound)
	// instead of waiting for an SSH login: a cloud image has no login
	// until cloud-init made one from the instance's key.
	NoWait bool

	// Logf receives progress and timings (boot, reboot). log.Printf when nil;
	// tests usually pass t.Logf.
	Logf func(format string, args ...any)
}

// VM is a running guest. SSH is at Addr:22 and Kafka's port at Addr:9092,
// both forwarded by qemu to the same ports in the guest.
type VM struct {
	Name        string
	Addr        string   // 127.0.0.N
	Aliases     []string // more loopback addresses forwarding the same ports (Options.Aliases)
	User        string   // "debian": passwordless sudo
	NoSudoUser  string   // "nosudo": logs in with the same key, no sudo at all
	KeyPath     string
	HostGateway string // "10.0.2.2": how the guest reaches the host's 127.0.0.1

	BootTime       time.Duration // qemu start to first SSH login
	LastRebootTime time.Duration // reboot command to SSH back, for the last Reboot

	logf      func(format string, args ...any)
	dir       string // per-VM scratch: overlay (unless Options.Overlay), serial log, qemu log, monitor socket
	cmd       *exec.Cmd
	exited    chan struct{} // closed when qemu has exited
	waitErr   error         // qemu's exit status, valid after exited is closed
	addrLocks []*fileLock   // held while the VM runs, one per address

	closeOnce sync.Once
	closeErr  error
	serial    string // the serial log, kept once Close removed dir
	closed    bool
	mu        sync.Mutex
}

// Boot starts a VM from a qcow2 overlay over the base image (the base stays
// clean) and returns once a real SSH login as User works: qemu accepts TCP
// on forwarded ports long before sshd is up, so an open port proves nothing.
func Boot(ctx context.Context, img *Image, opts Options) (*VM, error) {
	if opts.Name == "" {
		opts.Name = "vm"
	}
	if opts.MemoryMB == 0 {
		opts.MemoryMB = 2048
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	if !opts.NoWait && img.KeyPath == "" {
		return nil, fmt.Errorf("boot vm %s: the %s image has no baked-in login to wait for: boot it with NoWait and a Seed", opts.Name, img.Flavor)
	}
	ports := append([]int{22, 9092}, opts.ExtraForwards...)

	// Another process may grab a probed-free address before qemu binds it:
	// when qemu says so and the address was ours to choose, take another.
	tried := map[string]bool{}
	for attempt := 1; ; attempt++ {
		var addrs []string
		var locks []*fileLock
		release := func() {
			for _, l := range locks {
				l.Unlock()
			}
		}
		for i := 0; i <= opts.Aliases; i++ {
			fixed := ""
			if i == 0 {
				fixed = opts.Addr
			}
			addr, lock, err := reserveAddr(fixed, opts.AddrNet, ports, tried)
			if err != nil {
				release()
				return nil, fmt.Errorf("boot vm %s: %w", opts.Name, err)
			}
			tried[addr] = true
			addrs, locks = append(addrs, addr), append(locks, lock)
		}
		v, err := start(ctx, img, opts, addrs, locks, ports)
		if err == nil {
			return v, nil
		}
		if errors.Is(err, errForwardBusy) && attempt < 5 && (opts.Addr == "" || opts.Aliases > 0) {
			opts.Logf("vm %s: an address of %v was taken meanwhile, trying others", opts.Name, addrs)
			continue
		}
		return nil, fmt.Errorf("boot vm %s: %w", opts.Name, err)
	}
}

// errForwardBusy: qemu could not bind a forwarded host port.
var errForwardBusy = errors.New("qemu could not bind a forwarded port")

// start launches qemu forwarding from addrs (the first is VM.Addr, the
// rest aliases) and waits for SSH. On failure it cleans up everything it
// made and releases the address locks.
func start(ctx context.Context, img *Image, opts Options, addrs []string, locks []*fileLock, ports []int) (*VM, error) {
	release := func() {
		for _, l := range locks {
			l.Unlock()
		}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		release()
		return nil, fmt.Errorf("%w (apt-get install qemu-system-x86)", err)
	}
	dir, err := os.MkdirTemp("", "kafkaup-vm-"+safeName(opts.Name)+"-")
	if err != nil {
		release()
		return nil, err
	}
	v := &VM{
		Name:        opts.Name,
		Addr:        addrs[0],
		Aliases:     addrs[1:],
		User:        guestUser,
		NoSudoUser:  guestNoSudoUser,
		KeyPath:     img.KeyPath,
		HostGateway: hostGateway,
		logf:        opts.Logf,
		dir:         dir,
		addrLocks:   locks,
		exited:      make(chan struct{}),
	}
	fail := func(err error) (*VM, error) {
		if cerr := v.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}

	overlay := opts.Overlay
	if overlay == "" {
		overlay = filepath.Join(dir, "overlay.qcow2")
	}
	if err := createOverlay(ctx, img, overlay, opts.DiskGB); err != nil {
		return fail(err)
	}

	var fwd strings.Builder
	for _, a := range addrs {
		for _, p := range ports {
			fmt.Fprintf(&fwd, ",hostfwd=tcp:%s:%d-:%d", a, p, p)
		}
	}
	args := []string{
		"-name", "kafkaup-" + safeName(opts.Name),
		"-nodefaults", "-no-user-config",
		"-accel", "tcg,thread=multi,tb-size=512", // KVM here is a PVM backend a stock kernel can't use
		"-cpu", "max", "-smp", "2", "-m", strconv.Itoa(opts.MemoryMB),
		"-display", "none",
		"-chardev", "file,id=console,path=" + qemuEscape(v.serialPath()),
		"-serial", "chardev:console",
		"-kernel", img.Kernel, "-initrd", img.Initrd, "-append", kernelCmdline,
		// cache=unsafe: the overlay is thrown away, host crashes don't matter.
		"-drive", "file=" + qemuEscape(overlay) + ",if=virtio,format=qcow2,cache=unsafe,discard=unmap",
		"-netdev", "user,id=net0" + fwd.String(),
		"-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci", // entropy for sshd and key generation at boot
		"-qmp", "unix:" + qemuEscape(v.qmpPath()) + ",server=on,wait=off",
	}
	if opts.Seed != "" {
		// qemu's vvfat driver presents the directory as a FAT disk; cloud-init
		// finds it by its label.
		args = append(args, "-drive", "driver=vvfat,dir="+qemuEscape(opts.Seed)+",label=cidata,if=virtio,readonly=on")
	}
	qlog, err := os.Create(v.qemuLogPath())
	if err != nil {
		return fail(err)
	}
	defer qlog.Close() // qemu holds its own descriptor
	v.cmd = exec.Command(qemu, args...)
	v.cmd.Stdout, v.cmd.Stderr = qlog, qlog
	// qemu dies with the test process, even on a crash or SIGKILL.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := v.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start qemu: %w", err))
	}
	go func() {
		v.waitErr = v.cmd.Wait()
		close(v.exited)
	}()
	opts.Logf("vm %s: qemu pid %d started, forwarding %v ports %v, dir %s", v.Name, v.cmd.Process.Pid, addrs, ports, dir)

	if opts.NoWait {
		// qemu answers on its monitor only once the machine, its disks
		// and its port forwards are set up.
		if err := v.waitMonitor(ctx); err != nil {
			if strings.Contains(v.qemuLog(), "host forwarding rule") {
				err = fmt.Errorf("%w: %s", errForwardBusy, strings.TrimSpace(v.qemuLog()))
			}
			return fail(err)
		}
		v.BootTime = time.Since(begin)
		return v, nil
	}
	if err := v.waitSSH(ctx, bootTimeout, nil); err != nil {
		if strings.Contains(v.qemuLog(), "host forwarding rule") {
			err = fmt.Errorf("%w: %s", errForwardBusy, strings.TrimSpace(v.qemuLog()))
		}
		return fail(err)
	}
	v.BootTime = time.Since(begin)
	opts.Logf("vm %s: boot to SSH login at %s took %s", v.Name, v.Addr, v.BootTime.Round(100*time.Millisecond))
	return v, nil
}

// waitSSH waits until a login as User works and, when accept is non-nil,
// until accept approves the guest's boot id. It fails early if qemu exits.
func (v *VM) waitSSH(ctx context.Context, timeout time.Duration, accept func(bootID string) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		out, err := v.tryLogin(ctx)
		if err == nil && (accept == nil || accept(strings.TrimSpace(out))) {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-v.exited:
			return fmt.Errorf("qemu exited (%v) before SSH was up; qemu log: %s; console ends:\n%s",
				v.waitErr, strings.TrimSpace(v.qemuLog()), tail(v.serialPath(), 20))
		case <-ctx.Done():
			return fmt.Errorf("wait for ssh login %s@%s: %w (last error: %v); console ends:\n%s",
				v.User, v.Addr, ctx.Err(), last, tail(v.serialPath(), 20))
		case <-time.After(time.Second):
		}
	}
}

// tryLogin makes one login attempt and returns the guest's boot id.
//
// qemu's user network accepts a forwarded TCP connection at once and then
// relays to the guest; while the guest is not answering (early boot, going
// down), that connection stays silent, and ssh.Dial has no deadline for the
// handshake. So first wait, with a deadline, for sshd's banner on a probe
// connection; only then log in for real.
func (v *VM) tryLogin(ctx context.Context) (string, error) {
	addr := net.JoinHostPort(v.Addr, "22")
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || !strings.HasPrefix(banner, "SSH-") {
		return "", fmt.Errorf("no ssh banner on %s yet: %v", addr, err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return testssh.Run(tctx, v.Target(), "cat /proc/sys/kernel/random/boot_id")
}

// Target is how tests log in as User (passwordless sudo).
func (v *VM) Target() testssh.Target {
	return testssh.Target{Addr: v.Addr, Port: 22, User: v.User, KeyPath: v.KeyPath}
}

// NoSudoTarget is how tests log in as NoSudoUser.
func (v *VM) NoSudoTarget() testssh.Target {
	return testssh.Target{Addr: v.Addr, Port: 22, User: v.NoSudoUser, KeyPath: v.KeyPath}
}

// Run runs cmd as User and returns its stdout (see testssh.Run).
func (v *VM) Run(ctx context.Context, cmd string) (string, error) {
	return testssh.Run(ctx, v.Target(), cmd)
}

// Reboot reboots the guest from inside (systemctl reboot; qemu resets and
// boots the same kernel again) and waits until SSH went away and came back,
// which it proves by the guest's boot id changing.
func (v *VM) Reboot(ctx context.Context) error {
	before, err := v.Run(ctx, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		return fmt.Errorf("reboot vm %s: read boot id: %w", v.Name, err)
	}
	before = strings.TrimSpace(before)
	begin := time.Now()
	// --no-block: the command returns before sshd goes down, so its exit
	// status is usually real. On a loaded machine the guest can still go
	// down before sshd sends it; a connection lost that way is no failure
	// (the boot id below proves the reboot), an exit status other than 0 is.
	if _, err := v.Run(ctx, "sudo -n systemctl --no-block reboot"); err != nil {
		var missing *ssh.ExitMissingError
		if !errors.As(err, &missing) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reboot vm %s: %w", v.Name, err)
		}
		v.logf("vm %s: the connection went down with the guest before the reboot command's exit status (%v)", v.Name, err)
	}
	if err := v.waitSSH(ctx, rebootTimeout, func(id string) bool { return id != before }); err != nil {
		return fmt.Errorf("reboot vm %s: %w", v.Name, err)
	}
	v.LastRebootTime = time.Since(begin)
	v.logf("vm %s: reboot to SSH login took %s", v.Name, v.LastRebootTime.Round(100*time.Millisecond))
	return nil
}

// SerialLog returns everything the guest wrote to its serial console
// (kernel, systemd, the host key block). Lines end in "\r\n". It still
// works after Close.
func (v *VM) SerialLog() (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return v.serial, nil
	}
	data, err := os.ReadFile(v.serialPath())
	if err != nil {
		return "", fmt.Errorf("serial log of vm %s: %w", v.Name, err)
	}
	return string(data), nil
}

// QemuMemory reports qemu's resident set size now and at its peak, in bytes.
func (v *VM) QemuMemory() (rss, peak int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", v.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("qemu memory of vm %s: %w", v.Name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			peak = kb * 1024
		}
	}
	return rss, peak, sc.Err()
}

// Close powers the VM off (kills qemu: the overlay is disposable), removes
// the overlay and scratch files and frees the address. Safe to call twice.
func (v *VM) Close() error {
	v.closeOnce.Do(func() {
		var errs []error
		if v.cmd != nil && v.cmd.Process != nil {
			_ = v.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-v.exited:
			case <-time.After(10 * time.Second):
				_ = v.cmd.Process.Kill()
				<-v.exited
			}
		}
		v.mu.Lock()
		if data, err := os.ReadFile(v.serialPath()); err == nil {
			v.serial = string(data)
		}
		v.closed = true
		v.mu.Unlock()
		if err := os.RemoveAll(v.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", v.dir, err))
		}
		for _, l := range v.addrLocks {
			l.Unlock()
		}
		if len(errs) > 0 {
			v.closeErr = fmt.Errorf("close vm %s: %w", v.Name, errors.Join(errs...))
		}
	})
	return v.closeErr
}

// HostKeys returns the SSH host public keys ("type base64 comment") from
// the last cloud-init style block in a console log, or nil if none.
func HostKeys(console string) []string {
	const begin, end = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
	i := strings.LastIndex(console, begin)
	if i < 0 {
		return nil
	}
	rest := console[i+len(begin):]
	j := strings.Index(rest, end)
	if j < 0 {
		return nil
	}
	var keys []string
	for _, line := range strings.Split(rest[:j], "\n") {
		if line = strings.TrimSpace(line); line != "" {
			keys = append(keys, line)
		}
	}
	return keys
}

// createOverlay makes overlay a qcow2 over the image's disk of diskGB
// (at least the image's size), unless it exists: then it is the disk of a
// VM that ran before and is booted as it is.
func createOverlay(ctx context.Context, img *Image, overlay string, diskGB int) error {
	if _, err := os.Stat(overlay); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	args := []string{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.Disk, overlay}
	if st, err := os.Stat(img.Disk); err == nil && int64(diskGB)<<30 > st.Size() {
		args = append(args, strconv.Itoa(diskGB)+"G")
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("create overlay: %w: %s", err, out)
	}
	return nil
}

// waitMonitor waits until qemu answers query-status on its monitor.
func (v *VM) waitMonitor(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	q, err := dialQMP(ctx, v.qmpPath(), v.exited)
	if err != nil {
		return fmt.Errorf("%w; qemu log: %s", err, strings.TrimSpace(v.qemuLog()))
	}
	defer q.Close()
	if _, err := q.execute(ctx, "query-status"); err != nil {
		return err
	}
	return nil
}

// Shutdown presses the guest's ACPI power button (as EC2's stop does) and
// waits up to timeout for it to power off, then kills qemu if it has not.
// Either way the VM is closed afterwards; clean says whether the guest
// shut down by itself. With Options.Overlay the disk stays for a new Boot.
func (v *VM) Shutdown(ctx context.Context, timeout time.Duration) (clean bool, err error) {
	begin := time.Now()
	select {
	case <-v.exited:
		return false, v.Close()
	default:
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	q, err := dialQMP(qctx, v.qmpPath(), v.exited)
	if err == nil {
		_, err = q.execute(qctx, "system_powerdown")
		q.Close()
	}
	cancel()
	if err != nil {
		v.logf("vm %s: ACPI power button failed (%v): powering off", v.Name, err)
		return false, v.Close()
	}
	select {
	case <-v.exited:
		clean = true
		v.logf("vm %s: shut down after the power button in %s", v.Name, time.Since(begin).Round(100*time.Millisecond))
	case <-time.After(timeout):
		v.logf("vm %s: still up %s after the power button: powering off", v.Name, timeout)
	case <-ctx.Done():
	}
	return clean, v.Close()
}

// Exited is closed once qemu has exited (the guest powered off, or Close).
func (v *VM) Exited() <-chan struct{} { return v.exited }

func (v *VM) serialPath() string  { return filepath.Join(v.dir, "console.log") }
func (v *VM) qmpPath() string     { return filepath.Join(v.dir, "qmp.sock") }
func (v *VM) qemuLogPath() string { return filepath.Join(v.dir, "qemu.log") }

func (v *VM) qemuLog() string {
	data, _ := os.ReadFile(v.qemuLogPath())
	return string(data)
}

// reserveAddr picks the loopback address to forward from and holds a lock
// file for it, so concurrent test processes never pick the same one. A
// fixed address must be free; otherwise the first free NET.N (N>=2; NET
// "127.0.0" when empty) not in skip is taken.
func reserveAddr(fixed, network string, ports []int, skip map[string]bool) (string, *fileLock, error) {
	if network == "" {
		network = "127.0.0"
	}
	try := func(addr string) (*fileLock, error) {
		lock, err := tryLockFile(filepath.Join(vmCacheDir(), "addr", addr+".lock"))
		if err != nil || lock == nil {
			return nil, err
		}
		if err := portsFree(addr, ports); err != nil {
			lock.Unlock()
			return nil, err
		}
		return lock, nil
	}
	if fixed != "" {
		if ip := net.ParseIP(fixed); ip == nil || !ip.IsLoopback() {
			return "", nil, fmt.Errorf("address %q is not a loopback address", fixed)
		}
		lock, err := try(fixed)
		if err != nil {
			return "", nil, err
		}
		if lock == nil {
			return "", nil, fmt.Errorf("address %s is used by another test VM", fixed)
		}
		return fixed, lock, nil
	}
	var last error
	for n := 2; n < 255; n++ {
		addr := fmt.Sprintf("%s.%d", network, n)
		if skip[addr] {
			continue
		}
		lock, err := try(addr)
		if errors.Is(err, syscall.EACCES) {
			return "", nil, fmt.Errorf("%w (forwarding port 22 needs root or CAP_NET_BIND_SERVICE)", err)
		}
		if err != nil {
			last = err
			continue
		}
		if lock != nil {
			return addr, lock, nil
		}
	}
	return "", nil, fmt.Errorf("no free address in %s.2-254 for ports %v (last: %v)", network, ports, last)
}

// portsFree checks that every port can be bound on addr. (A host sshd on
// 0.0.0.0:22 makes every 127.0.0.N:22 busy.)
func portsFree(addr string, ports []int) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("port %s:%d: %w", addr, p, err)
		}
		l.Close()
	}
	return nil
}

// qemuEscape doubles commas, qemu's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// safeName keeps letters, digits, '-' and '_' for file and process names.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ReserveLoopback picks a free 127.0.0.N (N>=2) not in avoid whose ports
// can all be bound, and holds it, against VMs and other callers in every
// test process on this machine, until release is called (or the process
// ends). The local cloud takes its public addresses here.
func ReserveLoopback(ports []int, avoid map[string]bool) (addr string, release func(), err error) {
	addr, lock, err := reserveAddr("", "", ports, avoid)
	if err != nil {
		return "", nil, err
	}
	return addr, lock.Unlock, nil
}

// ReserveLoopbackAt holds addr like ReserveLoopback, failing when another
// holds it or one of the ports is taken.
func ReserveLoopbackAt(addr string, ports []int) (release func(), err error) {
	_, lock, err := reserveAddr(addr, "", ports, nil)
	if err != nil {
		return nil, err
	}
	return lock.Unlock, nil
}
