package cloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

const clusterName = "trio"

// clusterEnv is the local cloud with namespace-host instances on one
// private LAN (each at moto's private IP), and a Kafka mirror that every
// instance reaches as kafkaup-mirror on its side of its veth.
type clusterEnv struct{ *env }

func setupCluster(t *testing.T) *clusterEnv {
	if testing.Short() {
		t.Skip("end-to-end: moto, namespace hosts and real Kafka brokers (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e := &clusterEnv{}
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := kafkadist.StartMirror([]*kafkadist.Dist{dist}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mirror.Close() })
	port := mirror.Port(0)
	url := strings.Replace(mirror.URL(0, "4.0.0"), "127.0.0.1", "kafkaup-mirror", 1)
	lan, err := nshost.NewLAN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lan.Close(); err != nil {
			t.Errorf("close LAN: %v", err)
		}
	})
	var mu sync.Mutex
	listening := map[string]bool{}
	onBoot := func(ctx context.Context, h *nshost.Host) error {
		addr := fmt.Sprintf("%s:%d", h.HostSideAddr, port)
		mu.Lock()
		defer mu.Unlock()
		if !listening[addr] {
			if _, err := mirror.AddListener(addr); err != nil {
				return err
			}
			listening[addr] = true
		}
		_, err := h.Run(ctx, "sed -i '/ kafkaup-mirror$/d' /etc/hosts && echo '"+h.HostSideAddr+" kafkaup-mirror' >>/etc/hosts")
		return err
	}
	e.env = startCloud(ctx, t, localcloud.Options{Backend: localcloud.NamespaceHosts{LAN: lan, OnBoot: onBoot},
		ConsoleDelay: 2 * time.Second, Logf: t.Logf})
	e.url = url
	return e
}

// trioRecord is what the test reads of kafkaup's record.
type trioRecord struct {
	ClusterID string `json:"cluster_id"`
	Nodes     []struct {
		ID             int    `json:"id"`
		Host           string `json:"host"`
		AdvertisedHost string `json:"advertised_host"`
		InternalHost   string `json:"internal_host"`
		DirectoryID    string `json:"directory_id"`
		Rack           string `json:"rack"`
		InstanceID     string `json:"instance_id"`
	} `json:"nodes"`
}

func (e *clusterEnv) record(t *testing.T) trioRecord {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.cli.Home, "brokers", clusterName+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec trioRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Nodes) != 3 {
		t.Fatalf("record has %d nodes:\n%s", len(rec.Nodes), data)
	}
	return rec
}

func (r trioRecord) public() []string {
	var out []string
	for _, n := range r.Nodes {
		out = append(out, n.AdvertisedHost+":9092")
	}
	return out
}

// root runs cmd as root on node i's namespace host.
func (e *clusterEnv) root(t *testing.T, rec trioRecord, i int, cmd string) string {
	t.Helper()
	inst := e.lc.Instance(rec.Nodes[i].InstanceID)
	if inst == nil || inst.NamespaceHost() == nil {
		t.Fatalf("node %d's instance %s runs no namespace host", i+1, rec.Nodes[i].InstanceID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := inst.NamespaceHost().Run(ctx, cmd)
	if err != nil {
		t.Fatalf("on node %d: %v", i+1, err)
	}
	return strings.TrimSpace(out)
}

// checkBrokers: kcat -L lists the three brokers at their advertised
// addresses.
func checkBrokers(ctx context.Context, t *testing.T, rec trioRecord) {
	t.Helper()
	md, err := harness.KcatMetadata(ctx, rec.public()[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "3 brokers:") {
		t.Errorf("kcat -L:\n%s", md)
	}
	for i, addr := range rec.public() {
		if !strings.Contains(md, fmt.Sprintf("broker %d at %s", i+1, addr)) {
			t.Errorf("kcat -L does not list broker %d at %s:\n%s", i+1, addr, md)
		}
	}
}

// TestCreateClusterNamespaceHosts: `kafkaup create trio --nodes 3` on the
// local cloud launches three instances (namespace hosts) in three zones,
// which form one KRaft quorum over their private addresses; clients see
// three brokers at their public addresses, each with its zone as rack; a
// topic made by kafkaup has three replicas; the security group admits
// the cluster's own ports from itself; stop and start move the public
// addresses and the cluster serves again with its data; node 3's
// instance is terminated and node replace puts it on a new instance in
// its zone with no acknowledged record lost (replaceTerminatedNode);
// destroy leaves nothing tagged.
func TestCreateClusterNamespaceHosts(t *testing.T) {
	e := setupCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	t.Run("dry run shows three instances over three zones", func(t *testing.T) {
		r := e.cli.Run(ctx, "create", clusterName, "--nodes", "3", "--dry-run", "--allow-cidr", "127.0.0.1/32",
			"--ssh-key", e.key+".pub", "--identity", e.key, "--ami-parameter", e.amiParam)
		harness.MustSucceed(t, r)
		for _, want := range []string{"3 t3.micro instances", "node 1 in us-east-1a", "node 2 in us-east-1b", "node 3 in us-east-1c", "to itself on 9093-9094", "3 times a single broker's cost"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("dry run lacks %q:\n%s", want, r.Stdout)
			}
		}
		if found, err := e.cloud.Find(ctx, clusterName); err != nil || !found.Empty() {
			t.Fatalf("a dry run made %v (%v)", found.Lines(), err)
		}
	})
	t.Run("even node counts are refused", func(t *testing.T) {
		r := e.cli.Run(ctx, "create", clusterName, "--nodes", "2", "--yes", "--allow-cidr", "127.0.0.1/32")
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, "majority") {
			t.Errorf("--nodes 2: %s", r)
		}
	})

	t.Run("create --nodes 3", func(t *testing.T) {
		r := e.cli.Run(ctx, "create", clusterName, "--nodes", "3", "--yes", "--allow-cidr", "127.0.0.1/32",
			"--ssh-key", e.key+".pub", "--identity", e.key, "--address", "ip", "--ami-parameter", e.amiParam,
			"--kafka-url", e.url, "--swap", "0", "--no-head-start", "--console-timeout", "1m", "--json")
		harness.MustSucceed(t, r)
		t.Logf("3-node create took %s", r.Took.Round(time.Millisecond))
		for i := 1; i <= 3; i++ {
			if !strings.Contains(r.Stderr, fmt.Sprintf("(node %d in us-east-1", i)) {
				t.Errorf("no launch line for node %d:\n%s", i, r.Stderr)
			}
		}
		if strings.Contains(r.Stderr, "on first use") {
			t.Errorf("a node's host key was trusted on first use, not read from its console:\n%s", r.Stderr)
		}
		var out struct {
			OK     bool
			Result struct {
				Bootstrap string
				Nodes     []struct{ ID int }
				Verified  *struct{ Advertised []string }
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("--json output: %v\n%s", err, r.Stdout)
		}
		if !out.OK || len(out.Result.Nodes) != 3 || out.Result.Verified == nil || len(out.Result.Verified.Advertised) != 3 {
			t.Fatalf("result: %+v\n%s", out, r.Stdout)
		}
	})
	rec := e.record(t)

	t.Run("each node in its own zone at its private address", func(t *testing.T) {
		zones, privs := map[string]bool{}, map[string]bool{}
		for i, n := range rec.Nodes {
			out, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{n.InstanceID}})
			if err != nil {
				t.Fatal(err)
			}
			inst := out.Reservations[0].Instances[0]
			zone, priv := aws.ToString(inst.Placement.AvailabilityZone), aws.ToString(inst.PrivateIpAddress)
			if n.Rack != zone || n.InternalHost != priv || n.Host != aws.ToString(inst.PublicIpAddress) || !strings.HasPrefix(priv, "172.31.") {
				t.Errorf("node %d recorded %+v; EC2 says zone %s private %s public %s", i+1, n, zone, priv, aws.ToString(inst.PublicIpAddress))
			}
			zones[zone], privs[priv] = true, true
			props := e.root(t, rec, i, "cat /etc/kafka/server.properties")
			for _, want := range []string{"broker.rack=" + zone, "CONTROLLER://" + priv + ":9093", "INTERNAL://" + priv + ":9094", "PLAINTEXT://" + n.AdvertisedHost + ":9092"} {
				if !strings.Contains(props, want) {
					t.Errorf("node %d's server.properties lacks %s", i+1, want)
				}
			}
			if got := e.root(t, rec, i, "ip -4 -o addr show dev eth1"); !strings.Contains(got, priv+"/16") {
				t.Errorf("node %d's eth1: %s", i+1, got)
			}
		}
		if len(zones) != 3 || len(privs) != 3 {
			t.Errorf("zones %v, private addresses %v", zones, privs)
		}
	})

	t.Run("kcat sees three brokers at their advertised addresses", func(t *testing.T) {
		checkBrokers(ctx, t, rec)
	})

	t.Run("list shows one cluster of three instances", func(t *testing.T) {
		r := e.cli.Run(ctx, "list")
		harness.MustSucceed(t, r)
		ids := rec.Nodes[0].InstanceID + "," + rec.Nodes[1].InstanceID + "," + rec.Nodes[2].InstanceID
		if strings.Count(r.Stdout, clusterName+" ") != 1 || !strings.Contains(r.Stdout, "ec2 (3 nodes)") || !strings.Contains(r.Stdout, ids) {
			t.Errorf("list:\n%s", r.Stdout)
		}
	})

	t.Run("the quorum has three voters on the private addresses", func(t *testing.T) {
		status := e.root(t, rec, 1, "/opt/kafka/current/bin/kafka-metadata-quorum.sh --bootstrap-server "+rec.Nodes[1].InternalHost+":9094 describe --status")
		t.Logf("kafka-metadata-quorum.sh describe --status on node 2:\n%s", status)
		voters := regexp.MustCompile(`(?m)^CurrentVoters:\s*(.*)$`).FindStringSubmatch(status)
		if voters == nil {
			t.Fatalf("describe --status:\n%s", status)
		}
		var list []struct {
			ID          int      `json:"id"`
			DirectoryID string   `json:"directoryId"`
			Endpoints   []string `json:"endpoints"`
		}
		if err := json.Unmarshal([]byte(voters[1]), &list); err != nil {
			t.Fatalf("CurrentVoters %q: %v", voters[1], err)
		}
		sort.Slice(list, func(a, b int) bool { return list[a].ID < list[b].ID })
		if len(list) != 3 {
			t.Fatalf("%d voters:\n%s", len(list), status)
		}
		for i, v := range list {
			want := fmt.Sprintf("CONTROLLER://%s:9093", rec.Nodes[i].InternalHost)
			if v.ID != i+1 || len(v.Endpoints) != 1 || v.Endpoints[0] != want || v.DirectoryID != rec.Nodes[i].DirectoryID {
				t.Errorf("voter %+v, want id %d at %s with directory id %s", v, i+1, want, rec.Nodes[i].DirectoryID)
			}
		}
	})

	t.Run("each broker's rack is its zone (Kafka protocol)", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(rec.public()...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 3 {
			t.Fatalf("%d brokers", len(md.Brokers))
		}
		for _, b := range md.Brokers {
			n := rec.Nodes[b.NodeID-1]
			if b.Rack == nil || *b.Rack != n.Rack || b.Host != n.AdvertisedHost {
				t.Errorf("broker %d at %s rack %v, want %s rack %s", b.NodeID, b.Host, b.Rack, n.AdvertisedHost, n.Rack)
			}
		}
	})

	t.Run("a topic made by kafkaup has three replicas", func(t *testing.T) {
		harness.MustSucceed(t, e.cli.Run(ctx, "topics", "create", clusterName, "orders", "--partitions", "3"))
		r := e.cli.Run(ctx, "topics", "describe", clusterName, "orders")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "replication factor 3") {
			t.Errorf("topics describe:\n%s", r.Stdout)
		}
		md, err := harness.Kcat(ctx, "", "-L", "-b", rec.public()[2], "-t", "orders", "-m", "30")
		if err != nil {
			t.Fatal(err)
		}
		parts := regexp.MustCompile(`replicas: ([0-9,]+), isrs: ([0-9,]+)`).FindAllStringSubmatch(md, -1)
		if len(parts) != 3 {
			t.Errorf("kcat -L -t orders:\n%s", md)
		}
		for _, p := range parts {
			if len(strings.Split(p[1], ",")) != 3 || len(strings.Split(p[2], ",")) != 3 {
				t.Errorf("a partition without 3 replicas in sync: %s", p[0])
			}
		}
		if err := harness.KcatProduce(ctx, strings.Join(rec.public(), ","), "orders", "o1", "o2", "o3"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("the security group admits the cluster's ports from itself only", func(t *testing.T) {
		out, err := e.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + cloud.TagBroker), Values: []string{clusterName}}}})
		if err != nil || len(out.SecurityGroups) != 1 {
			t.Fatalf("security groups: %+v, %v", out, err)
		}
		sg := out.SecurityGroups[0]
		var rules []string
		for _, p := range sg.IpPermissions {
			ports := fmt.Sprintf("%d-%d", aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort))
			for _, r := range p.IpRanges {
				rules = append(rules, ports+" from "+aws.ToString(r.CidrIp))
			}
			for _, g := range p.UserIdGroupPairs {
				src := aws.ToString(g.GroupId)
				if src == aws.ToString(sg.GroupId) {
					src = "itself"
				}
				rules = append(rules, ports+" from "+src)
			}
		}
		sort.Strings(rules)
		if got := strings.Join(rules, "; "); got != "22-22 from 127.0.0.1/32; 9092-9092 from 127.0.0.1/32; 9093-9094 from itself" {
			t.Errorf("ingress: %s", got)
		}
	})

	t.Run("stop and start: brokers stopped cleanly first, new public addresses, the cluster serves again", func(t *testing.T) {
		stoppedAt := time.Now().Format("2006-01-02 15:04:05")
		r := e.cli.Run(ctx, "stop", clusterName)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "brokers of "+clusterName+" stopped on all 3 nodes at once") {
			t.Errorf("stop did not stop the brokers first:\n%s", r)
		}
		killed := strings.Contains(r.Stdout+r.Stderr, "killing it")
		t.Logf("stop took %s (a broker killed in its shutdown: %t)", r.Took.Round(time.Millisecond), killed)
		for _, n := range rec.Nodes {
			if i := e.lc.Instance(n.InstanceID); i == nil || i.Running() {
				t.Fatalf("instance %s still runs after stop", n.InstanceID)
			}
		}
		r = e.cli.Run(ctx, "start", clusterName)
		harness.MustSucceed(t, r)
		t.Logf("start took %s", r.Took.Round(time.Millisecond))
		again := e.record(t)
		for i, n := range again.Nodes {
			if n.Host == rec.Nodes[i].Host || n.AdvertisedHost != n.Host || n.InternalHost != rec.Nodes[i].InternalHost || n.DirectoryID != rec.Nodes[i].DirectoryID {
				t.Errorf("node %d after start %+v, before %+v", i+1, n, rec.Nodes[i])
			}
			if props := e.root(t, again, i, "cat /etc/kafka/server.properties"); !strings.Contains(props, "PLAINTEXT://"+n.AdvertisedHost+":9092") {
				t.Errorf("node %d still advertises its old address", i+1)
			}
			// A broker stopped in its controlled shutdown leaves a clean
			// shutdown file: the start after it recovers no logs.
			// (Unless the stop had to kill a broker stuck in it: KAFKA-19905.)
			if recovered := e.root(t, again, i, "cat /var/log/kafka/server.log* | awk -v since='["+stoppedAt+"' '$0 >= since && /no clean shutdown file/' | head -3"); recovered != "" && !killed {
				t.Errorf("node %d recovered its logs after stop and start, as after a crash:\n%s", i+1, recovered)
			}
		}
		checkBrokers(ctx, t, again)
		got, err := harness.KcatConsumeAll(ctx, again.public()[1], "orders")
		if err != nil || len(got) != 3 {
			t.Errorf("consumed after start %v, %v", got, err)
		}
		if err := harness.KcatProduce(ctx, strings.Join(again.public(), ","), "orders", "o4"); err != nil {
			t.Fatal(err)
		}
		rec = again
	})

	if t.Failed() {
		return
	}
	before := rec
	rec = e.replaceTerminatedNode(ctx, t, rec)

	t.Run("destroy leaves nothing tagged", func(t *testing.T) {
		r := e.cli.Run(ctx, "destroy", clusterName, "--yes")
		harness.MustSucceed(t, r)
		found, err := e.cloud.Find(ctx, clusterName)
		if err != nil || !found.Empty() {
			t.Fatalf("left after destroy: %v (%v)", found.Lines(), err)
		}
		for _, n := range append(rec.Nodes, before.Nodes...) {
			if i := e.lc.Instance(n.InstanceID); i != nil && i.Running() {
				t.Errorf("instance %s still runs", n.InstanceID)
			}
		}
		list, err := e.cloud.List(ctx)
		if err != nil || len(list) != 0 {
			t.Errorf("kafkaup brokers left in the region: %+v (%v)", list, err)
		}
		r = e.cli.Run(ctx, "destroy", clusterName, "--yes")
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "Nothing of broker "+clusterName+" is left") {
			t.Errorf("second destroy: %s", r)
		}
	})
}
