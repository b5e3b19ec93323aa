package cloud

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Create makes broker req.Name exist with one instance (req.Nodes 0 or
// 1): CreateNodes for a single node.
func (c *Cloud) Create(ctx context.Context, req CreateRequest) (*Broker, error) {
	if req.Nodes > 1 {
		return nil, requestErrorf("Create makes one instance; a cluster of %d nodes is made by CreateNodes", req.Nodes)
	}
	bs, err := c.CreateNodes(ctx, req)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// CreateNodes makes broker req.Name exist: key pair, security group with
// exactly the requested ingress (and, for several nodes, the cluster's
// own ports from the group itself), one running instance per node
// (launched at once, each in its own zone while there are zones enough)
// and, if asked, an associated Elastic IP per node. It validates req
// first, as Validate does, and returns its error as it is (a
// *RequestError when the request is at fault; nothing is created). Then,
// step by step, it finds by tag what an earlier run created and creates
// only what is missing, tagging everything in the create call. Errors
// after validation are *CreateError: the step, the cause and what exists.
// The brokers are returned in node order.
func (c *Cloud) CreateNodes(ctx context.Context, req CreateRequest) ([]*Broker, error) {
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
	bs, step, err := cr.run(ctx)
	if err != nil {
		return nil, c.createError(ctx, name, step, err, cr.privateKey, cr.made)
	}
	return bs, nil
}

// Layout validates req as Validate does and says where each node's
// instance would be launched.
func (c *Cloud) Layout(ctx context.Context, req CreateRequest) ([]Placement, error) {
	p, err := c.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	return p.placements, nil
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
	clientToken string // each node's launch adds its node number
	existing    *Resources
	privateKey  []byte

	mu sync.Mutex // guards made: nodes are launched at once
	// made is what this run created, for the error report.
	made *Resources
}

// note records a resource this run made.
func (cr *creation) note(f func(m *Resources)) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	f(cr.made)
}

func (cr *creation) run(ctx context.Context) ([]*Broker, string, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)

	step := "find existing resources"
	existing, err := c.Find(ctx, name)
	if err != nil {
		return nil, step, err
	}
	cr.existing = existing
	live, err := liveByNode(name, existing.Instances)
	if err != nil {
		return nil, step, err
	}
	for n, i := range live {
		if n > p.req.Nodes {
			return nil, step, fmt.Errorf("broker %s has an instance for node %d (%s), so it has more nodes than the %d asked for: pass its own --nodes, or destroy it first", name, n, i.ID, p.req.Nodes)
		}
	}

	step = "key pair " + rn
	keyName, err := cr.ensureKeyPair(ctx, len(live) > 0)
	if err != nil {
		return nil, step, err
	}

	step = "security group " + rn
	sg, err := cr.ensureSecurityGroup(ctx)
	if err != nil {
		return nil, step, err
	}
	step = "security group rules of " + rn
	want := wantedRules(p.cidrs, p.ports)
	if p.req.Nodes > 1 {
		want = append(want, selfRules(aws.ToString(sg.GroupId))...)
	}
	if err := c.reconcileIngress(ctx, sg, want, name); err != nil {
		return nil, step, err
	}

	brokers := make([]*Broker, p.req.Nodes)
	steps := make([]string, p.req.Nodes)
	errs := make([]error, p.req.Nodes)
	var wg sync.WaitGroup
	for i := range brokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var found *Instance
			if inst, ok := live[i+1]; ok {
				found = &inst
			}
			brokers[i], steps[i], errs[i] = cr.node(ctx, i+1, found, keyName, aws.ToString(sg.GroupId))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, steps[i], err
		}
	}
	return brokers, "", nil
}

// node makes node n's instance run (launching it unless found) with its
// Elastic IP if asked, and reads it back.
func (cr *creation) node(ctx context.Context, n int, found *Instance, keyName, sgID string) (*Broker, string, error) {
	c, p, name := cr.c, cr.p, cr.name
	label := ResourceName(name)
	if p.req.Nodes > 1 {
		label = fmt.Sprintf("%s (node %d)", label, n)
	}
	step := "run instance " + label
	var id string
	var launched time.Time
	var err error
	if found != nil {
		id = found.ID
		c.logf("instance %s: found %s (%s)", label, id, found.State)
		if s := found.State; s == "stopping" || s == "stopped" {
			return nil, step, fmt.Errorf("instance %s of broker %s is %s: start it (`kafkaup start %s`) and rerun", id, name, s, name)
		}
	} else {
		id, err = cr.runInstance(ctx, n, keyName, sgID)
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
		step = "elastic IP for " + label
		eip, err = cr.ensureEIP(ctx, n, id)
		if err != nil {
			return nil, step, err
		}
		step = "read back instance " + id
		if inst, err = c.describeInstance(ctx, id); err != nil {
			return nil, step, err
		}
	}
	b := brokerFromInstance(*inst)
	b.Name, b.Node = name, n
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
