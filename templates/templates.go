// Package templates renders the files kafkaup puts on a host (server.properties,
// the broker's environment file, the systemd unit) from typed data. The
// templates are embedded at build time.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"net"
	"strconv"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var parsed = template.Must(template.New("").Option("missingkey=error").ParseFS(files, "*.tmpl"))

// ServerProperties is the broker's configuration.
type ServerProperties struct {
	NodeID                   int
	BrokerPort               int
	ControllerPort           int
	AdvertisedHost           string // DNS name or IP that clients are told to use
	DataDir                  string
	CleanerDedupeBufferBytes int64

	// Protocol is the client listener's security protocol: PLAINTEXT
	// (also when empty), SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol     string
	InternalPort int    // PLAINTEXT listener for the brokers' own traffic: on loopback for a single broker whose clients are secured, on InternalHost for a cluster's node
	KeystoreFile string // PEM keystore, with TLS

	// A node of a cluster of several nodes sets these; a single broker
	// leaves them empty and renders as it always has.
	Nodes             int    // how many nodes the cluster has
	InternalHost      string // this node's address among the nodes
	QuorumBootstrap   string // controller.quorum.bootstrap.servers
	ReplicationFactor int    // default.replication.factor and the internal topics'
	MinInSync         int    // min.insync.replicas and the internal topics'

	Rack string // broker.rack; empty: none
}

// Clustered says whether this is a node of a cluster of several nodes.
func (p ServerProperties) Clustered() bool { return p.QuorumBootstrap != "" }

// ClientProtocol is the client listener's name and protocol.
func (p ServerProperties) ClientProtocol() string {
	if p.Protocol == "" {
		return "PLAINTEXT"
	}
	return p.Protocol
}

// InternalAddress is host:port of a cluster node's INTERNAL listener.
func (p ServerProperties) InternalAddress() string {
	return net.JoinHostPort(p.InternalHost, strconv.Itoa(p.InternalPort))
}

// ControllerAddress is host:port of a cluster node's CONTROLLER listener.
func (p ServerProperties) ControllerAddress() string {
	return net.JoinHostPort(p.InternalHost, strconv.Itoa(p.ControllerPort))
}

// Secured says whether the client listener uses TLS or SASL.
func (p ServerProperties) Secured() bool { return p.Protocol != "" && p.Protocol != "PLAINTEXT" }

// TLS says whether the client listener uses TLS.
func (p ServerProperties) TLS() bool { return strings.HasSuffix(p.Protocol, "SSL") }

// SCRAM says whether clients log in (SASL/SCRAM-SHA-512).
func (p ServerProperties) SCRAM() bool { return strings.HasPrefix(p.Protocol, "SASL_") }

// ListenerPrefix is the client listener's name as it appears in per-listener
// settings (listener.name.<prefix>.*).
func (p ServerProperties) ListenerPrefix() string { return strings.ToLower(p.Protocol) }

// AdvertisedAddress is host:port with IPv6 literals bracketed.
func (p ServerProperties) AdvertisedAddress() string {
	return net.JoinHostPort(p.AdvertisedHost, strconv.Itoa(p.BrokerPort))
}

// Env is the broker's environment file.
type Env struct {
	Heap   string // JVM size such as 400m; used for both -Xmx and -Xms
	LogDir string
	// JavaAgent is the Prometheus JMX exporter's -javaagent: value,
	// JAR=PORT:RULES, or empty with metrics off.
	JavaAgent string
}

// Unit is the systemd unit.
type Unit struct {
	KafkaHome string // stable symlink to the installed version
	Config    string
	EnvFile   string
}

// RenderServerProperties renders server.properties.
func RenderServerProperties(p ServerProperties) ([]byte, error) {
	switch p.Protocol {
	case "", "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
	default:
		return nil, fmt.Errorf("render server.properties: unknown security protocol %q", p.Protocol)
	}
	values := []string{p.AdvertisedHost, p.DataDir}
	if p.TLS() {
		values = append(values, p.KeystoreFile)
	}
	if (p.Secured() || p.Clustered()) && (p.InternalPort < 1 || p.InternalPort > 65535) {
		return nil, fmt.Errorf("render server.properties: internal port %d is not a TCP port", p.InternalPort)
	}
	if p.Rack != "" {
		values = append(values, p.Rack)
	}
	if p.Clustered() {
		values = append(values, p.InternalHost, p.QuorumBootstrap)
		if p.Nodes < 2 || p.ReplicationFactor < 1 || p.MinInSync < 1 || p.MinInSync > p.ReplicationFactor {
			return nil, fmt.Errorf("render server.properties: %d nodes with replication factor %d and min ISR %d", p.Nodes, p.ReplicationFactor, p.MinInSync)
		}
	}
	return render("server.properties.tmpl", p, values...)
}

// RenderEnv renders the broker's environment file.
func RenderEnv(e Env) ([]byte, error) {
	values := []string{e.Heap, e.LogDir}
	if e.JavaAgent != "" {
		values = append(values, e.JavaAgent)
	}
	return render("kafka.env.tmpl", e, values...)
}

// RenderUnit renders the systemd unit.
func RenderUnit(u Unit) ([]byte, error) {
	return render("kafka.service.tmpl", u, u.KafkaHome, u.Config, u.EnvFile)
}

func render(name string, data any, values ...string) ([]byte, error) {
	for _, v := range values {
		if v == "" || strings.ContainsAny(v, "\n\r\"\\ \t") {
			return nil, fmt.Errorf("render %s: value %q is empty or holds characters that cannot appear in it", name, v)
		}
	}
	var b bytes.Buffer
	if err := parsed.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}
