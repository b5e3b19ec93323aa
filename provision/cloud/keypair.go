package cloud

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"golang.org/x/crypto/ssh"
)

// ensureKeyPair returns the key pair's name. The broker's tagged key pair
// is kept if it holds the requested key (or, when no key was given, if an
// instance already uses it); otherwise it is replaced, which is only
// possible before the instance exists.
func (cr *creation) ensureKeyPair(ctx context.Context, haveInstance bool) (string, error) {
	c, name := cr.c, cr.name
	rn := ResourceName(name)
	kp, err := ensureOwned(ctx, c, name, ownedKind[types.KeyPairInfo]{
		kind: "key pair", createOp: "import", duplicate: "InvalidKeyPair.Duplicate",
		deleteHint: " (aws ec2 delete-key-pair --key-name " + rn + ")",
		id:         func(kp types.KeyPairInfo) string { return aws.ToString(kp.KeyPairId) },
		tags:       func(kp types.KeyPairInfo) []types.Tag { return kp.Tags },
		tagged: func(ctx context.Context) ([]types.KeyPairInfo, error) {
			return c.describeKeyPairs(ctx, brokerFilters(name))
		},
		named: func(ctx context.Context) (*types.KeyPairInfo, error) { return cr.keyPairByName(ctx, rn) },
		keep: func(ctx context.Context, kp types.KeyPairInfo) (bool, error) {
			return cr.keepKeyPair(ctx, kp, haveInstance)
		},
		create: cr.importKeyPair,
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(kp.KeyName), nil
}

// keepKeyPair decides about the broker's existing key pair kp: keep it,
// refuse, or delete it to be replaced (keep false, nil error).
func (cr *creation) keepKeyPair(ctx context.Context, kp types.KeyPairInfo, haveInstance bool) (bool, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)
	same, known := samePublicKey(aws.ToString(kp.PublicKey), p.pubKey)
	switch {
	case p.pubKey == nil && haveInstance:
		c.logf("key pair %s: found %s (its private key was returned when it was created)", rn, aws.ToString(kp.KeyPairId))
		return true, nil
	case p.pubKey != nil && (same || !known):
		c.logf("key pair %s: found %s", rn, aws.ToString(kp.KeyPairId))
		return true, nil
	case haveInstance:
		return false, fmt.Errorf("key pair %s holds another public key than the one given, and the instance was launched with it: pass the key it was created with, or destroy broker %s and create it again", aws.ToString(kp.KeyName), name)
	}
	// No instance yet: replace it with the requested (or a new) key.
	c.logf("key pair %s: replacing %s (no instance uses it yet)", rn, aws.ToString(kp.KeyPairId))
	if _, err := c.EC2.DeleteKeyPair(ctx, &ec2.DeleteKeyPairInput{KeyName: kp.KeyName}); err != nil && !hasCode(err, "InvalidKeyPair.NotFound") {
		return false, fmt.Errorf("delete key pair %s to replace it: %w", aws.ToString(kp.KeyPairId), err)
	}
	return false, nil
}

// importKeyPair imports the requested public key, or a new one whose
// private half it keeps in cr.privateKey.
func (cr *creation) importKeyPair(ctx context.Context) (*types.KeyPairInfo, error) {
	c, p, name := cr.c, cr.p, cr.name
	rn := ResourceName(name)
	pub, priv := p.pubKey, []byte(nil)
	if pub == nil {
		var err error
		if priv, pub, err = generateKey(rn); err != nil {
			return nil, err
		}
	}
	out, err := c.EC2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
		KeyName:           aws.String(rn),
		PublicKeyMaterial: ssh.MarshalAuthorizedKey(pub),
		TagSpecifications: tagSpec(types.ResourceTypeKeyPair, name),
	})
	if err != nil {
		return nil, err
	}
	cr.privateKey = priv
	cr.made.KeyPairs = append(cr.made.KeyPairs, KeyPair{ID: aws.ToString(out.KeyPairId), Name: rn})
	c.logf("key pair %s: imported %s", rn, aws.ToString(out.KeyPairId))
	return &types.KeyPairInfo{KeyPairId: out.KeyPairId, KeyName: aws.String(rn)}, nil
}

// keyPairByName is the key pair named rn, waiting for EC2 to show it
// (ImportKeyPair has just said it exists).
func (cr *creation) keyPairByName(ctx context.Context, rn string) (*types.KeyPairInfo, error) {
	var kp *types.KeyPairInfo
	err := cr.c.untilVisible(ctx, "find key pair "+rn+" by name", notYet("InvalidKeyPair.NotFound"), func() error {
		out, err := cr.c.EC2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{rn}, IncludePublicKey: aws.Bool(true)})
		if err != nil {
			return err
		}
		for _, k := range out.KeyPairs {
			if aws.ToString(k.KeyName) == rn {
				kp = &k
				return nil
			}
		}
		return errNotListed
	})
	return kp, err
}

// samePublicKey compares an authorized_keys line from AWS with want.
// known is false when AWS did not return the key.
func samePublicKey(line string, want ssh.PublicKey) (same, known bool) {
	if line == "" || want == nil {
		return false, line != ""
	}
	got, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return false, false
	}
	return bytes.Equal(got.Marshal(), want.Marshal()), true
}

// generateKey makes an ed25519 key: its OpenSSH private key PEM and public
// key.
func generateKey(comment string) ([]byte, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate an ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the ed25519 key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(block), sshPub, nil
}
