// Package testssh is the tests' own SSH client for asserting on disposable
// hosts (VMs and namespace hosts the tests created). It skips host key
// checks because those hosts are minted per test; product code never uses it.
package testssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// Target says where and as whom to log in.
type Target struct {
	Addr    string // host or IP
	Port    int    // 22 when zero
	User    string
	KeyPath string // private key file (OpenSSH format)
}

func (t Target) hostPort() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Addr, strconv.Itoa(port))
}

func (t Target) config() (*ssh.ClientConfig, error) {
	pem, err := os.ReadFile(t.KeyPath)
	if err != nil {
		return nil, fmt.Errorf("read test key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("parse test key %s: %w", t.KeyPath, err)
	}
	return &ssh.ClientConfig{
		User:            t.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), // test hosts are minted per test
		Timeout:         10 * time.Second,
	}, nil
}

// Run runs cmd on the target and returns its stdout. A non-zero exit is an
// error that includes stderr.
func Run(ctx context.Context, t Target, cmd string) (string, error) {
	cfg, err := t.config()
	if err != nil {
		return "", err
	}
	client, err := ssh.Dial("tcp", t.hostPort(), cfg)
	if err != nil {
		return "", fmt.Errorf("ssh %s@%s: %w", t.User, t.hostPort(), err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return "", fmt.Errorf("ssh session %s: %w", t.hostPort(), err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		client.Close()
		return stdout.String(), fmt.Errorf("ssh %s: %q: %w", t.hostPort(), cmd, ctx.Err())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("ssh %s: %q: %w; stderr: %s", t.hostPort(), cmd, err, stderr.String())
	}
	return stdout.String(), nil
}

// WaitLogin retries a real SSH login (not just an open port) until it works
// or ctx ends.
func WaitLogin(ctx context.Context, t Target) error {
	var last error
	for {
		_, err := Run(ctx, t, "true")
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for ssh login on %s: %w (last error: %v)", t.hostPort(), ctx.Err(), last)
		case <-time.After(time.Second):
		}
	}
}

// EnsureKey returns the path of an ed25519 private key in dir (and writes
// PATH.pub beside it), creating the pair on first use.
func EnsureKey(dir string) (string, error) {
	path := filepath.Join(dir, "id_ed25519")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "kafkaup-test")
	if err != nil {
		return "", err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}
