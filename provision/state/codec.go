package state

import (
	"fmt"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/security"
)

// This file is the record's one codec: a record becomes a Spec here
// (SpecFor), a Spec is remembered here (Remember), and the user's changes
// are laid over the record here (Overrides.Apply). Nothing else converts
// between the two.

// SpecFor is the spec node i (0-based) was last provisioned with. A node
// of a cluster of several nodes also gets every node as a voter, at its
// internal address.
func SpecFor(c Cluster, i int) (provision.Spec, error) {
	s := provision.DefaultSpec()
	if i < 0 || i >= len(c.Nodes) {
		return s, fmt.Errorf("broker record %s has no node %d", c.Name, i+1)
	}
	n := c.Nodes[i]
	sh := c.Spec
	s.NodeID = n.ID
	s.AdvertisedHost = n.AdvertisedHost
	s.ClusterID, s.Rack = c.ClusterID, n.Rack
	if len(c.Nodes) > 1 {
		s.InternalHost = n.Internal()
		s.JoinQuorum = n.ReplacedDirectoryID != ""
		for _, m := range c.Nodes {
			s.Voters = append(s.Voters, provision.Voter{NodeID: m.ID, Host: m.Internal(), DirectoryID: m.DirectoryID})
		}
	}
	if sh.BrokerPort != 0 {
		s.BrokerPort = sh.BrokerPort
	}
	if sh.KafkaVersion != "" {
		s.KafkaVersion = sh.KafkaVersion
	}
	if sh.DataDir != "" {
		s.DataDir = sh.DataDir
	}
	s.Source = provision.Source{URL: sh.KafkaURL, SHA512: sh.KafkaSHA512}
	s.Security.Mode = sh.Security
	m := sh.Metrics
	s.Metrics.Enabled, s.Metrics.AgentURL, s.Metrics.AgentSHA256 = m.Enabled, m.AgentURL, m.AgentSHA256
	if m.Port != 0 {
		s.Metrics.Port = m.Port
	}
	if m.AgentVersion != "" {
		s.Metrics.AgentVersion = m.AgentVersion
	}
	if sh.Heap != "" {
		heap, err := provision.ParseHeap(sh.Heap)
		if err != nil {
			return s, fmt.Errorf("broker record %s: %w", c.Name, err)
		}
		s.HeapMB = heap
	}
	if sh.Swap != "" {
		swap, err := provision.ParseSize(sh.Swap)
		if err != nil {
			return s, fmt.Errorf("broker record %s: swap: %w", c.Name, err)
		}
		s.SwapBytes = swap
	}
	return s, nil
}

// Remember records what of s the next run must converge to again: the
// shared part and the cluster id for the cluster; the advertised and
// internal addresses, the rack and the voter's directory id for node i. A
// tarball uploaded from this machine is not a source to remember, nor is
// its digest (it belongs to that file).
func Remember(c *Cluster, i int, s provision.Spec) {
	sha := c.Spec.KafkaSHA512
	if s.Source.LocalTarball == "" {
		sha = s.Source.SHA512
	}
	c.Spec = SharedSpec{KafkaVersion: s.KafkaVersion, KafkaURL: s.Source.URL, KafkaSHA512: sha,
		Heap: s.Heap(), Swap: sizeString(s.SwapBytes), DataDir: s.DataDir, BrokerPort: s.BrokerPort, Security: s.Security.Mode,
		Metrics: Metrics{Enabled: s.Metrics.Enabled, Port: s.Metrics.Port, AgentVersion: s.Metrics.AgentVersion,
			AgentURL: s.Metrics.AgentURL, AgentSHA256: s.Metrics.AgentSHA256}}
	n := c.Node(i)
	n.ID, n.AdvertisedHost = s.NodeID, s.AdvertisedHost
	n.InternalHost, n.Rack = s.InternalHost, s.Rack
	if me, ok := s.Voter(); ok && s.Clustered() {
		n.DirectoryID = me.DirectoryID
	}
	if s.ClusterID != "" {
		c.ClusterID = s.ClusterID
	}
}

// sizeString writes a whole number of MiB as ParseSize reads it back.
func sizeString(b int64) string {
	switch {
	case b == 0:
		return "0"
	case b%(1<<30) == 0:
		return fmt.Sprintf("%dG", b>>30)
	}
	return fmt.Sprintf("%dM", b>>20)
}

// Overrides are the settings the user gave on this command line; nil means
// "not given": keep the recorded value (or the default for a new cluster).
type Overrides struct {
	AdvertisedHost *string
	KafkaVersion   *string
	KafkaURL       *string
	KafkaSHA512    *string
	Heap           *string
	Swap           *string
	DataDir        *string
	TLS            *bool
	Auth           *string

	Metrics             *bool
	MetricsPort         *int
	MetricsAgentVersion *string
	MetricsAgentURL     *string
	MetricsAgentSHA256  *string

	// For this run only, never recorded.
	KafkaTarball    string         // upload this .tgz (its digest is checked by the caller)
	MetricsAgentJar string         // upload this agent jar instead of downloading it
	APTLockTimeout  *time.Duration // wait this long for another apt run
}

// Apply lays the overrides over node i's recorded spec and checks the
// result; the advertised address defaults to sshHost. Changing the Kafka
// version drops the recorded digest (it belongs to the old version) and
// moves a recorded mirror URL to the new version.
func (o Overrides) Apply(c Cluster, i int, sshHost string) (provision.Spec, error) {
	s := provision.DefaultSpec()
	if i < len(c.Nodes) {
		var err error
		if s, err = SpecFor(c, i); err != nil {
			return s, err
		}
	} else {
		s.NodeID = i + 1
	}
	recorded := s
	bad := func(format string, args ...any) (provision.Spec, error) {
		return s, &provision.InputError{Err: fmt.Errorf(format, args...)}
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.AdvertisedHost, o.AdvertisedHost)
	if s.AdvertisedHost == "" {
		s.AdvertisedHost = sshHost
	}
	set(&s.KafkaVersion, o.KafkaVersion)
	set(&s.Source.URL, o.KafkaURL)
	set(&s.Source.SHA512, o.KafkaSHA512)
	s.Source.SHA512 = strings.ToLower(s.Source.SHA512)
	set(&s.DataDir, o.DataDir)
	if o.Heap != nil {
		heap, err := provision.ParseHeap(*o.Heap)
		if err != nil {
			return bad("%v", err)
		}
		s.HeapMB = heap
	}
	if o.Swap != nil {
		swap, err := provision.ParseSize(*o.Swap)
		if err != nil {
			return bad("--swap: %v", err)
		}
		s.SwapBytes = swap
	}
	if o.APTLockTimeout != nil {
		s.APTLockTimeout = *o.APTLockTimeout
	}
	if o.TLS != nil {
		s.Security.TLS = *o.TLS
	}
	if o.Auth != nil {
		scram, err := security.ParseAuth(*o.Auth)
		if err != nil {
			return bad("%v", err)
		}
		s.Security.SCRAM = scram
	}
	if o.Metrics != nil {
		s.Metrics.Enabled = *o.Metrics
	}
	if o.MetricsPort != nil {
		s.Metrics.Port = *o.MetricsPort
	}
	set(&s.Metrics.AgentVersion, o.MetricsAgentVersion)
	set(&s.Metrics.AgentURL, o.MetricsAgentURL)
	set(&s.Metrics.AgentSHA256, o.MetricsAgentSHA256)
	s.Metrics.LocalAgent = o.MetricsAgentJar
	if i < len(c.Nodes) && o.KafkaVersion != nil && s.KafkaVersion != recorded.KafkaVersion {
		if o.KafkaSHA512 == nil {
			s.Source.SHA512 = ""
		}
		if o.KafkaURL == nil && recorded.KafkaVersion != "" {
			s.Source.URL = strings.ReplaceAll(s.Source.URL, recorded.KafkaVersion, s.KafkaVersion)
		}
	}
	if o.KafkaTarball != "" {
		if o.KafkaURL != nil {
			return bad("--kafka-url and --kafka-tarball both given: choose one source")
		}
		s.Source.URL = "" // a recorded mirror gives way to the tarball
		s.Source.LocalTarball = o.KafkaTarball
	}
	if err := s.Validate(); err != nil {
		return s, &provision.InputError{Err: err}
	}
	return s, nil
}
