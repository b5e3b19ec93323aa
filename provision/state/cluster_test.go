package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/security"
)

func TestSaveLoadListDelete(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	c := Cluster{Name: "dev", Spec: SharedSpec{Heap: "400m", BrokerPort: 9092},
		Nodes: []Node{{ID: 1, Host: "203.0.113.10", Port: 22, User: "ubuntu", AdvertisedHost: "203.0.113.10"}}}
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(st.Dir, "brokers", "dev.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v, %v", info.Mode(), err)
	}
	got, err := st.Load("dev")
	if err != nil || got.Nodes[0].Host != "203.0.113.10" || got.Created.IsZero() || got.Format != Format {
		t.Fatalf("load: %+v, %v", got, err)
	}
	if got.Bootstrap() != "203.0.113.10:9092" {
		t.Errorf("bootstrap %s", got.Bootstrap())
	}
	created := got.Created
	got.Spec.Heap = "512m"
	if err := st.Save(got); err != nil {
		t.Fatal(err)
	}
	again, _ := st.Load("dev")
	if !again.Created.Equal(created) || again.Spec.Heap != "512m" {
		t.Errorf("update lost fields: %+v", again)
	}
	st.Save(Cluster{Name: "another"})
	all, err := st.List()
	if err != nil || len(all) != 2 || all[0].Name != "another" {
		t.Fatalf("list: %v %v", all, err)
	}
	if err := st.Delete("dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load("dev"); !errors.Is(err, ErrNoBroker) {
		t.Errorf("after delete: %v", err)
	}
}

func TestNameRule(t *testing.T) {
	for _, ok := range []string{"a", "dev", "kafka-1", strings.Repeat("a", 40)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1a", "Dev", "a_b", "a-", strings.Repeat("a", 41), "../etc"} {
		if ValidateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for host, want := range map[string]string{"10.0.0.5": "host-10-0-0-5", "Kafka.Example.com": "kafka-example-com",
		strings.Repeat("ab-", 20): "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-a", "host-" + strings.Repeat("b", 34) + "-x": "host-" + strings.Repeat("b", 34)} {
		got := NameForHost(host)
		if got != want || ValidateName(got) != nil {
			t.Errorf("NameForHost(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestMigrateV1 reads records as the release before clusters wrote them:
// each becomes a cluster of one node, and saving writes the new format.
func TestMigrateV1(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for _, f := range []string{"broker-v1-ec2.json", "broker-v1-host.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(f, ".json")
		name = map[string]string{"broker-v1-ec2": "demo", "broker-v1-host": "host-10-0-0-5"}[name]
		os.MkdirAll(filepath.Join(st.Dir, "brokers"), 0o700)
		os.WriteFile(filepath.Join(st.Dir, "brokers", name+".json"), data, 0o600)
	}
	ec2, err := st.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Format: Format, Name: "demo", ClusterID: "MkU3OEVBNTcwNTJENDM2Qk",
		Spec: SharedSpec{KafkaVersion: "4.0.0", KafkaURL: "http://10.0.2.2:41234/kafka/4.0.0/kafka_2.13-4.0.0.tgz",
			KafkaSHA512: "00722ab0a6b954e0006994b8d589dcd8f26e1827c47f70b6e820fb45aa35945c19163b0f188caf0caf976c11f7ab005fd368c54e5851e899d2de687a804a5eb9",
			Heap:        "512m", Swap: "0", DataDir: "/var/lib/kafka/data", BrokerPort: 9092, Security: security.Mode{TLS: true, SCRAM: true}},
		Nodes: []Node{{ID: 1, Host: "127.0.0.2", Port: 22, User: "ubuntu", Identity: "/home/dev/.local/state/kafkaup/keys/demo",
			AdvertisedHost: "ec2-127-0-0-2.compute-1.amazonaws.com", Systemd: true, InstanceID: "i-0123456789abcdef0", EIPAllocationID: "eipalloc-12345678"}},
		EC2:     &EC2{Region: "us-east-1", AddressKind: "dns"},
		Created: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), Updated: time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(ec2, want) {
		t.Errorf("migrated EC2 record:\n got %+v\nwant %+v", ec2, want)
	}
	spec, err := SpecFor(ec2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if spec.SwapBytes != 0 || spec.Source.URL == "" || spec.Source.SHA512 == "" || spec.HeapMB != 512 || !spec.Security.TLS || !spec.Security.SCRAM || spec.NodeID != 1 {
		t.Errorf("spec of the migrated record: %+v", spec)
	}
	host, err := st.Load("host-10-0-0-5")
	if err != nil {
		t.Fatal(err)
	}
	if host.EC2 != nil || len(host.Nodes) != 1 || host.Nodes[0].Port != 2222 || host.Spec.Security.Secured() || host.Bootstrap() != "kafka.example.com:9092" {
		t.Errorf("migrated host record: %+v", host)
	}
	if err := st.Save(host); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(st.Dir, "brokers", "host-10-0-0-5.json"))
	if !strings.Contains(string(raw), `"format": 2`) || !strings.Contains(string(raw), `"nodes"`) {
		t.Errorf("saved record is not in the new format:\n%s", raw)
	}
	if again, _ := st.Load("host-10-0-0-5"); !reflect.DeepEqual(again.Spec, host.Spec) || !reflect.DeepEqual(again.Nodes, host.Nodes) {
		t.Errorf("reload after migration changed the record: %+v", again)
	}
}

func TestNewerFormatRefused(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	os.MkdirAll(filepath.Join(st.Dir, "brokers"), 0o700)
	os.WriteFile(filepath.Join(st.Dir, "brokers", "x.json"), []byte(`{"format": 99, "name": "x"}`), 0o600)
	if _, err := st.Load("x"); err == nil || !strings.Contains(err.Error(), "upgrade kafkaup") {
		t.Errorf("newer format: %v", err)
	}
}

// TestCodecRoundTrip: every recorded field goes into the Spec and comes
// back out unchanged, and every field of the Spec that a record keeps
// survives the way back. A field added to SharedSpec or Node without
// codec support fails here (the fixture sets every field to a non-zero
// value, checked by reflection).
func TestCodecRoundTrip(t *testing.T) {
	rec := Cluster{Name: "dev",
		Spec: SharedSpec{KafkaVersion: "4.0.1", KafkaURL: "https://mirror.example/kafka_2.13-4.0.1.tgz", KafkaSHA512: strings.Repeat("ab", 64),
			Heap: "768m", Swap: "512M", DataDir: "/srv/kafka", BrokerPort: 19092, Security: security.Mode{TLS: true, SCRAM: true},
			Metrics: Metrics{Enabled: true, Port: 19404, AgentVersion: "1.0.1", AgentURL: "http://m/jmx_prometheus_javaagent-1.0.1.jar", AgentSHA256: strings.Repeat("cd", 32)}},
		Nodes: []Node{{ID: 3, AdvertisedHost: "k3.example.com"}}}
	assertAllSet(t, "SharedSpec", reflect.ValueOf(rec.Spec))
	assertAllSet(t, "Metrics", reflect.ValueOf(rec.Spec.Metrics))
	spec, err := SpecFor(rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	back := Cluster{Name: "dev", Nodes: []Node{{}}}
	Remember(&back, 0, spec)
	if !reflect.DeepEqual(back.Spec, rec.Spec) || back.Nodes[0].ID != 3 || back.Nodes[0].AdvertisedHost != "k3.example.com" {
		t.Errorf("record → spec → record:\n got %+v %+v\nwant %+v %+v", back.Spec, back.Nodes[0], rec.Spec, rec.Nodes[0])
	}
	again, _ := SpecFor(back, 0)
	if !reflect.DeepEqual(again, spec) {
		t.Errorf("spec → record → spec:\n got %+v\nwant %+v", again, spec)
	}
	// Swap sizes the record spells differently come back as the same size.
	for _, swap := range []string{"0", "64M", "1536M", "2G", "1.5G"} {
		b, err := provision.ParseSize(swap)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := provision.ParseSize(sizeString(b)); got != b {
			t.Errorf("swap %s: %s reads back as %d, want %d", swap, sizeString(b), got, b)
		}
	}
}

func assertAllSet(t *testing.T, what string, v reflect.Value) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Errorf("the %s fixture leaves %s unset: set it so the round trip covers it", what, v.Type().Field(i).Name)
		}
	}
}

// TestStartKeepsRecordedSource is the regression test for `kafkaup start`
// on a --swap 0 broker installed from a mirror: the spec it converges to
// must keep no swap and the mirror, not fall back to the defaults.
func TestStartKeepsRecordedSource(t *testing.T) {
	rec := Cluster{Name: "dev", Spec: SharedSpec{KafkaVersion: "4.0.0", KafkaURL: "http://10.0.2.2:8080/kafka_2.13-4.0.0.tgz",
		KafkaSHA512: strings.Repeat("0", 128), Heap: "400m", Swap: "0", DataDir: "/var/lib/kafka/data", BrokerPort: 9092},
		Nodes: []Node{{ID: 1, AdvertisedHost: "127.0.0.2"}}}
	newIP := "127.0.0.3"
	spec, err := Overrides{AdvertisedHost: &newIP}.Apply(rec, 0, "127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	if spec.SwapBytes != 0 || spec.Source.URL != rec.Spec.KafkaURL || spec.Source.SHA512 != rec.Spec.KafkaSHA512 || spec.AdvertisedHost != newIP {
		t.Errorf("start's spec: swap %d, source %+v, advertised %s", spec.SwapBytes, spec.Source, spec.AdvertisedHost)
	}
	Remember(&rec, 0, spec)
	if rec.Spec.Swap != "0" || rec.Spec.KafkaURL == "" {
		t.Errorf("record after start: %+v", rec.Spec)
	}
}

func TestOverrides(t *testing.T) {
	rec := Cluster{Name: "dev", Spec: SharedSpec{KafkaVersion: "4.0.0", KafkaURL: "http://m/4.0.0/kafka_2.13-4.0.0.tgz",
		KafkaSHA512: strings.Repeat("0", 128), Heap: "400m", Swap: "2G", BrokerPort: 9092}, Nodes: []Node{{ID: 1, AdvertisedHost: "h"}}}
	str := func(s string) *string { return &s }
	yes := true
	cases := []struct {
		name  string
		o     Overrides
		check func(provision.Spec) bool
		bad   string
	}{
		{"nothing given keeps the record", Overrides{}, func(s provision.Spec) bool {
			return s.HeapMB == 400 && s.SwapBytes == 2<<30 && s.AdvertisedHost == "h" && s.Source.URL == rec.Spec.KafkaURL
		}, ""},
		{"new heap", Overrides{Heap: str("512m")}, func(s provision.Spec) bool { return s.HeapMB == 512 }, ""},
		{"new version follows the mirror and drops the digest", Overrides{KafkaVersion: str("4.0.1")}, func(s provision.Spec) bool {
			return s.Source.URL == "http://m/4.0.1/kafka_2.13-4.0.1.tgz" && s.Source.SHA512 == ""
		}, ""},
		{"security on", Overrides{TLS: &yes, Auth: str("scram")}, func(s provision.Spec) bool { return s.Security.TLS && s.Security.SCRAM }, ""},
		{"tarball replaces the mirror", Overrides{KafkaTarball: "/tmp/kafka_2.13-4.0.0.tgz"}, func(s provision.Spec) bool {
			return s.Source.URL == "" && s.Source.LocalTarball != ""
		}, ""},
		{"bad heap", Overrides{Heap: str("lots")}, nil, "--heap"},
		{"bad auth", Overrides{Auth: str("ldap")}, nil, "use none or scram"},
		{"url and tarball", Overrides{KafkaURL: str("https://m/kafka_2.13-4.0.0.tgz"), KafkaTarball: "/x/kafka_2.13-4.0.0.tgz"}, nil, "choose one"},
		{"data in /tmp", Overrides{DataDir: str("/tmp/k")}, nil, "/tmp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.o.Apply(rec, 0, "ssh-host")
			var input *provision.InputError
			switch {
			case tc.bad != "" && (err == nil || !errors.As(err, &input) || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("want an input error with %q, got %v", tc.bad, err)
			case tc.bad == "" && err != nil:
				t.Fatal(err)
			case tc.bad == "" && !tc.check(s):
				t.Errorf("spec %+v", s)
			}
		})
	}
	// A new node of a new cluster: defaults, advertised at the SSH host.
	s, err := Overrides{}.Apply(Cluster{Name: "new"}, 0, "10.0.0.9")
	if err != nil || s.AdvertisedHost != "10.0.0.9" || s.NodeID != 1 || s.HeapMB != provision.DefaultHeapMB {
		t.Errorf("new cluster: %+v %v", s, err)
	}
}

// TestCodecRoundTripCluster: a cluster's node fields (internal address,
// directory id, rack) and its id go into every node's Spec and come back.
func TestCodecRoundTripCluster(t *testing.T) {
	rec := Cluster{Name: "trio", ClusterID: "MkU3OEVBNTcwNTJENDM2Qg",
		Spec: SharedSpec{KafkaVersion: "4.0.0", Heap: "400m", Swap: "0", DataDir: "/var/lib/kafka/data", BrokerPort: 9092}}
	for i, dir := range []string{"AAAAAAAAAAAAAAAAAAAAAQ", "BBBBBBBBBBBBBBBBBBBBBQ", "CCCCCCCCCCCCCCCCCCCCCQ"} {
		n := rec.Node(i)
		n.Host = "203.0.113." + string(rune('1'+i))
		n.AdvertisedHost, n.InternalHost, n.DirectoryID, n.Rack = n.Host, "10.0.0."+string(rune('1'+i)), dir, "az-"+string(rune('a'+i))
	}
	back := Cluster{Name: "trio", Nodes: make([]Node, 3)}
	for i := range rec.Nodes {
		spec, err := SpecFor(rec, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := spec.Validate(); err != nil {
			t.Fatalf("node %d's spec: %v", i+1, err)
		}
		if len(spec.Voters) != 3 || spec.Voters[2].Host != "10.0.0.3" || spec.InternalHost != rec.Nodes[i].InternalHost || spec.ClusterID != rec.ClusterID {
			t.Errorf("node %d's spec: %+v", i+1, spec)
		}
		back.Nodes[i].Host = rec.Nodes[i].Host
		Remember(&back, i, spec)
	}
	if !reflect.DeepEqual(back.Nodes, rec.Nodes) || back.ClusterID != rec.ClusterID {
		t.Errorf("record → spec → record:\n got %+v %s\nwant %+v %s", back.Nodes, back.ClusterID, rec.Nodes, rec.ClusterID)
	}
	// No internal address recorded: the SSH address.
	rec.Nodes[1].InternalHost = ""
	if spec, _ := SpecFor(rec, 1); spec.InternalHost != "203.0.113.2" || spec.Voters[1].Host != "203.0.113.2" {
		t.Errorf("default internal address: %s, voters %+v", spec.InternalHost, spec.Voters)
	}
	// One node: no voters, no internal address.
	one := Cluster{Name: "one", Nodes: []Node{{ID: 1, Host: "h", AdvertisedHost: "h"}}}
	if spec, _ := SpecFor(one, 0); spec.Clustered() || spec.InternalHost != "" || spec.Voters != nil {
		t.Errorf("single broker's spec: %+v", spec)
	}
}

// TestRecordKeepsEveryField: every field of a cluster, its nodes and its
// EC2 part survives Save and Load (the fixture sets each to a non-zero
// value, checked by reflection, so a new field is covered or this fails).
func TestRecordKeepsEveryField(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	node := Node{ID: 2, Host: "203.0.113.10", Port: 2222, User: "ubuntu", Identity: "/keys/dev",
		AdvertisedHost: "kafka.example.com", Systemd: true, InstanceID: "i-0123456789abcdef0", EIPAllocationID: "eipalloc-1",
		InternalHost: "10.0.0.2", DirectoryID: "BBBBBBBBBBBBBBBBBBBBBQ", ReplacedDirectoryID: "AAAAAAAAAAAAAAAAAAAAAQ", Rack: "eu-west-1b",
		Replacements: 2, ReplacedInstanceID: "i-0fedcba9876543210",
		HostKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFFcXXktwI4lNqxGSmk4AwZVU9dEdETDC7b6oTFnxl0"}}
	ec2 := EC2{Region: "eu-west-1", AddressKind: "ip", AllowCIDRs: []string{"203.0.113.7/32", "198.51.100.0/24"}}
	assertAllSet(t, "Node", reflect.ValueOf(node))
	assertAllSet(t, "EC2", reflect.ValueOf(ec2))
	c := Cluster{Name: "dev", Spec: SharedSpec{Heap: "400m", BrokerPort: 9092}, Nodes: []Node{node}, ClusterID: "abc", EC2: &ec2}
	if err := st.Save(c); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load("dev")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Nodes, c.Nodes) || !reflect.DeepEqual(*got.EC2, ec2) {
		t.Errorf("after save and load:\n got %+v %+v\nwant %+v %+v", got.Nodes, *got.EC2, c.Nodes, ec2)
	}
	keys, err := got.Nodes[0].PublicHostKeys()
	if err != nil || len(keys) != 1 || keys[0].Type() != "ssh-ed25519" {
		t.Fatalf("host keys %v, %v", keys, err)
	}
	var back Node
	back.SetHostKeys(keys)
	if !reflect.DeepEqual(back.HostKeys, node.HostKeys) {
		t.Errorf("SetHostKeys(PublicHostKeys()) = %q, want %q", back.HostKeys, node.HostKeys)
	}
	bad := Node{ID: 1, HostKeys: []string{"ssh-ed25519 AAAA!!"}}
	if _, err := bad.PublicHostKeys(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged host key: %v", err)
	}
}

// TestLoadRecordWithoutKeysOrCIDRs: a record written before host keys and
// allowed CIDRs were kept loads with neither (kafkaup then reads the
// console or pins on first use, and looks up the caller's IP, as before).
func TestLoadRecordWithoutKeysOrCIDRs(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	data, err := os.ReadFile(filepath.Join("testdata", "cluster-v2-no-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(st.Dir, "brokers"), 0o700)
	os.WriteFile(filepath.Join(st.Dir, "brokers", "demo.json"), data, 0o600)
	c, err := st.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	if c.EC2 == nil || c.EC2.AllowCIDRs != nil || c.Nodes[0].HostKeys != nil || c.Nodes[0].InstanceID == "" {
		t.Errorf("record: %+v %+v", c.EC2, c.Nodes)
	}
	if keys, err := c.Nodes[0].PublicHostKeys(); keys != nil || err != nil {
		t.Errorf("no recorded keys: %v %v", keys, err)
	}
	// The release before clusters had neither: migrated records have none.
	for _, f := range []string{"broker-v1-ec2.json"} {
		data, _ := os.ReadFile(filepath.Join("testdata", f))
		os.WriteFile(filepath.Join(st.Dir, "brokers", "v1.json"), data, 0o600)
		c, err := st.Load("v1")
		if err != nil || c.EC2.AllowCIDRs != nil || c.Nodes[0].HostKeys != nil {
			t.Errorf("migrated %s: %+v %+v %v", f, c.EC2, c.Nodes, err)
		}
	}
}
