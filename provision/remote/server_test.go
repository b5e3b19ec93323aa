package remote

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// testServer is an in-process SSH server for transport tests: it runs exec
// requests with the local bash and serves SFTP. Only for this package's
// tests (timeouts, reconnects, exit codes, host keys).
type testServer struct {
	t        *testing.T
	ln       net.Listener
	cfg      *ssh.ServerConfig
	hostKey  ssh.Signer
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	env      []string // extra environment for commands (e.g. a PATH with fakes)
}

func newTestKey(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startTestServer listens on addr ("127.0.0.1:0" for any port) and accepts
// clientKey only.
func startTestServer(t *testing.T, addr string, clientKey ssh.PublicKey) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, hostKey: newTestKey(t)}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	s.cfg.AddHostKey(s.hostKey)
	go s.serve()
	t.Cleanup(func() { s.Close() })
	return s
}

func (s *testServer) Addr() (string, int) {
	a := s.ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func (s *testServer) Close() {
	s.ln.Close()
	s.DropConnections()
}

// DropConnections cuts every open connection, like a network failure.
func (s *testServer) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *testServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

func (s *testServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, nc)
		s.accepted++
		s.mu.Unlock()
		go s.handle(nc)
	}
}

func (s *testServer) handle(nc net.Conn) {
	_, chans, reqs, err := ssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(r.Type == "keepalive@openssh.com", nil)
			}
		}
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		go s.session(ch, chReqs)
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for r := range reqs {
		switch r.Type {
		case "exec":
			n := binary.BigEndian.Uint32(r.Payload)
			command := string(r.Payload[4 : 4+n])
			_ = r.Reply(true, nil)
			cmd := exec.Command("bash", "-c", command)
			cmd.Env = append(os.Environ(), s.env...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := 0
			if err := cmd.Run(); err != nil {
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) {
					status = exitErr.Sys().(syscall.WaitStatus).ExitStatus()
				} else {
					status = 255
				}
			}
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
			return
		case "subsystem":
			_ = r.Reply(true, nil)
			srv, err := sftp.NewServer(ch)
			if err != nil {
				return
			}
			if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
				s.t.Logf("sftp: %v", err)
			}
			return
		default:
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
}
