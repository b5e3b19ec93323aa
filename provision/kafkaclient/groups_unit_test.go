package kafkaclient

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestParseResetTarget(t *testing.T) {
	berlin := time.FixedZone("CEST", 2*3600)
	i64 := func(n int64) *int64 { return &n }
	type args struct {
		earliest, latest bool
		datetime         string
		shift            *int64
	}
	for _, tc := range []struct {
		name    string
		in      args
		want    ResetTarget
		wantErr []string // all in the message
	}{
		{name: "earliest", in: args{earliest: true}, want: ResetTarget{Kind: ResetEarliest}},
		{name: "latest", in: args{latest: true}, want: ResetTarget{Kind: ResetLatest}},
		{name: "shift back", in: args{shift: i64(-10)}, want: ResetTarget{Kind: ResetShift, Shift: -10}},
		{name: "shift zero", in: args{shift: i64(0)}, want: ResetTarget{Kind: ResetShift}},
		{name: "RFC 3339 UTC", in: args{datetime: "2025-05-01T14:30:00Z"},
			want: ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 5, 1, 14, 30, 0, 0, time.UTC)}},
		{name: "RFC 3339 offset", in: args{datetime: "2025-05-01T14:30:00+02:00"},
			want: ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 5, 1, 12, 30, 0, 0, time.UTC)}},
		{name: "RFC 3339 fraction", in: args{datetime: "2025-05-01T14:30:00.250Z"},
			want: ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 5, 1, 14, 30, 0, 250e6, time.UTC)}},
		{name: "local time", in: args{datetime: "2025-05-01T14:30:00"},
			want: ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 5, 1, 12, 30, 0, 0, time.UTC)}},
		{name: "local date", in: args{datetime: " 2025-05-01 "},
			want: ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 4, 30, 22, 0, 0, 0, time.UTC)}},
		{name: "none", in: args{},
			wantErr: []string{"say where to move the offsets", "--to-earliest, --to-latest, --to-datetime TIME or --shift-by N"}},
		{name: "two", in: args{earliest: true, shift: i64(3)},
			wantErr: []string{"give only one of", "(got --to-earliest and --shift-by)"}},
		{name: "several, one bad", in: args{latest: true, datetime: "yesterday"},
			wantErr: []string{"(got --to-latest and --to-datetime)"}},
		{name: "bad datetime", in: args{datetime: "yesterday"},
			wantErr: []string{`--to-datetime "yesterday" is not a date and time`, "2025-05-01T14:30:00Z", "local date (2025-05-01"}},
		{name: "date with slashes", in: args{datetime: "2025/05/01"},
			wantErr: []string{`--to-datetime "2025/05/01" is not a date and time`}},
		{name: "impossible date", in: args{datetime: "2025-02-30"},
			wantErr: []string{`--to-datetime "2025-02-30" is not a date and time`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseResetTarget(tc.in.earliest, tc.in.latest, tc.in.datetime, tc.in.shift, berlin)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("= %v, want an error", got)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != tc.want.Kind || !got.Time.Equal(tc.want.Time) || got.Shift != tc.want.Shift {
				t.Errorf("= %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResetTargetText(t *testing.T) {
	for _, tc := range []struct {
		in   ResetTarget
		want string
	}{
		{ResetTarget{Kind: ResetEarliest}, "earliest"},
		{ResetTarget{Kind: ResetLatest}, "latest"},
		{ResetTarget{Kind: ResetShift, Shift: -5}, "shift by -5"},
		{ResetTarget{Kind: ResetShift, Shift: 5}, "shift by +5"},
		{ResetTarget{Kind: ResetDatetime, Time: time.Date(2025, 5, 1, 14, 30, 0, 0, time.UTC)}, "datetime 2025-05-01T14:30:00Z"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		b, err := json.Marshal(ResetPlan{Target: tc.in})
		if err != nil || !strings.Contains(string(b), `"target":"`+tc.want+`"`) {
			t.Errorf("JSON = %s, %v", b, err)
		}
	}
	if err := (ResetTarget{}).check(); err == nil || !strings.Contains(err.Error(), "--to-earliest") {
		t.Errorf("zero target check = %v", err)
	}
	if err := (ResetTarget{Kind: ResetDatetime}).check(); err == nil {
		t.Error("a datetime target without a time passed check")
	}
}

func TestResetOffset(t *testing.T) {
	const start, end = 100, 200
	for _, tc := range []struct {
		name    string
		to      ResetTarget
		current int64
		atTime  int64
		want    int64
	}{
		{"earliest", ResetTarget{Kind: ResetEarliest}, 150, 0, 100},
		{"earliest without commit", ResetTarget{Kind: ResetEarliest}, -1, 0, 100},
		{"latest", ResetTarget{Kind: ResetLatest}, 150, 0, 200},
		{"datetime", ResetTarget{Kind: ResetDatetime}, 150, 120, 120},
		{"datetime in the future is the end", ResetTarget{Kind: ResetDatetime}, 150, 200, 200},
		{"datetime before retention", ResetTarget{Kind: ResetDatetime}, 150, 50, 100},
		{"shift back", ResetTarget{Kind: ResetShift, Shift: -30}, 150, 0, 120},
		{"shift forward", ResetTarget{Kind: ResetShift, Shift: 30}, 150, 0, 180},
		{"shift zero", ResetTarget{Kind: ResetShift}, 150, 0, 150},
		{"shift below start clamps", ResetTarget{Kind: ResetShift, Shift: -1000}, 150, 0, 100},
		{"shift past end clamps", ResetTarget{Kind: ResetShift, Shift: 1000}, 150, 0, 200},
		{"commit below start (records expired)", ResetTarget{Kind: ResetShift, Shift: 10}, 20, 0, 100},
		{"shift max does not overflow", ResetTarget{Kind: ResetShift, Shift: math.MaxInt64}, 150, 0, 200},
		{"shift min does not overflow", ResetTarget{Kind: ResetShift, Shift: math.MinInt64}, 150, 0, 100},
	} {
		if got := resetOffset(tc.to, tc.current, start, end, tc.atTime); got != tc.want {
			t.Errorf("%s: resetOffset = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestResetPlanChanges(t *testing.T) {
	p := &ResetPlan{Partitions: []ResetPartition{{Current: 5, New: 5}, {Current: -1, New: 0}, {Current: 9, New: 3}}}
	if got := p.Changes(); got != 2 {
		t.Errorf("Changes = %d, want 2", got)
	}
}

// listed builds kadm.ListedOffsets from topic -> partition -> offset;
// a negative offset stands for that error code.
func listed(m map[string]map[int32]int64) kadm.ListedOffsets {
	l := kadm.ListedOffsets{}
	for t, ps := range m {
		l[t] = map[int32]kadm.ListedOffset{}
		for p, o := range ps {
			lo := kadm.ListedOffset{Topic: t, Partition: p, Offset: o}
			if o < 0 {
				lo.Offset, lo.Err = -1, kerr.ErrorForCode(int16(-o))
			}
			l[t][p] = lo
		}
	}
	return l
}

func TestWithLag(t *testing.T) {
	lg := newLoadedGroup(GroupInfo{Name: "g", Type: GroupClassic, State: "Stable", ProtocolType: "consumer"})
	lg.addMember(GroupMember{ID: "m1", ClientID: "app", Host: "/203.0.113.7"}, kadm.TopicsSet{"a": {1: {}, 0: {}}, "b": {0: {}}})
	lg.addMember(GroupMember{ID: "m2", ClientID: "app2", Host: "/203.0.113.8"}, kadm.TopicsSet{"a": {2: {}}})
	lg.commits[tp{"a", 0}] = commit{offset: 10}
	lg.commits[tp{"a", 1}] = commit{offset: 50} // beyond the end: lag 0, not negative
	// a/2 assigned, nothing committed: counted from the start offset.
	// b/0 assigned, nothing committed, start offset unknown: from 0.
	lg.commits[tp{"gone", 0}] = commit{offset: 7}                              // topic deleted
	lg.commits[tp{"c", 0}] = commit{offset: 3}                                 // end offset not listed
	lg.commits[tp{"d", 0}] = commit{offset: 1, err: kerr.UnstableOffsetCommit} // commit error
	lg.commits[tp{"d", 1}] = commit{offset: 4}                                 // not assigned (group shrank)
	starts := listed(map[string]map[int32]int64{"a": {2: 5}})
	ends := listed(map[string]map[int32]int64{
		"a":    {0: 25, 1: 40, 2: 8},
		"b":    {0: 12},
		"d":    {0: 9, 1: 6},
		"gone": {-1: -int64(kerr.UnknownTopicOrPartition.Code)},
	})
	got := lg.withLag(starts, ends)

	want := []GroupPartition{
		{Topic: "a", Partition: 0, Committed: 10, End: 25, Lag: 15, MemberID: "m1", ClientID: "app"},
		{Topic: "a", Partition: 1, Committed: 50, End: 40, Lag: 0, MemberID: "m1", ClientID: "app"},
		{Topic: "a", Partition: 2, Committed: -1, End: 8, Lag: 3, MemberID: "m2", ClientID: "app2"},
		{Topic: "b", Partition: 0, Committed: -1, End: 12, Lag: 12, MemberID: "m1", ClientID: "app"},
		{Topic: "c", Partition: 0, Committed: 3, End: -1, Lag: -1, Error: "end offset: not reported by the broker"},
		{Topic: "d", Partition: 0, Committed: -1, End: 9, Lag: -1, Error: "committed offset: " + kerr.UnstableOffsetCommit.Error()},
		{Topic: "d", Partition: 1, Committed: 4, End: 6, Lag: 2},
		{Topic: "gone", Partition: 0, Committed: 7, End: -1, Lag: -1, Error: "end offset: the topic or partition no longer exists"},
	}
	if !reflect.DeepEqual(got.Partitions, want) {
		t.Errorf("partitions:\n got %+v\nwant %+v", got.Partitions, want)
	}
	if got.Lag != 15+0+3+12+2 || got.LagUnknown != 3 {
		t.Errorf("Lag = %d, LagUnknown = %d", got.Lag, got.LagUnknown)
	}
	wantMembers := []GroupMember{
		{ID: "m1", ClientID: "app", Host: "203.0.113.7", Assigned: []AssignedTopic{{"a", []int32{0, 1}}, {"b", []int32{0}}}},
		{ID: "m2", ClientID: "app2", Host: "203.0.113.8", Assigned: []AssignedTopic{{"a", []int32{2}}}},
	}
	if !reflect.DeepEqual(got.Members, wantMembers) {
		t.Errorf("members:\n got %+v\nwant %+v", got.Members, wantMembers)
	}
	if s := got.Summary(); s != (GroupSummary{Name: "g", Type: GroupClassic, State: "Stable", ProtocolType: "consumer", Members: 2, Lag: 32, LagUnknown: 3}) {
		t.Errorf("Summary = %+v", s)
	}

	empty := newLoadedGroup(GroupInfo{Name: "e", State: "Empty"}).withLag(nil, nil)
	if empty.Partitions == nil || empty.Members == nil || empty.Lag != 0 {
		t.Errorf("group with nothing: %+v (want empty, non-nil lists for JSON)", empty)
	}
}

func TestGroupActive(t *testing.T) {
	for _, tc := range []struct {
		state   string
		members int
		want    bool
	}{
		{"Empty", 0, false},
		{"Dead", 0, false},
		{"Stable", 1, true},
		{"PreparingRebalance", 0, true}, // members leaving or joining
		{"Assigning", 2, true},
	} {
		lg := newLoadedGroup(GroupInfo{Name: "g", State: tc.state})
		for range tc.members {
			lg.addMember(GroupMember{ClientID: "c", Host: "h"}, nil)
		}
		err := lg.refuseActive("delete")
		if lg.active() != tc.want || (err != nil) != tc.want {
			t.Errorf("%s with %d members: active = %v, refuse = %v", tc.state, tc.members, lg.active(), err)
		}
		if err != nil && !isErr[*GroupActiveError](err) {
			t.Errorf("refuse = %T, want *GroupActiveError", err)
		}
	}
}

func TestGroupErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&UnknownGroupError{Group: "orders"},
			"no consumer group named orders; kafkaup groups list shows what exists (a group exists once a consumer has joined it or committed offsets in it)"},
		{&GroupActiveError{Group: "orders", Action: "delete", Members: []string{"app@10.0.0.1"}},
			"cannot delete consumer group orders: it has 1 active member (app@10.0.0.1); stop its consumers first (kafkaup groups describe orders shows them), then run this again"},
		{&GroupActiveError{Group: "g", Action: "reset the offsets of", Members: []string{"a@1", "b@2", "c@3", "d@4", "e@5"}},
			"cannot reset the offsets of consumer group g: it has 5 active members (a@1, b@2, c@3 and 2 more); stop its consumers first (kafkaup groups describe g shows them), then run this again"},
		{&GroupActiveError{Group: "g", Action: "delete"},
			"cannot delete consumer group g: it has active members; stop its consumers first (kafkaup groups describe g shows them), then run this again"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("message:\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestLookupOffset(t *testing.T) {
	l := listed(map[string]map[int32]int64{"a": {0: 5, 1: -int64(kerr.NotLeaderForPartition.Code)}, "gone": {-1: -int64(kerr.UnknownTopicOrPartition.Code)}})
	if o, err := lookupOffset(l, tp{"a", 0}); o != 5 || err != nil {
		t.Errorf("a/0 = %d, %v", o, err)
	}
	if _, err := lookupOffset(l, tp{"a", 1}); !errors.Is(err, kerr.NotLeaderForPartition) {
		t.Errorf("a/1 = %v", err)
	}
	if _, err := lookupOffset(l, tp{"a", 2}); !errors.Is(err, errNotListed) {
		t.Errorf("a/2 = %v", err)
	}
	if _, err := lookupOffset(l, tp{"gone", 3}); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("gone/3 = %v", err)
	}
	if _, err := lookupOffset(nil, tp{"x", 0}); !errors.Is(err, errNotListed) {
		t.Errorf("nil list = %v", err)
	}
}

// Kafka says "no such group" two ways: DescribeGroups v6+ (Kafka 4.0)
// answers GROUP_ID_NOT_FOUND with state Dead, older versions state Dead
// with no error; ConsumerGroupDescribe answers GROUP_ID_NOT_FOUND for a
// classic group.
func TestGroupGone(t *testing.T) {
	for _, tc := range []struct {
		state string
		err   error
		want  bool
	}{
		{"Dead", kerr.GroupIDNotFound, true},
		{"Dead", nil, true},
		{"", kerr.GroupIDNotFound, true},
		{"Empty", nil, false},
		{"Stable", nil, false},
		{"", kerr.CoordinatorNotAvailable, false}, // retried, not "unknown"
	} {
		if got := groupGone(tc.state, tc.err); got != tc.want {
			t.Errorf("groupGone(%q, %v) = %v, want %v", tc.state, tc.err, got, tc.want)
		}
	}
}
