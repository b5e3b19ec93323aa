package provision

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision/security"
	"github.com/kafkaup/kafkaup/scripts"
)

const testClusterID = "MkU3OEVBNTcwNTJENDM2Qg"

var testVoters = []Voter{
	{NodeID: 1, Host: "10.0.0.11", DirectoryID: "AAAAAAAAAAAAAAAAAAAAAQ"},
	{NodeID: 2, Host: "10.0.0.12", DirectoryID: "BBBBBBBBBBBBBBBBBBBBBQ"},
	{NodeID: 3, Host: "10.0.0.13", DirectoryID: "CCCCCCCCCCCCCCCCCCCCCQ"},
}

// clusterSpec is node id of a 3-node cluster: clients use a public
// address, the nodes a private one.
func clusterSpec(id int) Spec {
	s := DefaultSpec()
	s.NodeID = id
	s.AdvertisedHost = "203.0.113." + string(rune('0'+id))
	s.Voters = append([]Voter(nil), testVoters...)
	s.InternalHost = testVoters[id-1].Host
	s.ClusterID = testClusterID
	return s
}

func serverProperties(t *testing.T, s Spec) string {
	t.Helper()
	d, err := Render(s, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range d.Files {
		if m.Path == s.ConfigFile() {
			return string(m.Content)
		}
	}
	t.Fatal("no server.properties rendered")
	return ""
}

func TestClusterSpecValidates(t *testing.T) {
	if err := clusterSpec(2).Validate(); err != nil {
		t.Fatalf("a good cluster node is refused: %v", err)
	}
	cases := map[string]func(*Spec){
		"internal host not the voter's":  func(s *Spec) { s.InternalHost = "10.0.0.99" },
		"node not a voter":               func(s *Spec) { s.NodeID = 7 },
		"no cluster id":                  func(s *Spec) { s.ClusterID = "" },
		"bad cluster id":                 func(s *Spec) { s.ClusterID = "not an id" },
		"duplicate directory ids":        func(s *Spec) { s.Voters[2].DirectoryID = s.Voters[0].DirectoryID },
		"bad directory id":               func(s *Spec) { s.Voters[0].DirectoryID = "short" },
		"duplicate node ids":             func(s *Spec) { s.Voters[2].NodeID = 1 },
		"bad voter host":                 func(s *Spec) { s.Voters[0].Host = "0.0.0.0" },
		"internal port is the broker's":  func(s *Spec) { s.Security.InternalPort = 9092 },
		"rack with a space":              func(s *Spec) { s.Rack = "us east" },
		"no internal host":               func(s *Spec) { s.InternalHost = "" },
		"voter host with a quote":        func(s *Spec) { s.Voters[1].Host = `a"b` },
		"voter without a directory id":   func(s *Spec) { s.Voters[1].DirectoryID = "" },
		"cluster id with a bad 1st char": func(s *Spec) { s.ClusterID = "-kU3OEVBNTcwNTJENDM2Qg" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := clusterSpec(2)
			s.Voters = append([]Voter(nil), s.Voters...)
			mutate(&s)
			if err := s.Validate(); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestClusterServerProperties(t *testing.T) {
	s := clusterSpec(2)
	s.Rack = "us-east-1b"
	got := serverProperties(t, s)
	for _, want := range []string{
		"process.roles=broker,controller\n",
		"node.id=2\n",
		"controller.quorum.bootstrap.servers=10.0.0.11:9093,10.0.0.12:9093,10.0.0.13:9093\n",
		"listeners=PLAINTEXT://:9092,INTERNAL://10.0.0.12:9094,CONTROLLER://10.0.0.12:9093\n",
		"advertised.listeners=PLAINTEXT://203.0.113.2:9092,INTERNAL://10.0.0.12:9094\n",
		"inter.broker.listener.name=INTERNAL\n",
		"broker.rack=us-east-1b\n",
		"default.replication.factor=3\n",
		"min.insync.replicas=2\n",
		"offsets.topic.replication.factor=3\n",
		"transaction.state.log.replication.factor=3\n",
		"transaction.state.log.min.isr=2\n",
		"share.coordinator.state.topic.replication.factor=3\n",
		"share.coordinator.state.topic.min.isr=2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("server.properties lacks %q:\n%s", want, got)
		}
	}
	for _, never := range []string{"controller.quorum.voters", "127.0.0.1", "replication.factor=1", "CONTROLLER://203.0.113", "INTERNAL://203.0.113"} {
		if strings.Contains(got, never) {
			t.Errorf("server.properties has %q:\n%s", never, got)
		}
	}
}

// TestClusterSecuredClientsOnly: TLS and SCRAM are for the client listener;
// the nodes' own listeners stay on the internal address.
func TestClusterSecuredClientsOnly(t *testing.T) {
	s := clusterSpec(1)
	s.Security.Mode = security.Mode{TLS: true, SCRAM: true}
	s.Security.KeystorePEM = []byte("pem")
	got := serverProperties(t, s)
	for _, want := range []string{
		"listeners=SASL_SSL://:9092,INTERNAL://10.0.0.11:9094,CONTROLLER://10.0.0.11:9093\n",
		"advertised.listeners=SASL_SSL://203.0.113.1:9092,INTERNAL://10.0.0.11:9094\n",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL\n",
		"sasl.enabled.mechanisms=SCRAM-SHA-512\n",
		"ssl.keystore.location=/etc/kafka/tls/broker.pem\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("server.properties lacks %q:\n%s", want, got)
		}
	}
	if lb := s.LocalBootstrap(); lb != "10.0.0.11:9094" {
		t.Errorf("tools on the host use %s, want the INTERNAL listener", lb)
	}
}

func TestReplicationFollowsNodeCount(t *testing.T) {
	for _, c := range []struct{ nodes, rf, isr int }{{1, 1, 1}, {2, 2, 1}, {3, 3, 2}, {5, 3, 2}} {
		if rf, isr := ReplicationFactor(c.nodes), MinInSyncReplicas(c.nodes); rf != c.rf || isr != c.isr {
			t.Errorf("%d nodes: replication factor %d, min ISR %d; want %d, %d", c.nodes, rf, isr, c.rf, c.isr)
		}
	}
	s := clusterSpec(1)
	s.Voters = s.Voters[:2]
	got := serverProperties(t, s)
	if !strings.Contains(got, "default.replication.factor=2\n") || !strings.Contains(got, "min.insync.replicas=1\n") {
		t.Errorf("two nodes:\n%s", got)
	}
}

// TestSingleNodeUnchanged: a single broker still renders its static
// one-voter quorum on loopback and one-node replication, whatever the
// cluster fields say.
func TestSingleNodeUnchanged(t *testing.T) {
	s := testSpec()
	got := serverProperties(t, s)
	for _, want := range []string{"controller.quorum.voters=1@127.0.0.1:9093\n", "offsets.topic.replication.factor=1\n", "inter.broker.listener.name=PLAINTEXT\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("single node lacks %q", want)
		}
	}
	for _, never := range []string{"controller.quorum.bootstrap.servers", "INTERNAL", "default.replication.factor", "broker.rack"} {
		if strings.Contains(got, never) {
			t.Errorf("single node has %q", never)
		}
	}
	steps, err := Plan(s, freshHost(), "cluster-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if f, ok := st.Script.(scripts.Format); ok && (f.InitialControllers != "" || f.ClusterID != "cluster-1") {
			t.Errorf("single node formats with %+v", f)
		}
	}
}

func TestClusterFormat(t *testing.T) {
	want := "1@10.0.0.11:9093:AAAAAAAAAAAAAAAAAAAAAQ,2@10.0.0.12:9093:BBBBBBBBBBBBBBBBBBBBBQ,3@10.0.0.13:9093:CCCCCCCCCCCCCCCCCCCCCQ"
	for id := 1; id <= 3; id++ {
		s := clusterSpec(id)
		steps, err := Plan(s, freshHost(), "a-new-id-that-must-not-be-used")
		if err != nil {
			t.Fatal(err)
		}
		var format *scripts.Format
		for _, st := range steps {
			if f, ok := st.Script.(scripts.Format); ok {
				format = &f
			}
		}
		if format == nil {
			t.Fatalf("node %d: no format step in %v", id, ids(steps))
		}
		if format.InitialControllers != want || format.ClusterID != testClusterID {
			t.Errorf("node %d formats with %+v", id, *format)
		}
		script, err := scripts.Render(*format)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(script), "--standalone") {
			t.Error("the format script can run --standalone")
		}
	}
	// Formatted: no format step, whatever the voters.
	s := clusterSpec(2)
	f := clusterConverged(s)
	if steps, err := Plan(s, f, "x"); err != nil || len(steps) != 0 {
		t.Errorf("converged node plans %v, %v", ids(steps), err)
	}
}

// TestJoinQuorumFormat: a replacement node's new host is formatted with
// --no-initial-controllers (its directory id, not yet known, comes from
// Kafka), then accepted with the directory id it got once that is
// recorded; another voter's storage is still refused.
func TestJoinQuorumFormat(t *testing.T) {
	s := clusterSpec(3)
	s.JoinQuorum, s.Voters[2].DirectoryID = true, ""
	if err := s.Validate(); err != nil {
		t.Fatalf("a joining node's spec: %v", err)
	}
	steps, err := Plan(s, freshHost(), "unused")
	if err != nil {
		t.Fatal(err)
	}
	var format *scripts.Format
	for _, st := range steps {
		if f, ok := st.Script.(scripts.Format); ok {
			format = &f
			if !strings.Contains(st.Title, "--no-initial-controllers") {
				t.Errorf("format step title %q", st.Title)
			}
		}
	}
	if format == nil || !format.JoinQuorum || format.InitialControllers != "" || format.ClusterID != testClusterID {
		t.Fatalf("format: %+v", format)
	}
	script, err := scripts.Render(*format)
	if err != nil || !strings.Contains(string(script), "JOIN_QUORUM=1") {
		t.Errorf("rendered format script: %v\n%s", err, script)
	}
	// Formatted by Kafka with a directory id kafkaup has not recorded yet.
	f := clusterConverged(clusterSpec(3))
	f.DirectoryID = "JJJJJJJJJJJJJJJJJJJJJQ"
	if steps, err := Plan(s, f, "x"); err != nil || len(steps) != 0 {
		t.Errorf("a formatted joining node plans %v, %v", ids(steps), err)
	}
	// Recorded since: another one is refused as before.
	s.Voters[2].DirectoryID = "KKKKKKKKKKKKKKKKKKKKKQ"
	if _, err := Plan(s, f, "x"); err == nil {
		t.Error("storage of another directory id accepted")
	}
	// Only the joining node itself may lack a directory id.
	other := clusterSpec(1)
	other.Voters[2].DirectoryID = ""
	if err := other.Validate(); err == nil || !strings.Contains(err.Error(), "rerun kafkaup node replace") {
		t.Errorf("node 1's spec with node 3 mid-replacement: %v", err)
	}
}

func clusterConverged(s Spec) Facts {
	f := converged(s)
	f.ClusterID, f.NodeID = s.ClusterID, s.NodeID
	me, _ := s.Voter()
	f.DirectoryID = me.DirectoryID
	return f
}

func TestClusterRefusesAnotherClustersDataDir(t *testing.T) {
	s := clusterSpec(3)
	for name, mutate := range map[string]func(*Facts){
		"another cluster":         func(f *Facts) { f.ClusterID = "ZZZZZZZZZZZZZZZZZZZZZQ" },
		"another voter's storage": func(f *Facts) { f.DirectoryID = "DDDDDDDDDDDDDDDDDDDDDQ" },
		"another node id":         func(f *Facts) { f.NodeID = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			f := clusterConverged(s)
			mutate(&f)
			steps, err := Plan(s, f, "x")
			var pe *PlanError
			if !errors.As(err, &pe) || steps != nil {
				t.Fatalf("plan %v, err %v", ids(steps), err)
			}
			if !strings.Contains(err.Error(), "Nothing on the host was changed") || !strings.Contains(err.Error(), "will not reformat") {
				t.Errorf("message: %v", err)
			}
		})
	}
}

func TestRestartsBroker(t *testing.T) {
	s := clusterSpec(1)
	f := clusterConverged(s)
	s.HeapMB = 512
	steps, _ := Plan(s, f, "x")
	if !RestartsBroker(steps) {
		t.Errorf("a heap change on a running node: %v", ids(steps))
	}
	f.ServiceActive = false
	steps, _ = Plan(s, f, "x")
	if RestartsBroker(steps) {
		t.Error("starting a stopped broker counted as a restart")
	}
	if RestartsBroker(nil) {
		t.Error("an empty plan restarts")
	}
}

func TestInitialControllersSameOnEveryNode(t *testing.T) {
	var got []string
	for id := 1; id <= 3; id++ {
		got = append(got, clusterSpec(id).InitialControllers())
	}
	if !reflect.DeepEqual(got, []string{got[0], got[0], got[0]}) {
		t.Errorf("--initial-controllers differs between nodes: %q", got)
	}
	if testSpec().InitialControllers() != "" {
		t.Error("a single broker gets --initial-controllers")
	}
}
