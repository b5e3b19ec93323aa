package cloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ownedKind describes, for ensureOwned, a kind of resource a broker has
// exactly one of and that is named after it (kafkaup-NAME): its key pair,
// its security group.
type ownedKind[T any] struct {
	kind      string // "key pair": for messages
	createOp  string // "import": the create call, for messages
	duplicate string // the error code of a create whose name is taken
	// where says, for messages, where the name is unique (" in vpc-1");
	// deleteHint how to delete a leftover (" (aws ec2 ...)"). Either may
	// be empty.
	where, deleteHint string

	id   func(T) string
	tags func(T) []types.Tag
	// tagged lists the broker's, by kafkaup's tags. named is the one with
	// the broker's resource name, waiting for EC2 to show it (a create
	// has just answered that the name is taken).
	tagged func(context.Context) ([]T, error)
	named  func(context.Context) (*T, error)
	// keep decides about the broker's existing one: keep it (true), refuse
	// (an error), or create a new one (false, nil: keep has deleted it).
	keep func(context.Context, T) (bool, error)
	// create makes a new one, tagged in the create call
	// (TagSpecifications), and records it in the creation's made.
	create func(context.Context) (*T, error)
}

// ensureOwned returns broker name's resource of kind k: the one found by
// tag if k.keep accepts it, or a new one. When the create call answers
// that the name is taken (by this broker's resource from an earlier run
// that the lookup by tag does not show yet, or by one kafkaup did not
// create), the resource with that name is used if it is tagged as the
// broker's, and refused otherwise: kafkaup never touches what it did not
// tag.
func ensureOwned[T any](ctx context.Context, c *Cloud, name string, k ownedKind[T]) (*T, error) {
	rn := ResourceName(name)
	all, err := k.tagged(ctx)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", k.kind, err)
	}
	if len(all) > 1 {
		return nil, fmt.Errorf("broker %s has %d %ss tagged as its own; destroy it and create it again", name, len(all), k.kind)
	}
	var found *T
	if len(all) == 1 {
		found = &all[0]
	}
	for byName := false; ; byName = true {
		if found != nil {
			keep, err := k.keep(ctx, *found)
			if err != nil {
				return nil, err
			}
			if keep {
				return found, nil
			}
		}
		made, createErr := k.create(ctx)
		if createErr == nil {
			return made, nil
		}
		if !hasCode(createErr, k.duplicate) || byName {
			return nil, fmt.Errorf("%s %s: %w", k.createOp, k.kind, createErr)
		}
		got, err := k.named(ctx)
		if err != nil {
			return nil, err
		}
		if !ownedBy(k.tags(*got), name) {
			return nil, fmt.Errorf("a %s named %s exists%s but is not tagged as kafkaup's broker %s, and kafkaup never touches what it did not tag: delete it if it is a leftover%s or choose another broker name: %w",
				k.kind, rn, k.where, name, k.deleteHint, createErr)
		}
		c.logf("%s %s: found %s by name (the lookup by tag did not show it yet)", k.kind, rn, k.id(*got))
		found = got
	}
}

// ownedBy: tagged as kafkaup's broker name's.
func ownedBy(tags []types.Tag, name string) bool {
	return tagValue(tags, TagBroker) == name && tagValue(tags, TagManaged) == "true"
}
