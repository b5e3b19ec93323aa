package kafkaclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CheckOptions says what a no-loss check writes to.
type CheckOptions struct {
	// Topic is created by the caller (replication factor 3 on a cluster).
	Topic string
	// Every is the pause between two records; 0 means 20ms.
	Every time.Duration
}

// CheckReport is what a no-loss check saw between StartCheck and Stop.
type CheckReport struct {
	Acked, Consumed, Lost, Duplicated int           // Lost: acknowledged but never consumed; Duplicated: consumed more than once
	LongestStall                      time.Duration // the longest time with no acknowledgement while producing
	P50, P99                          time.Duration // produce latency (send -> ack)
	Errors                            int           // produce attempts that failed (each record is retried until acked or Stop)
}

func (r CheckReport) String() string {
	return fmt.Sprintf("acked %d, consumed %d, lost %d, duplicated %d, failed attempts %d, longest stall %v, latency p50 %v p99 %v",
		r.Acked, r.Consumed, r.Lost, r.Duplicated, r.Errors,
		r.LongestStall.Round(time.Millisecond), r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
}

// checkDeliveryTimeout is how long one produce attempt may take before it
// counts as failed and the record is sent again.
const checkDeliveryTimeout = 20 * time.Second

// Check is a running no-loss check: an idempotent acks=all producer that
// writes sequence-numbered records, and a separate consumer that reads
// them back. Each is its own franz-go client on the Client's bootstrap
// address and security settings.
type Check struct {
	topic    string
	run      string // tells this check's records from any other's
	producer *kgo.Client
	consumer *kgo.Client

	cancelProduce context.CancelFunc
	produceDone   chan struct{}
	cancelConsume context.CancelFunc
	consumeDone   chan struct{}

	mu         sync.Mutex
	firstAck   chan struct{} // closed at the first acknowledgement
	warmAt     time.Time     // when it came: stall and latency count from then
	lastAck    time.Time
	stall      time.Duration
	acked      map[int64]bool
	consumed   map[int64]int
	latencies  []time.Duration
	errors     int
	retry      []int64 // sequence numbers whose attempt failed, to send again
	consumeErr error
}

// StartCheck starts producing to o.Topic and consuming it back, from the
// topic's current end, and returns once the first record is acknowledged
// (an error if none is within 20s): the producer's own start is not
// counted as a stall or in the latencies. Stop ends the check and reports.
func StartCheck(ctx context.Context, c *Client, o CheckOptions) (*Check, error) {
	if err := ValidateTopicName(o.Topic); err != nil {
		return nil, err
	}
	if o.Every <= 0 {
		o.Every = 20 * time.Millisecond
	}
	start, err := c.endOffsets(ctx, o.Topic)
	if err != nil {
		return nil, err
	}
	base, err := c.kgoOpts()
	if err != nil {
		return nil, fmt.Errorf("no-loss check on %s: %w", c.bootstrap, err)
	}
	producer, err := kgo.NewClient(append(slices.Clip(base),
		kgo.DefaultProduceTopic(o.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // with idempotence, the default; said here because the check is about it
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(checkDeliveryTimeout),
	)...)
	if err != nil {
		return nil, fmt.Errorf("no-loss check producer for %s: %w", c.bootstrap, err)
	}
	consumer, err := kgo.NewClient(append(slices.Clip(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: start}),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		producer.Close()
		return nil, fmt.Errorf("no-loss check consumer for %s: %w", c.bootstrap, err)
	}
	var id [6]byte
	if _, err := rand.Read(id[:]); err != nil {
		producer.Close()
		consumer.Close()
		return nil, fmt.Errorf("no-loss check id: %w", err)
	}
	now := time.Now()
	k := &Check{
		topic: o.Topic, run: hex.EncodeToString(id[:]),
		producer: producer, consumer: consumer,
		produceDone: make(chan struct{}), consumeDone: make(chan struct{}),
		firstAck: make(chan struct{}), lastAck: now,
		acked: map[int64]bool{}, consumed: map[int64]int{},
	}
	var pctx, cctx context.Context
	pctx, k.cancelProduce = context.WithCancel(context.Background())
	cctx, k.cancelConsume = context.WithCancel(context.Background())
	go k.produceLoop(pctx, o.Every)
	go k.consumeLoop(cctx)
	// The producer's start (metadata, producer id) is not a stall: the
	// check begins at its first acknowledgement.
	wait := time.NewTimer(checkDeliveryTimeout)
	defer wait.Stop()
	select {
	case <-k.firstAck:
		return k, nil
	case <-ctx.Done():
	case <-wait.C:
	}
	k.cancelProduce()
	k.cancelConsume()
	<-k.produceDone
	<-k.consumeDone
	producer.Close()
	consumer.Close()
	return nil, fmt.Errorf("no-loss check on %s: no record written to %s was acknowledged within %v", c.bootstrap, o.Topic, checkDeliveryTimeout)
}

// endOffsets is each partition of topic at its current end.
func (c *Client) endOffsets(ctx context.Context, topic string) (map[int32]kgo.Offset, error) {
	t, err := c.topicMetadata(ctx, topic, "create it first with kafkaup topics create "+topic)
	if err != nil {
		return nil, err
	}
	ends, err := c.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read end offsets of %s from %s: %w", topic, c.bootstrap, err)
	}
	out := make(map[int32]kgo.Offset, len(t.Partitions))
	for _, p := range t.Partitions {
		o, ok := ends.Lookup(topic, p.Partition)
		switch {
		case !ok:
			return nil, fmt.Errorf("read end offset of %s partition %d: the broker did not report it", topic, p.Partition)
		case o.Err != nil:
			return nil, fmt.Errorf("read end offset of %s partition %d: %w", topic, p.Partition, o.Err)
		}
		out[p.Partition] = kgo.NewOffset().At(o.Offset)
	}
	return out, nil
}

// produceLoop sends the next record every tick (first any record whose
// attempt failed) until ctx ends.
func (k *Check) produceLoop(ctx context.Context, every time.Duration) {
	defer close(k.produceDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var next int64
	for {
		k.mu.Lock()
		seqs := k.retry
		k.retry = nil
		k.mu.Unlock()
		seqs = append(seqs, next)
		next++
		for _, seq := range seqs {
			k.send(ctx, seq)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (k *Check) send(ctx context.Context, seq int64) {
	sent := time.Now()
	r := &kgo.Record{Key: []byte(strconv.FormatInt(seq, 10)), Value: []byte(k.run + " " + strconv.FormatInt(seq, 10))}
	k.producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
		now := time.Now()
		k.mu.Lock()
		defer k.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				k.errors++
				k.retry = append(k.retry, seq)
			}
			return
		}
		k.acked[seq] = true
		if k.warmAt.IsZero() {
			k.warmAt = now
			close(k.firstAck)
		} else {
			k.stall = max(k.stall, now.Sub(k.lastAck))
		}
		if !sent.Before(k.warmAt) {
			k.latencies = append(k.latencies, now.Sub(sent))
		}
		k.lastAck = now
	})
}

// consumeLoop counts this run's records as they are read, until ctx ends.
// Fetch errors are the client's to retry (leaders move during a roll);
// only a closed client or ctx stop the loop.
func (k *Check) consumeLoop(ctx context.Context) {
	defer close(k.consumeDone)
	prefix := k.run + " "
	for {
		fetches := k.consumer.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		k.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			if !strings.HasPrefix(v, prefix) {
				return
			}
			seq, err := strconv.ParseInt(v[len(prefix):], 10, 64)
			if err != nil {
				k.consumeErr = fmt.Errorf("no-loss check read %q at %s/%d@%d: %w", v, r.Topic, r.Partition, r.Offset, err)
				return
			}
			k.consumed[seq]++
		})
		k.mu.Unlock()
	}
}

// Stop stops producing, waits for the records in flight, then waits
// (bounded by ctx) until the consumer has read every acknowledged record,
// and reports. Records still unread when ctx ends count as lost: that is
// the finding, not an error. The error is for a check that could not run.
func (k *Check) Stop(ctx context.Context) (CheckReport, error) {
	stopAt := time.Now()
	k.cancelProduce()
	<-k.produceDone
	// Records already sent finish (ack or fail) unless ctx ends first.
	if err := k.producer.Flush(ctx); err != nil {
		k.producer.AbortBufferedRecords(context.Background())
	}
	k.producer.Close()
	k.mu.Lock()
	k.stall = max(k.stall, stopAt.Sub(k.lastAck))
	k.mu.Unlock()

	for !k.allRead() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	k.cancelConsume()
	<-k.consumeDone
	k.consumer.Close()

	k.mu.Lock()
	defer k.mu.Unlock()
	return k.report(), k.consumeErr
}

func (k *Check) allRead() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for seq := range k.acked {
		if k.consumed[seq] == 0 {
			return false
		}
	}
	return true
}

// report is the check's figures; k.mu is held.
func (k *Check) report() CheckReport {
	r := CheckReport{Acked: len(k.acked), Consumed: len(k.consumed), LongestStall: k.stall, Errors: k.errors}
	for seq := range k.acked {
		if k.consumed[seq] == 0 {
			r.Lost++
		}
	}
	for _, n := range k.consumed {
		if n > 1 {
			r.Duplicated++
		}
	}
	lat := slices.Clone(k.latencies)
	slices.Sort(lat)
	r.P50, r.P99 = percentile(lat, 50), percentile(lat, 99)
	return r
}

// percentile is the p-th percentile of sorted (nearest rank), 0 when empty.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}
