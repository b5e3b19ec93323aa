package workflow

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/internal/testenv/silent"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
)

// TestSilentPortsNameAllow: an EC2 broker whose SSH and Kafka ports
// accept connections and never answer (what a relay or firewall that holds
// dropped connections looks like) fails a day-2 command with the advice
// to run kafkaup allow NAME --my-ip, through the real SSH dialer and the
// real Kafka client, on loopback. The handshake and the Kafka request time
// out; the advice comes from the errors' types.
func TestSilentPortsNameAllow(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	sshAddr, kafkaAddr := silent.Listen(t), silent.Listen(t)
	rec, err := f.store.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	host, sshPort := splitAddr(t, sshAddr)
	_, kafkaPort := splitAddr(t, kafkaAddr)
	n := rec.Node(0)
	n.Host, n.Port, n.AdvertisedHost, n.Identity = host, sshPort, host, writeLoginKey(t)
	rec.Spec.BrokerPort = kafkaPort
	if err := f.store.Save(rec); err != nil {
		t.Fatal(err)
	}
	f.env.Dial = SSHDialer{StateDir: f.env.StateDir, UI: f.ui}
	b, err := Open(f.env, "demo", 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		port string
		call func(ctx context.Context) error
		as   func(error) bool
	}{
		{"22 (ssh)", func(ctx context.Context) error {
			h, err := b.Dial(ctx, f.env, DialOptions{})
			if err == nil {
				h.Close()
			}
			return err
		}, func(err error) bool {
			var ue *remote.UnreachableError
			return errors.As(err, &ue) && ue.Timeout
		}},
		{"9092 (kafka)", func(ctx context.Context) error {
			cl, err := b.Kafka(ctx)
			if err == nil {
				cl.Close()
			}
			return err
		}, func(err error) bool {
			var ue *kafkaclient.UnreachableError
			return errors.As(err, &ue) && ue.Silent
		}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		begin := time.Now()
		err := tc.call(ctx)
		cancel()
		var advice *UnreachableError
		if !errors.As(err, &advice) || !tc.as(err) || !strings.Contains(err.Error(), "kafkaup allow demo --my-ip") {
			t.Errorf("port %s silent: %T %v", tc.port, err, err)
			continue
		}
		if took := time.Since(begin); took > 10*time.Second {
			t.Errorf("port %s silent: the error came after %s, past the caller's deadline", tc.port, took)
		}
		t.Logf("port %s silent, after %s: %v", tc.port, time.Since(begin).Round(10*time.Millisecond), err)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

// writeLoginKey writes a fresh ed25519 private key (OpenSSH format) and returns
// its path.
func writeLoginKey(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
