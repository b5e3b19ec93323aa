package kafkaclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxTopicNameLen is Kafka's limit (org.apache.kafka.common.internals.Topic).
const maxTopicNameLen = 249

// settleTimeout bounds how long CreateTopic and DeleteTopic wait for the
// broker's metadata to show the change, so that the next command sees it.
const settleTimeout = 15 * time.Second

// ValidateTopicName applies Kafka's own rules: 1 to 249 characters of
// [a-zA-Z0-9._-], and not "." or "..". Names that mix '.' and '_' are valid;
// see CollisionWarning.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return &InvalidTopicNameError{Name: name, Reason: "it is empty"}
	case name == "." || name == "..":
		return &InvalidTopicNameError{Name: name, Reason: `"." and ".." are not allowed as topic names`}
	case len(name) > maxTopicNameLen:
		return &InvalidTopicNameError{Name: name, Reason: fmt.Sprintf("it is %d characters long; the limit is %d", len(name), maxTopicNameLen)}
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return &InvalidTopicNameError{Name: name, Reason: fmt.Sprintf("it contains %q; topic names may use only ASCII letters, digits, '.', '_' and '-'", r)}
		}
	}
	return nil
}

// CollisionWarning returns a warning for a valid name that mixes '.' and '_'
// (Kafka's metric names treat the two alike, so "a.b_c" and "a_b.c" would
// collide), or "" when there is nothing to say. Kafka itself only warns; the
// broker refuses a create only when an existing topic actually collides.
func CollisionWarning(name string) string {
	if !strings.Contains(name, ".") || !strings.Contains(name, "_") {
		return ""
	}
	return fmt.Sprintf("topic name %s mixes '.' and '_'; Kafka's metrics treat them alike, so it collides with any topic whose name differs only in those characters: it is best to use one or the other, not both", name)
}

// ParseConfigs turns NAME=VALUE arguments (from --config) into a map.
func ParseConfigs(kv []string) (map[string]string, error) {
	out := make(map[string]string, len(kv))
	for _, s := range kv {
		name, value, ok := strings.Cut(s, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			return nil, fmt.Errorf("config %q is not NAME=VALUE (example: --config retention.ms=3600000)", s)
		case name == "":
			return nil, fmt.Errorf("config %q has no name before '=' (example: --config retention.ms=3600000)", s)
		case strings.ContainsAny(name, " \t\r\n"):
			return nil, fmt.Errorf("config name %q contains white space (example: --config retention.ms=3600000)", name)
		}
		if prev, dup := out[name]; dup {
			return nil, fmt.Errorf("config %s is given twice (%s=%s and %s=%s); give it once", name, name, prev, name, value)
		}
		out[name] = value
	}
	return out, nil
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name              string
	Partitions        int32             // 0 means 1
	ReplicationFactor int16             // 0 means 1
	Configs           map[string]string // topic-level overrides, e.g. retention.ms
}

// CreateTopic creates a topic and waits until the broker's metadata shows it
// with a leader for every partition, so that a produce right after works.
func (c *Client) CreateTopic(ctx context.Context, spec TopicSpec) error {
	if err := ValidateTopicName(spec.Name); err != nil {
		return err
	}
	partitions, rf := spec.Partitions, spec.ReplicationFactor
	if partitions == 0 {
		partitions = 1
	}
	if rf == 0 {
		rf = 1
	}
	if partitions < 0 {
		return fmt.Errorf("topic %s: --partitions must be at least 1 (got %d)", spec.Name, partitions)
	}
	if rf < 0 {
		return fmt.Errorf("topic %s: --replication-factor must be at least 1 (got %d)", spec.Name, rf)
	}
	meta, err := c.metadata(ctx, []string{})
	if err != nil {
		return fmt.Errorf("ask %s for its brokers: %w", c.bootstrap, err)
	}
	if int(rf) > len(meta.Brokers) {
		return &ReplicationFactorError{ReplicationFactor: rf, Brokers: len(meta.Brokers)}
	}
	configs := make(map[string]*string, len(spec.Configs))
	for k, v := range spec.Configs {
		configs[k] = kmsg.StringPtr(v)
	}
	resps, err := c.adm.CreateTopics(ctx, partitions, rf, configs, spec.Name)
	if err != nil {
		return fmt.Errorf("create topic %s on %s: %w", spec.Name, c.bootstrap, err)
	}
	r, ok := resps[spec.Name]
	if !ok {
		return fmt.Errorf("create topic %s on %s: the broker's answer left the topic out", spec.Name, c.bootstrap)
	}
	switch {
	case r.Err == nil:
	case errors.Is(r.Err, kerr.TopicAlreadyExists):
		return &TopicExistsError{Topic: spec.Name}
	case errors.Is(r.Err, kerr.InvalidConfig):
		return configError(spec, r.ErrMessage)
	case errors.Is(r.Err, kerr.InvalidReplicationFactor):
		return fmt.Errorf("topic %s not created: the broker refused replication factor %d (%s); a single-node cluster needs --replication-factor 1", spec.Name, rf, orCode(r))
	case errors.Is(r.Err, kerr.InvalidPartitions):
		return fmt.Errorf("topic %s not created: the broker refused %d partitions (%s)", spec.Name, partitions, orCode(r))
	case errors.Is(r.Err, kerr.InvalidTopicException):
		return fmt.Errorf("topic %s not created: the broker refused the name (%s)", spec.Name, orCode(r))
	default:
		return fmt.Errorf("create topic %s on %s: %w%s", spec.Name, c.bootstrap, r.Err, brokerMessage(&r.ErrMessage))
	}
	return c.settle(ctx, spec.Name, true)
}

func orCode(r kadm.CreateTopicResponse) string {
	if r.ErrMessage != "" {
		return r.ErrMessage
	}
	return r.Err.Error()
}

// configError names the config the broker's message is about.
func configError(spec TopicSpec, msg string) error {
	e := &ConfigError{Topic: spec.Name, Message: msg}
	names := make([]string, 0, len(spec.Configs))
	for k := range spec.Configs {
		names = append(names, k)
	}
	// Longest first, so "retention.ms" wins over a shorter name it contains.
	sort.Slice(names, func(i, j int) bool {
		return len(names[i]) > len(names[j]) || len(names[i]) == len(names[j]) && names[i] < names[j]
	})
	for _, k := range names {
		if strings.Contains(msg, k) {
			e.Name, e.Value = k, spec.Configs[k]
			break
		}
	}
	if e.Message == "" {
		e.Message = kerr.InvalidConfig.Error()
	}
	return e
}

// settle waits until the broker's metadata shows the topic ready (present,
// every partition led) or gone.
func (c *Client) settle(ctx context.Context, name string, present bool) error {
	deadline := time.Now().Add(settleTimeout)
	var last string
	for {
		meta, err := c.metadata(ctx, []string{name})
		if err != nil {
			return fmt.Errorf("ask %s about topic %s: %w", c.bootstrap, name, err)
		}
		settled, why := topicSettled(meta, name, present)
		// On a cluster every broker must agree: the next command (another
		// process, maybe) may ask any of them.
		for i := 0; settled && len(meta.Brokers) > 1 && i < len(meta.Brokers); i++ {
			id := meta.Brokers[i].NodeID
			req := kmsg.NewPtrMetadataRequest()
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, rt)
			bm, err := req.RequestWith(ctx, c.cl.Broker(int(id)))
			if err != nil {
				settled, why = false, fmt.Sprintf("broker %d: %v", id, err)
				break
			}
			if settled, why = topicSettled(bm, name, present); !settled {
				why = fmt.Sprintf("broker %d: %s", id, why)
			}
		}
		if settled {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			if present {
				return fmt.Errorf("topic %s was created, but after %v the broker still does not serve it (%s): check the broker with kafkaup status", name, settleTimeout, last)
			}
			return fmt.Errorf("topic %s was deleted, but after %v the broker still lists it (%s): check the broker with kafkaup status", name, settleTimeout, last)
		}
		select {
		case <-ctx.Done():
			if present {
				return fmt.Errorf("topic %s was created; waiting for the broker to serve it: %w", name, ctx.Err())
			}
			return fmt.Errorf("topic %s was deleted; waiting for the broker to stop listing it: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// topicSettled says whether a metadata answer shows topic name served
// (every partition with a leader) when present, or gone when not; else why
// not.
func topicSettled(meta *kmsg.MetadataResponse, name string, present bool) (bool, string) {
	why := "no answer for it"
	for _, t := range meta.Topics {
		if t.Topic == nil || *t.Topic != name {
			continue
		}
		terr := kerr.ErrorForCode(t.ErrorCode)
		gone := errors.Is(terr, kerr.UnknownTopicOrPartition)
		if !present {
			if gone {
				return true, ""
			}
			why = "still listed"
			continue
		}
		if terr != nil {
			why = terr.Error()
			continue
		}
		ready := len(t.Partitions) > 0
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				ready = false
			}
		}
		if ready {
			return true, ""
		}
		why = "partitions without a leader"
	}
	return false, why
}

// PartitionInfo is one partition of a topic.
type PartitionInfo struct {
	ID          int32   `json:"id"`
	Leader      int32   `json:"leader"` // -1 when none
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	StartOffset int64   `json:"start_offset"` // -1 when it could not be read (see Error)
	EndOffset   int64   `json:"end_offset"`   // high watermark; -1 when it could not be read
	// Error is the partition's own problem (no leader, offline replica...),
	// as the broker reported it; the rest of the topic is still described.
	Error string `json:"error,omitempty"`
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"` // as Kafka's tools print it (URL-safe base64)
	Internal          bool              `json:"internal"`
	Partitions        []PartitionInfo   `json:"partitions"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs"` // only those set on the topic
}

// Messages is how many records the topic holds now (end minus start offsets).
func (t *TopicInfo) Messages() int64 {
	var n int64
	for _, p := range t.Partitions {
		if p.StartOffset >= 0 && p.EndOffset >= p.StartOffset {
			n += p.EndOffset - p.StartOffset
		}
	}
	return n
}

// ListTopics describes every topic, sorted by name. Internal topics
// (__consumer_offsets...) and kafkaup's own VerifyTopic are left out unless
// includeInternal.
func (c *Client) ListTopics(ctx context.Context, includeInternal bool) ([]TopicInfo, error) {
	meta, err := c.metadata(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ask %s for its topics: %w", c.bootstrap, err)
	}
	var topics []kmsg.MetadataResponseTopic
	for _, t := range meta.Topics {
		if t.Topic == nil || (!includeInternal && hidden(*t.Topic, t.IsInternal)) {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("ask %s about topic %s: %w", c.bootstrap, *t.Topic, err)
		}
		topics = append(topics, t)
	}
	return c.describe(ctx, topics)
}

// DescribeTopic describes one topic; a *NoTopicError when it does not exist.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*TopicInfo, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, err
	}
	t, err := c.topicMetadata(ctx, name, "")
	if err != nil {
		return nil, err
	}
	infos, err := c.describe(ctx, []kmsg.MetadataResponseTopic{*t})
	if err != nil {
		return nil, err
	}
	return &infos[0], nil
}

// describe adds configs and offsets to topics' metadata.
func (c *Client) describe(ctx context.Context, topics []kmsg.MetadataResponseTopic) ([]TopicInfo, error) {
	infos := make([]TopicInfo, 0, len(topics))
	if len(topics) == 0 {
		return infos, nil
	}
	names := make([]string, 0, len(topics))
	for _, t := range topics {
		names = append(names, *t.Topic)
	}

	configs, err := c.adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("read topic configs from %s: %w", c.bootstrap, err)
	}
	byName := make(map[string]kadm.ResourceConfig, len(configs))
	for _, rc := range configs {
		if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
			return nil, &NoTopicError{Topic: rc.Name, Hint: "it was deleted while being described"}
		}
		if rc.Err != nil {
			return nil, fmt.Errorf("read configs of topic %s: %w%s", rc.Name, rc.Err, brokerMessage(&rc.ErrMessage))
		}
		byName[rc.Name] = rc
	}
	starts, err := c.adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("read start offsets from %s: %w", c.bootstrap, err)
	}
	ends, err := c.adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("read end offsets from %s: %w", c.bootstrap, err)
	}

	for _, t := range topics {
		name := *t.Topic
		rc, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("read configs of topic %s: the broker's answer left it out", name)
		}
		info := TopicInfo{Name: name, Internal: t.IsInternal, Configs: map[string]string{}, Partitions: []PartitionInfo{}}
		if t.TopicID != [16]byte{} {
			info.ID = base64.RawURLEncoding.EncodeToString(t.TopicID[:])
		}
		for _, cfg := range rc.Configs {
			if cfg.Source != kmsg.ConfigSourceDynamicTopicConfig {
				continue
			}
			switch {
			case cfg.Value != nil:
				info.Configs[cfg.Key] = *cfg.Value
			case cfg.Sensitive:
				info.Configs[cfg.Key] = "(sensitive)"
			default:
				info.Configs[cfg.Key] = ""
			}
		}
		for _, p := range t.Partitions {
			pi := PartitionInfo{ID: p.Partition, Leader: p.Leader, Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR), StartOffset: -1, EndOffset: -1}
			var perr []string
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				perr = append(perr, err.Error())
			}
			for _, lo := range []struct {
				list kadm.ListedOffsets
				dst  *int64
				what string
			}{{starts, &pi.StartOffset, "start offset"}, {ends, &pi.EndOffset, "end offset"}} {
				o, ok := lo.list.Lookup(name, p.Partition)
				switch {
				case !ok:
					perr = append(perr, lo.what+": not reported")
				case o.Err != nil:
					perr = append(perr, lo.what+": "+o.Err.Error())
				default:
					*lo.dst = o.Offset
				}
			}
			if len(perr) > 0 {
				// A partition-level condition of the cluster (for example
				// no leader), not a failure to describe: report it.
				pi.Error = strings.Join(slices.Compact(perr), "; ")
			}
			info.ReplicationFactor = max(info.ReplicationFactor, len(p.Replicas))
			info.Partitions = append(info.Partitions, pi)
		}
		slices.SortFunc(info.Partitions, func(a, b PartitionInfo) int { return int(a.ID) - int(b.ID) })
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b TopicInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos, nil
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return slices.Clone(s)
}

// DeleteTopic deletes a topic and waits until the broker no longer lists
// it; a *NoTopicError when it does not exist.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	if err := ValidateTopicName(name); err != nil {
		return err
	}
	resps, err := c.adm.DeleteTopics(ctx, name)
	if err != nil {
		return fmt.Errorf("delete topic %s on %s: %w", name, c.bootstrap, err)
	}
	r, ok := resps[name]
	if !ok {
		return fmt.Errorf("delete topic %s on %s: the broker's answer left the topic out", name, c.bootstrap)
	}
	switch {
	case r.Err == nil:
	case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
		return &NoTopicError{Topic: name}
	case errors.Is(r.Err, kerr.TopicDeletionDisabled):
		return fmt.Errorf("topic %s not deleted: the broker has delete.topic.enable=false", name)
	default:
		return fmt.Errorf("delete topic %s on %s: %w%s", name, c.bootstrap, r.Err, brokerMessage(&r.ErrMessage))
	}
	// Forget what this client cached about the topic, so a later produce
	// through the same Client does not use the dead topic's partitions.
	c.cl.PurgeTopicsFromClient(name)
	return c.settle(ctx, name, false)
}
