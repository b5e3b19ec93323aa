package provision

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Facts is what Observe learned about the host in one remote call.
type Facts struct {
	LoginUser, LoginHome string

	OSID, OSVersion, OSLike string
	Arch                    string
	HasAPT                  bool
	DpkgPending             bool // dpkg --audit lists half set up packages
	Systemd                 bool // systemd is PID 1
	CloudInit               bool
	HasCurl                 bool
	MemTotal                int64
	JavaMajor               int // 0: no java on PATH

	KafkaCurrent       string // version InstallDir/current points at ("" if none)
	KafkaCurrentSHA512 string // digest recorded when it was installed
	KafkaUser          bool
	DirsOK             bool

	SwapActive     bool
	SwapFileSize   int64
	SwapFstab      int // entries for the swapfile in /etc/fstab
	SwapFS         string
	FreeSwapDir    int64
	FreeInstallDir int64

	Formatted   bool // meta.properties exists in the data dir
	ClusterID   string
	NodeID      int
	DirectoryID string // the data dir's directory.id (a voter's, on a cluster's node)

	FileSHA256 map[string]string // managed file -> sha256 ("-" when missing)

	ServiceEnabled bool
	ServiceActive  bool
	BrokerPID      int
	RestartPending bool

	// HeadStart is what the head start begun at boot did (create's
	// user-data), if there was one.
	HeadStart HeadStart
	// HostNow is the host's clock as the report was made; ObservedAt is
	// this machine's at the middle of the call (Observe sets it). Their
	// difference maps the host's timestamps (the head start's) onto this
	// machine's clock.
	HostNow    time.Time
	ObservedAt time.Time
}

// HostClockOffset is how far the host's clock is ahead of this machine's
// (zero when unknown).
func (f Facts) HostClockOffset() time.Duration {
	if f.HostNow.IsZero() || f.ObservedAt.IsZero() {
		return 0
	}
	return f.HostNow.Sub(f.ObservedAt)
}

// ParseFacts reads observe.sh's key=value output.
func ParseFacts(out []byte) (Facts, error) {
	f := Facts{FileSHA256: map[string]string{}}
	kv, err := parseKV(out)
	if err != nil {
		return f, err
	}
	f.HeadStart = HeadStart{State: kv["head_start"], Tarball: kv["head_start_tarball"], Record: map[string]string{}}
	for k, v := range kv {
		if path, isFile := strings.CutPrefix(k, "file:"); isFile {
			f.FileSHA256[path] = v
		}
		if event, isHS := strings.CutPrefix(k, "hs."); isHS {
			f.HeadStart.Record[event] = v
		}
	}
	if f.HeadStart.State == "" {
		f.HeadStart.State = "none"
	}
	f.HostNow, _ = epochTime(kv["now"])
	for _, required := range []string{"os_id", "apt", "systemd", "java_major", "meta", "service_active"} {
		if _, ok := kv[required]; !ok {
			return f, fmt.Errorf("observe: the host's report lacks %q (output: %q)", required, truncate(string(out), 400))
		}
	}
	var errs []string
	num, flag := kv.num(&errs), kv.flag

	f.LoginUser, f.LoginHome = kv["login_user"], kv["login_home"]
	f.OSID, f.OSVersion, f.OSLike, f.Arch = kv["os_id"], kv["os_version"], kv["os_like"], kv["arch"]
	f.HasAPT, f.Systemd, f.CloudInit, f.HasCurl = flag("apt"), flag("systemd"), flag("cloud_init"), flag("curl")
	f.DpkgPending = flag("dpkg_pending")
	f.MemTotal = num("mem_total")
	f.JavaMajor = int(num("java_major"))
	f.KafkaCurrent, f.KafkaCurrentSHA512 = kv["kafka_current"], kv["kafka_current_sha512"]
	f.KafkaUser, f.DirsOK = flag("kafka_user"), flag("dirs_ok")
	f.SwapActive, f.SwapFileSize, f.SwapFstab = flag("swap_active"), num("swap_file_size"), int(num("swap_fstab"))
	f.SwapFS, f.FreeSwapDir, f.FreeInstallDir = kv["swap_fs"], num("free_swap_dir"), num("free_install_dir")
	f.Formatted, f.ClusterID, f.NodeID = flag("meta"), kv["cluster_id"], int(num("node_id"))
	f.DirectoryID = kv["directory_id"]
	f.ServiceEnabled, f.ServiceActive = flag("service_enabled"), flag("service_active")
	f.BrokerPID, f.RestartPending = int(num("broker_pid")), flag("restart_pending")
	if len(errs) > 0 {
		return f, fmt.Errorf("observe: unreadable values %s", strings.Join(errs, ", "))
	}
	return f, nil
}

// kvReport is a script's key=value output.
type kvReport map[string]string

// parseKV reads key=value lines; other lines are ignored.
func parseKV(out []byte) (kvReport, error) {
	kv := kvReport{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20) // status's hsperfdata line is about 44 KiB
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv, sc.Err()
}

// num returns a reader of integer values that records unreadable ones.
func (kv kvReport) num(errs *[]string) func(string) int64 {
	return func(k string) int64 {
		v := kv[k]
		if v == "" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			*errs = append(*errs, fmt.Sprintf("%s=%q", k, v))
		}
		return n
	}
}

func (kv kvReport) flag(k string) bool { return kv[k] == "1" }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
