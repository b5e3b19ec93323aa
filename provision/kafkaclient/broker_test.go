package kafkaclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
)

// testBroker is one real Kafka 4.0.0 broker (KRaft, combined mode, node 1)
// on free loopback ports, shared by the package's tests. It starts on first
// use and stops in TestMain.
type testBroker struct {
	Bootstrap string
	ClusterID string
	dir       string
	cmd       *exec.Cmd
	exited    chan error
}

var (
	brokerOnce sync.Once
	theBroker  *testBroker
	brokerErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	secureOnce.Do(func() {}) // wait for a secure broker still starting
	for _, b := range []*testBroker{theBroker, theSecureBroker} {
		if b == nil {
			continue
		}
		if err := b.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop test broker:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// broker returns the shared broker, starting it if needed.
func broker(t *testing.T) *testBroker {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real Kafka broker")
	}
	brokerOnce.Do(func() {
		// Tests that need a broker are running: start the secure
		// broker alongside, so that its start-up overlaps this one's.
		go secureOnce.Do(startSecure)
		start := time.Now()
		theBroker, brokerErr = startBroker()
		if brokerErr == nil {
			fmt.Fprintf(os.Stderr, "test broker %s up in %v\n", theBroker.Bootstrap, time.Since(start).Round(time.Millisecond))
		}
	})
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return theBroker
}

func startBroker() (*testBroker, error) {
	return startKafka(func(b *testBroker) ([]string, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cport, err := freePort()
		if err != nil {
			return nil, err
		}
		b.Bootstrap = fmt.Sprintf("127.0.0.1:%d", port)
		return []string{
			fmt.Sprintf("controller.quorum.bootstrap.servers=127.0.0.1:%d", cport),
			fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, cport),
			fmt.Sprintf("advertised.listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, cport),
			"inter.broker.listener.name=PLAINTEXT",
			"controller.listener.names=CONTROLLER",
			"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		}, nil
	})
}

// startKafka unpacks Kafka 4.0.0 into a fresh directory, writes a
// server.properties of node 1 in combined mode from the lines configure
// returns (listeners and security; configure may write files into b.dir
// and must set b.Bootstrap) plus the common lines below, formats the
// storage and starts the broker.
func startKafka(configure func(b *testBroker) ([]string, error)) (*testBroker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		return nil, fmt.Errorf("kafka dist: %w", err)
	}
	dir, err := os.MkdirTemp("", "kafkaclient-test-")
	if err != nil {
		return nil, err
	}
	b := &testBroker{dir: dir}
	fail := func(err error) (*testBroker, error) {
		if b.cmd != nil {
			b.stop()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "tar", "-xzf", d.Tarball, "-C", dir).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("unpack %s: %v\n%s", d.Tarball, err, out))
	}
	home := filepath.Join(dir, "kafka_2.13-4.0.0")

	// Like Kafka's own ids, never starting with '-': kafka-storage.sh
	// would read such a cluster id as an option.
	for b.ClusterID == "" || b.ClusterID[0] == '-' {
		id := make([]byte, 16)
		rand.Read(id)
		b.ClusterID = base64.RawURLEncoding.EncodeToString(id)
	}
	listeners, err := configure(b)
	if err != nil {
		return fail(err)
	}

	props := filepath.Join(dir, "server.properties")
	text := strings.Join(append(append([]string{
		"process.roles=broker,controller",
		"node.id=1",
	}, listeners...),
		"log.dirs="+filepath.Join(dir, "data"),
		"num.partitions=1",
		"offsets.topic.replication.factor=1",
		"offsets.topic.num.partitions=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"share.coordinator.state.topic.replication.factor=1",
		"share.coordinator.state.topic.min.isr=1",
		"group.initial.rebalance.delay.ms=0",
		// Left at Kafka's default (true) on purpose: Produce must not
		// auto-create a missing topic even when the broker would.
		"auto.create.topics.enable=true",
		"",
	), "\n")
	if err := os.WriteFile(props, []byte(text), 0o644); err != nil {
		return fail(err)
	}
	env := append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "KAFKA_") || strings.HasPrefix(kv, "LOG_DIR=") || strings.HasPrefix(kv, "CLASSPATH=")
	}), "LOG_DIR="+filepath.Join(dir, "logs"))

	format := exec.CommandContext(ctx, filepath.Join(home, "bin/kafka-storage.sh"), "format", "-t", b.ClusterID, "-c", props, "--standalone")
	format.Env = env
	if out, err := format.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("kafka-storage.sh format: %v\n%s", err, out))
	}

	out, err := os.Create(filepath.Join(dir, "broker.out"))
	if err != nil {
		return fail(err)
	}
	defer out.Close()
	b.cmd = exec.Command(filepath.Join(home, "bin/kafka-server-start.sh"), props)
	b.cmd.Env = append(env, "KAFKA_HEAP_OPTS=-Xmx512m -Xms256m")
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		b.cmd = nil
		return fail(err)
	}
	b.exited = make(chan error, 1)
	go func() { b.exited <- b.cmd.Wait() }()

	serverLog := filepath.Join(dir, "logs/server.log")
	deadline := time.After(3 * time.Minute)
	for {
		if data, _ := os.ReadFile(serverLog); strings.Contains(string(data), "Kafka Server started") {
			return b, nil
		}
		select {
		case err := <-b.exited:
			b.exited <- err
			data, _ := os.ReadFile(out.Name())
			return fail(fmt.Errorf("broker exited early: %v\n%s", err, tail(data)))
		case <-deadline:
			data, _ := os.ReadFile(out.Name())
			return fail(fmt.Errorf("broker not started within 3m\n%s", tail(data)))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to the broker's own process (never kafka-server-stop.sh,
// which stops every broker on the machine) and removes its files.
func (b *testBroker) stop() error {
	defer os.RemoveAll(b.dir)
	select {
	case <-b.exited:
		return errors.New("the broker had already exited")
	default:
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-b.exited:
		return nil
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
		return errors.New("the broker did not exit within 30s of SIGTERM; killed")
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// dial connects to the shared broker; the client closes with the test.
func dial(t *testing.T) (*Client, context.Context) {
	t.Helper()
	b := broker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := Dial(ctx, b.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, ctx
}

// topicName returns a fresh topic name for the test.
func topicName(t *testing.T, base string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s-%x", base, b)
}
