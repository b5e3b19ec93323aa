package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestNotesReachTheUser: a script's note lines (waits, retries) are shown
// as they come; every line still goes to the debug log.
func TestNotesReachTheUser(t *testing.T) {
	var out, log bytes.Buffer
	n := notes{log: &log, ui: newUI(&out, nil)}
	n.Write([]byte("kafka: kafkaup: note: attempt 1 of 5 to download URL failed: HTTP 503; retrying in 2s\n"))
	n.Write([]byte("kafka: kafkaup: sha512 verified\n"))
	if got := out.String(); got != "           attempt 1 of 5 to download URL failed: HTTP 503; retrying in 2s\n" {
		t.Errorf("shown: %q", got)
	}
	if !strings.Contains(log.String(), "note: attempt 1") || !strings.Contains(log.String(), "sha512 verified") {
		t.Errorf("debug log: %q", log.String())
	}
}
