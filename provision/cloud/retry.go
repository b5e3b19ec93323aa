package cloud

// Two kinds of AWS trouble are retried, each where it belongs.
//
// Throttling and transient failures (RequestLimitExceeded, Throttling,
// ThrottlingException, 503 Unavailable, other 5xx, connection resets) can
// hit any request, so the SDK's retryer handles them inside every call, on
// every client NewFromConfig builds (EC2, SSM, STS, and the waiters'
// DescribeInstances), with a larger attempt budget than the SDK's default.
// RunInstances carries a ClientToken, so a retried launch whose first
// answer was lost returns the same instance instead of a second one.
//
// Eventual consistency: for a while after a resource is created EC2 may
// answer that it does not exist (InvalidGroup.NotFound,
// InvalidInstanceID.NotFound, ...), and an instance may not yet be in the
// state a call needs. The SDK cannot retry those codes for everyone (they
// also mean real mistakes), so kafkaup retries them only on the calls that
// name a resource it has just created or seen (untilVisible), and its SDK
// waiters keep polling through them.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// DefaultRetryMaxAttempts is how many times kafkaup's SDK clients try a
// request that AWS throttles or fails transiently. The SDK's default is 3,
// which one busy minute of an account (other tools share EC2's per-account
// request buckets) uses up. Throttles back off from about 1s doubling to
// 20s with full jitter (at most about 2 minutes over 10 attempts), other
// transient errors from 50ms. AWS_MAX_ATTEMPTS or max_attempts in the
// profile override it, and a retryer passed with config.WithRetryer is
// used as it is.
const DefaultRetryMaxAttempts = 10

// EC2 answers "server busy" and "internal error" with HTTP 503 and 500,
// which the SDK retries by status; listing the codes keeps them retried
// whatever status a proxy or emulator puts on them, and makes a busy
// server back off like a throttle.
var (
	serverBusyCodes = map[string]struct{}{
		"Unavailable":        {},
		"ServiceUnavailable": {},
	}
	transientCodes = map[string]struct{}{
		"Unavailable":        {},
		"ServiceUnavailable": {},
		"InternalError":      {},
		"InternalFailure":    {},
	}
)

// sdkRetryer is the retryer for one SDK client. current is what the SDK
// resolved from cfg; mode is its retry mode (standard or adaptive).
func (c *Cloud) sdkRetryer(cfg aws.Config, current aws.Retryer, mode aws.RetryMode) aws.Retryer {
	r := current
	if cfg.Retryer == nil {
		std := func(o *retry.StandardOptions) {
			o.MaxAttempts = DefaultRetryMaxAttempts
			// No client-wide retry quota: it stops all retries after
			// about 100 throttled calls (500 tokens, 5 per throttle retry,
			// only a call's last retry refunded), failing a long create
			// whose every call would have got through. It protects
			// services from fleets of clients; kafkaup's calls are serial
			// and each backs off on its own.
			o.RateLimiter = ratelimit.None
			o.Retryables = append(o.Retryables, retry.RetryableErrorCode{Codes: transientCodes})
			o.Throttles = append(o.Throttles, retry.ThrottleErrorCode{Codes: serverBusyCodes})
		}
		if mode == aws.RetryModeAdaptive {
			r = retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
				o.StandardOptions = append(o.StandardOptions, std)
				o.Throttles = append(o.Throttles, retry.ThrottleErrorCode{Codes: serverBusyCodes})
			})
		} else {
			r = retry.NewStandard(std)
		}
	}
	return &observedRetryer{Retryer: r, c: c}
}

// observedRetryer logs each retry (a throttled run is slow; the log says
// why) and lets tests shorten the pauses.
type observedRetryer struct {
	aws.Retryer
	c *Cloud
}

func (r *observedRetryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := r.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return r.Retryer.GetInitialToken(), nil
}

func (r *observedRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.Retryer.RetryDelay(attempt, err)
	if derr != nil {
		return d, derr
	}
	what := errorCode(err)
	if what == "" {
		what = "a transient error"
	}
	r.c.logf("AWS answered %s; retrying in %s (attempt %d)", what, d.Round(time.Millisecond), attempt+1)
	if r.c.retryDelay != nil {
		d = r.c.retryDelay(d)
	}
	return d, nil
}

// NotVisibleError is returned when EC2 kept answering that a resource
// kafkaup had just created or seen does not exist (or is not yet in the
// state the call needs) for longer than ConsistencyTimeout.
type NotVisibleError struct {
	What     string // e.g. "associate elastic IP eipalloc-1 with i-1"
	Attempts int
	Waited   time.Duration
	Err      error // the last answer
}

func (e *NotVisibleError) Error() string {
	return fmt.Sprintf("%s: EC2 still answered %s after %d attempts over %s, although it usually catches up with a resource created or changed a moment ago within seconds; AWS may be having trouble in this region (https://health.aws.amazon.com): wait a few minutes and run the command again (last answer: %v)",
		e.What, answerName(e.Err), e.Attempts, e.Waited.Round(time.Second), e.Err)
}

func (e *NotVisibleError) Unwrap() error { return e.Err }

// errNotListed: a describe call answered without the resource asked for,
// EC2's other way of saying it does not see it yet.
var errNotListed = errors.New("EC2's answer does not list it")

// notYet matches the answers that mean EC2 does not see the resource yet:
// errNotListed and the given error codes.
func notYet(codes ...string) func(error) bool {
	return func(err error) bool { return errors.Is(err, errNotListed) || hasCode(err, codes...) }
}

// untilVisible runs op, and while it fails with an error notYet accepts,
// runs it again after a pause: ConsistencyBackoff doubling up to 8 times
// that, until ConsistencyTimeout; then it returns a *NotVisibleError.
// Other errors return at once, prefixed with what: the call and the
// resource, which also name the retries in the log.
func (c *Cloud) untilVisible(ctx context.Context, what string, notYet func(error) bool, op func() error) error {
	err := c.retryFor(ctx, c.consistencyBackoff(), c.consistencyTimeout(), notYet,
		func(err error, pause time.Duration) {
			c.logf("%s: EC2 answered %s (not visible yet); retrying in %s", what, answerName(err), pause)
		},
		func(attempts int, waited time.Duration, err error) error {
			return &NotVisibleError{What: what, Attempts: attempts, Waited: waited, Err: err}
		},
		op)
	var nv *NotVisibleError
	if err == nil || errors.As(err, &nv) {
		return err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// answerName is how an answer that means "not yet" reads in messages.
func answerName(err error) string {
	if code := errorCode(err); code != "" {
		return code
	}
	if errors.Is(err, errNotListed) {
		return "without it"
	}
	return err.Error()
}

// retryFor runs op until it returns nil or an error retryable rejects,
// pausing first between attempts, doubled each time up to 8 times first.
// When the next pause would end past timeout (measured from the first
// attempt) it returns giveUp's error for the last one.
func (c *Cloud) retryFor(ctx context.Context, first, timeout time.Duration, retryable func(error) bool,
	onRetry func(err error, pause time.Duration), giveUp func(attempts int, waited time.Duration, err error) error, op func() error) error {
	start := c.clock()
	deadline := start.Add(timeout)
	pause := first
	for attempt := 1; ; attempt++ {
		err := op()
		switch {
		case err == nil || !retryable(err):
			return err
		case c.clock().Add(pause).After(deadline):
			return giveUp(attempt, c.clock().Sub(start), err)
		}
		onRetry(err, pause)
		if serr := c.doSleep(ctx, pause); serr != nil {
			return fmt.Errorf("%w (while retrying after: %v)", serr, err)
		}
		pause = min(2*pause, 8*first)
	}
}

// instanceWatch makes an SDK instance waiter keep polling while EC2
// answers InvalidInstanceID.NotFound for the instance kafkaup has just
// launched or found (the running waiter does so already; the stopped and
// terminated ones fail), and remembers whether EC2 ever showed it, so a
// timed-out wait can say which of the two it was.
type instanceWatch struct {
	notFound int
	last     error // the last NotFound answer
	seen     bool
	start    time.Time
}

type describeRetryable = func(context.Context, *ec2.DescribeInstancesInput, *ec2.DescribeInstancesOutput, error) (bool, error)

func (w *instanceWatch) wrap(def describeRetryable) describeRetryable {
	return func(ctx context.Context, in *ec2.DescribeInstancesInput, out *ec2.DescribeInstancesOutput, err error) (bool, error) {
		if w.start.IsZero() {
			w.start = time.Now() // the waiter sleeps in real time
		}
		if hasCode(err, "InvalidInstanceID.NotFound") {
			w.notFound++
			w.last = err
			return true, nil
		}
		if err == nil && out != nil && len(out.Reservations) > 0 {
			w.seen = true
		}
		return def(ctx, in, out, err)
	}
}

// explain turns a failed wait into a *NotVisibleError when EC2 never
// showed the instance; what names it.
func (w *instanceWatch) explain(what string, err error) error {
	if err == nil || w.seen || w.notFound == 0 {
		return err
	}
	return &NotVisibleError{What: what, Attempts: w.notFound, Waited: time.Since(w.start), Err: fmt.Errorf("%w (%v)", w.last, err)}
}

func (c *Cloud) consistencyTimeout() time.Duration {
	if c.ConsistencyTimeout > 0 {
		return c.ConsistencyTimeout
	}
	return 2 * time.Minute
}

func (c *Cloud) consistencyBackoff() time.Duration {
	if c.ConsistencyBackoff > 0 {
		return c.ConsistencyBackoff
	}
	return time.Second
}

func (c *Cloud) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
