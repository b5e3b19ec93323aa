package kafkaclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the cluster at one moment, for `kafkaup top`. Two snapshots
// a few seconds apart give rates: see Rates.
type Snapshot struct {
	// Time is when the end offsets were read (the middle of that
	// request), the clock Rates divides by.
	Time    time.Time      `json:"time"`
	Brokers []BrokerInfo   `json:"brokers"`
	Topics  []TopicStat    `json:"topics"` // without internal topics, by name
	Groups  []GroupSummary `json:"groups"` // by name
	// UnderReplicated counts partitions whose in-sync replicas are fewer
	// than their replicas, and Offline those with no leader, over every
	// topic, internal ones included.
	UnderReplicated int `json:"under_replicated"`
	Offline         int `json:"offline"`
	// LeaderUnderReplicated counts, per leader's node id, the
	// under-replicated partitions it leads: what the broker's own
	// UnderReplicatedPartitions metric reports.
	LeaderUnderReplicated map[int32]int `json:"leader_under_replicated"`
}

// TopicStat is one topic in a Snapshot.
type TopicStat struct {
	Name string `json:"name"`
	// ID tells a topic from one deleted and created again under the same
	// name between two snapshots.
	ID         string `json:"id"`
	Partitions int    `json:"partitions"`
	// EndOffsets is the sum of the partitions' end offsets: how many
	// records were ever written to the topic.
	EndOffsets int64 `json:"end_offsets"`
	// Unknown counts partitions whose end offset could not be read (no
	// leader, broker down); EndOffsets leaves them out.
	Unknown         int `json:"unknown,omitempty"`
	UnderReplicated int `json:"under_replicated"`
	Offline         int `json:"offline"`
}

// Snapshot reads the cluster's brokers, topics (end offsets, partition
// health) and consumer groups (state, lag) at one moment.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	meta, err := c.metadata(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ask %s for cluster metadata: %w", c.bootstrap, err)
	}
	snap := &Snapshot{Brokers: []BrokerInfo{}, Topics: []TopicStat{}, LeaderUnderReplicated: map[int32]int{}}
	for _, b := range meta.Brokers {
		bi := BrokerInfo{ID: b.NodeID, Addr: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		snap.Brokers = append(snap.Brokers, bi)
	}
	slices.SortFunc(snap.Brokers, func(a, b BrokerInfo) int { return int(a.ID - b.ID) })

	visible := map[string]bool{}
	partitions := map[string][]int32{}
	for _, t := range meta.Topics {
		if t.Topic == nil {
			continue
		}
		st := TopicStat{Name: *t.Topic, Partitions: len(t.Partitions)}
		if t.TopicID != [16]byte{} {
			st.ID = base64.RawURLEncoding.EncodeToString(t.TopicID[:])
		}
		for _, p := range t.Partitions {
			if len(p.ISR) < len(p.Replicas) {
				st.UnderReplicated++
				if p.Leader >= 0 {
					snap.LeaderUnderReplicated[p.Leader]++
				}
			}
			if p.Leader < 0 {
				st.Offline++
			}
		}
		snap.UnderReplicated += st.UnderReplicated
		snap.Offline += st.Offline
		if !hidden(*t.Topic, t.IsInternal) {
			visible[*t.Topic] = true
			snap.Topics = append(snap.Topics, st)
			for _, p := range t.Partitions {
				partitions[*t.Topic] = append(partitions[*t.Topic], p.Partition)
			}
		}
	}

	// The groups' committed offsets first, then the end offsets: read in
	// that order, a lag is never smaller than it was.
	loaded, others, err := c.loadAllGroups(ctx)
	if err != nil {
		return nil, err
	}
	for _, lg := range loaded {
		for t := range lg.topics {
			visible[t] = true
		}
	}
	before := time.Now()
	ends, err := c.listOffsets(ctx, "end", c.adm.ListEndOffsets, visible)
	if err != nil {
		return nil, err
	}
	snap.Time = before.Add(time.Since(before) / 2)

	for i := range snap.Topics {
		st := &snap.Topics[i]
		for _, p := range partitions[st.Name] {
			if end, err := lookupOffset(ends, tp{st.Name, p}); err != nil {
				st.Unknown++
			} else {
				st.EndOffsets += end
			}
		}
	}
	slices.SortFunc(snap.Topics, func(a, b TopicStat) int { return strings.Compare(a.Name, b.Name) })

	starts, ends, err := c.lagOffsets(ctx, loaded, ends)
	if err != nil {
		return nil, err
	}
	snap.Groups = others
	for _, lg := range loaded {
		info := lg.withLag(starts, ends)
		snap.Groups = append(snap.Groups, info.Summary())
	}
	slices.SortFunc(snap.Groups, func(a, b GroupSummary) int { return strings.Compare(a.Name, b.Name) })
	return snap, nil
}

// RateReport is what changed between two snapshots.
type RateReport struct {
	Seconds float64      `json:"seconds"` // between the snapshots; 0 when there was none before
	Topics  []TopicRate  `json:"topics"`  // the current snapshot's topics, in its order
	Groups  []GroupTrend `json:"groups"`  // the current snapshot's groups, in its order
}

// TopicRate is how fast records are written to a topic.
type TopicRate struct {
	Name          string  `json:"name"`
	RecordsPerSec float64 `json:"records_per_sec"`
	// Known is false when there is nothing to compare with: the first
	// snapshot, a topic new (or created again) since the previous one, or
	// an end offset that could not be read in either.
	Known bool `json:"known"`
}

// GroupTrend is how a group's lag moves.
type GroupTrend struct {
	Name string `json:"name"`
	Lag  int64  `json:"lag"` // in the current snapshot
	// LagPerSec is the change of the lag per second: above zero the
	// group falls behind its producers, below zero it catches up.
	LagPerSec float64 `json:"lag_per_sec"`
	Known     bool    `json:"known"` // as TopicRate.Known, for the group's lag
}

// Rates compares two snapshots of the same cluster, prev taken before cur:
// records written per second to each topic (from the growth of its end
// offsets) and the change of each group's lag per second. prev may be nil
// (the first frame of a live view): every rate is then unknown.
func Rates(prev, cur *Snapshot) RateReport {
	r := RateReport{Topics: []TopicRate{}, Groups: []GroupTrend{}}
	if cur == nil {
		return r
	}
	var secs float64
	prevTopics := map[string]TopicStat{}
	prevGroups := map[string]GroupSummary{}
	if prev != nil && cur.Time.After(prev.Time) {
		secs = cur.Time.Sub(prev.Time).Seconds()
		for _, t := range prev.Topics {
			prevTopics[t.Name] = t
		}
		for _, g := range prev.Groups {
			prevGroups[g.Name] = g
		}
	}
	r.Seconds = secs
	for _, t := range cur.Topics {
		tr := TopicRate{Name: t.Name}
		p, ok := prevTopics[t.Name]
		if ok && p.ID == t.ID && p.Unknown == 0 && t.Unknown == 0 && t.EndOffsets >= p.EndOffsets {
			tr.RecordsPerSec = float64(t.EndOffsets-p.EndOffsets) / secs
			tr.Known = true
		}
		r.Topics = append(r.Topics, tr)
	}
	for _, g := range cur.Groups {
		gt := GroupTrend{Name: g.Name, Lag: g.Lag}
		p, ok := prevGroups[g.Name]
		if ok && knownLag(p) && knownLag(g) {
			gt.LagPerSec = float64(g.Lag-p.Lag) / secs
			gt.Known = true
		}
		r.Groups = append(r.Groups, gt)
	}
	return r
}

func knownLag(g GroupSummary) bool { return g.Lag >= 0 && g.LagUnknown == 0 }
