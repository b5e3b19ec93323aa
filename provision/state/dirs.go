// Package state knows where kafkaup keeps its files on this machine: pinned
// SSH host keys, debug logs and (later) one small record per broker.
package state

import (
	"fmt"
	"os"
	"path/filepath"
)

// Dir is kafkaup's state directory: $KAFKAUP_HOME, else
// $XDG_STATE_HOME/kafkaup, else ~/.local/state/kafkaup. It is created 0700.
func Dir() (string, error) {
	dir := os.Getenv("KAFKAUP_HOME")
	if dir == "" {
		if x := os.Getenv("XDG_STATE_HOME"); x != "" {
			dir = filepath.Join(x, "kafkaup")
		} else {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find the home directory for kafkaup's state (set KAFKAUP_HOME): %w", err)
			}
			dir = filepath.Join(home, ".local", "state", "kafkaup")
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create kafkaup's state directory %s: %w", dir, err)
	}
	return dir, nil
}

// KnownHostsFile is where kafkaup pins host keys it trusted on first use.
func KnownHostsFile(dir string) string { return filepath.Join(dir, "known_hosts") }

// LogFile returns a new debug log path under dir/logs.
func LogFile(dir, name string) (string, error) {
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", logs, err)
	}
	return filepath.Join(logs, name+".log"), nil
}
