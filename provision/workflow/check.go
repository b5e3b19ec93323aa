package workflow

import (
	"context"
	"fmt"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// CheckOptions is `kafkaup produce NAME TOPIC --check DURATION`.
type CheckOptions struct {
	Topic string
	For   time.Duration
	Every time.Duration // between two records; 0: the checker's default
}

// LostRecordsError says the check saw acknowledged records never read back.
type LostRecordsError struct{ Report kafkaclient.CheckReport }

func (e *LostRecordsError) Error() string {
	return fmt.Sprintf("%d acknowledged records were never read back (%v)", e.Report.Lost, e.Report)
}

// Check runs the no-loss checker on the cluster for o.For (or until ctx
// ends, e.g. Ctrl-C: the report covers what ran) and reports; a lost
// acknowledged record is a *LostRecordsError.
func Check(ctx context.Context, cl *kafkaclient.Client, o CheckOptions) (kafkaclient.CheckReport, error) {
	k, err := kafkaclient.StartCheck(ctx, cl, kafkaclient.CheckOptions{Topic: o.Topic, Every: o.Every})
	if err != nil {
		return kafkaclient.CheckReport{}, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.For):
	}
	// Reading back is bounded on its own: it must run after a Ctrl-C too.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	rep, err := k.Stop(stopCtx)
	if err != nil {
		return rep, err
	}
	if rep.Lost > 0 {
		return rep, &LostRecordsError{Report: rep}
	}
	return rep, nil
}
