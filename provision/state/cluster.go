package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/atomicfile"
	"github.com/kafkaup/kafkaup/provision/security"
)

// Format is the version of the record layout Save writes. Records without
// one were written by kafkaup before clusters (one broker per record) and
// are migrated by Load.
const Format = 2

// Cluster is what kafkaup remembers about one named Kafka cluster: the spec
// its nodes share, and each node (how to reach its host, what clients are
// told, its EC2 instance). A single broker is a cluster of one node.
type Cluster struct {
	Format int    `json:"format"`
	Name   string `json:"name"`

	Spec  SharedSpec `json:"spec"`
	Nodes []Node     `json:"nodes"`

	ClusterID string `json:"cluster_id,omitempty"`
	EC2       *EC2   `json:"ec2,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// SharedSpec is the part of the spec every node has in common: the
// provisioning choices last used, so that reprovision converges to the same
// spec plus what the user changed. Codec.go turns it into a provision.Spec.
type SharedSpec struct {
	KafkaVersion string        `json:"kafka_version"`
	KafkaURL     string        `json:"kafka_url,omitempty"`
	KafkaSHA512  string        `json:"kafka_sha512,omitempty"`
	Heap         string        `json:"heap"` // e.g. 400m
	Swap         string        `json:"swap"` // e.g. 2G; 0 leaves swap alone
	DataDir      string        `json:"data_dir"`
	BrokerPort   int           `json:"broker_port"`
	Security     security.Mode `json:"security"` // the CA, keystore and password live in SecretsDir, never here
	Metrics      Metrics       `json:"metrics"`
}

// Metrics is the recorded --metrics setting (the JMX exporter agent).
type Metrics struct {
	Enabled      bool   `json:"enabled"`
	Port         int    `json:"port,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`
	AgentURL     string `json:"agent_url,omitempty"`
	AgentSHA256  string `json:"agent_sha256,omitempty"`
}

// Node is one broker of the cluster.
type Node struct {
	ID int `json:"id"` // Kafka's node.id

	Host     string `json:"host"` // SSH address
	Port     int    `json:"port"`
	User     string `json:"user"`
	Identity string `json:"identity,omitempty"` // private key file

	AdvertisedHost string `json:"advertised_host"` // what clients are told
	Systemd        bool   `json:"systemd"`

	// A node of a cluster of several nodes: the address the other nodes
	// reach it at (its controller and inter-broker listeners; stored in the
	// quorum's metadata, so it must not change), and the directory id of
	// its metadata log, chosen by kafkaup before the storage is formatted.
	InternalHost string `json:"internal_host,omitempty"`
	DirectoryID  string `json:"directory_id,omitempty"`
	// ReplacedDirectoryID is set while `kafkaup node replace` moves the
	// node to a new host: the directory id of the old voter, which leaves
	// the quorum before the new one joins. Until the new host's storage is
	// formatted (with --no-initial-controllers, Kafka picks the id),
	// DirectoryID is empty.
	ReplacedDirectoryID string `json:"replaced_directory_id,omitempty"`
	// Replacements counts the instances `kafkaup node replace` launched
	// for this node; the launch's idempotency token derives from it, so a
	// rerun of one replacement cannot launch twice.
	Replacements int `json:"replacements,omitempty"`
	// ReplacedInstanceID is the node's old EC2 instance while node replace
	// moves it to a new one: set before the launch, cleared once the new
	// instance is recorded and the old one terminated.
	ReplacedInstanceID string `json:"replaced_instance_id,omitempty"`
	// Rack is the node's broker.rack (its availability zone), if any.
	Rack string `json:"rack,omitempty"`

	// The node's EC2 instance, for clusters made by `kafkaup create`.
	InstanceID      string `json:"instance_id,omitempty"`
	EIPAllocationID string `json:"eip_allocation_id,omitempty"`
	// HostKeys are the SSH host keys the instance printed on its console
	// at first boot (authorized_keys format: "ssh-ed25519 AAAA..."). When
	// set, they are the only keys accepted from the host: kafkaup checks
	// every connection against them, never trusting on first use.
	HostKeys []string `json:"host_keys,omitempty"`
}

// EC2 is the cloud side of a cluster made by `kafkaup create`.
type EC2 struct {
	Region      string `json:"region"`
	AddressKind string `json:"address_kind,omitempty"` // ip or dns: which public address clients get
	// AllowCIDRs are the addresses the security group lets reach the
	// cluster: --allow-cidr, else the caller's /32 at create, as changed
	// since by kafkaup allow. A rerun of create keeps them unless new ones
	// are given.
	AllowCIDRs []string `json:"allow_cidrs,omitempty"`
}

// Node returns node i (0-based) for reading and writing, adding empty nodes
// up to it.
func (c *Cluster) Node(i int) *Node {
	for len(c.Nodes) <= i {
		c.Nodes = append(c.Nodes, Node{ID: len(c.Nodes) + 1})
	}
	return &c.Nodes[i]
}

// Internal is the address the other nodes reach this one at: the
// recorded internal address, else the SSH address.
func (n Node) Internal() string {
	if n.InternalHost != "" {
		return n.InternalHost
	}
	return n.Host
}

// FindNode returns the index of the node with Kafka node id id.
func (c Cluster) FindNode(id int) (int, error) {
	for i, n := range c.Nodes {
		if n.ID == id {
			return i, nil
		}
	}
	ids := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		ids = append(ids, fmt.Sprint(n.ID))
	}
	return 0, fmt.Errorf("%s has no node %d (its nodes: %s)", c.Name, id, strings.Join(ids, ", "))
}

// Bootstrap is the bootstrap servers list for clients: every node's
// advertised address.
func (c Cluster) Bootstrap() string {
	addrs := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		addrs = append(addrs, provision.BrokerAddr(n.AdvertisedHost, c.Spec.BrokerPort))
	}
	return strings.Join(addrs, ",")
}

var nameRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidateName is the one rule for cluster names (records, EC2 tags and
// resource names use them): 1-40 lower-case letters, digits and '-',
// starting with a letter and not ending with '-'.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a valid broker name: use 1 to 40 lowercase letters, digits and '-', starting with a letter and not ending with '-' (for example demo or kafka-1)", name)
	}
	return nil
}

// NameForHost derives a cluster name from a host address.
func NameForHost(host string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "host-" + name
	}
	if len(name) > 40 {
		name = name[:40]
	}
	return strings.TrimRight(name, "-")
}

func recordsDir(dir string) string { return filepath.Join(dir, "brokers") }

func recordPath(dir, name string) string { return filepath.Join(recordsDir(dir), name+".json") }

// ErrNoBroker is returned by Load for a name kafkaup has no record of.
var ErrNoBroker = errors.New("no such broker")

// Store keeps records in a state directory.
type Store struct{ Dir string }

// Save writes the record atomically (temp file + rename), mode 0600, in the
// current Format.
func (s Store) Save(c Cluster) error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	now := time.Now().UTC()
	if c.Created.IsZero() {
		c.Created = now
	}
	c.Updated, c.Format = now, Format
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("save broker %s: %w", c.Name, err)
	}
	if err := atomicfile.Write(recordPath(s.Dir, c.Name), append(data, '\n')); err != nil {
		return fmt.Errorf("save broker %s: %w", c.Name, err)
	}
	return nil
}

// Load reads one cluster's record, migrating one written by an earlier
// release.
func (s Store) Load(name string) (Cluster, error) {
	if err := ValidateName(name); err != nil {
		return Cluster{}, err
	}
	path := recordPath(s.Dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Cluster{}, fmt.Errorf("%w: kafkaup has no record of a broker named %q in %s. Run `kafkaup list` to see known brokers, or `kafkaup provision --host HOST --name %s` to set one up", ErrNoBroker, name, recordsDir(s.Dir), name)
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("read broker %s: %w", name, err)
	}
	c, err := decode(data)
	if err != nil {
		return Cluster{}, fmt.Errorf("broker record %s is damaged (%v); delete it and rerun provision", path, err)
	}
	return c, nil
}

// List returns every recorded cluster, sorted by name.
func (s Store) List() ([]Cluster, error) {
	entries, err := os.ReadDir(recordsDir(s.Dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list brokers: %w", err)
	}
	var out []Cluster
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		c, err := s.Load(name)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a cluster's record, its private key (if kafkaup made one)
// and its secrets.
func (s Store) Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := os.RemoveAll(SecretsDir(s.Dir, name)); err != nil {
		return fmt.Errorf("delete broker %s: %w", name, err)
	}
	for _, p := range []string{recordPath(s.Dir, name), KeyPath(s.Dir, name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete broker %s: %w", name, err)
		}
	}
	return nil
}

// SecretsDir is where a cluster's CA, keystore and SCRAM password live
// (package secrets writes them).
func SecretsDir(dir, name string) string { return filepath.Join(dir, "secrets", name) }

// KeyPath is where kafkaup keeps a private key it created for a cluster.
func KeyPath(dir, name string) string { return filepath.Join(dir, "keys", name) }

// SaveKey writes a private key with mode 0600 and returns its path.
func (s Store) SaveKey(name string, pem []byte) (string, error) {
	p := KeyPath(s.Dir, name)
	if err := atomicfile.Write(p, pem); err != nil {
		return "", fmt.Errorf("save key for %s: %w", name, err)
	}
	return p, nil
}
