package kafkaclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kafkaup/kafkaup/provision/security"
)

// Auth is how a client proves itself to the broker and checks the broker.
// The zero value is PLAINTEXT: no TLS, no SASL.
type Auth struct {
	// Mode says whether the client uses TLS and a SCRAM login; the
	// fields below supply what it needs.
	Mode security.Mode
	// CAPEM is what the broker's certificate must chain to with TLS (kafkaup's
	// CA for the broker); it must name the host dialed (IP or DNS SAN). The
	// system roots are not used.
	CAPEM []byte
	// ServerName overrides the name the broker's certificate is checked
	// against; by default it is the host of each address dialed.
	ServerName string
	// Username and Password are the SASL/SCRAM-SHA-512 login with SCRAM.
	Username, Password string
}

// Mechanism is the only SASL mechanism kafkaup uses.
const Mechanism = security.Mechanism

// Protocol is Kafka's name for what a: "PLAINTEXT", "SSL", "SASL_PLAINTEXT"
// or "SASL_SSL" (a client's security.protocol).
func (a Auth) Protocol() string { return a.Mode.Protocol() }

func (a Auth) tls() bool  { return a.Mode.TLS }
func (a Auth) sasl() bool { return a.Mode.SCRAM }

// String describes a without its secrets, for messages.
func (a Auth) String() string {
	if a.sasl() {
		return fmt.Sprintf("%s (%s, user %q)", a.Protocol(), Mechanism, a.Username)
	}
	return a.Protocol()
}

// GoString keeps the password out of %#v too.
func (a Auth) GoString() string {
	return fmt.Sprintf("kafkaclient.Auth{Protocol: %q, Username: %q}", a.Protocol(), a.Username)
}

// DialFunc opens a connection to addr (host:port, as the broker advertises
// it) like net.Dialer.DialContext. DialVia uses it to reach a broker through
// an SSH tunnel.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// conn is how this package's kgo clients reach one broker.
type conn struct {
	bootstrap string
	auth      Auth
	dial      DialFunc // nil: net.Dialer
}

// opts are the kgo options for c: the package's defaults plus TLS, SASL
// and the dialer.
func (c conn) opts() ([]kgo.Opt, error) {
	opts := clientOpts(c.bootstrap)
	var tlsCfg *tls.Config
	if c.auth.tls() {
		if len(c.auth.CAPEM) == 0 {
			return nil, errors.New("TLS is on but there is no CA certificate to check the broker against")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.auth.CAPEM) {
			return nil, errors.New("the broker's CA certificate is not PEM (want -----BEGIN CERTIFICATE-----)")
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, ServerName: c.auth.ServerName}
	}
	if c.auth.sasl() {
		if c.auth.Username == "" || c.auth.Password == "" {
			return nil, errors.New("SCRAM needs both a username and a password")
		}
		opts = append(opts, kgo.SASL(scram.Auth{User: c.auth.Username, Pass: c.auth.Password}.AsSha512Mechanism()))
	}
	switch {
	case c.dial != nil && tlsCfg != nil:
		dial := c.dial
		opts = append(opts, kgo.Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := tlsCfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tc := tls.Client(raw, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return tc, nil
		}))
	case c.dial != nil:
		opts = append(opts, kgo.Dialer(c.dial))
	case tlsCfg != nil:
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	return opts, nil
}

// probe is the package's probe through c's dialer.
func (c conn) probe(ctx context.Context, addr string) error {
	if c.dial == nil {
		return probe(ctx, addr)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := c.dial(dctx, "tcp", addr)
	if err != nil {
		return &UnreachableError{Addr: addr, Err: err}
	}
	return nc.Close()
}

// DialWith is Dial with authentication: TLS against a.CAPEM and/or
// SASL/SCRAM-SHA-512. Failures that come from the security settings are
// returned as *TLSError or *AuthError.
func DialWith(ctx context.Context, bootstrap string, a Auth) (*Client, error) {
	return dialConn(ctx, conn{bootstrap: bootstrap, auth: a})
}

// DialVia is Dial over connections that dial opens (for instance an SSH
// tunnel to a listener that only listens on the broker host's loopback).
// Every connection the client makes, to the bootstrap address and to the
// addresses the broker advertises, goes through dial. PLAINTEXT, no SASL.
func DialVia(ctx context.Context, bootstrap string, dial DialFunc) (*Client, error) {
	if dial == nil {
		return nil, errors.New("DialVia: no dial function")
	}
	return dialConn(ctx, conn{bootstrap: bootstrap, dial: dial})
}

// SCRAMIterations is the PBKDF2 work factor of the SCRAM credentials
// SetSCRAMUser stores (Kafka accepts 4096 to 16384). The stored count is
// SCRAMIterations, +1 or +2: see SetSCRAMUser.
const SCRAMIterations = 8192

// SetSCRAMUser creates user with password for SASL/SCRAM-SHA-512, or
// replaces the password of an existing user, through the admin API
// (AlterUserScramCredentials; the password is salted here and only the
// salted form is sent). It returns once a login with the new password is
// sure to work.
//
// That takes two writes. A broker answers DescribeUserScramCredentials from
// its metadata cache, which it updates before the credential cache its
// authenticator uses; so seeing a credential described does not mean a
// login works yet. SetSCRAMUser stores the credential twice, each time with
// an iteration count the user does not have yet (which Describe shows), and
// waits for the second to be described: by then the broker has finished
// applying the first, which has the same password.
func (c *Client) SetSCRAMUser(ctx context.Context, user, password string) error {
	if err := checkSCRAMUser(user, password); err != nil {
		return err
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("set the %s credential of user %q on %s: %s", Mechanism, user, c.bootstrap, fmt.Sprintf(format, args...))
	}
	current, err := c.scramIterations(ctx, user)
	if err != nil {
		return fail("%v", err)
	}
	for range 2 {
		next := SCRAMIterations
		for next == current {
			next++
		}
		res, err := c.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{
			User: user, Mechanism: kadm.ScramSha512, Iterations: int32(next), Password: password,
		}})
		if err != nil {
			return fail("%v", err)
		}
		if r, ok := res[user]; !ok {
			return fail("the broker's answer left the user out")
		} else if r.Err != nil {
			return fail("%v%s", r.Err, brokerMessage(&r.ErrMessage))
		}
		deadline := time.Now().Add(settleTimeout)
		for {
			current, err = c.scramIterations(ctx, user)
			if err == nil && current == next {
				break
			}
			if time.Now().After(deadline) {
				return fail("the broker accepted it but does not show it after %v (%v)", settleTimeout, err)
			}
			select {
			case <-ctx.Done():
				return fail("%v", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// HasSCRAMUser says whether the broker has a SCRAM-SHA-512 credential for
// user.
func (c *Client) HasSCRAMUser(ctx context.Context, user string) (bool, error) {
	n, err := c.scramIterations(ctx, user)
	return n > 0, err
}

// scramIterations is the iteration count of user's SCRAM-SHA-512
// credential as the broker describes it, 0 when it has none.
func (c *Client) scramIterations(ctx context.Context, user string) (int, error) {
	d, err := c.adm.DescribeUserSCRAMs(ctx, user)
	if err != nil {
		return 0, err
	}
	u, ok := d[user]
	switch {
	case !ok:
		return 0, nil
	case errors.Is(u.Err, kerr.ResourceNotFound):
		return 0, nil
	case u.Err != nil:
		return 0, fmt.Errorf("describe: %w%s", u.Err, brokerMessage(&u.ErrMessage))
	}
	for _, ci := range u.CredInfos {
		if ci.Mechanism == kadm.ScramSha512 {
			return int(ci.Iterations), nil
		}
	}
	return 0, nil
}

func checkSCRAMUser(user, password string) error {
	switch {
	case user == "":
		return errors.New("the SCRAM username is empty")
	case password == "":
		return fmt.Errorf("the SCRAM password for user %q is empty", user)
	case strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("the SCRAM username %q contains a control character", user)
	}
	return nil
}

// TLSError says the TLS connection to the broker failed: its certificate is
// not trusted or does not name the address, or the port does not speak TLS.
type TLSError struct {
	Addr   string
	Reason string // what went wrong and what to do, in words
	Err    error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("TLS connection to the broker at %s failed: %s (%v)", e.Addr, e.Reason, e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// AuthError says the broker refused the SASL login, or the port does not
// take the SASL settings given.
type AuthError struct {
	Addr   string
	User   string
	Reason string
	Err    error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("the broker at %s refused the %s login of user %q: %s (%v)", e.Addr, Mechanism, e.User, e.Reason, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ProtocolMismatchError says the port wants a security setting the client
// does not use: TLS (a PLAINTEXT client on a SASL_SSL listener) or a SASL
// login.
type ProtocolMismatchError struct {
	Addr   string
	Client string // the client's security.protocol
	Expect string // "TLS", "SASL" or "TLS or SASL": what the port seems to want
	// Closed: the only clue was the connection closed at the first request.
	// A port that wants Expect does that, but so does a tunnel, NAT or port
	// forward with no broker serving behind it (one restarting, or down).
	Closed bool
	Err    error
}

func (e *ProtocolMismatchError) Error() string {
	advice := fmt.Sprintf("connect with security.protocol=SASL_SSL, sasl.mechanism=%s, the broker's CA certificate and the username and password (kafkaup env prints the settings)", Mechanism)
	var msg string
	switch {
	case e.Expect == "TLS" && !e.Closed:
		msg = fmt.Sprintf("the broker at %s speaks TLS on this port but this client connected with %s: %s", e.Addr, e.Client, advice)
	case e.Expect == "TLS":
		msg = fmt.Sprintf("the broker at %s closed the connection at the first request of a %s client: the port probably speaks TLS: %s", e.Addr, e.Client, advice)
	case e.Expect == "SASL":
		msg = fmt.Sprintf("the broker at %s closed the connection at the first request: the port probably requires a SASL login and this client connected with %s: %s", e.Addr, e.Client, advice)
	default:
		msg = fmt.Sprintf("the broker at %s closed the connection at the first request of a %s client: the port probably expects TLS and SASL: %s", e.Addr, e.Client, advice)
	}
	if e.Closed {
		msg += ". If these are the listener's settings, no broker may be serving behind this address right now (one restarting, or a tunnel or port forward to a broker that is down looks the same): kafkaup status and kafkaup logs show which"
	}
	return fmt.Sprintf("%s (%v)", msg, e.Err)
}

func (e *ProtocolMismatchError) Unwrap() error { return e.Err }

// classify turns an error from a first request to the broker into a
// *TLSError, *AuthError or *ProtocolMismatchError when the security
// settings explain it; otherwise it returns nil. guessed says the
// explanation is only a likely one (the connection was closed with no
// other clue).
func classify(addr string, a Auth, err error) (cerr error, guessed bool) {
	if err == nil {
		return nil, false
	}
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		verify   *tls.CertificateVerificationError
		firstEOF *kgo.ErrFirstReadEOF
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return &TLSError{Addr: addr, Err: err, Reason: "its certificate is not signed by the CA given (the kafkaup CA of this broker, ca.pem in the state directory); if the broker was rebuilt with a new CA, use the new ca.pem"}, false
	case errors.As(err, &hostname):
		return &TLSError{Addr: addr, Err: err, Reason: fmt.Sprintf("its certificate does not name %s; if the broker's address changed, run kafkaup reprovision to issue a certificate for the new address", hostname.Host)}, false
	case errors.As(err, &invalid):
		return &TLSError{Addr: addr, Err: err, Reason: "its certificate is not valid now (expired, not yet valid, or not for TLS servers); run kafkaup reprovision to issue a new one, and check this machine's clock"}, false
	case errors.As(err, &verify):
		return &TLSError{Addr: addr, Err: err, Reason: "its certificate could not be verified"}, false
	case errors.As(err, &record):
		return &TLSError{Addr: addr, Err: err, Reason: "the port does not speak TLS (a PLAINTEXT listener?)"}, false
	case a.tls() && closedAtOnce(err):
		return &TLSError{Addr: addr, Err: err, Reason: "the broker closed the connection at the start of the TLS handshake: the port does not speak TLS (a PLAINTEXT listener?)"}, false
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return &AuthError{Addr: addr, User: a.Username, Err: err, Reason: "wrong username or password (or the user does not exist)"}, false
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return &AuthError{Addr: addr, User: a.Username, Err: err, Reason: "the listener does not enable " + Mechanism}, false
	case errors.Is(err, kerr.IllegalSaslState):
		return &AuthError{Addr: addr, User: a.Username, Err: err, Reason: "the port does not expect a SASL login (a PLAINTEXT or SSL listener?)"}, false
	case !a.tls() && strings.Contains(msg, "appear to be a tls alert record"):
		return &ProtocolMismatchError{Addr: addr, Client: a.Protocol(), Expect: "TLS", Err: err}, false
	case !a.tls() && errors.As(err, &firstEOF) && strings.Contains(msg, "requires TLS"):
		return &ProtocolMismatchError{Addr: addr, Client: a.Protocol(), Expect: "TLS", Closed: true, Err: err}, false
	case !a.sasl() && errors.As(err, &firstEOF) && strings.Contains(msg, "SASL is required"):
		return &ProtocolMismatchError{Addr: addr, Client: a.Protocol(), Expect: "SASL", Closed: true, Err: err}, false
	case !a.tls() && !a.sasl() && closedAtOnce(err):
		return &ProtocolMismatchError{Addr: addr, Client: a.Protocol(), Expect: "TLS or SASL", Closed: true, Err: err}, true
	}
	return nil, false
}

// closedAtOnce says the connection was closed before any answer, with no
// other clue (a TLS alert record is one).
func closedAtOnce(err error) bool {
	var firstEOF *kgo.ErrFirstReadEOF
	return errors.As(err, &firstEOF) || isEOF(err)
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
