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
)

// Broker is what kafkaup remembers about one broker: how to reach its host,
// the spec it was last provisioned with, and (for EC2) what it created.
type Broker struct {
	Name string `json:"name"`

	Host     string `json:"host"` // SSH address
	Port     int    `json:"port"`
	User     string `json:"user"`
	Identity string `json:"identity,omitempty"` // private key file

	AdvertisedHost string `json:"advertised_host"`
	BrokerPort     int    `json:"broker_port"`

	// The provisioning flags last used, so reprovision converges to the same spec.
	KafkaVersion string `json:"kafka_version"`
	KafkaURL     string `json:"kafka_url,omitempty"`
	KafkaSHA512  string `json:"kafka_sha512,omitempty"`
	Heap         string `json:"heap"`
	Swap         string `json:"swap"`
	DataDir      string `json:"data_dir"`
	// TLS and Auth ("scram" or empty) say how clients reach the broker; the
	// CA, keystore and password live in SecretsDir, never in this record.
	TLS  bool   `json:"tls,omitempty"`
	Auth string `json:"auth,omitempty"`

	ClusterID string `json:"cluster_id,omitempty"`
	Systemd   bool   `json:"systemd"`

	EC2 *EC2 `json:"ec2,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// EC2 is the cloud side of a broker made by `kafkaup create`.
type EC2 struct {
	Region          string `json:"region"`
	InstanceID      string `json:"instance_id,omitempty"`
	AddressKind     string `json:"address_kind,omitempty"` // ip or dns: which public address clients get
	EIPAllocationID string `json:"eip_allocation_id,omitempty"`
}

// Bootstrap is host:port for clients.
func (b Broker) Bootstrap() string {
	port := b.BrokerPort
	if port == 0 {
		port = 9092
	}
	host := b.AdvertisedHost
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// ValidateName accepts broker names: lower-case letters, digits and '-',
// starting with a letter, at most 40 characters.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("broker name %q: use 1-40 lower-case letters, digits and '-', starting with a letter (for example dev-kafka)", name)
	}
	return nil
}

// NameForHost derives a broker name from a host address.
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
		name = strings.TrimRight(name[:40], "-")
	}
	return name
}

func brokersDir(dir string) string { return filepath.Join(dir, "brokers") }

func brokerPath(dir, name string) string { return filepath.Join(brokersDir(dir), name+".json") }

// ErrNoBroker is returned by Load for a name kafkaup has no record of.
var ErrNoBroker = errors.New("no such broker")

// Save writes the record atomically (temp file + rename), mode 0600.
func Save(dir string, b Broker) error {
	if err := ValidateName(b.Name); err != nil {
		return err
	}
	now := time.Now().UTC()
	if b.Created.IsZero() {
		b.Created = now
	}
	b.Updated = now
	if err := os.MkdirAll(brokersDir(dir), 0o700); err != nil {
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	tmp, err := os.CreateTemp(brokersDir(dir), "."+b.Name+".*.tmp")
	if err != nil {
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	if err := os.Rename(tmp.Name(), brokerPath(dir, b.Name)); err != nil {
		return fmt.Errorf("save broker %s: %w", b.Name, err)
	}
	return nil
}

// Load reads one broker's record.
func Load(dir, name string) (Broker, error) {
	var b Broker
	if err := ValidateName(name); err != nil {
		return b, err
	}
	data, err := os.ReadFile(brokerPath(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return b, fmt.Errorf("%w: kafkaup has no record of a broker named %q in %s. Run `kafkaup list` to see known brokers, or `kafkaup provision --host HOST --name %s` to set one up", ErrNoBroker, name, brokersDir(dir), name)
	}
	if err != nil {
		return b, fmt.Errorf("read broker %s: %w", name, err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("broker record %s is damaged (%v); delete it and rerun provision", brokerPath(dir, name), err)
	}
	return b, nil
}

// List returns every recorded broker, sorted by name.
func List(dir string) ([]Broker, error) {
	entries, err := os.ReadDir(brokersDir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list brokers: %w", err)
	}
	var out []Broker
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := Load(dir, name)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a broker's record, its private key (if kafkaup made one)
// and its secrets.
func Delete(dir, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := os.RemoveAll(SecretsDir(dir, name)); err != nil {
		return fmt.Errorf("delete broker %s: %w", name, err)
	}
	for _, p := range []string{brokerPath(dir, name), KeyPath(dir, name)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete broker %s: %w", name, err)
		}
	}
	return nil
}

// SecretsDir is where a broker's CA, keystore and SCRAM password live
// (package secrets writes them).
func SecretsDir(dir, name string) string { return filepath.Join(dir, "secrets", name) }

// KeyPath is where kafkaup keeps a private key it created for a broker.
func KeyPath(dir, name string) string { return filepath.Join(dir, "keys", name) }

// SaveKey writes a private key with mode 0600.
func SaveKey(dir, name string, pem []byte) (string, error) {
	p := KeyPath(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("save key for %s: %w", name, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, pem, 0o600); err != nil {
		return "", fmt.Errorf("save key for %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("save key for %s: %w", name, err)
	}
	return p, nil
}
