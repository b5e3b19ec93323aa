package jmxagent

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The digest the product pins for 1.0.1 (provision.PinnedAgentSHA256);
// testenv does not import product code.
const sha101 = "7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1"

func TestGet(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches from Maven Central")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	jar, err := Get(ctx, "1.0.1", sha101)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(jar, "/jmx-exporter/1.0.1/jmx_prometheus_javaagent-1.0.1.jar") {
		t.Errorf("cached at %s", jar)
	}
	if _, err := Get(ctx, "1.0.1", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("a wrong pin was accepted: %v", err)
	}
	if _, err := Get(ctx, "1.0.1/../x", sha101); err == nil {
		t.Error("bad version accepted")
	}
}
