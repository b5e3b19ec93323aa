package harness

import (
	"context"
	"encoding/json"
	"testing"
)

// ClusterStatus is what `kafkaup status NAME --json` says of a cluster,
// as far as the end-to-end tests read it.
type ClusterStatus struct {
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	Result struct {
		Healthy  bool     `json:"healthy"`
		Problems []string `json:"problems"`
		Nodes    []struct {
			ID     int    `json:"id"`
			Host   string `json:"host"`
			SSH    bool   `json:"ssh"`
			Kafka  bool   `json:"kafka"`
			Quorum string `json:"quorum"`
			Down   bool   `json:"down"`
		} `json:"nodes"`
		Quorum struct {
			LeaderID int `json:"leader_id"`
			Voters   []struct {
				ID          int    `json:"id"`
				DirectoryID string `json:"directory_id"`
			} `json:"voters"`
		} `json:"quorum"`
		Partitions struct {
			UnderReplicated []TopicPartition `json:"under_replicated"`
			UnderMinISR     []TopicPartition `json:"under_min_isr"`
			Offline         []TopicPartition `json:"offline"`
		} `json:"partitions"`
	} `json:"result"`
}

// TopicPartition is a partition as status --json names it. (The harness
// does not import kafkaup's packages: their tests import the harness.)
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Status runs `kafkaup status NAME --json` with extra flags and reads its
// answer; the result is for the exit code and the output.
func (c *CLI) Status(ctx context.Context, t testing.TB, name string, extra ...string) (ClusterStatus, Result) {
	t.Helper()
	r := c.Run(ctx, append([]string{"status", name, "--json"}, extra...)...)
	var st ClusterStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r)
	}
	return st, r
}
