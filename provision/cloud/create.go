package cloud

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Create makes broker req.Name exist: key pair, security group with exactly
// the requested ingress, a running instance and, if asked, an associated
// Elastic IP. It validates req first, as Validate does, and returns its
// error as it is (a *RequestError when the request is at fault; nothing is
// created). Then, step by step, it finds by tag what an earlier run created
// and creates only what is missing, tagging everything in the create call.
// Errors after validation are *CreateError: the step, the cause and what
// exists.
func (c *Cloud) Create(ctx context.Context, req CreateRequest) (*Broker, error) {
	p, err := c.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	name := p.req.Name
	token, err := clientToken(name)
	if err != nil {
		return nil, err
	}
	cr := &creation{c: c, p: p, name: name, clientToken: token, made: &Resources{Broker: name}}
	b, step, err := cr.run(ctx)
	if err != nil {
		return nil, c.createError(ctx, name, step, err, cr.privateKey, cr.made)
	}
	return b, nil
}

func (c *Cloud) createError(ctx context.Context, name, step string, err error, priv []byte, made *Resources) error {
	ce := &CreateError{Broker: name, Step: step, Err: advise(err), PrivateKeyPEM: priv}
	// List what exists even when ctx was cancelled (Ctrl-C): the user
	// needs to know.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ce.Existing, ce.ListErr = c.Find(lctx, name)
	if ce.ListErr == nil {
		// The lookup by tag may not show yet what this run created a
		// moment ago (EC2 is eventually consistent).
		ce.Existing.add(made)
	}
	return ce
}

type creation struct {
	c           *Cloud
	p           *plan
	name        string
	clientToken string
	existing    *Resources
	privateKey  []byte
	// made is what this run created, for the error report.
	made *Resources
}

func (cr *creation) run(ctx context.Context) (*Broker, string, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)

	step := "find existing resources"
	existing, err := c.Find(ctx, name)
	if err != nil {
		return nil, step, err
	}
	cr.existing = existing
	var live []Instance
	for _, i := range existing.Instances {
		if i.State != "shutting-down" {
			live = append(live, i)
		}
	}
	if len(live) > 1 {
		return nil, step, fmt.Errorf("broker %s has %d instances (%s); kafkaup runs one: destroy it and create it again", name, len(live), instanceIDs(live))
	}

	step = "key pair " + rn
	keyName, err := cr.ensureKeyPair(ctx, len(live) == 1)
	if err != nil {
		return nil, step, err
	}

	step = "security group " + rn
	sg, err := cr.ensureSecurityGroup(ctx)
	if err != nil {
		return nil, step, err
	}
	step = "security group rules of " + rn
	if err := c.reconcileIngress(ctx, sg, wantedRules(p.cidrs, p.ports), name); err != nil {
		return nil, step, err
	}

	step = "run instance " + rn
	var id string
	var launched time.Time
	if len(live) == 1 {
		id = live[0].ID
		c.logf("instance %s: found %s (%s)", rn, id, live[0].State)
		if s := live[0].State; s == "stopping" || s == "stopped" {
			return nil, step, fmt.Errorf("instance %s of broker %s is %s: start it (`kafkaup start %s`) and rerun", id, name, s, name)
		}
	} else {
		id, err = cr.runInstance(ctx, keyName, aws.ToString(sg.GroupId))
		if err != nil {
			return nil, step, err
		}
		launched = time.Now()
	}

	step = "wait for instance " + id + " to run"
	inst, err := c.waitRunning(ctx, id)
	if err != nil {
		return nil, step, err
	}
	running := time.Now()
	cr.warnDrift(inst)

	var eip *types.Address
	if p.req.ElasticIP || p.req.EIPAllocationID != "" {
		step = "elastic IP for " + rn
		eip, err = cr.ensureEIP(ctx, id)
		if err != nil {
			return nil, step, err
		}
		step = "read back instance " + id
		if inst, err = c.describeInstance(ctx, id); err != nil {
			return nil, step, err
		}
	}
	b := brokerFromInstance(*inst)
	b.Name = name
	if eip != nil {
		b.setEIP(*eip)
	}
	b.PrivateKeyPEM = cr.privateKey
	if !launched.IsZero() {
		b.Launched, b.Running = launched, running
	}
	return &b, "", nil
}

func instanceIDs(is []Instance) string {
	var ids []string
	for _, i := range is {
		ids = append(ids, i.ID)
	}
	return strings.Join(ids, ", ")
}
