package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// session is what every command that does work shares: the state
// directory, a debug log file and the progress printer.
type session struct {
	stateDir string
	logPath  string
	logFile  *os.File
	ui       *ui
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
	u := newUI(c.App.ErrWriter, f)
	u.confirm = func(q string) (bool, error) { return confirm(c, q) }
	return &session{stateDir: dir, logPath: logPath, logFile: f, ui: u}, nil
}

func (s *session) Close() error { return s.logFile.Close() }

// wrap adds the debug log's path to an error.
func (s *session) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w\n(debug log: %s)", err, s.logPath)
}

// env is what the workflows are given: the real store, SSH, AWS and UI.
func (s *session) env(c *cli.Context) (workflow.Env, error) {
	known := flagString(c, "known-hosts")
	if known != "" {
		if _, err := os.Stat(known); err != nil {
			return workflow.Env{}, usagef("--known-hosts: %v", err)
		}
	}
	lookup := cloud.CallerIPLookup{URLs: c.StringSlice("caller-ip-url"), Logf: s.ui.Printf}
	if !hasFlag(c, "caller-ip-url") {
		lookup.URLs = nil
	}
	if err := cloud.CheckCallerIPURLs(lookup.URLs); err != nil {
		return workflow.Env{}, usagef("--caller-ip-url (or %s): %v", cloud.CallerIPURLsEnv, err)
	}
	return workflow.Env{
		StateDir: s.stateDir,
		Store:    state.Store{Dir: s.stateDir},
		Dial: workflow.SSHDialer{StateDir: s.stateDir, KnownHosts: known, Strict: flagBool(c, "strict-host-key"),
			Log: notes{log: s.logFile, ui: s.ui}, UI: s.ui},
		NewCloud: func(ctx context.Context, region string) (workflow.Cloud, error) {
			cl, err := cloud.New(ctx, region)
			var request *cloud.RequestError
			var creds *cloud.CredentialsError
			if errors.As(err, &request) || errors.As(err, &creds) {
				return nil, usage(err) // a bad region or no credentials: the user's to fix
			}
			if err != nil {
				return nil, err
			}
			cl.Log = s.logFile
			return cl, nil
		},
		CallerIP: lookup.Find,
		UI:       s.ui,
	}, nil
}

// localEnv is the Env of a command that only reads and writes this
// machine's records (no SSH, no AWS, no debug log).
func localEnv() (workflow.Env, error) {
	dir, err := state.Dir()
	return workflow.Env{StateDir: dir, Store: state.Store{Dir: dir}}, err
}

// withEnv runs fn with a session and the workflows' Env, and adds the
// debug log's path to a failure.
func withEnv(c *cli.Context, logName string, fn func(s *session, env workflow.Env) error) error {
	s, err := openSession(c, logName)
	if err != nil {
		return err
	}
	defer s.Close()
	env, err := s.env(c)
	if err != nil {
		return err
	}
	if err := fn(s, env); err != nil {
		if isUsage(err) {
			return err
		}
		return s.wrap(err)
	}
	return nil
}

// dialOptions reads --connect-timeout where the command has it.
func dialOptions(c *cli.Context) workflow.DialOptions {
	retry := 20 * time.Second
	if hasFlag(c, "connect-timeout") {
		retry = c.Duration("connect-timeout")
	}
	return workflow.DialOptions{RetryFor: retry}
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
