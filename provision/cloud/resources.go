package cloud

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Broker is one broker's instance as EC2 reports it.
type Broker struct {
	Name            string
	InstanceID      string
	State           string // EC2 instance state (pending, running, stopped, ...); "incomplete" in List when only other resources exist
	PublicIP        string
	PublicDNS       string
	PrivateIP       string
	Zone            string // the availability zone
	Node            int    // the node it runs (its kafkaup:node tag; 1 without one)
	InstanceType    string
	Arch            string // amd64 or arm64
	AMI             string
	KeyName         string
	SecurityGroupID string
	EIPAllocationID string // the Elastic IP associated with the instance, if any
	EIPOwned        bool   // kafkaup allocated it (Destroy releases it); false: the user's
	LaunchTime      time.Time
	// Launched and Running are this machine's clock when this Create's
	// RunInstances returned and when it saw the instance running (zero
	// when it found an instance from an earlier run): create's timeline.
	Launched, Running time.Time
	// PrivateKeyPEM is the OpenSSH private key of a key pair Create made
	// in this call (CreateRequest.SSHPublicKey was nil). Store it 0600.
	PrivateKeyPEM []byte
}

// Resources are a broker's AWS resources, found by tag.
type Resources struct {
	Broker         string
	Instances      []Instance // not terminated
	SecurityGroups []SecurityGroup
	KeyPairs       []KeyPair
	// ElasticIPs: those kafkaup allocated for the broker (Owned), and the
	// user's associated with its instance (not Owned: listed for
	// information, never released).
	ElasticIPs []ElasticIP
}

type Instance struct {
	ID       string
	State    string
	PublicIP string // empty when it has none (stopped, no public subnet)
	Node     int    // its kafkaup:node tag (1 without one)
}

type SecurityGroup struct {
	ID, Name, VpcID string
}

type KeyPair struct {
	ID, Name string
}

type ElasticIP struct {
	AllocationID  string
	PublicIP      string
	AssociationID string
	InstanceID    string
	Owned         bool
}

// Empty reports whether nothing of the broker's that kafkaup would delete
// is left (the user's Elastic IPs do not count).
func (r *Resources) Empty() bool {
	if r == nil {
		return true
	}
	return len(r.Instances) == 0 && len(r.SecurityGroups) == 0 && len(r.KeyPairs) == 0 && len(r.OwnedEIPs()) == 0
}

// OwnedEIPs are the Elastic IPs kafkaup allocated for the broker.
func (r *Resources) OwnedEIPs() []ElasticIP {
	var out []ElasticIP
	for _, e := range r.ElasticIPs {
		if e.Owned {
			out = append(out, e)
		}
	}
	return out
}

// add puts into r what o lists and r does not (by id).
func (r *Resources) add(o *Resources) {
	if r == nil || o == nil {
		return
	}
	have := map[string]bool{}
	for _, i := range r.Instances {
		have[i.ID] = true
	}
	for _, g := range r.SecurityGroups {
		have[g.ID] = true
	}
	for _, k := range r.KeyPairs {
		have[k.ID] = true
		have["key:"+k.Name] = true
	}
	for _, e := range r.ElasticIPs {
		have[e.AllocationID] = true
	}
	for _, i := range o.Instances {
		if !have[i.ID] {
			r.Instances = append(r.Instances, i)
		}
	}
	for _, g := range o.SecurityGroups {
		if !have[g.ID] {
			r.SecurityGroups = append(r.SecurityGroups, g)
		}
	}
	for _, k := range o.KeyPairs {
		if !have[k.ID] && !have["key:"+k.Name] {
			r.KeyPairs = append(r.KeyPairs, k)
		}
	}
	for _, e := range o.ElasticIPs {
		if !have[e.AllocationID] {
			r.ElasticIPs = append(r.ElasticIPs, e)
		}
	}
}

// PublicIPs are the public addresses of the broker's instances and Elastic
// IPs, each once (SSH host keys were pinned under these).
func (r *Resources) PublicIPs() []string {
	if r == nil {
		return nil
	}
	var out []string
	seen := map[string]bool{"": true}
	add := func(ip string) {
		if !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	for _, i := range r.Instances {
		add(i.PublicIP)
	}
	for _, e := range r.ElasticIPs {
		add(e.PublicIP)
	}
	return out
}

// Lines describes each resource for people, one per entry.
func (r *Resources) Lines() []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, i := range r.Instances {
		out = append(out, fmt.Sprintf("instance %s (%s)", i.ID, i.State))
	}
	for _, e := range r.ElasticIPs {
		if e.Owned {
			out = append(out, fmt.Sprintf("elastic IP %s (%s)", e.PublicIP, e.AllocationID))
		} else {
			out = append(out, fmt.Sprintf("your elastic IP %s (%s, kept)", e.PublicIP, e.AllocationID))
		}
	}
	for _, g := range r.SecurityGroups {
		out = append(out, fmt.Sprintf("security group %s (%s)", g.Name, g.ID))
	}
	for _, k := range r.KeyPairs {
		out = append(out, fmt.Sprintf("key pair %s (%s)", k.Name, k.ID))
	}
	return out
}

// liveStates are the instance states Find and List see: everything but
// terminated.
var liveStates = []string{"pending", "running", "shutting-down", "stopping", "stopped"}

// brokerFilters select what is tagged as broker name's and as kafkaup's.
// Every lookup that can lead to a deletion goes through them.
func brokerFilters(name string) []types.Filter {
	return []types.Filter{
		{Name: aws.String("tag:" + TagBroker), Values: []string{name}},
		{Name: aws.String("tag:" + TagManaged), Values: []string{"true"}},
	}
}

func managedFilters() []types.Filter {
	return []types.Filter{{Name: aws.String("tag:" + TagManaged), Values: []string{"true"}}}
}

// Find returns everything tagged as broker name's: instances that are not
// terminated, security groups, key pairs, the Elastic IPs kafkaup
// allocated, and any Elastic IP associated with those instances.
func (c *Cloud) Find(ctx context.Context, name string) (*Resources, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	insts, err := c.describeInstances(ctx, append(brokerFilters(name),
		types.Filter{Name: aws.String("instance-state-name"), Values: liveStates}))
	if err != nil {
		return nil, fmt.Errorf("find instances of broker %s: %w", name, err)
	}
	sgs, err := c.describeSecurityGroups(ctx, brokerFilters(name))
	if err != nil {
		return nil, fmt.Errorf("find security groups of broker %s: %w", name, err)
	}
	kps, err := c.describeKeyPairs(ctx, brokerFilters(name))
	if err != nil {
		return nil, fmt.Errorf("find key pairs of broker %s: %w", name, err)
	}
	var ids []string
	for _, i := range insts {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	addrs, err := c.brokerAddresses(ctx, name, ids)
	if err != nil {
		return nil, fmt.Errorf("find elastic IPs of broker %s: %w", name, err)
	}
	r := &Resources{Broker: name}
	for _, i := range insts {
		r.Instances = append(r.Instances, Instance{ID: aws.ToString(i.InstanceId), State: stateName(i), PublicIP: aws.ToString(i.PublicIpAddress), Node: nodeOf(i.Tags)})
	}
	for _, g := range sgs {
		r.SecurityGroups = append(r.SecurityGroups, SecurityGroup{ID: aws.ToString(g.GroupId), Name: aws.ToString(g.GroupName), VpcID: aws.ToString(g.VpcId)})
	}
	for _, k := range kps {
		r.KeyPairs = append(r.KeyPairs, KeyPair{ID: aws.ToString(k.KeyPairId), Name: aws.ToString(k.KeyName)})
	}
	for _, a := range addrs {
		r.ElasticIPs = append(r.ElasticIPs, elasticIP(a, name))
	}
	return r, nil
}

// brokerAddresses: the EIPs tagged as the broker's plus those associated
// with instanceIDs, each once.
func (c *Cloud) brokerAddresses(ctx context.Context, name string, instanceIDs []string) ([]types.Address, error) {
	tagged, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: brokerFilters(name)})
	if err != nil {
		return nil, advise(err)
	}
	out := tagged.Addresses
	if len(instanceIDs) == 0 {
		return out, nil
	}
	attached, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("instance-id"), Values: instanceIDs},
	}})
	if err != nil {
		return nil, advise(err)
	}
	seen := map[string]bool{}
	for _, a := range out {
		seen[aws.ToString(a.AllocationId)] = true
	}
	for _, a := range attached.Addresses {
		if !seen[aws.ToString(a.AllocationId)] {
			out = append(out, a)
		}
	}
	return out, nil
}

// eipOwned: kafkaup allocated this address for broker name.
func eipOwned(a types.Address, name string) bool {
	return tagValue(a.Tags, TagBroker) == name && tagValue(a.Tags, TagManaged) == "true" && tagValue(a.Tags, TagEIPOwned) == "true"
}

func elasticIP(a types.Address, name string) ElasticIP {
	return ElasticIP{
		AllocationID:  aws.ToString(a.AllocationId),
		PublicIP:      aws.ToString(a.PublicIp),
		AssociationID: aws.ToString(a.AssociationId),
		InstanceID:    aws.ToString(a.InstanceId),
		Owned:         eipOwned(a, name),
	}
}

// List returns every kafkaup broker in the region, sorted by name: one
// entry per instance that is not terminated, and an "incomplete" entry for
// a broker that has only a security group, key pair or Elastic IP left
// (a failed create or destroy: destroy NAME removes it).
func (c *Cloud) List(ctx context.Context) ([]Broker, error) {
	insts, err := c.describeInstances(ctx, append(managedFilters(),
		types.Filter{Name: aws.String("instance-state-name"), Values: liveStates}))
	if err != nil {
		return nil, fmt.Errorf("list kafkaup instances: %w", err)
	}
	var ids []string
	for _, i := range insts {
		ids = append(ids, aws.ToString(i.InstanceId))
	}
	eipByInstance := map[string]types.Address{}
	if len(ids) > 0 {
		out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
			{Name: aws.String("instance-id"), Values: ids},
		}})
		if err != nil {
			return nil, fmt.Errorf("list elastic IPs of kafkaup instances: %w", advise(err))
		}
		for _, a := range out.Addresses {
			eipByInstance[aws.ToString(a.InstanceId)] = a
		}
	}
	var brokers []Broker
	have := map[string]bool{}
	for _, i := range insts {
		b := brokerFromInstance(i)
		if a, ok := eipByInstance[b.InstanceID]; ok {
			b.setEIP(a)
		}
		have[b.Name] = true
		brokers = append(brokers, b)
	}

	// Leftovers without an instance.
	partial := map[string]*Broker{}
	get := func(tags []types.Tag) *Broker {
		name := tagValue(tags, TagBroker)
		if name == "" || have[name] {
			return nil
		}
		if partial[name] == nil {
			partial[name] = &Broker{Name: name, State: "incomplete"}
		}
		return partial[name]
	}
	sgs, err := c.describeSecurityGroups(ctx, managedFilters())
	if err != nil {
		return nil, fmt.Errorf("list kafkaup security groups: %w", err)
	}
	for _, g := range sgs {
		if b := get(g.Tags); b != nil {
			b.SecurityGroupID = aws.ToString(g.GroupId)
		}
	}
	kps, err := c.describeKeyPairs(ctx, managedFilters())
	if err != nil {
		return nil, fmt.Errorf("list kafkaup key pairs: %w", err)
	}
	for _, k := range kps {
		if b := get(k.Tags); b != nil {
			b.KeyName = aws.ToString(k.KeyName)
		}
	}
	addrs, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: managedFilters()})
	if err != nil {
		return nil, fmt.Errorf("list kafkaup elastic IPs: %w", advise(err))
	}
	for _, a := range addrs.Addresses {
		if b := get(a.Tags); b != nil {
			b.EIPAllocationID = aws.ToString(a.AllocationId)
			b.EIPOwned = eipOwned(a, b.Name)
			b.PublicIP = aws.ToString(a.PublicIp)
		}
	}
	for _, b := range partial {
		brokers = append(brokers, *b)
	}
	sort.SliceStable(brokers, func(i, j int) bool {
		if brokers[i].Name != brokers[j].Name {
			return brokers[i].Name < brokers[j].Name
		}
		return brokers[i].LaunchTime.Before(brokers[j].LaunchTime)
	})
	return brokers, nil
}

func brokerFromInstance(i types.Instance) Broker {
	b := Broker{
		Name:         tagValue(i.Tags, TagBroker),
		InstanceID:   aws.ToString(i.InstanceId),
		State:        stateName(i),
		PublicIP:     aws.ToString(i.PublicIpAddress),
		PublicDNS:    aws.ToString(i.PublicDnsName),
		PrivateIP:    aws.ToString(i.PrivateIpAddress),
		Node:         nodeOf(i.Tags),
		InstanceType: string(i.InstanceType),
		Arch:         debianArch(i.Architecture),
		AMI:          aws.ToString(i.ImageId),
		KeyName:      aws.ToString(i.KeyName),
		LaunchTime:   aws.ToTime(i.LaunchTime),
	}
	if i.Placement != nil {
		b.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	if len(i.SecurityGroups) > 0 {
		b.SecurityGroupID = aws.ToString(i.SecurityGroups[0].GroupId)
	} else {
		// moto leaves SecurityGroups empty when the instance was launched
		// with a NetworkInterfaces spec; the interface has them.
		for _, ni := range i.NetworkInterfaces {
			if ni.Attachment != nil && aws.ToInt32(ni.Attachment.DeviceIndex) == 0 && len(ni.Groups) > 0 {
				b.SecurityGroupID = aws.ToString(ni.Groups[0].GroupId)
			}
		}
		if b.SecurityGroupID == "" && len(i.NetworkInterfaces) > 0 && len(i.NetworkInterfaces[0].Groups) > 0 {
			b.SecurityGroupID = aws.ToString(i.NetworkInterfaces[0].Groups[0].GroupId)
		}
	}
	return b
}

// setEIP records the Elastic IP associated with the instance. The
// instance's public IP is the Elastic IP's (on AWS it already is; moto
// hands out a new one on start).
func (b *Broker) setEIP(a types.Address) {
	b.EIPAllocationID = aws.ToString(a.AllocationId)
	b.EIPOwned = eipOwned(a, b.Name)
	if ip := aws.ToString(a.PublicIp); ip != "" {
		b.PublicIP = ip
	}
}

func stateName(i types.Instance) string {
	if i.State == nil {
		return ""
	}
	return string(i.State.Name)
}

func debianArch(a types.ArchitectureValues) string {
	switch a {
	case types.ArchitectureValuesX8664:
		return "amd64"
	case types.ArchitectureValuesArm64:
		return "arm64"
	}
	return string(a)
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func (c *Cloud) describeInstances(ctx context.Context, filters []types.Filter) ([]types.Instance, error) {
	var out []types.Instance
	p := ec2.NewDescribeInstancesPaginator(c.EC2, &ec2.DescribeInstancesInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, advise(err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

func (c *Cloud) describeSecurityGroups(ctx context.Context, filters []types.Filter) ([]types.SecurityGroup, error) {
	var out []types.SecurityGroup
	p := ec2.NewDescribeSecurityGroupsPaginator(c.EC2, &ec2.DescribeSecurityGroupsInput{Filters: filters})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, advise(err)
		}
		out = append(out, page.SecurityGroups...)
	}
	return out, nil
}

func (c *Cloud) describeKeyPairs(ctx context.Context, filters []types.Filter) ([]types.KeyPairInfo, error) {
	out, err := c.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{Filters: filters, IncludePublicKey: aws.Bool(true)})
	if err != nil {
		return nil, advise(err)
	}
	return out.KeyPairs, nil
}

func tagSpec(rt types.ResourceType, name string, extra ...types.Tag) []types.TagSpecification {
	tags := []types.Tag{
		{Key: aws.String(TagName), Value: aws.String(ResourceName(name))},
		{Key: aws.String(TagBroker), Value: aws.String(name)},
		{Key: aws.String(TagManaged), Value: aws.String("true")},
	}
	tags = append(tags, extra...)
	return []types.TagSpecification{{ResourceType: rt, Tags: tags}}
}
