package provision

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

func metricsSpec() Spec {
	s := testSpec()
	s.Metrics.Enabled = true
	return s
}

// convergedMetrics is a converged host for s, with the agent jar in place
// when s wants metrics.
func convergedMetrics(s Spec) Facts {
	f := converged(s)
	if s.Metrics.Enabled {
		f.FileSHA256[s.MetricsAgentPath()] = s.Metrics.SHA256()
	}
	return f
}

func findStep(steps []Step, id string) (Step, bool) {
	for _, st := range steps {
		if st.ID == id {
			return st, true
		}
	}
	return Step{}, false
}

// envUpload is the env file the plan writes ("" when it writes none).
func envUpload(t *testing.T, s Spec, steps []Step) string {
	t.Helper()
	st, ok := findStep(steps, "config")
	if !ok {
		return ""
	}
	in := st.Script.(scripts.InstallFiles)
	for i, d := range in.Dest {
		if d == s.EnvFile() {
			return string(st.Uploads[i].Content)
		}
	}
	return ""
}

func TestPlanMetrics(t *testing.T) {
	on, off := metricsSpec(), testSpec()
	agentFlag := "-javaagent:/opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar=9404:/etc/kafka/jmx-exporter.yaml"
	cases := []struct {
		name    string
		spec    Spec
		facts   Facts
		want    []string
		action  string   // service action, when a service step is planned
		writes  []string // files the config step writes
		removes []string
		agent   string // "on": the env file written loads the agent; "off": it does not
	}{
		{name: "metrics on from fresh", spec: on, facts: freshHost(),
			want:   []string{"wait-apt", "packages", "kafka", "metrics-agent", "dirs", "swap", "config", "format", "service"},
			action: "start", writes: []string{on.ConfigFile(), on.EnvFile(), on.MetricsRulesFile(), on.UnitFile()}, agent: "on"},
		{name: "on -> on: nothing to do", spec: on, facts: convergedMetrics(on), want: []string{}},
		{name: "off -> off: nothing to do", spec: off, facts: convergedMetrics(off), want: []string{}},
		{name: "off -> on: agent, rules and env, one restart", spec: on, facts: convergedMetrics(off),
			want: []string{"metrics-agent", "config", "service"}, action: "restart",
			writes: []string{on.EnvFile(), on.MetricsRulesFile()}, agent: "on"},
		{name: "on -> off: agent out of the env, rules removed, one restart", spec: off, facts: convergedMetrics(on),
			want: []string{"config", "service"}, action: "restart",
			writes: []string{off.EnvFile()}, removes: []string{off.MetricsRulesFile()}, agent: "off"},
		{name: "new port: env only, one restart", spec: func() Spec { s := metricsSpec(); s.Metrics.Port = 9500; return s }(), facts: convergedMetrics(on),
			want: []string{"config", "service"}, action: "restart", writes: []string{on.EnvFile()}, agent: "on"},
		{name: "jar gone: put back, no restart", spec: on,
			facts: func() Facts { f := convergedMetrics(on); f.FileSHA256[on.MetricsAgentPath()] = "-"; return f }(),
			want:  []string{"metrics-agent"}},
		{name: "jar damaged: replaced, no restart", spec: on,
			facts: func() Facts {
				f := convergedMetrics(on)
				f.FileSHA256[on.MetricsAgentPath()] = strings.Repeat("e", 64)
				return f
			}(),
			want: []string{"metrics-agent"}},
		{name: "another agent version: new jar beside the old, env, restart", spec: func() Spec {
			s := metricsSpec()
			s.Metrics.AgentVersion, s.Metrics.AgentSHA256 = "1.1.0", strings.Repeat("1", 64)
			return s
		}(), facts: convergedMetrics(on), want: []string{"metrics-agent", "config", "service"}, action: "restart", writes: []string{on.EnvFile()}, agent: "on"},
		{name: "metrics off, rules already gone: nothing", spec: off,
			facts: func() Facts { f := convergedMetrics(off); f.FileSHA256[off.MetricsRulesFile()] = "-"; return f }(), want: []string{}},
		{name: "broker down with metrics on: start only", spec: on,
			facts: func() Facts { f := convergedMetrics(on); f.ServiceActive, f.BrokerPID = false, 0; return f }(),
			want:  []string{"service"}, action: "start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.spec.Validate(); err != nil {
				t.Fatal(err)
			}
			steps, err := Plan(c.spec, c.facts, "cluster-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(steps); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("plan = %v, want %v", got, c.want)
			}
			services := 0
			for _, st := range steps {
				if svc, ok := st.Script.(scripts.Service); ok {
					services++
					if svc.Action != c.action {
						t.Errorf("service action %q, want %q", svc.Action, c.action)
					}
				}
			}
			if services > 1 {
				t.Errorf("%d service steps", services)
			}
			if st, ok := findStep(steps, "config"); ok {
				in := st.Script.(scripts.InstallFiles)
				if !reflect.DeepEqual(in.Dest, c.writes) || !reflect.DeepEqual(in.Remove, c.removes) {
					t.Errorf("config writes %v and removes %v, want %v and %v", in.Dest, in.Remove, c.writes, c.removes)
				}
			}
			switch env := envUpload(t, c.spec, steps); c.agent {
			case "on":
				if want := strings.Replace(agentFlag, "9404", strconv.Itoa(c.spec.Metrics.Port), 1); c.spec.Metrics.AgentVersion == DefaultAgentVersion && !strings.Contains(env, `KAFKA_OPTS="`+want+`"`) {
					t.Errorf("env file does not load the agent:\n%s", env)
				}
			case "off":
				if strings.Contains(env, "javaagent") || strings.Contains(env, "KAFKA_OPTS") {
					t.Errorf("env file still loads the agent:\n%s", env)
				}
			}
		})
	}
}

// TestPlanMetricsAgentStep: the jar comes from the pinned Maven Central
// URLs (or the mirror given) checked against the pin, runs beside the other
// downloads unless curl is still to install, and an uploaded jar needs no
// curl at all.
func TestPlanMetricsAgentStep(t *testing.T) {
	s := metricsSpec()
	steps, _ := Plan(s, freshHost(), "c")
	st, _ := findStep(steps, "metrics-agent")
	in := st.Script.(scripts.FetchAgent)
	if in.SHA256 != PinnedAgentSHA256["1.0.1"] || in.AgentPath != "/opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar" || in.DownloadRetries != DownloadRetries {
		t.Errorf("agent step: %+v", in)
	}
	wantURL := "https://repo1.maven.org/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/1.0.1/jmx_prometheus_javaagent-1.0.1.jar"
	if len(in.URLs) != 2 || in.URLs[0] != wantURL {
		t.Errorf("URLs %v, want Maven Central first (%s)", in.URLs, wantURL)
	}
	if st.Group != "download" {
		t.Errorf("group %q: the agent should download beside Kafka", st.Group)
	}

	// Kafka installed, curl missing: curl is installed for the agent, which waits for it.
	f := convergedMetrics(testSpec())
	f.HasCurl = false
	steps, _ = Plan(s, f, "c")
	if got := ids(steps); !reflect.DeepEqual(got, []string{"wait-apt", "packages", "metrics-agent", "config", "service"}) {
		t.Fatalf("plan = %v", got)
	}
	if !steps[1].Script.(scripts.InstallPackages).WantCurl || steps[2].Group != "" {
		t.Errorf("curl wanted %v, agent group %q", steps[1].Script.(scripts.InstallPackages).WantCurl, steps[2].Group)
	}

	s.Metrics.AgentURL = "http://10.0.2.2:8080/maven2/jmx_prometheus_javaagent-1.0.1.jar"
	steps, _ = Plan(s, freshHost(), "c")
	st, _ = findStep(steps, "metrics-agent")
	if got := st.Script.(scripts.FetchAgent).URLs; !reflect.DeepEqual(got, []string{s.Metrics.AgentURL}) {
		t.Errorf("mirror override: URLs %v", got)
	}

	s.Metrics.AgentURL, s.Metrics.LocalAgent = "", "/home/me/jmx_prometheus_javaagent-1.0.1.jar"
	steps, _ = Plan(s, f, "c")
	if got := ids(steps); !reflect.DeepEqual(got, []string{"metrics-agent", "config", "service"}) {
		t.Fatalf("uploaded agent without curl: plan = %v (no curl needed)", got)
	}
	in = steps[0].Script.(scripts.FetchAgent)
	if len(steps[0].Uploads) != 1 || steps[0].Uploads[0].RemotePath != in.LocalAgent || steps[0].Uploads[0].LocalPath != s.Metrics.LocalAgent ||
		len(in.URLs) != 0 || !strings.HasPrefix(in.LocalAgent, "/home/ubuntu/.kafkaup-staging/") || !strings.Contains(steps[0].Title, "upload") {
		t.Errorf("uploaded agent step: %+v, uploads %+v", in, steps[0].Uploads)
	}
}

// TestObserveHashesTheAgent: the jar is hashed with the managed files only
// while metrics are on; the rules file always (so turning off removes it).
func TestObserveHashesTheAgent(t *testing.T) {
	on := metricsSpec()
	paths := ManagedPaths(on)
	if !contains(paths, on.MetricsAgentPath()) || !contains(paths, on.MetricsRulesFile()) {
		t.Errorf("with metrics: %v", paths)
	}
	paths = ManagedPaths(testSpec())
	if contains(paths, on.MetricsAgentPath()) || !contains(paths, on.MetricsRulesFile()) {
		t.Errorf("without metrics: %v", paths)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestValidateMetrics(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Spec)
		want string // "" for valid
	}{
		{"defaults", func(s *Spec) {}, ""},
		{"off ignores its settings", func(s *Spec) { s.Metrics = Metrics{Port: 9092, AgentVersion: "x", AgentURL: "ftp://x"} }, ""},
		{"port of the broker", func(s *Spec) { s.Metrics.Enabled, s.Metrics.Port = true, 9092 }, "broker port and metrics port are both 9092"},
		{"port of the controller", func(s *Spec) { s.Metrics.Enabled, s.Metrics.Port = true, 9093 }, "controller port and metrics port"},
		{"port of the internal listener", func(s *Spec) { s.Metrics.Enabled, s.Metrics.Port, s.Security.TLS = true, 9094, true }, "internal port and metrics port"},
		{"internal port unused without security", func(s *Spec) { s.Metrics.Enabled, s.Metrics.Port = true, 9094 }, ""},
		{"not a port", func(s *Spec) { s.Metrics.Enabled, s.Metrics.Port = true, 70000 }, "metrics port 70000 is not a TCP port"},
		{"no port", func(s *Spec) { s.Metrics = Metrics{Enabled: true, AgentVersion: DefaultAgentVersion} }, "metrics port 0"},
		{"unpinned version", func(s *Spec) { s.Metrics.Enabled, s.Metrics.AgentVersion = true, "1.2.0" }, "--metrics-agent-sha256"},
		{"unpinned version with its sha256", func(s *Spec) {
			s.Metrics.Enabled, s.Metrics.AgentVersion, s.Metrics.AgentSHA256 = true, "1.2.0", strings.Repeat("a", 64)
		}, ""},
		{"bad version", func(s *Spec) { s.Metrics.Enabled, s.Metrics.AgentVersion = true, "latest" }, "--metrics-agent-version"},
		{"bad sha256", func(s *Spec) { s.Metrics.Enabled, s.Metrics.AgentSHA256 = true, strings.Repeat("A", 64) }, "64 lower-case hex"},
		{"url not a jar", func(s *Spec) { s.Metrics.Enabled, s.Metrics.AgentURL = true, "https://mirror/agent.tgz" }, "--metrics-agent-url"},
		{"url not http", func(s *Spec) { s.Metrics.Enabled, s.Metrics.AgentURL = true, "ftp://mirror/agent.jar" }, "--metrics-agent-url"},
		{"url and upload", func(s *Spec) {
			s.Metrics.Enabled, s.Metrics.AgentURL, s.Metrics.LocalAgent = true, "https://mirror/a.jar", "/tmp/a.jar"
		}, "choose one source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSpec()
			c.edit(&s)
			err := s.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestMetricsURLAndScrapeConfig(t *testing.T) {
	s := metricsSpec()
	if got := s.MetricsURL("203.0.113.7"); got != "http://203.0.113.7:9404/metrics" {
		t.Errorf("MetricsURL = %s", got)
	}
	if got := s.MetricsURL("2001:db8::1"); got != "http://[2001:db8::1]:9404/metrics" {
		t.Errorf("IPv6 MetricsURL = %s", got)
	}
	got := s.ScrapeConfig("kafkaup-demo's", []string{"10.0.0.1", "kafka-2.example.com"})
	want := `scrape_configs:
  - job_name: 'kafkaup-demo''s'
    metrics_path: /metrics
    static_configs:
      - targets:
          - '10.0.0.1:9404'
          - 'kafka-2.example.com:9404'
`
	if got != want {
		t.Errorf("ScrapeConfig =\n%s\nwant\n%s", got, want)
	}
	res, _ := Provision(context.Background(), nil, func() Spec { s := metricsSpec(); s.KafkaVersion = "bad"; return s }(), "h", Options{})
	if res.MetricsURL != "http://broker.example.com:9404/metrics" {
		t.Errorf("Result.MetricsURL = %q", res.MetricsURL)
	}
}

// tunnelHost is a Host whose tunnel reaches a local test server, whatever
// address is asked for.
type tunnelHost struct {
	Host
	addr   string
	dialed []string
}

func (h *tunnelHost) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h.dialed = append(h.dialed, addr)
	var d net.Dialer
	return d.DialContext(ctx, network, h.addr)
}

func TestCheckMetrics(t *testing.T) {
	page := "# TYPE jvm_memory_used_bytes gauge\njvm_memory_used_bytes{area=\"heap\"} 1.0\nkafka_server_brokertopicmetrics_messagesin_total 0.0\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, page)
	}))
	defer srv.Close()
	h := &tunnelHost{addr: srv.Listener.Addr().String()}
	s := metricsSpec()
	ctx := context.Background()
	if err := checkMetrics(ctx, h, s); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.dialed, []string{"127.0.0.1:9404"}) {
		t.Errorf("dialed %v, want the host's own 127.0.0.1:9404", h.dialed)
	}
	page = "# another exporter\nnode_load1 0.1\n"
	if err := checkMetrics(ctx, h, s); err == nil || !strings.Contains(err.Error(), "--metrics-port") {
		t.Errorf("a page without the broker's metrics: %v", err)
	}
	srv.Close()
	start := time.Now()
	body, err := FetchMetrics(ctx, h.DialContext, s, 1500*time.Millisecond)
	if err == nil || body != nil || time.Since(start) < time.Second {
		t.Errorf("nothing listening: %q, %v after %s (should retry until the wait is over)", body, err, time.Since(start))
	}
	if err := checkMetrics(ctx, struct{ Host }{}, s); err != errNoTunnel {
		t.Errorf("no tunnel: %v", err)
	}
}

func TestHasMetric(t *testing.T) {
	page := []byte("# HELP a_total x\na_total 1\nb{x=\"y\"} 2\nab_total 3\n")
	for name, want := range map[string]bool{"a_total": true, "b": true, "a": false, "ab": false, "c": false} {
		if hasMetric(page, name) != want {
			t.Errorf("hasMetric(%q) = %v", name, !want)
		}
	}
}
