package kafkaclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kafkaup/kafkaup/internal/testenv/silent"
)

// TestQuorumRealBroker: the single test broker is the quorum's only voter
// and leader, with the directory id its meta.properties records.
func TestQuorumRealBroker(t *testing.T) {
	c, ctx := dial(t)
	b := broker(t)
	q, err := c.Quorum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if q.LeaderID != 1 || len(q.Voters) != 1 || q.Voters[0].ID != 1 || q.LeaderEpoch < 1 || q.HighWatermark <= 0 {
		t.Fatalf("quorum = %+v; want leader 1, one voter 1, an epoch and a high watermark", q)
	}
	meta, err := os.ReadFile(filepath.Join(b.dir, "data", "meta.properties"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "directory.id=" + q.Voters[0].DirectoryID; q.Voters[0].DirectoryID == "" || !strings.Contains(string(meta), want) {
		t.Errorf("voter directory id %q is not meta.properties' (%s)", q.Voters[0].DirectoryID, meta)
	}
	if v := q.Voters[0]; v.Lag != 0 || v.LastCaughtUpAgo != 0 {
		t.Errorf("the leader's own lag %d, last caught up %v ago; want 0, 0", v.Lag, v.LastCaughtUpAgo)
	}
	if got := q.CaughtUp(0); !slices.Equal(got, []int32{1}) {
		t.Errorf("CaughtUp(0) = %v, want [1]", got)
	}
	if _, err := ParseUUID(q.Voters[0].DirectoryID); err != nil {
		t.Error(err)
	}
}

// TestQuorumBesideASilentSeed: with a seed that accepts connections and
// never answers (a node whose broker hangs) listed first, the quorum still
// comes back at once from the live broker: every seed is asked.
func TestQuorumBesideASilentSeed(t *testing.T) {
	b := broker(t)
	hung := silent.Listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, hung+","+b.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	q, err := c.Quorum(ctx)
	if err != nil || q.LeaderID != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("quorum %+v, %v after %s", q, err, time.Since(start))
	}
}

// TestPartitionHealthRealBroker: a topic whose min.insync.replicas (2) is
// above its replica count (1) is reported under min ISR, and only it.
func TestPartitionHealthRealBroker(t *testing.T) {
	c, ctx := dial(t)
	healthy, starved := topicName(t, "healthy"), topicName(t, "starved")
	if err := c.CreateTopic(ctx, TopicSpec{Name: healthy, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, TopicSpec{Name: starved, Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	h, err := c.PartitionHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.UnderMinISR, []TopicPartition{{starved, 0}}) {
		t.Errorf("UnderMinISR = %v, want [%s-0]", h.UnderMinISR, starved)
	}
	if len(h.UnderReplicated) != 0 || len(h.Offline) != 0 || len(h.NotInISR) != 0 || h.OK() {
		t.Errorf("health = %+v, OK %v; want only the under-min-ISR partition, not OK", h, h.OK())
	}
	if err := c.DeleteTopic(ctx, starved); err != nil {
		t.Fatal(err)
	}
	h, err = c.PartitionHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !h.OK() {
		t.Errorf("after deleting %s: %+v, want OK", starved, h)
	}
}

func TestHealthFrom(t *testing.T) {
	part := func(p, leader int32, replicas, isr []int32) kmsg.MetadataResponseTopicPartition {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.Replicas, mp.ISR = p, leader, replicas, isr
		return mp
	}
	topic := func(name string, ps ...kmsg.MetadataResponseTopicPartition) kmsg.MetadataResponseTopic {
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic, mt.Partitions = kmsg.StringPtr(name), ps
		return mt
	}
	meta := kmsg.NewMetadataResponse()
	meta.Topics = []kmsg.MetadataResponseTopic{
		topic("orders",
			part(0, 1, []int32{1, 2, 3}, []int32{1, 2, 3}),
			part(1, 2, []int32{2, 3, 1}, []int32{2, 1}),
			part(2, -1, []int32{3, 1, 2}, []int32{3})),
		topic("__consumer_offsets", part(0, 1, []int32{1, 3, 2}, []int32{1, 2})),
	}
	h, err := healthFrom(&meta, map[string]int{"orders": 2, "__consumer_offsets": 2})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2, c0 := TopicPartition{"orders", 1}, TopicPartition{"orders", 2}, TopicPartition{"__consumer_offsets", 0}
	if !slices.Equal(h.UnderReplicated, []TopicPartition{c0, o1, o2}) {
		t.Errorf("UnderReplicated = %v", h.UnderReplicated)
	}
	if !slices.Equal(h.UnderMinISR, []TopicPartition{o2}) || !slices.Equal(h.Offline, []TopicPartition{o2}) {
		t.Errorf("UnderMinISR = %v, Offline = %v; want [orders-2] twice", h.UnderMinISR, h.Offline)
	}
	if !slices.Equal(h.NotInISR[3], []TopicPartition{c0, o1}) || !slices.Equal(h.NotInISR[1], []TopicPartition{o2}) || !slices.Equal(h.NotInISR[2], []TopicPartition{o2}) {
		t.Errorf("NotInISR = %v", h.NotInISR)
	}
	if h.OK() {
		t.Error("OK() with unhealthy partitions")
	}
}

func TestQuorumFrom(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	rs := func(id int32, leo, caughtUp int64) kmsg.DescribeQuorumResponseTopicPartitionReplicaState {
		r := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		r.ReplicaID, r.LogEndOffset, r.LastCaughtUpTimestamp = id, leo, caughtUp
		r.ReplicaDirectoryID[0] = byte(id)
		return r
	}
	p := kmsg.NewDescribeQuorumResponseTopicPartition()
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = 2, 7, 500
	p.CurrentVoters = append(p.CurrentVoters, rs(3, 100, 990_000), rs(2, 510, -1), rs(1, 505, 999_500))
	p.Observers = append(p.Observers, rs(4, -1, -1))
	q := quorumFrom(&p, now)
	if q.LeaderID != 2 || q.LeaderEpoch != 7 || q.HighWatermark != 500 {
		t.Errorf("leader fields = %+v", q)
	}
	want := []QuorumReplica{
		{ID: 1, DirectoryID: UUIDString([16]byte{1}), LogEndOffset: 505, Lag: 5, LastCaughtUpAgo: 500 * time.Millisecond},
		{ID: 2, DirectoryID: UUIDString([16]byte{2}), LogEndOffset: 510, Lag: 0, LastCaughtUpAgo: 0},
		{ID: 3, DirectoryID: UUIDString([16]byte{3}), LogEndOffset: 100, Lag: 410, LastCaughtUpAgo: 10 * time.Second},
	}
	if !slices.Equal(q.Voters, want) {
		t.Errorf("voters = %+v\nwant %+v", q.Voters, want)
	}
	if len(q.Observers) != 1 || q.Observers[0].Lag != -1 || q.Observers[0].LastCaughtUpAgo != -1 {
		t.Errorf("observers = %+v; want one with unknown lag and catch-up", q.Observers)
	}
	if got := q.CaughtUp(10); !slices.Equal(got, []int32{1, 2}) {
		t.Errorf("CaughtUp(10) = %v, want [1 2]", got)
	}
	id, err := ParseUUID(q.Voters[0].DirectoryID)
	if err != nil || id != ([16]byte{1}) {
		t.Errorf("ParseUUID round trip: %v, %v", id, err)
	}
	if _, err := ParseUUID("not-a-uuid"); err == nil {
		t.Error("ParseUUID accepted garbage")
	}
}

// TestVoterChangeRefused: the real broker answers a removal of a voter it
// does not have, and the addition of a controller that is not running,
// with a *VoterChangeError (the requests are well formed and forwarded).
func TestVoterChangeRefused(t *testing.T) {
	c, ctx := dial(t)
	stranger := UUIDString([16]byte{9, 9, 9})
	var vc *VoterChangeError
	if err := c.RemoveVoter(ctx, 9, stranger); !errors.As(err, &vc) || vc.Op != "remove" || vc.ID != 9 {
		t.Errorf("remove a voter that does not exist: %v", err)
	}
	addCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.AddVoter(addCtx, 9, stranger, ControllerEndpoint{Listener: "CONTROLLER", Host: "127.0.0.1", Port: 1}); !errors.As(err, &vc) || vc.Op != "add" {
		t.Errorf("add a controller that is not running: %v", err)
	}
	q, err := c.Quorum(ctx)
	if err != nil || len(q.Voters) != 1 {
		t.Errorf("voters after the refused changes: %+v, %v", q, err)
	}
	if _, err := ParseUUID("short"); err == nil {
		t.Error("ParseUUID accepted a short id")
	}
}
