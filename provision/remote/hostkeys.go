package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/kafkaup/kafkaup/provision/atomicfile"
)

// HostKeys decides whether to trust a host's key. Keys are looked up in the
// user's known_hosts files and in kafkaup's own pin file; an unknown host is
// trusted on first use and pinned (like OpenSSH's StrictHostKeyChecking=
// accept-new) unless Strict is set; a key that differs from a recorded one
// is always refused.
//
// With Expected keys (read from an EC2 instance's console output) the files
// are not consulted: the host must present one of them, and once it has,
// they replace whatever kafkaup's pin file held for that address (an
// address EC2 gave to an earlier instance keeps no stale pin).
type HostKeys struct {
	KnownHosts []string // read-only files, e.g. ~/.ssh/known_hosts; missing files are skipped
	PinFile    string   // kafkaup's known_hosts: where new keys are written
	Strict     bool     // refuse unknown hosts instead of pinning them
	// Expected, when set, are the only keys accepted; a match pins them all
	// in place of the address's older pins.
	Expected []ssh.PublicKey
	// ExpectedFrom says where Expected came from, for the mismatch error
	// (default "the instance's console output").
	ExpectedFrom string
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

// Algorithms returns the host key algorithms already recorded for addr (or
// those of the Expected keys), so the server is asked for a key type we can
// check (nil when none is known).
func (h *HostKeys) Algorithms(addr string) ([]string, error) {
	if len(h.Expected) > 0 {
		return algorithmsOf(h.Expected), nil
	}
	cb, err := h.lookup()
	if err != nil {
		return nil, err
	}
	var keyErr *knownhosts.KeyError
	if err := cb(addr, &net.TCPAddr{}, probeKey); !errors.As(err, &keyErr) {
		return nil, nil
	}
	keys := make([]ssh.PublicKey, len(keyErr.Want))
	for i, k := range keyErr.Want {
		keys[i] = k.Key
	}
	return algorithmsOf(keys), nil
}

func algorithmsOf(keys []ssh.PublicKey) []string {
	var algos []string
	seen := map[string]bool{}
	for _, k := range keys {
		for _, a := range algorithmsFor(k.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
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
					return h.replacePins(hostname)
				}
			}
			from := h.ExpectedFrom
			if from == "" {
				from = "the instance's console output"
			}
			return &HostKeyMismatchError{Host: hostname, Fingerprint: fp, KnownIn: from, Expected: fingerprints(h.Expected)}
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
	unlock, err := lockPins(h.PinFile)
	if err != nil {
		return fmt.Errorf("pin host key: %w", err)
	}
	defer unlock()
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

// replacePins makes the Expected keys the pin file's only keys for
// hostname, rewriting the file (atomically) only when that changes it.
func (h *HostKeys) replacePins(hostname string) error {
	if h.PinFile == "" {
		return nil
	}
	var lines []string
	for _, k := range h.Expected {
		lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, k))
	}
	if err := rewritePins(h.PinFile, []string{hostname}, lines); err != nil {
		return fmt.Errorf("pin the host keys of %s: %w", hostname, err)
	}
	return nil
}

// PinKeys makes keys the pin file's only keys for addr (host or
// host:port), as console keys are pinned; the file is rewritten only when
// that changes it.
func PinKeys(pinFile, addr string, keys []ssh.PublicKey) error {
	h := &HostKeys{PinFile: pinFile, Expected: keys}
	return h.replacePins(addr)
}

// RemovePins deletes every line of kafkaup's pin file that names one of
// addrs (host or host:port, as SSH dials them). A missing file is no
// error. Other files (the user's ~/.ssh/known_hosts) are never edited.
func RemovePins(pinFile string, addrs ...string) error {
	if pinFile == "" || len(addrs) == 0 {
		return nil
	}
	if err := rewritePins(pinFile, addrs, nil); err != nil {
		return fmt.Errorf("remove the host keys of %s from %s: %w", strings.Join(addrs, ", "), pinFile, err)
	}
	return nil
}

// rewritePins drops the lines naming any of addrs and appends add; the file
// is replaced (temp file and rename, mode 0600) only when it changes.
func rewritePins(pinFile string, addrs, add []string) error {
	if err := os.MkdirAll(filepath.Dir(pinFile), 0o700); err != nil {
		return err
	}
	unlock, err := lockPins(pinFile)
	if err != nil {
		return err
	}
	defer unlock()
	data, err := os.ReadFile(pinFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	drop := map[string]bool{}
	for _, a := range addrs {
		drop[knownhosts.Normalize(a)] = true
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if line != "" && !namesHost(line, drop) {
			kept = append(kept, line)
		}
	}
	kept = append(kept, add...)
	out := strings.Join(kept, "\n")
	if out != "" {
		out += "\n"
	}
	if out == string(data) {
		return nil
	}
	return atomicfile.Write(pinFile, []byte(out))
}

// namesHost tells whether a known_hosts line is for one of hosts (by its
// plain, comma-separated host patterns; kafkaup writes no hashed or
// marker lines, and such lines are kept).
func namesHost(line string, hosts map[string]bool) bool {
	fields := strings.Fields(line)
	if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], "@") {
		return false
	}
	for _, pattern := range strings.Split(fields[0], ",") {
		if hosts[pattern] {
			return true
		}
	}
	return false
}

func fingerprints(keys []ssh.PublicKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Type() + " " + ssh.FingerprintSHA256(k)
	}
	return out
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

// lockPins holds an exclusive lock on the pin file (on a sidecar file, as
// the pin file itself is replaced by rename) until the returned function
// is called. Its read-modify-write would otherwise lose pins written at
// the same time: a cluster's nodes are pinned in parallel, and two
// kafkaup commands may run at once. The kernel drops the lock if the
// process dies.
func lockPins(pinFile string) (func(), error) {
	f, err := os.OpenFile(pinFile+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", pinFile, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", pinFile, err)
	}
	return func() { f.Close() }, nil
}
