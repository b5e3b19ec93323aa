// Package cloud is kafkaup's EC2 lifecycle: it launches one instance per
// broker with its key pair, security group and (optionally) Elastic IP,
// finds them again by tag, and tears them down.
//
// Every resource is tagged in the call that creates it (TagSpecifications):
//
//	Name=kafkaup-NAME  kafkaup:broker=NAME  kafkaup:managed=true
//
// and an Elastic IP that kafkaup allocated also carries
// kafkaup:eip-owned=true. Find, List and Destroy select by these tags only
// (never by name or local state), so a lost state file leaks nothing and a
// resource that is not tagged as this broker's is never touched. An Elastic
// IP the user brought (EIPAllocationID) is never tagged and never released.
//
// Create is idempotent and resumable: each step first looks for what an
// earlier run created and creates only what is missing.
//
// AWS throttling and transient errors are retried by the SDK on every
// call, with a larger budget than the SDK's default (DefaultRetryMaxAttempts);
// EC2's eventual consistency (a resource created a moment ago answering
// NotFound) is retried on the calls that name such a resource, for up to
// ConsistencyTimeout. retry.go says which.
//
// Endpoints, credentials and region come from the SDK's standard
// configuration (profiles, SSO, environment, AWS_ENDPOINT_URL), which is how
// tests point it at moto.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Tag keys kafkaup puts on everything it creates.
const (
	TagName     = "Name"
	TagBroker   = "kafkaup:broker"
	TagManaged  = "kafkaup:managed"
	TagEIPOwned = "kafkaup:eip-owned"
)

// Defaults for CreateRequest fields left empty.
const (
	DefaultInstanceType = "t3.micro"
	DefaultRootSizeGB   = 16
	// DefaultAMIParameter is Canonical's public SSM parameter for Ubuntu
	// 24.04 LTS; "{arch}" becomes amd64 or arm64 after the instance type's
	// architecture. AMIParameter accepts the same placeholder.
	DefaultAMIParameter = "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
)

// EC2API is the part of *ec2.Client the engine uses. It satisfies the
// SDK's DescribeInstancesAPIClient, so the SDK waiters and paginators run
// on it.
type EC2API interface {
	DescribeRegions(context.Context, *ec2.DescribeRegionsInput, ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error)
	DescribeInstanceTypes(context.Context, *ec2.DescribeInstanceTypesInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
	DescribeInstanceTypeOfferings(context.Context, *ec2.DescribeInstanceTypeOfferingsInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceTypeOfferingsOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	DescribeVpcs(context.Context, *ec2.DescribeVpcsInput, ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)

	DescribeKeyPairs(context.Context, *ec2.DescribeKeyPairsInput, ...func(*ec2.Options)) (*ec2.DescribeKeyPairsOutput, error)
	ImportKeyPair(context.Context, *ec2.ImportKeyPairInput, ...func(*ec2.Options)) (*ec2.ImportKeyPairOutput, error)
	DeleteKeyPair(context.Context, *ec2.DeleteKeyPairInput, ...func(*ec2.Options)) (*ec2.DeleteKeyPairOutput, error)

	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	RevokeSecurityGroupIngress(context.Context, *ec2.RevokeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)

	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeInstanceAttribute(context.Context, *ec2.DescribeInstanceAttributeInput, ...func(*ec2.Options)) (*ec2.DescribeInstanceAttributeOutput, error)
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	StopInstances(context.Context, *ec2.StopInstancesInput, ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	StartInstances(context.Context, *ec2.StartInstancesInput, ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	GetConsoleOutput(context.Context, *ec2.GetConsoleOutputInput, ...func(*ec2.Options)) (*ec2.GetConsoleOutputOutput, error)

	DescribeAddresses(context.Context, *ec2.DescribeAddressesInput, ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	AllocateAddress(context.Context, *ec2.AllocateAddressInput, ...func(*ec2.Options)) (*ec2.AllocateAddressOutput, error)
	AssociateAddress(context.Context, *ec2.AssociateAddressInput, ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	DisassociateAddress(context.Context, *ec2.DisassociateAddressInput, ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
	ReleaseAddress(context.Context, *ec2.ReleaseAddressInput, ...func(*ec2.Options)) (*ec2.ReleaseAddressOutput, error)
}

// SSMAPI is the part of *ssm.Client the engine uses: reading the AMI id
// from a public parameter.
type SSMAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// STSAPI is the part of *sts.Client the engine uses: who am I.
type STSAPI interface {
	GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var (
	_ EC2API = (*ec2.Client)(nil)
	_ SSMAPI = (*ssm.Client)(nil)
	_ STSAPI = (*sts.Client)(nil)
)

// Cloud runs the lifecycle in one region. Build it with New (standard AWS
// configuration) or NewFromConfig; tests may fill the fields with fakes.
type Cloud struct {
	EC2    EC2API
	SSM    SSMAPI
	STS    STSAPI // may be nil; only Identity uses it
	Region string

	// WaiterMinDelay is the SDK instance waiters' minimum delay between
	// polls (running, stopped, terminated). Default 15s, as the SDK; moto
	// answers at once, so tests set it to milliseconds.
	WaiterMinDelay time.Duration
	// WaitTimeout bounds each instance wait. Default 10 minutes.
	WaitTimeout time.Duration
	// SGDeleteTimeout bounds how long Destroy retries DeleteSecurityGroup
	// while AWS still answers DependencyViolation (the terminated
	// instance's network interface goes away a little after it). Default
	// 5 minutes; SGDeleteBackoff (default 2s) is the first pause, doubled
	// up to 8 times that.
	SGDeleteTimeout time.Duration
	SGDeleteBackoff time.Duration
	// ConsistencyTimeout bounds how long a call that names a resource
	// kafkaup has just created or seen is retried while EC2 answers that
	// it does not exist yet (eventual consistency). Default 2 minutes;
	// ConsistencyBackoff (default 1s) is the first pause, doubled up to 8
	// times that.
	ConsistencyTimeout time.Duration
	ConsistencyBackoff time.Duration

	// Log receives one line per step (what was found, created, deleted).
	// nil: discard.
	Log io.Writer

	// sleep is time.Sleep honouring ctx and now is time.Now; tests
	// replace them with a fake clock.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
	// consoleNoLatest: GetConsoleOutput refused Latest once (not a Nitro
	// instance); later reads go without it.
	consoleNoLatest atomic.Bool

	// retryDelay, when set, maps each pause the SDK's retryer chose to
	// the one taken; tests shorten them.
	retryDelay func(time.Duration) time.Duration
}

// New loads the standard AWS configuration chain (environment, shared
// config and credentials files, AWS_PROFILE, SSO, AWS_ENDPOINT_URL, ...)
// with region overriding the configured one when not empty, checks that
// credentials and a region are there, and returns a Cloud on it. optFns are
// passed to config.LoadDefaultConfig after kafkaup's own. No region, or a
// malformed one, is a *RequestError; no usable credentials a
// *CredentialsError.
func New(ctx context.Context, region string, optFns ...func(*config.LoadOptions) error) (*Cloud, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	opts = append(opts, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load the AWS configuration (check AWS_PROFILE and ~/.aws/config): %w", err)
	}
	return NewFromConfig(ctx, cfg)
}

// NewFromConfig is New on an already loaded SDK configuration.
func NewFromConfig(ctx context.Context, cfg aws.Config) (*Cloud, error) {
	if cfg.Region == "" {
		return nil, &RequestError{Err: errors.New("no AWS region is configured: pass --region (for example --region us-east-1), set AWS_REGION, or set a region in your profile with `aws configure`")}
	}
	if err := checkRegionName(cfg.Region); err != nil {
		return nil, err
	}
	if cfg.Credentials == nil {
		return nil, &CredentialsError{}
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, &CredentialsError{Err: err}
	}
	c := &Cloud{Region: cfg.Region}
	c.EC2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Retryer = c.sdkRetryer(cfg, o.Retryer, o.RetryMode) })
	c.SSM = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Retryer = c.sdkRetryer(cfg, o.Retryer, o.RetryMode) })
	c.STS = sts.NewFromConfig(cfg, func(o *sts.Options) { o.Retryer = c.sdkRetryer(cfg, o.Retryer, o.RetryMode) })
	return c, nil
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

func checkRegionName(region string) error {
	if !regionRE.MatchString(region) {
		return requestErrorf("%q is not an AWS region name (they look like us-east-1 or eu-central-1); `aws ec2 describe-regions` lists them", region)
	}
	return nil
}

// Identity returns the account and ARN the credentials belong to
// (sts:GetCallerIdentity): a cheap check that they work.
func (c *Cloud) Identity(ctx context.Context) (account, arn string, err error) {
	if c.STS == nil {
		return "", "", errors.New("identity: no STS client")
	}
	out, err := c.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", "", fmt.Errorf("check the AWS credentials (sts get-caller-identity): %w", advise(err))
	}
	return aws.ToString(out.Account), aws.ToString(out.Arn), nil
}

func (c *Cloud) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func (c *Cloud) waiterMinDelay() time.Duration {
	if c.WaiterMinDelay > 0 {
		return c.WaiterMinDelay
	}
	return 15 * time.Second
}

func (c *Cloud) waiterMaxDelay() time.Duration {
	if d := c.waiterMinDelay(); d > 120*time.Second {
		return d
	}
	if c.WaiterMinDelay > 0 && c.WaiterMinDelay < time.Second {
		return 8 * c.WaiterMinDelay
	}
	return 120 * time.Second
}

func (c *Cloud) waitTimeout() time.Duration {
	if c.WaitTimeout > 0 {
		return c.WaitTimeout
	}
	return 10 * time.Minute
}

func (c *Cloud) doSleep(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		return c.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resourceName is the Name tag and the key pair / security group name.
// ResourceName is what kafkaup calls the key pair and security group of
// cluster name (besides tagging them).
func ResourceName(broker string) string { return "kafkaup-" + broker }

// RegionName is the region this client works in.
func (c *Cloud) RegionName() string { return c.Region }
