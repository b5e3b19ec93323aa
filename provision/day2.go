package provision

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// HostStatus is the broker's health as seen on its host.
type HostStatus struct {
	Systemd        bool          `json:"systemd"`
	ServiceState   string        `json:"service_state"` // active, inactive, failed, activating...
	ServiceEnabled string        `json:"service_enabled"`
	Restarts       int           `json:"restarts"` // automatic restarts by systemd since the service started
	BrokerPID      int           `json:"broker_pid"`
	Heap           string        `json:"heap,omitempty"`  // the running JVM's -Xmx
	HeapUsedBytes  int64         `json:"heap_used_bytes"` // from the JVM's hsperfdata; 0 when unknown
	Uptime         time.Duration `json:"-"`
	UptimeSeconds  int64         `json:"uptime_seconds"`
	RSSBytes       int64         `json:"rss_bytes"`
	KafkaVersion   string        `json:"kafka_version"`
	SwapTotalBytes int64         `json:"swap_total_bytes"`
	SwapUsedBytes  int64         `json:"swap_used_bytes"`
	MemAvailable   int64         `json:"mem_available_bytes"`
	DataFreeBytes  int64         `json:"data_free_bytes"`
	DataUsedBytes  int64         `json:"data_used_bytes"`
	ClusterID      string        `json:"cluster_id,omitempty"`
}

// Running tells whether the broker process is up.
func (h HostStatus) Running() bool { return h.ServiceState == "active" && h.BrokerPID > 0 }

// StatusOnHost runs status.sh and parses it.
func StatusOnHost(ctx context.Context, h Host, s Spec) (*HostStatus, error) {
	script, err := scripts.Render(scripts.Status{Service: s.Service, InstallDir: s.InstallDir, DataDir: s.DataDir})
	if err != nil {
		return nil, err
	}
	out, err := h.RunScript(ctx, "status", script)
	if err != nil {
		return nil, fmt.Errorf("read the broker's status on the host: %w", err)
	}
	kv, err := parseKV(out)
	if err != nil {
		return nil, err
	}
	var errs []string
	num := kv.num(&errs)
	st := &HostStatus{
		Systemd: kv.flag("systemd"), ServiceState: kv["service_state"], ServiceEnabled: kv["service_enabled"],
		Restarts: int(num("restarts")), BrokerPID: int(num("broker_pid")), Heap: kv["heap"],
		UptimeSeconds: num("uptime_seconds"), RSSBytes: num("rss_bytes"), KafkaVersion: kv["kafka_version"],
		SwapTotalBytes: num("swap_total_bytes"), SwapUsedBytes: num("swap_used_bytes"), MemAvailable: num("mem_available_bytes"),
		DataFreeBytes: num("data_free_bytes"), DataUsedBytes: num("data_used_bytes"), ClusterID: kv["cluster_id"],
	}
	st.Uptime = time.Duration(st.UptimeSeconds) * time.Second
	if perf := kv["hsperfdata"]; perf != "" {
		if data, err := base64.StdEncoding.DecodeString(perf); err == nil {
			if heap, err := ParseHSPerfData(data); err == nil {
				st.HeapUsedBytes = heap.UsedBytes
			}
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("status: unreadable values %s", strings.Join(errs, ", "))
	}
	return st, nil
}

// ControlBroker starts, stops or restarts the broker and waits until it is
// really up (or gone).
func ControlBroker(ctx context.Context, h Host, s Spec, action string) error {
	return controlBroker(ctx, h, s, action, 0)
}

// StopBrokerOfCluster stops the broker as part of a whole cluster going
// down at once: a broker still in its controlled shutdown after
// killAfter waits for a controller quorum that has gone with the other
// nodes (Kafka gives up after 5 minutes), and is killed; its files stay
// intact and it recovers its logs at the next start.
func StopBrokerOfCluster(ctx context.Context, h Host, s Spec, killAfter time.Duration) error {
	return controlBroker(ctx, h, s, "stop", int(killAfter.Seconds()))
}

func controlBroker(ctx context.Context, h Host, s Spec, action string, killAfter int) error {
	switch action {
	case "start", "stop", "restart":
	default:
		return fmt.Errorf("unknown broker action %q: use start, stop or restart", action)
	}
	script, err := scripts.Render(scripts.Service{Action: action, Service: s.Service, KafkaHome: s.KafkaHome(), Config: s.ConfigFile(),
		EnvFile: s.EnvFile(), LogDir: s.LogDir, StateDir: s.StateDir, BrokerPort: s.BrokerPort, StartTimeout: StartTimeout, StopTimeout: StopTimeout,
		KillAfter: killAfter})
	if err != nil {
		return err
	}
	if _, err := h.RunScript(ctx, "broker "+action, script); err != nil {
		return fmt.Errorf("broker %s: %w", action, err)
	}
	return nil
}

// LogsScript renders the script that prints or streams the broker's log.
func LogsScript(s Spec, lines int, follow bool) ([]byte, error) {
	return scripts.Render(scripts.Logs{Service: s.Service, LogDir: s.LogDir, Lines: lines, Follow: follow})
}

// TopicsOnHost runs kafka-topics.sh on the host for one action and returns
// its output (the --via-ssh path of kafkaup topics).
func TopicsOnHost(ctx context.Context, h Host, s Spec, in scripts.Topics) ([]byte, error) {
	in.KafkaHome = s.KafkaHome()
	in.Bootstrap = s.LocalBootstrap()
	script, err := scripts.Render(in)
	if err != nil {
		return nil, err
	}
	out, err := h.RunScript(ctx, "topics "+in.Action, script)
	if err != nil {
		return out, fmt.Errorf("kafka-topics.sh --%s on the host: %w", in.Action, err)
	}
	return out, nil
}
