package kafkadist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Mirror serves dists over HTTP laid out like Apache's archive:
// GET /kafka/<version>/kafka_2.13-<version>.tgz and .sha512 beside it.
// Several listeners share one handler, request log and fault list. Listen on
// loopback only (a qemu guest reaches the host's 127.0.0.1 as 10.0.2.2).
type Mirror struct {
	srv   *http.Server
	files map[string]string // URL path -> file on disk

	mu        sync.Mutex
	listeners []net.Listener
	requests  []string
	faults    map[string]fault
	closed    bool
}

// fault makes the next n GETs of a path answer status.
type fault struct{ n, status int }

// StartMirror serves the given dists, listening on each addr (e.g. "127.0.0.1:0").
func StartMirror(dists []*Dist, addrs ...string) (*Mirror, error) {
	m := &Mirror{files: map[string]string{}, faults: map[string]fault{}}
	for _, d := range dists {
		dir := "/kafka/" + d.Version + "/"
		m.files[dir+d.FileName] = d.Tarball
		m.files[dir+d.FileName+".sha512"] = d.SHA512File
	}
	m.srv = &http.Server{Handler: http.HandlerFunc(m.serve)}
	for _, a := range addrs {
		if _, err := m.AddListener(a); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// AddListener starts serving on one more address and returns its actual host:port.
func (m *Mirror) AddListener(addr string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return "", errors.New("kafkadist: mirror closed")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("kafkadist: mirror listen: %w", err)
	}
	m.listeners = append(m.listeners, l)
	go m.srv.Serve(l) // returns when Close closes the listener
	return l.Addr().String(), nil
}

// Port is the TCP port of listener i.
func (m *Mirror) Port(i int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listeners[i].Addr().(*net.TCPAddr).Port
}

// URL is the tarball URL of version on listener i.
func (m *Mirror) URL(i int, version string) string {
	m.mu.Lock()
	addr := m.listeners[i].Addr().String()
	m.mu.Unlock()
	return fmt.Sprintf("http://%s/kafka/%s/kafka_%s-%s.tgz", addr, version, scalaBinary, version)
}

// Requests returns one "METHOD /path status" line per request served so far.
func (m *Mirror) Requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.requests...)
}

// FailNext makes the next n GETs (or HEADs) of path answer status instead.
func (m *Mirror) FailNext(path string, n int, status int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults[path] = fault{n, status}
}

// Close stops every listener and drops open connections.
func (m *Mirror) Close() error {
	m.mu.Lock()
	m.closed = true
	ls := m.listeners
	m.mu.Unlock()
	err := m.srv.Close()
	for _, l := range ls {
		l.Close() // in case its Serve goroutine had not started yet
	}
	return err
}

// serve answers one request and logs it.
func (m *Mirror) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		m.mu.Lock()
		m.requests = append(m.requests, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status))
		m.mu.Unlock()
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(rec, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if status, ok := m.takeFault(r.URL.Path); ok {
		http.Error(rec, fmt.Sprintf("injected failure %d", status), status)
		return
	}
	name, ok := m.files[r.URL.Path]
	if !ok {
		http.NotFound(rec, r)
		return
	}
	f, err := os.Open(name)
	if err != nil {
		http.Error(rec, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(rec, err.Error(), http.StatusInternalServerError)
		return
	}
	if strings.HasSuffix(name, ".sha512") {
		rec.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		rec.Header().Set("Content-Type", "application/x-gzip")
	}
	// ServeContent also answers Range requests, so resumed downloads work.
	http.ServeContent(rec, r, "", st.ModTime(), f)
}

// takeFault consumes one injected failure for path, if any.
func (m *Mirror) takeFault(path string) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.faults[path]
	if !ok || f.n <= 0 {
		return 0, false
	}
	f.n--
	m.faults[path] = f
	return f.status, true
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Serve builds (or takes from the cache) each version and serves them all
// on addr: the usual start of a test that needs a Kafka download.
func Serve(ctx context.Context, addr string, versions ...string) (*Mirror, error) {
	var dists []*Dist
	for _, v := range versions {
		d, err := Build(ctx, v)
		if err != nil {
			return nil, err
		}
		dists = append(dists, d)
	}
	return StartMirror(dists, addr)
}

// URLVia is URL(i, version) for a client that reaches listener i through
// another host name or address (a qemu guest reaches 127.0.0.1 as 10.0.2.2).
func (m *Mirror) URLVia(i int, host, version string) string {
	return fmt.Sprintf("http://%s/kafka/%s/kafka_%s-%s.tgz", net.JoinHostPort(host, strconv.Itoa(m.Port(i))), version, scalaBinary, version)
}
