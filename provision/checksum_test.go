package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/scripts"
)

func TestParseSHA512File(t *testing.T) {
	const sum = "00722ab0a6b954e0006994b8d589dcd8f26e1827c47f70b6e820fb45aa35945c19163b0f188caf0caf976c11f7ab005fd368c54e5851e899d2de687a804a5eb9"
	upper := strings.ToUpper(sum)
	groups := func(s string) string { // "00722AB0 A6B954E0 ..." as gpg prints it
		var g []string
		for i := 0; i < len(s); i += 8 {
			g = append(g, s[i:i+8])
		}
		return strings.Join(g, " ")
	}(upper)
	cases := []struct {
		name, text, want string
	}{
		{"Apache, wrapped under the name", "kafka_2.13-4.0.0.tgz: " + groups[:53] + "\n                      " + groups[54:107] + "\n                      " + groups[108:] + "\n", sum},
		{"Apache, one line", "kafka_2.13-4.0.0.tgz: " + groups + "\n", sum},
		{"Apache, long name: digest starts on the next line", "this-is-a-rather-long-file-name-over-forty-chars.tgz: \n" + groups + "\n", sum},
		{"Apache, CRLF line ends", "kafka_2.13-4.0.0.tgz: " + groups[:53] + "\r\n  " + groups[54:] + "\r\n", sum},
		{"sha512sum", sum + "  kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, binary mode", sum + " *kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, upper case", upper + "  kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, a name with ': ' in it", sum + "  odd: name.tgz\n", sum},
		{"the digest alone", sum + "\n", sum},
		{"empty", "", ""},
		{"an HTML error page", "<html><head><title>404 Not Found</title></head>\n<body>Not Found: kafka_2.13-4.0.0.tgz.sha512</body></html>\n", ""},
		{"digest cut short", "kafka_2.13-4.0.0.tgz: " + groups[:80] + "\n", ""},
		{"digest too long", sum + "00  kafka_2.13-4.0.0.tgz\n", ""},
		{"not hex", "kafka_2.13-4.0.0.tgz: " + strings.Repeat("ZZZZZZZZ ", 16) + "\n", ""},
		{"a sha256 file", strings.Repeat("ab", 32) + "  kafka_2.13-4.0.0.tgz\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSHA512File(c.text)
			if c.want == "" {
				if err == nil || got != "" {
					t.Errorf("= %q, %v; want an error", got, err)
				} else if !strings.Contains(err.Error(), "128 hex digits") {
					t.Errorf("error %q does not say what is expected", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("= %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// bashHost runs fetch-checksum.sh with the local bash and curl, the way the
// host would (exit status 3 gives a *remote.ProcessError with the script's
// message), and only records the other scripts.
type bashHost struct {
	mu      sync.Mutex
	stderr  bytes.Buffer
	ran     []string // names, in order
	scripts map[string]string
}

func (h *bashHost) RunScript(ctx context.Context, name string, script []byte) ([]byte, error) {
	h.mu.Lock()
	h.ran = append(h.ran, name)
	if h.scripts == nil {
		h.scripts = map[string]string{}
	}
	h.scripts[name] = string(script)
	h.mu.Unlock()
	if name != "fetch-checksum" {
		return nil, nil
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", "-s")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(script), &stdout, &stderr
	err := cmd.Run()
	h.mu.Lock()
	h.stderr.Write(stderr.Bytes())
	h.mu.Unlock()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), &remote.ProcessError{Name: name, Host: "test", ExitStatus: exit.ExitCode(), StderrTail: stderr.String()}
	}
	return stdout.Bytes(), err
}

func (h *bashHost) Upload(context.Context, io.Reader, string, uint32) error { return nil }

// checksumServer serves path -> answers in turn (the last one repeats): a
// status code, or a body served with 200.
func checksumServer(t *testing.T, answers map[string][]any) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		list := answers[r.URL.Path]
		if len(list) == 0 {
			http.NotFound(w, r)
			return
		}
		a := list[0]
		if len(list) > 1 {
			answers[r.URL.Path] = list[1:]
		}
		if code, ok := a.(int); ok {
			w.WriteHeader(code)
			return
		}
		fmt.Fprint(w, a)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const (
	testSum    = "00722ab0a6b954e0006994b8d589dcd8f26e1827c47f70b6e820fb45aa35945c19163b0f188caf0caf976c11f7ab005fd368c54e5851e899d2de687a804a5eb9"
	apacheFile = "kafka_2.13-4.0.0.tgz: 00722AB0 A6B954E0 006994B8 D589DCD8 F26E1827 C47F70B6\n" +
		"                      E820FB45 AA35945C 19163B0F 188CAF0C AF976C11 F7AB005F\n" +
		"                      D368C54E 5851E899 D2DE687A 804A5EB9\n"
)

// TestFetchSHA512: the host fetches checksum files in order, with retries
// for mirror errors, and the first that holds a digest wins; the error when
// none does names every source and why, as the user saw it before.
func TestFetchSHA512(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	srv := checksumServer(t, map[string][]any{
		"/apache/a.sha512":    {apacheFile},
		"/sha512sum/a.sha512": {testSum + "  kafka_2.13-4.0.0.tgz\n"},
		"/html/a.sha512":      {"<html><body>Welcome to our mirror</body></html>\n"},
		"/flaky/a.sha512":     {503, apacheFile},
	})
	u := func(p string) string { return srv.URL + p + "/a.sha512" }
	cases := []struct {
		name  string
		urls  []string
		want  string
		err   string
		notes int
	}{
		{name: "Apache's file", urls: []string{u("/apache"), u("/html")}, want: testSum},
		{name: "404, then the fallback", urls: []string{u("/missing"), u("/sha512sum")}, want: testSum},
		{name: "not a checksum file, then the fallback", urls: []string{u("/html"), u("/apache")}, want: testSum},
		{name: "503 is retried with backoff", urls: []string{u("/flaky")}, want: testSum, notes: 1},
		{name: "none", urls: []string{u("/missing"), u("/html")},
			err: "could not get the sha512 checksum of kafka_2.13-4.0.0: " + u("/missing") + " (HTTP 404) " + u("/html") + " (not a sha512 file). Nothing was installed. Check that the host can reach it, or pass --kafka-sha512 with the digest from the Apache download page."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &bashHost{}
			start := time.Now()
			got, err := fetchSHA512(context.Background(), h, "kafka_2.13-4.0.0", c.urls)
			if c.err != "" {
				if err == nil || err.Error() != c.err {
					t.Errorf("= %q, %v\nwant error %s", got, err, c.err)
				}
			} else if err != nil || got != c.want {
				t.Errorf("= %q, %v; want %q", got, err, c.want)
			}
			notes := strings.Count(h.stderr.String(), "kafkaup: note: attempt ")
			if notes != c.notes {
				t.Errorf("%d retries noted, want %d:\n%s", notes, c.notes, h.stderr.String())
			}
			if c.notes > 0 && (time.Since(start) < 2*time.Second || !strings.Contains(h.stderr.String(), "HTTP 503; retrying in 2s")) {
				t.Errorf("no backoff before the retry:\n%s", h.stderr.String())
			}
		})
	}
}

// brokenHost loses the connection on every script.
type brokenHost struct{ runs int }

func (h *brokenHost) RunScript(context.Context, string, []byte) ([]byte, error) {
	h.runs++
	return nil, errors.New("ssh: connection lost")
}
func (h *brokenHost) Upload(context.Context, io.Reader, string, uint32) error { return nil }

// TestFetchSHA512BrokenConnection: a lost connection is no reason to try
// the next source, and is never reported as a bad checksum file.
func TestFetchSHA512BrokenConnection(t *testing.T) {
	h := &brokenHost{}
	_, err := fetchSHA512(context.Background(), h, "kafka_2.13-4.0.0", []string{"https://a/x.sha512", "https://b/x.sha512"})
	if err == nil || !strings.Contains(err.Error(), "connection lost") || h.runs != 1 {
		t.Errorf("err %v after %d runs", err, h.runs)
	}
}

// TestKafkaStepGetsTheFetchedChecksum: with no digest given, Plan leaves
// the kafka step's digest to Resolve (a dry run fetches nothing), and Apply
// hands the digest the host fetched to fetch-kafka.sh.
func TestKafkaStepGetsTheFetchedChecksum(t *testing.T) {
	srv := checksumServer(t, map[string][]any{"/kafka_2.13-4.0.0.tgz.sha512": {apacheFile}})
	s := testSpec()
	s.Source.URL = srv.URL + "/kafka_2.13-4.0.0.tgz"
	steps, err := Plan(s, freshHost(), "c")
	if err != nil {
		t.Fatal(err)
	}
	kafka := stepByID(steps, "kafka")
	if kafka.Resolve == nil || kafka.Script.(scripts.FetchKafka).ExpectedSHA512 != "" {
		t.Fatalf("kafka step: Resolve set %v, planned digest %q", kafka.Resolve != nil, kafka.Script.(scripts.FetchKafka).ExpectedSHA512)
	}
	h := &bashHost{}
	if _, err := Apply(context.Background(), h, []Step{kafka}, nil); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.ran) != "[fetch-checksum kafka]" {
		t.Errorf("ran %v", h.ran)
	}
	if !strings.Contains(h.scripts["kafka"], "\nreadonly EXPECTED_SHA512='"+testSum+"'\n") {
		t.Errorf("fetch-kafka.sh did not get the fetched digest:\n%s", h.scripts["kafka"])
	}
}
