package main

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// TestNodeUILabelsEveryLine: a cluster's nodes run at once, so each of
// their lines says which node it is about.
func TestNodeUILabelsEveryLine(t *testing.T) {
	var out bytes.Buffer
	u := newUI(&out, nil).ForNode("[node 2 10.0.0.2]")
	st := provision.Step{ID: "format", Title: "format KRaft storage", Reason: "no meta.properties yet"}
	u.StepStarted(st)
	u.StepDone(st, 1500*time.Millisecond, nil)
	u.Printf("waits for another node")
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(line, "[node 2 10.0.0.2]") {
			t.Errorf("unlabelled line %q", line)
		}
	}
	if !strings.Contains(out.String(), "-> format") || !strings.Contains(out.String(), "ok     format") {
		t.Errorf("step lines: %q", out.String())
	}
}

func TestPrintClusterResult(t *testing.T) {
	converged := &provision.Result{Host: "a", Facts: provision.Facts{OSID: "debian"}, Warnings: []string{"no systemd"}}
	changed := &provision.Result{Host: "b", Facts: provision.Facts{OSID: "debian"}, Plan: []provision.PlannedStep{{ID: "config"}},
		Applied: []provision.StepResult{{ID: "config"}, {ID: "service"}}, Warnings: []string{"no systemd"}}
	co := clusterOutput{Name: "trio", Bootstrap: "a:9092,b:9092", ClusterID: "id",
		Nodes: []nodeOutput{{ID: 1, Result: converged}, {ID: 2, Result: changed}}}
	spec := provision.DefaultSpec()
	var w bytes.Buffer
	printClusterResult(&w, co, spec, nil)
	got := w.String()
	for _, want := range []string{"node 1 (a) was already as specified: nothing changed.\n", "Applied on node 2 (b): config, service\n",
		"Kafka 4.0.0 is running on 2 nodes", "Topics get 2 replicas by default, and an acks=all write needs 1 in sync.", "Bootstrap servers: a:9092,b:9092"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "warning: no systemd") != 1 {
		t.Errorf("the same warning for every node:\n%s", got)
	}
	w.Reset()
	printClusterResult(&w, co, spec, errors.New("node 2 failed"))
	if strings.Contains(w.String(), "is running") {
		t.Errorf("a failed run says the cluster runs:\n%s", w.String())
	}
}

// TestClusterStatusOutput: a row per node (the dead one marked DOWN), the
// voters with their lag, the partition counts and the problems.
func TestClusterStatusOutput(t *testing.T) {
	up := &provision.HostStatus{ServiceState: "active", BrokerPID: 7, KafkaVersion: "4.0.0", Heap: "400m", DataUsedBytes: 2 << 20, DataFreeBytes: 10 << 30}
	st := &workflow.Status{Name: "trio", Bootstrap: "a:9092,b:9092,c:9092", Security: "PLAINTEXT",
		Cluster: &kafkaclient.ClusterInfo{ClusterID: "cid", Topics: 2, Partitions: 6},
		Nodes: []workflow.NodeStatus{
			{ID: 1, Host: "a", SSH: true, Kafka: true, Roles: "broker,controller", Quorum: "leader", OnHost: up},
			{ID: 2, Host: "b", SSH: true, Kafka: true, Roles: "broker,controller", Quorum: "follower", OnHost: up},
			{ID: 3, Host: "c", Roles: "broker,controller", Quorum: "follower", Down: true},
		},
		Quorum: &kafkaclient.Quorum{LeaderID: 1, LeaderEpoch: 4, HighWatermark: 812, Voters: []kafkaclient.QuorumReplica{
			{ID: 1, DirectoryID: "d1", LastCaughtUpAgo: 0}, {ID: 2, DirectoryID: "d2", Lag: 3, LastCaughtUpAgo: 120 * time.Millisecond},
			{ID: 3, DirectoryID: "d3", Lag: 400, LastCaughtUpAgo: -1}}},
		Partitions: &kafkaclient.PartitionHealth{UnderReplicated: make([]kafkaclient.TopicPartition, 6)},
		Problems:   []string{"node 3 (c) is down: ..."},
	}
	var out bytes.Buffer
	printClusterStatus(&out, st)
	for _, re := range []string{
		`cluster +trio \(UNHEALTHY\), 3 nodes\n`,
		`\n1 +a +yes +yes +broker,controller +leader +4\.0\.0 +400m +0K / 0K +2M / 10G\n`,
		`\n3 +c \(DOWN\) +no +no +broker,controller +follower +- +- +- +-\n`,
		`quorum: leader node 1, epoch 4, high watermark 812\n`,
		`\n1 +d1 +0 +\(leader\)\n2 +d2 +3 +120ms ago\n3 +d3 +400 +unknown\n`,
		`partitions: 6 under-replicated, 0 under min ISR, 0 offline\nproblem: node 3 \(c\) is down`,
	} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("no match for %s in:\n%s", re, out.String())
		}
	}
}
