package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision"
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
