package security

import "testing"

func TestMode(t *testing.T) {
	cases := []struct {
		tls      bool
		auth     string
		protocol string
		secured  bool
	}{
		{false, "none", "PLAINTEXT", false},
		{false, "", "PLAINTEXT", false},
		{true, "none", "SSL", true},
		{false, "scram", "SASL_PLAINTEXT", true},
		{true, "SCRAM", "SASL_SSL", true},
	}
	for _, tc := range cases {
		m, err := New(tc.tls, tc.auth)
		if err != nil {
			t.Fatal(err)
		}
		if m.Protocol() != tc.protocol || m.Secured() != tc.secured {
			t.Errorf("New(%v, %q) = %+v: protocol %s secured %v", tc.tls, tc.auth, m, m.Protocol(), m.Secured())
		}
		if back, _ := New(m.TLS, m.Auth()); back != m {
			t.Errorf("round trip of %+v through --auth %s gave %+v", m, m.Auth(), back)
		}
	}
	if _, err := New(false, "ldap"); err == nil {
		t.Error("--auth ldap accepted")
	}
}
