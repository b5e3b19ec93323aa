package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaup/kafkaup/internal/testenv/silent"
)

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"a", "orders", "Orders.v2", "a_b", "x-1", strings.Repeat("a", 249), "...", "_kafkaup_verify"} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("ValidateTopicName(%q) = %v", ok, err)
		}
	}
	bad := map[string]string{
		"":                       "it is empty",
		".":                      `"." and ".." are not allowed`,
		"..":                     `"." and ".." are not allowed`,
		"a/b":                    `contains '/'`,
		"a b":                    `contains ' '`,
		"café":                   `contains 'é'`,
		strings.Repeat("a", 250): "it is 250 characters long; the limit is 249",
	}
	for name, want := range bad {
		err := ValidateTopicName(name)
		var ie *InvalidTopicNameError
		if !errors.As(err, &ie) || ie.Name != name {
			t.Errorf("ValidateTopicName(%q) = %v, want *InvalidTopicNameError", name, err)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "invalid topic name ") {
			t.Errorf("ValidateTopicName(%q) = %q, want it to say %q", name, err, want)
		}
		if len(err.Error()) > 200 {
			t.Errorf("ValidateTopicName(%q) message is %d chars long: %s", name, len(err.Error()), err)
		}
	}
}

func TestCollisionWarning(t *testing.T) {
	for name, warn := range map[string]bool{"a.b_c": true, "a_b.c": true, "a.b": false, "a_b": false, "ab": false} {
		got := CollisionWarning(name)
		if (got != "") != warn {
			t.Errorf("CollisionWarning(%q) = %q, want warning %v", name, got, warn)
		}
		if warn && !strings.Contains(got, name) {
			t.Errorf("CollisionWarning(%q) = %q does not name the topic", name, got)
		}
	}
}

func TestParseConfigs(t *testing.T) {
	got, err := ParseConfigs([]string{"retention.ms=3600000", "cleanup.policy=compact,delete", "x.y= a=b ", " min.insync.replicas =1"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"retention.ms": "3600000", "cleanup.policy": "compact,delete", "x.y": " a=b ", "min.insync.replicas": "1"}
	if !maps.Equal(got, want) {
		t.Errorf("ParseConfigs = %q, want %q", got, want)
	}
	if got, err := ParseConfigs(nil); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ParseConfigs(nil) = %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"retention.ms":   `config "retention.ms" is not NAME=VALUE (example: --config retention.ms=3600000)`,
		"=5":             `config "=5" has no name before '='`,
		"retention ms=5": `config name "retention ms" contains white space`,
	} {
		if _, err := ParseConfigs([]string{in}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfigs(%q) = %v, want %q", in, err, want)
		}
	}
	if _, err := ParseConfigs([]string{"a=1", "a=2"}); err == nil || err.Error() != "config a is given twice (a=1 and a=2); give it once" {
		t.Errorf("duplicate: %v", err)
	}
}

func TestDialClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := Dial(context.Background(), addr)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Addr != addr {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial(%s) = %v, want *UnreachableError", addr, err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if !strings.Contains(err.Error(), "cannot reach the broker at "+addr) || !strings.Contains(err.Error(), "TCP port "+port) {
		t.Errorf("message: %s", err)
	}
}

func TestDialBadAddress(t *testing.T) {
	_, err := Dial(context.Background(), "127.0.0.1")
	if err == nil || !strings.Contains(err.Error(), `broker address "127.0.0.1" is not host:port`) {
		t.Fatalf("Dial without port = %v", err)
	}
}

// A port that accepts TCP but does not speak Kafka is not "unreachable".
func TestDialNotKafka(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			conn.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := Dial(ctx, l.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("Dial to a non-Kafka port succeeded")
	}
	var ue *UnreachableError
	if errors.As(err, &ue) || !strings.Contains(err.Error(), "accepts TCP connections but did not answer a Kafka metadata request") {
		t.Fatalf("Dial to a non-Kafka port = %v", err)
	}
	t.Log(err)
}

// A port that accepts TCP and then says nothing (a relay or firewall that
// holds what it does not pass on) is unreachable, Silent, with the
// time-out as its cause: callers add advice by type.
func TestDialSilentPort(t *testing.T) {
	addr := silent.Listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	begin := time.Now()
	c, err := Dial(ctx, addr)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a silent port succeeded")
	}
	var ue *UnreachableError
	var ne net.Error
	if !errors.As(err, &ue) || !ue.Silent || !errors.As(ue.Err, &ne) || !ne.Timeout() ||
		!strings.Contains(err.Error(), "accepted the connection but did not answer") {
		t.Fatalf("Dial to a silent port = %T %v", err, err)
	}
	t.Logf("after %s: %v", time.Since(begin).Round(10*time.Millisecond), err)
}

func TestCluster(t *testing.T) {
	c, ctx := dial(t)
	b := broker(t)
	info, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.ClusterID != b.ClusterID {
		t.Errorf("ClusterID = %q, want %q", info.ClusterID, b.ClusterID)
	}
	if info.ControllerID != 1 || !slices.Equal(info.Voters, []int32{1}) {
		t.Errorf("ControllerID = %d, Voters = %v; want 1, [1]", info.ControllerID, info.Voters)
	}
	if len(info.Brokers) != 1 || info.Brokers[0] != (BrokerInfo{ID: 1, Addr: b.Bootstrap}) {
		t.Errorf("Brokers = %+v", info.Brokers)
	}
	topics, err := c.ListTopics(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, tp := range topics {
		parts += len(tp.Partitions)
	}
	if info.Topics != len(topics) || info.Partitions != parts {
		t.Errorf("Cluster counts %d topics, %d partitions; ListTopics shows %d, %d", info.Topics, info.Partitions, len(topics), parts)
	}

	name := topicName(t, "cluster")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	after, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Topics != info.Topics+1 || after.Partitions != info.Partitions+2 {
		t.Errorf("after creating a 2-partition topic: %d topics, %d partitions (before %d, %d)", after.Topics, after.Partitions, info.Topics, info.Partitions)
	}
}

func TestTopicRoundTrip(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "orders")
	spec := TopicSpec{Name: name, Partitions: 3, Configs: map[string]string{"retention.ms": "3600000", "cleanup.policy": "delete"}}
	if err := c.CreateTopic(ctx, spec); err != nil {
		t.Fatal(err)
	}

	list, err := c.ListTopics(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(list))
	for i, tp := range list {
		names[i] = tp.Name
	}
	if !slices.Contains(names, name) || !slices.IsSorted(names) {
		t.Fatalf("ListTopics = %q, want it sorted and holding %s", names, name)
	}

	d, err := c.DescribeTopic(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != name || d.Internal || d.ReplicationFactor != 1 || len(d.Partitions) != 3 || len(d.ID) != 22 {
		t.Errorf("DescribeTopic = %+v", d)
	}
	// Only what was set on the topic; cleanup.policy=delete equals the
	// default but was set explicitly, so it is listed too.
	if want := map[string]string{"retention.ms": "3600000", "cleanup.policy": "delete"}; !maps.Equal(d.Configs, want) {
		t.Errorf("Configs = %v, want %v", d.Configs, want)
	}
	for i, p := range d.Partitions {
		if p.ID != int32(i) || p.Leader != 1 || !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) ||
			p.StartOffset != 0 || p.EndOffset != 0 || p.Error != "" {
			t.Errorf("partition %d = %+v", i, p)
		}
	}
	if idx := slices.Index(names, name); !equalTopic(list[idx], *d) {
		t.Errorf("ListTopics entry %+v differs from DescribeTopic %+v", list[idx], *d)
	}

	if err := c.DeleteTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	list, err = c.ListTopics(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range list {
		if tp.Name == name {
			t.Errorf("ListTopics still shows %s after DeleteTopic", name)
		}
	}
	if _, err := c.DescribeTopic(ctx, name); !isNoTopic(err, name) {
		t.Errorf("DescribeTopic after delete = %v", err)
	}
	// The name is free again.
	if err := c.CreateTopic(ctx, TopicSpec{Name: name}); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
	if d, err := c.DescribeTopic(ctx, name); err != nil || len(d.Partitions) != 1 || len(d.Configs) != 0 {
		t.Errorf("re-created topic: %+v, %v", d, err)
	}
}

func equalTopic(a, b TopicInfo) bool {
	return a.Name == b.Name && a.ID == b.ID && a.ReplicationFactor == b.ReplicationFactor &&
		len(a.Partitions) == len(b.Partitions) && maps.Equal(a.Configs, b.Configs)
}

func isNoTopic(err error, name string) bool {
	var ne *NoTopicError
	return errors.As(err, &ne) && ne.Topic == name
}

func TestCreateInvalidNames(t *testing.T) {
	c, ctx := dial(t)
	for _, name := range []string{"", "..", "a/b", strings.Repeat("x", 250)} {
		err := c.CreateTopic(ctx, TopicSpec{Name: name})
		var ie *InvalidTopicNameError
		if !errors.As(err, &ie) {
			t.Errorf("CreateTopic(%q) = %v, want *InvalidTopicNameError", name, err)
		}
		if _, err := c.DescribeTopic(ctx, name); !errors.As(err, &ie) {
			t.Errorf("DescribeTopic(%q) = %v, want *InvalidTopicNameError", name, err)
		}
	}
}

func TestCreateDuplicate(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "dup")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	err := c.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 4})
	var te *TopicExistsError
	if !errors.As(err, &te) || err.Error() != fmt.Sprintf("topic %s already exists; see kafkaup topics describe %s", name, name) {
		t.Fatalf("duplicate CreateTopic = %v", err)
	}
	if d, err := c.DescribeTopic(ctx, name); err != nil || len(d.Partitions) != 1 {
		t.Errorf("after duplicate create: %+v, %v", d, err)
	}
}

// Kafka refuses a topic whose name differs from an existing one only in
// '.' versus '_'.
func TestCreateCollision(t *testing.T) {
	c, ctx := dial(t)
	base := topicName(t, "coll")
	if err := c.CreateTopic(ctx, TopicSpec{Name: base + ".x"}); err != nil {
		t.Fatal(err)
	}
	err := c.CreateTopic(ctx, TopicSpec{Name: base + "_x"})
	if err == nil || !strings.Contains(err.Error(), "topic "+base+"_x not created: the broker refused the name") || !strings.Contains(err.Error(), "collides") {
		t.Fatalf("colliding CreateTopic = %v", err)
	}
	t.Log(err)
}

func TestDeleteMissing(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "missing")
	err := c.DeleteTopic(ctx, name)
	if !isNoTopic(err, name) || err.Error() != "no topic named "+name+"; kafkaup topics list shows what exists" {
		t.Fatalf("DeleteTopic(missing) = %v", err)
	}
}

func TestDescribeMissing(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "missing")
	if _, err := c.DescribeTopic(ctx, name); !isNoTopic(err, name) {
		t.Fatalf("DescribeTopic(missing) = %v", err)
	}
}

// writeCounter counts the requests a client writes, by API key.
type writeCounter struct {
	mu   sync.Mutex
	keys map[int16]int
}

func (w *writeCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys[key]++
}

func (w *writeCounter) count(key int16) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keys[key]
}

func TestReplicationFactorRefused(t *testing.T) {
	_, ctx := dial(t)
	// A Client whose requests are counted, to show nothing is sent.
	w := &writeCounter{keys: map[int16]int{}}
	bs := broker(t).Bootstrap
	cl, err := kgo.NewClient(append(clientOpts(bs), kgo.WithHooks(w))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c := &Client{bootstrap: bs, cl: cl, adm: kadm.NewClient(cl)}

	name := topicName(t, "rf2")
	err = c.CreateTopic(ctx, TopicSpec{Name: name, ReplicationFactor: 2})
	var re *ReplicationFactorError
	want := "replication factor 2 needs at least 2 brokers; this cluster has 1: use --replication-factor 1"
	if !errors.As(err, &re) || err.Error() != want {
		t.Fatalf("CreateTopic(RF 2) = %v, want %q", err, want)
	}
	createTopics := kmsg.NewPtrCreateTopicsRequest().Key()
	if n := w.count(createTopics); n != 0 {
		t.Errorf("%d CreateTopics requests sent for RF 2", n)
	}
	if err := c.CreateTopic(ctx, TopicSpec{Name: name, ReplicationFactor: 1}); err != nil || w.count(createTopics) != 1 {
		t.Fatalf("CreateTopic(RF 1) = %v after %d CreateTopics requests", err, w.count(createTopics))
	}
	if err := c.DeleteTopic(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeTopic(ctx, name); !isNoTopic(err, name) {
		t.Errorf("after a refused RF 2: DescribeTopic = %v", err)
	}
}

func TestBadConfig(t *testing.T) {
	c, ctx := dial(t)
	for _, tc := range []struct{ name, value, want string }{
		{"retention.msec", "1000", "Unknown topic config name: retention.msec"},
		{"retention.ms", "one hour", "retention.ms"},
		{"cleanup.policy", "sometimes", "cleanup.policy"},
	} {
		name := topicName(t, "cfg")
		err := c.CreateTopic(ctx, TopicSpec{Name: name, Configs: map[string]string{tc.name: tc.value, "segment.ms": "600000"}})
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Name != tc.name || ce.Value != tc.value || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %s=%s: %v", tc.name, tc.value, err)
		} else {
			t.Logf("config %s=%s: %v", tc.name, tc.value, err)
		}
		if _, err := c.DescribeTopic(ctx, name); !isNoTopic(err, name) {
			t.Errorf("after a refused config: DescribeTopic = %v", err)
		}
	}
}

func TestProduceConsume(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "data")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var values [][]byte
	want := map[string]bool{}
	for i := range 10 {
		v := fmt.Sprintf("message %d", i)
		values = append(values, []byte(v))
		want[v] = true
	}
	before := time.Now().Add(-time.Second)
	n, err := c.Produce(ctx, name, values)
	if err != nil || n != 10 {
		t.Fatalf("Produce = %d, %v", n, err)
	}
	d, err := c.DescribeTopic(ctx, name)
	if err != nil || d.Messages() != 10 {
		t.Fatalf("DescribeTopic after produce: %d messages, %v", d.Messages(), err)
	}

	got := map[string]bool{}
	next := map[int32]int64{}
	n, err = c.Consume(ctx, name, true, 10, 0, func(m Message) error {
		if m.Offset != next[m.Partition] {
			t.Errorf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition]++
		if m.Timestamp.Before(before) || m.Timestamp.After(time.Now()) {
			t.Errorf("timestamp %v", m.Timestamp)
		}
		got[string(m.Value)] = true
		return nil
	})
	if err != nil || n != 10 || !maps.Equal(got, want) {
		t.Fatalf("Consume(max 10) = %d, %v; got %v", n, err, got)
	}

	n, err = c.Consume(ctx, name, true, 4, 0, func(Message) error { return nil })
	if err != nil || n != 4 {
		t.Fatalf("Consume(max 4) = %d, %v", n, err)
	}

	stop := errors.New("enough")
	n, err = c.Consume(ctx, name, true, 0, 0, func(Message) error { return stop })
	if err != stop || n != 0 {
		t.Fatalf("Consume with fn failing = %d, %v", n, err)
	}
}

func TestConsumeIdle(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "idle")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, name, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := c.Consume(ctx, name, true, 0, 700*time.Millisecond, func(Message) error { return nil })
	if err != nil || n != 3 {
		t.Fatalf("Consume(idle, from beginning) = %d, %v", n, err)
	}
	took := time.Since(start)
	if took < 700*time.Millisecond || took > 10*time.Second {
		t.Errorf("Consume(idle 700ms) took %v", took)
	}
	start = time.Now()
	n, err = c.Consume(ctx, name, false, 0, 500*time.Millisecond, func(Message) error { return nil })
	if err != nil || n != 0 {
		t.Fatalf("Consume(idle, from end) = %d, %v", n, err)
	}
	t.Logf("idle consumes: %v, %v", took, time.Since(start))
}

func TestConsumeFromEnd(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "tail")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, name, [][]byte{[]byte("old")}); err != nil {
		t.Fatal(err)
	}
	consumeReady = func() {
		if _, err := c.Produce(ctx, name, [][]byte{[]byte("new 1"), []byte("new 2")}); err != nil {
			t.Error(err)
		}
	}
	defer func() { consumeReady = nil }()
	var got []string
	n, err := c.Consume(ctx, name, false, 2, 0, func(m Message) error {
		got = append(got, string(m.Value))
		return nil
	})
	slices.Sort(got)
	if err != nil || n != 2 || !slices.Equal(got, []string{"new 1", "new 2"}) {
		t.Fatalf("Consume from end = %d, %v, %q", n, err, got)
	}
}

func TestConsumeFollowCanceled(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "follow")
	if err := c.CreateTopic(ctx, TopicSpec{Name: name}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	defer cancel()
	n, err := c.Consume(fctx, name, true, 0, 0, func(Message) error { return nil })
	if n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Consume(follow) ended by ctx = %d, %v", n, err)
	}
}

func TestProduceConsumeMissingTopic(t *testing.T) {
	c, ctx := dial(t)
	name := topicName(t, "nope")
	n, err := c.Produce(ctx, name, [][]byte{[]byte("x")})
	if n != 0 || !isNoTopic(err, name) || err.Error() != "no topic named "+name+"; create it first with kafkaup topics create "+name {
		t.Fatalf("Produce(missing) = %d, %v", n, err)
	}
	// The broker auto-creates topics (auto.create.topics.enable=true), but
	// Produce never asked it to.
	if _, err := c.DescribeTopic(ctx, name); !isNoTopic(err, name) {
		t.Errorf("after Produce(missing): DescribeTopic = %v", err)
	}
	if n, err := c.Consume(ctx, name, true, 1, time.Second, func(Message) error { return nil }); n != 0 || !isNoTopic(err, name) {
		t.Fatalf("Consume(missing) = %d, %v", n, err)
	}
}

func TestListHidesInternal(t *testing.T) {
	c, ctx := dial(t)
	if _, err := Verify(ctx, broker(t).Bootstrap, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	has := func(include bool) bool {
		list, err := c.ListTopics(ctx, include)
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range list {
			if tp.Name == VerifyTopic {
				return true
			}
		}
		return false
	}
	if has(false) {
		t.Errorf("ListTopics(false) shows %s", VerifyTopic)
	}
	if !has(true) {
		t.Errorf("ListTopics(true) does not show %s", VerifyTopic)
	}
	d, err := c.DescribeTopic(ctx, VerifyTopic)
	if err != nil || d.Configs["retention.ms"] != "3600000" {
		t.Errorf("DescribeTopic(%s) = %+v, %v", VerifyTopic, d, err)
	}
}
