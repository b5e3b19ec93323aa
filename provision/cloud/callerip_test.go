package cloud

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// ipService is a loopback "what is my IP" service whose answer the test
// sets.
type ipService struct {
	*httptest.Server
	mu     sync.Mutex
	answer string
	status int
}

func newIPService(t *testing.T, answer string) *ipService {
	t.Helper()
	s := &ipService{answer: answer, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.WriteHeader(s.status)
		fmt.Fprintln(w, s.answer)
	}))
	t.Cleanup(s.Close)
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("test server not on loopback: %s", s.URL)
	}
	return s
}

func (s *ipService) set(answer string, status int) {
	s.mu.Lock()
	s.answer, s.status = answer, status
	s.mu.Unlock()
}

// TestCallerIPLookup: two services are asked; they must agree, one alone
// is used but said, and none answering (or an answer that is no address)
// is an error naming --allow-cidr.
func TestCallerIPLookup(t *testing.T) {
	ctx := context.Background()
	a, b := newIPService(t, "203.0.113.7"), newIPService(t, "203.0.113.7")
	var said []string
	l := CallerIPLookup{URLs: []string{a.URL, b.URL}, Logf: func(f string, args ...any) { said = append(said, fmt.Sprintf(f, args...)) }}

	if ip, err := l.Find(ctx); err != nil || ip != "203.0.113.7" || len(said) != 0 {
		t.Fatalf("both agree: %q, %v, said %q", ip, err, said)
	}

	b.set("", http.StatusServiceUnavailable)
	if ip, err := l.Find(ctx); err != nil || ip != "203.0.113.7" || len(said) != 1 || !strings.Contains(said[0], "not confirmed") || !strings.Contains(said[0], "503") {
		t.Fatalf("one fails: %q, %v, said %q", ip, err, said)
	}

	b.set("198.51.100.9", http.StatusOK)
	if _, err := l.Find(ctx); err == nil || !strings.Contains(err.Error(), "disagree") || !strings.Contains(err.Error(), "198.51.100.9") ||
		!strings.Contains(err.Error(), "--allow-cidr") {
		t.Fatalf("they disagree: %v", err)
	}

	a.set("<html>captive portal</html>", http.StatusOK)
	b.set("", http.StatusServiceUnavailable)
	_, err := l.Find(ctx)
	if err == nil || !strings.Contains(err.Error(), "captive portal") || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "--allow-cidr") {
		t.Fatalf("none answers with an address: %v", err)
	}
	t.Log(err)

	if _, err := (CallerIPLookup{URLs: []string{"checkip.example"}}).Find(ctx); err == nil || !strings.Contains(err.Error(), "not an http") {
		t.Fatalf("a URL without a scheme: %v", err)
	}
}

// TestCallerIPLookupBypassesProxy: the lookup never goes through a proxy
// from the environment (the proxy's address would be let in): it connects
// to the service itself. The dial is redirected to a loopback service, so
// no name is resolved and nothing leaves this machine.
func TestCallerIPLookupBypassesProxy(t *testing.T) {
	svc := newIPService(t, "203.0.113.7")
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	t.Setenv("NO_PROXY", "")
	var mu sync.Mutex
	var dialed []string
	l := CallerIPLookup{URLs: []string{"http://checkip.invalid/"}, dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, svc.Listener.Addr().String())
	}}
	if l.transport().Proxy != nil {
		t.Fatal("the lookup's transport has a proxy")
	}
	ip, err := l.Find(context.Background())
	if err != nil || ip != "203.0.113.7" || len(dialed) != 1 || dialed[0] != "checkip.invalid:80" {
		t.Fatalf("%q, %v; dialed %v (want the service itself, not the proxy)", ip, err, dialed)
	}
}
