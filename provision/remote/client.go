// Package remote is kafkaup's SSH transport: one long-lived connection per
// host with keepalives, verified host keys, retries while a fresh host boots,
// scripts run as root through a fixed sudo wrapper with the script on stdin,
// typed errors for failed commands, and atomic uploads over SFTP.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Config says how to reach a host.
type Config struct {
	Host     string
	Port     int // 22 when zero
	User     string
	Auth     []ssh.AuthMethod
	HostKeys *HostKeys

	// RetryFor keeps retrying refused or timed-out connections this long
	// (a host that is still booting). Zero means a single attempt.
	RetryFor time.Duration
	// RetryAuth also retries "permission denied (publickey)", which is normal
	// while cloud-init installs the key on a new instance.
	RetryAuth bool
	// DialTimeout bounds one TCP connect plus handshake (15 s when zero).
	DialTimeout time.Duration
	// Log receives the remote commands' stderr, line by line (debug log).
	Log io.Writer
}

// Addr is host:port.
func (c Config) Addr() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

// Client is a connection to one host that reopens itself when it breaks.
type Client struct {
	cfg Config

	mu   sync.Mutex
	conn *ssh.Client
	stop chan struct{}
}

// Dial connects, retrying as Config says, and fails at once on a host key
// mismatch (*HostKeyMismatchError). A host that accepts none of the keys
// is an *AuthError.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	c := &Client{cfg: cfg}
	if _, err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close ends the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

func (c *Client) closeLocked() error {
	if c.conn == nil {
		return nil
	}
	close(c.stop)
	err := c.conn.Close()
	c.conn = nil
	return err
}

// connect returns the live connection, dialing a new one if needed.
func (c *Client) connect(ctx context.Context) (*ssh.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		return c.conn, nil
	}
	deadline := time.Now().Add(c.cfg.RetryFor)
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := c.dialOnce(ctx)
		if err == nil {
			c.conn = conn
			c.stop = make(chan struct{})
			go c.keepalive(conn, c.stop)
			return conn, nil
		}
		if !c.retryable(err) || time.Now().Add(delay).After(deadline) {
			return nil, c.explain(err)
		}
		c.logf("ssh %s: attempt %d: %v (retrying)", c.cfg.Addr(), attempt, err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w (last error: %v)", c.cfg.Addr(), ctx.Err(), err)
		case <-time.After(delay):
		}
		if delay < 5*time.Second {
			delay *= 2
		}
	}
}

func (c *Client) dialOnce(ctx context.Context) (*ssh.Client, error) {
	timeout := c.cfg.DialTimeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	algos, err := c.cfg.HostKeys.Algorithms(c.cfg.Addr())
	if err != nil {
		return nil, err
	}
	sshCfg := &ssh.ClientConfig{
		User:              c.cfg.User,
		Auth:              c.cfg.Auth,
		HostKeyCallback:   c.cfg.HostKeys.Callback(),
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", c.cfg.Addr())
	if err != nil {
		return nil, err
	}
	// The handshake must not hang: it ends at the dial timeout, at the
	// caller's deadline if that comes first, or when ctx is cancelled (a
	// silent peer then fails with a time-out, os.ErrDeadlineExceeded).
	handshakeEnd := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(handshakeEnd) {
		handshakeEnd = d
	}
	_ = raw.SetDeadline(handshakeEnd)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	sc, chans, reqs, err := ssh.NewClientConn(raw, c.cfg.Addr(), sshCfg)
	stop()
	if err != nil {
		raw.Close()
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("ssh handshake with %s: %w", c.cfg.Addr(), ctx.Err())
		}
		if isAuthFailure(err) {
			return nil, &AuthError{Addr: c.cfg.Addr(), User: c.cfg.User, Err: err}
		}
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// retryable tells the errors that are normal while a host boots.
func (c *Client) retryable(err error) bool {
	var mismatch *HostKeyMismatchError
	if errors.As(err, &mismatch) {
		return false
	}
	var netErr net.Error
	var authErr *AuthError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, io.EOF), errors.As(err, &netErr) && netErr.Timeout():
		return true
	case errors.As(err, &authErr):
		return c.cfg.RetryAuth
	}
	return false
}

// isAuthFailure tells a handshake that failed because the server accepted
// none of the client's keys. golang.org/x/crypto/ssh (v0.59.0) has no type
// or sentinel for that on the client side (ErrNoAuth, ServerAuthError and
// PartialSuccessError are the server's): clientAuthenticate returns
// fmt.Errorf("ssh: unable to authenticate, attempted methods %v, no
// supported methods remain"), which NewClientConn wraps in "ssh: handshake
// failed: %w". So the text is matched here, once, where the library's
// error comes in, and turned into an *AuthError; everything above tests
// the type. (ClientConfig.AuthCallback could see the methods run out
// without the text, but only by repeating the library's choice of the
// next method.) If an upgrade changes the text, TestWrongKeyIsAuthError
// fails.
func isAuthFailure(err error) bool {
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// explain turns a final dial error into advice.
func (c *Client) explain(err error) error {
	var mismatch *HostKeyMismatchError
	var authErr *AuthError
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &mismatch):
		return mismatch
	case errors.As(err, &authErr):
		return authErr
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot resolve %q: %v. Check the host name given to --host", c.cfg.Host, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%s refused the SSH connection: nothing listens on port %d there. Check --host and --port, and that sshd runs on the host", c.cfg.Addr(), c.cfg.Port)
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		port := c.cfg.Port
		if port == 0 {
			port = 22
		}
		return &UnreachableError{Addr: c.cfg.Addr(), Port: port, Timeout: errors.As(err, &netErr) && netErr.Timeout(), Err: err}
	}
	return fmt.Errorf("ssh to %s: %w", c.cfg.Addr(), err)
}

func (c *Client) keepalive(conn *ssh.Client, stop chan struct{}) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() { _, _, err := conn.SendRequest("keepalive@openssh.com", true, nil); res <- err }()
		select {
		case err := <-res:
			if err == nil {
				failures = 0
				continue
			}
		case <-time.After(15 * time.Second):
		}
		if failures++; failures >= 3 {
			c.logf("ssh %s: no answer to 3 keepalives; closing the connection", c.cfg.Addr())
			c.drop(conn)
			return
		}
	}
}

// drop forgets a broken connection so the next call dials again.
func (c *Client) drop(conn *ssh.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == conn {
		_ = c.closeLocked()
	}
}

// session opens a session, reconnecting once if the connection broke.
func (c *Client) session(ctx context.Context) (*ssh.Session, *ssh.Client, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		s, err := conn.NewSession()
		if err == nil {
			return s, conn, nil
		}
		c.drop(conn)
		if attempt > 0 {
			return nil, nil, fmt.Errorf("open SSH session on %s: %w", c.cfg.Addr(), err)
		}
	}
}

// sudoWrapper runs the script from stdin as root: directly when the login
// user is root, through passwordless sudo otherwise, and exits 97 when
// neither works. It is a constant: no value is ever pasted into it.
const sudoWrapper = `if [ "$(id -u)" = 0 ]; then exec bash -s; ` +
	`elif sudo -n true 2>/dev/null; then exec sudo -n -H bash -s; ` +
	`else echo "kafkaup: no passwordless sudo" >&2; exit 97; fi`

// RunScript runs script on the host as root and returns its stdout. A
// non-zero exit is a *ProcessError (or *NoSudoError).
func (c *Client) RunScript(ctx context.Context, name string, script []byte) ([]byte, error) {
	var stdout bytes.Buffer
	err := c.run(ctx, name, sudoWrapper, bytes.NewReader(script), &stdout, nil)
	return stdout.Bytes(), err
}

// StreamScript runs script as root like RunScript, copying its stdout to w
// as it comes (for logs -f); it returns when the script ends or ctx is done.
func (c *Client) StreamScript(ctx context.Context, name string, script []byte, w io.Writer) error {
	return c.run(ctx, name, sudoWrapper, bytes.NewReader(script), w, nil)
}

// Run runs a fixed command as the login user (no stdin).
func (c *Client) Run(ctx context.Context, name, command string) ([]byte, error) {
	var stdout bytes.Buffer
	err := c.run(ctx, name, command, nil, &stdout, nil)
	return stdout.Bytes(), err
}

// Exec runs a command as the login user with the given streams, the way
// `ssh host -- command` does; a non-zero exit is a *ProcessError.
func (c *Client) Exec(ctx context.Context, command string, stdin io.Reader, stdout, stderr io.Writer) error {
	return c.run(ctx, "command", command, stdin, stdout, stderr)
}

func (c *Client) run(ctx context.Context, name, command string, stdin io.Reader, stdout, userStderr io.Writer) error {
	sess, conn, err := c.session(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer sess.Close()
	stderr := &tailWriter{max: 8 << 10, log: c.cfg.Log, prefix: name + ": "}
	sess.Stdout, sess.Stderr = stdout, stderr
	if userStderr != nil {
		sess.Stderr = io.MultiWriter(userStderr, stderr)
	}
	if stdin != nil {
		sess.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(command) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		return fmt.Errorf("%s on %s: %w", name, c.cfg.Host, ctx.Err())
	}
	stderr.flush()
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exitErr) && exitErr.ExitStatus() == exitNoSudo && command == sudoWrapper:
		return &NoSudoError{User: c.cfg.User, Host: c.cfg.Host}
	case errors.As(err, &exitErr):
		return &ProcessError{Name: name, Host: c.cfg.Host, ExitStatus: exitErr.ExitStatus(), StderrTail: stderr.tail()}
	default:
		// The connection broke (or the command died without a status): never
		// report that as success.
		c.drop(conn)
		return fmt.Errorf("%s on %s: connection lost before the command finished: %w", name, c.cfg.Host, err)
	}
}

// Upload writes data to remotePath (relative paths are under the login
// user's home) atomically: a temp file beside it, then a rename.
func (c *Client) Upload(ctx context.Context, data io.Reader, remotePath string, mode uint32) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	sc, err := sftp.NewClient(conn)
	if err != nil {
		return fmt.Errorf("start SFTP on %s (is the sftp subsystem enabled in sshd?): %w", c.cfg.Host, err)
	}
	defer sc.Close()
	if err := sc.MkdirAll(path.Dir(remotePath)); err != nil {
		return fmt.Errorf("upload %s: mkdir: %w", remotePath, err)
	}
	tmp := remotePath + ".kafkaup-upload"
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("upload %s: %w", remotePath, err)
	}
	// The mode is set before any byte is written: uploads include the
	// broker's private key.
	if err := f.Chmod(osMode(mode)); err != nil {
		f.Close()
		return fmt.Errorf("upload %s: chmod: %w", remotePath, err)
	}
	if _, err := f.ReadFrom(data); err != nil {
		f.Close()
		return fmt.Errorf("upload %s: write: %w", remotePath, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload %s: close: %w", remotePath, err)
	}
	if err := sc.PosixRename(tmp, remotePath); err != nil {
		return fmt.Errorf("upload %s: rename: %w", remotePath, err)
	}
	return nil
}

// DialContext opens a TCP connection from the host to addr through the SSH
// connection (a tunnel, like ssh -L): kafkaup reaches listeners that only
// listen on the host's loopback this way.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := c.connect(ctx)
		if err != nil {
			return nil, err
		}
		nc, err := conn.DialContext(ctx, network, addr)
		if err == nil {
			return nc, nil
		}
		var open *ssh.OpenChannelError
		if errors.As(err, &open) || ctx.Err() != nil || attempt > 0 {
			return nil, fmt.Errorf("tunnel to %s on %s: %w", addr, c.cfg.Host, err)
		}
		c.drop(conn) // the connection broke: reconnect once
	}
}

func (c *Client) logf(format string, args ...any) {
	if c.cfg.Log != nil {
		fmt.Fprintf(c.cfg.Log, format+"\n", args...)
	}
}
