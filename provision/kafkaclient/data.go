package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Produce writes one record per value to topic and waits until the broker
// has acknowledged them all. It returns how many were acknowledged; when
// some fail, the error says how many and why. The topic must exist: Produce
// checks first (a *NoTopicError) rather than letting the broker auto-create it.
func (c *Client) Produce(ctx context.Context, topic string, values [][]byte) (int, error) {
	if err := ValidateTopicName(topic); err != nil {
		return 0, err
	}
	if _, err := c.topicMetadata(ctx, topic, "create it first with kafkaup topics create "+topic); err != nil {
		return 0, err
	}
	if len(values) == 0 {
		return 0, nil
	}
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Value: v}
	}
	results := c.cl.ProduceSync(ctx, recs...)
	n := 0
	var first error
	for _, r := range results {
		if r.Err == nil {
			n++
		} else if first == nil {
			first = r.Err
		}
	}
	if first != nil {
		return n, fmt.Errorf("produce to %s on %s: %d of %d records not written: %w", topic, c.bootstrap, len(values)-n, len(values), first)
	}
	return n, nil
}

// Message is one consumed record.
type Message struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       []byte    `json:"key,omitempty"`
	Value     []byte    `json:"value"`
	Timestamp time.Time `json:"timestamp"`
}

// consumeReady, when set (by tests), is called once Consume has fixed its
// starting offsets: records produced after it returns are consumed even when
// reading from the end.
var consumeReady func()

// Consume reads topic, from the beginning of every partition or from each
// partition's end as of the call, and calls fn for each record in order
// within a partition (no consumer group, nothing committed). It stops and
// returns nil after max records (0 = no limit) or once idle passes with
// nothing new (0 = follow until ctx ends). When ctx ends first, it returns
// the count so far and ctx's error (errors.Is(err, context.Canceled) for an
// interrupted follow). An error from fn stops Consume and is returned as is;
// the record fn refused is not counted. A missing topic is a *NoTopicError.
func (c *Client) Consume(ctx context.Context, topic string, fromBeginning bool, max int, idle time.Duration, fn func(Message) error) (int, error) {
	if err := ValidateTopicName(topic); err != nil {
		return 0, err
	}
	if max < 0 || idle < 0 {
		return 0, fmt.Errorf("consume %s: max (%d) and idle (%v) must not be negative", topic, max, idle)
	}
	t, err := c.topicMetadata(ctx, topic, "")
	if err != nil {
		return 0, err
	}
	offsets := make(map[int32]kgo.Offset, len(t.Partitions))
	if fromBeginning {
		for _, p := range t.Partitions {
			offsets[p.Partition] = kgo.NewOffset().AtStart()
		}
	} else {
		// Fix the end offsets now, rather than letting the consumer look
		// them up lazily, so records produced after this call are read.
		ends, err := c.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("read end offsets of %s from %s: %w", topic, c.bootstrap, err)
		}
		for _, p := range t.Partitions {
			o, ok := ends.Lookup(topic, p.Partition)
			switch {
			case !ok:
				return 0, fmt.Errorf("read end offset of %s partition %d: the broker did not report it", topic, p.Partition)
			case o.Err != nil:
				return 0, fmt.Errorf("read end offset of %s partition %d: %w", topic, p.Partition, o.Err)
			}
			offsets[p.Partition] = kgo.NewOffset().At(o.Offset)
		}
	}

	opts, err := c.kgoOpts()
	if err != nil {
		return 0, fmt.Errorf("kafka consumer for %s: %w", c.bootstrap, err)
	}
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(time.Second),
	)
	consumer, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, fmt.Errorf("kafka consumer for %s: %w", c.bootstrap, err)
	}
	defer consumer.Close()
	if consumeReady != nil {
		consumeReady()
	}

	n := 0
	lastNews := time.Now()
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pollCtx, cancel = context.WithDeadline(ctx, lastNews.Add(idle))
		}
		fetches := consumer.PollFetches(pollCtx)
		cancel()
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("consume %s: %w", topic, err)
		}
		for _, fe := range fetches.Errors() {
			var loss *kgo.ErrDataLoss
			switch {
			case errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled):
				// Our idle deadline (ctx itself was checked above).
			case errors.As(fe.Err, &loss):
				// Records expired (retention) between choosing the
				// offset and fetching it; the client already moved on
				// to the oldest record left.
			default:
				return n, fmt.Errorf("consume %s partition %d from %s: %w", topic, fe.Partition, c.bootstrap, fe.Err)
			}
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			if idle > 0 && !time.Now().Before(lastNews.Add(idle)) {
				return n, nil
			}
			continue
		}
		lastNews = time.Now()
		for _, r := range recs {
			m := Message{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			if err := fn(m); err != nil {
				return n, err
			}
			n++
			if max > 0 && n >= max {
				return n, nil
			}
		}
	}
}
