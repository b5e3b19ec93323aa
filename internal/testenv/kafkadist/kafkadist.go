// Package kafkadist assembles a real Apache Kafka runtime from Maven Central,
// laid out and packed like the official kafka_2.13-<version>.tgz, and serves it
// from a local HTTP mirror shaped like Apache's archive. Tests use it because
// Apache's download site is not reachable from the test machines.
//
// Build caches one tarball per version under testenv.CacheDir()/kafka/<version>/
// (Maven's local repository is testenv.CacheDir()/m2). Tarball bytes are
// deterministic for the same inputs, so the sha512 is stable across rebuilds.
//
// Differences from the official tarball: the launchers are short stand-ins
// (same names, variables and launch modes), config/ holds only what a broker
// needs, and libs/ has no Kafka Connect jars.
package kafkadist

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv"
)

// Dist is a Kafka runtime assembled from Maven Central laid out like the
// official kafka_2.13-<v>.tgz.
type Dist struct {
	Version    string // "4.0.0"
	FileName   string // "kafka_2.13-4.0.0.tgz"
	Tarball    string // absolute path of the .tgz
	SHA512File string // absolute path of "<tgz>.sha512" in Apache's `gpg --print-md sha512` format
	SHA512     string // lower-case hex of the tarball's sha512
}

const (
	scalaBinary = "2.13"
	log4jVer    = "2.24.3"
	// recipeRev is bumped when the build logic changes in a way the recipe
	// hash (POM + generated files) would not notice.
	recipeRev = "1"
)

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

//go:embed skel
var skel embed.FS

// tool is a bin/ launcher that runs one main class through kafka-run-class.sh.
type tool struct {
	script, class, heap string // heap: default KAFKA_HEAP_OPTS, "" for run-class's
}

// tools are the generated launchers. Their classes are checked against the
// assembled jars at build time.
var tools = []tool{
	{"kafka-storage.sh", "kafka.tools.StorageTool", ""},
	{"kafka-topics.sh", "org.apache.kafka.tools.TopicCommand", ""},
	{"kafka-console-producer.sh", "org.apache.kafka.tools.ConsoleProducer", "-Xmx512M"},
	{"kafka-console-consumer.sh", "org.apache.kafka.tools.consumer.ConsoleConsumer", "-Xmx512M"},
	{"kafka-metadata-quorum.sh", "org.apache.kafka.tools.MetadataQuorumCommand", ""},
	{"kafka-broker-api-versions.sh", "org.apache.kafka.tools.BrokerApiVersionsCommand", ""},
}

// brokerClass is what kafka-server-start.sh runs.
const brokerClass = "kafka.Kafka"

// Build assembles (or returns the cached) dist for version. It is safe to call
// concurrently from several goroutines and test processes: builds are
// serialised by a lock file and land in the cache by rename.
func Build(ctx context.Context, version string) (*Dist, error) {
	if !versionRE.MatchString(version) {
		return nil, fmt.Errorf("kafkadist: bad version %q", version)
	}
	root := filepath.Join(testenv.CacheDir(), "kafka")
	dir, err := filepath.Abs(filepath.Join(root, version))
	if err != nil {
		return nil, fmt.Errorf("kafkadist: %w", err)
	}
	files := layout(version)
	recipe := recipeHash(version, files)

	if d, err := loadCached(dir, version, recipe); err == nil {
		return d, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("kafkadist: create cache dir: %w", err)
	}
	// One lock for all versions: Maven's local repository is shared too.
	unlock, err := testenv.Lock(ctx, filepath.Join(root, ".build.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if d, err := loadCached(dir, version, recipe); err == nil {
		return d, nil // another process built it while we waited
	}
	if err := build(ctx, root, dir, version, files, recipe); err != nil {
		return nil, fmt.Errorf("kafkadist: build kafka %s: %w", version, err)
	}
	return loadCached(dir, version, recipe)
}

// newDist fills in the names of the files of a dist stored in dir.
func newDist(dir, version string) *Dist {
	name := fmt.Sprintf("kafka_%s-%s.tgz", scalaBinary, version)
	return &Dist{
		Version:    version,
		FileName:   name,
		Tarball:    filepath.Join(dir, name),
		SHA512File: filepath.Join(dir, name+".sha512"),
	}
}

// loadCached returns the dist in dir if it was built from recipe.
func loadCached(dir, version, recipe string) (*Dist, error) {
	d := newDist(dir, version)
	stamp, err := os.ReadFile(filepath.Join(dir, "recipe"))
	if err != nil {
		return nil, fmt.Errorf("kafkadist: %w", err)
	}
	if strings.TrimSpace(string(stamp)) != recipe {
		return nil, errors.New("kafkadist: cached dist built from another recipe")
	}
	sum, err := os.ReadFile(d.SHA512File)
	if err != nil {
		return nil, fmt.Errorf("kafkadist: %w", err)
	}
	if d.SHA512, err = parseSHA512File(sum); err != nil {
		return nil, fmt.Errorf("kafkadist: %s: %w", d.SHA512File, err)
	}
	if _, err := os.Stat(d.Tarball); err != nil {
		return nil, fmt.Errorf("kafkadist: %w", err)
	}
	return d, nil
}

// file is one generated (non-jar) file of the layout.
type file struct {
	mode fs.FileMode
	data []byte
}

// layout returns the generated files of the dist by path relative to the
// top directory: the embedded skeleton plus one launcher per tool.
func layout(version string) map[string]file {
	files := map[string]file{}
	err := fs.WalkDir(skel, "skel", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := skel.ReadFile(p)
		rel := strings.TrimPrefix(p, "skel/")
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o755
		}
		files[rel] = file{mode, data}
		return err
	})
	if err != nil {
		panic(err) // embedded files are always readable
	}
	for _, t := range tools {
		files["bin/"+t.script] = file{0o755, []byte(launcher(t))}
	}
	return files
}

// launcher renders a tool script the way the official ones look.
func launcher(t tool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n# kafkaup test stand-in for Apache Kafka's bin/%s (assembled from\n", t.script)
	b.WriteString("# Maven Central by internal/testenv/kafkadist). Runs " + t.class + ".\n\n")
	if t.heap != "" {
		fmt.Fprintf(&b, "if [ -z \"$KAFKA_HEAP_OPTS\" ]; then\n  export KAFKA_HEAP_OPTS=%q\nfi\n", t.heap)
	}
	fmt.Fprintf(&b, "exec \"$(dirname \"$0\")/kafka-run-class.sh\" %s \"$@\"\n", t.class)
	return b.String()
}

// pom is the generated project whose runtime dependencies are the dist's libs/.
func pom(version string) string {
	dep := func(g, a, v string) string {
		return fmt.Sprintf("    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n", g, a, v)
	}
	// Connect is left out: none of the shipped scripts runs it, and for 4.0.1
	// kafka-tools would pull in connect-api, connect-json and connect-transforms
	// jars that Maven Central did not serve (4.0.0 and 4.0.2 have them).
	kafkaTools := strings.Replace(dep("org.apache.kafka", "kafka-tools", version), "</dependency>",
		"<exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions></dependency>", 1)
	return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafkaup.test</groupId>
  <artifactId>kafkadist</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
` + dep("org.apache.kafka", "kafka_"+scalaBinary, version) +
		kafkaTools +
		// The broker's POM brings no log4j2 implementation: without these it logs nothing.
		dep("org.apache.logging.log4j", "log4j-api", log4jVer) +
		dep("org.apache.logging.log4j", "log4j-core", log4jVer) +
		dep("org.apache.logging.log4j", "log4j-slf4j-impl", log4jVer) + `  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId>
    <version>3.8.1</version>
  </plugin></plugins></build>
</project>
`
}

// recipeHash identifies everything the tarball is made from besides the jars,
// which Maven Central never changes for a given POM.
func recipeHash(version string, files map[string]file) string {
	h := sha256.New()
	fmt.Fprintf(h, "rev %s\nversion %s\n%s", recipeRev, version, pom(version))
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s %o %d\n", n, files[n].mode, len(files[n].data))
		h.Write(files[n].data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// build stages the dist in a temp dir under root, packs it, and moves the
// tarball, its .sha512 and finally the recipe stamp into dir.
func build(ctx context.Context, root, dir, version string, files map[string]file, recipe string) error {
	tmp, err := os.MkdirTemp(root, ".build-"+version+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	d := newDist(dir, version)
	topName := strings.TrimSuffix(d.FileName, ".tgz")
	top := filepath.Join(tmp, "stage", topName)
	if err := os.MkdirAll(filepath.Join(top, "libs"), 0o755); err != nil {
		return err
	}
	if err := copyDependencies(ctx, tmp, version, filepath.Join(top, "libs")); err != nil {
		return err
	}
	if err := checkClasses(filepath.Join(top, "libs")); err != nil {
		return err
	}
	for rel, f := range files {
		p := filepath.Join(top, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
	}

	tgz := filepath.Join(tmp, d.FileName)
	sum, err := writeTarGz(tgz, filepath.Join(tmp, "stage"), topName)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	if err := os.WriteFile(tgz+".sha512", []byte(formatSHA512File(d.FileName, sum)), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "recipe"), []byte(recipe+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The stamp goes last: a dist whose stamp matches is complete.
	for _, name := range []string{d.FileName, d.FileName + ".sha512", "recipe"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// copyDependencies resolves the generated POM with Maven and copies its
// runtime-scope jars into libs.
func copyDependencies(ctx context.Context, work, version, libs string) error {
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return fmt.Errorf("maven is needed to assemble kafka from Maven Central: %w", err)
	}
	if err := os.WriteFile(filepath.Join(work, "pom.xml"), []byte(pom(version)), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B",
		"-Dmaven.repo.local="+filepath.Join(testenv.CacheDir(), "m2"),
		"dependency:copy-dependencies",
		"-DincludeScope=runtime",
		"-DoutputDirectory="+libs)
	cmd.Dir = work
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mvn dependency:copy-dependencies: %w\n%s", err, tail(out.String(), 4000))
	}
	return nil
}

// checkClasses makes sure every launcher's main class is in some jar of libs.
func checkClasses(libs string) error {
	want := map[string]bool{brokerClass: true}
	for _, t := range tools {
		want[t.class] = true
	}
	jars, err := filepath.Glob(filepath.Join(libs, "*.jar"))
	if err != nil {
		return err
	}
	for _, j := range jars {
		z, err := zip.OpenReader(j)
		if err != nil {
			return fmt.Errorf("open %s: %w", j, err)
		}
		for _, f := range z.File {
			if c, ok := strings.CutSuffix(f.Name, ".class"); ok {
				delete(want, strings.ReplaceAll(c, "/", "."))
			}
		}
		z.Close()
	}
	if len(want) > 0 {
		var missing []string
		for c := range want {
			missing = append(missing, c)
		}
		sort.Strings(missing)
		return fmt.Errorf("main classes not found in %s: %s", libs, strings.Join(missing, ", "))
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
