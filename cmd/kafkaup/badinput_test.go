package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestBadInput feeds every command kinds of bad input a user can type and
// checks each is refused with a clear message and the usage exit status,
// before anything is contacted: SSH targets are a closed port on loopback
// (a refusal there would mean the input slipped through), and AWS is an
// endpoint that does not answer.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("KAFKAUP_HOME", filepath.Join(dir, "home"))
	t.Setenv("HOME", dir)
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	key := filepath.Join(dir, "id_ed25519")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	os.WriteFile(key, pem.EncodeToMemory(block), 0o600)
	signer, _ := ssh.NewSignerFromKey(priv)
	os.WriteFile(key+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	encrypted := filepath.Join(dir, "id_encrypted")
	block, _ = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	os.WriteFile(encrypted, pem.EncodeToMemory(block), 0o600)
	unreadable := filepath.Join(dir, "id_unreadable")
	os.WriteFile(unreadable, []byte("x"), 0o000)
	junkKey := filepath.Join(dir, "junk")
	os.WriteFile(junkKey, []byte("not a key"), 0o600)
	wrongTarball := filepath.Join(dir, "kafka.tgz")
	os.WriteFile(wrongTarball, []byte("x"), 0o600)
	ecdsaPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecdsaPub, _ := ssh.NewPublicKey(&ecdsaPriv.PublicKey)
	ecdsaKey := filepath.Join(dir, "id_ecdsa.pub")
	os.WriteFile(ecdsaKey, ssh.MarshalAuthorizedKey(ecdsaPub), 0o644)
	os.WriteFile(encrypted+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	goodName := filepath.Join(dir, "kafka_2.13-4.0.0.tgz")
	os.WriteFile(goodName, []byte("not really kafka"), 0o600)

	p := func(extra ...string) []string {
		return append([]string{"provision", "--host", "127.0.0.1", "--port", closedPort, "--identity", key}, extra...)
	}
	c := func(extra ...string) []string {
		return append([]string{"create", "demo", "--yes", "--ssh-key", key + ".pub", "--allow-cidr", "127.0.0.1/32"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string // in stderr
		code int    // 2 unless set
	}{
		{"missing --host", []string{"provision"}, "host", 0},
		{"empty host", []string{"provision", "--host", ""}, "host", 0},
		{"bad host name", p("--host", "bad host!"), "--host", 0},
		{"port out of range", p("--port", "70000"), "--port", 0},
		{"user in two places", p("--host", "root@127.0.0.1", "--user", "ubuntu"), "--user", 0},
		{"heap not a size", p("--heap", "lots"), "--heap", 0},
		{"heap too small", p("--heap", "16m"), "--heap", 0},
		{"swap not a size", p("--swap", "two gigs"), "--swap", 0},
		{"swap too small", p("--swap", "1M"), "--swap", 0},
		{"advertised 0.0.0.0", p("--advertised-host", "0.0.0.0"), "cannot be advertised", 0},
		{"advertised junk", p("--advertised-host", "a b"), "--advertised-host", 0},
		{"kafka version junk", p("--kafka-version", "latest"), "release number", 0},
		{"kafka 3", p("--kafka-version", "3.9.0"), "Kafka 4.x", 0},
		{"url not http", p("--kafka-url", "ftp://mirror/kafka_2.13-4.0.0.tgz"), "http", 0},
		{"url not a tgz", p("--kafka-url", "https://mirror/kafka.zip"), ".tgz", 0},
		{"sha512 not hex", p("--kafka-sha512", "xyz"), "128 hex digits", 0},
		{"url and tarball", p("--kafka-url", "https://m/kafka_2.13-4.0.0.tgz", "--kafka-tarball", goodName), "choose one", 0},
		{"tarball missing", p("--kafka-tarball", filepath.Join(dir, "kafka_2.13-4.0.0.tgz.missing")), "--kafka-tarball", 0},
		{"tarball wrong name", p("--kafka-tarball", wrongTarball), "kafka_2.13-4.0.0.tgz", 0},
		{"tarball checksum", p("--kafka-tarball", goodName, "--kafka-sha512", strings.Repeat("a", 128)), "checksum mismatch", 1},
		{"data dir in /tmp", p("--data-dir", "/tmp/kafka"), "/tmp", 0},
		{"data dir relative", p("--data-dir", "data"), "absolute path", 0},
		{"data dir with shell", p("--data-dir", "/var/$(reboot)"), "absolute path", 0},
		{"identity missing", p("--identity", filepath.Join(dir, "nope")), "--identity", 0},
		{"identity unreadable", p("--identity", unreadable), "--identity", 0},
		{"identity not a key", p("--identity", junkKey), "not a private key", 0},
		{"encrypted key without agent", p("--identity", encrypted), "ssh-add", 0},
		{"known_hosts missing", p("--known-hosts", filepath.Join(dir, "nope")), "--known-hosts", 0},
		{"bad broker name", p("--name", "Bad_Name"), "--name", 0},
		{"unknown broker", []string{"status", "nosuch"}, "no record of a broker named", 1},
		{"node replace without a name", []string{"node", "replace", "--node", "3"}, "name the cluster", 0},
		{"node replace without --node", []string{"node", "replace", "nosuch"}, "--node N", 0},
		{"node replace of an unknown cluster", []string{"node", "replace", "nosuch", "--node", "3", "--host", "127.0.0.1"}, "no record of a broker named", 1},
		{"broker name missing", []string{"logs"}, "name the broker", 0},
		{"negative lines", []string{"logs", "x", "--lines", "-1"}, "--lines", 0},
		{"invalid topic name", []string{"topics", "create", "dev", "bad/topic"}, "bad/topic", 0},
		{"topic name too long", []string{"topics", "create", "dev", strings.Repeat("t", 250)}, "249", 0},
		{"topic ..", []string{"topics", "describe", "dev", ".."}, "..", 0},
		{"zero partitions", []string{"topics", "create", "dev", "t", "--partitions", "0"}, "--partitions", 0},
		{"config without =", []string{"topics", "create", "dev", "t", "--config", "retention.ms"}, "--config", 0},
		{"produce without topic", []string{"produce", "dev"}, "usage", 0},
		{"completion for an unknown shell", []string{"completion", "tcsh"}, "bash|zsh|fish", 0},
		{"create: bad name", append([]string{"create", "Bad_Name", "--yes"}, "--allow-cidr", "127.0.0.1/32"), "Bad_Name", 0},
		{"create: malformed CIDR", c("--allow-cidr", "10.0.0.300/32"), "10.0.0.300", 0},
		{"create: CIDR with host bits", c("--allow-cidr", "10.1.2.3/8"), "host bits", 0},
		{"create: unknown region", c("--region", "mars-1"), "region", 0},
		{"create: root size", c("--root-size", "2"), "root volume", 0},
		{"create: both EIP flags", c("--elastic-ip", "--eip-allocation", "eipalloc-1"), "choose one", 0},
		{"create: bad allocation id", c("--eip-allocation", "1.2.3.4"), "allocation id", 0},
		{"create: bad AMI id", c("--ami", "ubuntu"), "AMI id", 0},
		{"create: address kind", c("--address", "mac"), "--address", 0},
		{"create: bad ssh key", c("--ssh-key", junkKey), "public key", 0},
		{"create: bad topic", c("--topics", "ok,bad/one"), "bad/one", 0},
		{"create: open to the world", c("--allow-cidr", "0.0.0.0/0"), "--open-to-world", 0},
		{"create: open to the world (IPv6)", c("--allow-cidr", "::/0"), "--open-to-world", 0},
		{"create: open to the world with TLS but no login", c("--allow-cidr", "0.0.0.0/0", "--tls"), "TLS but no authentication", 0},
		{"create: open to the world with a login but no TLS", c("--allow-cidr", "0.0.0.0/0", "--auth", "scram"), "unencrypted", 0},
		{"unknown --auth", p("--auth", "ldap"), "use none or scram", 0},
		{"apt lock wait too long", p("--apt-lock-timeout", "2h"), "--apt-lock-timeout", 0},
		{"destroy: bad name", []string{"destroy", "../etc"}, "broker name", 0},
		{"cluster: internal hosts miscounted", p("--host", "127.0.0.2,127.0.0.3", "--internal-host", "10.0.0.1,10.0.0.2"), "--internal-host gives 2 addresses for 3 hosts", 0},
		{"cluster: one advertised host for three", p("--host", "127.0.0.2", "--host", "127.0.0.3", "--advertised-host", "kafka.example.com"), "--advertised-host gives 1 addresses for 3 hosts", 0},
		{"cluster: bad internal host", p("--host", "127.0.0.2,127.0.0.3", "--internal-host", "10.0.0.1,10.0.0.2,0.0.0.0"), "--internal-host", 0},
		{"cluster: a host twice", p("--host", "127.0.0.2,127.0.0.1"), "given twice", 0},
		{"internal host for a single broker", []string{"provision", "--host", "127.0.0.1", "--internal-host", "10.0.0.1"}, "for a cluster", 0},
		{"topics: zero replicas", []string{"topics", "create", "dev", "t", "--replication-factor", "0"}, "--replication-factor", 0},
		{"create: ECDSA key", c("--ssh-key", ecdsaKey), "EC2 imports only RSA and ED25519", 0},
		{"create: passphrase key without agent", c("--ssh-key", encrypted+".pub"), "ssh-add", 0},
		{"create: identity of another key", c("--identity", junkKey), "not a private key", 0},
		{"allow: no name", []string{"allow"}, "name the broker", 0},
		{"allow: malformed CIDR", []string{"allow", "demo", "10.0.0.300/32"}, "10.0.0.300", 0},
		{"allow: CIDR with host bits", []string{"allow", "demo", "10.1.2.3/8"}, "host bits", 0},
		{"allow: revoke nothing", []string{"allow", "demo", "--revoke"}, "--my-ip", 0},
		{"allow: unknown broker", []string{"allow", "nosuch", "--my-ip"}, "no record of a broker named", 1},
		{"allow: caller-IP URL without a scheme", []string{"allow", "demo", "--my-ip", "--caller-ip-url", "checkip.example"}, "--caller-ip-url", 0},
		{"create: caller-IP URL not http", c("--caller-ip-url", "ftp://checkip.example"), "not an http", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"kafkaup"}, tc.args...), &stdout, &stderr)
			want := tc.code
			if want == 0 {
				want = 2
			}
			msg := stderr.String()
			if code != want || !strings.Contains(msg, tc.want) {
				t.Errorf("kafkaup %s: exit %d, want %d with %q; stderr:\n%s", strings.Join(tc.args, " "), code, want, tc.want, msg)
			}
			for _, slipped := range []string{"refused the SSH connection", "connecting to", "127.0.0.1:1"} {
				if strings.Contains(msg, slipped) {
					t.Errorf("kafkaup %s got as far as the network (%q):\n%s", strings.Join(tc.args, " "), slipped, msg)
				}
			}
		})
	}
	t.Logf("%d kinds of bad input tried", len(cases))
}
