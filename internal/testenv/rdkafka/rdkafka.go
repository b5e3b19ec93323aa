// Package rdkafka builds librdkafka 2.8.0 from Debian's source tarball so
// that the tests can run kcat, a Kafka client outside kafkaup, against a
// SASL_SSL/SCRAM broker.
//
// Debian 12's kcat 1.7.1 links librdkafka 2.0.2, whose SCRAM login Kafka 4.x
// rejects (a malformed client nonce, fixed in librdkafka 2.6.1 by
// confluentinc/librdkafka PR 4895). kcat loads librdkafka.so.1 dynamically,
// so the same kcat binary with LD_LIBRARY_PATH pointing at a newer build
// logs in fine: KcatEnv returns that environment.
//
// LibDir builds the library once per machine and caches it under
// testenv.CacheDir()/librdkafka/<version>-<recipe>/, where the recipe hash
// covers the pinned tarball sha256, the configure flags and recipeRev. The
// source comes from Debian's archive (trixie's librdkafka_2.8.0.orig.tar.gz)
// and is checked against the pinned sha256 before it is unpacked.
package rdkafka

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv"
)

const (
	// Version is the librdkafka LibDir builds.
	Version = "2.8.0"
	// MinVersion is the first librdkafka whose SCRAM login Kafka 4.x accepts.
	MinVersion = "2.6.1"

	tarballName   = "librdkafka_" + Version + ".orig.tar.gz"
	tarballURL    = "http://deb.debian.org/debian/pool/main/libr/librdkafka/" + tarballName
	tarballSHA256 = "5bd1c46f63265f31c6bfcedcde78703f77d28238eadf23821c2b43fc30be3e25"
	// recipeRev is bumped when the build changes in a way configureArgs
	// and the tarball's sha256 do not show.
	recipeRev = "1"
	// libName is the file name kcat's dynamic loader looks for.
	libName = "librdkafka.so.1"
)

// configureArgs leave out what the tests do not need and what would need
// more -dev packages: Cyrus SASL and GSSAPI (--disable-sasl only drops
// those; the builtin SCRAM and PLAIN mechanisms stay), libcurl, zstd and an
// external lz4 (the bundled one is used). OpenSSL is required: SCRAM's
// HMAC and TLS both come from it.
var configureArgs = []string{
	"--disable-curl", "--disable-zstd", "--disable-lz4-ext",
	"--disable-gssapi", "--disable-sasl", "--enable-ssl",
}

// LibDir returns a directory that holds librdkafka.so.1 of Version, built
// with SSL and SCRAM. The first call on a machine downloads the source
// (about 5 MB) and builds it (about 30 s on 2 cores); later calls, from any
// process, find it in the cache. Concurrent callers wait for one build.
func LibDir(ctx context.Context) (string, error) {
	root, err := filepath.Abs(filepath.Join(testenv.CacheDir(), "librdkafka"))
	if err != nil {
		return "", fmt.Errorf("rdkafka: %w", err)
	}
	dir := filepath.Join(root, Version+"-"+recipeHash()[:16])
	if cached(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("rdkafka: create cache dir: %w", err)
	}
	unlock, err := testenv.Lock(ctx, filepath.Join(root, ".build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if cached(dir) {
		return dir, nil // another process built it while we waited
	}
	if missing := missingDeps(exec.LookPath, pkgConfigHas); len(missing) > 0 {
		return "", fmt.Errorf("rdkafka: building librdkafka %s (for kcat's SCRAM login to Kafka 4.x) needs %s: "+
			"run `apt-get install %s` (or test/deps.sh as root) and retry",
			Version, strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	start := time.Now()
	if err := build(ctx, root, dir); err != nil {
		return "", fmt.Errorf("rdkafka: build librdkafka %s: %w", Version, err)
	}
	fmt.Fprintf(os.Stderr, "rdkafka: built librdkafka %s into %s in %v\n", Version, dir, time.Since(start).Round(time.Second))
	return dir, nil
}

// KcatEnv returns os.Environ() with LD_LIBRARY_PATH led by LibDir, after
// checking that kcat run with it reports librdkafka >= MinVersion with the
// sasl_scram feature.
func KcatEnv(ctx context.Context) ([]string, error) {
	dir, err := LibDir(ctx)
	if err != nil {
		return nil, err
	}
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		return nil, fmt.Errorf("rdkafka: kcat is not installed: run `apt-get install kcat`: %w", err)
	}
	env := withLibraryPath(os.Environ(), dir)
	cmd := exec.CommandContext(ctx, kcat, "-V")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("rdkafka: LD_LIBRARY_PATH=%s kcat -V: %w\n%s", dir, err, out)
	}
	v, features, err := parseKcatVersion(string(out))
	if err != nil {
		return nil, fmt.Errorf("rdkafka: LD_LIBRARY_PATH=%s kcat -V: %w", dir, err)
	}
	if compareVersions(v, MinVersion) < 0 {
		return nil, fmt.Errorf("rdkafka: with LD_LIBRARY_PATH=%s kcat still reports librdkafka %s, want >= %s "+
			"(is this kcat linked statically, or with an rpath?)", dir, v, MinVersion)
	}
	if !slices.Contains(features, "sasl_scram") {
		return nil, fmt.Errorf("rdkafka: kcat's librdkafka %s lacks the sasl_scram feature (has %s)", v, strings.Join(features, ","))
	}
	return env, nil
}

// withLibraryPath returns env with dir first in LD_LIBRARY_PATH.
func withLibraryPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	val := dir
	for _, kv := range env {
		if old, ok := strings.CutPrefix(kv, "LD_LIBRARY_PATH="); ok {
			if old != "" {
				val = dir + ":" + old
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LD_LIBRARY_PATH="+val)
}

var kcatVersionRE = regexp.MustCompile(`librdkafka (\d+\.\d+\.\d+)\S*(?: builtin\.features=([a-z0-9_,]+))?`)

// parseKcatVersion reads the librdkafka version and builtin features from
// kcat -V output, e.g. "Version 1.7.1 (JSON, ..., librdkafka 2.8.0
// builtin.features=gzip,snappy,ssl,...)".
func parseKcatVersion(out string) (version string, features []string, err error) {
	m := kcatVersionRE.FindStringSubmatch(out)
	if m == nil {
		return "", nil, fmt.Errorf("no librdkafka version in %q", strings.TrimSpace(out))
	}
	if m[2] != "" {
		features = strings.Split(m[2], ",")
	}
	return m[1], features, nil
}

// compareVersions compares two "major.minor.patch" versions like
// strings.Compare; parts that are not numbers count as 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// recipeHash identifies what the cached library is built from.
func recipeHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "rev %s\nversion %s\ntarball %s %s\nconfigure %s\n",
		recipeRev, Version, tarballName, tarballSHA256, strings.Join(configureArgs, " "))
	return hex.EncodeToString(h.Sum(nil))
}

// cached reports whether dir holds a finished build. Builds land by
// renaming a complete directory, so a library there is whole.
func cached(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, libName))
	return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
}

// dep is one thing the build needs and the Debian package that brings it.
type dep struct {
	pkg     string
	command string // an executable on PATH, or
	module  string // a pkg-config module
}

var deps = []dep{
	{pkg: "gcc", command: "gcc"},
	{pkg: "make", command: "make"},
	{pkg: "pkg-config", command: "pkg-config"},
	{pkg: "libssl-dev", module: "libssl"},
	{pkg: "libssl-dev", module: "libcrypto"},
	{pkg: "zlib1g-dev", module: "zlib"},
}

// missingDeps returns the Debian packages to install before building. The
// -dev packages are found through pkg-config (as configure finds them), so
// they are only checked once pkg-config is there.
func missingDeps(lookPath func(string) (string, error), hasModule func(string) bool) []string {
	var missing []string
	add := func(p string) {
		if !slices.Contains(missing, p) {
			missing = append(missing, p)
		}
	}
	havePkgConfig := true
	for _, d := range deps {
		switch {
		case d.command != "":
			if _, err := lookPath(d.command); err != nil {
				add(d.pkg)
				if d.command == "pkg-config" {
					havePkgConfig = false
				}
			}
		case havePkgConfig && !hasModule(d.module):
			add(d.pkg)
		}
	}
	return missing
}

func pkgConfigHas(module string) bool {
	return exec.Command("pkg-config", "--exists", module).Run() == nil
}

// build fetches the source, builds the shared library in a temp dir under
// root and renames the finished directory to dir. The caller holds the lock.
func build(ctx context.Context, root, dir string) error {
	tgz := filepath.Join(root, tarballName)
	if err := fetch(ctx, tarballURL, tarballSHA256, tgz); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The digest is checked again here: the cached tarball is what we unpack.
	if err := checkSHA256(tgz, tarballSHA256); err != nil {
		return err
	}
	if err := run(ctx, tmp, "tar", "-xzf", tgz, "--no-same-owner", "-C", tmp); err != nil {
		return err
	}
	src := filepath.Join(tmp, "librdkafka-"+Version)
	if err := run(ctx, src, "./configure", append([]string{"--prefix=" + filepath.Join(tmp, "prefix")}, configureArgs...)...); err != nil {
		return err
	}
	// configure drops what it cannot find rather than failing: make sure
	// the features kcat needs made it in.
	conf, err := os.ReadFile(filepath.Join(src, "config.h"))
	if err != nil {
		return err
	}
	for _, def := range []string{"WITH_SSL", "WITH_SASL_SCRAM"} {
		if !regexp.MustCompile(`(?m)^#define ` + def + ` 1$`).Match(conf) {
			return fmt.Errorf("configure left out %s (see %s/config.log)", def, src)
		}
	}
	// Only the shared library: the static archives and tests are not needed.
	if err := run(ctx, src, "make", "-j", strconv.Itoa(runtime.NumCPU()), "-C", "src", libName); err != nil {
		return err
	}
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(src, "src", libName), filepath.Join(out, libName)); err != nil {
		return err
	}
	recipe := fmt.Sprintf("librdkafka %s from %s (sha256 %s)\nconfigure %s\nrecipe rev %s\nbuilt %s\n",
		Version, tarballURL, tarballSHA256, strings.Join(configureArgs, " "), recipeRev, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(out, "RECIPE"), []byte(recipe), 0o644); err != nil {
		return err
	}
	// A dir without the library is a leftover (e.g. removed by hand):
	// rename cannot replace a non-empty directory.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(out, dir)
}

// run runs a build command in dir and returns its output's tail on failure.
// Make variables of an outer make (e.g. `make test`) are dropped: their
// jobserver file descriptors do not reach this process.
func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "LC_ALL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(buf.String(), 4000))
	}
	return nil
}

// fetch makes dst a copy of url whose sha256 is want. A dst that already
// has that digest is kept; otherwise the download goes to a temp file
// beside dst and replaces it only once its digest matches.
func fetch(ctx context.Context, url, want, dst string) error {
	if checkSHA256(dst, want) == nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".download-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", url, resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("download %s: sha256 is %s, want %s (the pinned digest): not using it", url, got, want)
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// checkSHA256 returns nil if the file at path has the sha256 want.
func checkSHA256(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s: sha256 is %s, want %s", path, got, want)
	}
	return nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
