package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kafkaup/kafkaup/internal/testenv/silent"
)

type fixture struct {
	server    *testServer
	clientKey ssh.Signer
	pinFile   string
}

func newFixture(t *testing.T) *fixture {
	key := newTestKey(t)
	return &fixture{
		server:    startTestServer(t, "127.0.0.1:0", key.PublicKey()),
		clientKey: key,
		pinFile:   filepath.Join(t.TempDir(), "known_hosts"),
	}
}

func (f *fixture) config() Config {
	host, port := f.server.Addr()
	return Config{Host: host, Port: port, User: "tester", Auth: []ssh.AuthMethod{ssh.PublicKeys(f.clientKey)},
		HostKeys: &HostKeys{PinFile: f.pinFile}, DialTimeout: 5 * time.Second}
}

func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunScriptReturnsStdoutAndRunsAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sudo wrapper test needs root locally")
	}
	f := newFixture(t)
	c := dial(t, f.config())
	out, err := c.RunScript(context.Background(), "probe", []byte("set -euo pipefail\nid -u\necho hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "0\nhello\n" {
		t.Errorf("stdout = %q", out)
	}
}

func TestFailedCommandIsATypedError(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.config())
	_, err := c.Run(context.Background(), "boom", "echo one >&2; echo two >&2; exit 7")
	var pe *ProcessError
	if !errors.As(err, &pe) || pe.ExitStatus != 7 || pe.Name != "boom" || !strings.Contains(pe.StderrTail, "two") {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "exited with status 7") {
		t.Errorf("message %q", err)
	}
}

func TestAdviceFromScriptIsTheMessage(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.config())
	_, err := c.Run(context.Background(), "swap", "echo 'kafkaup: progress' >&2; echo 'kafkaup: rerun with --swap 0' >&2; exit 3")
	if err == nil || err.Error() != "rerun with --swap 0" {
		t.Fatalf("err = %v, want the script's advice", err)
	}
}

func TestNoSudo(t *testing.T) {
	f := newFixture(t)
	// Fakes make the login user look like uid 1000 whose sudo wants a password.
	fakes := t.TempDir()
	os.WriteFile(filepath.Join(fakes, "id"), []byte("#!/bin/sh\necho 1000\n"), 0o755)
	os.WriteFile(filepath.Join(fakes, "sudo"), []byte("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"), 0o755)
	f.server.env = []string{"PATH=" + fakes + ":" + os.Getenv("PATH")}
	c := dial(t, f.config())
	_, err := c.RunScript(context.Background(), "x", []byte("exit 97"))
	var ns *NoSudoError
	if !errors.As(err, &ns) || !strings.Contains(err.Error(), "passwordless sudo") {
		t.Fatalf("err = %v", err)
	}
}

func TestReconnectsAfterTheConnectionDrops(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.config())
	if _, err := c.Run(context.Background(), "one", "true"); err != nil {
		t.Fatal(err)
	}
	f.server.DropConnections()
	time.Sleep(100 * time.Millisecond)
	// The first call after a drop may fail (the drop can race the command),
	// but it must never report success without running, and the next call
	// reconnects.
	out, err := c.Run(context.Background(), "two", "echo ran")
	if err == nil && string(out) != "ran\n" {
		t.Fatalf("success without output: %q", out)
	}
	if err != nil {
		if out, err = c.Run(context.Background(), "three", "echo ran"); err != nil || string(out) != "ran\n" {
			t.Fatalf("after reconnect: %q, %v", out, err)
		}
	}
	if f.server.Accepted() < 2 {
		t.Errorf("server saw %d connections, want a reconnect", f.server.Accepted())
	}
}

func TestRetriesRefusedConnectionsUntilTheHostIsUp(t *testing.T) {
	// Reserve a port, close it, and start the server on it a little later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	key := newTestKey(t)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		startTestServer(t, addr, key.PublicKey())
	}()
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	cfg := Config{Host: host, Port: port, User: "u", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeys: &HostKeys{PinFile: filepath.Join(t.TempDir(), "kh")}, RetryFor: 20 * time.Second}
	c := dial(t, cfg)
	if _, err := c.Run(context.Background(), "x", "true"); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedWithoutRetryIsAdvice(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	cfg := Config{Host: "127.0.0.1", Port: addr.Port, User: "u", HostKeys: &HostKeys{}}
	_, err := Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "refused the SSH connection") || !strings.Contains(err.Error(), "--port") {
		t.Fatalf("err = %v", err)
	}
}

func TestWrongKeyIsAdviceAndNotRetriedByDefault(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(newTestKey(t))}
	cfg.RetryFor = time.Minute
	start := time.Now()
	_, err := Dial(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "refused the SSH key") || !strings.Contains(err.Error(), "--identity") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("an auth failure was retried although RetryAuth is off")
	}
}

func TestHostKeyPinnedOnFirstUseThenEnforced(t *testing.T) {
	f := newFixture(t)
	var pinned string
	cfg := f.config()
	cfg.HostKeys.OnPin = func(_, fp string) { pinned = fp }
	dial(t, cfg).Close()
	if pinned != ssh.FingerprintSHA256(f.server.hostKey.PublicKey()) {
		t.Fatalf("pinned %q", pinned)
	}
	data, _ := os.ReadFile(f.pinFile)
	if bytes.Count(data, []byte("\n")) != 1 {
		t.Fatalf("pin file:\n%s", data)
	}
	// Same host again: accepted, not pinned twice.
	cfg2 := f.config()
	dial(t, cfg2).Close()
	data, _ = os.ReadFile(f.pinFile)
	if bytes.Count(data, []byte("\n")) != 1 {
		t.Errorf("key pinned twice:\n%s", data)
	}

	// A different server on the same address: refused at once, even with retries on.
	f.server.Close()
	host, port := f.server.Addr()
	impostor := startTestServer(t, net.JoinHostPort(host, strconv.Itoa(port)), f.clientKey.PublicKey())
	_ = impostor
	cfg3 := f.config()
	cfg3.RetryFor, cfg3.RetryAuth = time.Minute, true
	start := time.Now()
	_, err := Dial(context.Background(), cfg3)
	var mismatch *HostKeyMismatchError
	if !errors.As(err, &mismatch) || !strings.Contains(err.Error(), "ssh-keygen -R") {
		t.Fatalf("err = %v, want a host key mismatch", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("a host key mismatch was retried")
	}
}

func TestStrictRefusesUnknownHosts(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.HostKeys.Strict = true
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "strict") {
		t.Fatalf("err = %v", err)
	}
}

func TestExpectedKeysFromConsole(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.HostKeys.Expected = []ssh.PublicKey{newTestKey(t).PublicKey()}
	if _, err := Dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "console output") {
		t.Fatalf("err = %v", err)
	}
	cfg.HostKeys.Expected = []ssh.PublicKey{f.server.hostKey.PublicKey()}
	dial(t, cfg).Close()
}

func TestUploadIsAtomicAndComplete(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.config())
	dir := t.TempDir()
	dest := filepath.Join(dir, "sub", "server.properties")
	payload := bytes.Repeat([]byte("x"), 1<<20)
	if err := c.Upload(context.Background(), bytes.NewReader(payload), dest, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("uploaded %d bytes, %v", len(got), err)
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	if _, err := os.Stat(dest + ".kafkaup-upload"); !os.IsNotExist(err) {
		t.Error("temp file left behind")
	}
}

func TestContextCancelStopsACommand(t *testing.T) {
	f := newFixture(t)
	c := dial(t, f.config())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, "sleep", "sleep 30")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestAuthErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Auth(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Errorf("missing key: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a key"), 0o600)
	if _, err := Auth(junk); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Errorf("junk key: %v", err)
	}
	_, priv, _ := ed25519GenerateKey()
	block, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	enc := filepath.Join(dir, "enc")
	os.WriteFile(enc, pemEncode(block), 0o600)
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := Auth(enc); err == nil || !strings.Contains(err.Error(), "ssh-add") {
		t.Errorf("encrypted key without agent: %v", err)
	}
}

// A refused key is an *AuthError (the one place that reads the library's
// text is isAuthFailure); with RetryAuth it is retried until RetryFor and
// is still an *AuthError at the end.
func TestWrongKeyIsAuthError(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(newTestKey(t))}
	_, err := Dial(context.Background(), cfg)
	var authErr *AuthError
	if !errors.As(err, &authErr) || authErr.Addr != cfg.Addr() || authErr.User != "tester" || authErr.Err == nil {
		t.Fatalf("err = %T %v, want an *AuthError", err, err)
	}
	if !strings.Contains(authErr.Err.Error(), "ssh: unable to authenticate") {
		t.Errorf("the library's error: %v", authErr.Err)
	}
	t.Logf("error: %v", err)

	before := f.server.Accepted()
	cfg.RetryAuth, cfg.RetryFor = true, 2*time.Second
	_, err = Dial(context.Background(), cfg)
	if !errors.As(err, &authErr) {
		t.Fatalf("with RetryAuth: %T %v, want an *AuthError", err, err)
	}
	if n := f.server.Accepted() - before; n < 2 {
		t.Errorf("with RetryAuth: %d attempts, want retries", n)
	}

	// Not every failed handshake is one.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			nc.Close()
		}
	}()
	defer ln.Close()
	cfg.Port, cfg.RetryFor = ln.Addr().(*net.TCPAddr).Port, 0
	if _, err := Dial(context.Background(), cfg); err == nil || errors.As(err, &authErr) {
		t.Errorf("not an SSH server: %T %v", err, err)
	}
}

// TestConsoleKeysReplaceStalePins: an address EC2 gave to an earlier
// instance has its old key pinned; the new instance's console keys are
// accepted without trusting on first use, and replace that pin (other
// hosts' pins stay). A second dial changes nothing.
func TestConsoleKeysReplaceStalePins(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	addr := knownhostsNormalize(cfg.Addr())
	stale := newTestKey(t).PublicKey()
	other := newTestKey(t).PublicKey()
	os.WriteFile(f.pinFile, []byte(pinLine(addr, stale)+pinLine("198.51.100.9", other)), 0o600)

	// Without console keys the stale pin refuses the host.
	var mismatch *HostKeyMismatchError
	if _, err := Dial(context.Background(), cfg); !errors.As(err, &mismatch) {
		t.Fatalf("stale pin: %v", err)
	}
	extra := newTestKey(t).PublicKey() // the console lists every key type the host has
	cfg.HostKeys.Expected = []ssh.PublicKey{extra, f.server.hostKey.PublicKey()}
	cfg.HostKeys.OnPin = func(host, _ string) { t.Errorf("trusted %s on first use", host) }
	dial(t, cfg).Close()
	want := pinLine("198.51.100.9", other) + pinLine(addr, extra) + pinLine(addr, f.server.hostKey.PublicKey())
	if got, _ := os.ReadFile(f.pinFile); string(got) != want {
		t.Fatalf("pin file:\n%s\nwant:\n%s", got, want)
	}
	st, _ := os.Stat(f.pinFile)
	dial(t, cfg).Close()
	if st2, _ := os.Stat(f.pinFile); !st2.ModTime().Equal(st.ModTime()) || st2.Mode().Perm() != 0o600 {
		t.Errorf("a second dial rewrote the pin file (or its mode is %v)", st2.Mode())
	}
	// The pins now let a dial without console keys in (kafkaup ssh, OpenSSH).
	cfg.HostKeys.Expected = nil
	dial(t, cfg).Close()
}

// TestConsoleKeyMismatchSaysSo: a host whose key is not among the console's
// is refused at once, with a message that says where the keys came from
// and that nothing was sent.
func TestConsoleKeyMismatchSaysSo(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.RetryFor, cfg.RetryAuth = time.Minute, true
	want := newTestKey(t).PublicKey()
	cfg.HostKeys.Expected = []ssh.PublicKey{want}
	cfg.HostKeys.ExpectedFrom = "kafkaup's record of demo"
	start := time.Now()
	_, err := Dial(context.Background(), cfg)
	var mismatch *HostKeyMismatchError
	if !errors.As(err, &mismatch) || time.Since(start) > 5*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
	for _, s := range []string{"printed on its console", ssh.FingerprintSHA256(want), ssh.FingerprintSHA256(f.server.hostKey.PublicKey()),
		"kafkaup's record of demo", "stopped before sending anything"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
	if data, _ := os.ReadFile(f.pinFile); len(data) > 0 {
		t.Errorf("a refused key was pinned:\n%s", data)
	}
}

func TestRemovePins(t *testing.T) {
	dir := t.TempDir()
	pins := filepath.Join(dir, "known_hosts")
	if err := RemovePins(pins, "203.0.113.7:22"); err != nil {
		t.Fatalf("no pin file: %v", err)
	}
	k1, k2, k3 := newTestKey(t).PublicKey(), newTestKey(t).PublicKey(), newTestKey(t).PublicKey()
	os.WriteFile(pins, []byte(pinLine("203.0.113.7", k1)+"# a comment\n"+pinLine("[203.0.113.7]:2222", k2)+
		pinLine("203.0.113.70", k3)+pinLine("203.0.113.7", k3)), 0o600)
	if err := RemovePins(pins, "203.0.113.7:22", "[203.0.113.7]:2222"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(pins); string(got) != "# a comment\n"+pinLine("203.0.113.70", k3) {
		t.Errorf("after RemovePins:\n%s", got)
	}
}

// TestPinKeysInParallel: pins written at the same time (a cluster's nodes
// are pinned in parallel; two kafkaup commands may run at once) are all
// kept.
func TestPinKeysInParallel(t *testing.T) {
	pins := filepath.Join(t.TempDir(), "known_hosts")
	const n = 24
	keys := make([]ssh.PublicKey, n)
	for i := range keys {
		keys[i] = newTestKey(t).PublicKey()
	}
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := PinKeys(pins, fmt.Sprintf("198.51.100.%d:22", i+1), keys[i:i+1]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	data, _ := os.ReadFile(pins)
	for i, k := range keys {
		if want := pinLine(fmt.Sprintf("198.51.100.%d", i+1), k); !strings.Contains(string(data), want) {
			t.Errorf("pin %d lost:\n%s", i+1, data)
		}
	}
}

// TestSilentHostIsUnreachableError: a host that never answers is a typed
// *UnreachableError with Timeout set (callers add advice by type).
func TestSilentHostIsUnreachableError(t *testing.T) {
	port := silentPort(t)
	cfg := Config{Host: "127.0.0.1", Port: port, User: "u", HostKeys: &HostKeys{}, DialTimeout: 300 * time.Millisecond}
	_, err := Dial(context.Background(), cfg)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !ue.Timeout || ue.Port != cfg.Port || !strings.Contains(err.Error(), "security group") {
		t.Fatalf("err = %T %v", err, err)
	}
}

// TestSilentHostHonoursContext: the handshake with a host that never
// answers ends at the caller's deadline (a time-out, as from the host's own
// silence), and a cancel ends it as a cancel, not as an unreachable host.
func TestSilentHostHonoursContext(t *testing.T) {
	port := silentPort(t)
	cfg := Config{Host: "127.0.0.1", Port: port, User: "u", HostKeys: &HostKeys{}, DialTimeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := Dial(ctx, cfg)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !ue.Timeout || time.Since(begin) > 10*time.Second {
		t.Errorf("deadline: %T %v after %s", err, err, time.Since(begin))
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	begin = time.Now()
	_, err = Dial(ctx, cfg)
	if !errors.Is(err, context.Canceled) || errors.As(err, &ue) || time.Since(begin) > 10*time.Second {
		t.Errorf("cancel: %T %v after %s", err, err, time.Since(begin))
	}
}

func pinLine(host string, k ssh.PublicKey) string {
	return knownhosts.Line([]string{host}, k) + "\n"
}

func knownhostsNormalize(addr string) string { return knownhosts.Normalize(addr) }

// silentPort is the port of a loopback listener that accepts and never
// answers (silent.Listen).
func silentPort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(silent.Listen(t))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
