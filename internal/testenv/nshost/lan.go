package nshost

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// LAN is a private network between namespace hosts, like the private
// network of cloud instances in one VPC: a bridge in its own network
// namespace, which each host joins with a second interface, eth1. The
// hosts reach each other on it; this machine has no address on it, and the
// hosts still reach this machine only on their own veth (eth0). So a
// cluster that sends its nodes' own traffic to their eth0 (public)
// addresses fails, and one that uses the LAN addresses works.
//
// Layout, per LAN ("slot" L, 1..254):
//
//	/var/tmp/kafkaup-nshost/lan-L.lock  flock held while the LAN lives
//	/run/netns/kafkaup-lanL             the namespace with bridge br0
//	host N joins as eth1 10.214.L.N/24 (N: the host's own slot)
type LAN struct {
	NetNS  string // network namespace holding the bridge
	Subnet string // 10.214.L.0/24

	slot int
	lock *os.File

	mu     sync.Mutex
	joined map[int]string // host slot -> address

	closeOnce sync.Once
	closeErr  error
}

const lanPrefix = "kafkaup-lan" // + L: the LAN's network namespace

// NewLAN creates an empty LAN. Close it when done (after or before its
// hosts: a host's end goes with whichever namespace goes first).
func NewLAN(ctx context.Context) (*LAN, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("nshost: a LAN needs root")
	}
	if err := os.MkdirAll(BaseDir, 0o755); err != nil {
		return nil, fmt.Errorf("nshost: %w", err)
	}
	if err := Sweep(); err != nil {
		return nil, err
	}
	inUse, err := hostAddrs()
	if err != nil {
		return nil, err
	}
	for n := 1; n <= maxSlots; n++ {
		f, ok, err := tryLock(lanLockPath(n))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if err := cleanLAN(n); err != nil {
			f.Close()
			return nil, fmt.Errorf("nshost: clean stale LAN %d: %w", n, err)
		}
		if inUse(net.IPv4(10, 214, byte(n), 1)) {
			f.Close()
			continue
		}
		l := &LAN{NetNS: lanPrefix + strconv.Itoa(n), Subnet: fmt.Sprintf("10.214.%d.0/24", n), slot: n, lock: f, joined: map[int]string{}}
		if err := l.setup(ctx); err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return nil, fmt.Errorf("nshost: create LAN %s: %w", l.NetNS, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("nshost: all %d LAN slots busy", maxSlots)
}

func (l *LAN) setup(ctx context.Context) error {
	unlock, err := flock(filepath.Join(BaseDir, ".setup.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	for _, args := range [][]string{
		{"netns", "add", l.NetNS},
		{"-n", l.NetNS, "link", "set", "lo", "up"},
		{"-n", l.NetNS, "link", "add", "br0", "type", "bridge"},
		{"-n", l.NetNS, "link", "set", "br0", "up"},
	} {
		if err := runCmd(ctx, "ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// Join gives h an interface on the LAN (eth1) and returns its address there.
// Joining twice returns the same address.
func (l *LAN) Join(ctx context.Context, h *Host) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr, ok := l.joined[h.slot]; ok {
		return addr, nil
	}
	unlock, err := flock(filepath.Join(BaseDir, ".setup.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	addr := fmt.Sprintf("10.214.%d.%d", l.slot, h.slot)
	end := "h" + strconv.Itoa(h.slot) // the bridge's end, inside the LAN's namespace
	for _, args := range [][]string{
		{"-n", l.NetNS, "link", "add", end, "type", "veth", "peer", "name", "eth1", "netns", h.NetNS},
		{"-n", l.NetNS, "link", "set", end, "master", "br0"},
		{"-n", l.NetNS, "link", "set", end, "up"},
		{"-n", h.NetNS, "addr", "add", addr + "/24", "dev", "eth1"},
		{"-n", h.NetNS, "link", "set", "eth1", "up"},
	} {
		if err := runCmd(ctx, "ip", args...); err != nil {
			return "", fmt.Errorf("nshost: %s joins LAN %s: %w", h.NetNS, l.NetNS, err)
		}
	}
	l.joined[h.slot] = addr
	return addr, nil
}

// JoinAt gives h an interface on the LAN (eth1) with the address prefix
// given (e.g. 172.31.16.5/16: an EC2 instance's private IP, on-link to
// the whole VPC). Unlike Join it does not remember the host: a host
// started again (a new namespace, maybe in another slot) joins again.
func (l *LAN) JoinAt(ctx context.Context, h *Host, prefix string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	unlock, err := flock(filepath.Join(BaseDir, ".setup.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	end := "h" + strconv.Itoa(h.slot)
	_ = runCmd(ctx, "ip", "-n", l.NetNS, "link", "del", end) // a stale end of an earlier host in this slot
	for _, args := range [][]string{
		{"-n", l.NetNS, "link", "add", end, "type", "veth", "peer", "name", "eth1", "netns", h.NetNS},
		{"-n", l.NetNS, "link", "set", end, "master", "br0"},
		{"-n", l.NetNS, "link", "set", end, "up"},
		{"-n", h.NetNS, "addr", "add", prefix, "dev", "eth1"},
		{"-n", h.NetNS, "link", "set", "eth1", "up"},
	} {
		if err := runCmd(ctx, "ip", args...); err != nil {
			return fmt.Errorf("nshost: %s joins LAN %s at %s: %w", h.NetNS, l.NetNS, prefix, err)
		}
	}
	return nil
}

// Close deletes the LAN's namespace (and with it the bridge and every
// host's eth1) and frees its slot. Safe to call more than once.
func (l *LAN) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = cleanLAN(l.slot)
		if l.lock != nil {
			_ = l.lock.Close()
		}
	})
	return l.closeErr
}

// cleanLAN removes LAN n's namespace if it exists. Nothing runs in it, so
// deleting the namespace deletes the bridge and the veth pairs.
func cleanLAN(n int) error {
	name := lanPrefix + strconv.Itoa(n)
	if _, err := os.Lstat(filepath.Join("/run/netns", name)); err != nil {
		return nil
	}
	if err := runCmd(context.Background(), "ip", "netns", "del", name); err != nil {
		return fmt.Errorf("nshost: delete LAN %s: %w", name, err)
	}
	return nil
}

// sweepLANs cleans the LANs whose test process is gone.
func sweepLANs() error {
	locks, err := filepath.Glob(filepath.Join(BaseDir, "lan-*.lock"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range locks {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "lan-"), ".lock"))
		if err != nil || n < 1 || n > maxSlots {
			continue
		}
		f, ok, err := tryLock(p)
		if err != nil || !ok {
			continue
		}
		if err := cleanLAN(n); err != nil {
			errs = append(errs, err)
		}
		f.Close()
	}
	return errors.Join(errs...)
}

func lanLockPath(n int) string { return filepath.Join(BaseDir, fmt.Sprintf("lan-%d.lock", n)) }
