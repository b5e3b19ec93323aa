package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// fileLock is an advisory flock(2) on a file, shared by every test process on
// the machine. The kernel drops it when the process dies, so a crashed test
// never leaves a stale lock behind.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path, waiting until ctx ends.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	for {
		l, err := tryLockFile(path)
		if err != nil || l != nil {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// tryLockFile takes an exclusive lock on path without waiting. It returns
// (nil, nil) when another process holds it.
func tryLockFile(path string) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

// Unlock releases the lock. It is safe to call on nil and more than once.
func (l *fileLock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
}
