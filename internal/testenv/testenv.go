// Package testenv holds what the end-to-end tests share: where cached
// artifacts live. Product code never imports anything under internal/testenv.
package testenv

import (
	"os"
	"path/filepath"
)

// CacheDir is where the harness keeps artifacts that are expensive to build
// (Maven jars, Kafka tarballs, VM images), keyed by content inside. It is
// $KAFKAUP_TEST_CACHE when set, else ~/.cache/kafkaup-test.
func CacheDir() string {
	if d := os.Getenv("KAFKAUP_TEST_CACHE"); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "kafkaup-test")
	}
	return filepath.Join(os.TempDir(), "kafkaup-test-cache")
}
