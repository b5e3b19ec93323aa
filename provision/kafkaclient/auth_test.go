package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaup/kafkaup/provision/security"
)

func TestAuthProtocol(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\n")
	for _, tc := range []struct {
		a    Auth
		want string
	}{
		{Auth{}, "PLAINTEXT"},
		{Auth{Mode: security.Mode{TLS: true}, CAPEM: ca}, "SSL"},
		{Auth{Mode: security.Mode{SCRAM: true}, Username: "u", Password: "p"}, "SASL_PLAINTEXT"},
		{Auth{Mode: security.Mode{TLS: true, SCRAM: true}, CAPEM: ca, Username: "u", Password: "p"}, "SASL_SSL"},
	} {
		if got := tc.a.Protocol(); got != tc.want {
			t.Errorf("%+v: Protocol = %s, want %s", tc.a, got, tc.want)
		}
	}
	a := Auth{Mode: security.Mode{TLS: true, SCRAM: true}, CAPEM: ca, Username: "alice", Password: "hunter2-secret"}
	for _, s := range []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a), fmt.Sprintf("%v", &a)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("formatted Auth shows the password: %s", s)
		}
	}
}

func TestAuthRefusedBeforeDialing(t *testing.T) {
	for _, tc := range []struct {
		a    Auth
		want string
	}{
		{Auth{Mode: security.Mode{TLS: true}, CAPEM: []byte("not a certificate")}, "CA certificate is not PEM"},
		{Auth{Mode: security.Mode{SCRAM: true}, Username: "u"}, "needs both a username and a password"},
		{Auth{Mode: security.Mode{SCRAM: true}, Password: "p"}, "needs both a username and a password"},
	} {
		// Port 9 (discard) on loopback: nothing listens, and nothing
		// must be dialed anyway.
		_, err := DialWith(context.Background(), "127.0.0.1:9", tc.a)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DialWith(%v) = %v, want %q", tc.a, err, tc.want)
		}
		var ue *UnreachableError
		if errors.As(err, &ue) {
			t.Errorf("DialWith(%v) dialed before checking its settings", tc.a)
		}
	}
	if _, err := DialVia(context.Background(), "127.0.0.1:9", nil); err == nil {
		t.Error("DialVia without a dialer: no error")
	}
}

func TestCheckSCRAMUser(t *testing.T) {
	for _, tc := range [][2]string{{"", "p"}, {"u", ""}, {"a\nb", "p"}} {
		if err := checkSCRAMUser(tc[0], tc[1]); err == nil {
			t.Errorf("checkSCRAMUser(%q, %q): no error", tc[0], tc[1])
		}
	}
	if err := checkSCRAMUser("kafkaup", "p"); err != nil {
		t.Error(err)
	}
}

func TestClassify(t *testing.T) {
	sasl := Auth{Mode: security.Mode{TLS: true, SCRAM: true}, CAPEM: []byte("x"), Username: "u", Password: "p"}
	for _, tc := range []struct {
		a       Auth
		err     error
		want    any
		guessed bool
	}{
		{sasl, kerr.SaslAuthenticationFailed, &AuthError{}, false},
		{sasl, fmt.Errorf("wrapped: %w", kerr.UnsupportedSaslMechanism), &AuthError{}, false},
		{Auth{}, errors.New("invalid large response size 352518912 > limit 104857600; the first three bytes received appear to be a tls alert record for TLS v1.2; is this..."), &ProtocolMismatchError{}, false},
		{Auth{}, io.EOF, &ProtocolMismatchError{}, true},
		{sasl, io.EOF, &TLSError{}, false},
		{Auth{}, errors.New("something else"), nil, false},
		{sasl, kerr.UnknownTopicOrPartition, nil, false},
	} {
		got, guessed := classify("h:1", tc.a, tc.err)
		if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tc.want) && !(got == nil && tc.want == nil) || guessed != tc.guessed {
			t.Errorf("classify(%v, %v) = %T %v (guessed %v), want %T (guessed %v)", tc.a.Protocol(), tc.err, got, got, guessed, tc.want, tc.guessed)
		}
		if got != nil && !errors.Is(got, tc.err) {
			t.Errorf("classify(%v) does not wrap the original error", tc.err)
		}
	}
}

// TestClosedIsOnlyAGuess: a connection closed at the first request is what
// a TLS port does to a PLAINTEXT client, but also what a tunnel or port
// forward with no broker behind it does; the message says both. A TLS
// alert record is proof, and is said as such.
func TestClosedIsOnlyAGuess(t *testing.T) {
	closed := fmt.Errorf("broker closed the connection immediately during api versions negotiation, which often happens when the broker requires TLS but the client is using plaintext: %w", &kgo.ErrFirstReadEOF{})
	got, _ := classify("h:1", Auth{}, closed)
	for _, want := range []string{"closed the connection at the first request of a PLAINTEXT client: the port probably speaks TLS", "no broker may be serving behind this address right now"} {
		if got == nil || !strings.Contains(got.Error(), want) {
			t.Errorf("closed at once: %v; want %q", got, want)
		}
	}
	alert, _ := classify("h:1", Auth{}, errors.New("the first three bytes received appear to be a tls alert record for TLS v1.2"))
	if alert == nil || !strings.Contains(alert.Error(), "speaks TLS on this port") || strings.Contains(alert.Error(), "no broker may be serving") {
		t.Errorf("TLS alert: %v", alert)
	}
}
