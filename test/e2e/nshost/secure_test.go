package nshost_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// TestSecureBroker provisions a broker with --tls --auth scram on a fresh
// namespace host and shows, with kcat (librdkafka >= 2.6.1) and kafkaup's
// own franz-go client over the network, that clients need kafkaup's CA and
// password; that the secrets stay in 0600 files and out of every output,
// log and remote command; and that reprovision keeps them.
func TestSecureBroker(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bootstrap := e.host.Addr + ":9092"
	run := func(args ...string) harness.Result { return e.cli.Run(ctx, args...) }
	secretsDir := filepath.Join(e.cli.Home, "secrets", name)

	var client struct {
		Protocol   string `json:"security_protocol"`
		Username   string `json:"sasl_username"`
		CAFile     string `json:"ssl_ca_location"`
		Librdkafka string `json:"librdkafka_config"`
		Java       string `json:"java_properties"`
	}
	var password string
	var outputs []string // everything kafkaup printed, checked for secrets at the end
	t.Run("provision with TLS and SCRAM", func(t *testing.T) {
		r := e.provision(ctx, "--swap", "0", "--kafka-url", e.url["4.0.0"], "--tls", "--auth", "scram", "--json")
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		var out struct {
			OK     bool
			Result struct {
				Verified *struct{ Bootstrap string }
				Client   json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("--json: %v\n%s", err, r.Stdout)
		}
		if err := json.Unmarshal(out.Result.Client, &client); err != nil || !out.OK || out.Result.Verified == nil {
			t.Fatalf("result: %s", r.Stdout)
		}
		if client.Protocol != "SASL_SSL" || client.Username != "kafkaup" || client.CAFile == "" {
			t.Errorf("client settings: %+v", client)
		}
		var login struct{ Password string }
		data, err := os.ReadFile(filepath.Join(secretsDir, "scram.json"))
		if err != nil || json.Unmarshal(data, &login) != nil || len(login.Password) < 40 {
			t.Fatalf("scram.json: %v %s", err, data)
		}
		password = login.Password
	})
	if password == "" {
		t.FailNow()
	}

	t.Run("the secrets are 0600 files in a 0700 directory", func(t *testing.T) {
		err := filepath.WalkDir(secretsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if info.Mode().Perm() != want {
				t.Errorf("%s is %v, want %v", p, info.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// On the host, the keystore is for root and the kafka group only.
		if got := e.sh(t, "stat -c '%a %U:%G' /etc/kafka/tls/broker.pem"); got != "640 root:kafka" {
			t.Errorf("keystore on the host: %s", got)
		}
	})

	t.Run("kcat connects with the printed settings, and only with them", func(t *testing.T) {
		md, err := harness.KcatConfig(ctx, client.Librdkafka, "", "-L")
		if err != nil || !strings.Contains(md, "broker 1 at "+bootstrap) {
			t.Fatalf("kcat -F %s -L: %v\n%s", client.Librdkafka, err, md)
		}
		if _, err := harness.KcatConfig(ctx, client.Librdkafka, "s1\ns2\n", "-t", "secure", "-P"); err != nil {
			t.Fatal(err)
		}
		got, err := harness.KcatConfig(ctx, client.Librdkafka, "", "-t", "secure", "-C", "-o", "beginning", "-e", "-q")
		if err != nil || strings.Fields(got)[0] != "s1" || len(strings.Fields(got)) != 2 {
			t.Fatalf("kcat consumed %q: %v", got, err)
		}

		wrong := filepath.Join(t.TempDir(), "wrong.conf")
		conf, _ := os.ReadFile(client.Librdkafka)
		os.WriteFile(wrong, []byte(strings.ReplaceAll(string(conf), password, "not-the-password")), 0o600)
		if _, err := harness.KcatConfig(ctx, wrong, "", "-L", "-m", "10"); err == nil || !strings.Contains(err.Error(), "Authentication failed") {
			t.Errorf("kcat with a wrong password: %v", err)
		}
		if md, err := harness.KcatMetadata(ctx, bootstrap); err == nil {
			t.Errorf("kcat without TLS and login listed the broker:\n%s", md)
		}
	})

	t.Run("Kafka's own Java tools connect with client.properties", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := exec.CommandContext(ctx, "tar", "-xzf", e.dists["4.0.0"].Tarball, "-C", dir).CombinedOutput(); err != nil {
			t.Fatalf("untar: %v %s", err, out)
		}
		tool := filepath.Join(dir, "kafka_2.13-4.0.0", "bin", "kafka-broker-api-versions.sh")
		cmd := exec.CommandContext(ctx, tool, "--bootstrap-server", bootstrap, "--command-config", client.Java)
		cmd.Env = append(os.Environ(), "LOG_DIR="+dir, "KAFKA_HEAP_OPTS=-Xmx256m")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), bootstrap+" (id: 1") {
			t.Fatalf("kafka-broker-api-versions.sh --command-config %s: %v\n%s", client.Java, err, out)
		}
	})

	t.Run("day-2 commands use the credentials", func(t *testing.T) {
		r := run("status", name)
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		if !strings.Contains(r.Stdout, "healthy") || !strings.Contains(r.Stdout, `SASL_SSL (SCRAM-SHA-512, user "kafkaup")`) {
			t.Errorf("status:\n%s", r.Stdout)
		}
		harness.MustSucceed(t, run("topics", "create", name, "orders", "--partitions", "2"))
		r = run("topics", "list", name)
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "orders") || !strings.Contains(r.Stdout, "secure") {
			t.Errorf("topics list:\n%s", r.Stdout)
		}
		r = e.cli.Run(ctx, "topics", "list", name, "--via-ssh")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "orders") {
			t.Errorf("topics list --via-ssh (the INTERNAL listener on the host):\n%s", r.Stdout)
		}
		harness.MustSucceed(t, run("produce", name, "orders", "--message", "o1"))
		r = run("consume", name, "secure", "--from-beginning", "--max", "2")
		harness.MustSucceed(t, r)
		if strings.Fields(r.Stdout)[0] != "s1" {
			t.Errorf("consume:\n%s", r.Stdout)
		}

		r = run("env", name)
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		for _, want := range []string{"KAFKA_BOOTSTRAP_SERVERS=" + bootstrap, "KAFKA_SECURITY_PROTOCOL=SASL_SSL", "KAFKA_SASL_USERNAME=kafkaup",
			"KAFKA_SSL_CA_LOCATION=" + client.CAFile, "KAFKAUP_LIBRDKAFKA_CONFIG=" + client.Librdkafka, "--show-secrets"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("env lacks %q:\n%s", want, r.Stdout)
			}
		}
		r = run("env", name, "--show-secrets")
		harness.MustSucceed(t, r)
		if !strings.Contains(r.Stdout, "KAFKA_SASL_PASSWORD="+password) {
			t.Errorf("env --show-secrets has no password:\n%s", r.Stdout)
		}
	})

	t.Run("a rerun changes nothing and keeps the password", func(t *testing.T) {
		r := run("reprovision", name)
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		if !strings.Contains(r.Stdout, "nothing changed") || strings.Contains(r.Stderr, "issued a broker certificate") {
			t.Errorf("rerun:\n%s", r)
		}
		if _, err := harness.KcatConfig(ctx, client.Librdkafka, "", "-L"); err != nil {
			t.Error(err)
		}
	})

	t.Run("a lost password is replaced on the broker", func(t *testing.T) {
		if err := os.Remove(filepath.Join(secretsDir, "scram.json")); err != nil {
			t.Fatal(err)
		}
		old, _ := os.ReadFile(client.Librdkafka)
		r := run("reprovision", name)
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		stale := filepath.Join(t.TempDir(), "stale.conf")
		os.WriteFile(stale, old, 0o600)
		if _, err := harness.KcatConfig(ctx, stale, "", "-L", "-m", "10"); err == nil {
			t.Error("the old password still works")
		}
		md, err := harness.KcatConfig(ctx, client.Librdkafka, "", "-L")
		if err != nil || !strings.Contains(md, "secure") {
			t.Errorf("kcat with the new password: %v\n%s", err, md)
		}
		data, _ := os.ReadFile(filepath.Join(secretsDir, "scram.json"))
		var login struct{ Password string }
		json.Unmarshal(data, &login)
		password = password + "|" + login.Password // both must stay out of logs
	})

	t.Run("TLS and login off, then on again: data kept, same CA and password", func(t *testing.T) {
		r := run("reprovision", name, "--tls=false", "--auth", "none")
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		if !strings.Contains(r.Stderr, "remove /etc/kafka/tls/broker.pem") || e.sh(t, "test -e /etc/kafka/tls/broker.pem && echo kept || echo gone") != "gone" {
			t.Errorf("the broker's key stays on the host after TLS was turned off:\n%s", r.Stderr)
		}
		got, err := harness.KcatConsumeAll(ctx, bootstrap, "secure")
		if err != nil || strings.Join(got, ",") != "s1,s2" {
			t.Errorf("plain kcat after turning security off: %v, %v", got, err)
		}
		if r := run("env", name); strings.TrimSpace(r.Stdout) != "KAFKA_BOOTSTRAP_SERVERS="+bootstrap {
			t.Errorf("env of a PLAINTEXT broker: %q", r.Stdout)
		}

		r = run("reprovision", name, "--tls", "--auth", "scram")
		harness.MustSucceed(t, r)
		outputs = append(outputs, r.Stdout, r.Stderr)
		// The client files from before work again: same CA, same password.
		got2, err := harness.KcatConfig(ctx, client.Librdkafka, "", "-t", "secure", "-C", "-o", "beginning", "-e", "-q")
		if err != nil || strings.Join(strings.Fields(got2), ",") != "s1,s2" {
			t.Errorf("kcat after turning security on again: %q, %v", got2, err)
		}
		if md, err := harness.KcatMetadata(ctx, bootstrap); err == nil {
			t.Errorf("plain kcat still lists the broker:\n%s", md)
		}
	})

	t.Run("no secret in outputs, logs or on the host", func(t *testing.T) {
		var keys []string
		for _, f := range []string{"broker.pem", "ca-key.pem"} {
			data, err := os.ReadFile(filepath.Join(secretsDir, f))
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, privateKeyBody(string(data)))
		}
		secretsList := append(strings.Split(password, "|"), keys...)
		var logs []string
		filepath.WalkDir(filepath.Join(e.cli.Home, "logs"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				data, _ := os.ReadFile(p)
				logs = append(logs, string(data))
			}
			return nil
		})
		if len(logs) == 0 {
			t.Fatal("no kafkaup logs to check")
		}
		hostSide := e.sh(t, "cat /etc/kafka/server.properties /etc/kafka/kafka.env; cat /var/log/kafka/*.log 2>/dev/null | tail -n 20000; ls -la ~/.kafkaup-staging 2>/dev/null || true")
		for _, secret := range secretsList {
			if secret == "" {
				continue
			}
			for i, text := range append(append(outputs, logs...), hostSide) {
				if strings.Contains(text, secret) {
					t.Errorf("a secret (%.6s...) appears in output/log #%d", secret, i)
				}
			}
		}
		if strings.Contains(hostSide, "PRIVATE KEY") {
			t.Error("a private key is in the broker's config or logs")
		}
	})
}

// privateKeyBody is the base64 body of the first PRIVATE KEY block.
func privateKeyBody(pemText string) string {
	_, rest, ok := strings.Cut(pemText, "-----BEGIN PRIVATE KEY-----")
	if !ok {
		_, rest, _ = strings.Cut(pemText, "PRIVATE KEY-----")
	}
	body, _, _ := strings.Cut(rest, "-----END")
	return strings.Join(strings.Fields(body), "")[:40]
}
