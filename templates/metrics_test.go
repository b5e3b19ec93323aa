package templates

import (
	"strings"
	"testing"
)

func TestGoldenMetrics(t *testing.T) {
	env, err := RenderEnv(Env{Heap: "400m", LogDir: "/var/log/kafka",
		JavaAgent: "/opt/kafka/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar=9404:/etc/kafka/jmx-exporter.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "kafka.env-metrics", env)
	rules, err := RenderMetricsRules()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "jmx-exporter.yaml", rules)
}

// TestMetricsRulesStayNarrow: every MBean read is named, and every rule
// matches one attribute of a named metric, so no catch-all rule exports
// all of Kafka's MBeans.
func TestMetricsRulesStayNarrow(t *testing.T) {
	rules, _ := RenderMetricsRules()
	text := string(rules)
	for _, want := range []string{"lowercaseOutputName: true", "includeObjectNames:", "\nrules:\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("rule file lacks %q", want)
		}
	}
	patterns := 0
	for _, line := range strings.Split(text, "\n") {
		p, ok := strings.CutPrefix(strings.TrimSpace(line), "- pattern: ")
		if !ok {
			continue
		}
		patterns++
		if strings.Contains(p, ".*") || !strings.Contains(p, "name=") || !strings.Contains(p, "><>") {
			t.Errorf("pattern %s is not pinned to named MBeans and one attribute", p)
		}
	}
	if patterns == 0 {
		t.Fatal("no rules")
	}
	if strings.Contains(text, `"*:*"`) || strings.Contains(text, "- pattern: '.*'") {
		t.Error("a catch-all is in the rule file")
	}
}

func TestEnvRefusesABrokenAgentValue(t *testing.T) {
	for _, bad := range []string{`/a.jar=9404:/r" -Dx="`, "/a b.jar=9404:/r", "/a.jar=9404:/r\nKAFKA_HEAP_OPTS=-Xmx8g"} {
		if _, err := RenderEnv(Env{Heap: "400m", LogDir: "/l", JavaAgent: bad}); err == nil {
			t.Errorf("java agent %q accepted", bad)
		}
	}
}
