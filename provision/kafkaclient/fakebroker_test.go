package kafkaclient

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeBroker answers ApiVersions and Metadata like a broker whose
// advertised.listeners names advertised: enough for Dial, no Kafka needed.
func fakeBroker(t *testing.T, advertised string) string {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(advertised)
	port, _ := strconv.Atoi(portStr)
	return serveLoopback(t, func(conn net.Conn) { serveFake(conn, host, int32(port)) })
}

// serveLoopback listens on a loopback port until the test ends and hands
// each connection to serve, in a goroutine of its own; it returns the
// port's address.
func serveLoopback(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()
	return l.Addr().String()
}

func serveFake(conn net.Conn, host string, port int32) {
	defer conn.Close()
	for {
		var size int32
		if err := binary.Read(conn, binary.BigEndian, &size); err != nil {
			return
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(conn, buf); err != nil {
			return
		}
		key := int16(binary.BigEndian.Uint16(buf[0:]))
		version := int16(binary.BigEndian.Uint16(buf[2:]))
		corr := buf[4:8]
		var resp kmsg.Response
		switch key {
		case 18:
			r := kmsg.NewPtrApiVersionsResponse()
			for _, k := range []int16{18, 3} {
				ak := kmsg.NewApiVersionsResponseApiKey()
				ak.ApiKey, ak.MaxVersion = k, kmsg.ResponseForKey(k).MaxVersion()
				r.ApiKeys = append(r.ApiKeys, ak)
			}
			resp = r
		case 3:
			r := kmsg.NewPtrMetadataResponse()
			b := kmsg.NewMetadataResponseBroker()
			b.NodeID, b.Host, b.Port = 1, host, port
			r.Brokers = append(r.Brokers, b)
			r.ClusterID = kmsg.StringPtr("fakeclusterid000000000")
			r.ControllerID = 1
			resp = r
		default:
			return
		}
		resp.SetVersion(version)
		out := append([]byte{0, 0, 0, 0}, corr...)
		if resp.IsFlexible() && key != 18 { // ApiVersions keeps response header v0
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// The broker answers at the bootstrap address but advertises one that is
// closed from here (the usual cloud mistake): Dial says so.
func TestDialAdvertisedUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	bs := fakeBroker(t, closed)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, bs)
	var ae *AdvertisedError
	var ue *UnreachableError
	if !errors.As(err, &ae) || ae.Advertised != closed || !errors.As(err, &ue) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial = %v, want *AdvertisedError for %s", err, closed)
	}
	if !strings.Contains(err.Error(), "the broker answers at "+bs+" but tells clients to use "+closed+", which is not reachable from here: set --advertised-host") {
		t.Errorf("message: %s", err)
	}
}
