package secrets

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/security"
)

func TestEnsureMakesOnceAndKeeps(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	first, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true, SCRAM: true}, Hosts: []string{"203.0.113.7"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !first.NewPassword || !first.Reissued || first.Username != DefaultUsername || len(first.Password) < 40 {
		t.Fatalf("first Ensure: new password %v, reissued %v, user %q, password length %d", first.NewPassword, first.Reissued, first.Username, len(first.Password))
	}
	second, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true, SCRAM: true}, Hosts: []string{"203.0.113.7"}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if second.NewPassword || second.Reissued || second.Password != first.Password || string(second.KeystorePEM) != string(first.KeystorePEM) {
		t.Fatal("a second Ensure changed the password or the certificate")
	}

	// Every file is 0600 in a 0700 directory.
	info, err := os.Stat(first.Dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("secrets dir: %v %v", info.Mode(), err)
	}
	entries, _ := os.ReadDir(first.Dir)
	for _, e := range entries {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if len(entries) != 4 {
		t.Errorf("files: %v", entries)
	}
}

func TestEnsureReissuesForANewAddressWithTheSameCA(t *testing.T) {
	dir := t.TempDir()
	a, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true}, Hosts: []string{"127.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true}, Hosts: []string{"ec2-3-4-5-6.compute-1.amazonaws.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Reissued || string(a.CAPEM) != string(b.CAPEM) {
		t.Fatalf("reissued %v, same CA %v", b.Reissued, string(a.CAPEM) == string(b.CAPEM))
	}
	leaf := firstCert(t, b.KeystorePEM)
	if err := leaf.VerifyHostname("ec2-3-4-5-6.compute-1.amazonaws.com"); err != nil {
		t.Error(err)
	}
	if b.Username != "" || b.Password != "" {
		t.Error("TLS only made a login")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	dir := t.TempDir()
	set, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true, SCRAM: true}, Hosts: []string{"h.example"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.KeystorePEM) == 0 || set.Password == "" {
		t.Fatal("dry run made nothing in memory")
	}
	if _, err := os.Stat(Dir(dir, "dev")); !os.IsNotExist(err) {
		t.Fatalf("dry run wrote %s (%v)", Dir(dir, "dev"), err)
	}
}

func TestClientFilesHoldTheSettingsAndStayPrivate(t *testing.T) {
	dir := t.TempDir()
	set, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true, SCRAM: true}, Hosts: []string{"127.0.0.2"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := set.WriteClientFiles("127.0.0.2:9092")
	if err != nil {
		t.Fatal(err)
	}
	if cf.Protocol != "SASL_SSL" || cf.Username != DefaultUsername || cf.CAFile != filepath.Join(set.Dir, "ca.pem") {
		t.Fatalf("%+v", cf)
	}
	rd, _ := os.ReadFile(cf.Librdkafka)
	for _, want := range []string{"bootstrap.servers=127.0.0.2:9092", "security.protocol=SASL_SSL", "sasl.mechanisms=SCRAM-SHA-512",
		"sasl.username=kafkaup", "sasl.password=" + set.Password, "ssl.ca.location=" + cf.CAFile} {
		if !strings.Contains(string(rd), want+"\n") {
			t.Errorf("librdkafka.conf lacks %q:\n%s", want, rd)
		}
	}
	java, _ := os.ReadFile(cf.Java)
	if !strings.Contains(string(java), `ScramLoginModule required username="kafkaup" password="`+set.Password+`";`) ||
		!strings.Contains(string(java), "ssl.truststore.type=PEM") {
		t.Errorf("client.properties:\n%s", java)
	}
	for _, p := range []string{cf.Librdkafka, cf.Java} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v", p, fi.Mode().Perm())
		}
	}

	loaded, err := Load(dir, "dev", security.Mode{TLS: true, SCRAM: true})
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Auth().Protocol() != "SASL_SSL" || loaded.Password != set.Password {
		t.Errorf("Load: %v", loaded.Auth())
	}
	if plain, _ := (&Set{Dir: t.TempDir()}).WriteClientFiles("h:9092"); plain != nil {
		t.Error("a PLAINTEXT broker got client files")
	}
}

func TestBrokenStateIsReportedNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if _, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true}, Hosts: []string{"127.0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(Dir(dir, "dev"), "ca-key.pem")
	if err := os.Remove(caKey); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(dir, "dev", Want{Mode: security.Mode{TLS: true}, Hosts: []string{"127.0.0.2"}})
	if err == nil || !strings.Contains(err.Error(), "only one of") {
		t.Fatalf("a CA without its key: %v", err)
	}
	if err := ValidateUsername("bad name"); err == nil {
		t.Error("a user name with a space was accepted")
	}
}

func firstCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			t.Fatal("no certificate")
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}
