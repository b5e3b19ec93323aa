package workflow

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// SSHDialer is the real Dialer: x/crypto/ssh with host keys checked
// against known_hosts and kafkaup's pins.
type SSHDialer struct {
	StateDir string
	// KnownHosts is the known_hosts file to read (default
	// ~/.ssh/known_hosts); kafkaup's own pins are always read and written.
	KnownHosts string
	// Strict refuses hosts whose key is not known yet instead of trusting
	// and pinning it on first use.
	Strict bool
	// Log receives the remote scripts' stderr (the debug log).
	Log io.Writer
	UI  interface{ Printf(string, ...any) }
}

// Dial connects to t.
func (d SSHDialer) Dial(ctx context.Context, t Target, o DialOptions) (Host, error) {
	auth, err := remote.Auth(t.Identity)
	if err != nil {
		return nil, &provision.InputError{Err: err}
	}
	var known []string
	if d.KnownHosts != "" {
		known = append(known, d.KnownHosts)
	} else if home, err := os.UserHomeDir(); err == nil {
		known = append(known, filepath.Join(home, ".ssh", "known_hosts"))
	}
	pins := state.KnownHostsFile(d.StateDir)
	hk := &remote.HostKeys{
		KnownHosts: known, PinFile: pins, Strict: d.Strict, Expected: o.ExpectedHostKeys, ExpectedFrom: o.ExpectedFrom,
		OnPin: func(host, fp string) {
			d.UI.Printf("trusting %s on first use: host key %s (pinned in %s)", host, fp, pins)
		},
	}
	cfg := remote.Config{Host: t.Host, Port: t.Port, User: t.User, Auth: auth, HostKeys: hk,
		RetryFor: o.RetryFor, RetryAuth: o.RetryAuth, Log: d.Log}
	d.UI.Printf("connecting to %s@%s", cfg.User, cfg.Addr())
	client, err := remote.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return client, nil
}
