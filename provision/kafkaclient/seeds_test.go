package kafkaclient

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"
)

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestSeeds(t *testing.T) {
	if got := seeds("a:9092, b:9092,,[2001:db8::1]:9092"); !reflect.DeepEqual(got, []string{"a:9092", "b:9092", "[2001:db8::1]:9092"}) {
		t.Errorf("seeds = %q", got)
	}
	if _, err := Dial(context.Background(), "a:9092,b"); err == nil {
		t.Error("a list with an address without a port was accepted")
	}
}

// TestDialClusterWithANodeDown: a cluster's bootstrap list reaches the
// cluster through any node that answers, and a node kafkaup knows that is
// down is not taken for a wrong advertised address.
func TestDialClusterWithANodeDown(t *testing.T) {
	down := closedAddr(t)
	up := fakeBroker(t, down) // advertises the down node, as a cluster's metadata may
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, down+","+up)
	if err != nil {
		t.Fatalf("Dial with one node down: %v", err)
	}
	c.Close()

	other := closedAddr(t)
	_, err = Dial(ctx, down+","+other)
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("Dial with every node down = %v, want *UnreachableError", err)
	}
}

func TestSameAddrs(t *testing.T) {
	if !sameAddrs([]string{"b:1", "a:1"}, []string{"a:1", "b:1"}) || sameAddrs([]string{"a:1"}, []string{"a:1", "b:1"}) {
		t.Error("sameAddrs")
	}
}

// TestReachableSeeds: the seeds are probed at once; one whose packets are
// dropped (its dial hangs) is left out after the grace that follows the
// first answer, not after its own time-out, and a refused one is left out.
func TestReachableSeeds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	up, refused, dropped := l.Addr().String(), closedAddr(t), "192.0.2.99:9092"
	var d net.Dialer
	cn := conn{dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == dropped {
			<-ctx.Done() // never answers
			return nil, ctx.Err()
		}
		return d.DialContext(ctx, network, addr)
	}}
	start := time.Now()
	live, err := reachableSeeds(context.Background(), cn, []string{dropped, refused, up})
	if err != nil || !reflect.DeepEqual(live, []string{up}) {
		t.Fatalf("live %v, %v; want [%s]", live, err, up)
	}
	if took := time.Since(start); took > seedGrace+2*time.Second {
		t.Errorf("took %s with a dropping seed first", took)
	}
	var ue *UnreachableError
	if _, err := reachableSeeds(context.Background(), cn, []string{refused}); !errors.As(err, &ue) {
		t.Errorf("no seed answers: %v", err)
	}
}
