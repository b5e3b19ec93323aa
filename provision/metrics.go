package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// Metrics is the broker's Prometheus endpoint (--metrics, off by default):
// the Prometheus JMX exporter runs as a Java agent in the broker's JVM, and
// only there (kafka-topics.sh and the other tools on the host never load it,
// or they would fail to bind its port). It serves the metrics that matter
// for a small broker, chosen by kafkaup's rule file, plus the JVM's own.
type Metrics struct {
	Enabled bool
	Port    int // where the agent serves /metrics on every interface; DefaultMetricsPort

	// AgentVersion is the io.prometheus.jmx:jmx_prometheus_javaagent
	// release. Its jar is checked against AgentSHA256, or kafkaup's pin for
	// the version (PinnedAgentSHA256).
	AgentVersion string
	AgentURL     string // a mirror's URL of the jar; default Maven Central
	AgentSHA256  string // expected hex digest; default the pin
	LocalAgent   string // a jar on this machine, uploaded over SFTP (air-gapped hosts)
}

// Defaults for Metrics.
const (
	DefaultMetricsPort  = 9404
	DefaultAgentVersion = "1.0.1"
)

// PinnedAgentSHA256 holds the sha256 of the agent jars kafkaup knows, by
// version, taken from Maven Central once (whose .sha1 agreed) and kept
// here: a download is checked against this, never against a checksum
// fetched beside it.
var PinnedAgentSHA256 = map[string]string{
	"1.0.1": "7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1",
}

// DefaultMetrics is the metrics setting of DefaultSpec: off, with the
// pinned agent and port ready for when it is turned on.
func DefaultMetrics() Metrics {
	return Metrics{Port: DefaultMetricsPort, AgentVersion: DefaultAgentVersion}
}

// SHA256 is the digest the agent jar must have: AgentSHA256 when given,
// else the pin for AgentVersion ("" when there is none).
func (m Metrics) SHA256() string {
	if m.AgentSHA256 != "" {
		return m.AgentSHA256
	}
	return PinnedAgentSHA256[m.AgentVersion]
}

// AgentJarName is the jar's file name, e.g. jmx_prometheus_javaagent-1.0.1.jar.
func (m Metrics) AgentJarName() string { return "jmx_prometheus_javaagent-" + m.AgentVersion + ".jar" }

// AgentURLs lists where the host downloads the jar from, in order: the
// mirror given, else Maven Central under both of its names.
func (m Metrics) AgentURLs() []string {
	if m.AgentURL != "" {
		return []string{m.AgentURL}
	}
	p := "/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/" + m.AgentVersion + "/" + m.AgentJarName()
	return []string{"https://repo1.maven.org" + p, "https://repo.maven.apache.org" + p}
}

// MetricsAgentPath is where the agent jar lives on the host. The version is
// in the name, so another version changes the broker's command line (and
// so restarts it) while the old jar stays in place until then.
func (s Spec) MetricsAgentPath() string {
	return s.InstallDir + "/jmx-exporter/" + s.Metrics.AgentJarName()
}

// MetricsRulesFile is the agent's rule file, a managed file like
// server.properties.
func (s Spec) MetricsRulesFile() string { return s.ConfigDir + "/jmx-exporter.yaml" }

// JavaAgent is the broker's -javaagent: value, JAR=PORT:RULES ("" with
// metrics off).
func (s Spec) JavaAgent() string {
	if !s.Metrics.Enabled {
		return ""
	}
	return s.MetricsAgentPath() + "=" + strconv.Itoa(s.Metrics.Port) + ":" + s.MetricsRulesFile()
}

// MetricsTarget is the host:port Prometheus scrapes for the broker at host
// (IPv6 literals bracketed).
func (s Spec) MetricsTarget(host string) string {
	return net.JoinHostPort(host, strconv.Itoa(s.Metrics.Port))
}

// MetricsURL is the broker's metrics endpoint at host, e.g.
// http://203.0.113.7:9404/metrics.
func (s Spec) MetricsURL(host string) string {
	return "http://" + s.MetricsTarget(host) + MetricsPath
}

// MetricsPath is where the agent serves its metrics.
const MetricsPath = "/metrics"

// ScrapeConfig returns a Prometheus configuration snippet, the whole
// scrape_configs section, that scrapes the brokers at hosts as job (e.g.
// the cluster's name). Append the job under an existing scrape_configs by
// leaving out the first line.
func (s Spec) ScrapeConfig(job string, hosts []string) string {
	var b strings.Builder
	b.WriteString("scrape_configs:\n")
	fmt.Fprintf(&b, "  - job_name: %s\n", yamlQuote(job))
	fmt.Fprintf(&b, "    metrics_path: %s\n", MetricsPath)
	b.WriteString("    static_configs:\n      - targets:\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "          - %s\n", yamlQuote(s.MetricsTarget(h)))
	}
	return b.String()
}

// yamlQuote writes s as a single-quoted YAML scalar.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var (
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	jarFileRE  = regexp.MustCompile(`\.jar$`)
	httpURLRE  = regexp.MustCompile(`^https?://[^\s'"\\]+$`)
	agentVerRE = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
)

// problems lists what is wrong with an enabled metrics setting, as advice.
// The port's clash with the broker's other ports is checked with those.
func (m Metrics) problems() []error {
	if !m.Enabled {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !agentVerRE.MatchString(m.AgentVersion) {
		bad("--metrics-agent-version %q is not a release number like %s", m.AgentVersion, DefaultAgentVersion)
	}
	if m.AgentURL != "" && m.LocalAgent != "" {
		bad("--metrics-agent-url and --metrics-agent-jar both given: choose one source for the agent")
	}
	if m.AgentURL != "" && (!httpURLRE.MatchString(m.AgentURL) || !jarFileRE.MatchString(m.AgentURL)) {
		bad("--metrics-agent-url %q must be an http:// or https:// URL of the .jar file", m.AgentURL)
	}
	switch {
	case m.AgentSHA256 != "" && !sha256RE.MatchString(m.AgentSHA256):
		bad("--metrics-agent-sha256 must be 64 lower-case hex digits (sha256sum of the jar)")
	case m.SHA256() == "":
		bad("kafkaup pins the agent's checksum only for jmx_prometheus_javaagent %s; for %s pass --metrics-agent-sha256 with the jar's sha256", pinnedVersions(), m.AgentVersion)
	}
	return errs
}

func pinnedVersions() string {
	var vs []string
	for v := range PinnedAgentSHA256 {
		vs = append(vs, v)
	}
	return strings.Join(vs, ", ")
}

// agentNeeded says whether the agent jar must be (re)placed on the host:
// Observe hashes it with the managed files.
func agentNeeded(s Spec, f Facts) (bool, string) {
	if !s.Metrics.Enabled {
		return false, ""
	}
	switch got := f.FileSHA256[s.MetricsAgentPath()]; got {
	case s.Metrics.SHA256():
		return false, ""
	case "", "-":
		return true, "not on the host"
	default:
		return true, "the jar on the host has another sha256"
	}
}

// DialFunc opens a TCP connection; an SSH tunnel's DialContext opens it
// from the host.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// FetchMetrics gets the broker's metrics page from the host itself
// (127.0.0.1 through dial, an SSH tunnel), so it works whatever the
// firewall lets through. It waits up to wait for the agent to answer.
func FetchMetrics(ctx context.Context, dial DialFunc, s Spec, wait time.Duration) ([]byte, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 30 * time.Second}
	url := s.MetricsURL("127.0.0.1")
	deadline := time.Now().Add(wait)
	for {
		body, err := getMetrics(ctx, client, url)
		if err == nil || time.Now().After(deadline) {
			return body, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func getMetrics(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return body, nil
}

// checkMetrics proves the agent serves the broker's and the JVM's metrics,
// from the host (through tunnel).
func checkMetrics(ctx context.Context, h Host, s Spec) error {
	tunnel, ok := h.(Tunnel)
	if !ok {
		return errNoTunnel
	}
	body, err := FetchMetrics(ctx, tunnel.DialContext, s, 30*time.Second)
	if err != nil {
		return fmt.Errorf("the broker's metrics endpoint does not answer on the host (port %d): %w; the broker's log says why (kafkaup logs)", s.Metrics.Port, err)
	}
	for _, want := range []string{"kafka_server_brokertopicmetrics_messagesin_total", "jvm_memory_used_bytes"} {
		if !hasMetric(body, want) {
			return fmt.Errorf("port %d on the host answers without the broker's %s: is another program serving there? Pick a free port with --metrics-port and rerun", s.Metrics.Port, want)
		}
	}
	return nil
}

// errNoTunnel: the connection cannot reach the host's ports (only fakes
// in tests lack a tunnel).
var errNoTunnel = errors.New("this connection to the host has no tunnel to reach the endpoint through")

// hasMetric says whether the Prometheus text page has a sample of name.
func hasMetric(page []byte, name string) bool {
	for _, line := range bytes.Split(page, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '{') {
			return true
		}
	}
	return false
}

// agentStep puts the agent jar on the host: downloaded there (with curl
// still to install, after the packages) or uploaded from LocalAgent. It
// restarts nothing: the env file that loads the jar is a managed file.
func agentStep(s Spec, f Facts, why string, waitForCurl bool) Step {
	m := s.Metrics
	fetch := scripts.FetchAgent{AgentPath: s.MetricsAgentPath(), URLs: m.AgentURLs(), SHA256: m.SHA256(), DownloadRetries: DownloadRetries}
	st := Step{ID: "metrics-agent", Title: fmt.Sprintf("install the Prometheus JMX exporter agent %s (sha256 verified)", m.AgentVersion), Reason: why}
	if m.LocalAgent != "" {
		fetch.LocalAgent = f.LoginHome + "/.kafkaup-staging/jmx-exporter/" + m.AgentJarName()
		fetch.URLs = nil
		st.Uploads = []Upload{{RemotePath: fetch.LocalAgent, LocalPath: m.LocalAgent, Mode: 0o600}}
		st.Title = fmt.Sprintf("upload and install the Prometheus JMX exporter agent %s (sha256 verified)", m.AgentVersion)
	}
	if !waitForCurl {
		st.Group = "download"
	}
	st.Script = fetch
	return st
}
