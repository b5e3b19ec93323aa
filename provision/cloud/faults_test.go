package cloud

// A fault plan for the moto tests: rules that see each call's input and
// answer some attempts the way AWS does under load or while it is
// eventually consistent, and counts of what was injected.

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// What a fault does to an attempt.
const (
	answerError = iota // answer codes[i] instead of sending the request
	loseAnswer         // send it (moto carries it out), answer 503 instead
	lagLookup          // answer an empty list, as a lookup that lags behind
)

// fault applies to the attempts of calls to op ("*": any) whose input
// match accepts (nil: all). Each matching attempt takes the next of codes
// ("" lets it through; for loseAnswer the code answered after moto, for
// lagLookup any word). When codes run out, forever (if set) answers every attempt.
// perCall: codes restart for every call (the first attempts of each call),
// instead of running once over all attempts.
type fault struct {
	op      string
	match   func(in any) bool
	mode    int
	codes   []string
	forever string
	perCall bool
}

type faults struct {
	mu    sync.Mutex
	rules []*faultState
	// counts by kind: throttle, server, notfound, state, lag, lost
	injected map[string]int
	// opsHit: operations that got at least one fault; opsSeen: all called.
	opsHit, opsSeen map[string]bool
	// attempts per operation (each attempt that reached the injector).
	attempts map[string]int
	// idempotent answers by RunInstances client token, as EC2 keeps them;
	// tokens: the token of each RunInstances attempt.
	idem   map[string]*ec2.RunInstancesOutput
	tokens []string
	calls  atomic.Int64
	// rewrite, when set, may change any answer that got no fault (moto's
	// answer, before the SDK's caller sees it).
	rewrite func(op string, in, out any)
}

type faultState struct {
	fault
	next   int
	byCall map[int64]int
}

func newFaults() *faults {
	return &faults{injected: map[string]int{}, opsHit: map[string]bool{}, opsSeen: map[string]bool{},
		attempts: map[string]int{}, idem: map[string]*ec2.RunInstancesOutput{}}
}

func (f *faults) add(rs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rs {
		f.rules = append(f.rules, &faultState{fault: r, byCall: map[int64]int{}})
	}
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

type callKey struct{}

type call struct {
	id    int64
	input any
}

func (f *faults) option(stack *middleware.Stack) error {
	// Initialize runs once per call, before the retry loop: remember the
	// call and its input (the SDK has filled ClientToken by then).
	err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("kafkaupFaultCall",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			ctx = context.WithValue(ctx, callKey{}, &call{id: f.calls.Add(1), input: in.Parameters})
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	if err != nil {
		return err
	}
	// Deserialize runs once per attempt, inside the retry loop.
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("kafkaupFaultAttempt", f.attempt), middleware.Before)
}

func (f *faults) attempt(ctx context.Context, req middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
	op := awsmiddleware.GetOperationName(ctx)
	cl, _ := ctx.Value(callKey{}).(*call)
	if cl == nil {
		return next.HandleDeserialize(ctx, req)
	}
	r, code := f.pick(op, cl)

	// EC2 answers a RunInstances whose client token it has seen with the
	// launch it made for it; moto does not, so do it here.
	if run, ok := cl.input.(*ec2.RunInstancesInput); ok {
		f.mu.Lock()
		token := aws.ToString(run.ClientToken)
		f.tokens = append(f.tokens, token)
		prev := f.idem[token]
		f.mu.Unlock()
		if prev != nil && r == nil {
			return middleware.DeserializeOutput{Result: prev}, middleware.Metadata{}, nil
		}
		if r == nil || r.mode == loseAnswer {
			out, md, err := next.HandleDeserialize(ctx, req)
			if res, ok := out.Result.(*ec2.RunInstancesOutput); err == nil && ok && token != "" {
				f.mu.Lock()
				f.idem[token] = res
				f.mu.Unlock()
			}
			if r == nil || err != nil {
				return out, md, err
			}
			return middleware.DeserializeOutput{}, md, injected(code)
		}
	}
	switch {
	case r == nil:
		out, md, err := next.HandleDeserialize(ctx, req)
		if f.rewrite != nil && err == nil {
			f.rewrite(op, cl.input, out.Result)
		}
		return out, md, err
	case r.mode == loseAnswer:
		_, md, err := next.HandleDeserialize(ctx, req)
		if err != nil {
			return middleware.DeserializeOutput{}, md, err
		}
		return middleware.DeserializeOutput{}, md, injected(code)
	case r.mode == lagLookup:
		return middleware.DeserializeOutput{Result: emptyAnswer(op)}, middleware.Metadata{}, nil
	}
	return middleware.DeserializeOutput{}, middleware.Metadata{}, injected(code)
}

// pick returns the rule that applies to this attempt and its code, or nil,
// and counts.
func (f *faults) pick(op string, cl *call) (*fault, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opsSeen[op] = true
	f.attempts[op]++
	for _, r := range f.rules {
		if r.op != op && r.op != "*" || r.match != nil && !r.match(cl.input) {
			continue
		}
		var code string
		i := r.next
		if r.perCall {
			i = r.byCall[cl.id]
		}
		switch {
		case i < len(r.codes):
			code = r.codes[i]
			if r.perCall {
				r.byCall[cl.id]++
			} else {
				r.next++
			}
		case r.forever != "":
			code = r.forever
		default:
			continue
		}
		if code == "" {
			return nil, ""
		}
		f.opsHit[op] = true
		f.injected[kindOf(r.mode, code)]++
		return &r.fault, code
	}
	return nil, ""
}

func kindOf(mode int, code string) string {
	switch {
	case mode == lagLookup:
		return "lag"
	case mode == loseAnswer:
		return "lost"
	case strings.HasSuffix(code, ".NotFound"):
		return "notfound"
	case code == "IncorrectInstanceState" || code == "InvalidIPAddress.InUse" || code == "DependencyViolation":
		return "state"
	case code == "Unavailable" || code == "InternalError":
		return "server"
	}
	return "throttle"
}

// injected is an AWS error answer as the SDK's deserializers return it,
// with the HTTP status EC2 puts on it.
func injected(code string) error {
	status := http.StatusBadRequest
	switch code {
	case "RequestLimitExceeded", "Unavailable":
		status = http.StatusServiceUnavailable
	case "InternalError":
		status = http.StatusInternalServerError
	}
	return &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Header: http.Header{}}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "injected by the test"},
		},
		RequestID: "injected",
	}
}

// emptyAnswer: a lookup that does not show anything yet.
func emptyAnswer(op string) any {
	switch op {
	case "DescribeKeyPairs":
		return &ec2.DescribeKeyPairsOutput{}
	case "DescribeSecurityGroups":
		return &ec2.DescribeSecurityGroupsOutput{}
	case "DescribeInstances":
		return &ec2.DescribeInstancesOutput{}
	case "DescribeAddresses":
		return &ec2.DescribeAddressesOutput{}
	}
	panic("no empty answer for " + op)
}

// Input matchers.

// byInstanceID: DescribeInstances naming instances (the waiters and
// read-backs), not the lookups by tag.
func byInstanceID(in any) bool {
	d, ok := in.(*ec2.DescribeInstancesInput)
	return ok && len(d.InstanceIds) > 0
}

// byBrokerTag: a lookup by kafkaup's tags (Find and the ensure steps).
func byBrokerTag(in any) bool {
	var filters []types.Filter
	switch d := in.(type) {
	case *ec2.DescribeKeyPairsInput:
		filters = d.Filters
	case *ec2.DescribeSecurityGroupsInput:
		filters = d.Filters
	case *ec2.DescribeInstancesInput:
		filters = d.Filters
	case *ec2.DescribeAddressesInput:
		filters = d.Filters
	}
	for _, fl := range filters {
		if aws.ToString(fl.Name) == "tag:"+TagBroker {
			return true
		}
	}
	return false
}

func (f *faults) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.injected[kind]
}

func (f *faults) ops() (hit, missed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for op := range f.opsSeen {
		if f.opsHit[op] {
			hit = append(hit, op)
		} else {
			missed = append(missed, op)
		}
	}
	sort.Strings(hit)
	sort.Strings(missed)
	return hit, missed
}

// launched counts the instances moto ever launched for broker name
// (terminated ones too).
func (e *env) launched(name string) int {
	e.t.Helper()
	out, err := e.raw.DescribeInstances(e.ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + TagBroker), Values: []string{name}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, r := range out.Reservations {
		n += len(r.Instances)
	}
	return n
}

func (e *env) leaked() int {
	s := e.snapshot()
	return len(s.Instances) + len(s.SecurityGroups) + len(s.KeyPairs) + len(s.EIPs)
}

// summary logs what was injected and what it left.
func (e *env) summary(t *testing.T, name string) {
	t.Helper()
	f := e.faults
	f.mu.Lock()
	var kinds []string
	for _, k := range []string{"throttle", "server", "notfound", "state", "lag", "lost"} {
		kinds = append(kinds, fmt.Sprintf("%d %s", f.injected[k], k))
	}
	f.mu.Unlock()
	e.mu.Lock()
	var slept, sdk float64
	for _, d := range e.sleeps {
		slept += d.Seconds()
	}
	for _, d := range e.sdkPauses {
		sdk += d.Seconds()
	}
	e.mu.Unlock()
	t.Logf("faults injected: %s; instances created: %d; leaked: %d; pauses skipped: kafkaup %.1fs, SDK retryer %.1fs",
		strings.Join(kinds, ", "), e.launched(name), e.leaked(), slept, sdk)
}
