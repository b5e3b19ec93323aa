// Package kafkaclient talks to a broker over the Kafka protocol (franz-go),
// the way kafkaup's users' clients will: from outside, to the advertised
// address.
package kafkaclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// VerifyTopic is the private topic kafkaup produces to and consumes from to
// prove a broker works. Its records expire after an hour.
const VerifyTopic = "_kafkaup_verify"

// Verification is what a successful round trip showed.
type Verification struct {
	Bootstrap  string   `json:"bootstrap"`
	Advertised []string `json:"advertised"` // broker addresses the cluster gave out
	ClusterID  string   `json:"cluster_id"`
	Topic      string   `json:"topic"`
	Partition  int32    `json:"partition"`
	Offset     int64    `json:"offset"`
	RoundTrip  string   `json:"round_trip"` // produce + consume
}

// UnreachableError says the broker could not be reached from this machine:
// the connection failed (refused, timed out, no route), or, Silent, it was
// accepted but nothing answered a Kafka request in time (a firewall or
// relay that holds connections it does not pass on looks like that).
type UnreachableError struct {
	Addr   string
	Silent bool
	Err    error
}

func (e *UnreachableError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	if e.Silent {
		return fmt.Sprintf("the broker at %s accepted the connection but did not answer a Kafka request in time (%v). Something between this machine and the broker may hold the connection without passing it on: check that a firewall or security group lets this machine reach %s on TCP port %s, and that the broker runs (kafkaup logs)", e.Addr, e.Err, host, port)
	}
	return fmt.Sprintf("cannot reach the broker at %s from this machine (%v). The broker may be fine on the host: check that a firewall or security group lets this machine reach %s on TCP port %s", e.Addr, e.Err, host, port)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Verify connects to bootstrap over PLAINTEXT, creates the verify topic if
// needed, produces one record with a fresh nonce and consumes it back.
func Verify(ctx context.Context, bootstrap string, timeout time.Duration) (*Verification, error) {
	return VerifyWith(ctx, bootstrap, timeout, Auth{})
}

// VerifyWith is Verify with authentication (TLS and/or SASL/SCRAM-SHA-512,
// see Auth). A failure the security settings explain is a *TLSError, an
// *AuthError or a *ProtocolMismatchError.
func VerifyWith(ctx context.Context, bootstrap string, timeout time.Duration, a Auth) (*Verification, error) {
	return verify(ctx, bootstrap, nil, 1, timeout, a)
}

// VerifyCluster is VerifyWith for a cluster of several nodes: bootstrap
// lists every node's client address, and the cluster's metadata must list
// exactly the brokers in want (host:port, as advertised to clients; it is
// asked again until it does or the timeout passes). The verify topic is
// made with replicas replicas, and the record is produced with acks=all.
func VerifyCluster(ctx context.Context, bootstrap string, want []string, replicas int16, timeout time.Duration, a Auth) (*Verification, error) {
	return verify(ctx, bootstrap, want, replicas, timeout, a)
}

func verify(ctx context.Context, bootstrap string, want []string, replicas int16, timeout time.Duration, a Auth) (*Verification, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cn := conn{bootstrap: bootstrap, auth: a}
	base, err := cn.opts()
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", bootstrap, err)
	}
	for _, addr := range seeds(bootstrap) {
		if err := waitListening(ctx, addr, time.Minute); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	cl, err := kgo.NewClient(append(slices.Clip(base), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", bootstrap, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	v, err := brokersAsWanted(ctx, adm, bootstrap, want, a)
	if err != nil {
		return v, err
	}
	for _, addr := range v.Advertised {
		if err := probe(ctx, addr); err != nil {
			return v, fmt.Errorf("the broker answers at %s but tells clients to use %s, which is not reachable from here: set --advertised-host to the address clients use (%w)", bootstrap, addr, err)
		}
	}

	if err := ensureTopic(ctx, adm, replicas); err != nil {
		return v, err
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	value := []byte("kafkaup verify " + hex.EncodeToString(nonce))
	rec := &kgo.Record{Topic: VerifyTopic, Partition: 0, Value: value}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return v, fmt.Errorf("produce to %s on %s: %w", VerifyTopic, bootstrap, err)
	}
	v.Partition, v.Offset = rec.Partition, rec.Offset

	consumer, err := kgo.NewClient(append(slices.Clip(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{VerifyTopic: {rec.Partition: kgo.NewOffset().At(rec.Offset)}}))...)
	if err != nil {
		return v, fmt.Errorf("kafka consumer for %s: %w", bootstrap, err)
	}
	defer consumer.Close()
	for {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return v, fmt.Errorf("consume the verify record back from %s: %w", bootstrap, ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return v, fmt.Errorf("consume from %s: %w", bootstrap, errs[0].Err)
		}
		for _, r := range fetches.Records() {
			if string(r.Value) == string(value) {
				v.RoundTrip = time.Since(start).Round(time.Millisecond).String()
				return v, nil
			}
		}
	}
}

// brokersAsWanted asks for the cluster's metadata until it lists the
// brokers in want (any brokers when want is empty).
//
// A connection closed at the first request is asked again for up to
// closedGrace: verify's settings are the listener's own, so it is not a
// protocol mismatch but no broker serving behind the address yet, which
// is how a port nobody listens on looks through a tunnel or port forward
// (the way waitListening waits out a refused one).
func brokersAsWanted(ctx context.Context, adm *kadm.Client, bootstrap string, want []string, a Auth) (*Verification, error) {
	var (
		closedSince time.Time
		closed      error // the last closed connection's error
	)
	for {
		meta, err := adm.BrokerMetadata(ctx)
		if err != nil {
			if closedAtOnce(err) && ctx.Err() == nil {
				if closedSince.IsZero() {
					closedSince = time.Now()
				}
				closed = err
				if time.Since(closedSince) < closedGrace {
					select {
					case <-ctx.Done():
					case <-time.After(time.Second):
					}
					continue
				}
			}
			if ctx.Err() != nil && closed != nil {
				err = closed // out of time while asking again: why it was asked again
			}
			if cerr, _ := classify(bootstrap, a, err); cerr != nil {
				return nil, cerr
			}
			return nil, fmt.Errorf("ask %s for cluster metadata: %w", bootstrap, err)
		}
		v := &Verification{Bootstrap: bootstrap, ClusterID: meta.Cluster, Topic: VerifyTopic}
		for _, b := range meta.Brokers {
			v.Advertised = append(v.Advertised, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
		}
		if len(want) == 0 || sameAddrs(v.Advertised, want) {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("the cluster at %s lists brokers %s, but its nodes are %s: a node has not joined it (see that node's server.log with kafkaup logs)",
				bootstrap, strings.Join(v.Advertised, ", "), strings.Join(want, ", "))
		case <-time.After(time.Second):
		}
	}
}

// closedGrace is how long verify asks again a broker address whose
// connections are closed at the first request.
var closedGrace = time.Minute

func sameAddrs(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func ensureTopic(ctx context.Context, adm *kadm.Client, replicas int16) error {
	retention := "3600000"
	resp, err := adm.CreateTopic(ctx, 1, replicas, map[string]*string{"retention.ms": &retention}, VerifyTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", VerifyTopic, err)
	}
	return nil
}

// probe opens and closes a TCP connection, to tell "unreachable" apart from
// Kafka-level errors.
func probe(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		last = err
		select {
		case <-ctx.Done():
			return &UnreachableError{Addr: addr, Err: last}
		case <-time.After(time.Second):
		}
	}
	return &UnreachableError{Addr: addr, Err: last}
}

// waitListening is probe for a broker that may still be starting: a refused
// connection (the host answers, nothing listens yet) is retried for up to
// refusedFor; other failures (time-outs: a firewall) as probe does.
func waitListening(ctx context.Context, addr string, refusedFor time.Duration) error {
	deadline := time.Now().Add(refusedFor)
	for {
		err := probe(ctx, addr)
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(2 * time.Second):
		}
	}
}
