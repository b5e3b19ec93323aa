package main

import (
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/state"
)

// TestOverridesOnlyWhatWasSet: a flag the user gave becomes an override; a
// flag left at its default does not (so reprovision keeps the record).
func TestOverridesOnlyWhatWasSet(t *testing.T) {
	parse := func(args ...string) state.Overrides {
		var o state.Overrides
		app := &cli.App{Flags: specFlags(), Action: func(c *cli.Context) error { o = overrides(c); return nil }}
		if err := app.Run(append([]string{"kafkaup"}, args...)); err != nil {
			t.Fatal(err)
		}
		return o
	}
	o := parse()
	if o.Heap != nil || o.TLS != nil || o.Metrics != nil || o.MetricsPort != nil || o.APTLockTimeout != nil || o.KafkaVersion != nil {
		t.Errorf("defaults became overrides: %+v", o)
	}
	o = parse("--heap", "512m", "--tls", "--metrics=false", "--metrics-port", "9500", "--apt-lock-timeout", "1m",
		"--kafka-version", "4.0.1", "--metrics-agent-url", "http://m/a.jar", "--kafka-tarball", "/t/kafka_2.13-4.0.1.tgz")
	switch {
	case o.Heap == nil || *o.Heap != "512m", o.TLS == nil || !*o.TLS, o.Metrics == nil || *o.Metrics,
		o.MetricsPort == nil || *o.MetricsPort != 9500, o.APTLockTimeout == nil || *o.APTLockTimeout != time.Minute,
		o.KafkaVersion == nil || *o.KafkaVersion != "4.0.1", o.MetricsAgentURL == nil || *o.MetricsAgentURL != "http://m/a.jar",
		o.KafkaTarball != "/t/kafka_2.13-4.0.1.tgz", o.Swap != nil:
		t.Errorf("overrides: %+v", o)
	}
}
