package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("demo", t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestNewCA(t *testing.T) {
	ca := newCA(t)
	c := ca.Certificate()
	if got, want := c.Subject.CommonName, "kafkaup CA demo"; got != want {
		t.Errorf("CN = %q, want %q", got, want)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("not a path-length-0 CA: IsCA=%v MaxPathLen=%d", c.IsCA, c.MaxPathLen)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA cannot sign certificates")
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve.Params().Name != "P-256" {
		t.Errorf("CA key is %T, want ECDSA P-256", c.PublicKey)
	}
	if got := c.NotAfter.Sub(t0); got != CAValidity {
		t.Errorf("CA valid for %v after now, want %v", got, CAValidity)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA not self-signed: %v", err)
	}
	if _, err := NewCA(" ", t0); err == nil {
		t.Error("NewCA with an empty name: no error")
	}
}

func TestLoadCA(t *testing.T) {
	ca := newCA(t)
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("KeyPEM is not a PKCS#8 PEM block:\n%s", keyPEM)
	}
	loaded, err := LoadCA(ca.CertPEM(), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate().Equal(ca.Certificate()) || !bytes.Equal(loaded.CertPEM(), ca.CertPEM()) {
		t.Error("loaded CA certificate differs")
	}
	// A certificate issued by the loaded CA chains to the original.
	certPEM, _, err := loaded.IssueServer([]string{"10.0.0.1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.coversAt(certPEM, []string{"10.0.0.1"}, t0) {
		t.Error("certificate from the loaded CA is not covered by the original")
	}

	other := newCA(t)
	otherKey, _ := other.KeyPEM()
	leaf, leafKey, _ := ca.IssueServer([]string{"h"}, t0)
	for name, tc := range map[string][2][]byte{
		"key of another CA": {ca.CertPEM(), otherKey},
		"no key":            {ca.CertPEM(), nil},
		"no cert":           {nil, keyPEM},
		"leaf as CA":        {leaf, leafKey},
		"two certs":         {append(ca.CertPEM(), other.CertPEM()...), keyPEM},
		"garbage":           {[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), keyPEM},
	} {
		if _, err := LoadCA(tc[0], tc[1]); err == nil {
			t.Errorf("LoadCA(%s): no error", name)
		} else {
			t.Logf("LoadCA(%s): %v", name, err)
		}
	}
}

func TestIssueServer(t *testing.T) {
	ca := newCA(t)
	hosts := []string{"203.0.113.7", "Broker.Example.com.", "2001:db8::1", "203.0.113.7", "localhost"}
	certPEM, keyPEM, err := ca.IssueServer(hosts, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key is not PKCS#8 PEM:\n%s", keyPEM)
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
		t.Fatal(err)
	}
	leaf := mustCert(t, certPEM)
	if leaf.Subject.CommonName != "203.0.113.7" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if got := strings.Join(leaf.DNSNames, ","); got != "broker.example.com,localhost" {
		t.Errorf("DNS SANs = %s", got)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got := strings.Join(ips, ","); got != "203.0.113.7,2001:db8::1" {
		t.Errorf("IP SANs = %s", got)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	if got := leaf.NotAfter.Sub(t0); got != ServerValidity {
		t.Errorf("leaf valid for %v after now, want %v", got, ServerValidity)
	}
	if !leaf.NotBefore.Before(t0) {
		t.Error("leaf not back-dated for clock skew")
	}
	eku := map[x509.ExtKeyUsage]bool{}
	for _, u := range leaf.ExtKeyUsage {
		eku[u] = true
	}
	if !eku[x509.ExtKeyUsageServerAuth] || !eku[x509.ExtKeyUsageClientAuth] {
		t.Errorf("ExtKeyUsage = %v, want server and client auth", leaf.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, h := range []string{"203.0.113.7", "broker.example.com", "2001:db8::1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h, CurrentTime: t0}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example.com", CurrentTime: t0}); err == nil {
		t.Error("leaf verifies for a host it does not name")
	}

	for _, bad := range [][]string{nil, {""}, {"a b"}, {"host:9092"}, {"-x.example.com"}, {"a..b"}} {
		if _, _, err := ca.IssueServer(bad, t0); err == nil {
			t.Errorf("IssueServer(%q): no error", bad)
		}
	}
}

func TestIssueServerNotPastCA(t *testing.T) {
	ca := newCA(t)
	late := t0.Add(CAValidity - 24*time.Hour)
	certPEM, _, err := ca.IssueServer([]string{"h.example"}, late)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := mustCert(t, certPEM); leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf outlives its CA: %v > %v", leaf.NotAfter, ca.Certificate().NotAfter)
	}
	if _, _, err := ca.IssueServer([]string{"h.example"}, t0.Add(CAValidity+time.Hour)); err == nil {
		t.Error("an expired CA issued a certificate")
	}
}

func TestCovers(t *testing.T) {
	ca := newCA(t)
	certPEM, _, err := ca.IssueServer([]string{"203.0.113.7", "broker.example.com"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t)
	otherCert, _, _ := other.IssueServer([]string{"203.0.113.7"}, t0)
	for _, tc := range []struct {
		name  string
		cert  []byte
		hosts []string
		at    time.Time
		want  bool
	}{
		{"same hosts", certPEM, []string{"203.0.113.7", "broker.example.com"}, t0, true},
		{"subset", certPEM, []string{"203.0.113.7"}, t0, true},
		{"name case and dot", certPEM, []string{"BROKER.example.com."}, t0, true},
		{"new address", certPEM, []string{"198.51.100.9"}, t0, false},
		{"old plus new address", certPEM, []string{"203.0.113.7", "198.51.100.9"}, t0, false},
		{"no hosts", certPEM, nil, t0, false},
		{"another CA", otherCert, []string{"203.0.113.7"}, t0, false},
		{"near expiry", certPEM, []string{"203.0.113.7"}, t0.Add(ServerValidity - RenewBefore + time.Hour), false},
		{"a year on", certPEM, []string{"203.0.113.7"}, t0.Add(365 * 24 * time.Hour), true},
		{"garbage", []byte("nope"), []string{"203.0.113.7"}, t0, false},
		{"the CA itself", ca.CertPEM(), []string{"203.0.113.7"}, t0, false},
	} {
		if got := ca.coversAt(tc.cert, tc.hosts, tc.at); got != tc.want {
			t.Errorf("%s: Covers = %v, want %v", tc.name, got, tc.want)
		}
	}
	// The exported form uses the clock.
	fresh, _, _ := ca.IssueServer([]string{"127.0.0.1"}, time.Now())
	if !ca.Covers(fresh, []string{"127.0.0.1"}) || ca.Covers(fresh, []string{"127.0.0.2"}) {
		t.Error("Covers with the real clock")
	}
}

func TestKeystorePEM(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.IssueServer([]string{"127.0.0.1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, password := range []string{"", "s3cret-Pass_word"} {
		ks, err := KeystorePEM(certPEM, keyPEM, ca.CertPEM(), password)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		var blocks []*pem.Block
		for rest := ks; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			types = append(types, b.Type)
			blocks = append(blocks, b)
		}
		wantKey := "PRIVATE KEY"
		if password != "" {
			wantKey = "ENCRYPTED PRIVATE KEY"
		}
		if got, want := strings.Join(types, "|"), wantKey+"|CERTIFICATE|CERTIFICATE"; got != want {
			t.Fatalf("password %q: blocks %s, want %s", password, got, want)
		}
		der := blocks[0].Bytes
		if password != "" {
			if der, err = DecryptPKCS8(der, password); err != nil {
				t.Fatal(err)
			}
			if _, err := DecryptPKCS8(blocks[0].Bytes, "wrong"); err == nil {
				t.Error("decrypt with a wrong password: no error")
			}
		}
		// The key and first certificate form a working TLS pair.
		pair, err := tls.X509KeyPair(pem.EncodeToMemory(blocks[1]), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if err != nil {
			t.Fatalf("password %q: %v", password, err)
		}
		_ = pair
		if !mustCert(t, pem.EncodeToMemory(blocks[2])).Equal(ca.Certificate()) {
			t.Error("second certificate is not the CA")
		}
	}
	// The CA is not repeated when the chain file already holds it.
	ks, err := KeystorePEM(append(bytes.Clone(certPEM), ca.CertPEM()...), keyPEM, ca.CertPEM(), "")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(ks), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("%d certificates, want 2", n)
	}
	_, otherKey, _ := ca.IssueServer([]string{"127.0.0.1"}, t0)
	if _, err := KeystorePEM(certPEM, otherKey, ca.CertPEM(), ""); err == nil {
		t.Error("mismatched key: no error")
	}
	if _, err := KeystorePEM(certPEM, keyPEM, ca.CertPEM(), "pässword"); err == nil {
		t.Error("non-ASCII password: no error")
	}
}

// TestEncryptedKeyOpenSSL checks the encrypted key against an independent
// implementation, when openssl is installed.
func TestEncryptedKeyOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl")
	}
	ca := newCA(t)
	_, keyPEM, err := ca.IssueServer([]string{"127.0.0.1"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(keyPEM)
	enc, err := EncryptPKCS8(b.Bytes, "Pa55-word")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "enc.pem")
	os.WriteFile(in, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: enc}), 0o600)
	cmd := exec.Command(openssl, "pkcs8", "-in", in, "-passin", "stdin", "-outform", "DER")
	cmd.Stdin = strings.NewReader("Pa55-word\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl could not decrypt: %v", err)
	}
	if !sameKey(t, out, b.Bytes) {
		t.Error("openssl decrypted a different key")
	}
	// And the other way: a key openssl encrypted with the same scheme.
	plain := filepath.Join(dir, "plain.pem")
	os.WriteFile(plain, keyPEM, 0o600)
	cmd = exec.Command(openssl, "pkcs8", "-topk8", "-in", plain, "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256", "-passout", "stdin")
	cmd.Stdin = strings.NewReader("Pa55-word\n")
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("openssl could not encrypt: %v", err)
	}
	ob, _ := pem.Decode(out)
	if ob == nil {
		t.Fatalf("openssl output:\n%s", out)
	}
	der, err := DecryptPKCS8(ob.Bytes, "Pa55-word")
	if err != nil || !sameKey(t, der, b.Bytes) {
		t.Errorf("decrypt openssl's key: %v", err)
	}
}

func mustCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatalf("no PEM in %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameKey compares two DER keys (PKCS#8 or SEC 1): encoders differ in
// optional fields.
func sameKey(t *testing.T, a, b []byte) bool {
	t.Helper()
	parse := func(der []byte) *ecdsa.PrivateKey {
		if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
			if ec, ok := k.(*ecdsa.PrivateKey); ok {
				return ec
			}
		}
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			t.Fatalf("parse key: %v", err)
		}
		return k
	}
	return parse(a).Equal(parse(b))
}

// TestUnpadKeyRefusesGarbage: a wrong password whose plaintext happens to
// end in valid padding (about once in 256) is still refused.
func TestUnpadKeyRefusesGarbage(t *testing.T) {
	garbage := bytes.Repeat([]byte{0x5a}, 47)
	if _, err := unpadKey(append(garbage, 1)); err == nil {
		t.Error("garbage with valid padding was taken for a key")
	}
}
