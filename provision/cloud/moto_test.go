package cloud

// Integration tests against a real moto server on 127.0.0.1 (started once
// in TestMain, reset before each test), with failures injected by SDK
// middleware on the real client.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/kafkaup/kafkaup/internal/testenv/moto"
)

var motoServer *moto.Server

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := moto.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start moto:", err)
		os.Exit(1)
	}
	motoServer = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// injector fails chosen operations with chosen AWS error codes, inside the
// SDK's retry loop (so throttling is retried like the real thing).
type injector struct {
	mu    sync.Mutex
	rules map[string][]string // operation -> codes to answer, one per call
	calls map[string]int
}

func (in *injector) fail(op string, codes ...string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules[op] = append(in.rules[op], codes...)
}

func (in *injector) clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = map[string][]string{}
}

func (in *injector) take(op string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls[op]++
	codes := in.rules[op]
	if len(codes) == 0 {
		return ""
	}
	in.rules[op] = codes[1:]
	return codes[0]
}

func (in *injector) option(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("kafkaupInjectFailure",
		func(ctx context.Context, req middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			if code := in.take(awsmiddleware.GetOperationName(ctx)); code != "" {
				return middleware.DeserializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: code, Message: "injected by the test"}
			}
			return next.HandleDeserialize(ctx, req)
		}), middleware.Before)
}

type env struct {
	t       *testing.T
	ctx     context.Context
	c       *Cloud
	raw     *ec2.Client // moto without injection, to read back
	inj     *injector
	faults  *faults // rules that see each call's input (faults_test.go)
	amiTmpl string
	amis    map[string]string

	// The Cloud's clock: its sleeps are recorded and advance it at once.
	mu     sync.Mutex
	sleeps []time.Duration
	now    time.Time
	// sdkPauses are the pauses the SDK's retryer chose; none is taken.
	sdkPauses []time.Duration
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := motoServer.Reset(); err != nil {
		t.Fatal(err)
	}
	tmpl, amis, err := motoServer.PutAMIParameters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inj := &injector{rules: map[string][]string{}, calls: map[string]int{}}
	fl := newFaults()
	cfg, err := motoServer.Config(ctx, config.WithAPIOptions([]func(*middleware.Stack) error{inj.option, fl.option}))
	if err != nil {
		t.Fatal(err)
	}
	// The harness's short retryer out: kafkaup's own retry policy, as it
	// ships, with its pauses recorded and skipped (retryDelay below).
	cfg.Retryer = nil
	c, err := NewFromConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, c: c, inj: inj, faults: fl, amiTmpl: tmpl, amis: amis, now: time.Now()}
	c.WaiterMinDelay = 5 * time.Millisecond
	c.WaitTimeout = 10 * time.Second
	c.SGDeleteBackoff = time.Second
	c.SGDeleteTimeout = 30 * time.Second
	c.sleep = func(ctx context.Context, d time.Duration) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.sleeps = append(e.sleeps, d)
		e.now = e.now.Add(d)
		return ctx.Err()
	}
	c.now = func() time.Time {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.now
	}
	c.retryDelay = func(d time.Duration) time.Duration {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.sdkPauses = append(e.sdkPauses, d)
		return 0
	}
	c.Log = testLog{t}
	rawCfg, err := motoServer.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.raw = ec2.NewFromConfig(rawCfg)
	return e
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const testPubKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMFFcXXktwI4lNqxGSmk4AwZVU9dEdETDC7b6oTFnxl0 test@kafkaup"

func (e *env) request(name string) CreateRequest {
	return CreateRequest{
		Name:         name,
		AMIParameter: e.amiTmpl,
		SSHPublicKey: []byte(testPubKey),
		AllowCIDRs:   []string{"203.0.113.7/32", "198.51.100.0/24"},
		RootSizeGB:   20,
	}
}

// snapshot is everything in moto that a test could leak: instances not
// terminated, security groups other than the VPC defaults, key pairs,
// Elastic IPs.
type snapshot struct {
	Instances, SecurityGroups, KeyPairs, EIPs []string
}

func (s snapshot) empty() bool {
	return len(s.Instances)+len(s.SecurityGroups)+len(s.KeyPairs)+len(s.EIPs) == 0
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	var s snapshot
	insts, err := e.raw.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range insts.Reservations {
		for _, i := range r.Instances {
			if i.State.Name != types.InstanceStateNameTerminated {
				s.Instances = append(s.Instances, aws.ToString(i.InstanceId)+"("+tagValue(i.Tags, TagBroker)+")")
			}
		}
	}
	sgs, err := e.raw.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range sgs.SecurityGroups {
		if aws.ToString(g.GroupName) != "default" {
			s.SecurityGroups = append(s.SecurityGroups, aws.ToString(g.GroupName))
		}
	}
	kps, err := e.raw.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range kps.KeyPairs {
		s.KeyPairs = append(s.KeyPairs, aws.ToString(k.KeyName))
	}
	addrs, err := e.raw.DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range addrs.Addresses {
		s.EIPs = append(s.EIPs, aws.ToString(a.PublicIp)+"("+tagValue(a.Tags, TagBroker)+")")
	}
	for _, l := range [][]string{s.Instances, s.SecurityGroups, s.KeyPairs, s.EIPs} {
		sort.Strings(l)
	}
	return s
}

func (e *env) mustBeEmpty(when string) {
	e.t.Helper()
	if s := e.snapshot(); !s.empty() {
		e.t.Fatalf("%s: moto still holds %+v", when, s)
	}
}

// converged checks broker name is complete and unique in moto: one running
// instance, one SG with exactly the wanted rules, one key pair.
func (e *env) converged(name string, b *Broker, cidrs []string) {
	e.t.Helper()
	s := e.snapshot()
	if len(s.Instances) != 1 || len(s.SecurityGroups) != 1 || len(s.KeyPairs) != 1 {
		e.t.Fatalf("broker %s not converged: %+v", name, s)
	}
	if b.State != "running" || b.InstanceID == "" || b.PublicIP == "" {
		e.t.Fatalf("broker %+v", b)
	}
	e.checkRules(b.SecurityGroupID, cidrs)
}

func (e *env) checkRules(sgID string, cidrs []string) {
	e.t.Helper()
	out, err := e.raw.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{sgID}})
	if err != nil {
		e.t.Fatal(err)
	}
	var got []string
	for _, p := range out.SecurityGroups[0].IpPermissions {
		for _, r := range p.IpRanges {
			got = append(got, fmt.Sprintf("%s:%d-%d:%s", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIp)))
		}
		for _, r := range p.Ipv6Ranges {
			got = append(got, fmt.Sprintf("%s:%d-%d:%s", aws.ToString(p.IpProtocol), aws.ToInt32(p.FromPort), aws.ToInt32(p.ToPort), aws.ToString(r.CidrIpv6)))
		}
		if len(p.UserIdGroupPairs)+len(p.PrefixListIds) > 0 {
			got = append(got, fmt.Sprintf("other source %+v", p))
		}
	}
	var want []string
	for _, port := range []int{22, 9092} {
		for _, c := range cidrs {
			want = append(want, fmt.Sprintf("tcp:%d-%d:%s", port, port, c))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		e.t.Fatalf("security group %s ingress:\n got %v\nwant %v", sgID, got, want)
	}
}

func wantTags(t *testing.T, what string, tags []types.Tag, name string, extra ...string) {
	t.Helper()
	want := map[string]string{TagName: "kafkaup-" + name, TagBroker: name, TagManaged: "true"}
	for i := 0; i+1 < len(extra); i += 2 {
		want[extra[i]] = extra[i+1]
	}
	for k, v := range want {
		if got := tagValue(tags, k); got != v {
			t.Errorf("%s: tag %s = %q, want %q (tags %v)", what, k, got, v, tagsString(tags))
		}
	}
}

func tagsString(tags []types.Tag) string {
	var s []string
	for _, t := range tags {
		s = append(s, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	return strings.Join(s, ",")
}

func TestMotoCreateReadBackDestroy(t *testing.T) {
	e := newEnv(t)
	req := e.request("demo")
	req.ElasticIP = true
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("broker: %+v", *b)
	e.converged("demo", b, req.AllowCIDRs)
	if b.PrivateKeyPEM != nil {
		t.Error("PrivateKeyPEM set although a public key was given")
	}
	if b.Arch != "amd64" || b.AMI != e.amis["amd64"] || b.InstanceType != "t3.micro" || b.KeyName != "kafkaup-demo" {
		t.Errorf("broker %+v", *b)
	}

	// Read everything back from moto.
	inst, err := e.c.describeInstance(e.ctx, b.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
		t.Errorf("metadata options %+v, want HttpTokens=required", inst.MetadataOptions)
	}
	wantTags(t, "instance", inst.Tags, "demo")
	vols, err := e.raw.DescribeVolumes(e.ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{b.InstanceID}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) != 1 {
		t.Fatalf("%d volumes attached", len(vols.Volumes))
	}
	v := vols.Volumes[0]
	if v.VolumeType != types.VolumeTypeGp3 || !aws.ToBool(v.Encrypted) || aws.ToInt32(v.Size) != 20 {
		t.Errorf("root volume: type %s encrypted %v size %d, want gp3 true 20", v.VolumeType, aws.ToBool(v.Encrypted), aws.ToInt32(v.Size))
	}
	wantTags(t, "volume", v.Tags, "demo")
	sgs, err := e.raw.DescribeSecurityGroups(e.ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{b.SecurityGroupID}})
	if err != nil {
		t.Fatal(err)
	}
	wantTags(t, "security group", sgs.SecurityGroups[0].Tags, "demo")
	if aws.ToString(sgs.SecurityGroups[0].GroupName) != "kafkaup-demo" {
		t.Errorf("security group name %s", aws.ToString(sgs.SecurityGroups[0].GroupName))
	}
	kps, err := e.raw.DescribeKeyPairs(e.ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{"kafkaup-demo"}, IncludePublicKey: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	wantTags(t, "key pair", kps.KeyPairs[0].Tags, "demo")
	if got := strings.Fields(aws.ToString(kps.KeyPairs[0].PublicKey)); len(got) < 2 || got[1] != strings.Fields(testPubKey)[1] {
		t.Errorf("key pair holds %q", aws.ToString(kps.KeyPairs[0].PublicKey))
	}
	addrs, err := e.raw.DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{b.EIPAllocationID}})
	if err != nil {
		t.Fatal(err)
	}
	a := addrs.Addresses[0]
	wantTags(t, "elastic IP", a.Tags, "demo", TagEIPOwned, "true")
	if !b.EIPOwned || aws.ToString(a.InstanceId) != b.InstanceID || aws.ToString(a.PublicIp) != b.PublicIP {
		t.Errorf("elastic IP %+v, broker %+v", a, *b)
	}

	// Create again: nothing new; then with other CIDRs: rules reconciled.
	b2, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if b2.InstanceID != b.InstanceID || b2.EIPAllocationID != b.EIPAllocationID {
		t.Fatalf("second create made new resources: %+v vs %+v", *b2, *b)
	}
	e.converged("demo", b2, req.AllowCIDRs)
	if n := len(e.snapshot().EIPs); n != 1 {
		t.Fatalf("%d elastic IPs after second create", n)
	}
	req.AllowCIDRs = []string{"192.0.2.1/32", "2001:db8::/64"}
	if _, err := e.c.Create(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	e.checkRules(b.SecurityGroupID, req.AllowCIDRs)

	// Find sees it all; Destroy (dry run first) removes it all.
	found, err := e.c.Find(e.ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Instances) != 1 || len(found.SecurityGroups) != 1 || len(found.KeyPairs) != 1 || len(found.OwnedEIPs()) != 1 {
		t.Fatalf("Find: %v", found.Lines())
	}
	dry, err := e.c.Destroy(e.ctx, "demo", true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(dry.Lines(), ";") != strings.Join(found.Lines(), ";") {
		t.Fatalf("dry run lists %v, Find %v", dry.Lines(), found.Lines())
	}
	if s := e.snapshot(); len(s.Instances) != 1 {
		t.Fatalf("dry run deleted: %+v", s)
	}
	gone, err := e.c.Destroy(e.ctx, "demo", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("destroyed: %v", gone.Lines())
	e.mustBeEmpty("after destroy")
	again, err := e.c.Destroy(e.ctx, "demo", false)
	if err != nil || !again.Empty() {
		t.Fatalf("second destroy: %v, %v", again.Lines(), err)
	}
}

// TestMotoUserData: the request's user-data is the instance's, and the
// create's launch times are reported; a second create finds the instance
// (it keeps its user-data) and reports none.
func TestMotoUserData(t *testing.T) {
	e := newEnv(t)
	req := e.request("ud")
	req.UserData = []byte("#cloud-boothook\n#!/bin/sh\necho 'hi'\n")
	before := time.Now()
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if b.Launched.Before(before) || b.Running.Before(b.Launched) {
		t.Errorf("launched %v, running %v (create began %v)", b.Launched, b.Running, before)
	}
	out, err := e.raw.DescribeInstanceAttribute(e.ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: aws.String(b.InstanceID), Attribute: types.InstanceAttributeNameUserData})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
	if string(got) != string(req.UserData) {
		t.Errorf("user-data %q, want %q", got, req.UserData)
	}
	again, err := e.c.Create(e.ctx, req)
	if err != nil || again.InstanceID != b.InstanceID || !again.Launched.IsZero() {
		t.Errorf("second create: %+v, %v", again, err)
	}
	req.UserData = make([]byte, 16<<10+1)
	var re *RequestError
	if err := ValidateLocal("", req); !errors.As(err, &re) {
		t.Errorf("17 KB of user-data: %v", err)
	}
}

func TestMotoGeneratedKey(t *testing.T) {
	e := newEnv(t)
	req := e.request("gen")
	req.SSHPublicKey = nil
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b.PrivateKeyPEM), "OPENSSH PRIVATE KEY") {
		t.Fatalf("no private key returned: %q", b.PrivateKeyPEM)
	}
	// Resuming with no key and the instance there keeps the key pair.
	b2, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if b2.PrivateKeyPEM != nil || b2.InstanceID != b.InstanceID {
		t.Fatalf("second create: %+v", *b2)
	}
	if _, err := e.c.Destroy(e.ctx, "gen", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}

func TestMotoUserEIPNeverReleased(t *testing.T) {
	e := newEnv(t)
	alloc, err := motoServer.AllocateAddress(e.ctx, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	req := e.request("byo")
	req.EIPAllocationID = alloc
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if b.PublicIP != "127.0.0.2" || b.EIPAllocationID != alloc || b.EIPOwned {
		t.Fatalf("broker %+v", *b)
	}
	found, err := e.c.Find(e.ctx, "byo")
	if err != nil {
		t.Fatal(err)
	}
	if len(found.ElasticIPs) != 1 || found.ElasticIPs[0].Owned {
		t.Fatalf("Find elastic IPs: %+v", found.ElasticIPs)
	}
	if _, err := e.c.Destroy(e.ctx, "byo", false); err != nil {
		t.Fatal(err)
	}
	s := e.snapshot()
	if len(s.Instances)+len(s.SecurityGroups)+len(s.KeyPairs) != 0 || len(s.EIPs) != 1 || s.EIPs[0] != "127.0.0.2()" {
		t.Fatalf("after destroy: %+v (want only the user's untagged 127.0.0.2)", s)
	}
	// Another broker may take it now (AWS disassociated it on terminate;
	// moto does not, so disassociate like AWS would).
	addrs, err := e.raw.DescribeAddresses(e.ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	if err != nil {
		t.Fatal(err)
	}
	if tags := addrs.Addresses[0].Tags; len(tags) != 0 {
		t.Fatalf("the user's elastic IP got tags %v", tagsString(tags))
	}
}

// TestMotoDestroyFilters: Destroy touches only what is tagged as this
// broker's and as kafkaup's: not another broker's (even with a name that
// extends this one), not untagged look-alikes, not resources tagged with the
// broker's name but without kafkaup:managed=true, not an EIP tagged as the
// broker's but not as owned.
func TestMotoDestroyFilters(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"demo", "demo-2", "demox"} {
		req := e.request(name)
		req.ElasticIP = true
		if _, err := e.c.Create(e.ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	vpcs, err := e.raw.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{})
	if err != nil {
		t.Fatal(err)
	}
	vpc := vpcs.Vpcs[0].VpcId
	onlyBroker := []types.Tag{{Key: aws.String(TagBroker), Value: aws.String("demo")}}
	notOwnedEIP := []types.Tag{{Key: aws.String(TagBroker), Value: aws.String("demo")}, {Key: aws.String(TagManaged), Value: aws.String("true")}}
	spec := func(rt types.ResourceType, tags []types.Tag) []types.TagSpecification {
		if tags == nil {
			return nil
		}
		return []types.TagSpecification{{ResourceType: rt, Tags: tags}}
	}
	for i, tags := range [][]types.Tag{nil, onlyBroker} {
		if _, err := e.raw.CreateSecurityGroup(e.ctx, &ec2.CreateSecurityGroupInput{
			GroupName: aws.String(fmt.Sprintf("kafkaup-demo-decoy%d", i)), Description: aws.String("decoy"), VpcId: vpc,
			TagSpecifications: spec(types.ResourceTypeSecurityGroup, tags)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.raw.ImportKeyPair(e.ctx, &ec2.ImportKeyPairInput{
			KeyName: aws.String(fmt.Sprintf("kafkaup-demo-decoy%d", i)), PublicKeyMaterial: []byte(testPubKey),
			TagSpecifications: spec(types.ResourceTypeKeyPair, tags)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.raw.RunInstances(e.ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(e.amis["amd64"]), InstanceType: types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			BlockDeviceMappings: []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(8)}}},
			TagSpecifications:   spec(types.ResourceTypeInstance, tags)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tags := range [][]types.Tag{nil, onlyBroker, notOwnedEIP} {
		if _, err := e.raw.AllocateAddress(e.ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc,
			TagSpecifications: spec(types.ResourceTypeElasticIp, tags)}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.snapshot()
	gone, err := e.c.Destroy(e.ctx, "demo", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("destroyed: %v", gone.Lines())
	after := e.snapshot()
	// Exactly demo's instance, SG, key pair and owned EIP went.
	diff := func(a, b []string) []string {
		in := map[string]int{}
		for _, x := range b {
			in[x]++
		}
		var out []string
		for _, x := range a {
			if in[x] > 0 {
				in[x]--
			} else {
				out = append(out, x)
			}
		}
		return out
	}
	removed := snapshot{
		Instances:      diff(before.Instances, after.Instances),
		SecurityGroups: diff(before.SecurityGroups, after.SecurityGroups),
		KeyPairs:       diff(before.KeyPairs, after.KeyPairs),
		EIPs:           diff(before.EIPs, after.EIPs),
	}
	if len(removed.Instances) != 1 || !strings.HasSuffix(removed.Instances[0], "(demo)") ||
		fmt.Sprint(removed.SecurityGroups) != "[kafkaup-demo]" || fmt.Sprint(removed.KeyPairs) != "[kafkaup-demo]" ||
		len(removed.EIPs) != 1 || !strings.HasSuffix(removed.EIPs[0], "(demo)") {
		t.Fatalf("destroy demo removed %+v", removed)
	}
	if len(after.Instances) != 4 || len(after.SecurityGroups) != 4 || len(after.KeyPairs) != 4 || len(after.EIPs) != 5 {
		t.Fatalf("left: %+v", after)
	}
	for _, name := range []string{"demo-2", "demox"} {
		r, err := e.c.Find(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Instances) != 1 || len(r.SecurityGroups) != 1 || len(r.KeyPairs) != 1 || len(r.OwnedEIPs()) != 1 {
			t.Fatalf("broker %s lost resources: %v", name, r.Lines())
		}
	}
	// What is left tagged demo is not kafkaup's to delete.
	r, err := e.c.Destroy(e.ctx, "demo", false)
	if err != nil || !r.Empty() {
		t.Fatalf("second destroy demo: %v %v", r.Lines(), err)
	}
	if s := e.snapshot(); fmt.Sprint(s) != fmt.Sprint(after) {
		t.Fatalf("second destroy changed %+v -> %+v", after, s)
	}
}

// TestMotoFailEachStep makes every AWS step of Create fail once, then
// checks the error (the step, the advice, what exists), that Destroy
// leaves nothing, and that after another failure rerunning Create
// converges without duplicates.
func TestMotoFailEachStep(t *testing.T) {
	cases := []struct {
		op, code   string
		times      int
		elasticIP  bool
		step       string // in CreateError.Step
		advice     string // in the message
		existKinds string // kinds listed as existing, in Lines() order
	}{
		// A name taken by a resource kafkaup did not tag: TestMotoNameTaken.
		{op: "ImportKeyPair", code: "UnauthorizedOperation", step: "key pair kafkaup-x", advice: "may not call ec2:ImportKeyPair", existKinds: ""},
		{op: "CreateSecurityGroup", code: "SecurityGroupLimitExceeded", step: "security group kafkaup-x", advice: "quota", existKinds: "key"},
		{op: "AuthorizeSecurityGroupIngress", code: "UnauthorizedOperation", step: "security group rules", advice: "may not call ec2:AuthorizeSecurityGroupIngress", existKinds: "security key"},
		{op: "RunInstances", code: "InsufficientInstanceCapacity", step: "run instance", advice: "no capacity", existKinds: "security key"},
		{op: "RunInstances", code: "RequestLimitExceeded", times: DefaultRetryMaxAttempts, step: "run instance", advice: "throttling", existKinds: "security key"},
		{op: "RunInstances", code: "VcpuLimitExceeded", step: "run instance", advice: "quota", existKinds: "security key"},
		{op: "AllocateAddress", code: "AddressLimitExceeded", elasticIP: true, step: "elastic IP", advice: "quota", existKinds: "instance security key"},
		{op: "AssociateAddress", code: "UnauthorizedOperation", elasticIP: true, step: "elastic IP", advice: "may not call ec2:AssociateAddress", existKinds: "instance elastic security key"},
	}
	for _, tc := range cases {
		t.Run(tc.op+"/"+tc.code, func(t *testing.T) {
			e := newEnv(t)
			req := e.request("x")
			req.ElasticIP = tc.elasticIP
			times := max(tc.times, 1)
			failOnce := func() {
				t.Helper()
				e.inj.clear()
				for i := 0; i < times; i++ {
					e.inj.fail(tc.op, tc.code)
				}
				_, err := e.c.Create(e.ctx, req)
				var ce *CreateError
				if !errors.As(err, &ce) {
					t.Fatalf("Create: %v, want a *CreateError", err)
				}
				msg := err.Error()
				t.Logf("error:\n%s", msg)
				if !strings.Contains(ce.Step, tc.step) || !strings.Contains(msg, tc.advice) || errorCode(err) != tc.code {
					t.Fatalf("error %q (step %q), want step %q, advice %q, code %s", msg, ce.Step, tc.step, tc.advice, tc.code)
				}
				if ce.ListErr != nil {
					t.Fatal(ce.ListErr)
				}
				var kinds []string
				for _, l := range ce.Existing.Lines() {
					kinds = append(kinds, strings.Fields(l)[0])
				}
				if strings.Join(kinds, " ") != tc.existKinds {
					t.Fatalf("existing %v, want kinds %q", ce.Existing.Lines(), tc.existKinds)
				}
				if tc.existKinds == "" {
					if !strings.Contains(msg, "no AWS resource of broker x exists") {
						t.Fatalf("message does not say nothing exists: %s", msg)
					}
					e.mustBeEmpty("after a failure with nothing created")
				} else if !strings.Contains(msg, "kafkaup destroy x") || !strings.Contains(msg, "kafkaup create x") {
					t.Fatalf("message does not say what to run: %s", msg)
				}
			}

			failOnce()
			r, err := e.c.Destroy(e.ctx, "x", false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("destroyed: %v", r.Lines())
			e.mustBeEmpty("destroy after failure")

			failOnce()
			b, err := e.c.Create(e.ctx, req)
			if err != nil {
				t.Fatalf("rerun create: %v", err)
			}
			e.converged("x", b, req.AllowCIDRs)
			if tc.elasticIP && (len(e.snapshot().EIPs) != 1 || !b.EIPOwned) {
				t.Fatalf("elastic IPs: %v, broker %+v", e.snapshot().EIPs, *b)
			}
			if _, err := e.c.Destroy(e.ctx, "x", false); err != nil {
				t.Fatal(err)
			}
			e.mustBeEmpty("destroy after converged create")
		})
	}
}

// TestMotoThrottledOnce: one RequestLimitExceeded per call is absorbed by
// the SDK's retries, everywhere.
func TestMotoThrottledOnce(t *testing.T) {
	e := newEnv(t)
	for _, op := range []string{"DescribeInstances", "ImportKeyPair", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RunInstances", "AllocateAddress", "AssociateAddress"} {
		e.inj.fail(op, "RequestLimitExceeded")
	}
	req := e.request("thr")
	req.ElasticIP = true
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	e.converged("thr", b, req.AllowCIDRs)
	for _, op := range []string{"TerminateInstances", "DeleteSecurityGroup", "DeleteKeyPair", "ReleaseAddress"} {
		e.inj.fail(op, "RequestLimitExceeded")
	}
	if _, err := e.c.Destroy(e.ctx, "thr", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}

func TestMotoNoDefaultVPC(t *testing.T) {
	e := newEnv(t)
	vpcs, err := e.raw.DescribeVpcs(e.ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{{Name: aws.String("isDefault"), Values: []string{"true"}}}})
	if err != nil || len(vpcs.Vpcs) != 1 {
		t.Fatalf("default VPC: %v", err)
	}
	vpc := vpcs.Vpcs[0].VpcId
	subs, err := e.raw.DescribeSubnets(e.ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{*vpc}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs.Subnets {
		if _, err := e.raw.DeleteSubnet(e.ctx, &ec2.DeleteSubnetInput{SubnetId: s.SubnetId}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.raw.DeleteVpc(e.ctx, &ec2.DeleteVpcInput{VpcId: vpc}); err != nil {
		t.Fatal(err)
	}
	req := e.request("novpc")
	_, err = e.c.Create(e.ctx, req)
	if err == nil || !strings.Contains(err.Error(), "no default VPC") || !strings.Contains(err.Error(), "--subnet") {
		t.Fatalf("Create without default VPC: %v", err)
	}
	t.Logf("error: %v", err)
	e.mustBeEmpty("after no-default-VPC error")

	// With --subnet in a VPC of the user's, it converges.
	nv, err := e.raw.CreateVpc(e.ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.7.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.raw.CreateSubnet(e.ctx, &ec2.CreateSubnetInput{VpcId: nv.Vpc.VpcId, CidrBlock: aws.String("10.7.1.0/24"), AvailabilityZone: aws.String("us-east-1a")})
	if err != nil {
		t.Fatal(err)
	}
	req.SubnetID = aws.ToString(ns.Subnet.SubnetId)
	b, err := e.c.Create(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := e.c.describeInstance(e.ctx, b.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(inst.SubnetId) != req.SubnetID {
		t.Fatalf("instance in subnet %s, want %s", aws.ToString(inst.SubnetId), req.SubnetID)
	}
	if _, err := e.c.Destroy(e.ctx, "novpc", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after destroy")
}

func TestMotoBadInput(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		mod  func(*CreateRequest)
		want string
	}{
		{"bad name", func(r *CreateRequest) { r.Name = "Demo_1" }, "not a valid broker name"},
		{"long name", func(r *CreateRequest) { r.Name = strings.Repeat("a", 41) }, "not a valid broker name"},
		{"malformed CIDR", func(r *CreateRequest) { r.AllowCIDRs = []string{"203.0.113.300/32"} }, "is not a CIDR block"},
		{"CIDR without length", func(r *CreateRequest) { r.AllowCIDRs = []string{"203.0.113.7"} }, "is not a CIDR block"},
		{"CIDR host bits", func(r *CreateRequest) { r.AllowCIDRs = []string{"203.0.113.7/24"} }, "did you mean 203.0.113.0/24"},
		{"no CIDR", func(r *CreateRequest) { r.AllowCIDRs = nil }, "allow at least one CIDR"},
		{"unknown instance type", func(r *CreateRequest) { r.InstanceType = "t3.mucro" }, `"t3.mucro" does not exist in us-east-1; close matches: t3.micro`},
		{"unknown AMI", func(r *CreateRequest) { r.AMIParameter = ""; r.AMI = "ami-12345678" }, "AMI ami-12345678 (from --ami ami-12345678) does not exist"},
		{"missing parameter", func(r *CreateRequest) { r.AMIParameter = "/kafkaup-test/nope/{arch}" }, "SSM parameter /kafkaup-test/nope/amd64 does not exist"},
		{"AMI of other arch", func(r *CreateRequest) { r.AMIParameter = ""; r.AMI = e.amis["arm64"] }, "is built for arm64 but instance type t3.micro runs x86_64"},
		{"unknown subnet", func(r *CreateRequest) { r.SubnetID = "subnet-12345678" }, "subnet subnet-12345678 does not exist"},
		{"unknown EIP", func(r *CreateRequest) { r.EIPAllocationID = "eipalloc-12345678" }, "allocation eipalloc-12345678 does not exist"},
		{"bad public key", func(r *CreateRequest) { r.SSHPublicKey = []byte("not a key") }, "not in OpenSSH format"},
		{"root too small", func(r *CreateRequest) { r.RootSizeGB = 4 }, "out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request("bad")
			tc.mod(&req)
			verr := e.c.Validate(e.ctx, req)
			_, cerr := e.c.Create(e.ctx, req)
			for _, err := range []error{verr, cerr} {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
			}
			t.Logf("error: %v", cerr)
			e.mustBeEmpty(tc.name)
		})
	}

	t.Run("arm64 instance type takes the arm64 AMI", func(t *testing.T) {
		req := e.request("arm")
		req.InstanceType = "t4g.micro"
		if err := e.c.Validate(e.ctx, req); err != nil {
			t.Fatal(err)
		}
		p, err := e.c.resolve(e.ctx, req)
		if err != nil || p.ami != e.amis["arm64"] || p.arch != "arm64" {
			t.Fatalf("plan %+v, %v", p, err)
		}
	})

	t.Run("unknown region", func(t *testing.T) {
		cfg, err := motoServer.Config(e.ctx, config.WithRegion("xx-nowhere-1"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewFromConfig(e.ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate(e.ctx, e.request("bad"))
		if err == nil || !strings.Contains(err.Error(), "region xx-nowhere-1 does not exist") {
			t.Fatalf("got %v", err)
		}
		t.Logf("error: %v", err)
		_, err = c.Create(e.ctx, e.request("bad"))
		if err == nil || !strings.Contains(err.Error(), "region xx-nowhere-1 does not exist") {
			t.Fatalf("got %v", err)
		}
		cfg.Region = "us-east1"
		if _, err := NewFromConfig(e.ctx, cfg); err == nil || !strings.Contains(err.Error(), "not an AWS region name") {
			t.Fatalf("got %v", err)
		}
		e.mustBeEmpty("unknown region")
	})
}

func TestMotoDependencyViolationRetried(t *testing.T) {
	e := newEnv(t)
	if _, err := e.c.Create(e.ctx, e.request("dv")); err != nil {
		t.Fatal(err)
	}
	e.inj.fail("DeleteSecurityGroup", "DependencyViolation", "DependencyViolation", "DependencyViolation")
	if _, err := e.c.Destroy(e.ctx, "dv", false); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e.sleeps) != "[1s 2s 4s]" {
		t.Fatalf("pauses %v, want [1s 2s 4s]", e.sleeps)
	}
	if n := e.inj.calls["DeleteSecurityGroup"]; n != 4 {
		t.Fatalf("%d DeleteSecurityGroup calls, want 4", n)
	}
	e.mustBeEmpty("after destroy")

	// Still in use at the deadline: an error that says so; rerun finishes.
	if _, err := e.c.Create(e.ctx, e.request("dv")); err != nil {
		t.Fatal(err)
	}
	e.sleeps = nil
	e.c.SGDeleteTimeout = 5 * time.Second
	for i := 0; i < 20; i++ {
		e.inj.fail("DeleteSecurityGroup", "DependencyViolation")
	}
	_, err := e.c.Destroy(e.ctx, "dv", false)
	if err == nil || !strings.Contains(err.Error(), "still in use") || !strings.Contains(err.Error(), "rerun `kafkaup destroy dv`") {
		t.Fatalf("got %v", err)
	}
	if fmt.Sprint(e.sleeps) != "[1s 2s]" { // the next pause, 4s, would end past 5s
		t.Fatalf("pauses %v, want [1s 2s]", e.sleeps)
	}
	t.Logf("error: %v", err)
	e.inj.clear()
	if _, err := e.c.Destroy(e.ctx, "dv", false); err != nil {
		t.Fatal(err)
	}
	e.mustBeEmpty("after second destroy")
}

func TestMotoListAndStopStart(t *testing.T) {
	e := newEnv(t)
	reqA := e.request("alpha")
	reqA.ElasticIP = true
	a, err := e.c.Create(e.ctx, reqA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Create(e.ctx, e.request("beta")); err != nil {
		t.Fatal(err)
	}
	e.inj.fail("RunInstances", "InsufficientInstanceCapacity")
	if _, err := e.c.Create(e.ctx, e.request("gamma")); err == nil {
		t.Fatal("gamma: want an error")
	}
	list, err := e.c.List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range list {
		got = append(got, b.Name+":"+b.State)
	}
	if fmt.Sprint(got) != "[alpha:running beta:running gamma:incomplete]" {
		t.Fatalf("List: %v", got)
	}
	if list[0].EIPAllocationID != a.EIPAllocationID || !list[0].EIPOwned || list[0].PublicIP != a.PublicIP {
		t.Fatalf("List alpha: %+v", list[0])
	}

	s, err := e.c.Stop(e.ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "stopped" {
		t.Fatalf("after Stop: %+v", *s)
	}
	// A stopped broker: create says to start it.
	if _, err := e.c.Create(e.ctx, reqA); err == nil || !strings.Contains(err.Error(), "kafkaup start alpha") {
		t.Fatalf("create on a stopped broker: %v", err)
	}
	r, err := e.c.Start(e.ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != "running" || r.PublicIP != a.PublicIP || r.EIPAllocationID != a.EIPAllocationID {
		t.Fatalf("after Start: %+v (before %+v)", *r, *a)
	}
	if _, err := e.c.Stop(e.ctx, "nope"); err == nil || !strings.Contains(err.Error(), "has no instance") {
		t.Fatalf("stop unknown: %v", err)
	}
	for _, n := range []string{"alpha", "beta", "gamma"} {
		if _, err := e.c.Destroy(e.ctx, n, false); err != nil {
			t.Fatal(err)
		}
	}
	e.mustBeEmpty("after destroying all")
	if list, err := e.c.List(e.ctx); err != nil || len(list) != 0 {
		t.Fatalf("List after destroy: %v %v", list, err)
	}
}

func TestMotoConsoleHostKeysEmpty(t *testing.T) {
	e := newEnv(t)
	b, err := e.c.Create(e.ctx, e.request("con"))
	if err != nil {
		t.Fatal(err)
	}
	// moto's console output is an old fixed boot log without the block.
	keys, err := e.c.ConsoleHostKeys(e.ctx, b.InstanceID)
	if err != nil || keys != nil {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	// A Xen-based instance type refuses Latest: the real client reads the
	// buffered output instead, and asks without Latest from then on; the
	// wait ends at its bound with no keys.
	var latest, plain int
	e.faults.add(fault{op: "GetConsoleOutput", match: func(in any) bool {
		if aws.ToBool(in.(*ec2.GetConsoleOutputInput).Latest) {
			latest++
			return true
		}
		plain++
		return false
	}, forever: "UnsupportedOperation"})
	var progress []time.Duration
	keys, err = e.c.WaitConsoleHostKeys(e.ctx, b.InstanceID, ConsoleWait{Timeout: 20 * time.Second, Interval: 10 * time.Second,
		Waiting: func(d time.Duration) { progress = append(progress, d) }})
	if err != nil || keys != nil {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	if latest != 1 || plain != 3 || len(progress) != 2 {
		t.Errorf("reads with Latest %d, without %d, progress %v", latest, plain, progress)
	}
}

// TestMotoDestroyPendingOrStopping: EC2 still shows an instance that was
// pending or stopping when it was told to terminate in that state for a
// while; the SDK's terminated waiter fails on both states, destroy keeps
// waiting and finishes.
func TestMotoDestroyPendingOrStopping(t *testing.T) {
	e := newEnv(t)
	if _, err := e.c.Create(e.ctx, e.request("busy")); err != nil {
		t.Fatal(err)
	}
	var seen []string
	states := []types.InstanceStateName{"pending", "pending", "stopping", "stopping", "shutting-down"}
	e.faults.rewrite = func(op string, in, out any) {
		d, ok := out.(*ec2.DescribeInstancesOutput)
		if op != "DescribeInstances" || !ok || !byInstanceID(in) || len(states) == 0 {
			return
		}
		for ri := range d.Reservations {
			for ii := range d.Reservations[ri].Instances {
				inst := &d.Reservations[ri].Instances[ii]
				seen = append(seen, string(inst.State.Name)+"->"+string(states[0]))
				inst.State = &types.InstanceState{Name: states[0]}
			}
		}
		states = states[1:]
	}
	if _, err := e.c.Destroy(e.ctx, "busy", false); err != nil {
		t.Fatalf("destroy: %v (states answered %v)", err, seen)
	}
	if len(states) != 0 {
		t.Errorf("destroy returned before the instance was terminated (answers left %v, seen %v)", states, seen)
	}
	e.mustBeEmpty("after destroy")
}

// TestMotoAllow: kafkaup allow adds and revokes CIDRs on the broker's
// security group, leaving the other rules alone, and lists what is
// allowed; a malformed CIDR is a request error before any call.
func TestMotoAllow(t *testing.T) {
	e := newEnv(t)
	b, err := e.c.Create(e.ctx, e.request("gate"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.c.Allow(e.ctx, "gate", nil, []string{"192.0.2.0/24", "203.0.113.7/32"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[192.0.2.0/24 198.51.100.0/24 203.0.113.7/32]" {
		t.Errorf("after allow: %v", got)
	}
	e.checkRules(b.SecurityGroupID, []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.7/32"})
	if got, err = e.c.Allow(e.ctx, "gate", nil, nil, []string{"203.0.113.7/32"}); err != nil || fmt.Sprint(got) != "[192.0.2.0/24 198.51.100.0/24]" {
		t.Errorf("after revoke: %v %v", got, err)
	}
	e.checkRules(b.SecurityGroupID, []string{"192.0.2.0/24", "198.51.100.0/24"})
	if got, err = e.c.Allow(e.ctx, "gate", nil, nil, nil); err != nil || len(got) != 2 {
		t.Errorf("list: %v %v", got, err)
	}
	var re *RequestError
	if _, err := e.c.Allow(e.ctx, "gate", nil, []string{"192.0.2.1/24"}, nil); !errors.As(err, &re) || !strings.Contains(err.Error(), "192.0.2.0/24") {
		t.Errorf("host bits: %v", err)
	}
	if _, err := e.c.Allow(e.ctx, "nope", nil, []string{"192.0.2.0/24"}, nil); err == nil || !strings.Contains(err.Error(), "no security group") {
		t.Errorf("unknown broker: %v", err)
	}
	res, err := e.c.Find(e.ctx, "gate")
	if err != nil || fmt.Sprint(res.PublicIPs()) != "["+b.PublicIP+"]" {
		t.Errorf("public IPs of the broker: %v (instance %s), %v", res.PublicIPs(), b.PublicIP, err)
	}
}
