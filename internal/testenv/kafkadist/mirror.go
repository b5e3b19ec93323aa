package kafkadist

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	srv *http.Server

	mu        sync.Mutex
	files     map[string]string // URL path -> file on disk
	listeners []net.Listener
	requests  []string
	faults    map[string][]fault // per path, served in order
	served    int                // faults served so far
	closed    bool
}

// fault makes the next n requests of a path go wrong in one way.
type fault struct {
	n      int
	kind   faultKind
	status int // for failStatus
}

type faultKind int

const (
	failStatus   faultKind = iota // answer status instead of the file
	failReset                     // reset the TCP connection before answering
	failTruncate                  // the whole file's Content-Length, half the body, then close
	failCut                       // no Content-Length, half the body, then close
)

func (k faultKind) String() string {
	return [...]string{"status", "reset", "truncated", "cut"}[k]
}

// StartMirror serves the given dists, listening on each addr (e.g. "127.0.0.1:0").
func StartMirror(dists []*Dist, addrs ...string) (*Mirror, error) {
	m := &Mirror{files: map[string]string{}, faults: map[string][]fault{}}
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

// AddFile serves the file at path (e.g. a jar, at its Maven Central path
// under /maven2/) from now on, beside the dists.
func (m *Mirror) AddFile(urlPath, file string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[urlPath] = file
}

// FileURL is the URL of urlPath on listener i.
func (m *Mirror) FileURL(i int, urlPath string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return "http://" + m.listeners[i].Addr().String() + urlPath
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

// Requests returns one "METHOD /path status" line per request served so far
// ("GET /path 200 truncated" and the like for the faults of InjectNext).
func (m *Mirror) Requests() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.requests...)
}

// FailNext makes the next n GETs (or HEADs) of path answer status instead.
// Faults injected for a path are served in the order they were injected.
func (m *Mirror) FailNext(path string, n int, status int) {
	m.inject(path, fault{n: n, kind: failStatus, status: status})
}

// ResetNext makes the next n GETs of path end in a TCP reset before any
// answer (curl: "Connection reset by peer" or "Empty reply from server").
func (m *Mirror) ResetNext(path string, n int) { m.inject(path, fault{n: n, kind: failReset}) }

// TruncateNext makes the next n GETs of path announce the whole file's
// Content-Length, send half of it and close the connection: the client can
// tell the transfer ended early (curl exits 18).
func (m *Mirror) TruncateNext(path string, n int) { m.inject(path, fault{n: n, kind: failTruncate}) }

// CutNext makes the next n GETs of path answer 200 without a
// Content-Length, send half the file and close the connection: to the
// client the short body looks complete, and only a checksum tells.
func (m *Mirror) CutNext(path string, n int) { m.inject(path, fault{n: n, kind: failCut}) }

// ClearFaults drops the faults still pending for path: the mirror recovers.
func (m *Mirror) ClearFaults(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.faults, path)
}

// FaultsServed is how many requests got an injected fault so far.
func (m *Mirror) FaultsServed() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.served
}

func (m *Mirror) inject(path string, f fault) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults[path] = append(m.faults[path], f)
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
	broken := "" // the fault served on the raw connection, instead of a status
	defer func() {
		line := fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status)
		if broken != "" {
			line = fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, broken)
		}
		m.mu.Lock()
		m.requests = append(m.requests, line)
		m.mu.Unlock()
	}()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(rec, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	flt, faulty := m.takeFault(r.URL.Path, r.Method)
	if faulty && flt.kind == failStatus {
		http.Error(rec, fmt.Sprintf("injected failure %d", flt.status), flt.status)
		return
	}
	m.mu.Lock()
	name, ok := m.files[r.URL.Path]
	m.mu.Unlock()
	if faulty && ok {
		broken = flt.kind.String()
		if err := serveBroken(w, name, flt.kind); err != nil {
			broken += " (" + err.Error() + ")"
		}
		return
	}
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

// takeFault consumes one injected fault for path, if any. The faults that
// break a body are only for GETs.
func (m *Mirror) takeFault(path, method string) (fault, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.faults[path]
	for len(q) > 0 && q[0].n <= 0 {
		q = q[1:]
	}
	m.faults[path] = q
	if len(q) == 0 || (q[0].kind != failStatus && method != http.MethodGet) {
		return fault{}, false
	}
	q[0].n--
	m.served++
	return q[0], true
}

// serveBroken answers a GET of file the broken way kind says, on the raw
// connection.
func serveBroken(w http.ResponseWriter, file string, kind faultKind) error {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return errors.New("connection cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return err
	}
	defer conn.Close()
	if kind == failReset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		return nil
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/x-gzip\r\nConnection: close\r\n")
	if kind == failTruncate {
		fmt.Fprintf(buf, "Content-Length: %d\r\n", st.Size())
	}
	buf.WriteString("\r\n")
	if _, err := io.CopyN(buf, f, st.Size()/2); err != nil {
		return err
	}
	return buf.Flush()
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
