package cloud

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Destroy deletes everything tagged as broker name's, found by tag alone
// (no local state needed): it terminates the instances and waits until they
// are terminated, releases the Elastic IPs kafkaup allocated (never the
// user's), deletes the security groups (retrying DependencyViolation until
// SGDeleteTimeout while the instance's network interface goes away) and the
// key pairs. It returns what it deleted (with dryRun: what it would
// delete, deleting nothing). Running it again finds nothing and returns an
// empty Resources. On error the Resources found are returned with it, and
// rerunning Destroy continues.
func (c *Cloud) Destroy(ctx context.Context, name string, dryRun bool) (*Resources, error) {
	r, err := c.Find(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("destroy broker %s: %w", name, err)
	}
	if dryRun || r.Empty() {
		return r, nil
	}
	fail := func(step string, err error) (*Resources, error) {
		if step != "" {
			err = fmt.Errorf("%s: %w", step, err)
		}
		return r, fmt.Errorf("destroy broker %s: %w\nrerun `kafkaup destroy %s` to finish", name, advise(err), name)
	}

	if len(r.Instances) > 0 {
		var ids []string
		for _, i := range r.Instances {
			ids = append(ids, i.ID)
		}
		// An instance launched a moment ago may not be visible yet to
		// TerminateInstances.
		err := c.untilVisible(ctx, "terminate "+instanceIDs(r.Instances), notYet("InvalidInstanceID.NotFound"), func() error {
			_, err := c.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
			return err
		})
		if err != nil {
			return fail("", err)
		}
		c.logf("instances %s: terminating", instanceIDs(r.Instances))
		var watch instanceWatch
		w := ec2.NewInstanceTerminatedWaiter(c.EC2, func(o *ec2.InstanceTerminatedWaiterOptions) {
			o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
			// The SDK's terminated waiter gives up on an instance that is
			// pending or stopping; one terminated while it was either gets
			// there all the same, so keep waiting.
			o.Retryable = watch.wrap(keepWaitingWhile(o.Retryable, "pending", "stopping"))
		})
		if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, c.waitTimeout()); err != nil {
			return fail("wait for "+instanceIDs(r.Instances)+" to terminate", watch.explain("instances "+instanceIDs(r.Instances), err))
		}
		c.logf("instances %s: terminated", instanceIDs(r.Instances))
	}

	for _, e := range r.OwnedEIPs() {
		// AWS disassociates on termination; an address still associated
		// (moto, or one moved to another instance) cannot be released.
		if e.AssociationID != "" {
			_, err := c.EC2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(e.AssociationID)})
			if err != nil && !hasCode(err, "InvalidAssociationID.NotFound") {
				return fail("disassociate elastic IP "+e.PublicIP, err)
			}
		}
		if err := c.releaseAddress(ctx, e); err != nil {
			return fail("", err)
		}
		c.logf("elastic IP %s: released %s", e.PublicIP, e.AllocationID)
	}

	for _, g := range r.SecurityGroups {
		if err := c.deleteSecurityGroup(ctx, g.ID); err != nil {
			return fail("delete security group "+g.Name+" ("+g.ID+")", err)
		}
		c.logf("security group %s: deleted %s", g.Name, g.ID)
	}

	for _, k := range r.KeyPairs {
		// By name: moto ignores KeyPairId here (answers success, deletes
		// nothing). Names are unique per region, and this one is tagged.
		if _, err := c.EC2.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: aws.String(k.Name)}); err != nil &&
			!hasCode(err, "InvalidKeyPair.NotFound") {
			return fail("delete key pair "+k.Name, err)
		}
		c.logf("key pair %s: deleted %s", k.Name, k.ID)
	}
	return r, nil
}

// releaseAddress releases an Elastic IP that Find has just listed. Right
// after its instance terminated EC2 may still count it as in use
// (InvalidIPAddress.InUse), and one allocated a moment ago may answer
// InvalidAllocationID.NotFound: both are waited out. NotFound for an
// address DescribeAddresses no longer lists means it is gone (an earlier
// attempt released it).
func (c *Cloud) releaseAddress(ctx context.Context, e ElasticIP) error {
	what := "release elastic IP " + e.PublicIP + " (" + e.AllocationID + ")"
	return c.untilVisible(ctx, what, notYet("InvalidAllocationID.NotFound", "InvalidIPAddress.InUse"), func() error {
		_, err := c.EC2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(e.AllocationID)})
		if !hasCode(err, "InvalidAllocationID.NotFound") {
			return err
		}
		out, lerr := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
			{Name: aws.String("allocation-id"), Values: []string{e.AllocationID}},
		}})
		switch {
		case lerr != nil:
			return fmt.Errorf("%w (and listing it again failed: %v)", err, lerr)
		case len(out.Addresses) == 0:
			return nil
		}
		return err
	})
}

// deleteSecurityGroup retries DependencyViolation (the terminated
// instance's network interface lingers for a while) with doubling pauses
// until SGDeleteTimeout. A group already gone counts as deleted; one that
// answers InvalidGroup.NotFound but is still listed (created a moment ago)
// is retried the same way.
func (c *Cloud) deleteSecurityGroup(ctx context.Context, id string) error {
	timeout, pause := c.SGDeleteTimeout, c.SGDeleteBackoff
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if pause <= 0 {
		pause = 2 * time.Second
	}
	return c.retryFor(ctx, pause, timeout, func(err error) bool { return hasCode(err, "DependencyViolation", "InvalidGroup.NotFound") },
		func(err error, pause time.Duration) {
			if hasCode(err, "DependencyViolation") {
				c.logf("security group %s: still in use, retrying in %s", id, pause)
			} else {
				c.logf("security group %s: EC2 answered %s but still lists it; retrying in %s", id, errorCode(err), pause)
			}
		},
		func(attempts int, waited time.Duration, err error) error {
			if hasCode(err, "DependencyViolation") {
				return fmt.Errorf("still in use after %d attempts over %s (is something other than the broker's instance using it?): %w", attempts, timeout, err)
			}
			return &NotVisibleError{What: "delete security group " + id, Attempts: attempts, Waited: waited, Err: err}
		},
		func() error {
			_, err := c.EC2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
			if !hasCode(err, "InvalidGroup.NotFound") {
				return err
			}
			sgs, lerr := c.describeSecurityGroups(ctx, []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}})
			switch {
			case lerr != nil:
				return fmt.Errorf("%w (and listing it again failed: %v)", err, lerr)
			case len(sgs) == 0:
				return nil
			}
			return err
		})
}

// keepWaitingWhile makes an instance waiter poll again while any instance
// answered is in one of states, where def would fail.
func keepWaitingWhile(def describeRetryable, states ...string) describeRetryable {
	return func(ctx context.Context, in *ec2.DescribeInstancesInput, out *ec2.DescribeInstancesOutput, err error) (bool, error) {
		if err == nil && out != nil {
			for _, r := range out.Reservations {
				for _, i := range r.Instances {
					for _, s := range states {
						if stateName(i) == s {
							return true, nil
						}
					}
				}
			}
		}
		return def(ctx, in, out, err)
	}
}
