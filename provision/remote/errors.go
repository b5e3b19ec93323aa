package remote

import (
	"fmt"
	"strings"
)

// ExitAdvice is the exit status kafkaup's scripts use (through `die`) for a
// failure the user can fix; the last "kafkaup: " line of stderr says how.
const ExitAdvice = 3

// exitNoSudo is what the sudo wrapper exits with when the login user has no
// passwordless sudo.
const exitNoSudo = 97

// ProcessError is a remote command that ran and failed.
type ProcessError struct {
	Name       string // the step or script name
	Host       string
	ExitStatus int
	StderrTail string // the last lines of stderr
}

func (e *ProcessError) Error() string {
	if advice := e.Advice(); advice != "" {
		return advice
	}
	tail := strings.TrimSpace(e.StderrTail)
	if tail == "" {
		tail = "(no output on stderr)"
	}
	return fmt.Sprintf("%s on %s exited with status %d; last output:\n%s", e.Name, e.Host, e.ExitStatus, indent(tail))
}

// Advice returns the script's own message for a failure the user can fix.
func (e *ProcessError) Advice() string {
	if e.ExitStatus != ExitAdvice {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(e.StderrTail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if msg, ok := strings.CutPrefix(lines[i], "kafkaup: "); ok {
			return msg
		}
	}
	return ""
}

// NoSudoError says the login user cannot become root without a password.
type NoSudoError struct {
	User, Host string
}

func (e *NoSudoError) Error() string {
	return fmt.Sprintf("user %q on %s cannot run sudo without a password, and kafkaup needs root to install packages, add swap and run the broker as a service. "+
		"Log in as a user who has passwordless sudo (--user), or give %s one with a line like '%s ALL=(ALL) NOPASSWD:ALL' in /etc/sudoers.d/kafkaup, then rerun.",
		e.User, e.Host, e.User, e.User)
}

// AuthError is a host that refused every key offered for User: the wrong
// --user or --identity, or, on a new instance, a key cloud-init has not
// installed yet (Config.RetryAuth retries it). Err is what
// golang.org/x/crypto/ssh said.
type AuthError struct {
	Addr string // host:port
	User string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s refused the SSH key for user %q (%v). Check --user (ubuntu on Ubuntu images, admin or debian on Debian) and --identity (the private key whose public half is in the host's authorized_keys)", e.Addr, e.User, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// HostKeyMismatchError is a host whose key differs from the one recorded.
type HostKeyMismatchError struct {
	Host        string
	Fingerprint string // what the host presented now
	KnownIn     string // file:line of the recorded key, or where the expected keys came from
	// Expected are the keys the host had to present (type and
	// fingerprint), when they came from the instance's console output
	// rather than a known_hosts file.
	Expected []string
}

func (e *HostKeyMismatchError) Error() string {
	if len(e.Expected) > 0 {
		return fmt.Sprintf("the SSH host key of %s (%s) is not one of the keys the instance printed on its console at first boot (%s, from %s). "+
			"The address may now belong to another machine, or someone is intercepting the connection. kafkaup stopped before sending anything to the host. "+
			"Check the instance in the EC2 console (Actions, Monitor and troubleshoot, Get system log) before going on.",
			e.Host, e.Fingerprint, strings.Join(e.Expected, ", "), e.KnownIn)
	}
	return fmt.Sprintf("the SSH host key of %s (%s) does not match the one recorded in %s. "+
		"Either the host was rebuilt, or someone is intercepting the connection. kafkaup stopped before sending anything. "+
		"If you rebuilt the host on purpose, remove the old key (ssh-keygen -R %s -f FILE for the file above) and rerun.",
		e.Host, e.Fingerprint, e.KnownIn, e.Host)
}

// UnreachableError is a host that did not answer on its SSH port in time
// (Timeout) or could not be routed to: typically a firewall or security
// group that does not let this machine in.
type UnreachableError struct {
	Addr    string // host:port
	Port    int
	Timeout bool // the connection timed out (no answer at all)
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s (%v). Check the address, and that a firewall or security group lets this machine reach port %d", e.Addr, e.Err, e.Port)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
