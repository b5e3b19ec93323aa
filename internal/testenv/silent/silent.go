// Package silent gives tests a loopback TCP port that accepts connections
// and never answers on them: a host whose sshd or broker hangs, or a port a
// firewall lets through while nothing serves it (as after the caller's IP
// changed behind a NAT that still completes the handshake).
package silent

import (
	"net"
	"sync"
	"testing"
)

// Listen returns the address (127.0.0.1:port) of such a port. The port and
// every connection it accepted are closed when the test ends.
func Listen(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return l.Addr().String()
}
