// Package atomicfile writes a file whole or not at all: a temp file in the
// same directory, its mode set before any byte is written, then a rename.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode 0600 (kafkaup's records, keys and
// pins are private), making its directory 0700 when missing.
func Write(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
