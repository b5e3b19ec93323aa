package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// session is what every command that talks to a host shares: the state
// directory, a debug log file and the progress printer.
type session struct {
	stateDir string
	logPath  string
	logFile  *os.File
	ui       *ui
	// expectedHostKeys, when set, are the only host keys accepted (read
	// from an EC2 instance's console output).
	expectedHostKeys []ssh.PublicKey
}

func openSession(c *cli.Context, logName string) (*session, error) {
	dir, err := state.Dir()
	if err != nil {
		return nil, err
	}
	logPath, err := state.LogFile(dir, safeName(logName)+"-"+time.Now().Format("20060102-150405"))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open debug log: %w", err)
	}
	return &session{stateDir: dir, logPath: logPath, logFile: f, ui: newUI(c.App.ErrWriter, f)}, nil
}

func (s *session) Close() error { return s.logFile.Close() }

// wrap adds the debug log's path to an error.
func (s *session) wrap(err error) error {
	return fmt.Errorf("%w\n(debug log: %s)", err, s.logPath)
}

// dial connects to t with the key at identity (or the defaults), checking
// the host key against known_hosts and kafkaup's pins.
func (s *session) dial(c *cli.Context, t target, identity string) (*remote.Client, error) {
	cfg, err := s.connConfig(c, t, identity)
	if err != nil {
		return nil, err
	}
	s.ui.Printf("connecting to %s@%s", cfg.User, cfg.Addr())
	client, err := remote.Dial(c.Context, cfg)
	if err != nil {
		return nil, err
	}
	return client, nil
}

func (s *session) connConfig(c *cli.Context, t target, identity string) (remote.Config, error) {
	auth, err := remote.Auth(identity)
	if err != nil {
		return remote.Config{}, &usageError{err.Error()}
	}
	var known []string
	if f := flagString(c, "known-hosts"); f != "" {
		if _, err := os.Stat(f); err != nil {
			return remote.Config{}, usagef("--known-hosts: %v", err)
		}
		known = append(known, f)
	} else if home, err := os.UserHomeDir(); err == nil {
		known = append(known, filepath.Join(home, ".ssh", "known_hosts"))
	}
	pins := state.KnownHostsFile(s.stateDir)
	hk := &remote.HostKeys{
		KnownHosts: known, PinFile: pins, Strict: flagBool(c, "strict-host-key"), Expected: s.expectedHostKeys,
		OnPin: func(host, fp string) {
			s.ui.Printf("trusting %s on first use: host key %s (pinned in %s)", host, fp, pins)
		},
	}
	retry := 20 * time.Second
	if hasFlag(c, "connect-timeout") {
		retry = c.Duration("connect-timeout")
	}
	// A new EC2 instance refuses the key until cloud-init installed it.
	retryAuth := c.Command.Name == "create" || c.Command.Name == "start"
	return remote.Config{Host: t.Host, Port: t.Port, User: t.User, Auth: auth, HostKeys: hk,
		RetryFor: retry, RetryAuth: retryAuth, Log: notes{log: s.logFile, ui: s.ui}}, nil
}

// The flag helpers read flags that not every command defines.
func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func flagString(c *cli.Context, name string) string {
	if !hasFlag(c, name) {
		return ""
	}
	return c.String(name)
}

func flagBool(c *cli.Context, name string) bool {
	return hasFlag(c, name) && c.Bool(name)
}
