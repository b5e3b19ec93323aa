package kafkaclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

func (tp TopicPartition) String() string { return tp.Topic + "-" + strconv.Itoa(int(tp.Partition)) }

// PartitionHealth is the replication state of every partition of the
// cluster, internal topics included: what a rolling operation must check
// before touching a node and what status reports.
type PartitionHealth struct {
	// UnderReplicated: the ISR is smaller than the replica set.
	UnderReplicated []TopicPartition `json:"under_replicated"`
	// UnderMinISR: the ISR is smaller than min.insync.replicas, so
	// writes with acks=all fail.
	UnderMinISR []TopicPartition `json:"under_min_isr"`
	// Offline: the partition has no leader.
	Offline []TopicPartition `json:"offline"`
	// NotInISR maps a broker id to the partitions it is a replica of
	// but not in the ISR of.
	NotInISR map[int32][]TopicPartition `json:"not_in_isr"`
}

// OK says whether every partition is fully replicated and led.
func (h *PartitionHealth) OK() bool {
	return len(h.UnderReplicated) == 0 && len(h.UnderMinISR) == 0 && len(h.Offline) == 0
}

// PartitionHealth reads every topic's partitions (internal ones included)
// and each topic's min.insync.replicas, and reports the partitions that
// are not fully replicated, below their ISR minimum, or leaderless.
func (c *Client) PartitionHealth(ctx context.Context) (*PartitionHealth, error) {
	meta, err := c.metadata(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ask %s for partition metadata: %w", c.bootstrap, err)
	}
	var names []string
	for _, t := range meta.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	minISR, err := c.minISR(ctx, names)
	if err != nil {
		return nil, err
	}
	return healthFrom(meta, minISR)
}

// healthFrom classifies the partitions of a metadata answer, given each
// topic's min.insync.replicas.
func healthFrom(meta *kmsg.MetadataResponse, minISR map[string]int) (*PartitionHealth, error) {
	h := &PartitionHealth{UnderReplicated: []TopicPartition{}, UnderMinISR: []TopicPartition{}, Offline: []TopicPartition{}, NotInISR: map[int32][]TopicPartition{}}
	for _, t := range meta.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("metadata of topic %s: %w", *t.Topic, err)
		}
		for _, p := range t.Partitions {
			tp := TopicPartition{Topic: *t.Topic, Partition: p.Partition}
			if p.Leader < 0 {
				h.Offline = append(h.Offline, tp)
			}
			if len(p.ISR) < len(p.Replicas) {
				h.UnderReplicated = append(h.UnderReplicated, tp)
			}
			if min, ok := minISR[*t.Topic]; ok && len(p.ISR) < min {
				h.UnderMinISR = append(h.UnderMinISR, tp)
			}
			for _, r := range p.Replicas {
				if !slices.Contains(p.ISR, r) {
					h.NotInISR[r] = append(h.NotInISR[r], tp)
				}
			}
		}
	}
	byName := func(a, b TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	}
	for _, l := range [][]TopicPartition{h.UnderReplicated, h.UnderMinISR, h.Offline} {
		slices.SortFunc(l, byName)
	}
	for _, l := range h.NotInISR {
		slices.SortFunc(l, byName)
	}
	return h, nil
}

// minISR returns each topic's min.insync.replicas.
func (c *Client) minISR(ctx context.Context, topics []string) (map[string]int, error) {
	out := map[string]int{}
	if len(topics) == 0 {
		return out, nil
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, t := range topics {
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = t
		r.ConfigNames = []string{"min.insync.replicas"}
		req.Resources = append(req.Resources, r)
	}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return nil, fmt.Errorf("ask %s for min.insync.replicas: %w", c.bootstrap, err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return nil, fmt.Errorf("ask %s for topic %s's min.insync.replicas: %w%s", c.bootstrap, r.ResourceName, err, brokerMessage(r.ErrorMessage))
		}
		for _, cfg := range r.Configs {
			if cfg.Name != "min.insync.replicas" || cfg.Value == nil {
				continue
			}
			n, err := strconv.Atoi(*cfg.Value)
			if err != nil {
				return nil, fmt.Errorf("topic %s's min.insync.replicas %q is not a number", r.ResourceName, *cfg.Value)
			}
			out[r.ResourceName] = n
		}
	}
	return out, nil
}

// QuorumReplica is one voter or observer of the KRaft metadata quorum.
type QuorumReplica struct {
	ID           int32  `json:"id"`
	DirectoryID  string `json:"directory_id"` // Kafka's base64 Uuid form
	LogEndOffset int64  `json:"log_end_offset"`
	// Lag is the leader's log end offset minus this one's.
	Lag int64 `json:"lag"`
	// LastCaughtUpAgo is how long ago the replica was last caught up
	// with the leader; -1 when unknown.
	LastCaughtUpAgo time.Duration `json:"last_caught_up_ago_ns"`
}

// Quorum is the KRaft metadata quorum as its leader describes it.
type Quorum struct {
	LeaderID      int32           `json:"leader_id"`
	LeaderEpoch   int32           `json:"leader_epoch"`
	HighWatermark int64           `json:"high_watermark"`
	Voters        []QuorumReplica `json:"voters"`
	Observers     []QuorumReplica `json:"observers"`
}

// CaughtUp returns the ids of the voters (the leader included) whose log
// end offset is within maxLag of the leader's.
func (q *Quorum) CaughtUp(maxLag int64) []int32 {
	var ids []int32
	for _, v := range q.Voters {
		if v.LogEndOffset >= 0 && v.Lag <= maxLag {
			ids = append(ids, v.ID)
		}
	}
	return ids
}

// Voter returns the voter with the id, if it is one.
func (q *Quorum) Voter(id int32) (QuorumReplica, bool) {
	for _, v := range q.Voters {
		if v.ID == id {
			return v, true
		}
	}
	return QuorumReplica{}, false
}

// Quorum sends DescribeQuorum for __cluster_metadata-0.
func (c *Client) Quorum(ctx context.Context) (*Quorum, error) {
	p, err := c.describeQuorum(ctx)
	if err != nil {
		return nil, err
	}
	return quorumFrom(p, time.Now()), nil
}

// describeQuorum asks for the metadata partition's quorum state, from
// every seed broker at once (askAnySeed): sent the usual way, the request
// goes to the controller named in the client's metadata, and after a node
// dies that can be the dead one, which holds the answer up until its
// connection times out (status once took 21 s so). Any live broker
// forwards the request to the active controller.
func (c *Client) describeQuorum(ctx context.Context) (*kmsg.DescribeQuorumResponseTopicPartition, error) {
	var p *kmsg.DescribeQuorumResponseTopicPartition
	err := c.askAnySeed(ctx, func() kmsg.Request { return newDescribeQuorumRequest() }, func(r kmsg.Response) (err error) {
		p, err = quorumPartition(r.(*kmsg.DescribeQuorumResponse))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ask %s for the KRaft controller quorum: %w", c.bootstrap, err)
	}
	return p, nil
}

// askAnySeed sends a request made by newReq to every seed broker at once
// and keeps the first answer that accept takes without an error; the
// others are cancelled. A seed that accepts connections but never answers
// (a hung broker) then costs nothing while another answers.
func (c *Client) askAnySeed(ctx context.Context, newReq func() kmsg.Request, accept func(kmsg.Response) error) error {
	brokers := c.cl.SeedBrokers()
	if len(brokers) == 0 {
		return errors.New("no broker to ask")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		resp kmsg.Response
		err  error
	}
	answers := make(chan answer, len(brokers))
	for _, b := range brokers {
		go func() {
			resp, err := b.Request(ctx, newReq())
			answers <- answer{resp, err}
		}()
	}
	var errs []error
	for range brokers {
		a := <-answers
		if a.err == nil {
			if a.err = accept(a.resp); a.err == nil {
				return nil
			}
		}
		errs = append(errs, a.err)
	}
	return errors.Join(errs...)
}

func newDescribeQuorumRequest() *kmsg.DescribeQuorumRequest {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	return req
}

// quorumPartition is the metadata partition in a DescribeQuorum answer, or
// the error the answer carries.
func quorumPartition(resp *kmsg.DescribeQuorumResponse) (*kmsg.DescribeQuorumResponseTopicPartition, error) {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("%w%s", err, brokerMessage(resp.ErrorMessage))
	}
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("%w%s", err, brokerMessage(p.ErrorMessage))
			}
			return p, nil
		}
	}
	return nil, errors.New("the answer named no partition")
}

// quorumFrom converts a DescribeQuorum partition; now is the time the
// timestamps are measured against.
func quorumFrom(p *kmsg.DescribeQuorumResponseTopicPartition, now time.Time) *Quorum {
	q := &Quorum{LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.HighWatermark, Voters: []QuorumReplica{}, Observers: []QuorumReplica{}}
	leaderLEO := int64(-1)
	for _, v := range p.CurrentVoters {
		if v.ReplicaID == p.LeaderID {
			leaderLEO = v.LogEndOffset
		}
	}
	convert := func(rs []kmsg.DescribeQuorumResponseTopicPartitionReplicaState) []QuorumReplica {
		out := []QuorumReplica{}
		for _, r := range rs {
			qr := QuorumReplica{ID: r.ReplicaID, DirectoryID: UUIDString(r.ReplicaDirectoryID), LogEndOffset: r.LogEndOffset, Lag: -1, LastCaughtUpAgo: -1}
			if leaderLEO >= 0 && r.LogEndOffset >= 0 {
				qr.Lag = max(leaderLEO-r.LogEndOffset, 0)
			}
			switch {
			case r.ReplicaID == p.LeaderID && r.LogEndOffset == leaderLEO:
				qr.LastCaughtUpAgo = 0 // the leader is its own reference
			case r.LastCaughtUpTimestamp >= 0:
				qr.LastCaughtUpAgo = max(now.Sub(time.UnixMilli(r.LastCaughtUpTimestamp)), 0)
			}
			out = append(out, qr)
		}
		slices.SortFunc(out, func(a, b QuorumReplica) int { return int(a.ID - b.ID) })
		return out
	}
	q.Voters = convert(p.CurrentVoters)
	q.Observers = convert(p.Observers)
	return q
}

// UUIDString renders a Kafka Uuid the way Kafka prints it (meta.properties,
// kafka-metadata-quorum): URL-safe base64 without padding.
func UUIDString(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// ParseUUID reads a Kafka Uuid in its printed form.
func ParseUUID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("%q is not a Kafka Uuid (22 characters of URL-safe base64)", s)
	}
	copy(id[:], b)
	return id, nil
}
