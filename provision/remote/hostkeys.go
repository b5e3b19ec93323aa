package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeys decides whether to trust a host's key. Keys are looked up in the
// user's known_hosts files and in kafkaup's own pin file; an unknown host is
// trusted on first use and pinned (like OpenSSH's StrictHostKeyChecking=
// accept-new) unless Strict is set; a key that differs from a recorded one
// is always refused.
type HostKeys struct {
	KnownHosts []string // read-only files, e.g. ~/.ssh/known_hosts; missing files are skipped
	PinFile    string   // kafkaup's known_hosts: where new keys are written
	Strict     bool     // refuse unknown hosts instead of pinning them
	// Expected, when set, are the only keys accepted (for instance read from
	// an EC2 instance's console output); a match is pinned.
	Expected []ssh.PublicKey
	// OnPin is told about a key pinned on first use.
	OnPin func(host, fingerprint string)

	mu sync.Mutex
}

func (h *HostKeys) files() []string {
	var out []string
	for _, f := range append(append([]string{}, h.KnownHosts...), h.PinFile) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err == nil {
			out = append(out, f)
		}
	}
	return out
}

func (h *HostKeys) lookup() (ssh.HostKeyCallback, error) {
	files := h.files()
	if len(files) == 0 {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %v: %w", files, err)
	}
	return cb, nil
}

// Algorithms returns the host key algorithms already recorded for addr, so
// the server is asked for a key type we can check (nil when none is known).
func (h *HostKeys) Algorithms(addr string) ([]string, error) {
	cb, err := h.lookup()
	if err != nil {
		return nil, err
	}
	var keyErr *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{}, probeKey); !errors.As(err, &keyErr) {
		return nil, nil
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range keyErr.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// Callback is the ssh.HostKeyCallback that applies the policy.
func (h *HostKeys) Callback() ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		fp := ssh.FingerprintSHA256(key)
		if len(h.Expected) > 0 {
			for _, want := range h.Expected {
				if string(want.Marshal()) == string(key.Marshal()) {
					return h.pin(hostname, key)
				}
			}
			return &HostKeyMismatchError{Host: hostname, Fingerprint: fp, KnownIn: "the instance's console output"}
		}
		cb, err := h.lookup()
		if err != nil {
			return err
		}
		err = cb(hostname, remote, key)
		var keyErr *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			known := keyErr.Want[0]
			return &HostKeyMismatchError{Host: hostname, Fingerprint: fp, KnownIn: fmt.Sprintf("%s:%d", known.Filename, known.Line)}
		case errors.As(err, &keyErr):
			if h.Strict {
				return fmt.Errorf("the SSH host key of %s (%s) is not in %v, and strict host key checking is on. Check the fingerprint out of band, then add it with: ssh-keyscan -p PORT HOST >> %s", hostname, fp, h.files(), h.PinFile)
			}
			if err := h.pin(hostname, key); err != nil {
				return err
			}
			if h.OnPin != nil {
				h.OnPin(hostname, fp)
			}
			return nil
		default:
			return fmt.Errorf("check host key of %s: %w", hostname, err)
		}
	}
}

// pin appends the key to the pin file unless it is there already.
func (h *HostKeys) pin(hostname string, key ssh.PublicKey) error {
	if h.PinFile == "" {
		return nil
	}
	if cb, err := h.lookup(); err == nil && cb(hostname, &net.TCPAddr{}, key) == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(h.PinFile), 0o700); err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	f, err := os.OpenFile(h.PinFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return fmt.Errorf("pin host key in %s: %w", h.PinFile, err)
	}
	return f.Close()
}

// probeKey is a fixed key no host has; asking the known_hosts callback about
// it lists the keys recorded for a host.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.ParsePublicKey([]byte{0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32})
	if err != nil {
		panic(err)
	}
	return k
}()
