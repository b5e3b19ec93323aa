package cloud

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultCallerIPURLs answer with the caller's public IPv4 address as
// plain text. Two services of two companies: the second confirms the first.
var DefaultCallerIPURLs = []string{"https://checkip.amazonaws.com", "https://api.ipify.org"}

// CallerIPURLsEnv names the environment variable that replaces
// DefaultCallerIPURLs (comma-separated), e.g. a service inside a company
// network, or a loopback one in tests.
const CallerIPURLsEnv = "KAFKAUP_CALLER_IP_URLS"

// CallerIPLookup finds this machine's public IP address as the internet
// sees it, to open a security group to it. Every URL is asked at once,
// never through a proxy (a proxy would answer with its own address, which
// would then be let in). The addresses that come back must agree; one
// service that fails is said (Logf) and the others' answer used; none that
// answers is an error naming --allow-cidr.
type CallerIPLookup struct {
	// URLs are the services to ask (default DefaultCallerIPURLs).
	URLs []string
	// Timeout bounds each request (default 10s).
	Timeout time.Duration
	// Logf is told about a service that failed while another answered.
	Logf func(format string, args ...any)

	dial func(ctx context.Context, network, addr string) (net.Conn, error) // tests
}

// CheckCallerIPURLs refuses URLs that are not http(s)://HOST[...].
func CheckCallerIPURLs(urls []string) error {
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("caller-IP lookup URL %q is not an http:// or https:// URL", u)
		}
	}
	return nil
}

// transport is a transport of its own, without a proxy.
func (l CallerIPLookup) transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if l.dial != nil {
		t.DialContext = l.dial
	}
	return t
}

// Find asks every URL and returns the address they agree on.
func (l CallerIPLookup) Find(ctx context.Context) (string, error) {
	urls := l.URLs
	if len(urls) == 0 {
		urls = DefaultCallerIPURLs
	}
	if err := CheckCallerIPURLs(urls); err != nil {
		return "", err
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := &http.Client{Timeout: timeout, Transport: l.transport()}
	defer client.CloseIdleConnections()
	ips := make([]string, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ips[i], errs[i] = askCallerIP(ctx, client, u)
		}()
	}
	wg.Wait()
	return l.agree(urls, ips, errs)
}

const callerIPAdvice = "pass the addresses to allow with --allow-cidr instead (or other lookup services with --caller-ip-url or " + CallerIPURLsEnv + ")"

// agree turns the services' answers into one address.
func (l CallerIPLookup) agree(urls, ips []string, errs []error) (string, error) {
	by := map[string][]string{} // address -> the services that gave it
	var failed []string
	for i, u := range urls {
		if errs[i] != nil {
			failed = append(failed, errs[i].Error())
			continue
		}
		by[ips[i]] = append(by[ips[i]], u)
	}
	switch {
	case len(by) == 0:
		return "", fmt.Errorf("look up this machine's public IP: %s; %s", strings.Join(failed, "; "), callerIPAdvice)
	case len(by) > 1:
		var said []string
		for ip, us := range by {
			said = append(said, fmt.Sprintf("%s says %s", strings.Join(us, ", "), ip))
		}
		sort.Strings(said)
		return "", fmt.Errorf("look up this machine's public IP: the services disagree (%s): this machine may reach the internet through several addresses; %s",
			strings.Join(said, "; "), callerIPAdvice)
	}
	var ip string
	for a := range by {
		ip = a
	}
	if len(failed) > 0 && l.Logf != nil {
		l.Logf("this machine's public IP is %s by %s alone, not confirmed: %s", ip, strings.Join(by[ip], ", "), strings.Join(failed, "; "))
	}
	return ip, nil
}

// askCallerIP asks one service.
func askCallerIP(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err // *url.Error names the URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", fmt.Errorf("%s: read the answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	s := strings.TrimSpace(string(body))
	ip := net.ParseIP(s)
	if ip == nil {
		return "", fmt.Errorf("%s: the answer %q is not an IP address", url, s)
	}
	return ip.String(), nil
}
