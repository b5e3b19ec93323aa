// Package harness is what the end-to-end tests share: the kafkaup binary
// built once per test package and run as a user would, and real Kafka
// clients (kcat from Debian, franz-go in process) pointed at a broker.
// For SCRAM logins kcat runs with a newer librdkafka (KcatConfig).
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkaup/kafkaup/internal/testenv/rdkafka"
)

// CLI is the kafkaup binary with an isolated state directory.
type CLI struct {
	Bin        string
	Home       string // KAFKAUP_HOME: pinned host keys, logs
	Key        string // --identity
	Env        []string
	KnownHosts string // empty file: ~/.ssh/known_hosts of this machine is never read
}

// BuildCLI compiles ./cmd/kafkaup into dir.
func BuildCLI(dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kafkaup")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kafkaup")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build kafkaup: %v\n%s", err, out)
	}
	return bin, nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// NewCLI returns a CLI with its own state dir under dir.
func NewCLI(bin, dir, key string) (*CLI, error) {
	home := filepath.Join(dir, "kafkaup-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		return nil, err
	}
	return &CLI{Bin: bin, Home: home, Key: key, KnownHosts: kh}, nil
}

// Result is one kafkaup run.
type Result struct {
	Args     []string
	Stdout   string
	Stderr   string
	ExitCode int
	Took     time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("kafkaup %s\nexit %d after %s\n--- stdout\n%s--- stderr\n%s", strings.Join(r.Args, " "), r.ExitCode, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Run runs kafkaup with args; connection flags that point at the test's
// key and known_hosts are added for commands that take them.
func (c *CLI) Run(ctx context.Context, args ...string) Result {
	full := append([]string{}, args...)
	cmd := exec.CommandContext(ctx, c.Bin, full...)
	cmd.Env = append(os.Environ(), "KAFKAUP_HOME="+c.Home, "SSH_AUTH_SOCK=")
	cmd.Env = append(cmd.Env, c.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Args: full, Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		res.ExitCode = -1
		res.Stderr += "\n(harness: " + err.Error() + ")"
	}
	return res
}

// ConnArgs are the flags that make kafkaup use the test key and an empty
// known_hosts (plus kafkaup's own pin file in Home).
func (c *CLI) ConnArgs(user string) []string {
	return []string{"--user", user, "--identity", c.Key, "--known-hosts", c.KnownHosts}
}

// LastLog returns the newest debug log kafkaup wrote under Home: every
// progress line of the host scripts (retries, waits) lands there.
func (c *CLI) LastLog() (string, error) {
	paths, err := filepath.Glob(filepath.Join(c.Home, "logs", "*.log"))
	if err != nil {
		return "", err
	}
	newest, at := "", time.Time{}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.ModTime().After(at) {
			newest, at = p, st.ModTime()
		}
	}
	if newest == "" {
		return "", fmt.Errorf("no debug log under %s/logs", c.Home)
	}
	b, err := os.ReadFile(newest)
	return string(b), err
}

// LastLine is the last "kafkaup:" line of stderr: what the user was told.
func LastLine(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "kafkaup: ") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

// MustSucceed fails the test unless r exited 0.
func MustSucceed(t testing.TB, r Result) {
	t.Helper()
	if r.ExitCode != 0 {
		t.Fatalf("kafkaup failed:\n%s", r)
	}
	t.Logf("kafkaup %s: ok in %s", r.Args[0], r.Took.Round(time.Millisecond))
}

// MustFail fails the test unless r exited with code and its stderr holds
// every snippet.
func MustFail(t testing.TB, r Result, code int, snippets ...string) {
	t.Helper()
	if r.ExitCode != code {
		t.Fatalf("want exit %d:\n%s", code, r)
	}
	for _, s := range snippets {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r)
		}
	}
}

// Kcat runs kcat with args and returns its stdout.
func Kcat(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kcat %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// KcatConfig runs `kcat -F configFile args...` with a librdkafka that can
// log in with SCRAM to Kafka 4.x (rdkafka.KcatEnv: Debian 12's kcat links
// librdkafka 2.0.2, which cannot) and returns its stdout. configFile is a
// librdkafka client config (bootstrap.servers, security.protocol, sasl.*,
// ssl.ca.location), so no secret is in a process argument. The error holds
// kcat's stderr, where librdkafka logs why a connection failed.
func KcatConfig(ctx context.Context, configFile, stdin string, args ...string) (string, error) {
	env, err := rdkafka.KcatEnv(ctx)
	if err != nil {
		return "", err
	}
	args = append([]string{"-F", configFile}, args...)
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kcat %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// KcatMetadata returns `kcat -L` for bootstrap: the brokers as clients see them.
func KcatMetadata(ctx context.Context, bootstrap string) (string, error) {
	return Kcat(ctx, "", "-L", "-b", bootstrap, "-m", "30")
}

// KcatProduce sends each line as a record to topic.
func KcatProduce(ctx context.Context, bootstrap, topic string, lines ...string) error {
	_, err := Kcat(ctx, strings.Join(lines, "\n")+"\n", "-P", "-b", bootstrap, "-t", topic, "-m", "30")
	return err
}

// KcatConsumeAll reads topic from the beginning to its end.
func KcatConsumeAll(ctx context.Context, bootstrap, topic string) ([]string, error) {
	out, err := Kcat(ctx, "", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-m", "30")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// FranzRoundTrip produces value to topic with franz-go and reads the topic
// back from the beginning, returning every value.
func FranzRoundTrip(ctx context.Context, bootstrap, topic, value string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		return nil, fmt.Errorf("franz-go produce to %s: %w", bootstrap, err)
	}
	var got []string
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return got, fmt.Errorf("franz-go consume from %s: %w (got %v)", bootstrap, ctx.Err(), got)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return got, fmt.Errorf("franz-go consume: %w", errs[0].Err)
		}
		for _, r := range fetches.Records() {
			got = append(got, string(r.Value))
			if string(r.Value) == value {
				return got, nil
			}
		}
	}
}
