package kafkaclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/rdkafka"
	"github.com/kafkaup/kafkaup/provision/security"
	"github.com/kafkaup/kafkaup/provision/tlsca"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// The secure test broker is configured the way kafkaup configures a broker
// with --tls --auth scram: clients use SASL_SSL (SCRAM-SHA-512, a PEM
// keystore issued by kafkaup's CA); the broker talks to itself on a
// loopback-only PLAINTEXT listener, INTERNAL, which is also where kafkaup
// creates the SCRAM user (through an SSH tunnel in real use).
var (
	secureOnce      sync.Once
	theSecureBroker *testBroker
	secureErr       error
	secureInfo      struct {
		Internal string // host:port of the INTERNAL listener
		CAPEM    []byte
		CAFile   string
	}
)

func secureBroker(t *testing.T) *testBroker {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real Kafka broker")
	}
	secureOnce.Do(startSecure)
	if secureErr != nil {
		t.Fatal(secureErr)
	}
	return theSecureBroker
}

func startSecure() {
	start := time.Now()
	theSecureBroker, secureErr = startSecureBroker()
	if secureErr == nil {
		fmt.Fprintf(os.Stderr, "secure test broker %s (internal %s) up in %v\n", theSecureBroker.Bootstrap, secureInfo.Internal, time.Since(start).Round(time.Millisecond))
	}
}

// secureProperties are the security lines of the secure broker's
// server.properties (kafkaup's template needs the same).
func secureProperties(external, internal, controller int, keystore string) []string {
	return []string{
		fmt.Sprintf("listeners=SASL_SSL://127.0.0.1:%d,INTERNAL://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", external, internal, controller),
		fmt.Sprintf("advertised.listeners=SASL_SSL://127.0.0.1:%d,INTERNAL://127.0.0.1:%d", external, internal),
		"listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=INTERNAL",
		"controller.listener.names=CONTROLLER",
		fmt.Sprintf("controller.quorum.bootstrap.servers=127.0.0.1:%d", controller),
		"sasl.enabled.mechanisms=SCRAM-SHA-512",
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
		"ssl.keystore.type=PEM",
		"ssl.keystore.location=" + keystore,
	}
}

func startSecureBroker() (*testBroker, error) {
	return startKafka(func(b *testBroker) ([]string, error) {
		var ports [3]int
		for i := range ports {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			ports[i] = p
		}
		now := time.Now()
		ca, err := tlsca.NewCA("kafkaclient-test", now)
		if err != nil {
			return nil, err
		}
		cert, key, err := ca.IssueServer([]string{"127.0.0.1", "localhost"}, now)
		if err != nil {
			return nil, err
		}
		ks, err := tlsca.KeystorePEM(cert, key, ca.CertPEM(), "")
		if err != nil {
			return nil, err
		}
		keystore := filepath.Join(b.dir, "keystore.pem")
		if err := os.WriteFile(keystore, ks, 0o600); err != nil {
			return nil, err
		}
		secureInfo.CAPEM = ca.CertPEM()
		secureInfo.CAFile = filepath.Join(b.dir, "ca.pem")
		if err := os.WriteFile(secureInfo.CAFile, secureInfo.CAPEM, 0o644); err != nil {
			return nil, err
		}
		b.Bootstrap = fmt.Sprintf("127.0.0.1:%d", ports[0])
		secureInfo.Internal = fmt.Sprintf("127.0.0.1:%d", ports[1])
		return secureProperties(ports[0], ports[1], ports[2], keystore), nil
	})
}

// recordingDialer stands in for the SSH tunnel: a net.Dialer that notes
// every address it is asked for.
type recordingDialer struct {
	mu    sync.Mutex
	addrs []string
}

func (d *recordingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func (d *recordingDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// setSCRAMUserVia sets user's password through the INTERNAL listener with
// DialVia and Client.SetSCRAMUser, the way kafkaup does over its SSH
// tunnel to the loopback admin listener.
func setSCRAMUserVia(t *testing.T, ctx context.Context, dial DialFunc, user, password string) {
	t.Helper()
	c, err := DialVia(ctx, secureInfo.Internal, dial)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetSCRAMUser(ctx, user, password); err != nil {
		t.Fatal(err)
	}
}

// secureUser creates a fresh SCRAM user through the INTERNAL listener, the
// way kafkaup does over its SSH tunnel, and returns its Auth.
func secureUser(t *testing.T, ctx context.Context) Auth {
	t.Helper()
	secureBroker(t)
	user := topicName(t, "user")
	pass := topicName(t, "pw") + "-S3cret"
	d := &recordingDialer{}
	setSCRAMUserVia(t, ctx, d.dial, user, pass)
	for _, a := range d.dialed() {
		if a != secureInfo.Internal {
			t.Errorf("DialVia dialed %s, want only %s", a, secureInfo.Internal)
		}
	}
	if len(d.dialed()) == 0 {
		t.Error("DialVia never used the dialer")
	}
	return Auth{Mode: security.Mode{TLS: true, SCRAM: true}, CAPEM: secureInfo.CAPEM, Username: user, Password: pass}
}

func TestSecureVerify(t *testing.T) {
	b := secureBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	auth := secureUser(t, ctx)
	if got := auth.Protocol(); got != "SASL_SSL" {
		t.Errorf("Protocol = %s", got)
	}
	if strings.Contains(auth.String(), auth.Password) {
		t.Errorf("Auth.String shows the password: %s", auth)
	}
	v, err := VerifyWith(ctx, b.Bootstrap, 45*time.Second, auth)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Advertised) != 1 || v.Advertised[0] != b.Bootstrap {
		t.Errorf("advertised %v, want [%s]", v.Advertised, b.Bootstrap)
	}
	t.Logf("verified over SASL_SSL in %s", v.RoundTrip)
}

func TestSecureClient(t *testing.T) {
	b := secureBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	auth := secureUser(t, ctx)
	c, err := DialWith(ctx, b.Bootstrap, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Brokers) != 1 || info.Brokers[0].Addr != b.Bootstrap {
		t.Errorf("brokers %+v", info.Brokers)
	}
	// Topics, produce and consume (a second kgo client) over SASL_SSL.
	topic := topicName(t, "secure")
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Produce(ctx, topic, [][]byte{[]byte("a"), []byte("b")}); err != nil || n != 2 {
		t.Fatalf("Produce = %d, %v", n, err)
	}
	var got []string
	n, err := c.Consume(ctx, topic, true, 2, 10*time.Second, func(m Message) error {
		got = append(got, string(m.Value))
		return nil
	})
	if err != nil || n != 2 || strings.Join(got, ",") != "a,b" {
		t.Fatalf("Consume = %d %v %v", n, got, err)
	}

	// TLS and SASL through a custom dialer (the SSH tunnel code path).
	rd := &recordingDialer{}
	c3, err := dialConn(ctx, conn{bootstrap: b.Bootstrap, auth: auth, dial: rd.dial})
	if err != nil {
		t.Fatalf("SASL_SSL through a custom dialer: %v", err)
	}
	if _, err := c3.Cluster(ctx); err != nil {
		t.Fatal(err)
	}
	c3.Close()
	if len(rd.dialed()) == 0 {
		t.Error("the custom dialer was not used")
	}

	// A new password replaces the old one.
	newPass := auth.Password + "-rotated"
	d := &recordingDialer{}
	setSCRAMUserVia(t, ctx, d.dial, auth.Username, newPass)
	old := auth
	auth.Password = newPass
	c2, err := DialWith(ctx, b.Bootstrap, auth)
	if err != nil {
		t.Fatalf("dial with the new password: %v", err)
	}
	c2.Close()
	_, err = DialWith(ctx, b.Bootstrap, old)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("dial with the old password = %v, want *AuthError", err)
	}
}

// TestSecureFailures shows that each wrong setting fails quickly with a
// message that names the problem.
func TestSecureFailures(t *testing.T) {
	b := secureBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	auth := secureUser(t, ctx)
	otherCA, err := tlsca.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}

	wrongPass := auth
	wrongPass.Password = "not-the-password"
	noUser := auth
	noUser.Username = "nobody-" + topicName(t, "x")
	otherTrust := auth
	otherTrust.CAPEM = otherCA.CertPEM()
	wrongName := auth
	wrongName.ServerName = "broker.example.com"
	noTLS := auth
	noTLS.CAPEM, noTLS.Mode.TLS = nil, false

	cases := []struct {
		name      string
		addr      string
		auth      Auth
		check     func(error) bool
		wantInMsg []string
	}{
		{"wrong password", b.Bootstrap, wrongPass, isErr[*AuthError], []string{"refused the SCRAM-SHA-512 login of user", "wrong username or password"}},
		{"unknown user", b.Bootstrap, noUser, isErr[*AuthError], []string{"wrong username or password"}},
		{"another CA", b.Bootstrap, otherTrust, isErr[*TLSError], []string{"not signed by the CA given", "certificate signed by unknown authority"}},
		{"wrong name", b.Bootstrap, wrongName, isErr[*TLSError], []string{"does not name broker.example.com", "reprovision"}},
		{"plaintext", b.Bootstrap, Auth{}, isErr[*ProtocolMismatchError], []string{"speaks TLS on this port but this client connected with PLAINTEXT", "security.protocol=SASL_SSL"}},
		{"SASL without TLS", b.Bootstrap, noTLS, isErr[*ProtocolMismatchError], []string{"speaks TLS on this port but this client connected with SASL_PLAINTEXT"}},
		{"TLS to the PLAINTEXT listener", secureInfo.Internal, auth, isErr[*TLSError], []string{"TLS connection to the broker at " + secureInfo.Internal + " failed", "does not speak TLS"}},
	}
	// Verify asks again an address whose connections are closed at once
	// (TLS to the PLAINTEXT listener): not for a minute here.
	defer func(g time.Duration) { closedGrace = g }(closedGrace)
	closedGrace = 2 * time.Second
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			for _, verify := range []bool{false, true} {
				start := time.Now()
				var err error
				if verify {
					_, err = VerifyWith(ctx, tc.addr, 30*time.Second, tc.auth)
				} else {
					var c *Client
					c, err = DialWith(ctx, tc.addr, tc.auth)
					if c != nil {
						c.Close()
					}
				}
				took := time.Since(start).Round(time.Millisecond)
				if !tc.check(err) {
					t.Fatalf("verify=%v: err = %T %v", verify, err, err)
				}
				for _, w := range tc.wantInMsg {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("verify=%v: message lacks %q: %s", verify, w, err)
					}
				}
				if strings.Contains(err.Error(), auth.Password) {
					t.Errorf("message shows the password: %s", err)
				}
				t.Logf("verify=%v (%v): %v", verify, took, err)
			}
		})
	}
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// clientConfig writes a librdkafka client config (kcat -F) with the settings
// kafkaup prints, trusting the CA in caFile, so that the password is in no
// process argument.
func clientConfig(t *testing.T, bootstrap string, auth Auth, caFile string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "client.properties")
	text := strings.Join([]string{
		"bootstrap.servers=" + bootstrap,
		"security.protocol=SASL_SSL",
		"sasl.mechanisms=" + Mechanism,
		"sasl.username=" + auth.Username,
		"sasl.password=" + auth.Password,
		"ssl.ca.location=" + caFile,
		"ssl.endpoint.identification.algorithm=https",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestSecureKcat shows that kcat, a client outside kafkaup, connects with
// the settings kafkaup prints in librdkafka's form (a -F config file):
// metadata, a produce and consume round trip, and a refusal of a wrong
// password or of a broker certificate the given CA did not sign.
//
// Debian 12's kcat links librdkafka 2.0.2, whose SCRAM login Kafka 4.x
// rejects (a malformed client nonce, fixed in librdkafka 2.6.1 by
// confluentinc/librdkafka PR 4895), so kcat runs with librdkafka 2.8.0
// built from Debian's source (internal/testenv/rdkafka, through
// harness.KcatConfig).
func TestSecureKcat(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (test/deps.sh installs it)")
	}
	b := secureBroker(t)
	// The first run on a machine builds librdkafka (about 30 s on 2 cores):
	// it gets its own deadline, before the broker's clock starts.
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer bcancel()
	start := time.Now()
	if _, err := rdkafka.KcatEnv(bctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("kcat with librdkafka %s ready in %v", rdkafka.Version, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	auth := secureUser(t, ctx)
	kcat := func(a Auth, caFile, stdin string, args ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return harness.KcatConfig(cctx, clientConfig(t, b.Bootstrap, a, caFile), stdin, args...)
	}

	out, err := kcat(auth, secureInfo.CAFile, "", "-L", "-m", "10")
	if err != nil {
		t.Fatalf("kcat -L over SASL_SSL: %v", err)
	}
	if !strings.Contains(out, "1 brokers:") || !strings.Contains(out, "broker 1 at "+b.Bootstrap) {
		t.Errorf("kcat -L output:\n%s", out)
	}

	topic := topicName(t, "kcat")
	c, err := DialWith(ctx, b.Bootstrap, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateTopic(ctx, TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := kcat(auth, secureInfo.CAFile, "one\ntwo\n", "-P", "-t", topic); err != nil {
		t.Fatalf("kcat -P over SASL_SSL: %v", err)
	}
	out, err = kcat(auth, secureInfo.CAFile, "", "-C", "-t", topic, "-o", "beginning", "-e", "-q")
	if err != nil {
		t.Fatalf("kcat -C over SASL_SSL: %v", err)
	}
	if got := strings.Fields(out); strings.Join(got, ",") != "one,two" {
		t.Errorf("kcat consumed %q, want one, two", out)
	}
	// kafkaup's client reads what kcat wrote.
	var got []string
	if _, err := c.Consume(ctx, topic, true, 2, 10*time.Second, func(m Message) error {
		got = append(got, string(m.Value))
		return nil
	}); err != nil || strings.Join(got, ",") != "one,two" {
		t.Errorf("Consume of kcat's records = %v, %v", got, err)
	}

	// librdkafka retries a refused login until -m's timeout: the failing
	// runs wait it out.
	wrong := auth
	wrong.Password = "wrong-password"
	_, err = kcat(wrong, secureInfo.CAFile, "", "-L", "-m", "5")
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Errorf("kcat with a wrong password = %v, want Authentication failed", err)
	} else {
		t.Logf("kcat with a wrong password: %s", firstLine(err.Error(), "Authentication failed"))
	}

	other, err := tlsca.NewCA("other", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherFile, other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = kcat(auth, otherFile, "", "-L", "-m", "5")
	if err == nil || !strings.Contains(err.Error(), "certificate verify failed") {
		t.Errorf("kcat trusting another CA = %v, want certificate verify failed", err)
	} else {
		t.Logf("kcat trusting another CA: %s", firstLine(err.Error(), "certificate verify failed"))
	}
}

// firstLine returns the first line of s that holds sub.
func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// TestSecureJavaClient shows that Apache Kafka's own Java client connects
// with the settings kafkaup prints, in the Java client's form (a
// --command-config file: the password is in no process argument).
func TestSecureJavaClient(t *testing.T) {
	b := secureBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	auth := secureUser(t, ctx)
	tool := filepath.Join(b.dir, "kafka_2.13-4.0.0", "bin", "kafka-broker-api-versions.sh")
	run := func(password string) (string, error) {
		conf := filepath.Join(t.TempDir(), "client.properties")
		text := strings.Join([]string{
			"security.protocol=SASL_SSL",
			"sasl.mechanism=" + Mechanism,
			fmt.Sprintf(`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";`, auth.Username, password),
			"ssl.truststore.type=PEM",
			"ssl.truststore.location=" + secureInfo.CAFile,
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 35*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, tool, "--bootstrap-server", b.Bootstrap, "--command-config", conf)
		cmd.Env = append(os.Environ(), "LOG_DIR="+t.TempDir(), "KAFKA_HEAP_OPTS=-Xmx256m")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(auth.Password)
	if err != nil || !strings.Contains(out, b.Bootstrap+" (id: 1") {
		t.Fatalf("kafka-broker-api-versions.sh over SASL_SSL: %v\n%s", err, tail([]byte(out)))
	}
}
