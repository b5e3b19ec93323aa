package workflow

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
)

// TestCreateKeepsAllowedCIDRs: the allowed CIDRs are recorded, and a rerun
// of create without --allow-cidr keeps them (it used to replace them with
// the caller's current /32); new ones given replace them.
func TestCreateKeepsAllowedCIDRs(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	o := createOptions()
	o.Request.AllowCIDRs = []string{"192.0.2.0/24", "198.51.100.7/32"}
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	rec, _ := f.store.Load("demo")
	if fmt.Sprint(rec.EC2.AllowCIDRs) != "[192.0.2.0/24 198.51.100.7/32]" {
		t.Fatalf("recorded %v", rec.EC2.AllowCIDRs)
	}
	f.env.CallerIP = func(context.Context) (string, error) { return "203.0.113.99", nil }
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if got := f.cloud.lastReq.AllowCIDRs; fmt.Sprint(got) != "[192.0.2.0/24 198.51.100.7/32]" {
		t.Errorf("a rerun asked for %v", got)
	}
	o = createOptions()
	o.Request.AllowCIDRs = []string{"203.0.113.0/24"}
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	if rec, _ = f.store.Load("demo"); fmt.Sprint(f.cloud.lastReq.AllowCIDRs, rec.EC2.AllowCIDRs) != "[203.0.113.0/24] [203.0.113.0/24]" {
		t.Errorf("new CIDRs: asked %v, recorded %v", f.cloud.lastReq.AllowCIDRs, rec.EC2.AllowCIDRs)
	}

	// No --allow-cidr at the first create: the caller's /32, recorded.
	g := newFakes(t)
	if _, err := Create(context.Background(), g.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if rec, _ := g.store.Load("demo"); fmt.Sprint(rec.EC2.AllowCIDRs) != "[198.51.100.7/32]" {
		t.Errorf("recorded %v", rec.EC2.AllowCIDRs)
	}
}

// writeKey writes an OpenSSH key pair NAME and NAME.pub in dir (the private
// half encrypted when passphrase is set) and returns the private path.
func writeKey(t *testing.T, dir, name string, priv any, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(priv, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
	os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644)
	return path
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func newECDSA(t *testing.T) *ecdsa.PrivateKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestCreateSSHKeys: EC2 imports only RSA and ED25519 keys. A default
// ECDSA key is skipped (the next default, else a generated key); an
// explicit one is a usage error; a passphrase key that ssh-agent does not
// hold, or an --identity that does not match, is refused before any AWS
// call.
func TestCreateSSHKeys(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	run := func(t *testing.T, o CreateOptions) (*fakes, error) {
		f := newFakes(t)
		clouds := 0
		newCloud := f.env.NewCloud
		f.env.NewCloud = func(ctx context.Context, region string) (Cloud, error) { clouds++; return newCloud(ctx, region) }
		_, err := Create(context.Background(), f.env, o)
		if err != nil && clouds > 0 {
			t.Errorf("AWS was called before the key was refused (%v)", err)
		}
		return f, err
	}
	t.Run("default ECDSA skipped, kafkaup makes a key", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		writeKey(t, filepath.Join(home, ".ssh"), "id_ecdsa", newECDSA(t), "")
		f, err := run(t, createOptions())
		if err != nil {
			t.Fatal(err)
		}
		if f.cloud.lastReq.SSHPublicKey != nil || !f.ui.said("EC2 imports only RSA and ED25519") {
			t.Errorf("imported %q; said:\n%s", f.cloud.lastReq.SSHPublicKey, strings.Join(f.ui.lines, "\n"))
		}
	})
	t.Run("default ECDSA skipped for the next default", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv("HOME", home)
		writeKey(t, filepath.Join(home, ".ssh"), "id_ecdsa", newECDSA(t), "")
		ed := writeKey(t, filepath.Join(home, ".ssh"), "id_rsa", newEd25519(t), "") // any importable key under the last default name
		f, err := run(t, createOptions())
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := os.ReadFile(ed + ".pub")
		if string(f.cloud.lastReq.SSHPublicKey) != string(pub) || f.dial.dials[0].Identity != ed {
			t.Errorf("imported %q with identity %s", f.cloud.lastReq.SSHPublicKey, f.dial.dials[0].Identity)
		}
	})
	for name, tc := range map[string]struct {
		setup func(t *testing.T, dir string) CreateOptions
		want  string
	}{
		"explicit ECDSA": {func(t *testing.T, dir string) CreateOptions {
			o := createOptions()
			o.SSHKey = writeKey(t, dir, "k", newECDSA(t), "") + ".pub"
			return o
		}, "EC2 imports only RSA and ED25519"},
		"passphrase, no agent": {func(t *testing.T, dir string) CreateOptions {
			writeKey(t, filepath.Join(dir, ".ssh"), "id_ed25519", newEd25519(t), "secret")
			return createOptions()
		}, "ssh-add"},
		"identity of another key": {func(t *testing.T, dir string) CreateOptions {
			o := createOptions()
			o.SSHKey = writeKey(t, dir, "a", newEd25519(t), "") + ".pub"
			o.Identity = writeKey(t, dir, "b", newEd25519(t), "")
			return o
		}, "is not the private key"},
	} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home)
			f, err := run(t, tc.setup(t, home))
			var ie *provision.InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error with %q", err, tc.want)
			}
			if f.cloud.created > 0 {
				t.Error("an instance was launched")
			}
		})
	}
}
