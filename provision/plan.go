package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
	"github.com/kafkaup/kafkaup/templates"
)

// Step is one idempotent change on the host: optional uploads, then a script
// run as root. Adjacent steps with the same non-empty Group run concurrently.
type Step struct {
	ID      string // packages, kafka, dirs, swap, config, format, service
	Title   string // what it does
	Reason  string // why the plan includes it
	Group   string
	Uploads []Upload
	Script  scripts.Script

	// Replan says the facts are stale once this step has run: Provision
	// observes and plans again before going on. The wait for the head
	// start has it: what the head start finished is not to be done twice.
	Replan bool

	// Resolve, when set, completes Script with a value that only the host
	// can give: Apply calls it first, when the step runs, and runs the
	// script it returns. Plan stays pure and a dry run never calls it. The
	// kafka step gets the release's sha512 this way, when it downloads and
	// no digest was given (see fetchSHA512).
	Resolve func(ctx context.Context, h Host) (scripts.Script, error)
}

// Upload is a file sent to the host before the step's script runs.
type Upload struct {
	RemotePath string
	Content    []byte // either Content or LocalPath
	LocalPath  string
	Mode       uint32
}

// JavaPackages are tried in order: Kafka 4 needs Java 17 or newer.
var JavaPackages = []string{"openjdk-17-jre-headless", "openjdk-21-jre-headless", "default-jre-headless"}

// Timeouts used by the remote scripts, in seconds.
const (
	CloudInitTimeout = 600
	StartTimeout     = 600 // a JVM under software emulation is slow; real hosts take seconds
	StopTimeout      = 300 // Kafka's worst-case controlled shutdown
	DownloadRetries  = 4
)

// minimum free space for a Kafka install (tarball and unpacked copy).
const installSpace = 600 << 20

// Desired is what the managed files should contain: rendered once, from
// the spec, and compared with the host's hashes.
type Desired struct {
	Files []ManagedFile
}

// ManagedFile is one file kafkaup owns on the host.
type ManagedFile struct {
	Path    string
	Content []byte
	Mode    string
	Owner   string
}

// SHA256 is the hex digest of the content.
func (m ManagedFile) SHA256() string {
	sum := sha256.Sum256(m.Content)
	return hex.EncodeToString(sum[:])
}

// Render renders the managed files for the spec. The systemd unit is only
// managed where systemd runs.
func Render(s Spec, systemd bool) (Desired, error) {
	if s.Security.TLS && len(s.Security.KeystorePEM) == 0 {
		return Desired{}, errors.New("TLS is on but the spec has no keystore for the broker (kafkaup makes one from its CA before provisioning)")
	}
	sp := templates.ServerProperties{
		NodeID: s.NodeID, BrokerPort: s.BrokerPort, ControllerPort: s.ControllerPort,
		AdvertisedHost: s.AdvertisedHost, DataDir: s.DataDir,
		CleanerDedupeBufferBytes: cleanerBuffer(s.HeapMB),
		Protocol:                 s.Security.Protocol(),
		InternalPort:             s.Security.InternalPort,
		KeystoreFile:             s.KeystoreFile(),
		Rack:                     s.Rack,
	}
	if s.Clustered() {
		sp.Nodes, sp.InternalHost, sp.QuorumBootstrap = s.Nodes(), s.InternalHost, s.QuorumBootstrap()
		sp.ReplicationFactor, sp.MinInSync = ReplicationFactor(s.Nodes()), MinInSyncReplicas(s.Nodes())
	}
	props, err := templates.RenderServerProperties(sp)
	if err != nil {
		return Desired{}, err
	}
	env, err := templates.RenderEnv(templates.Env{Heap: s.Heap(), LogDir: s.LogDir, JavaAgent: s.JavaAgent()})
	if err != nil {
		return Desired{}, err
	}
	d := Desired{Files: []ManagedFile{
		{Path: s.ConfigFile(), Content: props, Mode: "0640", Owner: "root:kafka"},
		{Path: s.EnvFile(), Content: env, Mode: "0640", Owner: "root:kafka"},
	}}
	if s.Security.TLS {
		// The broker's private key: readable by root and the kafka group only.
		d.Files = append(d.Files, ManagedFile{Path: s.KeystoreFile(), Content: s.Security.KeystorePEM, Mode: "0640", Owner: "root:kafka"})
	}
	if s.Metrics.Enabled {
		rules, err := templates.RenderMetricsRules()
		if err != nil {
			return Desired{}, err
		}
		d.Files = append(d.Files, ManagedFile{Path: s.MetricsRulesFile(), Content: rules, Mode: "0640", Owner: "root:kafka"})
	}
	if systemd {
		unit, err := templates.RenderUnit(templates.Unit{KafkaHome: s.KafkaHome(), Config: s.ConfigFile(), EnvFile: s.EnvFile()})
		if err != nil {
			return Desired{}, err
		}
		d.Files = append(d.Files, ManagedFile{Path: s.UnitFile(), Content: unit, Mode: "0644", Owner: "root:root"})
	}
	return d, nil
}

// cleanerBuffer sizes the log cleaner's dedupe buffer to the heap: 32 MiB
// for the default 400 MB heap, never more than Kafka's own 128 MiB default.
func cleanerBuffer(heapMB int) int64 {
	mb := int64(heapMB) / 12
	switch {
	case mb < 16:
		mb = 16
	case mb > 128:
		mb = 128
	}
	return mb << 20
}

// ManagedPaths lists every file Observe should hash.
func ManagedPaths(s Spec) []string {
	paths := []string{s.ConfigFile(), s.EnvFile(), s.UnitFile(), s.KeystoreFile(), s.MetricsRulesFile()}
	if s.Metrics.Enabled {
		paths = append(paths, s.MetricsAgentPath()) // not rendered: fetched, but hashed the same way
	}
	return paths
}

// PlanError is a problem found before any change: nothing was done.
type PlanError struct{ Reason string }

func (e *PlanError) Error() string { return e.Reason + " Nothing on the host was changed." }

// Plan decides the steps that take a host with these facts to the spec. It
// does no I/O. clusterID is used only when the data dir must be formatted.
func Plan(s Spec, f Facts, clusterID string) ([]Step, error) {
	if err := precheck(s, f); err != nil {
		return nil, err
	}
	desired, err := Render(s, f.Systemd)
	if err != nil {
		return nil, err
	}
	if f.HeadStart.State == "running" {
		return headStartWait(s, f), nil
	}
	var steps []Step

	needKafka, kafkaWhy := kafkaNeeded(s, f)
	wantJava := f.JavaMajor < 17
	needAgent, agentWhy := agentNeeded(s, f)
	wantCurl := ((needKafka && s.Source.LocalTarball == "") || (needAgent && s.Metrics.LocalAgent == "")) && !f.HasCurl
	if st, ok := packagesStep(s, f, wantJava, wantCurl); ok {
		// Alone and first: a dpkg lock held past the limit stops the run
		// before the steps that run beside the package install change anything.
		steps = append(steps, Step{ID: "wait-apt", Title: "wait until apt is free (cloud-init done, no other apt or dpkg running)",
			Reason: "packages are to be installed", Script: scripts.WaitAPT{CloudInitTimeout: CloudInitTimeout, APTLockTimeout: s.APTLockSeconds()}}, st)
	}
	if needKafka {
		st := Step{ID: "kafka", Title: fmt.Sprintf("install Kafka %s (sha512 verified)", s.KafkaVersion), Reason: kafkaWhy}
		// The uploaded tarball's digest is always known (the CLI hashes it);
		// for a download without --kafka-sha512 the host fetches the
		// release's .sha512 when the step runs.
		fetch := scripts.FetchKafka{InstallDir: s.InstallDir, DistName: s.DistName(), URLs: s.DownloadURLs(),
			ExpectedSHA512: s.Source.SHA512, DownloadRetries: DownloadRetries, StateDir: s.StateDir}
		if s.Source.LocalTarball != "" {
			fetch.LocalTarball = f.LoginHome + "/.kafkaup-staging/kafka/" + s.DistName() + ".tgz"
			fetch.URLs = nil
			st.Uploads = []Upload{{RemotePath: fetch.LocalTarball, LocalPath: s.Source.LocalTarball, Mode: 0o600}}
			st.Title = fmt.Sprintf("upload and install Kafka %s (sha512 verified)", s.KafkaVersion)
		} else {
			if f.HeadStart.Ran() {
				// What the head start left in its staging dir goes once the
				// step is done; a whole download is used first if its
				// sha512 is the release's.
				fetch.HeadStartTarball = HeadStartTarball(s)
			}
			if f.HeadStart.Tarball != "" {
				st.Title = fmt.Sprintf("install Kafka %s from the head start's download (sha512 verified first)", s.KafkaVersion)
				st.Reason += "; the head start downloaded it at boot"
			} else if why := f.HeadStart.failure("download"); why != "" {
				st.Reason += "; the head start's download " + why + ", so kafkaup downloads it"
			}
			if fetch.ExpectedSHA512 == "" {
				st.Resolve = withFetchedSHA512(fetch, s.SHA512URLs())
			}
		}
		if !wantCurl { // with curl still to install, the download (and the checksum's) waits for it
			st.Group = "download"
		}
		st.Script = fetch
		steps = append(steps, st)
	}
	if needAgent {
		steps = append(steps, agentStep(s, f, agentWhy, wantCurl))
	}
	// The user, directories and swap need neither Java nor Kafka: they run
	// while the packages install.
	steps = append(steps, hostSteps(s, f, "download")...)
	var changed []ManagedFile
	for _, m := range desired.Files {
		if f.FileSHA256[m.Path] != m.SHA256() {
			changed = append(changed, m)
		}
	}
	// The broker's old key goes when TLS is turned off.
	var remove []string
	if sum := f.FileSHA256[s.KeystoreFile()]; !s.Security.TLS && sum != "" && sum != "-" {
		remove = append(remove, s.KeystoreFile())
	}
	// And the agent's rules when metrics are turned off (the env file no
	// longer loads the agent; its jar stays, as old Kafka versions do).
	if sum := f.FileSHA256[s.MetricsRulesFile()]; !s.Metrics.Enabled && sum != "" && sum != "-" {
		remove = append(remove, s.MetricsRulesFile())
	}
	if len(changed) > 0 || len(remove) > 0 {
		staging := f.LoginHome + "/.kafkaup-staging/config"
		in := scripts.InstallFiles{Staging: staging, StateDir: s.StateDir, Remove: remove}
		title := "write " + pathList(changed)
		switch {
		case len(changed) == 0:
			title = "remove " + strings.Join(remove, ", ")
		case len(remove) > 0:
			title += "; remove " + strings.Join(remove, ", ")
		}
		st := Step{ID: "config", Title: title, Reason: "content differs"}
		for i, m := range changed {
			name := fmt.Sprintf("%d-%s", i, lastElem(m.Path))
			in.Src = append(in.Src, name)
			in.Dest = append(in.Dest, m.Path)
			in.Mode = append(in.Mode, m.Mode)
			in.Owner = append(in.Owner, m.Owner)
			st.Uploads = append(st.Uploads, Upload{RemotePath: staging + "/" + name, Content: m.Content, Mode: 0o600})
		}
		st.Script = in
		steps = append(steps, st)
	}
	if !f.Formatted {
		if s.ClusterID != "" {
			clusterID = s.ClusterID
		}
		st := Step{ID: "format", Title: "format KRaft storage in " + s.DataDir, Reason: "no meta.properties yet",
			Script: scripts.Format{KafkaHome: s.KafkaHome(), Config: s.ConfigFile(), DataDir: s.DataDir, ClusterID: clusterID,
				InitialControllers: s.InitialControllers()}}
		switch {
		case s.Clustered() && s.JoinQuorum:
			st.Script = scripts.Format{KafkaHome: s.KafkaHome(), Config: s.ConfigFile(), DataDir: s.DataDir, ClusterID: clusterID, JoinQuorum: true}
			st.Title = fmt.Sprintf("format KRaft storage in %s to join the cluster's quorum as node %d (--no-initial-controllers)", s.DataDir, s.NodeID)
		case s.Clustered():
			st.Title = fmt.Sprintf("format KRaft storage in %s as voter %d of %d (--initial-controllers)", s.DataDir, s.NodeID, s.Nodes())
		}
		steps = append(steps, st)
	}
	// New binaries or managed files restart a running broker (the rule is on serviceStep).
	if st, ok := serviceStep(s, f, needKafka || len(changed) > 0 || len(remove) > 0); ok {
		steps = append(steps, st)
	}
	return steps, nil
}

// precheck refuses hosts and specs that cannot work, before any change.
func precheck(s Spec, f Facts) error {
	if !f.HasAPT {
		return &PlanError{fmt.Sprintf("this host runs %s %s without apt; kafkaup provisions Debian and Ubuntu hosts (it installs Java with apt). Use an Ubuntu 22.04/24.04 or Debian 12 host.", f.OSID, f.OSVersion)}
	}
	if f.Formatted && f.NodeID != 0 && f.NodeID != s.NodeID {
		return &PlanError{fmt.Sprintf("%s was formatted for node.id %d, not %d; kafkaup will not reformat a used data dir.", s.DataDir, f.NodeID, s.NodeID)}
	}
	if err := sameCluster(s, f); err != nil {
		return err
	}
	if need, _ := kafkaNeeded(s, f); need && f.FreeInstallDir > 0 && f.FreeInstallDir < installSpace {
		return &PlanError{fmt.Sprintf("only %s free for %s; installing Kafka needs about %s. Free some disk space or grow the volume, then rerun.", FormatSize(f.FreeInstallDir), s.InstallDir, FormatSize(installSpace))}
	}
	if s.SwapBytes > 0 && swapNeeded(s, f) != "" {
		switch f.SwapFS {
		case "overlayfs", "tmpfs", "nfs", "nfs4", "fuseblk", "fuse", "squashfs", "zfs", "ramfs":
			return &PlanError{fmt.Sprintf("the swapfile %s would live on a %s filesystem, where Linux cannot swap (a container or a network share?). Rerun with --swap 0 to skip swap.", s.SwapFile, f.SwapFS)}
		}
		available := f.FreeSwapDir
		if f.SwapFileSize > 0 {
			available += f.SwapFileSize
		}
		if available > 0 && available < s.SwapBytes+256<<20 {
			return &PlanError{fmt.Sprintf("a %s swapfile does not fit: %s free where %s goes (256 MiB kept spare). Use a smaller --swap, or --swap 0.", FormatSize(s.SwapBytes), FormatSize(available), s.SwapFile)}
		}
	}
	return nil
}

// sameCluster refuses a data dir formatted for another cluster, or, on a
// cluster's node, as another voter than the one recorded: joining it would
// split the quorum or mix two clusters' data.
func sameCluster(s Spec, f Facts) error {
	if !f.Formatted {
		return nil
	}
	if s.ClusterID != "" && f.ClusterID != "" && f.ClusterID != s.ClusterID {
		return &PlanError{fmt.Sprintf("%s on this host was formatted for cluster %s, but this node belongs to cluster %s; kafkaup will not reformat a used data dir. If the host is meant for this cluster and its data can go, empty %s and rerun; otherwise use another host.", s.DataDir, f.ClusterID, s.ClusterID, s.DataDir)}
	}
	if me, ok := s.Voter(); ok && s.Clustered() && f.DirectoryID != "" && me.DirectoryID != "" && f.DirectoryID != me.DirectoryID {
		return &PlanError{fmt.Sprintf("%s on this host was formatted as a voter with directory id %s, but kafkaup recorded %s for node %d; the quorum would not accept it. kafkaup will not reformat a used data dir.", s.DataDir, f.DirectoryID, me.DirectoryID, s.NodeID)}
	}
	return nil
}

// headStartWait is the plan while the head start begun at boot still runs:
// wait for it (bounded, saying what it does) rather than race it for the
// apt lock and the download, and meanwhile do what needs neither Java nor
// Kafka. Its Replan has Provision plan again with what the head start
// left: the plan that follows does itself whatever it did not finish.
func headStartWait(s Spec, f Facts) []Step {
	why := "it is still installing Java and downloading Kafka"
	if t, ok := f.HeadStart.Time("started"); ok && !f.HostNow.IsZero() {
		why = fmt.Sprintf("it began %s ago and is still running", f.HostNow.Sub(t).Round(time.Second))
	}
	steps := []Step{{ID: "head-start", Group: "head-start", Replan: true, Reason: why,
		Title: "wait for the head start begun at boot (Java install, Kafka download), then plan again",
		Script: scripts.WaitHeadStart{Dir: HeadStartDir, Unit: HeadStartUnit, DistName: s.DistName(),
			Timeout: HeadStartTimeout, StallTimeout: HeadStartStall}}}
	return append(steps, hostSteps(s, f, "head-start")...)
}

// hostSteps are the kafka user, its directories and the swapfile, where
// missing: they need neither Java nor Kafka, so they run in group beside
// the package install, the download or the wait for the head start.
func hostSteps(s Spec, f Facts, group string) []Step {
	var steps []Step
	if !f.KafkaUser || !f.DirsOK {
		steps = append(steps, Step{ID: "dirs", Title: "create the kafka user and its directories", Reason: "missing", Group: group,
			Script: scripts.SetupDirs{DataDir: s.DataDir, LogDir: s.LogDir, ConfigDir: s.ConfigDir, StateDir: s.StateDir}})
	}
	if s.SwapBytes > 0 {
		if why := swapNeeded(s, f); why != "" {
			steps = append(steps, Step{ID: "swap", Title: fmt.Sprintf("swapfile %s of %s with one fstab entry", s.SwapFile, FormatSize(s.SwapBytes)),
				Reason: why, Group: group, Script: scripts.Swap{File: s.SwapFile, Bytes: s.SwapBytes}})
		}
	}
	return steps
}

// packagesStep installs Java and curl where they are wanted, and finishes
// packages dpkg left half set up; it is not needed when there is neither.
func packagesStep(s Spec, f Facts, wantJava, wantCurl bool) (Step, bool) {
	st := Step{ID: "packages", Group: "download",
		Script: scripts.InstallPackages{WantJava: wantJava, WantCurl: wantCurl, JavaPackages: JavaPackages,
			CloudInitTimeout: CloudInitTimeout, APTLockTimeout: s.APTLockSeconds()}}
	var what []string
	if wantJava {
		what = append(what, "Java 17")
	}
	if wantCurl {
		what = append(what, "curl")
	}
	switch {
	case wantJava && f.JavaMajor > 0:
		st.Reason = fmt.Sprintf("Java %d is too old for Kafka 4", f.JavaMajor)
	case wantJava:
		st.Reason = "no Java 17+ on the host"
		if why := f.HeadStart.failure("java"); why != "" {
			st.Reason += "; the head start's Java install " + why + ", so kafkaup installs it"
		}
	case wantCurl:
		st.Reason = "curl is missing"
	case f.DpkgPending:
		st.Title, st.Reason = "finish setting up half-installed packages (dpkg --configure -a)", "dpkg --audit lists packages left half set up"
		return st, true
	default:
		return Step{}, false
	}
	st.Title = "install " + strings.Join(what, " and ") + " with apt"
	return st, true
}

func kafkaNeeded(s Spec, f Facts) (bool, string) {
	switch {
	case f.KafkaCurrent == "":
		return true, "not installed"
	case f.KafkaCurrent != s.KafkaVersion:
		return true, fmt.Sprintf("%s installed, %s wanted", f.KafkaCurrent, s.KafkaVersion)
	case f.KafkaCurrentSHA512 == "":
		return true, "the installed copy has no verified checksum (interrupted or not kafkaup's)"
	case s.Source.SHA512 != "" && s.Source.SHA512 != f.KafkaCurrentSHA512:
		return true, "the installed copy's sha512 differs from the one given"
	}
	return false, ""
}

func swapNeeded(s Spec, f Facts) string {
	switch {
	case !f.SwapActive:
		return "not active"
	case f.SwapFileSize != s.SwapBytes:
		return fmt.Sprintf("is %s, %s wanted", FormatSize(f.SwapFileSize), FormatSize(s.SwapBytes))
	case f.SwapFstab != 1:
		return fmt.Sprintf("%d entries in /etc/fstab", f.SwapFstab)
	}
	return ""
}

// serviceStep decides whether the broker starts or restarts. This is the
// whole restart rule; nothing else in kafkaup restarts a broker on its own.
//
// A running broker is restarted (Action "restart") when, and only when:
//   - changed is true: this plan replaces what the broker runs from, that is
//     installs Kafka (not installed, another version, the installed copy has
//     no .kafkaup-sha512 from a verified install, or its sha512 differs from
//     --kafka-sha512), or writes or removes a managed file whose sha256 on
//     the host differs from the rendered one (server.properties, kafka.env,
//     the TLS keystore, the metrics agent's rule file, and the systemd unit
//     where systemd runs; see Render and ManagedPaths); or
//   - f.RestartPending: an earlier run changed those files or binaries and
//     was cut off before the broker ran with the change. fetch-kafka.sh and
//     install-files.sh set the marker (lib.sh's mark_restart_pending) before
//     they change anything; service.sh clears it (clear_restart_pending)
//     once the broker has logged "Kafka Server started"; observe.sh reports
//     it only when the marker is newer than the running broker process (a
//     broker started after the change already runs with it).
//
// A broker that is not running is started (Action "start"), whatever
// changed: starting reads the new files and binaries anyway. Under systemd
// a running broker whose unit is not enabled at boot gets a "start" too,
// which enables the unit and leaves the running process alone.
//
// Nothing else restarts it: installing Java or curl, the kafka user and
// directories, swap, formatting (only where meta.properties is missing),
// SCRAM users and the metrics agent's jar (kafka.env loads it, and names
// its version) leave a running broker alone, and a converged host plans no
// service step at all.
func serviceStep(s Spec, f Facts, changed bool) (Step, bool) {
	in := scripts.Service{Service: s.Service, KafkaHome: s.KafkaHome(), Config: s.ConfigFile(), EnvFile: s.EnvFile(),
		LogDir: s.LogDir, StateDir: s.StateDir, BrokerPort: s.BrokerPort, StartTimeout: StartTimeout, StopTimeout: StopTimeout}
	how := "as a systemd service"
	if !f.Systemd {
		how = "with kafka-server-start.sh -daemon (no systemd)"
	}
	switch {
	case f.ServiceActive && (changed || f.RestartPending):
		why := "configuration or binaries changed"
		if !changed {
			why = "a change from an earlier run is not live yet"
		}
		in.Action = "restart"
		return Step{ID: "service", Title: "restart the broker " + how, Reason: why, Script: in}, true
	case !f.ServiceActive:
		in.Action = "start"
		return Step{ID: "service", Title: "start the broker " + how, Reason: "not running", Script: in}, true
	case f.Systemd && !f.ServiceEnabled:
		in.Action = "start"
		return Step{ID: "service", Title: "enable the broker's systemd service", Reason: "not enabled at boot", Script: in}, true
	}
	return Step{}, false
}

// FormatSize prints bytes in binary units (2G, 512M).
func FormatSize(b int64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dG", b>>30)
	case b >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%dM", b>>20)
	}
	return fmt.Sprintf("%dK", b>>10)
}

func pathList(files []ManagedFile) string {
	var names []string
	for _, m := range files {
		names = append(names, m.Path)
	}
	return strings.Join(names, ", ")
}

func lastElem(p string) string {
	return p[strings.LastIndex(p, "/")+1:]
}
