package cloud

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fakeThing is a resource for ensureOwned: an id and its tags.
type fakeThing struct {
	id   string
	tags []types.Tag
}

func ownTags(name string) []types.Tag {
	return []types.Tag{{Key: aws.String(TagBroker), Value: aws.String(name)}, {Key: aws.String(TagManaged), Value: aws.String("true")}}
}

func TestEnsureOwned(t *testing.T) {
	mine := fakeThing{"r-mine", ownTags("demo")}
	other := fakeThing{"r-other", nil}
	dup := injected("Thing.Duplicate")
	cases := []struct {
		name   string
		tagged []fakeThing
		named  *fakeThing // what the lookup by name finds
		keep   func(fakeThing) (bool, error)
		create []error // the answers of successive create calls (nil: made)
		want   string  // the id returned, or "error: " and a part of it
		calls  string  // the calls made, in order
	}{
		{name: "nothing yet: created", want: "r-new", calls: "tagged create"},
		{name: "found by tag and kept", tagged: []fakeThing{mine}, want: "r-mine", calls: "tagged keep"},
		{name: "found by tag and replaced", tagged: []fakeThing{mine}, keep: func(fakeThing) (bool, error) { return false, nil },
			want: "r-new", calls: "tagged keep create"},
		{name: "found by tag and refused", tagged: []fakeThing{mine}, keep: func(fakeThing) (bool, error) { return false, errors.New("refused") },
			want: "error: refused", calls: "tagged keep"},
		{name: "two tagged", tagged: []fakeThing{mine, mine}, want: "error: broker demo has 2 things tagged as its own", calls: "tagged"},
		{name: "lookup by tag lags: found by name", named: &mine, create: []error{dup}, want: "r-mine", calls: "tagged create named keep"},
		{name: "name taken by someone else's", named: &other, create: []error{dup},
			want:  "error: a thing named kafkaup-demo exists in here but is not tagged as kafkaup's broker demo, and kafkaup never touches what it did not tag: delete it if it is a leftover (rm it) or choose another broker name",
			calls: "tagged create named"},
		{name: "found by name, replaced, name taken again", named: &mine, create: []error{dup, dup},
			keep: func(fakeThing) (bool, error) { return false, nil }, want: "error: make thing: ", calls: "tagged create named keep create"},
		{name: "other create error", create: []error{injected("Thing.LimitExceeded")}, want: "error: make thing: ", calls: "tagged create"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			creates := 0
			keep := tc.keep
			if keep == nil {
				keep = func(fakeThing) (bool, error) { return true, nil }
			}
			got, err := ensureOwned(context.Background(), &Cloud{Log: testLog{t}}, "demo", ownedKind[fakeThing]{
				kind: "thing", createOp: "make", duplicate: "Thing.Duplicate", where: " in here", deleteHint: " (rm it)",
				id:   func(f fakeThing) string { return f.id },
				tags: func(f fakeThing) []types.Tag { return f.tags },
				tagged: func(context.Context) ([]fakeThing, error) {
					calls = append(calls, "tagged")
					return tc.tagged, nil
				},
				named: func(context.Context) (*fakeThing, error) {
					calls = append(calls, "named")
					if tc.named == nil {
						t.Fatal("looked up by name without a duplicate answer")
					}
					return tc.named, nil
				},
				keep: func(_ context.Context, f fakeThing) (bool, error) {
					calls = append(calls, "keep")
					return keep(f)
				},
				create: func(context.Context) (*fakeThing, error) {
					calls = append(calls, "create")
					creates++
					if creates <= len(tc.create) && tc.create[creates-1] != nil {
						return nil, tc.create[creates-1]
					}
					return &fakeThing{id: "r-new"}, nil
				},
			})
			if c := strings.Join(calls, " "); c != tc.calls {
				t.Errorf("calls %q, want %q", c, tc.calls)
			}
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, want)
				}
				return
			}
			if err != nil || got.id != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}
