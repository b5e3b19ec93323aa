package rdkafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A finished build in the cache is returned without a download, a build or
// the lock (the lock file is never created).
func TestLibDirCacheHit(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("KAFKAUP_TEST_CACHE", cache)
	want := filepath.Join(cache, "librdkafka", Version+"-"+recipeHash()[:16])
	if err := os.MkdirAll(want, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(want, libName), []byte("\x7fELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := LibDir(ctx)
	if err != nil || got != want {
		t.Fatalf("LibDir = %q, %v; want %q", got, err, want)
	}
	if _, err := os.Stat(filepath.Join(cache, "librdkafka", ".build.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cache hit took the build lock: %v", err)
	}
}

// Another recipe's directory, or an empty library, is not a cache hit.
func TestCachedNeedsLibrary(t *testing.T) {
	dir := t.TempDir()
	if cached(dir) {
		t.Error("an empty dir counts as cached")
	}
	if err := os.WriteFile(filepath.Join(dir, libName), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if cached(dir) {
		t.Error("an empty library counts as cached")
	}
	old := recipeHash()
	saved := configureArgs
	configureArgs = append(slices.Clone(configureArgs), "--enable-zstd")
	defer func() { configureArgs = saved }()
	if recipeHash() == old {
		t.Error("the recipe hash does not cover the configure flags")
	}
}

func TestFetch(t *testing.T) {
	body := []byte("librdkafka source stand-in\n")
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/src.tar.gz" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()
	dir := t.TempDir()
	dst := filepath.Join(dir, "src.tar.gz")

	bad := strings.Repeat("0", 64)
	err := fetch(ctx, srv.URL+"/src.tar.gz", bad, dst)
	if err == nil || !strings.Contains(err.Error(), "sha256 is "+good+", want "+bad) {
		t.Fatalf("fetch with the wrong digest = %v", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a download with the wrong digest was kept: %v", err)
	}
	if err := fetch(ctx, srv.URL+"/missing", good, dst); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("fetch of a missing file = %v", err)
	}

	if err := fetch(ctx, srv.URL+"/src.tar.gz", good, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != string(body) {
		t.Errorf("dst holds %q", got)
	}
	n := requests.Load()
	if err := fetch(ctx, srv.URL+"/src.tar.gz", good, dst); err != nil {
		t.Fatal(err)
	}
	if requests.Load() != n {
		t.Error("a file already there with the right digest was downloaded again")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestMissingDeps(t *testing.T) {
	lookPath := func(have ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			if slices.Contains(have, name) {
				return "/usr/bin/" + name, nil
			}
			return "", exec.ErrNotFound
		}
	}
	modules := func(have ...string) func(string) bool {
		return func(m string) bool { return slices.Contains(have, m) }
	}
	cases := []struct {
		name     string
		commands []string
		modules  []string
		want     []string
	}{
		{"all there", []string{"gcc", "make", "pkg-config"}, []string{"libssl", "libcrypto", "zlib"}, nil},
		{"no headers", []string{"gcc", "make", "pkg-config"}, nil, []string{"libssl-dev", "zlib1g-dev"}},
		{"no compiler", []string{"make", "pkg-config"}, []string{"libssl", "libcrypto", "zlib"}, []string{"gcc"}},
		// Without pkg-config the headers cannot be looked for yet.
		{"nothing", nil, nil, []string{"gcc", "make", "pkg-config"}},
	}
	for _, tc := range cases {
		got := missingDeps(lookPath(tc.commands...), modules(tc.modules...))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: missingDeps = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseKcatVersion(t *testing.T) {
	cases := []struct {
		out, version string
		scram        bool
	}{
		{"kcat - Apache Kafka producer and consumer tool\nhttps://github.com/edenhill/kcat\nCopyright (c) 2014-2021, Magnus Edenhill\n" +
			"Version 1.7.1 (JSON, Transactions, IncrementalAssign, librdkafka 2.0.2 builtin.features=gzip,snappy,ssl,sasl,regex,lz4,sasl_gssapi,sasl_plain,sasl_scram,plugins,zstd,sasl_oauthbearer)\n",
			"2.0.2", true},
		{"Version 1.7.1 (JSON, Transactions, IncrementalAssign, librdkafka 2.8.0 builtin.features=gzip,snappy,ssl,sasl,regex,lz4,sasl_plain,sasl_scram,plugins,sasl_oauthbearer)\n",
			"2.8.0", true},
		{"Version 1.7.1 (librdkafka 2.8.0-RC1 builtin.features=gzip,ssl)", "2.8.0", false},
	}
	for _, tc := range cases {
		v, features, err := parseKcatVersion(tc.out)
		if err != nil || v != tc.version || slices.Contains(features, "sasl_scram") != tc.scram {
			t.Errorf("parseKcatVersion(%q) = %q %v %v", tc.out, v, features, err)
		}
	}
	if _, _, err := parseKcatVersion("kcat: error while loading shared libraries"); err == nil {
		t.Error("no error for output without a version")
	}
}

func TestCompareVersions(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"2.0.2", MinVersion, -1},
		{"2.6.0", "2.6.1", -1},
		{"2.6.1", "2.6.1", 0},
		{"2.8.0", "2.6.1", 1},
		{"2.10.0", "2.6.1", 1},
		{"3.0", "2.99.99", 1},
	}
	for _, tc := range cases {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	if compareVersions(Version, MinVersion) < 0 {
		t.Errorf("Version %s is older than MinVersion %s", Version, MinVersion)
	}
}

func TestWithLibraryPath(t *testing.T) {
	got := withLibraryPath([]string{"A=1", "LD_LIBRARY_PATH=/opt/x", "B=2"}, "/cache/lib")
	want := []string{"A=1", "B=2", "LD_LIBRARY_PATH=/cache/lib:/opt/x"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got = withLibraryPath([]string{"A=1", "LD_LIBRARY_PATH="}, "/cache/lib")
	want = []string{"A=1", "LD_LIBRARY_PATH=/cache/lib"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestKcatEnv builds the real library (or finds it in the cache) and
// checks that kcat loads it.
func TestKcatEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads and builds librdkafka")
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (test/deps.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	env, err := KcatEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KcatEnv in %v", time.Since(start).Round(time.Millisecond))
	cmd := exec.CommandContext(ctx, "kcat", "-V")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "librdkafka "+Version+" ") {
		t.Errorf("kcat -V with KcatEnv:\n%s", out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}
