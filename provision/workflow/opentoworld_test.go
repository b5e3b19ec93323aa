package workflow

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision/security"
)

// TestOpenToWorld: 0.0.0.0/0 needs TLS and a login, or --open-to-world
// (which warns); restricted CIDRs need neither.
func TestOpenToWorld(t *testing.T) {
	secured := security.Mode{TLS: true, SCRAM: true}
	cases := []struct {
		name   string
		cidrs  []string
		sec    security.Mode
		flag   bool
		refuse string // in the error; "" means allowed
		warn   string // in the warning
	}{
		{"restricted, plaintext", []string{"203.0.113.7/32"}, security.Mode{}, false, "", ""},
		{"world, plaintext", []string{"203.0.113.7/32", "0.0.0.0/0"}, security.Mode{}, false, "no authentication and no encryption", ""},
		{"world IPv6, TLS only", []string{"::/0"}, security.Mode{TLS: true}, false, "TLS but no authentication", ""},
		{"world, SCRAM only", []string{"0.0.0.0/0"}, security.Mode{SCRAM: true}, false, "unencrypted", ""},
		{"world, TLS and SCRAM", []string{"0.0.0.0/0"}, secured, false, "", ""},
		{"world, plaintext, --open-to-world", []string{"0.0.0.0/0"}, security.Mode{}, true, "", "open to the whole internet with no authentication"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var warn printer
			err := CheckOpenToWorld(&warn, "dev", tc.cidrs, tc.sec, tc.flag)
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse) || !strings.Contains(err.Error(), "--tls --auth scram")):
				t.Fatalf("want a refusal with %q and the way out, got %v", tc.refuse, err)
			}
			if !strings.Contains(warn.String(), tc.warn) || (tc.warn == "" && warn.Len() > 0) {
				t.Errorf("warning %q, want %q", warn.String(), tc.warn)
			}
		})
	}
}

// printer collects Printf lines.
type printer struct{ bytes.Buffer }

func (p *printer) Printf(format string, args ...any) { fmt.Fprintf(&p.Buffer, format+"\n", args...) }
