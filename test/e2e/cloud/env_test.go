package cloud_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// env is a local cloud with kafkaup pointed at it: the cloud, the SDK
// clients a test checks it with, and the CLI with its SSH key.
type env struct {
	lc       *localcloud.Cloud
	cloud    *cloud.Cloud
	ec2      *ec2.Client
	cli      *harness.CLI
	key      string // the SSH key kafkaup imports and logs in with
	url      string // the Kafka mirror as the instances reach it
	amiParam string // the SSM parameter that names the AMI
}

// startCloud starts the local cloud with opts (closed when the test
// ends), puts the AMI parameters in its SSM, and builds the CLI with a
// fresh SSH key and the cloud's environment.
func startCloud(ctx context.Context, t *testing.T, opts localcloud.Options) *env {
	t.Helper()
	e := &env{}
	var err error
	if e.lc, err = localcloud.Start(ctx, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.lc.Close(); err != nil {
			t.Error(err)
		}
	})
	if e.amiParam, _, err = e.lc.Moto.PutAMIParameters(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.lc.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.cloud, err = cloud.NewFromConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.ec2 = ec2.NewFromConfig(cfg)
	dir := t.TempDir()
	if e.key, err = testssh.EnsureKey(filepath.Join(dir, "ssh")); err != nil {
		t.Fatal(err)
	}
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e.cli, err = harness.NewCLI(bin, dir, e.key); err != nil {
		t.Fatal(err)
	}
	// A HOME of its own: this machine's ~/.ssh/known_hosts stays out of it.
	e.cli.Env = append(e.lc.Env(), "HOME="+dir)
	return e
}
