package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// TestStatusShowsRestarts: a broker systemd had to bring back is healthy,
// and status says it was restarted and where to look for why.
func TestStatusShowsRestarts(t *testing.T) {
	st := &workflow.Status{Name: "b1", Bootstrap: "b1.example.com:9092", Healthy: true,
		OnHost: &provision.HostStatus{Systemd: true, ServiceState: "active", ServiceEnabled: "enabled", BrokerPID: 42, Restarts: 1}}
	var out bytes.Buffer
	printStatus(&out, st)
	if !regexp.MustCompile(`\nrestarts +1 \(systemd brought the broker back after it stopped; kafkaup logs b1 shows why\)\n`).MatchString(out.String()) {
		t.Errorf("status:\n%s", out.String())
	}
	st.OnHost.Restarts = 0
	out.Reset()
	printStatus(&out, st)
	if strings.Contains(out.String(), "\nrestarts") {
		t.Errorf("restarts shown when there were none:\n%s", out.String())
	}
}
