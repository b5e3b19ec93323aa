package workflow

import (
	"context"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/state"
)

// TopFrame is one refresh of `kafkaup top`.
type TopFrame struct {
	Time            time.Time                `json:"time"`
	Seconds         float64                  `json:"seconds"` // since the previous sample; rates are over it
	Brokers         int                      `json:"brokers"`
	UnderReplicated int                      `json:"under_replicated"`
	Offline         int                      `json:"offline"`
	Topics          []TopTopic               `json:"topics"`
	Groups          []kafkaclient.GroupTrend `json:"groups"`
	Nodes           []TopNode                `json:"nodes"`
	Snapshot        *kafkaclient.Snapshot    `json:"-"`
}

// TopTopic is a topic's line: its records written and their rate.
type TopTopic struct {
	Name          string  `json:"name"`
	Partitions    int     `json:"partitions"`
	Records       int64   `json:"records"` // end offsets summed
	RecordsPerSec float64 `json:"records_per_sec"`
	RateKnown     bool    `json:"rate_known"`
}

// TopNode is a node's line, read on its host.
type TopNode struct {
	ID              int    `json:"id"`
	Host            string `json:"host"`
	HeapUsedBytes   int64  `json:"heap_used_bytes"`
	HeapMax         string `json:"heap_max"` // -Xmx
	RSSBytes        int64  `json:"rss_bytes"`
	SwapUsedBytes   int64  `json:"swap_used_bytes"`
	DataFreeBytes   int64  `json:"data_free_bytes"`
	UnderReplicated int    `json:"under_replicated"` // partitions it leads with too few in sync
	Error           string `json:"error,omitempty"`
}

// TopOptions is `kafkaup top NAME`.
type TopOptions struct {
	Name     string
	Interval time.Duration // between samples
	// Frames is how many frames to show (each after one interval);
	// 0 shows frames until ctx ends.
	Frames int
	Dial   DialOptions
	Show   func(TopFrame) error
}

// Top samples the cluster (over the Kafka protocol) and each node's host
// (over SSH, one connection per node kept open) every interval, and shows
// each frame with rates since the previous sample.
func Top(ctx context.Context, env Env, o TopOptions) error {
	if o.Interval <= 0 {
		return provision.Inputf("--interval must be positive")
	}
	b, err := Open(env, o.Name, 0)
	if err != nil {
		return err
	}
	kc, err := b.Kafka(ctx)
	if err != nil {
		return err
	}
	defer kc.Close()
	hosts := make([]Host, len(b.Record.Nodes))
	dialErrs := make([]error, len(hosts))
	for i := range b.Record.Nodes {
		if hosts[i], dialErrs[i] = dialNode(ctx, env, b.Record, i, o.Dial); dialErrs[i] == nil {
			defer hosts[i].Close()
		}
	}
	prev, err := kc.Snapshot(ctx)
	if err != nil {
		return err
	}
	for shown := 0; o.Frames == 0 || shown < o.Frames; shown++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
		cur, err := kc.Snapshot(ctx)
		if err != nil {
			return err
		}
		frame := topFrame(prev, cur)
		frame.Nodes = nodeStats(ctx, b.Record, hosts, dialErrs, cur)
		if err := o.Show(frame); err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

func topFrame(prev, cur *kafkaclient.Snapshot) TopFrame {
	rates := kafkaclient.Rates(prev, cur)
	f := TopFrame{Time: cur.Time, Seconds: rates.Seconds, Brokers: len(cur.Brokers), UnderReplicated: cur.UnderReplicated,
		Offline: cur.Offline, Groups: rates.Groups, Snapshot: cur, Topics: []TopTopic{}}
	for i, t := range cur.Topics {
		tt := TopTopic{Name: t.Name, Partitions: t.Partitions, Records: t.EndOffsets}
		if i < len(rates.Topics) {
			tt.RecordsPerSec, tt.RateKnown = rates.Topics[i].RecordsPerSec, rates.Topics[i].Known
		}
		f.Topics = append(f.Topics, tt)
	}
	if f.Groups == nil {
		f.Groups = []kafkaclient.GroupTrend{}
	}
	return f
}

// nodeStats reads every node's host at once.
func nodeStats(ctx context.Context, rec state.Cluster, hosts []Host, dialErrs []error, snap *kafkaclient.Snapshot) []TopNode {
	out := make([]TopNode, len(rec.Nodes))
	var wg sync.WaitGroup
	for i, n := range rec.Nodes {
		out[i] = TopNode{ID: n.ID, Host: n.Host, UnderReplicated: snap.LeaderUnderReplicated[int32(n.ID)]}
		if dialErrs[i] != nil {
			out[i].Error = "cannot log in: " + dialErrs[i].Error()
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			spec, err := state.SpecFor(rec, i)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			st, err := provision.StatusOnHost(ctx, hosts[i], spec)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].HeapUsedBytes, out[i].HeapMax, out[i].RSSBytes = st.HeapUsedBytes, st.Heap, st.RSSBytes
			out[i].SwapUsedBytes, out[i].DataFreeBytes = st.SwapUsedBytes, st.DataFreeBytes
		}(i)
	}
	wg.Wait()
	return out
}
