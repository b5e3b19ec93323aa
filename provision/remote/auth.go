package remote

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultIdentityFiles are tried, in order, when no identity is given.
var DefaultIdentityFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// Auth returns the SSH authentication to use: the given identity file, or
// else the ssh-agent and the usual keys in ~/.ssh. An encrypted key is used
// through the agent when the agent holds it.
func Auth(identityFile string) ([]ssh.AuthMethod, error) {
	signers, err := Signers(identityFile)
	if err != nil {
		return nil, err
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, nil
}

// Signers are the keys Auth offers: the identity file's (an encrypted one
// through ssh-agent, else an error saying to ssh-add it), or else every key
// ssh-agent holds and every default key in ~/.ssh that loads without a
// passphrase. None at all is an error with advice.
func Signers(identityFile string) ([]ssh.Signer, error) {
	agentSigners, agentErr := agentSigners()
	if identityFile != "" {
		signer, err := loadKey(identityFile, agentSigners)
		if err != nil {
			return nil, err
		}
		return []ssh.Signer{signer}, nil
	}
	signers := append([]ssh.Signer{}, agentSigners...)
	home, _ := os.UserHomeDir()
	for _, name := range DefaultIdentityFiles {
		path := filepath.Join(home, ".ssh", name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if s, err := loadKey(path, agentSigners); err == nil {
			signers = append(signers, s)
		}
	}
	if len(signers) == 0 {
		msg := "no SSH key to log in with: pass --identity with your private key file, or load it into ssh-agent (ssh-add)"
		if agentErr != nil {
			msg += fmt.Sprintf(" (ssh-agent: %v)", agentErr)
		}
		return nil, errors.New(msg)
	}
	return signers, nil
}

func loadKey(path string, agentSigners []ssh.Signer) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SSH key %s: %w. Check the path given to --identity and that you can read it", path, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case errors.As(err, &missing):
		if missing.PublicKey != nil {
			for _, s := range agentSigners {
				if string(s.PublicKey().Marshal()) == string(missing.PublicKey.Marshal()) {
					return s, nil
				}
			}
		}
		return nil, fmt.Errorf("the SSH key %s is protected by a passphrase and ssh-agent does not hold it: run `ssh-add %s` and retry", path, path)
	default:
		return nil, fmt.Errorf("%s is not a private key kafkaup can read (%v): pass --identity with an OpenSSH or PEM private key", path, err)
	}
}

func agentSigners() ([]ssh.Signer, error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("SSH_AUTH_SOCK is not set")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("connect to ssh-agent: %w", err)
	}
	// The connection stays open for the life of the process: signing
	// happens during every handshake.
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("list ssh-agent keys: %w", err)
	}
	return signers, nil
}
