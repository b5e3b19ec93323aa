package kafkadist

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAddFile: a file added to a running mirror is served at its path, with
// the same request log and faults as the dists.
func TestAddFile(t *testing.T) {
	m, err := StartMirror(nil, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	file := filepath.Join(t.TempDir(), "agent.jar")
	os.WriteFile(file, []byte("jar bytes"), 0o644)
	const path = "/maven2/io/x/agent.jar"
	m.AddFile(path, file)
	m.FailNext(path, 1, http.StatusServiceUnavailable)
	for _, want := range []int{503, 200} {
		resp, err := http.Get(m.FileURL(0, path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && string(body) != "jar bytes") {
			t.Errorf("GET: %d %q, want %d", resp.StatusCode, body, want)
		}
	}
	if got := m.Requests(); !slices.Equal(got, []string{"GET " + path + " 503", "GET " + path + " 200"}) {
		t.Errorf("requests %q", got)
	}
}
