package cloud

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
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
		return r, fmt.Errorf("destroy broker %s: %s: %w\nrerun `kafkaup destroy %s` to finish", name, step, advise(err), name)
	}

	if len(r.Instances) > 0 {
		var ids []string
		for _, i := range r.Instances {
			ids = append(ids, i.ID)
		}
		if _, err := c.EC2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids}); err != nil {
			return fail("terminate "+instanceIDs(r.Instances), err)
		}
		c.logf("instances %s: terminating", instanceIDs(r.Instances))
		w := ec2.NewInstanceTerminatedWaiter(c.EC2, func(o *ec2.InstanceTerminatedWaiterOptions) {
			o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
		})
		if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids}, c.waitTimeout()); err != nil {
			return fail("wait for "+instanceIDs(r.Instances)+" to terminate", err)
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
		if _, err := c.EC2.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(e.AllocationID)}); err != nil &&
			!hasCode(err, "InvalidAllocationID.NotFound") {
			return fail("release elastic IP "+e.PublicIP, err)
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

// deleteSecurityGroup retries DependencyViolation (the terminated
// instance's network interface lingers for a while) with doubling pauses
// until SGDeleteTimeout. A group already gone counts as deleted.
func (c *Cloud) deleteSecurityGroup(ctx context.Context, id string) error {
	timeout, pause := c.SGDeleteTimeout, c.SGDeleteBackoff
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	if pause <= 0 {
		pause = 2 * time.Second
	}
	maxPause := 8 * pause
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		_, err := c.EC2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: aws.String(id)})
		switch {
		case err == nil, hasCode(err, "InvalidGroup.NotFound"):
			return nil
		case !hasCode(err, "DependencyViolation"):
			return err
		case time.Now().Add(pause).After(deadline):
			return fmt.Errorf("still in use after %d attempts over %s (is something other than the broker's instance using it?): %w", attempt, timeout, err)
		}
		c.logf("security group %s: still in use, retrying in %s", id, pause)
		if serr := c.doSleep(ctx, pause); serr != nil {
			return fmt.Errorf("%w (it was still in use: %v)", serr, err)
		}
		pause = min(2*pause, maxPause)
	}
}
