package nshost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/jmxagent"
	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// metricsEnv drives the kafkaup binary as a user would: each Spec the test
// wants becomes provision's flags (--metrics, --metrics-agent-url,
// --metrics-agent-jar), and the JSON result is read back.
type metricsEnv struct {
	host   *nshost.Host
	conn   *remote.Client
	cli    *harness.CLI
	mirror *kafkadist.Mirror
	jar    string // the agent jar in the test cache
	spec   provision.Spec
}

const metricsName = "metrics"

func setupMetrics(t *testing.T) *metricsEnv {
	if testing.Short() {
		t.Skip("end-to-end: needs root, namespaces and the Kafka runtime (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	e := &metricsEnv{}
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		t.Fatalf("build Kafka 4.0.0 runtime: %v", err)
	}
	e.jar, err = jmxagent.Get(ctx, provision.DefaultAgentVersion, provision.PinnedAgentSHA256[provision.DefaultAgentVersion])
	if err != nil {
		t.Fatal(err)
	}
	e.host, err = nshost.Start(ctx, nshost.Options{Name: "kafkaup-metrics"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.host.Close(); err != nil {
			t.Errorf("close namespace host: %v", err)
		}
	})
	e.mirror, err = kafkadist.StartMirror([]*kafkadist.Dist{dist}, e.host.HostSideAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.mirror.Close() })
	e.mirror.AddFile(agentMirrorPath, e.jar)

	auth, err := remote.Auth(e.host.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	e.conn, err = remote.Dial(ctx, remote.Config{Host: e.host.Addr, User: "root", Auth: auth,
		HostKeys: &remote.HostKeys{PinFile: filepath.Join(t.TempDir(), "known_hosts")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })

	dir := t.TempDir()
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.cli, err = harness.NewCLI(bin, dir, e.host.KeyPath); err != nil {
		t.Fatal(err)
	}

	e.spec = provision.DefaultSpec()
	e.spec.AdvertisedHost = e.host.Addr
	e.spec.SwapBytes = 0 // no swap on an overlay
	e.spec.Source.URL = e.mirror.URL(0, "4.0.0")
	e.spec.Metrics.AgentURL = e.mirror.FileURL(0, agentMirrorPath)
	return e
}

var agentMirrorPath = "/maven2/" + jmxagent.MavenPath(provision.DefaultAgentVersion)

func (e *metricsEnv) provision(ctx context.Context, t *testing.T, s provision.Spec) *provision.Result {
	t.Helper()
	start := time.Now()
	args := append([]string{"provision", "--host", e.host.Addr, "--name", metricsName, "--swap", "0",
		"--kafka-url", s.Source.URL, "--json"}, e.cli.ConnArgs("root")...)
	if s.Metrics.Enabled {
		args = append(args, "--metrics")
		if s.Metrics.AgentURL != "" {
			args = append(args, "--metrics-agent-url", s.Metrics.AgentURL)
		}
		if s.Metrics.LocalAgent != "" {
			args = append(args, "--metrics-agent-jar", s.Metrics.LocalAgent)
		}
	}
	r := e.cli.Run(ctx, args...)
	harness.MustSucceed(t, r)
	var out struct {
		Result *provision.Result `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || out.Result == nil {
		t.Fatalf("provision --json: %v\n%s", err, r.Stdout)
	}
	res := out.Result
	var steps []string
	for _, st := range res.Applied {
		steps = append(steps, fmt.Sprintf("%s (%.1fs)", st.ID, st.Seconds))
	}
	t.Logf("provision took %s: %v", time.Since(start).Round(time.Millisecond), steps)
	return res
}

func (e *metricsEnv) sh(t *testing.T, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := e.host.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("on host: %v", err)
	}
	return strings.TrimSpace(out)
}

func planIDs(res *provision.Result) []string {
	ids := []string{}
	for _, st := range res.Plan {
		ids = append(ids, st.ID)
	}
	return ids
}

// starts counts the broker's "Kafka Server started" lines: one per start.
func (e *metricsEnv) starts(t *testing.T) int {
	n, err := strconv.Atoi(e.sh(t, "cat /var/log/kafka/server.log* 2>/dev/null | grep -c 'Kafka Server started' || true"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *metricsEnv) cmdline(t *testing.T, pid int) string {
	return e.sh(t, fmt.Sprintf("tr '\\0' ' ' </proc/%d/cmdline", pid))
}

// settledRSS runs the same client workload against the broker, lets it
// settle, and returns the mean of three VmRSS readings in MiB. scrape
// also reads the metrics page between readings, as Prometheus would.
func (e *metricsEnv) settledRSS(ctx context.Context, t *testing.T, pid int, scrape bool) float64 {
	t.Helper()
	bootstrap := e.spec.Bootstrap()
	lines := make([]string, 500)
	for i := range lines {
		lines[i] = fmt.Sprintf("rss-%d", i)
	}
	if err := harness.KcatProduce(ctx, bootstrap, "rss", lines...); err != nil {
		t.Fatal(err)
	}
	if _, err := harness.KcatConsumeAll(ctx, bootstrap, "rss"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second)
	var sum float64
	for i := 0; i < 3; i++ {
		if scrape {
			if _, err := getMetrics(e.spec.MetricsURL(e.host.Addr)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		kb, err := strconv.Atoi(e.sh(t, fmt.Sprintf("awk '/^VmRSS:/ {print $2}' /proc/%d/status", pid)))
		if err != nil {
			t.Fatal(err)
		}
		sum += float64(kb) / 1024
	}
	return sum / 3
}

func getMetrics(u string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(body), err
}

// sample returns the value of the series line that starts with series
// (name and labels exactly), or -1.
func sample(page, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// TestMetrics turns --metrics on and off on a namespace host (the non-systemd
// path): the JMX exporter's endpoint answers with Kafka's own metrics after
// a produce, only the broker loads the agent, a rerun changes nothing,
// turning it off costs exactly one restart, and a real Prometheus scrapes it
// with kafkaup's scrape_configs snippet.
func TestMetrics(t *testing.T) {
	e := setupMetrics(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	off := e.spec
	on := e.spec
	on.Metrics.Enabled = true
	agentFlag := "-javaagent:/opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar=9404:/etc/kafka/jmx-exporter.yaml"
	metricsURL := "http://" + net.JoinHostPort(e.host.Addr, "9404") + "/metrics"

	var rssOff, rssOn float64
	t.Run("metrics off: a plain broker, its RSS measured", func(t *testing.T) {
		res := e.provision(ctx, t, off)
		if res.MetricsURL != "" {
			t.Errorf("metrics URL %q with metrics off", res.MetricsURL)
		}
		if strings.Contains(e.cmdline(t, res.BrokerPID), "javaagent") {
			t.Error("the broker loads an agent with metrics off")
		}
		rssOff = e.settledRSS(ctx, t, res.BrokerPID, false)
		t.Logf("broker RSS without the agent: %.0f MiB", rssOff)
	})

	var pidOn int
	t.Run("metrics on: the agent is fetched from the mirror (after a 503), one restart", func(t *testing.T) {
		e.mirror.FailNext(agentMirrorPath, 1, http.StatusServiceUnavailable)
		before := e.starts(t)
		res := e.provision(ctx, t, on)
		if got := strings.Join(planIDs(res), " "); got != "metrics-agent config service" {
			t.Errorf("plan: %s", got)
		}
		if got := e.starts(t) - before; got != 1 {
			t.Errorf("the broker started %d times, want 1", got)
		}
		if res.MetricsURL != metricsURL {
			t.Errorf("Result.MetricsURL = %q, want %q", res.MetricsURL, metricsURL)
		}
		if got := requestsFor(e.mirror, agentMirrorPath); strings.Join(got, " ") != "503 200" {
			t.Errorf("agent downloads: %q, want a 503 then a 200", got)
		}
		if got := e.sh(t, "sha256sum /opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar | cut -d' ' -f1"); got != provision.PinnedAgentSHA256["1.0.1"] {
			t.Errorf("jar on the host: sha256 %s", got)
		}
		pidOn = res.BrokerPID
		if cmd := e.cmdline(t, pidOn); !strings.Contains(cmd, agentFlag) || !strings.Contains(cmd, " kafka.Kafka ") {
			t.Errorf("broker command line lacks %s (or kafka.Kafka):\n%s", agentFlag, cmd)
		}
	})

	t.Run("the endpoint counts messages per topic", func(t *testing.T) {
		if err := harness.KcatProduce(ctx, e.spec.Bootstrap(), "metrics", "a", "b", "c"); err != nil {
			t.Fatal(err)
		}
		var page string
		deadline := time.Now().Add(30 * time.Second)
		for {
			var err error
			page, err = getMetrics(metricsURL)
			if err != nil {
				t.Fatal(err)
			}
			if sample(page, `kafka_server_brokertopicmetrics_messagesin_total{topic="metrics"}`) == 3 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		for series, want := range map[string]float64{
			`kafka_server_brokertopicmetrics_messagesin_total{topic="metrics"}`: 3,
			`kafka_controller_kafkacontroller_activecontrollercount`:            1,
			`kafka_server_replicamanager_underreplicatedpartitions`:             0,
		} {
			if got := sample(page, series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		for _, series := range []string{
			`kafka_server_brokertopicmetrics_messagesin_total`, `kafka_server_brokertopicmetrics_bytesin_total{topic="metrics"}`,
			`kafka_server_brokertopicmetrics_bytesout_total`, `kafka_server_replicamanager_isrshrinks_total`,
			`kafka_network_requestmetrics_totaltimems{quantile="0.99",request="Produce"}`,
			`kafka_network_requestmetrics_totaltimems_count{request="FetchConsumer"}`,
			`jvm_memory_used_bytes{area="heap"}`,
		} {
			if sample(page, series) < 0 {
				t.Errorf("no %s", series)
			}
		}
		if !strings.Contains(page, "jvm_gc_collection_seconds_count{") {
			t.Error("no GC metrics")
		}
		n := 0
		for _, l := range strings.Split(page, "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		t.Logf("the metrics page has %d series", n)
		if n > 400 {
			t.Errorf("%d series: a rule exports more than it should", n)
		}
	})

	t.Run("tools on the host do not load the agent", func(t *testing.T) {
		out := e.sh(t, "/opt/kafka/current/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list 2>&1")
		if !strings.Contains(out, "metrics") {
			t.Errorf("kafka-topics.sh beside the agent's port: %s", out)
		}
		if out := e.sh(t, "bash -lc 'echo ${KAFKA_OPTS:-unset}'"); out != "unset" {
			t.Errorf("KAFKA_OPTS leaks into login shells: %s", out)
		}
	})

	var rssDelta float64
	t.Run("the agent's memory cost", func(t *testing.T) {
		rssOn = e.settledRSS(ctx, t, pidOn, true)
		rssDelta = rssOn - rssOff
		t.Logf("broker RSS: %.0f MiB without the agent, %.0f MiB with it: +%.0f MiB", rssOff, rssOn, rssDelta)
		if rssDelta > 64 {
			t.Errorf("the agent costs %.0f MiB of RSS, more than the 64 MiB aimed at", rssDelta)
		}
	})

	t.Run("rerun with metrics on plans nothing", func(t *testing.T) {
		res := e.provision(ctx, t, on)
		if len(res.Plan) != 0 || res.BrokerPID != pidOn {
			t.Errorf("plan %v, broker pid %d -> %d", planIDs(res), pidOn, res.BrokerPID)
		}
	})

	t.Run("a real Prometheus scrapes it with the snippet kafkaup metrics prints", func(t *testing.T) {
		r := e.cli.Run(ctx, "metrics", metricsName, "--json")
		harness.MustSucceed(t, r)
		var out struct {
			Result struct {
				URLs         []string `json:"urls"`
				ScrapeConfig string   `json:"scrape_config"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || len(out.Result.URLs) != 1 || out.Result.URLs[0] != metricsURL {
			t.Fatalf("kafkaup metrics: %v\n%s", err, r.Stdout)
		}
		prometheus(ctx, t, out.Result.ScrapeConfig, func() {
			_ = harness.KcatProduce(ctx, e.spec.Bootstrap(), "metrics", "p")
		})
	})

	t.Run("metrics off: the agent leaves the command line, one restart", func(t *testing.T) {
		before := e.starts(t)
		res := e.provision(ctx, t, off)
		if got := strings.Join(planIDs(res), " "); got != "config service" {
			t.Errorf("plan: %s", got)
		}
		if got := e.starts(t) - before; got != 1 {
			t.Errorf("the broker started %d times, want 1", got)
		}
		if cmd := e.cmdline(t, res.BrokerPID); strings.Contains(cmd, "javaagent") || res.BrokerPID == pidOn {
			t.Errorf("pid %d -> %d, command line still loads the agent:\n%s", pidOn, res.BrokerPID, cmd)
		}
		if _, err := getMetrics(metricsURL); err == nil {
			t.Error("port 9404 still answers")
		}
		if out := e.sh(t, "ls /etc/kafka/jmx-exporter.yaml 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("rule file left: %s", out)
		}
		if out := e.sh(t, "grep -c KAFKA_OPTS /etc/kafka/kafka.env || true"); out != "0" {
			t.Errorf("kafka.env still sets KAFKA_OPTS")
		}
		res = e.provision(ctx, t, off)
		if len(res.Plan) != 0 {
			t.Errorf("rerun with metrics off: plan %v", planIDs(res))
		}
		t.Logf("broker RSS without the agent again: %.0f MiB", e.settledRSS(ctx, t, res.BrokerPID, false))
	})

	t.Run("air-gapped: the agent uploaded from this machine", func(t *testing.T) {
		e.sh(t, "rm -r /opt/kafka/jmx-exporter")
		s := on
		s.Metrics.AgentURL, s.Metrics.LocalAgent = "", e.jar
		downloads := len(requestsFor(e.mirror, agentMirrorPath))
		res := e.provision(ctx, t, s)
		if got := strings.Join(planIDs(res), " "); got != "metrics-agent config service" || !strings.HasPrefix(res.Plan[0].Title, "upload") {
			t.Errorf("plan: %s (%s)", got, res.Plan[0].Title)
		}
		if got := len(requestsFor(e.mirror, agentMirrorPath)); got != downloads {
			t.Errorf("the mirror was asked for the agent (%d requests, %d before)", got, downloads)
		}
		if page, err := getMetrics(metricsURL); err != nil || sample(page, `kafka_controller_kafkacontroller_activecontrollercount`) != 1 {
			t.Errorf("endpoint after the upload: %v", err)
		}
	})
}

// prometheus runs Debian's prometheus on loopback with the scrape snippet,
// calls tick every half second while it waits, and queries the message
// rate through the HTTP API until it is above zero.
func prometheus(ctx context.Context, t *testing.T, scrape string, tick func()) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (test/deps.sh installs Debian's package)")
	}
	dir := t.TempDir()
	cfg := "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n" + scrape
	t.Logf("prometheus.yml:\n%s", cfg)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill() // the process this test started, by its handle
		cmd.Wait()
	}()

	const query = `rate(kafka_server_brokertopicmetrics_messagesin_total{topic="metrics"}[1m])`
	last := "no answer yet"
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		tick()
		time.Sleep(500 * time.Millisecond)
		rate, up, err := queryPrometheus(addr, query)
		last = fmt.Sprintf("rate %v, up %v, err %v", rate, up, err)
		if err == nil && rate > 0 && up == 1 {
			t.Logf("Prometheus: %s = %.3f messages/s (target up)", query, rate)
			return
		}
	}
	out, _ := os.ReadFile(logFile.Name())
	t.Fatalf("Prometheus never saw messages coming in: %s\n%s", last, tail(string(out), 3000))
}

// queryPrometheus returns the first value of query and of up for the job.
func queryPrometheus(addr, query string) (rate, up float64, err error) {
	get := func(q string) (float64, error) {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" || len(r.Data.Result) == 0 {
			return 0, fmt.Errorf("%s: status %s, %d results", q, r.Status, len(r.Data.Result))
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		return strconv.ParseFloat(s, 64)
	}
	if up, err = get(`up{job="kafkaup-` + metricsName + `"}`); err != nil {
		return 0, 0, err
	}
	rate, err = get(query)
	return rate, up, err
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
