package kafkaclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group types, as the broker lists them. A broker older than Kafka 3.8
// names no type; its groups are classic.
const (
	// GroupClassic is the JoinGroup/SyncGroup protocol: the clients
	// assign partitions among themselves. Every client speaks it, and it
	// is the default of Kafka 4.0's clients.
	GroupClassic = "classic"
	// GroupConsumer is KIP-848's protocol (Kafka 4.0+, a Java client's
	// group.protocol=consumer): the broker assigns partitions.
	GroupConsumer = "consumer"
)

// GroupSummary is one line of `kafkaup groups list`.
type GroupSummary struct {
	Name string `json:"name"`
	// Type is GroupClassic or GroupConsumer; "share" and "streams"
	// groups are listed but not described (Members and Lag are -1).
	Type string `json:"type"`
	// State is the broker's word for it: Stable, Empty,
	// PreparingRebalance, CompletingRebalance (classic), Assigning,
	// Reconciling (consumer).
	State string `json:"state"`
	// ProtocolType is "consumer" for consumers, "connect" for Kafka
	// Connect workers, and empty for a group that only holds offsets
	// committed without a consumer.
	ProtocolType string `json:"protocol_type"`
	Members      int    `json:"members"`
	// Lag is how many records the group has yet to read, over every
	// partition whose lag is known (see GroupPartition.Lag).
	Lag int64 `json:"lag"`
	// LagUnknown counts partitions whose lag could not be read; their
	// Error in GroupInfo says why.
	LagUnknown int `json:"lag_unknown,omitempty"`
}

// GroupInfo is what `kafkaup groups describe` shows about a group.
type GroupInfo struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	// Assignor is the partition assignment strategy in use (range,
	// cooperative-sticky, uniform...); empty when the group has no
	// members.
	Assignor string `json:"assignor,omitempty"`
	// Coordinator is the node id of the broker that runs the group.
	Coordinator int32         `json:"coordinator"`
	Members     []GroupMember `json:"members"`
	// Partitions are those the group has committed offsets for or has
	// assigned to a member, sorted by topic and partition.
	Partitions []GroupPartition `json:"partitions"`
	Lag        int64            `json:"lag"` // the sum of the partitions' known lag
	LagUnknown int              `json:"lag_unknown,omitempty"`
}

// GroupMember is one consumer in a group.
type GroupMember struct {
	ID string `json:"id"`
	// InstanceID is the group.instance.id of a static member.
	InstanceID string          `json:"instance_id,omitempty"`
	ClientID   string          `json:"client_id"`
	Host       string          `json:"host"` // the member's address as the broker sees it
	Assigned   []AssignedTopic `json:"assigned"`
}

// AssignedTopic is the partitions of one topic assigned to a member.
type AssignedTopic struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// GroupPartition is where a group stands in one partition.
type GroupPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset (the next record it
	// will read); -1 when it has committed none.
	Committed int64 `json:"committed"`
	// End is the log end offset (high watermark): the offset the next
	// record written will get. -1 when unknown (see Error).
	End int64 `json:"end"`
	// Lag is End minus Committed. With nothing committed it counts the
	// whole partition (End minus its start offset), what a consumer reads
	// with auto.offset.reset=earliest. -1 when unknown (see Error).
	Lag int64 `json:"lag"`
	// MemberID and ClientID name the member the partition is assigned
	// to; empty when it is assigned to none.
	MemberID string `json:"member_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Summary is the group's line in ListGroups.
func (g *GroupInfo) Summary() GroupSummary {
	return GroupSummary{Name: g.Name, Type: g.Type, State: g.State, ProtocolType: g.ProtocolType,
		Members: len(g.Members), Lag: g.Lag, LagUnknown: g.LagUnknown}
}

// ListGroups lists every consumer group with its state, members and total
// lag, sorted by name.
func (c *Client) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	loaded, others, err := c.loadAllGroups(ctx)
	if err != nil {
		return nil, err
	}
	starts, ends, err := c.lagOffsets(ctx, loaded, nil)
	if err != nil {
		return nil, err
	}
	out := others
	for _, lg := range loaded {
		info := lg.withLag(starts, ends)
		out = append(out, info.Summary())
	}
	slices.SortFunc(out, func(a, b GroupSummary) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DescribeGroup describes one group: its members, and per partition its
// committed offset, the log end offset and the lag. A group that does not
// exist is an *UnknownGroupError.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*GroupInfo, error) {
	lg, err := c.describeOne(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := c.fetchCommits(ctx, []*loadedGroup{lg}); err != nil {
		return nil, err
	}
	starts, ends, err := c.lagOffsets(ctx, []*loadedGroup{lg}, nil)
	if err != nil {
		return nil, err
	}
	info := lg.withLag(starts, ends)
	return &info, nil
}

// DeleteGroup deletes a group and its committed offsets. It refuses a group
// that has members (a *GroupActiveError); an unknown group is an
// *UnknownGroupError.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	lg, err := c.describeOne(ctx, group)
	if err != nil {
		return err
	}
	if err := lg.refuseActive("delete"); err != nil {
		return err
	}
	var r kadm.DeleteGroupResponse
	err = retryCoordinator(ctx, func() error {
		rs, err := c.adm.DeleteGroups(ctx, group)
		if err != nil {
			return err
		}
		var ok bool
		if r, ok = rs[group]; !ok {
			return errors.New("the broker's answer left the group out")
		}
		if coordinatorBusy(r.Err) {
			return r.Err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete consumer group %s on %s: %w", group, c.bootstrap, err)
	}
	switch {
	case r.Err == nil:
		return nil
	case errors.Is(r.Err, kerr.NonEmptyGroup):
		// A consumer joined since the check above.
		return &GroupActiveError{Group: group, Action: "delete"}
	case errors.Is(r.Err, kerr.GroupIDNotFound):
		return &UnknownGroupError{Group: group}
	}
	return fmt.Errorf("delete consumer group %s on %s: %w%s", group, c.bootstrap, r.Err, brokerMessage(&r.ErrMessage))
}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

func compareTP(a, b tp) int {
	return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
}

// commit is a committed offset as fetched: an offset, or an error for
// that partition.
type commit struct {
	offset int64
	err    error
}

// loadedGroup is a group as described, with its committed offsets once
// fetched: everything but the log offsets its lag needs.
type loadedGroup struct {
	info     GroupInfo       // Partitions and Lag not filled in
	assigned map[tp]int      // partition -> index of its member in info.Members
	commits  map[tp]commit   // committed offsets; a partition with none is absent
	topics   map[string]bool // topics the group commits to or is assigned, for listing offsets
}

func newLoadedGroup(info GroupInfo) *loadedGroup {
	info.Members = []GroupMember{}
	return &loadedGroup{info: info, assigned: map[tp]int{}, commits: map[tp]commit{}, topics: map[string]bool{}}
}

// addMember adds a member and the partitions assigned to it.
func (lg *loadedGroup) addMember(m GroupMember, assigned kadm.TopicsSet) {
	i := len(lg.info.Members)
	m.Host = strings.TrimPrefix(m.Host, "/") // the broker writes "/203.0.113.7"
	m.Assigned = []AssignedTopic{}
	for _, t := range assigned.Sorted() {
		ps := slices.Sorted(slices.Values(t.Partitions))
		m.Assigned = append(m.Assigned, AssignedTopic{Topic: t.Topic, Partitions: ps})
		for _, p := range ps {
			lg.assigned[tp{t.Topic, p}] = i
		}
		lg.topics[t.Topic] = true
	}
	lg.info.Members = append(lg.info.Members, m)
}

// active says whether the group has members: the broker refuses to
// delete such a group or to take offsets for it from outside.
func (lg *loadedGroup) active() bool {
	return len(lg.info.Members) > 0 || !(lg.info.State == "Empty" || lg.info.State == "Dead")
}

func (lg *loadedGroup) refuseActive(action string) error {
	if !lg.active() {
		return nil
	}
	e := &GroupActiveError{Group: lg.info.Name, Action: action}
	for _, m := range lg.info.Members {
		e.Members = append(e.Members, m.ClientID+"@"+m.Host)
	}
	return e
}

// withLag returns the group's description with the lag of each partition
// it commits to or is assigned, from the listed start and end offsets.
func (lg *loadedGroup) withLag(starts, ends kadm.ListedOffsets) GroupInfo {
	info := lg.info
	info.Partitions = []GroupPartition{}
	all := slices.Collect(maps.Keys(lg.commits))
	for k := range lg.assigned {
		if _, ok := lg.commits[k]; !ok {
			all = append(all, k)
		}
	}
	slices.SortFunc(all, compareTP)
	for _, k := range all {
		gp := GroupPartition{Topic: k.topic, Partition: k.partition, Committed: -1, End: -1, Lag: -1}
		if i, ok := lg.assigned[k]; ok {
			gp.MemberID, gp.ClientID = info.Members[i].ID, info.Members[i].ClientID
		}
		var problems []string
		if cm, ok := lg.commits[k]; ok {
			if cm.err != nil {
				problems = append(problems, "committed offset: "+offsetProblem(cm.err))
			} else {
				gp.Committed = cm.offset
			}
		}
		if end, err := lookupOffset(ends, k); err != nil {
			problems = append(problems, "end offset: "+offsetProblem(err))
		} else {
			gp.End = end
		}
		if len(problems) == 0 {
			from := gp.Committed
			if from < 0 {
				from = 0
				if start, err := lookupOffset(starts, k); err == nil {
					from = start
				}
			}
			gp.Lag = max(gp.End-from, 0)
			info.Lag += gp.Lag
		} else {
			gp.Error = strings.Join(slices.Compact(problems), "; ")
			info.LagUnknown++
		}
		info.Partitions = append(info.Partitions, gp)
	}
	return info
}

// offsetProblem says in words why an offset is missing.
func offsetProblem(err error) string {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return "the topic or partition no longer exists"
	}
	return err.Error()
}

// errNotListed is a partition left out of a list of offsets (its leader's
// broker did not answer).
var errNotListed = errors.New("not reported by the broker")

// lookupOffset is the offset listed for k, or why there is none.
func lookupOffset(l kadm.ListedOffsets, k tp) (int64, error) {
	if ps, ok := l[k.topic]; ok {
		if o, ok := ps[k.partition]; ok {
			return o.Offset, o.Err
		}
		if o, ok := ps[-1]; ok && o.Err != nil { // the whole topic failed
			return -1, o.Err
		}
	}
	return -1, errNotListed
}

// describeOne describes one group, classic or consumer, without its
// offsets. A group that does not exist (the broker says Dead or
// GROUP_ID_NOT_FOUND) is an *UnknownGroupError.
func (c *Client) describeOne(ctx context.Context, group string) (*loadedGroup, error) {
	if err := checkGroupName(group); err != nil {
		return nil, err
	}
	// The classic describe answers GROUP_ID_NOT_FOUND for a consumer
	// group and the other way round, so ask both before concluding.
	for _, typ := range []string{GroupClassic, GroupConsumer} {
		found, err := c.describeGroups(ctx, typ, []string{group})
		if err != nil {
			return nil, err
		}
		if lg, ok := found[group]; ok {
			return lg, nil
		}
	}
	listed, err := c.listGroups(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range listed {
		if l.Name == group {
			return nil, fmt.Errorf("group %s is a %s group; kafkaup describes and changes only classic and consumer groups (use Kafka's kafka-groups.sh for it)", group, l.Type)
		}
	}
	return nil, &UnknownGroupError{Group: group}
}

func checkGroupName(group string) error {
	if group == "" {
		return errors.New("the consumer group name is empty; kafkaup groups list shows the groups")
	}
	return nil
}

// loadAllGroups describes every listed group and fetches their committed
// offsets. Groups of other types (share, streams) come back as summaries
// with Members and Lag -1.
func (c *Client) loadAllGroups(ctx context.Context) ([]*loadedGroup, []GroupSummary, error) {
	listed, err := c.listGroups(ctx)
	if err != nil {
		return nil, nil, err
	}
	byType := map[string][]string{}
	others := []GroupSummary{}
	for _, l := range listed {
		if l.Type == GroupClassic || l.Type == GroupConsumer {
			byType[l.Type] = append(byType[l.Type], l.Name)
			continue
		}
		l.Members, l.Lag = -1, -1
		others = append(others, l)
	}
	var loaded []*loadedGroup
	for _, typ := range []string{GroupClassic, GroupConsumer} {
		if len(byType[typ]) == 0 {
			continue
		}
		found, err := c.describeGroups(ctx, typ, byType[typ])
		if err != nil {
			return nil, nil, err
		}
		// A group deleted since it was listed is simply gone.
		for _, name := range byType[typ] {
			if lg, ok := found[name]; ok {
				loaded = append(loaded, lg)
			}
		}
	}
	if err := c.fetchCommits(ctx, loaded); err != nil {
		return nil, nil, err
	}
	return loaded, others, nil
}

// listGroups asks every broker for the groups it coordinates. Members and
// Lag are left zero.
func (c *Client) listGroups(ctx context.Context) ([]GroupSummary, error) {
	var out []GroupSummary
	err := retryCoordinator(ctx, func() error {
		out = out[:0]
		req := kmsg.NewPtrListGroupsRequest()
		for _, shard := range c.cl.RequestSharded(ctx, req) {
			broker := fmt.Sprintf("broker %d (%s:%d)", shard.Meta.NodeID, shard.Meta.Host, shard.Meta.Port)
			if shard.Err != nil {
				return fmt.Errorf("%s: %w", broker, shard.Err)
			}
			resp := shard.Resp.(*kmsg.ListGroupsResponse)
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				return fmt.Errorf("%s: %w", broker, err)
			}
			for _, g := range resp.Groups {
				typ := strings.ToLower(g.GroupType)
				if typ == "" {
					typ = GroupClassic
				}
				out = append(out, GroupSummary{Name: g.Group, Type: typ, State: g.GroupState, ProtocolType: g.ProtocolType})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list consumer groups on %s: %w", c.bootstrap, err)
	}
	return out, nil
}

// describeGroups describes groups of one type (GroupClassic or
// GroupConsumer). Groups that do not exist as that type are left out.
func (c *Client) describeGroups(ctx context.Context, typ string, names []string) (map[string]*loadedGroup, error) {
	found := map[string]*loadedGroup{}
	err := retryCoordinator(ctx, func() error {
		clear(found)
		if typ == GroupConsumer {
			return c.describeConsumerGroups(ctx, names, found)
		}
		return c.describeClassicGroups(ctx, names, found)
	})
	if err != nil {
		if len(names) == 1 {
			return nil, fmt.Errorf("describe consumer group %s on %s: %w", names[0], c.bootstrap, err)
		}
		return nil, fmt.Errorf("describe %d consumer groups on %s: %w", len(names), c.bootstrap, err)
	}
	return found, nil
}

// groupGone says whether a describe answer means "no such group".
func groupGone(state string, err error) bool {
	return errors.Is(err, kerr.GroupIDNotFound) || err == nil && state == "Dead"
}

func (c *Client) describeClassicGroups(ctx context.Context, names []string, found map[string]*loadedGroup) error {
	described, err := c.adm.DescribeGroups(ctx, names...)
	if err != nil {
		return err
	}
	for _, g := range described {
		switch {
		case groupGone(g.State, g.Err):
			continue
		case g.Err != nil:
			return fmt.Errorf("%s: %w%s", g.Group, g.Err, brokerMessage(&g.ErrMessage))
		}
		lg := newLoadedGroup(GroupInfo{Name: g.Group, Type: GroupClassic, State: g.State,
			ProtocolType: g.ProtocolType, Assignor: g.Protocol, Coordinator: g.Coordinator.NodeID})
		for _, m := range g.Members {
			gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
			if m.InstanceID != nil {
				gm.InstanceID = *m.InstanceID
			}
			assigned := kadm.TopicsSet{}
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					assigned.Add(t.Topic, t.Partitions...)
				}
			}
			lg.addMember(gm, assigned)
		}
		found[g.Group] = lg
	}
	return nil
}

func (c *Client) describeConsumerGroups(ctx context.Context, names []string, found map[string]*loadedGroup) error {
	described, err := c.adm.DescribeConsumerGroups(ctx, names...)
	if err != nil {
		return err
	}
	for _, g := range described {
		switch {
		case groupGone(g.State, g.Err):
			continue
		case g.Err != nil:
			return fmt.Errorf("%s: %w", g.Group, g.Err)
		}
		lg := newLoadedGroup(GroupInfo{Name: g.Group, Type: GroupConsumer, State: g.State,
			ProtocolType: "consumer", Assignor: g.AssignorName, Coordinator: g.Coordinator.NodeID})
		for _, m := range g.Members {
			gm := GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost}
			if m.InstanceID != nil {
				gm.InstanceID = *m.InstanceID
			}
			lg.addMember(gm, m.Assignment)
		}
		found[g.Group] = lg
	}
	return nil
}

// fetchCommits fills in the groups' committed offsets.
func (c *Client) fetchCommits(ctx context.Context, groups []*loadedGroup) error {
	if len(groups) == 0 {
		return nil
	}
	names := make([]string, len(groups))
	for i, lg := range groups {
		names[i] = lg.info.Name
	}
	var fetched kadm.FetchOffsetsResponses
	err := retryCoordinator(ctx, func() error {
		fetched = c.adm.FetchManyOffsets(ctx, names...)
		for _, r := range fetched {
			if coordinatorBusy(r.Err) {
				return r.Err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read committed offsets from %s: %w", c.bootstrap, err)
	}
	for _, lg := range groups {
		r, ok := fetched[lg.info.Name]
		switch {
		case !ok:
			return fmt.Errorf("read committed offsets of group %s from %s: the broker's answer left the group out", lg.info.Name, c.bootstrap)
		case errors.Is(r.Err, kerr.GroupIDNotFound):
			// Deleted since it was described: it has no offsets.
		case r.Err != nil:
			return fmt.Errorf("read committed offsets of group %s from %s: %w", lg.info.Name, c.bootstrap, r.Err)
		}
		r.Fetched.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && o.At < 0 {
				return // nothing committed
			}
			lg.commits[tp{o.Topic, o.Partition}] = commit{offset: o.At, err: o.Err}
			lg.topics[o.Topic] = true
		})
	}
	return nil
}

// lagOffsets lists what the groups' lag needs: the end offsets of their
// topics, and the start offsets of topics where an assigned partition has
// nothing committed. Topics already in known (end offsets listed by the
// caller) are not listed again. A broker that does not answer leaves its
// partitions out, which shows as an unknown lag.
func (c *Client) lagOffsets(ctx context.Context, groups []*loadedGroup, known kadm.ListedOffsets) (starts, ends kadm.ListedOffsets, err error) {
	endTopics := map[string]bool{}
	startTopics := map[string]bool{}
	for _, lg := range groups {
		for t := range lg.topics {
			if _, ok := known[t]; !ok {
				endTopics[t] = true
			}
		}
		for k := range lg.assigned {
			if _, ok := lg.commits[k]; !ok {
				startTopics[k.topic] = true
			}
		}
	}
	if ends, err = c.listOffsets(ctx, "end", c.adm.ListEndOffsets, endTopics); err != nil {
		return nil, nil, err
	}
	if ends == nil {
		ends = kadm.ListedOffsets{}
	}
	for t, ps := range known {
		ends[t] = ps
	}
	if starts, err = c.listOffsets(ctx, "start", c.adm.ListStartOffsets, startTopics); err != nil {
		return nil, nil, err
	}
	return starts, ends, nil
}

// listOffsets lists offsets of the topics with list (one of kadm's
// List*Offsets). Partitions of a broker that did not answer are left out;
// only a failure of the whole request is an error.
func (c *Client) listOffsets(ctx context.Context, what string, list func(context.Context, ...string) (kadm.ListedOffsets, error), topics map[string]bool) (kadm.ListedOffsets, error) {
	if len(topics) == 0 {
		return kadm.ListedOffsets{}, nil // kadm would list every topic
	}
	l, err := list(ctx, slices.Sorted(maps.Keys(topics))...)
	var se *kadm.ShardErrors
	if err != nil && !(errors.As(err, &se) && !se.AllFailed) {
		return nil, fmt.Errorf("read %s offsets from %s: %w", what, c.bootstrap, err)
	}
	return l, nil
}

// coordinatorBusy says whether err is the group coordinator starting or
// moving: a fresh cluster creates __consumer_offsets on the first group
// request and answers COORDINATOR_NOT_AVAILABLE until it is ready.
func coordinatorBusy(err error) bool {
	return errors.Is(err, kerr.CoordinatorNotAvailable) || errors.Is(err, kerr.CoordinatorLoadInProgress) || errors.Is(err, kerr.NotCoordinator)
}

// retryCoordinator runs fn until it succeeds or fails for a reason other
// than a busy coordinator, waiting up to settleTimeout for the coordinator.
func retryCoordinator(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		err := fn()
		if !coordinatorBusy(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the broker's group coordinator was still not available after %v (check the broker with kafkaup status): %w", settleTimeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the broker's group coordinator: %w (last answer: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
