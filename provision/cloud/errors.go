package cloud

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"
)

// RequestError is a request that cannot be carried out as given, because
// of what the user asked for: a malformed name, CIDR, port, key or id; no
// allowed CIDR (ErrNoAllowedCIDR); no region, or one that does not exist or
// is not enabled; an instance type, AMI, SSM parameter, subnet or Elastic
// IP that does not exist or does not fit; no default VPC or subnet to fall
// back on. Nothing was created, and running again unchanged fails the same
// way: the user has to change the request (for a CLI, a usage error).
// Its message is the advice to show.
//
// New, NewFromConfig, ValidateLocal and Validate return it as it is, and
// Create too when the request fails validation. A failure to check (AWS
// unreachable, throttling that outlasted the retries, credentials AWS
// rejected, a missing permission) is never a RequestError: the request may
// be fine. Missing credentials are a *CredentialsError. A *CreateError may
// hold a RequestError in its chain (the user's Elastic IP was released
// while Create ran); test for *CreateError first.
type RequestError struct {
	Err error
}

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

func requestErrorf(format string, args ...any) error {
	return &RequestError{Err: fmt.Errorf(format, args...)}
}

// ErrNoAllowedCIDR is CreateRequest.AllowCIDRs left empty, wrapped in a
// *RequestError. A caller that opens the broker to the user's own address
// when none was given can tell it apart from other bad input with
// errors.Is, and fill in AllowCIDRs before Validate.
var ErrNoAllowedCIDR = errors.New("no address may reach the broker: allow at least one CIDR (--allow-cidr 203.0.113.7/32)")

// CredentialsError is New or NewFromConfig finding no usable AWS
// credentials in the SDK's configuration chain; nothing was sent to AWS.
// Err is the chain's error, nil when no credentials provider is configured
// at all. Credentials that AWS itself rejects later (AuthFailure,
// ExpiredToken) come back from the call that used them, with advice.
type CredentialsError struct {
	Err error
}

const credentialsAdvice = "no usable AWS credentials: run `aws configure` (access keys) or `aws sso login --profile P` and set AWS_PROFILE=P, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"

func (e *CredentialsError) Error() string {
	if e.Err == nil {
		return credentialsAdvice
	}
	return credentialsAdvice + ": " + e.Err.Error()
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// CreateError is what Create returns once it has started creating things:
// the step that failed, the cause, and the broker's resources that exist
// now (looked up by tag after the failure), so the user can choose between
// rerunning create (it resumes) and destroy.
type CreateError struct {
	Broker string
	Step   string // e.g. "run instance", "create security group kafkaup-demo"
	Err    error
	// Existing is what Find saw after the failure; nil when that lookup
	// failed too (ListErr says why).
	Existing *Resources
	ListErr  error
	// PrivateKeyPEM is set when this run created the key pair: the caller
	// must store it (0600) even though Create failed, or a resumed create
	// could not log in.
	PrivateKeyPEM []byte
}

func (e *CreateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "create broker %s: %s: %v", e.Broker, e.Step, e.Err)
	switch {
	case e.ListErr != nil:
		fmt.Fprintf(&b, "\ncould not list what exists now (%v)", e.ListErr)
		fmt.Fprintf(&b, "\nrerun `kafkaup create %s` to continue, or run `kafkaup destroy %s` to delete whatever was created", e.Broker, e.Broker)
	case e.Existing == nil || e.Existing.Empty():
		fmt.Fprintf(&b, "\nno AWS resource of broker %s exists; fix the cause and rerun `kafkaup create %s`", e.Broker, e.Broker)
	default:
		fmt.Fprintf(&b, "\nresources of broker %s that exist now: %s", e.Broker, strings.Join(e.Existing.Lines(), ", "))
		fmt.Fprintf(&b, "\nrerun `kafkaup create %s` to continue, or run `kafkaup destroy %s` to delete them", e.Broker, e.Broker)
	}
	return b.String()
}

func (e *CreateError) Unwrap() error { return e.Err }

// adviceError adds what to do to an AWS error, keeping it in the chain.
type adviceError struct {
	err    error
	advice string
}

func (e *adviceError) Error() string { return e.err.Error() + "; " + e.advice }
func (e *adviceError) Unwrap() error { return e.err }

// advise wraps AWS errors a user can do something about with that
// something. Other errors come back unchanged.
func advise(err error) error {
	if err == nil {
		return nil
	}
	var already *adviceError
	if errors.As(err, &already) {
		return err
	}
	code := errorCode(err)
	op := "the call"
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		op = strings.ToLower(oe.Service()) + ":" + oe.Operation()
	}
	var advice string
	switch code {
	case "":
		return err
	case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException", "Blocked":
		advice = fmt.Sprintf("the AWS identity in use may not call %s: grant it that permission (or use a profile that has it, e.g. AWS_PROFILE=...) and rerun", op)
	case "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
		"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidAccessKeyId":
		advice = "AWS did not accept the credentials: refresh them (`aws sso login`, or new access keys with `aws configure`) and rerun"
	case "InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported":
		advice = "AWS has no capacity for this instance type in this availability zone right now: rerun later, or choose another --instance-type, or a --subnet in another zone"
	case "RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException":
		advice = "AWS is throttling this account's API requests (kafkaup already retried with growing pauses): wait a minute and rerun; if it persists, other tools in the account may be using up EC2's request rate"
	case "Unavailable", "ServiceUnavailable", "InternalError", "InternalFailure":
		advice = "AWS kept failing on its side through kafkaup's retries: wait a few minutes and rerun (https://health.aws.amazon.com shows outages)"
	case "InstanceLimitExceeded", "VcpuLimitExceeded", "AddressLimitExceeded", "SecurityGroupLimitExceeded",
		"RulesPerSecurityGroupLimitExceeded", "KeyPairLimitExceeded", "MaxSpotInstanceCountExceeded":
		advice = "an account quota is used up: free some (kafkaup list shows kafkaup's brokers) or raise it in the Service Quotas console, then rerun"
	case "OptInRequired":
		advice = "the account is not opted in to this region or service: enable it in the AWS console (Account > AWS Regions) or use another --region"
	default:
		return err
	}
	return &adviceError{err: err, advice: advice}
}

// errorCode is the AWS error code in err's chain, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func hasCode(err error, codes ...string) bool {
	c := errorCode(err)
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}
