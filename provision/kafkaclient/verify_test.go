package kafkaclient

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestVerifyUnreachableIsAdvice: when nothing answers at the advertised
// address, provision's last step says so in terms of firewalls, within the
// time it was given.
func TestVerifyUnreachableIsAdvice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err = Verify(context.Background(), addr, 4*time.Second)
	var unreachable *UnreachableError
	if !errors.As(err, &unreachable) || !strings.Contains(err.Error(), "firewall or security group") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("took %s with a 4s budget", took)
	}
}

// closingProxy forwards connections to target, except that until open is
// closed it closes each connection as soon as it is accepted: a port
// forward or tunnel with no broker serving behind it yet.
func closingProxy(t *testing.T, target string, open <-chan struct{}) string {
	t.Helper()
	return serveLoopback(t, func(c net.Conn) {
		defer c.Close()
		select {
		case <-open:
		default:
			return
		}
		b, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer b.Close()
		go io.Copy(b, c)
		io.Copy(c, b)
	})
}

// TestVerifyWaitsOutClosedConnections: right after a start, an address
// whose connections are closed at once (no broker behind a port forward
// yet) is asked again until the broker serves; one that stays so fails
// after closedGrace with a message that names that possibility.
func TestVerifyWaitsOutClosedConnections(t *testing.T) {
	b := broker(t)
	open := make(chan struct{})
	addr := closingProxy(t, b.Bootstrap, open)
	time.AfterFunc(3*time.Second, func() { close(open) })
	start := time.Now()
	if _, err := Verify(context.Background(), addr, time.Minute); err != nil {
		t.Fatalf("verify through a forward that serves after 3s: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("verified in %s, before the forward served", took)
	}

	defer func(g time.Duration) { closedGrace = g }(closedGrace)
	closedGrace = 2 * time.Second
	never := closingProxy(t, b.Bootstrap, make(chan struct{}))
	_, err := Verify(context.Background(), never, time.Minute)
	var mismatch *ProtocolMismatchError
	if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), "no broker may be serving behind this address") {
		t.Fatalf("verify through a forward that never serves: %v", err)
	}
}
