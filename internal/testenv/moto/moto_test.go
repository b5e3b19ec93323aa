package moto

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t.Logf("moto on %s, started in %s", s.Endpoint(), s.Started)
	if !strings.HasPrefix(s.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("endpoint %s is not on loopback", s.Endpoint())
	}
	env := strings.Join(s.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT_URL=" + s.Endpoint(), "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=2"} {
		if !strings.Contains(env, want) {
			t.Errorf("Env() lacks %s", want)
		}
	}

	tmpl, amis, err := s.PutAMIParameters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ssmc, ec2c := ssm.NewFromConfig(cfg), ec2.NewFromConfig(cfg)
	for _, arch := range []string{"amd64", "arm64"} {
		name := strings.ReplaceAll(tmpl, "{arch}", arch)
		out, err := ssmc.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		if got := aws.ToString(out.Parameter.Value); got != amis[arch] {
			t.Errorf("%s = %s, want %s", name, got, amis[arch])
		}
		img, err := ec2c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amis[arch]}})
		if err != nil || len(img.Images) != 1 {
			t.Fatalf("describe %s: %v", amis[arch], err)
		}
		if a := string(img.Images[0].Architecture); (arch == "amd64") != (a == "x86_64") {
			t.Errorf("%s image %s is %s", arch, amis[arch], a)
		}
	}

	alloc, err := s.AllocateAddress(ctx, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := ec2c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	if err != nil || len(addrs.Addresses) != 1 || aws.ToString(addrs.Addresses[0].PublicIp) != "127.0.0.2" {
		t.Fatalf("allocated address: %+v, %v", addrs, err)
	}

	if err := s.Reset(); err != nil {
		t.Fatal(err)
	}
	addrs, err = ec2c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if err != nil || len(addrs.Addresses) != 0 {
		t.Fatalf("after reset: %d addresses, %v", len(addrs.Addresses), err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(s.Endpoint() + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatal("moto still answers after Close")
	}
}
