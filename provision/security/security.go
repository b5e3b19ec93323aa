// Package security holds the one type that says how clients reach a
// broker: with or without TLS, with or without a SCRAM login. It travels
// unchanged from the flags to the saved record, the Spec, the rendered
// server.properties and kafkaup's own Kafka client; nothing downstream
// infers it from whether a CA or a password happens to be on disk.
package security

import (
	"fmt"
	"strings"
)

// Mechanism is the only SASL mechanism kafkaup uses.
const Mechanism = "SCRAM-SHA-512"

// Auth names, as --auth and the record spell them.
const (
	AuthNone  = "none"
	AuthSCRAM = "scram"
)

// Mode is how clients reach the broker. The zero value is PLAINTEXT: no
// TLS, no login (for brokers reachable only from given addresses).
type Mode struct {
	TLS   bool `json:"tls,omitempty"`   // clients connect with TLS, checked against kafkaup's CA
	SCRAM bool `json:"scram,omitempty"` // clients log in with SASL/SCRAM-SHA-512
}

// New reads --tls and --auth.
func New(tls bool, auth string) (Mode, error) {
	scram, err := ParseAuth(auth)
	return Mode{TLS: tls, SCRAM: scram}, err
}

// ParseAuth reads an --auth value: none (or empty) or scram.
func ParseAuth(auth string) (scram bool, err error) {
	switch strings.ToLower(strings.TrimSpace(auth)) {
	case AuthNone, "":
		return false, nil
	case AuthSCRAM:
		return true, nil
	}
	return false, fmt.Errorf("--auth %q: use none or scram (SASL/SCRAM-SHA-512)", auth)
}

// Auth is the --auth value for m.
func (m Mode) Auth() string {
	if m.SCRAM {
		return AuthSCRAM
	}
	return AuthNone
}

// Secured says whether clients use TLS or a login (and so the broker has
// its loopback INTERNAL listener).
func (m Mode) Secured() bool { return m.TLS || m.SCRAM }

// Protocol is Kafka's security.protocol for the client listener:
// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
func (m Mode) Protocol() string {
	switch {
	case m.TLS && m.SCRAM:
		return "SASL_SSL"
	case m.TLS:
		return "SSL"
	case m.SCRAM:
		return "SASL_PLAINTEXT"
	}
	return "PLAINTEXT"
}

// String describes m for people: the protocol and, with a login, its
// mechanism.
func (m Mode) String() string {
	if m.SCRAM {
		return m.Protocol() + " (" + Mechanism + ")"
	}
	return m.Protocol()
}
