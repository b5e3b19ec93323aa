package kafkaclient

import (
	"context"
	"errors"
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
