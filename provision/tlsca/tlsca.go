// Package tlsca is a small local certificate authority for one kafkaup
// broker: a self-signed CA (kept in the state directory) that issues the
// broker's server certificate, and the PEM files Kafka loads
// (ssl.keystore.type=PEM).
//
// Keys are ECDSA P-256. The CA is valid for 10 years, a broker certificate
// for 2 years (never past the CA).
package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

const (
	// CAValidity is how long a new CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// ServerValidity is how long a broker certificate is valid.
	ServerValidity = 2 * 365 * 24 * time.Hour
	// RenewBefore is how close to expiry a certificate may get before
	// Covers reports that it should be re-issued.
	RenewBefore = 30 * 24 * time.Hour
	// backdate covers clock skew between this machine and the broker.
	backdate = time.Hour
)

// CA is a certificate authority: its certificate and private key.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a CA named "kafkaup CA <name>", valid from now for 10 years.
func NewCA(name string, now time.Time) (*CA, error) {
	if strings.TrimSpace(name) == "" {
		return nil, errors.New("tlsca: the CA needs a name (the broker's name)")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsca: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kafkaup CA " + name, Organization: []string{"kafkaup"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsca: parse new CA certificate: %w", err)
	}
	return &CA{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// LoadCA reads a CA saved with CertPEM and KeyPEM. It checks that the key
// belongs to the certificate and that the certificate is a CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsca: CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("tlsca: CA certificate: want 1 certificate, found %d", len(certs))
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("tlsca: the certificate %q is not a CA certificate", cert.Subject.CommonName)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsca: CA key: %w", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("tlsca: the CA key does not belong to the CA certificate %q", cert.Subject.CommonName)
	}
	return &CA{cert: cert, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: key}, nil
}

// CertPEM is the CA certificate, PEM-encoded: what clients trust
// (ssl.ca.location, ssl.truststore.type=PEM).
func (ca *CA) CertPEM() []byte { return bytes.Clone(ca.certPEM) }

// KeyPEM is the CA's private key, unencrypted PKCS#8 PEM ("PRIVATE KEY").
// Keep it with mode 0600.
func (ca *CA) KeyPEM() ([]byte, error) { return marshalKey(ca.key) }

// Certificate is the parsed CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// IssueServer issues a broker certificate for hosts (IP addresses become IP
// SANs, names DNS SANs; the first host is also the subject's CN), valid from
// now for 2 years (or until the CA expires, if sooner), for TLS server and
// client use. The key is a fresh P-256 key, unencrypted PKCS#8 PEM.
func (ca *CA) IssueServer(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("tlsca: a broker certificate needs at least one host name or IP address")
	}
	tmpl := &x509.Certificate{
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(ServerValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, nil, fmt.Errorf("tlsca: the CA %q expired on %s; make a new CA", ca.cert.Subject.CommonName, ca.cert.NotAfter.UTC().Format(time.DateOnly))
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		h, ip, err := normalizeHost(h)
		if err != nil {
			return nil, nil, err
		}
		if seen[h] {
			continue
		}
		seen[h] = true
		if ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
		if tmpl.Subject.CommonName == "" {
			tmpl.Subject = pkix.Name{CommonName: h, Organization: []string{"kafkaup"}}
		}
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsca: generate broker key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsca: create broker certificate: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// Covers says whether certPEM is a broker certificate this CA issued that is
// good for every one of hosts and does not expire within RenewBefore. When
// it is false, issue a new one (the broker's address changed, the CA was
// replaced, or the certificate is old).
func (ca *CA) Covers(certPEM []byte, hosts []string) bool {
	return ca.coversAt(certPEM, hosts, time.Now())
}

func (ca *CA) coversAt(certPEM []byte, hosts []string, now time.Time) bool {
	certs, err := parseCerts(certPEM)
	if err != nil || len(certs) == 0 || len(hosts) == 0 {
		return false
	}
	leaf := certs[0]
	if now.Before(leaf.NotBefore) || now.Add(RenewBefore).After(leaf.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return false
	}
	for _, h := range hosts {
		h, _, err := normalizeHost(h)
		if err != nil || leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// KeystorePEM is the file Kafka loads as ssl.keystore.location with
// ssl.keystore.type=PEM: the private key, then the certificate chain (the
// broker certificate, then the CA). With a password the key is written as
// an encrypted PKCS#8 "ENCRYPTED PRIVATE KEY" (PBES2: PBKDF2-HMAC-SHA256 and
// AES-256-CBC) and the broker needs ssl.key.password set to the same
// password; with "" the key stays unencrypted and ssl.key.password must be
// left unset. Java only accepts printable ASCII in the password.
func KeystorePEM(certPEM, keyPEM, caPEM []byte, password string) ([]byte, error) {
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsca: keystore: %w", err)
	}
	leafs, err := parseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsca: keystore: broker certificate: %w", err)
	}
	if len(leafs) == 0 {
		return nil, errors.New("tlsca: keystore: no broker certificate")
	}
	pub, ok := leafs[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("tlsca: keystore: the key does not belong to the broker certificate")
	}
	cas, err := parseCerts(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsca: keystore: CA certificate: %w", err)
	}
	var out bytes.Buffer
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: keystore: %w", err)
	}
	if password == "" {
		pem.Encode(&out, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	} else {
		enc, err := EncryptPKCS8(der, password)
		if err != nil {
			return nil, fmt.Errorf("tlsca: keystore: %w", err)
		}
		pem.Encode(&out, &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc})
	}
	var written []*x509.Certificate
	for _, c := range append(leafs, cas...) {
		if slices.ContainsFunc(written, c.Equal) {
			continue // e.g. the CA file also held the broker certificate
		}
		written = append(written, c)
		pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return out.Bytes(), nil
}

// normalizeHost checks one SAN: an IP address (returned in ip) or a DNS
// name (lower-cased, trailing dot removed).
func normalizeHost(h string) (string, net.IP, error) {
	h = strings.TrimSpace(h)
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		return ip.String(), ip, nil
	}
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if err := checkDNSName(name); err != nil {
		return "", nil, fmt.Errorf("tlsca: %q is neither an IP address nor a host name: %s", h, err)
	}
	return name, nil, nil
}

func checkDNSName(name string) error {
	if name == "" {
		return errors.New("it is empty")
	}
	if len(name) > 253 {
		return errors.New("it is longer than 253 characters")
	}
	for i, label := range strings.Split(name, ".") {
		if label == "" {
			return errors.New("it has an empty label")
		}
		if len(label) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", label)
		}
		if label == "*" && i == 0 {
			continue
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("it contains %q", r)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", label)
		}
	}
	return nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tlsca: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("tlsca: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads an unencrypted P-256 key: PKCS#8 "PRIVATE KEY" or SEC 1
// "EC PRIVATE KEY".
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key found")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted; give the unencrypted key")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the private key is a %T, not an ECDSA key", k)
		}
		return ec, nil
	}
}

// parseCerts reads every CERTIFICATE block in data, in order.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}
