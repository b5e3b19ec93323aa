// Package provision is kafkaup's engine: it makes one host look like a Spec.
// The loop is visible in the names: Observe gathers Facts in one remote
// call, Plan (pure) decides the Steps, Apply runs them over one SSH
// connection, and Verify talks to the broker the way a client will.
package provision

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision/security"
)

// Spec is everything the user wants on the host. Flags, files and defaults
// all end as a Spec; nothing downstream reads flags.
type Spec struct {
	// AdvertisedHost is the DNS name or IP that clients are told to use.
	AdvertisedHost string

	KafkaVersion string // e.g. 4.0.0
	ScalaVersion string // 2.13
	Source       Source

	HeapMB    int   // the broker's -Xmx and -Xms
	SwapBytes int64 // 0: leave swap alone
	SwapFile  string

	DataDir    string
	LogDir     string
	InstallDir string // versions live in InstallDir/kafka_<scala>-<version>, InstallDir/current points at one
	ConfigDir  string
	StateDir   string // kafkaup's own markers on the host
	Service    string // systemd unit name

	// APTLockTimeout is how long to wait for another apt or dpkg run
	// (apt-daily, unattended-upgrades on a fresh host) to let go of the apt
	// and dpkg locks, in all.
	APTLockTimeout time.Duration

	NodeID         int
	BrokerPort     int
	ControllerPort int

	Security Security
	Metrics  Metrics

	// Voters is every node of a cluster of several nodes, each a broker
	// and a controller (combined mode) in a dynamic KRaft quorum: they
	// make controller.quorum.bootstrap.servers and the --initial-controllers
	// the storage is formatted with. A single broker has none and keeps
	// its static one-voter quorum on loopback.
	Voters []Voter
	// InternalHost is the address the other nodes reach this one at: its
	// controller and INTERNAL (inter-broker) listeners bind and are
	// advertised there, never on a public address. Clusters only.
	InternalHost string
	// ClusterID is the KRaft cluster id the data dir is formatted with;
	// a data dir formatted for another cluster is refused. Empty: a new id
	// for a fresh data dir, and any formatted one is accepted.
	ClusterID string
	// Rack is broker.rack (an availability zone); empty: none.
	Rack string
	// JoinQuorum: this node's new host joins an existing cluster's
	// quorum (kafkaup node replace). Its storage is formatted with
	// --no-initial-controllers, Kafka picks its directory id (empty in
	// Voters until then), and it runs as an observer until it is added as
	// a voter.
	JoinQuorum bool
}

// Voter is one controller of a cluster's dynamic quorum: its node id, its
// internal address, and the directory id of its metadata log, which
// kafkaup chooses (and records) before the storage is formatted.
type Voter struct {
	NodeID      int
	Host        string
	DirectoryID string
}

// Clustered says whether this is a node of a cluster of several nodes
// (dynamic quorum, INTERNAL listener, replication factor 3) rather than a
// single broker.
func (s Spec) Clustered() bool { return len(s.Voters) > 1 }

// Nodes is the number of nodes in the cluster (1 for a single broker).
func (s Spec) Nodes() int {
	if s.Clustered() {
		return len(s.Voters)
	}
	return 1
}

// ReplicationFactor is the replication factor of topics (and of Kafka's
// internal topics) on a cluster of n nodes: 3, or every node when fewer.
func ReplicationFactor(n int) int { return min(3, max(n, 1)) }

// MinInSyncReplicas is min.insync.replicas on a cluster of n nodes: 2 from
// three nodes on (an acks=all write survives one node down), else 1.
func MinInSyncReplicas(n int) int {
	if n >= 3 {
		return 2
	}
	return 1
}

// ControllerAddr is host:port of a voter's controller listener.
func (s Spec) ControllerAddr(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(s.ControllerPort))
}

// QuorumBootstrap is controller.quorum.bootstrap.servers: every voter's
// controller listener on its internal address.
func (s Spec) QuorumBootstrap() string {
	addrs := make([]string, 0, len(s.Voters))
	for _, v := range s.Voters {
		addrs = append(addrs, s.ControllerAddr(v.Host))
	}
	return strings.Join(addrs, ",")
}

// InitialControllers is kafka-storage.sh format's --initial-controllers
// value, the same on every node: ID@HOST:PORT:DIRECTORYID for each voter.
// Empty for a single broker (its static quorum needs none).
func (s Spec) InitialControllers() string {
	if !s.Clustered() {
		return ""
	}
	parts := make([]string, 0, len(s.Voters))
	for _, v := range s.Voters {
		parts = append(parts, fmt.Sprintf("%d@%s:%s", v.NodeID, s.ControllerAddr(v.Host), v.DirectoryID))
	}
	return strings.Join(parts, ",")
}

// Voter returns this node's entry in Voters.
func (s Spec) Voter() (Voter, bool) {
	for _, v := range s.Voters {
		if v.NodeID == s.NodeID {
			return v, true
		}
	}
	return Voter{}, false
}

// Security is how clients reach the broker: the Mode (the zero value is
// PLAINTEXT) and what the broker needs for it.
type Security struct {
	// Mode says whether clients use TLS (KeystorePEM then holds the
	// broker's key and certificate) and a SCRAM login.
	security.Mode

	// KeystorePEM is the broker's private key, its certificate for the
	// advertised host and kafkaup's CA, in one PEM file (with TLS).
	KeystorePEM []byte `json:"-"`
	// InternalPort is a PLAINTEXT listener on the host's loopback for the
	// broker's own connections and for kafkaup's admin work over SSH (it
	// creates the SCRAM user there). Used when clients are secured.
	InternalPort int
}

// Source says where the Kafka tarball comes from. With none of URL and
// LocalTarball set, Apache's CDN is tried first, then archive.apache.org.
type Source struct {
	URL          string // a mirror's URL of the .tgz
	SHA512       string // expected hex digest; default: fetched from URL + ".sha512" / Apache
	LocalTarball string // a .tgz on this machine, uploaded over SFTP
}

// Defaults for a small single-node broker.
const (
	DefaultKafkaVersion = "4.0.0"
	DefaultHeapMB       = 400
	DefaultSwapBytes    = 2 << 30

	DefaultAPTLockTimeout = 5 * time.Minute
	MaxAPTLockTimeout     = time.Hour
)

// DefaultSpec returns the spec with every default filled in; the caller sets
// AdvertisedHost.
func DefaultSpec() Spec {
	return Spec{
		KafkaVersion:   DefaultKafkaVersion,
		ScalaVersion:   "2.13",
		HeapMB:         DefaultHeapMB,
		SwapBytes:      DefaultSwapBytes,
		SwapFile:       "/swapfile",
		DataDir:        "/var/lib/kafka/data",
		LogDir:         "/var/log/kafka",
		InstallDir:     "/opt/kafka",
		ConfigDir:      "/etc/kafka",
		StateDir:       "/var/lib/kafkaup",
		Service:        "kafka",
		APTLockTimeout: DefaultAPTLockTimeout,
		NodeID:         1,
		BrokerPort:     9092,
		ControllerPort: 9093,
		Security:       Security{InternalPort: 9094},
		Metrics:        DefaultMetrics(),
	}
}

// APTLockSeconds is APTLockTimeout in whole seconds (rounded up), for the
// host scripts.
func (s Spec) APTLockSeconds() int { return int((s.APTLockTimeout + time.Second - 1) / time.Second) }

// DistName is the tarball's top directory, e.g. kafka_2.13-4.0.0.
func (s Spec) DistName() string { return "kafka_" + s.ScalaVersion + "-" + s.KafkaVersion }

// KafkaHome is the stable symlink the service runs from.
func (s Spec) KafkaHome() string { return s.InstallDir + "/current" }

// ConfigFile, EnvFile and UnitFile are the files kafkaup writes.
func (s Spec) ConfigFile() string { return s.ConfigDir + "/server.properties" }
func (s Spec) EnvFile() string    { return s.ConfigDir + "/kafka.env" }
func (s Spec) UnitFile() string   { return "/etc/systemd/system/" + s.Service + ".service" }

// KeystoreFile is where the broker's PEM keystore lives (with TLS).
func (s Spec) KeystoreFile() string { return s.ConfigDir + "/tls/broker.pem" }

// LocalBootstrap is the address tools on the host itself use: the INTERNAL
// listener on a cluster's node (on its internal address), the INTERNAL
// loopback listener when a single broker's clients are secured, else the
// client listener.
func (s Spec) LocalBootstrap() string {
	if s.Clustered() {
		return net.JoinHostPort(s.InternalHost, strconv.Itoa(s.Security.InternalPort))
	}
	if s.Security.Secured() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Security.InternalPort))
	}
	return net.JoinHostPort("localhost", strconv.Itoa(s.BrokerPort))
}

// Bootstrap is the address clients use to reach this node.
func (s Spec) Bootstrap() string { return BrokerAddr(s.AdvertisedHost, s.BrokerPort) }

// BrokerAddr is host:port of a broker's client listener (an IPv6 address
// in brackets): the one way kafkaup writes a bootstrap address.
func BrokerAddr(host string, port int) string {
	if port == 0 {
		port = DefaultSpec().BrokerPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Heap is the JVM size string, e.g. 400m.
func (s Spec) Heap() string { return strconv.Itoa(s.HeapMB) + "m" }

// DownloadURLs lists where the tarball is fetched from, in order.
func (s Spec) DownloadURLs() []string {
	if s.Source.URL != "" {
		return []string{s.Source.URL}
	}
	file := s.DistName() + ".tgz"
	return []string{
		"https://dlcdn.apache.org/kafka/" + s.KafkaVersion + "/" + file,
		"https://archive.apache.org/dist/kafka/" + s.KafkaVersion + "/" + file,
	}
}

// SHA512URLs lists where the checksum file is fetched from. For Apache's
// own downloads the archive is asked first: it keeps every release.
func (s Spec) SHA512URLs() []string {
	if s.Source.URL != "" {
		return []string{s.Source.URL + ".sha512"}
	}
	file := s.DistName() + ".tgz.sha512"
	return []string{
		"https://archive.apache.org/dist/kafka/" + s.KafkaVersion + "/" + file,
		"https://downloads.apache.org/kafka/" + s.KafkaVersion + "/" + file,
	}
}

var (
	versionRE  = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)
	sha512RE   = regexp.MustCompile(`^[0-9a-f]{128}$`)
	kafkaIDRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]{21}$`) // a Uuid: 16 bytes, URL-safe base64, no padding
	rackRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	hostnameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$`)
	pathRE     = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
)

// InputError is a mistake in what the user asked for, found before
// anything changed: the CLI's exit status 2. Every layer reports such
// mistakes with this one type.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Inputf is an InputError with a formatted message.
func Inputf(format string, args ...any) error { return &InputError{Err: fmt.Errorf(format, args...)} }

// Validate checks the spec before anything touches the host, and says what
// to do about each problem.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if err := ValidateHost(s.AdvertisedHost); err != nil {
		bad("--advertised-host: %v", err)
	}
	if m := versionRE.FindStringSubmatch(s.KafkaVersion); m == nil {
		bad("--kafka-version %q is not a release number like 4.0.0", s.KafkaVersion)
	} else if m[1] != "4" {
		bad("--kafka-version %s: kafkaup installs Kafka 4.x (KRaft only); pick a 4.x release such as %s", s.KafkaVersion, DefaultKafkaVersion)
	}
	if s.ScalaVersion != "2.13" {
		bad("Scala version %q: Kafka 4 ships only for Scala 2.13", s.ScalaVersion)
	}
	if s.HeapMB < 128 || s.HeapMB > 64<<10 {
		bad("--heap %dm is outside 128m..64g; a small broker runs well with 400m", s.HeapMB)
	}
	if s.SwapBytes < 0 || (s.SwapBytes > 0 && s.SwapBytes < 64<<20) || s.SwapBytes%(1<<20) != 0 {
		bad("--swap must be 0 (no swap) or a whole number of MiB of at least 64M, like 2G")
	}
	if s.APTLockTimeout < 0 || s.APTLockTimeout > MaxAPTLockTimeout {
		bad("--apt-lock-timeout %s is outside 0s..1h (the default is 5m)", s.APTLockTimeout)
	}
	if s.Source.URL != "" && s.Source.LocalTarball != "" {
		bad("--kafka-url and --kafka-tarball both given: choose one source")
	}
	if s.Source.URL != "" {
		u, err := url.Parse(s.Source.URL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			bad("--kafka-url %q must be an http:// or https:// URL", s.Source.URL)
		case !strings.HasSuffix(u.Path, ".tgz"):
			bad("--kafka-url %q must point at the .tgz file", s.Source.URL)
		case u.RawQuery != "" && s.Source.SHA512 == "":
			// A presigned URL (a copy in your own S3 bucket): URL.sha512 is
			// not beside it, so the digest comes from Apache through you.
			bad("--kafka-url %q has a query string (a presigned URL?): no checksum file can be fetched beside it, so pass --kafka-sha512 with the digest from Apache's .sha512 file", s.Source.URL)
		}
	}
	if s.Source.SHA512 != "" && !sha512RE.MatchString(s.Source.SHA512) {
		bad("--kafka-sha512 must be 128 hex digits (the digest from the release's .sha512 file)")
	}
	for name, p := range map[string]string{"--data-dir": s.DataDir, "log dir": s.LogDir, "install dir": s.InstallDir, "config dir": s.ConfigDir, "state dir": s.StateDir, "swap file": s.SwapFile} {
		if !pathRE.MatchString(p) || strings.Contains(p, "..") || p == "/" {
			bad("%s %q must be an absolute path of letters, digits, '.', '_', '-' and '/'", name, p)
		}
	}
	if strings.HasPrefix(s.DataDir, "/tmp/") || s.DataDir == "/tmp" {
		bad("--data-dir %s is under /tmp, which many systems wipe on reboot; pick a persistent directory such as /var/lib/kafka/data", s.DataDir)
	}
	type port struct {
		name string
		n    int
	}
	ports := []port{{"broker port", s.BrokerPort}, {"controller port", s.ControllerPort}}
	if s.Security.Secured() || s.Clustered() {
		ports = append(ports, port{"internal port", s.Security.InternalPort})
	}
	if s.Metrics.Enabled {
		ports = append(ports, port{"metrics port", s.Metrics.Port})
	}
	seen := map[int]string{}
	for _, p := range ports {
		if p.n < 1 || p.n > 65535 {
			bad("%s %d is not a TCP port", p.name, p.n)
		} else if other, dup := seen[p.n]; dup {
			bad("the %s and %s are both %d; they must differ", other, p.name, p.n)
		}
		seen[p.n] = p.name
	}
	errs = append(errs, s.Metrics.problems()...)
	errs = append(errs, s.clusterProblems()...)

	return errors.Join(errs...)
}

// clusterProblems checks the cluster id, the rack and a cluster's voters.
func (s Spec) clusterProblems() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Rack != "" && !rackRE.MatchString(s.Rack) {
		bad("rack %q must be 1 to 64 letters, digits, '.', '_' or '-'", s.Rack)
	}
	if !s.Clustered() {
		return errs // a single broker's recorded cluster id came from its own meta.properties
	}
	if !kafkaIDRE.MatchString(s.ClusterID) {
		bad("cluster id %q is not a KRaft cluster id (22 characters of URL-safe base64)", s.ClusterID)
	}
	if err := ValidateHost(s.InternalHost); err != nil {
		bad("--internal-host of node %d: %v", s.NodeID, err)
	}
	ids, dirs := map[int]bool{}, map[string]bool{}
	for _, v := range s.Voters {
		if v.NodeID < 1 || ids[v.NodeID] {
			bad("node ids must be distinct and positive, got %d twice or below 1", v.NodeID)
		}
		ids[v.NodeID] = true
		if err := ValidateHost(v.Host); err != nil {
			bad("internal address of node %d: %v", v.NodeID, err)
		}
		if v.DirectoryID == "" && v.NodeID == s.NodeID && s.JoinQuorum {
			continue // chosen by Kafka when the new host's storage is formatted
		}
		if v.DirectoryID == "" {
			bad("node %d has no directory id yet: its replacement has not finished; rerun kafkaup node replace for it first", v.NodeID)
			continue
		}
		if !kafkaIDRE.MatchString(v.DirectoryID) || dirs[v.DirectoryID] {
			bad("node %d's directory id %q is not a distinct Kafka Uuid", v.NodeID, v.DirectoryID)
		}
		dirs[v.DirectoryID] = true
	}
	if me, ok := s.Voter(); !ok {
		bad("node %d is not one of the cluster's voters", s.NodeID)
	} else if me.Host != s.InternalHost {
		bad("node %d's internal address is %s but the voters list it at %s", s.NodeID, s.InternalHost, me.Host)
	}
	return errs
}

// ValidateHost accepts a DNS name, an IPv4 or an IPv6 address that can be
// advertised to clients.
func ValidateHost(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("%s cannot be advertised: clients need the address they should connect to", h)
		}
		return nil
	}
	if len(h) > 253 || !hostnameRE.MatchString(h) {
		return fmt.Errorf("%q is neither an IP address nor a valid DNS name", h)
	}
	return nil
}

// ParseSize reads sizes like 2G, 512M, 2048m, 1.5G or 0 into bytes
// (binary units: K, M, G, T).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	if t == "0" {
		return 0, nil
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || mult == 1 {
		return 0, fmt.Errorf("%q is not a size like 2G or 512M", s)
	}
	return int64(f * float64(mult)), nil
}

// ParseHeap reads a JVM heap size like 400m or 1g into MiB.
func ParseHeap(s string) (int, error) {
	b, err := ParseSize(s)
	if err != nil || b < 1<<20 || b%(1<<20) != 0 {
		return 0, fmt.Errorf("--heap %q is not a size like 400m or 1g", s)
	}
	return int(b >> 20), nil
}
