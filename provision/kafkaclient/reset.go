package kafkaclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ResetKind says where an offset reset moves a group's offsets.
type ResetKind int

const (
	ResetEarliest ResetKind = iota + 1 // the oldest record still kept
	ResetLatest                        // past the newest record: skip everything written so far
	ResetDatetime                      // the first record written at or after a time
	ResetShift                         // the committed offset plus or minus N records
)

// ResetTarget is where an offset reset moves a group's offsets; build one
// with ParseResetTarget or as a literal.
type ResetTarget struct {
	Kind  ResetKind
	Time  time.Time // for ResetDatetime
	Shift int64     // for ResetShift; negative moves back (reads again)
}

func (t ResetTarget) String() string {
	switch t.Kind {
	case ResetEarliest:
		return "earliest"
	case ResetLatest:
		return "latest"
	case ResetDatetime:
		return "datetime " + t.Time.Format(time.RFC3339Nano)
	case ResetShift:
		return fmt.Sprintf("shift by %+d", t.Shift)
	}
	return fmt.Sprintf("ResetKind(%d)", int(t.Kind))
}

// MarshalText writes the target as String does, for JSON.
func (t ResetTarget) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// resetTargetFlags names the choices in ParseResetTarget's advice.
const resetTargetFlags = "--to-earliest, --to-latest, --to-datetime TIME or --shift-by N"

// datetimeForms are the forms of --to-datetime, for the advice.
const datetimeForms = "RFC 3339 (2025-05-01T14:30:00Z, 2025-05-01T14:30:00+02:00), local time (2025-05-01T14:30:00) or a local date (2025-05-01, meaning midnight)"

// ParseResetTarget turns the reset flags into a ResetTarget: exactly one of
// toEarliest, toLatest, toDatetime (non-empty) or shiftBy (non-nil) must be
// given. toDatetime is RFC 3339, or "2006-01-02T15:04:05" or "2006-01-02"
// in the local time zone.
func ParseResetTarget(toEarliest, toLatest bool, toDatetime string, shiftBy *int64) (ResetTarget, error) {
	return parseResetTarget(toEarliest, toLatest, toDatetime, shiftBy, time.Local)
}

func parseResetTarget(toEarliest, toLatest bool, toDatetime string, shiftBy *int64, loc *time.Location) (ResetTarget, error) {
	var given []string
	for _, f := range []struct {
		set  bool
		flag string
	}{{toEarliest, "--to-earliest"}, {toLatest, "--to-latest"}, {toDatetime != "", "--to-datetime"}, {shiftBy != nil, "--shift-by"}} {
		if f.set {
			given = append(given, f.flag)
		}
	}
	switch {
	case len(given) == 0:
		return ResetTarget{}, fmt.Errorf("say where to move the offsets: give one of %s", resetTargetFlags)
	case len(given) > 1:
		return ResetTarget{}, fmt.Errorf("give only one of %s (got %s)", resetTargetFlags, strings.Join(given, " and "))
	case toEarliest:
		return ResetTarget{Kind: ResetEarliest}, nil
	case toLatest:
		return ResetTarget{Kind: ResetLatest}, nil
	case shiftBy != nil:
		return ResetTarget{Kind: ResetShift, Shift: *shiftBy}, nil
	}
	at, err := parseDatetime(toDatetime, loc)
	if err != nil {
		return ResetTarget{}, err
	}
	return ResetTarget{Kind: ResetDatetime, Time: at}, nil
}

func parseDatetime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-datetime %q is not a date and time: use %s", s, datetimeForms)
}

func (t ResetTarget) check() error {
	switch t.Kind {
	case ResetEarliest, ResetLatest, ResetShift:
		return nil
	case ResetDatetime:
		if t.Time.IsZero() {
			return errors.New("an offset reset to a datetime needs the time")
		}
		return nil
	}
	return fmt.Errorf("say where to move the offsets: give one of %s", resetTargetFlags)
}

// ResetPlan is an offset reset worked out but not done: for each partition
// of one topic, the group's committed offset and the one it will get.
type ResetPlan struct {
	Group      string           `json:"group"`
	Topic      string           `json:"topic"`
	Target     ResetTarget      `json:"target"`
	Partitions []ResetPartition `json:"partitions"` // every partition of the topic, by id
}

// ResetPartition is one partition of a ResetPlan.
type ResetPartition struct {
	Partition int32 `json:"partition"`
	Current   int64 `json:"current"` // the committed offset; -1 when none
	New       int64 `json:"new"`
	// Start and End are the partition's first offset and end offset
	// when the plan was made: New - Start records are kept before the new
	// position, End - New are left to read.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Changes counts the partitions whose committed offset the plan changes.
func (p *ResetPlan) Changes() int {
	n := 0
	for _, rp := range p.Partitions {
		if rp.Current != rp.New {
			n++
		}
	}
	return n
}

// PlanReset works out where to move group's committed offsets on every
// partition of topic, without changing anything. The group must exist (an
// *UnknownGroupError) and have no members (a *GroupActiveError): a
// running consumer would overwrite the reset with its next commit, and the
// broker refuses commits from outside a group that has members. A missing
// topic is a *NoTopicError. Apply the plan with ExecuteReset.
func (c *Client) PlanReset(ctx context.Context, group, topic string, to ResetTarget) (*ResetPlan, error) {
	if err := ValidateTopicName(topic); err != nil {
		return nil, err
	}
	if err := to.check(); err != nil {
		return nil, err
	}
	lg, err := c.describeOne(ctx, group)
	if err != nil {
		return nil, err
	}
	if err := lg.refuseActive("reset the offsets of"); err != nil {
		return nil, err
	}
	meta, err := c.topicMetadata(ctx, topic, "")
	if err != nil {
		return nil, err
	}
	if err := c.fetchCommits(ctx, []*loadedGroup{lg}); err != nil {
		return nil, err
	}
	starts, err := c.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read the start offsets of %s from %s: %w", topic, c.bootstrap, err)
	}
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read the end offsets of %s from %s: %w", topic, c.bootstrap, err)
	}
	var at kadm.ListedOffsets
	if to.Kind == ResetDatetime {
		if at, err = c.adm.ListOffsetsAfterMilli(ctx, to.Time.UnixMilli(), topic); err != nil {
			return nil, fmt.Errorf("find the offsets of %s at %s on %s: %w", topic, to.Time.Format(time.RFC3339), c.bootstrap, err)
		}
	}

	plan := &ResetPlan{Group: group, Topic: topic, Target: to, Partitions: []ResetPartition{}}
	var uncommitted []string
	parts := slices.SortedFunc(slices.Values(meta.Partitions), func(a, b kmsg.MetadataResponseTopicPartition) int {
		return cmp.Compare(a.Partition, b.Partition)
	})
	for _, p := range parts {
		k := tp{topic, p.Partition}
		rp := ResetPartition{Partition: p.Partition, Current: -1}
		if cm, ok := lg.commits[k]; ok {
			if cm.err != nil {
				return nil, fmt.Errorf("read the committed offset of group %s on %s partition %d: %w", group, topic, p.Partition, cm.err)
			}
			rp.Current = cm.offset
		}
		for _, o := range []struct {
			list kadm.ListedOffsets
			dst  *int64
			what string
		}{{starts, &rp.Start, "start"}, {ends, &rp.End, "end"}} {
			if *o.dst, err = lookupOffset(o.list, k); err != nil {
				return nil, fmt.Errorf("read the %s offset of %s partition %d from %s: %s; check the broker with kafkaup status", o.what, topic, p.Partition, c.bootstrap, offsetProblem(err))
			}
		}
		var atTime int64
		if to.Kind == ResetDatetime {
			if atTime, err = lookupOffset(at, k); err != nil {
				return nil, fmt.Errorf("find the offset of %s partition %d at %s on %s: %s", topic, p.Partition, to.Time.Format(time.RFC3339), c.bootstrap, offsetProblem(err))
			}
		}
		if to.Kind == ResetShift && rp.Current < 0 {
			uncommitted = append(uncommitted, strconv.Itoa(int(p.Partition)))
			continue
		}
		rp.New = resetOffset(to, rp.Current, rp.Start, rp.End, atTime)
		plan.Partitions = append(plan.Partitions, rp)
	}
	if len(uncommitted) > 0 {
		return nil, fmt.Errorf("group %s has no committed offset on %s partition %s, so there is nothing to shift from: use --to-earliest, --to-latest or --to-datetime",
			group, topic, strings.Join(uncommitted, ", "))
	}
	return plan, nil
}

// resetOffset is a partition's new offset: current is the committed offset
// (-1: none), start and end the partition's bounds, atTime the offset the
// broker found for a ResetDatetime. A shift stays within [start, end].
func resetOffset(to ResetTarget, current, start, end, atTime int64) int64 {
	switch to.Kind {
	case ResetEarliest:
		return start
	case ResetLatest:
		return end
	case ResetDatetime:
		return min(max(atTime, start), end)
	}
	n := current + to.Shift
	switch {
	case to.Shift > 0 && current > math.MaxInt64-to.Shift:
		n = end
	case to.Shift < 0 && current < math.MinInt64-to.Shift:
		n = start
	}
	return min(max(n, start), end)
}

// ExecuteReset commits the plan's new offsets for its group. It checks
// again that the group has no members (a *GroupActiveError) and still
// exists (an *UnknownGroupError), since time may have passed since the
// plan was made.
func (c *Client) ExecuteReset(ctx context.Context, plan *ResetPlan) error {
	if plan == nil || len(plan.Partitions) == 0 {
		return errors.New("the offset reset plan is empty: make one with PlanReset")
	}
	const action = "reset the offsets of"
	lg, err := c.describeOne(ctx, plan.Group)
	if err != nil {
		return err
	}
	if err := lg.refuseActive(action); err != nil {
		return err
	}
	offsets := kadm.Offsets{}
	for _, p := range plan.Partitions {
		offsets.Add(kadm.Offset{Topic: plan.Topic, Partition: p.Partition, At: p.New, LeaderEpoch: -1})
	}
	var committed kadm.OffsetResponses
	err = retryCoordinator(ctx, func() error {
		committed, err = c.adm.CommitOffsets(ctx, plan.Group, offsets)
		if err != nil {
			return err
		}
		var busy error
		committed.EachError(func(o kadm.OffsetResponse) {
			if coordinatorBusy(o.Err) {
				busy = o.Err
			}
		})
		return busy
	})
	if err != nil {
		return fmt.Errorf("commit the new offsets of group %s on %s: %w", plan.Group, c.bootstrap, err)
	}
	var failed []string
	var first error
	for _, o := range committed.Sorted() {
		switch {
		case o.Err == nil:
			continue
		case errors.Is(o.Err, kerr.UnknownMemberID), errors.Is(o.Err, kerr.IllegalGeneration),
			errors.Is(o.Err, kerr.RebalanceInProgress), errors.Is(o.Err, kerr.StaleMemberEpoch),
			errors.Is(o.Err, kerr.FencedMemberEpoch):
			// A consumer joined since the check above: the broker
			// takes commits only from the group's members now.
			return &GroupActiveError{Group: plan.Group, Action: action}
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			return &NoTopicError{Topic: plan.Topic, Hint: "it was deleted after the reset was planned"}
		}
		failed = append(failed, strconv.Itoa(int(o.Partition)))
		if first == nil {
			first = o.Err
		}
	}
	if first != nil {
		return fmt.Errorf("reset the offsets of group %s on %s: partition %s not reset: %w", plan.Group, plan.Topic, strings.Join(failed, ", "), first)
	}
	return nil
}
