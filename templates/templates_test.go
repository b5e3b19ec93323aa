package templates

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./templates -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name   string
		render func() ([]byte, error)
	}{
		{"server.properties", func() ([]byte, error) {
			return RenderServerProperties(ServerProperties{NodeID: 1, BrokerPort: 9092, ControllerPort: 9093, AdvertisedHost: "ec2-3-4-5-6.compute-1.amazonaws.com", DataDir: "/var/lib/kafka/data", CleanerDedupeBufferBytes: 32 << 20})
		}},
		{"server.properties-ipv6", func() ([]byte, error) {
			return RenderServerProperties(ServerProperties{NodeID: 1, BrokerPort: 9092, ControllerPort: 9093, AdvertisedHost: "2001:db8::1", DataDir: "/data", CleanerDedupeBufferBytes: 16 << 20})
		}},
		{"server.properties-sasl-ssl", func() ([]byte, error) {
			return RenderServerProperties(ServerProperties{NodeID: 1, BrokerPort: 9092, ControllerPort: 9093, AdvertisedHost: "203.0.113.7", DataDir: "/var/lib/kafka/data", CleanerDedupeBufferBytes: 32 << 20,
				Protocol: "SASL_SSL", InternalPort: 9094, KeystoreFile: "/etc/kafka/tls/broker.pem"})
		}},
		{"server.properties-ssl", func() ([]byte, error) {
			return RenderServerProperties(ServerProperties{NodeID: 1, BrokerPort: 9092, ControllerPort: 9093, AdvertisedHost: "kafka.example.com", DataDir: "/var/lib/kafka/data", CleanerDedupeBufferBytes: 32 << 20,
				Protocol: "SSL", InternalPort: 9094, KeystoreFile: "/etc/kafka/tls/broker.pem"})
		}},
		{"server.properties-cluster", func() ([]byte, error) {
			return RenderServerProperties(clusterNode(""))
		}},
		{"server.properties-cluster-sasl-ssl", func() ([]byte, error) {
			p := clusterNode("SASL_SSL")
			p.Rack = "us-east-1b"
			return RenderServerProperties(p)
		}},
		{"kafka.env", func() ([]byte, error) { return RenderEnv(Env{Heap: "400m", LogDir: "/var/log/kafka"}) }},
		{"kafka.service", func() ([]byte, error) {
			return RenderUnit(Unit{KafkaHome: "/opt/kafka/current", Config: "/etc/kafka/server.properties", EnvFile: "/etc/kafka/kafka.env"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, got)
		})
	}
}

func TestRejectsValuesThatWouldBreakTheFile(t *testing.T) {
	for _, bad := range []string{"", "a\nlog.dirs=/tmp", "a b", `a"b`} {
		if _, err := RenderServerProperties(ServerProperties{AdvertisedHost: bad, DataDir: "/d"}); err == nil {
			t.Errorf("advertised host %q accepted", bad)
		}
	}
	if _, err := RenderEnv(Env{Heap: `400m" -Dx="`, LogDir: "/l"}); err == nil {
		t.Error("heap with a quote accepted")
	}
}

// clusterNode is node 2 of 3: public address for clients, private address
// for the other nodes.
func clusterNode(protocol string) ServerProperties {
	p := ServerProperties{NodeID: 2, BrokerPort: 9092, ControllerPort: 9093, AdvertisedHost: "203.0.113.8", DataDir: "/var/lib/kafka/data",
		CleanerDedupeBufferBytes: 32 << 20, Protocol: protocol, InternalPort: 9094,
		Nodes: 3, InternalHost: "172.31.5.12", QuorumBootstrap: "172.31.5.11:9093,172.31.5.12:9093,172.31.5.13:9093",
		ReplicationFactor: 3, MinInSync: 2}
	if p.TLS() {
		p.KeystoreFile = "/etc/kafka/tls/broker.pem"
	}
	return p
}

func TestClusterRejectsImpossibleReplication(t *testing.T) {
	p := clusterNode("")
	p.MinInSync = 4
	if _, err := RenderServerProperties(p); err == nil {
		t.Error("min ISR above the replication factor accepted")
	}
	p = clusterNode("")
	p.InternalHost = "a b"
	if _, err := RenderServerProperties(p); err == nil {
		t.Error("internal host with a space accepted")
	}
}
