package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/state"
)

// CreateRequest is what Create makes. Zero fields take the defaults noted.
type CreateRequest struct {
	// Name is the broker's name: 1 to 40 of [a-z0-9-], starting with a
	// letter, not ending with '-'. Resources are named kafkaup-NAME.
	Name string
	// InstanceType defaults to t3.micro. It must exist in the region.
	InstanceType string
	// AMI is an explicit image id. Otherwise the image id is read from the
	// SSM parameter AMIParameter (default DefaultAMIParameter); "{arch}" in
	// it becomes the instance type's architecture, amd64 or arm64.
	AMI          string
	AMIParameter string
	// SSHPublicKey (OpenSSH authorized_keys format, ssh-ed25519 or
	// ssh-rsa) is imported as the key pair. When nil, Create generates an
	// ed25519 key on this machine, imports its public half and returns the
	// private key in Broker.PrivateKeyPEM (AWS never sees it).
	SSHPublicKey []byte
	// SubnetID defaults to a default subnet of the default VPC in a zone
	// that offers the instance type; for several nodes, one default subnet
	// per node in distinct zones (round-robin when the region has fewer
	// zones than nodes). Given, every node is launched in it.
	SubnetID string
	// Nodes is how many instances to launch, one per node of a cluster
	// (0 means 1): 1, or an odd number up to MaxNodes (CheckNodeCount).
	// Each instance, its volume, network interface and Elastic IP carry
	// the tag kafkaup:node=N.
	Nodes int
	// AllowCIDRs may reach Ports, nothing else (at least one; IPv4 or
	// IPv6, without host bits). The caller adds the caller's /32.
	AllowCIDRs []string
	// Ports are the TCP ports the security group opens to AllowCIDRs: all
	// of them, 1 to 65535 (duplicates are dropped). Empty means SSHPort
	// and KafkaPort. kafkaup provisions over SSH, so a list that leaves
	// out SSHPort gives a broker it cannot reach. A rule for a port no
	// longer listed is revoked when create runs again.
	Ports []int32
	// ElasticIP: allocate an Elastic IP (tagged as the broker's; Destroy
	// releases it) and associate it. EIPAllocationID instead associates
	// the user's own, which is never tagged and never released.
	ElasticIP       bool
	EIPAllocationID string
	// RootSizeGB is the root volume's size (gp3, encrypted); default 16.
	RootSizeGB int
	// UserData is given to the instance at launch (cloud-init reads it at
	// first boot), as it is: at most provision.MaxUserData bytes before
	// base64. An instance found from an earlier run keeps the user-data it
	// had.
	UserData []byte
}

// plan is a validated request with everything looked up.
type plan struct {
	req        CreateRequest
	cidrs      []netip.Prefix
	ports      []int32 // Ports, or defaultPorts
	arch       string  // amd64, arm64
	ec2Arch    types.ArchitectureValues
	ami        string
	rootDevice string
	vpcID      string
	subnetID   string        // node 1's
	zone       string        // node 1's
	placements []Placement   // one per node
	pubKey     ssh.PublicKey // nil: generate
}

// checkName applies kafkaup's one name rule (state.ValidateName): the
// name is in every tag filter and resource name.
func checkName(name string) error {
	if err := state.ValidateName(name); err != nil {
		return &RequestError{Err: err}
	}
	return nil
}

// Validate checks everything about req before anything is created: the
// name, the CIDRs, the SSH key, that the region exists, that the instance
// type exists there, that the AMI (or its parameter) resolves to an image
// of the right architecture, that the subnet (or a default VPC) exists and
// that the user's Elastic IP exists. It creates nothing. What is wrong
// with the request is a *RequestError (ErrNoAllowedCIDR when AllowCIDRs is
// empty); an error of any other type is a failure to check (AWS
// unreachable, throttled, credentials or permissions), after which the
// request may well be fine.
func (c *Cloud) Validate(ctx context.Context, req CreateRequest) error {
	_, err := c.resolve(ctx, req)
	return err
}

func (c *Cloud) resolve(ctx context.Context, req CreateRequest) (*plan, error) {
	p := &plan{req: req}
	if err := p.checkLocal(); err != nil {
		return nil, err
	}
	req = p.req
	if err := c.checkRegion(ctx); err != nil {
		return nil, err
	}
	it, err := c.instanceType(ctx, req.InstanceType)
	if err != nil {
		return nil, err
	}
	p.ec2Arch, p.arch = pickArch(it.ProcessorInfo)
	if p.arch == "" {
		return nil, requestErrorf("instance type %s supports none of x86_64 and arm64; choose another --instance-type", req.InstanceType)
	}
	if err := c.resolveImage(ctx, p); err != nil {
		return nil, err
	}
	if err := c.resolveSubnet(ctx, p); err != nil {
		return nil, err
	}
	if req.EIPAllocationID != "" {
		if _, err := c.userAddress(ctx, req.EIPAllocationID); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checkLocal: everything that needs no AWS call; fills defaults.
func (p *plan) checkLocal() error {
	r := &p.req
	if err := checkName(r.Name); err != nil {
		return err
	}
	if r.InstanceType == "" {
		r.InstanceType = DefaultInstanceType
	}
	if r.RootSizeGB == 0 {
		r.RootSizeGB = DefaultRootSizeGB
	}
	if r.Nodes == 0 {
		r.Nodes = 1
	}
	if err := CheckNodeCount(r.Nodes); err != nil {
		return err
	}
	if r.Nodes > 1 && r.EIPAllocationID != "" {
		return requestErrorf("--eip-allocation names one address, and a cluster of %d nodes needs one per node: use --elastic-ip (kafkaup allocates one per node and releases them at destroy)", r.Nodes)
	}
	if r.RootSizeGB < 8 || r.RootSizeGB > 16384 {
		return requestErrorf("root volume size %d GB is out of range: use 8 to 16384", r.RootSizeGB)
	}
	if len(r.UserData) > provision.MaxUserData {
		return requestErrorf("the user-data is %d bytes; EC2 takes at most %d", len(r.UserData), provision.MaxUserData)
	}
	if r.AMI != "" && r.AMIParameter != "" {
		return &RequestError{Err: errors.New("give either an AMI id (--ami) or an SSM parameter that holds one (--ami-parameter), not both")}
	}
	if r.AMI != "" && !strings.HasPrefix(r.AMI, "ami-") {
		return requestErrorf("%q is not an AMI id (they look like ami-0123456789abcdef0)", r.AMI)
	}
	if r.AMI == "" && r.AMIParameter == "" {
		r.AMIParameter = DefaultAMIParameter
	}
	if r.ElasticIP && r.EIPAllocationID != "" {
		return &RequestError{Err: errors.New("give either --elastic-ip (kafkaup allocates one) or --eip-allocation (use yours), not both")}
	}
	if r.EIPAllocationID != "" && !strings.HasPrefix(r.EIPAllocationID, "eipalloc-") {
		return requestErrorf("%q is not an Elastic IP allocation id (they look like eipalloc-0123456789abcdef0)", r.EIPAllocationID)
	}
	if r.SubnetID != "" && !strings.HasPrefix(r.SubnetID, "subnet-") {
		return requestErrorf("%q is not a subnet id (they look like subnet-0123456789abcdef0)", r.SubnetID)
	}
	cidrs, err := ParseCIDRs(r.AllowCIDRs)
	if err != nil {
		return err
	}
	p.cidrs = cidrs
	for _, port := range r.Ports {
		if port < 1 || port > 65535 {
			return requestErrorf("port %d is out of range: use 1 to 65535", port)
		}
		if !slices.Contains(p.ports, port) {
			p.ports = append(p.ports, port)
		}
	}
	if len(p.ports) == 0 {
		p.ports = defaultPorts
	}
	if r.SSHPublicKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey(r.SSHPublicKey)
		if err != nil {
			return requestErrorf("the SSH public key is not in OpenSSH format (a line like \"ssh-ed25519 AAAA... you@host\" from a .pub file): %w", err)
		}
		switch key.Type() {
		case ssh.KeyAlgoED25519, ssh.KeyAlgoRSA:
		default:
			return requestErrorf("EC2 key pairs take ssh-ed25519 or ssh-rsa keys, not %s: pass another key, or none and kafkaup makes one", key.Type())
		}
		p.pubKey = key
	}
	// Last, so that a caller who fills in the user's own address on
	// ErrNoAllowedCIDR has heard of every other mistake.
	if len(r.AllowCIDRs) == 0 {
		return &RequestError{Err: ErrNoAllowedCIDR}
	}
	return nil
}

// homeRegion is where DescribeRegions is asked for the partition's list:
// asking an unknown region itself fails with a DNS error (or, on moto, a
// 500), not an answer.
func homeRegion(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "cn-north-1"
	case strings.HasPrefix(region, "us-gov-"):
		return "us-gov-west-1"
	}
	return "us-east-1"
}

func (c *Cloud) checkRegion(ctx context.Context) error {
	if err := checkRegionName(c.Region); err != nil {
		return err
	}
	out, err := c.EC2.DescribeRegions(ctx, &ec2.DescribeRegionsInput{AllRegions: aws.Bool(true)},
		func(o *ec2.Options) { o.Region = homeRegion(c.Region) })
	if err != nil {
		if hasCode(err, "UnauthorizedOperation", "AccessDenied") {
			// A policy may forbid ec2:DescribeRegions; the calls that
			// follow still fail clearly on a wrong region.
			c.logf("could not list regions to check %s (%v); going on", c.Region, err)
			return nil
		}
		return fmt.Errorf("list AWS regions: %w", advise(err))
	}
	var names []string
	for _, r := range out.Regions {
		name := aws.ToString(r.RegionName)
		if name == c.Region {
			if aws.ToString(r.OptInStatus) == "not-opted-in" {
				return requestErrorf("region %s is not enabled for this account: enable it (AWS console, Account > AWS Regions) or use another --region", c.Region)
			}
			return nil
		}
		names = append(names, name)
	}
	msg := fmt.Sprintf("region %s does not exist", c.Region)
	if close := closeMatches(c.Region, names, 3); len(close) > 0 {
		msg += " (did you mean " + strings.Join(close, " or ") + "?)"
	}
	return &RequestError{Err: errors.New(msg + "; `aws ec2 describe-regions` lists the regions")}
}

func (c *Cloud) instanceType(ctx context.Context, name string) (*types.InstanceTypeInfo, error) {
	out, err := c.EC2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []types.InstanceType{types.InstanceType(name)}})
	if err != nil && !hasCode(err, "InvalidInstanceType") {
		return nil, fmt.Errorf("look up instance type %s: %w", name, advise(err))
	}
	if err == nil && len(out.InstanceTypes) == 1 {
		return &out.InstanceTypes[0], nil
	}
	// Unknown here: suggest what is close.
	var all []string
	pg := ec2.NewDescribeInstanceTypesPaginator(c.EC2, &ec2.DescribeInstanceTypesInput{})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, requestErrorf("instance type %s does not exist in %s; listing the ones that do failed: %w", name, c.Region, advise(err))
		}
		for _, t := range page.InstanceTypes {
			all = append(all, string(t.InstanceType))
		}
	}
	msg := fmt.Sprintf("instance type %q does not exist in %s", name, c.Region)
	if close := closeMatches(name, all, 5); len(close) > 0 {
		msg += "; close matches: " + strings.Join(close, ", ")
	}
	return nil, &RequestError{Err: errors.New(msg + "; pass one with --instance-type (default " + DefaultInstanceType + ")")}
}

func pickArch(pi *types.ProcessorInfo) (types.ArchitectureValues, string) {
	if pi == nil {
		return "", ""
	}
	var arm bool
	for _, a := range pi.SupportedArchitectures {
		switch a {
		case types.ArchitectureTypeX8664:
			return types.ArchitectureValuesX8664, "amd64"
		case types.ArchitectureTypeArm64:
			arm = true
		}
	}
	if arm {
		return types.ArchitectureValuesArm64, "arm64"
	}
	return "", ""
}

func (c *Cloud) resolveImage(ctx context.Context, p *plan) error {
	r := p.req
	ami := r.AMI
	source := "--ami " + ami
	if ami == "" {
		param := strings.ReplaceAll(r.AMIParameter, "{arch}", p.arch)
		out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(param)})
		if err != nil {
			if hasCode(err, "ParameterNotFound") {
				return requestErrorf("SSM parameter %s does not exist in %s, so there is no AMI to launch: check --ami-parameter, or pass an image id with --ami", param, c.Region)
			}
			return fmt.Errorf("read the AMI id from SSM parameter %s: %w", param, advise(err))
		}
		if out.Parameter == nil || !strings.HasPrefix(aws.ToString(out.Parameter.Value), "ami-") {
			return requestErrorf("SSM parameter %s does not hold an AMI id: pass --ami or another --ami-parameter", param)
		}
		ami = aws.ToString(out.Parameter.Value)
		source = "SSM parameter " + param
	}
	out, err := c.EC2.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{ami}})
	if err != nil && !hasCode(err, "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable") {
		return fmt.Errorf("look up AMI %s (from %s): %w", ami, source, advise(err))
	}
	if err != nil || len(out.Images) == 0 {
		return requestErrorf("AMI %s (from %s) does not exist in %s or is not shared with this account: pass another --ami", ami, source, c.Region)
	}
	img := out.Images[0]
	if img.Architecture != p.ec2Arch {
		return requestErrorf("AMI %s is built for %s but instance type %s runs %s: pick an image for %s or another --instance-type", ami, img.Architecture, r.InstanceType, p.ec2Arch, p.ec2Arch)
	}
	if img.State != "" && img.State != types.ImageStateAvailable {
		return requestErrorf("AMI %s is %s, not available: pass another --ami", ami, img.State)
	}
	p.ami = ami
	p.rootDevice = aws.ToString(img.RootDeviceName)
	if p.rootDevice == "" {
		p.rootDevice = "/dev/sda1"
	}
	for _, bd := range img.BlockDeviceMappings {
		if aws.ToString(bd.DeviceName) == p.rootDevice && bd.Ebs != nil && bd.Ebs.VolumeSize != nil {
			if int(*bd.Ebs.VolumeSize) > r.RootSizeGB {
				return requestErrorf("AMI %s needs a root volume of at least %d GB; --root-size is %d", ami, *bd.Ebs.VolumeSize, r.RootSizeGB)
			}
		}
	}
	return nil
}

func (c *Cloud) resolveSubnet(ctx context.Context, p *plan) error {
	if id := p.req.SubnetID; id != "" {
		out, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}})
		if err != nil && !hasCode(err, "InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed") {
			return fmt.Errorf("look up subnet %s: %w", id, advise(err))
		}
		if err != nil || len(out.Subnets) == 0 {
			return requestErrorf("subnet %s does not exist in %s: check --subnet (`aws ec2 describe-subnets --region %s` lists them)", id, c.Region, c.Region)
		}
		s := out.Subnets[0]
		p.vpcID = aws.ToString(s.VpcId)
		p.place([]Placement{{SubnetID: id, Zone: aws.ToString(s.AvailabilityZone)}})
		return nil
	}
	vpcs, err := c.EC2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{Filters: []types.Filter{
		{Name: aws.String("isDefault"), Values: []string{"true"}},
	}})
	if err != nil {
		return fmt.Errorf("look up the default VPC: %w", advise(err))
	}
	if len(vpcs.Vpcs) == 0 {
		return requestErrorf("region %s has no default VPC, so kafkaup does not know where to launch: pass --subnet SUBNET_ID (a public subnet of one of your VPCs)", c.Region)
	}
	vpc := aws.ToString(vpcs.Vpcs[0].VpcId)
	subs, err := c.EC2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{vpc}},
		{Name: aws.String("default-for-az"), Values: []string{"true"}},
	}})
	if err != nil {
		return fmt.Errorf("look up the default subnets of %s: %w", vpc, advise(err))
	}
	if len(subs.Subnets) == 0 {
		return requestErrorf("the default VPC %s in %s has no default subnet: pass --subnet SUBNET_ID", vpc, c.Region)
	}
	offered, err := c.zonesOffering(ctx, p.req.InstanceType)
	if err != nil {
		return err
	}
	sort.Slice(subs.Subnets, func(i, j int) bool {
		return aws.ToString(subs.Subnets[i].AvailabilityZone) < aws.ToString(subs.Subnets[j].AvailabilityZone)
	})
	var cands []Placement
	for _, s := range subs.Subnets {
		if offered[aws.ToString(s.AvailabilityZone)] {
			cands = append(cands, Placement{SubnetID: aws.ToString(s.SubnetId), Zone: aws.ToString(s.AvailabilityZone)})
		}
	}
	if len(cands) > 0 {
		p.vpcID = vpc
		p.place(cands)
		return nil
	}
	return requestErrorf("no zone with a default subnet in %s offers instance type %s: choose another --instance-type or pass --subnet", c.Region, p.req.InstanceType)
}

func (c *Cloud) zonesOffering(ctx context.Context, instanceType string) (map[string]bool, error) {
	zones := map[string]bool{}
	pg := ec2.NewDescribeInstanceTypeOfferingsPaginator(c.EC2, &ec2.DescribeInstanceTypeOfferingsInput{
		LocationType: types.LocationTypeAvailabilityZone,
		Filters:      []types.Filter{{Name: aws.String("instance-type"), Values: []string{instanceType}}},
	})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("look up the zones that offer %s: %w", instanceType, advise(err))
		}
		for _, o := range page.InstanceTypeOfferings {
			zones[aws.ToString(o.Location)] = true
		}
	}
	return zones, nil
}

// userAddress looks up the user's Elastic IP.
func (c *Cloud) userAddress(ctx context.Context, allocationID string) (*types.Address, error) {
	out, err := c.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocationID}})
	if err != nil && !hasCode(err, "InvalidAllocationID.NotFound", "InvalidAllocationID.Malformed") {
		return nil, fmt.Errorf("look up Elastic IP %s: %w", allocationID, advise(err))
	}
	if err != nil || len(out.Addresses) == 0 {
		return nil, requestErrorf("Elastic IP allocation %s does not exist in %s: check --eip-allocation (`aws ec2 describe-addresses` lists yours)", allocationID, c.Region)
	}
	return &out.Addresses[0], nil
}

// closeMatches returns up to n candidates nearest to s: same prefix
// before '.' or '-' first, then by edit distance (at most a third of s).
func closeMatches(s string, candidates []string, n int) []string {
	type scored struct {
		name string
		d    int
	}
	var out []scored
	family := strings.SplitN(s, ".", 2)[0]
	for _, c := range candidates {
		d := editDistance(s, c)
		if d <= max(2, len(s)/3) || (strings.Contains(s, ".") && strings.HasPrefix(c, family+".")) {
			out = append(out, scored{c, d})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].d != out[j].d {
			return out[i].d < out[j].d
		}
		return out[i].name < out[j].name
	})
	var names []string
	for i := 0; i < len(out) && i < n; i++ {
		names = append(names, out[i].name)
	}
	return names
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ValidateLocal checks everything that needs no AWS call (the name, sizes,
// the shape of ids, the CIDRs, the region's name), so such mistakes are
// reported before credentials are even looked up. Its errors are all
// *RequestError; ErrNoAllowedCIDR (test with errors.Is) is reported only
// when nothing else is wrong.
func ValidateLocal(region string, req CreateRequest) error {
	if region != "" {
		if err := checkRegionName(region); err != nil {
			return err
		}
	}
	p := &plan{req: req}
	return p.checkLocal()
}

// ParseCIDRs reads allowed CIDR blocks (IPv4 or IPv6), each once, in order.
// A malformed block, one with host bits set or an IPv4-mapped IPv6 block is
// a *RequestError.
func ParseCIDRs(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, s := range cidrs {
		pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, requestErrorf("%q is not a CIDR block (write an address with its prefix length, like 203.0.113.7/32 or 2001:db8::/64)", s)
		}
		if pfx.Masked() != pfx {
			return nil, requestErrorf("CIDR %s has host bits set: did you mean %s?", s, pfx.Masked())
		}
		if pfx.Addr().Is4In6() {
			return nil, requestErrorf("CIDR %s is an IPv4-mapped IPv6 block: write it as IPv4", s)
		}
		if !seen[pfx] {
			seen[pfx] = true
			out = append(out, pfx)
		}
	}
	return out, nil
}
