package kafkadist

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMirrorBrokenTransfers checks each injected fault the way the product
// meets it, with curl: the exit status (and what landed on disk) a real
// client sees, faults served in the order injected, then the file whole.
func TestMirrorBrokenTransfers(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	d := newDist(dir, "9.9.9")
	body := strings.Repeat("0123456789", 10000)
	mustWrite(t, d.Tarball, body)
	mustWrite(t, d.SHA512File, "x")
	m, err := StartMirror([]*Dist{d}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url, path := m.URL(0, "9.9.9"), "/kafka/9.9.9/kafka_2.13-9.9.9.tgz"

	m.FailNext(path, 1, http.StatusServiceUnavailable)
	m.ResetNext(path, 1)
	m.TruncateNext(path, 1)
	m.CutNext(path, 1)
	out := filepath.Join(dir, "got")
	curl := func() (code int, size int) {
		os.Remove(out)
		err := exec.Command("curl", "-sS", "-f", "-o", out, url).Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(out); err == nil {
			size = int(st.Size())
		}
		return code, size
	}
	for _, c := range []struct {
		what     string
		codes    []int // curl's exit status: one of
		wantSize int   // -1: any
	}{
		{"503", []int{22}, -1},
		{"reset", []int{52, 56}, -1},
		{"truncated with Content-Length", []int{18}, -1},
		{"cut without Content-Length: looks complete", []int{0}, len(body) / 2},
		{"recovered", []int{0}, len(body)},
	} {
		code, size := curl()
		if !slices.Contains(c.codes, code) || (c.wantSize >= 0 && size != c.wantSize) {
			t.Errorf("%s: curl exit %d with %d bytes, want exit %v with %d bytes", c.what, code, size, c.codes, c.wantSize)
		}
	}
	want := []string{"GET " + path + " 503", "GET " + path + " reset", "GET " + path + " truncated", "GET " + path + " cut", "GET " + path + " 200"}
	if got := m.Requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("request log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := m.FaultsServed(); n != 4 {
		t.Errorf("FaultsServed = %d, want 4", n)
	}

	// A mirror that is down until ClearFaults; HEADs do not use up body faults.
	m.FailNext(path, 1000, http.StatusBadGateway)
	if code, _ := curl(); code != 22 {
		t.Errorf("down: curl exit %d", code)
	}
	m.ClearFaults(path)
	m.CutNext(path, 1)
	if err := exec.Command("curl", "-sSf", "-I", url).Run(); err != nil {
		t.Errorf("HEAD with a body fault pending: %v", err)
	}
	if code, size := curl(); code != 0 || size != len(body)/2 {
		t.Errorf("cut after HEAD: exit %d, %d bytes", code, size)
	}
}
