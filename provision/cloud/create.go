package cloud

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
)

// KafkaPort and SSHPort are the only ports the security group opens.
const (
	SSHPort   = 22
	KafkaPort = 9092
)

// Create makes broker req.Name exist: key pair, security group with exactly
// the requested ingress, a running instance and, if asked, an associated
// Elastic IP. It validates req first (nothing is created on bad input) and
// then, step by step, finds by tag what an earlier run created and creates
// only what is missing, tagging everything in the create call. Errors after
// validation are *CreateError: the step, the cause and what exists.
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

// clientToken makes RunInstances idempotent for this Create: every retry
// of the launch, by the SDK or by kafkaup, carries the same token, so EC2
// answers a repeated launch with the instance it already started.
func clientToken(name string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a client token: %w", err)
	}
	return fmt.Sprintf("%s-%x", resourceName(name), b), nil // at most 61 of the 64 characters EC2 takes
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
	rn := resourceName(name)

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
	if err := c.reconcileIngress(ctx, sg, p.cidrs, name); err != nil {
		return nil, step, err
	}

	step = "run instance " + rn
	var id string
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
	}

	step = "wait for instance " + id + " to run"
	inst, err := c.waitRunning(ctx, id)
	if err != nil {
		return nil, step, err
	}
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
	return &b, "", nil
}

func instanceIDs(is []Instance) string {
	var ids []string
	for _, i := range is {
		ids = append(ids, i.ID)
	}
	return strings.Join(ids, ", ")
}

// ensureKeyPair returns the key pair's name. The broker's tagged key pair
// is kept if it holds the requested key (or, when no key was given, if an
// instance already uses it); otherwise it is replaced, which is only
// possible before the instance exists.
func (cr *creation) ensureKeyPair(ctx context.Context, haveInstance bool) (string, error) {
	c, name := cr.c, cr.name
	rn := resourceName(name)
	kps, err := c.describeKeyPairs(ctx, brokerFilters(name))
	if err != nil {
		return "", fmt.Errorf("find key pair: %w", err)
	}
	if len(kps) > 1 {
		return "", fmt.Errorf("broker %s has %d key pairs tagged as its own; destroy it and create it again", name, len(kps))
	}
	var found *types.KeyPairInfo
	if len(kps) == 1 {
		found = &kps[0]
	}
	for byName := false; ; byName = true {
		if found != nil {
			keep, err := cr.keepKeyPair(ctx, *found, haveInstance)
			if err != nil {
				return "", err
			}
			if keep {
				return aws.ToString(found.KeyName), nil
			}
		}
		importErr := cr.importKeyPair(ctx)
		if importErr == nil {
			return rn, nil
		}
		if !hasCode(importErr, "InvalidKeyPair.Duplicate") || byName {
			return "", fmt.Errorf("import key pair: %w", importErr)
		}
		// The name is taken: by this broker's key pair from an earlier
		// run that the lookup by tag does not show yet, or by one
		// kafkaup did not create.
		kp, err := cr.keyPairByName(ctx, rn)
		if err != nil {
			return "", err
		}
		if !ownedBy(kp.Tags, name) {
			return "", fmt.Errorf("a key pair named %s exists but is not tagged as kafkaup's broker %s, and kafkaup never touches what it did not tag: delete it if it is a leftover (aws ec2 delete-key-pair --key-name %s) or choose another broker name: %w", rn, name, rn, importErr)
		}
		c.logf("key pair %s: found %s by name (the lookup by tag did not show it yet)", rn, aws.ToString(kp.KeyPairId))
		found = kp
	}
}

// keepKeyPair decides about the broker's existing key pair kp: keep it,
// refuse, or delete it to be replaced (keep false, nil error).
func (cr *creation) keepKeyPair(ctx context.Context, kp types.KeyPairInfo, haveInstance bool) (bool, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := resourceName(name)
	same, known := samePublicKey(aws.ToString(kp.PublicKey), p.pubKey)
	switch {
	case p.pubKey == nil && haveInstance:
		c.logf("key pair %s: found %s (its private key was returned when it was created)", rn, aws.ToString(kp.KeyPairId))
		return true, nil
	case p.pubKey != nil && (same || !known):
		c.logf("key pair %s: found %s", rn, aws.ToString(kp.KeyPairId))
		return true, nil
	case haveInstance:
		return false, fmt.Errorf("key pair %s holds another public key than the one given, and the instance was launched with it: pass the key it was created with, or destroy broker %s and create it again", aws.ToString(kp.KeyName), name)
	}
	// No instance yet: replace it with the requested (or a new) key.
	c.logf("key pair %s: replacing %s (no instance uses it yet)", rn, aws.ToString(kp.KeyPairId))
	if _, err := c.EC2.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: kp.KeyName}); err != nil && !hasCode(err, "InvalidKeyPair.NotFound") {
		return false, fmt.Errorf("delete key pair %s to replace it: %w", aws.ToString(kp.KeyPairId), err)
	}
	return false, nil
}

// importKeyPair imports the requested public key, or a new one whose
// private half it keeps in cr.privateKey.
func (cr *creation) importKeyPair(ctx context.Context) error {
	c, p, name := cr.c, cr.p, cr.name
	rn := resourceName(name)
	pub, priv := p.pubKey, []byte(nil)
	if pub == nil {
		var err error
		if priv, pub, err = generateKey(rn); err != nil {
			return err
		}
	}
	out, err := c.EC2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
		KeyName:           aws.String(rn),
		PublicKeyMaterial: ssh.MarshalAuthorizedKey(pub),
		TagSpecifications: tagSpec(types.ResourceTypeKeyPair, name),
	})
	if err != nil {
		return err
	}
	cr.privateKey = priv
	cr.made.KeyPairs = append(cr.made.KeyPairs, KeyPair{ID: aws.ToString(out.KeyPairId), Name: rn})
	c.logf("key pair %s: imported %s", rn, aws.ToString(out.KeyPairId))
	return nil
}

// keyPairByName is the key pair named rn, waiting for EC2 to show it
// (ImportKeyPair has just said it exists).
func (cr *creation) keyPairByName(ctx context.Context, rn string) (*types.KeyPairInfo, error) {
	var kp *types.KeyPairInfo
	err := cr.c.untilVisible(ctx, "find key pair "+rn+" by name", notYet("InvalidKeyPair.NotFound"), func() error {
		out, err := cr.c.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{rn}, IncludePublicKey: aws.Bool(true)})
		if err != nil {
			return err
		}
		for _, k := range out.KeyPairs {
			if aws.ToString(k.KeyName) == rn {
				kp = &k
				return nil
			}
		}
		return errNotListed
	})
	return kp, err
}

// ownedBy: tagged as kafkaup's broker name's.
func ownedBy(tags []types.Tag, name string) bool {
	return tagValue(tags, TagBroker) == name && tagValue(tags, TagManaged) == "true"
}

// samePublicKey compares an authorized_keys line from AWS with want.
// known is false when AWS did not return the key.
func samePublicKey(line string, want ssh.PublicKey) (same, known bool) {
	if line == "" || want == nil {
		return false, line != ""
	}
	got, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return false, false
	}
	return bytes.Equal(got.Marshal(), want.Marshal()), true
}

// generateKey makes an ed25519 key: its OpenSSH private key PEM and public
// key.
func generateKey(comment string) ([]byte, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate an ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the ed25519 key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(block), sshPub, nil
}

func (cr *creation) ensureSecurityGroup(ctx context.Context) (*types.SecurityGroup, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := resourceName(name)
	sgs, err := c.describeSecurityGroups(ctx, brokerFilters(name))
	if err != nil {
		return nil, fmt.Errorf("find security group: %w", err)
	}
	if len(sgs) > 1 {
		return nil, fmt.Errorf("broker %s has %d security groups tagged as its own; destroy it and create it again", name, len(sgs))
	}
	if len(sgs) == 1 {
		sg := sgs[0]
		if v := aws.ToString(sg.VpcId); v != p.vpcID {
			return nil, fmt.Errorf("the broker's security group %s is in %s but subnet %s is in %s: create it in the same VPC as before (--subnet), or destroy broker %s first", aws.ToString(sg.GroupId), v, p.subnetID, p.vpcID, name)
		}
		c.logf("security group %s: found %s", rn, aws.ToString(sg.GroupId))
		return &sg, nil
	}
	out, err := c.EC2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName:         aws.String(rn),
		Description:       aws.String(fmt.Sprintf("kafkaup broker %s: SSH and Kafka from allowed addresses", name)),
		VpcId:             aws.String(p.vpcID),
		TagSpecifications: tagSpec(types.ResourceTypeSecurityGroup, name),
	})
	if err != nil {
		if !hasCode(err, "InvalidGroup.Duplicate") {
			return nil, fmt.Errorf("create security group: %w", err)
		}
		// The name is taken in this VPC: by this broker's group from an
		// earlier run that the lookup by tag does not show yet, or by
		// one kafkaup did not create.
		sg, lerr := c.securityGroupByName(ctx, rn, p.vpcID)
		if lerr != nil {
			return nil, lerr
		}
		if !ownedBy(sg.Tags, name) {
			return nil, fmt.Errorf("a security group named %s exists in %s but is not tagged as kafkaup's broker %s, and kafkaup never touches what it did not tag: delete it if it is a leftover or choose another broker name: %w", rn, p.vpcID, name, err)
		}
		c.logf("security group %s: found %s by name (the lookup by tag did not show it yet)", rn, aws.ToString(sg.GroupId))
		return sg, nil
	}
	cr.made.SecurityGroups = append(cr.made.SecurityGroups, SecurityGroup{ID: aws.ToString(out.GroupId), Name: rn, VpcID: p.vpcID})
	c.logf("security group %s: created %s in %s", rn, aws.ToString(out.GroupId), p.vpcID)
	// Just created: no ingress rules yet (AWS adds only the default egress).
	return &types.SecurityGroup{GroupId: out.GroupId, GroupName: aws.String(rn), VpcId: aws.String(p.vpcID)}, nil
}

// securityGroupByName is the group named rn in vpcID, waiting for EC2 to
// show it (CreateSecurityGroup has just said it exists).
func (c *Cloud) securityGroupByName(ctx context.Context, rn, vpcID string) (*types.SecurityGroup, error) {
	return c.securityGroupWhere(ctx, "find security group "+rn+" in "+vpcID+" by name", []types.Filter{
		{Name: aws.String("group-name"), Values: []string{rn}},
		{Name: aws.String("vpc-id"), Values: []string{vpcID}},
	})
}

// securityGroupByID reads group id again, waiting for EC2 to show it.
func (c *Cloud) securityGroupByID(ctx context.Context, id string) (*types.SecurityGroup, error) {
	return c.securityGroupWhere(ctx, "read security group "+id, []types.Filter{{Name: aws.String("group-id"), Values: []string{id}}})
}

func (c *Cloud) securityGroupWhere(ctx context.Context, what string, filters []types.Filter) (*types.SecurityGroup, error) {
	var sg *types.SecurityGroup
	err := c.untilVisible(ctx, what, notYet("InvalidGroup.NotFound"), func() error {
		sgs, err := c.describeSecurityGroups(ctx, filters)
		if err != nil {
			return err
		}
		if len(sgs) != 1 {
			return errNotListed
		}
		sg = &sgs[0]
		return nil
	})
	return sg, err
}

// rule is one ingress permission for one source.
type rule struct {
	proto    string
	from, to int32
	source   string // CIDR, "sg:ID", "pl:ID"
}

func (r rule) String() string {
	if r.from == r.to {
		return fmt.Sprintf("%s/%d from %s", r.proto, r.from, r.source)
	}
	return fmt.Sprintf("%s/%d-%d from %s", r.proto, r.from, r.to, r.source)
}

func (r rule) permission() types.IpPermission {
	perm := types.IpPermission{IpProtocol: aws.String(r.proto)}
	if r.proto != "-1" {
		perm.FromPort, perm.ToPort = aws.Int32(r.from), aws.Int32(r.to)
	}
	switch {
	case strings.HasPrefix(r.source, "sg:"):
		perm.UserIdGroupPairs = []types.UserIdGroupPair{{GroupId: aws.String(strings.TrimPrefix(r.source, "sg:"))}}
	case strings.HasPrefix(r.source, "pl:"):
		perm.PrefixListIds = []types.PrefixListId{{PrefixListId: aws.String(strings.TrimPrefix(r.source, "pl:"))}}
	case strings.Contains(r.source, ":"):
		perm.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(r.source)}}
	default:
		perm.IpRanges = []types.IpRange{{CidrIp: aws.String(r.source)}}
	}
	return perm
}

func rulesOf(perms []types.IpPermission) []rule {
	var out []rule
	for _, p := range perms {
		r := rule{proto: aws.ToString(p.IpProtocol), from: aws.ToInt32(p.FromPort), to: aws.ToInt32(p.ToPort)}
		for _, x := range p.IpRanges {
			r.source = aws.ToString(x.CidrIp)
			out = append(out, r)
		}
		for _, x := range p.Ipv6Ranges {
			r.source = aws.ToString(x.CidrIpv6)
			out = append(out, r)
		}
		for _, x := range p.UserIdGroupPairs {
			r.source = "sg:" + aws.ToString(x.GroupId)
			out = append(out, r)
		}
		for _, x := range p.PrefixListIds {
			r.source = "pl:" + aws.ToString(x.PrefixListId)
			out = append(out, r)
		}
	}
	return out
}

func wantedRules(cidrs []netip.Prefix) []rule {
	var out []rule
	for _, port := range []int32{SSHPort, KafkaPort} {
		for _, c := range cidrs {
			out = append(out, rule{proto: "tcp", from: port, to: port, source: c.String()})
		}
	}
	return out
}

// diffRules: what to revoke (in have, not wanted) and to add (wanted, not
// in have).
func diffRules(have, want []rule) (revoke, add []rule) {
	inHave, inWant := map[rule]bool{}, map[rule]bool{}
	for _, r := range have {
		inHave[r] = true
	}
	for _, r := range want {
		inWant[r] = true
		if !inHave[r] {
			add = append(add, r)
		}
	}
	for _, r := range have {
		if !inWant[r] {
			revoke = append(revoke, r)
		}
	}
	return revoke, add
}

// reconcileIngress makes the group's ingress exactly tcp 22 and 9092 from
// cidrs: it revokes every other rule and adds the missing ones (tagged).
// A group created a moment ago may answer InvalidGroup.NotFound for a
// while; that is waited out. A change EC2 made but whose answer was lost
// (the SDK then retries it) answers InvalidPermission.Duplicate or
// .NotFound: the rules are read again and the rest is done.
func (c *Cloud) reconcileIngress(ctx context.Context, sg *types.SecurityGroup, cidrs []netip.Prefix, name string) error {
	id := aws.ToString(sg.GroupId)
	have := rulesOf(sg.IpPermissions)
	for pass := 1; ; pass++ {
		err := c.applyIngress(ctx, id, have, cidrs, name)
		if err == nil || pass == 3 || !hasCode(err, "InvalidPermission.Duplicate", "InvalidPermission.NotFound") {
			return err
		}
		c.logf("security group %s: %s; reading its rules again", id, errorCode(err))
		g, rerr := c.securityGroupByID(ctx, id)
		if rerr != nil {
			return fmt.Errorf("%w (after: %v)", rerr, err)
		}
		have = rulesOf(g.IpPermissions)
	}
}

func (c *Cloud) applyIngress(ctx context.Context, id string, have []rule, cidrs []netip.Prefix, name string) error {
	revoke, add := diffRules(have, wantedRules(cidrs))
	groupNotYet := notYet("InvalidGroup.NotFound")
	if len(revoke) > 0 {
		var perms []types.IpPermission
		for _, r := range revoke {
			perms = append(perms, r.permission())
		}
		what := fmt.Sprintf("revoke %s on %s", joinRules(revoke), id)
		err := c.untilVisible(ctx, what, groupNotYet, func() error {
			_, err := c.EC2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: aws.String(id), IpPermissions: perms})
			return err
		})
		if err != nil {
			return err
		}
		c.logf("security group %s: revoked %s", id, joinRules(revoke))
	}
	if len(add) > 0 {
		var perms []types.IpPermission
		for _, r := range add {
			perms = append(perms, r.permission())
		}
		what := fmt.Sprintf("allow %s on %s", joinRules(add), id)
		err := c.untilVisible(ctx, what, groupNotYet, func() error {
			_, err := c.EC2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{
				GroupId: aws.String(id), IpPermissions: perms,
				TagSpecifications: tagSpec(types.ResourceTypeSecurityGroupRule, name),
			})
			return err
		})
		if err != nil {
			return err
		}
		c.logf("security group %s: allowed %s", id, joinRules(add))
	}
	return nil
}

func joinRules(rs []rule) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.String())
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// runInstance launches the broker's instance. The security group and key
// pair may have been created a moment ago, so InvalidGroup.NotFound and
// InvalidKeyPair.NotFound are waited out; the client token makes every
// attempt the same launch.
func (cr *creation) runInstance(ctx context.Context, keyName, sgID string) (string, error) {
	c, p, name := cr.c, cr.p, cr.name
	in := &ec2.RunInstancesInput{
		ClientToken:  aws.String(cr.clientToken),
		ImageId:      aws.String(p.ami),
		InstanceType: types.InstanceType(p.req.InstanceType),
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		KeyName:      aws.String(keyName),
		NetworkInterfaces: []types.InstanceNetworkInterfaceSpecification{{
			DeviceIndex:              aws.Int32(0),
			SubnetId:                 aws.String(p.subnetID),
			Groups:                   []string{sgID},
			AssociatePublicIpAddress: aws.Bool(true),
			DeleteOnTermination:      aws.Bool(true),
		}},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired,
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String(p.rootDevice),
			Ebs: &types.EbsBlockDevice{
				VolumeSize:          aws.Int32(int32(p.req.RootSizeGB)),
				VolumeType:          types.VolumeTypeGp3,
				Encrypted:           aws.Bool(true),
				DeleteOnTermination: aws.Bool(true),
			},
		}},
		TagSpecifications: append(append(
			tagSpec(types.ResourceTypeInstance, name),
			tagSpec(types.ResourceTypeVolume, name)...),
			tagSpec(types.ResourceTypeNetworkInterface, name)...),
	}
	var out *ec2.RunInstancesOutput
	what := fmt.Sprintf("launch %s from %s in %s", p.req.InstanceType, p.ami, p.zone)
	err := c.untilVisible(ctx, what, notYet("InvalidGroup.NotFound", "InvalidKeyPair.NotFound"), func() error {
		var err error
		out, err = c.EC2.RunInstances(ctx, in)
		return err
	})
	if err != nil {
		return "", err
	}
	if len(out.Instances) != 1 {
		return "", fmt.Errorf("RunInstances returned %d instances, want 1", len(out.Instances))
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	cr.made.Instances = append(cr.made.Instances, Instance{ID: id, State: "launched"})
	c.logf("instance %s: launched %s (%s, %s, %s)", resourceName(name), id, p.req.InstanceType, p.ami, p.zone)
	return id, nil
}

// warnDrift logs where an existing instance differs from the request:
// create never changes a running instance.
func (cr *creation) warnDrift(inst *types.Instance) {
	if t := string(inst.InstanceType); t != cr.p.req.InstanceType {
		cr.c.logf("instance %s is a %s, not %s as requested: kept (destroy and create to change it)", aws.ToString(inst.InstanceId), t, cr.p.req.InstanceType)
	}
	if a := aws.ToString(inst.ImageId); a != cr.p.ami {
		cr.c.logf("instance %s runs AMI %s, not %s as resolved now: kept", aws.ToString(inst.InstanceId), a, cr.p.ami)
	}
}

// describeInstance reads instance id, which kafkaup has just launched or
// found: InvalidInstanceID.NotFound (or an answer without it) is waited
// out.
func (c *Cloud) describeInstance(ctx context.Context, id string) (*types.Instance, error) {
	var inst *types.Instance
	err := c.untilVisible(ctx, "describe instance "+id, notYet("InvalidInstanceID.NotFound"), func() error {
		out, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return advise(err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				if aws.ToString(i.InstanceId) == id {
					inst = &i
					return nil
				}
			}
		}
		return errNotListed
	})
	return inst, err
}

func (c *Cloud) waitRunning(ctx context.Context, id string) (*types.Instance, error) {
	var watch instanceWatch
	w := ec2.NewInstanceRunningWaiter(c.EC2, func(o *ec2.InstanceRunningWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.waiterMinDelay(), c.waiterMaxDelay()
		o.Retryable = watch.wrap(o.Retryable)
	})
	out, err := w.WaitForOutput(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, c.waitTimeout())
	if err != nil {
		if nv := watch.explain("instance "+id, err); nv != err {
			return nil, nv
		}
		// Say why, when EC2 knows (e.g. Server.InsufficientInstanceCapacity).
		if inst, derr := c.describeInstance(ctx, id); derr == nil && inst.StateReason != nil {
			return nil, fmt.Errorf("instance %s is %s (%s): %w", id, stateName(*inst), aws.ToString(inst.StateReason.Message), err)
		}
		return nil, err
	}
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			if aws.ToString(i.InstanceId) == id {
				c.logf("instance %s: running", id)
				return &i, nil
			}
		}
	}
	return nil, fmt.Errorf("instance %s: running, but missing from DescribeInstances", id)
}

// ensureEIP associates the broker's own Elastic IP (allocating it if
// needed) or the user's, and returns it.
func (cr *creation) ensureEIP(ctx context.Context, instanceID string) (*types.Address, error) {
	c, p, name := cr.c, cr.p, cr.name
	var addr *types.Address
	if p.req.EIPAllocationID != "" {
		a, err := c.userAddress(ctx, p.req.EIPAllocationID)
		if err != nil {
			return nil, err
		}
		addr = a
	} else {
		out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: brokerFilters(name)})
		if err != nil {
			return nil, fmt.Errorf("find elastic IP: %w", err)
		}
		var owned []types.Address
		for _, a := range out.Addresses {
			if eipOwned(a, name) {
				owned = append(owned, a)
			}
		}
		switch len(owned) {
		case 0:
			got, err := c.EC2.AllocateAddress(ctx, &ec2.AllocateAddressInput{
				Domain: types.DomainTypeVpc,
				TagSpecifications: tagSpec(types.ResourceTypeElasticIp, name,
					types.Tag{Key: aws.String(TagEIPOwned), Value: aws.String("true")}),
			})
			if err != nil {
				return nil, fmt.Errorf("allocate elastic IP: %w", err)
			}
			cr.made.ElasticIPs = append(cr.made.ElasticIPs, ElasticIP{AllocationID: aws.ToString(got.AllocationId), PublicIP: aws.ToString(got.PublicIp), Owned: true})
			c.logf("elastic IP %s: allocated %s", aws.ToString(got.PublicIp), aws.ToString(got.AllocationId))
			addr = &types.Address{AllocationId: got.AllocationId, PublicIp: got.PublicIp, Tags: tagSpec(types.ResourceTypeElasticIp, name,
				types.Tag{Key: aws.String(TagEIPOwned), Value: aws.String("true")})[0].Tags}
		case 1:
			addr = &owned[0]
			c.logf("elastic IP %s: found %s", aws.ToString(addr.PublicIp), aws.ToString(addr.AllocationId))
		default:
			return nil, fmt.Errorf("broker %s has %d elastic IPs of its own; destroy it and create it again", name, len(owned))
		}
	}
	switch other := aws.ToString(addr.InstanceId); {
	case other == instanceID:
		return addr, nil
	case other != "" || aws.ToString(addr.AssociationId) != "":
		if other == "" {
			other = "network interface " + aws.ToString(addr.NetworkInterfaceId)
		}
		return nil, fmt.Errorf("Elastic IP %s (%s) is in use by %s: disassociate it first (aws ec2 disassociate-address --association-id %s) or use another one",
			aws.ToString(addr.PublicIp), aws.ToString(addr.AllocationId), other, aws.ToString(addr.AssociationId))
	}
	// The address may have been allocated, and the instance launched, a
	// moment ago.
	var out *ec2.AssociateAddressOutput
	what := fmt.Sprintf("associate elastic IP %s with %s", aws.ToString(addr.AllocationId), instanceID)
	err := c.untilVisible(ctx, what, notYet("InvalidAllocationID.NotFound", "InvalidInstanceID.NotFound"), func() error {
		var err error
		out, err = c.EC2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId: addr.AllocationId, InstanceId: aws.String(instanceID), AllowReassociation: aws.Bool(false),
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	addr.AssociationId, addr.InstanceId = out.AssociationId, aws.String(instanceID)
	c.logf("elastic IP %s: associated with %s", aws.ToString(addr.PublicIp), instanceID)
	return addr, nil
}
