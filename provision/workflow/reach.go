package workflow

import (
	"errors"
	"fmt"
	"net"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// UnreachableError is SSH (22) or Kafka (9092) of an EC2 cluster timing
// out from this machine: the security group lets in only the addresses
// kafkaup allowed, and the caller's public IP may have changed since.
type UnreachableError struct {
	Name string
	Err  error // a *remote.UnreachableError or *kafkaclient.UnreachableError
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%v\nThe security group of %s lets in only the addresses it was given; if this machine's public IP changed since, let the new one in with: kafkaup allow %s --my-ip",
		e.Err, e.Name, e.Name)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// reachAdvice turns a time-out reaching an EC2 cluster's SSH or Kafka port
// into an *UnreachableError; other errors, and clusters kafkaup did not
// create, are returned as they are.
func reachAdvice(c state.Cluster, err error) error {
	if err == nil || c.EC2 == nil {
		return err
	}
	var already *UnreachableError
	var advertised *kafkaclient.AdvertisedError // bootstrap answered: not the firewall
	if errors.As(err, &already) || errors.As(err, &advertised) {
		return err
	}
	var sshErr *remote.UnreachableError
	var kafkaErr *kafkaclient.UnreachableError
	if errors.As(err, &sshErr) && sshErr.Timeout || errors.As(err, &kafkaErr) && timedOut(kafkaErr.Err) {
		return &UnreachableError{Name: c.Name, Err: err}
	}
	return err
}

func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
