package nshost_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// TestStopKillsABrokerStuckInShutdown: service.sh stop on a broker that
// ignores SIGTERM (as one whose controlled shutdown waits for a quorum
// that is gone): without KILL_AFTER it gives up at STOP_TIMEOUT and the
// broker still runs; with it (a whole cluster's stop) the broker is
// killed after KILL_AFTER and the stop succeeds.
func TestStopKillsABrokerStuckInShutdown(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A stand-in broker: its command line has " kafka.Kafka " as a real
	// broker's has, and it ignores SIGTERM.
	stub := func() {
		e.sh(t, `nohup sh -c 'trap "" TERM; while :; do sleep 1; done' stub kafka.Kafka /etc/kafka/server.properties >/dev/null 2>&1 &`)
		if brokerPID(t, e) == "" {
			t.Fatal("the stand-in broker does not show as one")
		}
	}
	stop := func(killAfter int) (string, error, time.Duration) {
		script, err := scripts.Render(scripts.Service{Action: "stop", Service: "kafka", KafkaHome: "/opt/kafka/current", Config: "/etc/kafka/server.properties",
			EnvFile: "/etc/kafka/kafka.env", LogDir: "/tmp", StateDir: "/tmp", BrokerPort: 9092, StartTimeout: 30, StopTimeout: 6, KillAfter: killAfter})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := e.host.Run(ctx, "echo "+base64.StdEncoding.EncodeToString(script)+" | base64 -d >/tmp/service.sh && bash /tmp/service.sh 2>&1")
		return out, err, time.Since(start)
	}

	stub()
	out, err, took := stop(0)
	if err == nil || !strings.Contains(out, "did not stop within 6s") || brokerPID(t, e) == "" {
		t.Errorf("stop without KILL_AFTER: failed %v after %s, broker %q:\n%s", err != nil, took, brokerPID(t, e), out)
	}
	t.Logf("without KILL_AFTER: gave up after %s, the broker still runs", took.Round(100*time.Millisecond))

	out, err, took = stop(2)
	if err != nil || !strings.Contains(out, "killing it") || brokerPID(t, e) != "" || took > 6*time.Second {
		t.Errorf("stop with KILL_AFTER=2: %v after %s, broker %q:\n%s", err, took, brokerPID(t, e), out)
	}
	t.Logf("with KILL_AFTER=2: stopped in %s:\n%s", took.Round(100*time.Millisecond), out)
}
