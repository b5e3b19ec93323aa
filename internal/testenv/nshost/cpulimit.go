package nshost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoCPUController means this machine has no writable cpu cgroup
// controller (neither cgroup v1's cpu hierarchy nor cgroup v2 with cpu).
var ErrNoCPUController = errors.New("nshost: no writable cpu cgroup controller")

const cgroupRoot = "/sys/fs/cgroup"

// cpuPeriod is the CFS period the quota is a share of.
const cpuPeriod = 100 * time.Millisecond

// LimitCPU caps every process of the host, those running now and all
// they start later, at cores CPUs (0.5: half a core), as an instance has
// vCPUs of its own: with several hosts on this machine, none waits for
// another's CPU beyond its share. Close removes the limit. The first
// error is ErrNoCPUController where the machine has none to use.
func (h *Host) LimitCPU(cores float64) error {
	if cores <= 0 {
		return fmt.Errorf("nshost: a CPU limit of %v cores: want more than 0", cores)
	}
	dir, quotaFile, quota, err := h.cpuCgroup(cores)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("nshost: create cgroup %s: %w", dir, err)
	}
	h.cgroupDir = dir
	if err := os.WriteFile(filepath.Join(dir, quotaFile), []byte(quota), 0o644); err != nil {
		return fmt.Errorf("nshost: set %s in %s: %w", quotaFile, dir, err)
	}
	var ns syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", h.NetNS), &ns); err != nil {
		return fmt.Errorf("nshost: stat the network namespace: %w", err)
	}
	// Every process of the host lives in its network namespace; processes
	// forked later inherit the cgroup of their parent (sshd, PID 1).
	pids := netnsPIDs(ns)
	if h.cmd != nil && h.cmd.Process != nil {
		pids = append(pids, h.cmd.Process.Pid) // unshare, in this machine's namespace
	}
	for _, pid := range pids {
		err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("nshost: move pid %d into %s: %w", pid, dir, err)
		}
	}
	return nil
}

// cpuCgroup is where the host's CPU limit goes on this machine: the
// cgroup directory, the file that holds the quota and what to write in it.
func (h *Host) cpuCgroup(cores float64) (dir, file, value string, err error) {
	period := cpuPeriod.Microseconds()
	quota := int64(cores * float64(period))
	name := h.NetNS // kafkaup-nsN
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cpu", "cpu.cfs_quota_us")); err == nil {
		return filepath.Join(cgroupRoot, "cpu", name), "cpu.cfs_quota_us", strconv.FormatInt(quota, 10), nil
	}
	controllers, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
	if err != nil || !strings.Contains(" "+string(controllers)+" ", " cpu ") {
		return "", "", "", ErrNoCPUController
	}
	if err := os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
		return "", "", "", fmt.Errorf("%w: enable cpu for child cgroups: %v", ErrNoCPUController, err)
	}
	return filepath.Join(cgroupRoot, name), "cpu.max", fmt.Sprintf("%d %d", quota, period), nil
}

// removeCgroup removes the host's CPU cgroup once its processes are gone
// (a cgroup with a member cannot be removed: retried for a moment).
func (h *Host) removeCgroup() error {
	if h.cgroupDir == "" {
		return nil
	}
	var err error
	for range 50 {
		if err = os.Remove(h.cgroupDir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", h.cgroupDir, err)
}
