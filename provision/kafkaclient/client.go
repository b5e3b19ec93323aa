package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client is a connection to one broker's bootstrap address, for the day-2
// commands (topics, produce, consume, status). It is safe for concurrent use.
type Client struct {
	bootstrap string
	cl        *kgo.Client
	adm       *kadm.Client
	// conn is how the client reached the broker, for the extra kgo
	// clients it makes (consumers). The zero value means PLAINTEXT over a
	// net.Dialer to bootstrap.
	conn conn
}

// clientOpts are the options every kgo client of this package starts from.
func clientOpts(bootstrap string) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(seeds(bootstrap)...),
		kgo.ClientID("kafkaup"),
		kgo.DialTimeout(10 * time.Second),
		kgo.RequestRetries(5),
		kgo.RetryTimeout(30 * time.Second),
	}
}

// kgoOpts are the options for another kgo client to the same broker, with
// the same security settings and dialer.
func (c *Client) kgoOpts() ([]kgo.Opt, error) {
	if c.conn.bootstrap == "" {
		return clientOpts(c.bootstrap), nil
	}
	return c.conn.opts()
}

// Dial connects to the broker at bootstrap (host:port) over PLAINTEXT. It
// first opens a plain TCP connection, so that a closed port or a firewall
// shows up as an *UnreachableError with advice; then it asks for cluster
// metadata and checks that the addresses the broker advertises are
// reachable too (an *AdvertisedError when they are not). DialWith is Dial
// with TLS and SASL; DialVia is Dial through a custom dialer.
func Dial(ctx context.Context, bootstrap string) (*Client, error) {
	return dialConn(ctx, conn{bootstrap: bootstrap})
}

// seeds splits a bootstrap list, host:port[,host:port...] (a cluster's
// nodes), into its addresses.
func seeds(bootstrap string) []string {
	var out []string
	for _, a := range strings.Split(bootstrap, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func dialConn(ctx context.Context, cn conn) (*Client, error) {
	bootstrap := cn.bootstrap
	known := map[string]bool{}
	for _, addr := range seeds(bootstrap) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("broker address %q is not host:port (example: 203.0.113.7:9092): %w", addr, err)
		}
		known[addr] = true
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("broker address %q is not host:port (example: 203.0.113.7:9092)", bootstrap)
	}
	opts, err := cn.opts()
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", bootstrap, err)
	}
	live, err := reachableSeeds(ctx, cn, seeds(bootstrap))
	if err != nil {
		return nil, err
	}
	// Bootstrap from the seeds that answered: a request sent to a dead
	// seed is retried with backoff, seconds a status cannot spare.
	opts = append(opts, kgo.SeedBrokers(live...))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", bootstrap, err)
	}
	c := &Client{bootstrap: bootstrap, cl: cl, adm: kadm.NewClient(cl), conn: cn}
	// Every seed at once: one that accepts and never answers (a hung
	// broker) would hold a request sent only to it until it times out.
	var meta *kmsg.MetadataResponse
	err = c.askAnySeed(ctx, func() kmsg.Request {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		return req
	}, func(r kmsg.Response) error {
		meta = r.(*kmsg.MetadataResponse)
		return nil
	})
	if err != nil {
		c.Close()
		cerr, guessed := classify(bootstrap, cn.auth, err)
		if cerr != nil && !guessed {
			return nil, cerr
		}
		var netErr net.Error // os.ErrDeadlineExceeded and context.DeadlineExceeded are ones
		if errors.As(err, &netErr) && netErr.Timeout() {
			return nil, &UnreachableError{Addr: bootstrap, Silent: true, Err: err}
		}
		if cerr != nil {
			err = cerr
		}
		return nil, fmt.Errorf("the broker at %s accepts TCP connections but did not answer a Kafka metadata request (is %s the broker's client listener?): %w", bootstrap, bootstrap, err)
	}
	for _, b := range meta.Brokers {
		addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		if known[addr] {
			continue // a node kafkaup knows: one that is down is status's to report
		}
		if err := cn.probe(ctx, addr); err != nil {
			c.Close()
			return nil, &AdvertisedError{Bootstrap: bootstrap, Advertised: addr, Err: err}
		}
	}
	return c, nil
}

// seedGrace is how long reachableSeeds waits for the other seeds once
// one has answered.
const seedGrace = time.Second

// reachableSeeds probes every seed at once and returns those that accept
// TCP connections, in their order: one is enough to talk to a cluster, so
// once one answers the others get seedGrace more, and a dead node whose
// packets are dropped does not cost its whole probe time. When none
// answers, the error is the first seed's.
func reachableSeeds(ctx context.Context, cn conn, addrs []string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(addrs))
	ok := make([]bool, len(addrs))
	done := make(chan int, len(addrs))
	for i, addr := range addrs {
		go func() {
			errs[i] = cn.probe(ctx, addr)
			done <- i
		}()
	}
	var grace <-chan time.Time
	for pending := len(addrs); pending > 0; {
		select {
		case i := <-done:
			pending--
			if ok[i] = errs[i] == nil; ok[i] && grace == nil {
				grace = time.After(seedGrace)
			}
			continue
		case <-grace:
		}
		break
	}
	var live []string
	for i, addr := range addrs {
		if ok[i] {
			live = append(live, addr)
		}
	}
	if len(live) == 0 {
		return nil, errs[0]
	}
	return live, nil
}

// Close releases the client's connections.
func (c *Client) Close() {
	c.cl.Close()
}

// Bootstrap is the address the client was dialed with.
func (c *Client) Bootstrap() string { return c.bootstrap }

// BrokerInfo is one broker as the cluster describes it.
type BrokerInfo struct {
	ID   int32  `json:"id"`
	Addr string `json:"addr"` // host:port as advertised to clients
	Rack string `json:"rack,omitempty"`
}

// ClusterInfo is what `kafkaup status` shows about the cluster.
type ClusterInfo struct {
	ClusterID string `json:"cluster_id"`
	// ControllerID is the KRaft quorum leader (the active controller), as
	// DescribeQuorum reports it. (A KRaft broker's metadata response names a
	// random broker as "controller", so that field is not used.)
	ControllerID int32        `json:"controller_id"`
	Voters       []int32      `json:"voters"` // the controller quorum's voters
	Brokers      []BrokerInfo `json:"brokers"`
	// Topics and Partitions count what `kafkaup topics list` shows: internal
	// topics and kafkaup's own VerifyTopic are left out.
	Topics     int `json:"topics"`
	Partitions int `json:"partitions"`
}

// Cluster describes the cluster: id, quorum leader, brokers, topic counts.
func (c *Client) Cluster(ctx context.Context) (*ClusterInfo, error) {
	meta, err := c.metadata(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("ask %s for cluster metadata: %w", c.bootstrap, err)
	}
	info := &ClusterInfo{ControllerID: -1, Brokers: []BrokerInfo{}, Voters: []int32{}}
	if meta.ClusterID != nil {
		info.ClusterID = *meta.ClusterID
	}
	for _, b := range meta.Brokers {
		bi := BrokerInfo{ID: b.NodeID, Addr: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		info.Brokers = append(info.Brokers, bi)
	}
	slices.SortFunc(info.Brokers, func(a, b BrokerInfo) int { return int(a.ID) - int(b.ID) })
	for _, t := range meta.Topics {
		if t.Topic == nil || hidden(*t.Topic, t.IsInternal) {
			continue
		}
		info.Topics++
		info.Partitions += len(t.Partitions)
	}

	p, err := c.describeQuorum(ctx)
	if err != nil {
		return nil, err
	}
	info.ControllerID = p.LeaderID
	for _, v := range p.CurrentVoters {
		info.Voters = append(info.Voters, v.ReplicaID)
	}
	slices.Sort(info.Voters)
	return info, nil
}

// metadata asks the cluster directly (bypassing franz-go's metadata cache,
// which would otherwise serve topic lists up to 5s old right after a create
// or delete). topics nil means all topics; an empty non-nil slice means
// brokers only.
func (c *Client) metadata(ctx context.Context, topics []string) (*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topics != nil {
		req.Topics = []kmsg.MetadataRequestTopic{}
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	return req.RequestWith(ctx, c.cl)
}

// topicMetadata returns one topic's metadata, or a *NoTopicError.
func (c *Client) topicMetadata(ctx context.Context, name, hint string) (*kmsg.MetadataResponseTopic, error) {
	meta, err := c.metadata(ctx, []string{name})
	if err != nil {
		return nil, fmt.Errorf("ask %s about topic %s: %w", c.bootstrap, name, err)
	}
	for i := range meta.Topics {
		t := &meta.Topics[i]
		if t.Topic == nil || *t.Topic != name {
			continue
		}
		err := kerr.ErrorForCode(t.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return nil, &NoTopicError{Topic: name, Hint: hint}
		case err != nil:
			return nil, fmt.Errorf("ask %s about topic %s: %w", c.bootstrap, name, err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("ask %s about topic %s: the metadata response left it out", c.bootstrap, name)
}

// hidden says whether a topic is left out of listings by default.
func hidden(name string, internal bool) bool {
	return internal || name == VerifyTopic
}

// brokerMessage formats an optional broker error message as a suffix.
func brokerMessage(m *string) string {
	if m == nil || *m == "" {
		return ""
	}
	return " (" + *m + ")"
}
