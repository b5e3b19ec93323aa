// Package jmxagent gets the Prometheus JMX exporter's Java agent jar
// (io.prometheus.jmx:jmx_prometheus_javaagent) from Maven Central for the
// end-to-end tests, which serve it to test hosts from a local mirror: the
// hosts never reach the internet. The jar is cached by version under
// testenv.CacheDir()/jmx-exporter/<version>/, through Maven's local
// repository testenv.CacheDir()/m2 (shared with kafkadist), and never
// committed.
package jmxagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv"
)

const (
	group      = "io.prometheus.jmx"
	artifact   = "jmx_prometheus_javaagent"
	dependency = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
)

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)

// FileName is the jar's name for version, as Maven Central spells it.
func FileName(version string) string { return artifact + "-" + version + ".jar" }

// MavenPath is the jar's path under a Maven repository's root, e.g.
// /maven2/ on Maven Central.
func MavenPath(version string) string {
	return "io/prometheus/jmx/" + artifact + "/" + version + "/" + FileName(version)
}

// Get returns the path of the cached jar of version, fetching it with
// Maven when missing. The jar must have the sha256 given (the pin the
// product checks): a cached or fetched jar with another digest is an error.
// Safe to call from several test processes at once.
func Get(ctx context.Context, version, sha256Hex string) (string, error) {
	if !versionRE.MatchString(version) {
		return "", fmt.Errorf("jmxagent: bad version %q", version)
	}
	dir := filepath.Join(testenv.CacheDir(), "jmx-exporter", version)
	jar := filepath.Join(dir, FileName(version))
	if err := check(jar, sha256Hex); err == nil {
		return jar, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("jmxagent: %w", err)
	}
	unlock, err := testenv.Lock(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := check(jar, sha256Hex); err == nil {
		return jar, nil // another process got it meanwhile
	}
	repo := filepath.Join(testenv.CacheDir(), "m2")
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return "", fmt.Errorf("jmxagent: maven is needed to get %s from Maven Central: %w", FileName(version), err)
	}
	cmd := exec.CommandContext(ctx, mvn, "-q", "-B", "-Dmaven.repo.local="+repo, dependency+":get",
		"-Dartifact="+group+":"+artifact+":"+version, "-Dtransitive=false")
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("jmxagent: mvn dependency:get %s: %w\n%s", version, err, out.String())
	}
	fetched := filepath.Join(repo, filepath.FromSlash(MavenPath(version)))
	if err := check(fetched, sha256Hex); err != nil {
		return "", err
	}
	if err := copyFile(fetched, jar); err != nil {
		return "", fmt.Errorf("jmxagent: %w", err)
	}
	return jar, check(jar, sha256Hex)
}

// check makes sure path holds the jar with the given sha256.
func check(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("jmxagent: %s has sha256 %s, want %s", path, got, want)
	}
	return nil
}

// copyFile copies src to dst through a temp file and a rename.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
