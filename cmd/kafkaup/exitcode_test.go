package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// TestExitCodes: errors are classified by type, never by their text.
func TestExitCodes(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code int
		say  string
	}{
		{"success", nil, 0, ""},
		{"runtime failure", errors.New("describe instances: connection reset"), 1, "connection reset"},
		{"user mistake", fmt.Errorf("create: %w", provision.Inputf("--heap lots")), 2, "--heap lots"},
		{"interrupted provision", fmt.Errorf("provision: %w", &workflow.InterruptedError{Host: "h", Applied: []string{"packages"}, Cut: "kafka", Err: context.Canceled}),
			130, "after applying packages (step kafka was cut short). Every step is safe to repeat: run the same command again"},
		{"interrupted elsewhere", fmt.Errorf("run instances: %w", context.Canceled), 130, "running the same command again resumes"},
		{"remote status", exitStatus(7), 7, ""},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		if code := exitCode(tc.err, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.say) {
			t.Errorf("%s: exit %d, want %d; stderr %q", tc.name, code, tc.code, stderr.String())
		}
	}
}
