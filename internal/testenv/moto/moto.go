// Package moto runs moto's server (an AWS emulator: EC2, SSM and STS on one
// endpoint) on loopback for tests, and puts into it what kafkaup's tests
// need that moto does not have: an SSM parameter holding an AMI id (moto
// refuses PutParameter under /aws/) and Elastic IPs at chosen addresses.
//
// Tests never talk to anything but 127.0.0.1: Env and Config point the SDK
// at this server with static test credentials, and disable the instance
// metadata lookup.
package moto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

const (
	// Region is the region Env and Config use.
	Region = "us-east-1"
	// AccessKeyID and SecretAccessKey are the static test credentials.
	AccessKeyID     = "testing"
	SecretAccessKey = "testing"

	// AMIParameterTemplate is the SSM parameter name PutAMIParameters
	// fills, with "{arch}" standing for amd64 or arm64: pass it as the
	// engine's AMIParameter.
	AMIParameterTemplate = "/kafkaup-test/ubuntu/{arch}"

	startLimit = 60 * time.Second
)

// Server is a running moto_server. Close it when done.
type Server struct {
	Port    int
	Started time.Duration // how long Start took

	cmd     *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	waitErr error

	closeOnce sync.Once
	closeErr  error

	amisMu sync.Mutex
	amis   map[string]string // arch -> AMI id, cached: moto's images never change
}

// Start runs moto_server on 127.0.0.1 at a free port with key pair, AMI and
// instance type validation on, and returns once GET /moto-api/ answers 200.
// $MOTO_SERVER overrides the executable (default moto_server on PATH).
func Start(ctx context.Context) (*Server, error) {
	begin := time.Now()
	bin := os.Getenv("MOTO_SERVER")
	if bin == "" {
		bin = "moto_server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("moto: %s not found (pip install 'moto[server]'): %w", bin, err)
	}
	var lastErr error
	// A free port found by listening and closing can be taken by someone
	// else before moto binds it: try a few.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("moto: find a free port: %w", err)
		}
		s, err := start(ctx, path, port)
		if err == nil {
			s.Started = time.Since(begin)
			return s, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, path string, port int) (*Server, error) {
	s := &Server{Port: port, log: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(path, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	s.cmd.Env = append(os.Environ(),
		"MOTO_ENABLE_KEYPAIR_VALIDATION=true",
		"MOTO_ENABLE_AMI_VALIDATION=true",
		"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true",
		// moto itself must never reach out: no AWS config of the caller's.
		"AWS_ACCESS_KEY_ID="+AccessKeyID,
		"AWS_SECRET_ACCESS_KEY="+SecretAccessKey,
		"AWS_EC2_METADATA_DISABLED=true",
	)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("moto: start %s: %w", path, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		cerr := s.Close()
		return nil, errors.Join(fmt.Errorf("moto: start on 127.0.0.1:%d: %w; log:\n%s", port, err, tail(s.log.String(), 2000)), cerr)
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startLimit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/moto-api/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /moto-api/: %s", resp.Status)
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("moto_server exited before it was ready (%v)", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (last: %v)", startLimit, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Endpoint is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) Endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(s.Port) }

// Env is what a process (the kafkaup binary under test) needs in its
// environment to use this server through the SDK's standard configuration:
// the endpoint, static test credentials, the region, no instance metadata
// lookup, no shared config files of this machine's user, few retries.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint(),
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_MAX_ATTEMPTS=2",
		"AWS_RETRY_MODE=standard",
	}
}

// Config returns an SDK configuration for this server without touching the
// process environment: static credentials, Region, the endpoint, two
// attempts per call with short backoff. optFns add to it (e.g. config.WithAPIOptions to inject
// failures).
func (s *Server) Config(ctx context.Context, optFns ...func(*config.LoadOptions) error) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		config.WithBaseEndpoint(s.Endpoint()),
		config.WithRetryer(func() aws.Retryer {
			// Two attempts, short pauses: moto answers at once, and a
			// throttling error injected once is retried quickly.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 2
				o.MaxBackoff = 50 * time.Millisecond
			})
		}),
		config.WithEC2IMDSClientEnableState(0),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	}
	opts = append(opts, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("moto: load SDK config: %w", err)
	}
	return cfg, nil
}

// Reset wipes every resource in every region (POST /moto-api/reset). The
// default VPC and its subnets come back on the next call.
func (s *Server) Reset() error {
	resp, err := http.Post(s.Endpoint()+"/moto-api/reset", "application/json", nil)
	if err != nil {
		return fmt.Errorf("moto: reset: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: reset: %s", resp.Status)
	}
	return nil
}

// Log is what moto_server has written so far (its request log).
func (s *Server) Log() string { return s.log.String() }

// Close stops the server. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		// moto_server is one python process; signal its own process group
		// (Setpgid) so a reloader child, if any, goes too.
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	})
	return s.closeErr
}

// PutAMIParameters writes AMIParameterTemplate for amd64 and arm64, each
// holding an AMI moto knows for that architecture (an Ubuntu image for
// amd64 where moto has one), and returns the template and the two ids.
// Call it again after Reset.
func (s *Server) PutAMIParameters(ctx context.Context) (template string, amis map[string]string, err error) {
	cfg, err := s.Config(ctx)
	if err != nil {
		return "", nil, err
	}
	amis, err = s.imagesByArch(ctx, cfg)
	if err != nil {
		return "", nil, err
	}
	client := ssm.NewFromConfig(cfg)
	for _, arch := range []string{"amd64", "arm64"} {
		name := strings.ReplaceAll(AMIParameterTemplate, "{arch}", arch)
		if _, err := client.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(name), Value: aws.String(amis[arch]), Type: ssmtypes.ParameterTypeString,
			DataType: aws.String("aws:ec2:image"), Overwrite: aws.Bool(true),
		}); err != nil {
			return "", nil, fmt.Errorf("moto: put parameter %s: %w", name, err)
		}
	}
	return AMIParameterTemplate, amis, nil
}

// imagesByArch picks one image per architecture (DescribeImages lists
// about 1200, which takes moto a while: done once per server).
func (s *Server) imagesByArch(ctx context.Context, cfg aws.Config) (map[string]string, error) {
	s.amisMu.Lock()
	defer s.amisMu.Unlock()
	if s.amis != nil {
		return maps.Clone(s.amis), nil
	}
	out, err := ec2.NewFromConfig(cfg).DescribeImages(ctx, &ec2.DescribeImagesInput{})
	if err != nil {
		return nil, fmt.Errorf("moto: describe images: %w", err)
	}
	amis := map[string]string{}
	names := map[string]string{}
	images := out.Images
	sort.Slice(images, func(i, j int) bool { return aws.ToString(images[i].ImageId) < aws.ToString(images[j].ImageId) })
	for _, img := range images {
		arch := ""
		switch img.Architecture {
		case ec2types.ArchitectureValuesX8664:
			arch = "amd64"
		case ec2types.ArchitectureValuesArm64:
			arch = "arm64"
		default:
			continue
		}
		name := strings.ToLower(aws.ToString(img.Name))
		_, have := amis[arch]
		if !have || (strings.Contains(name, "ubuntu") && !strings.Contains(names[arch], "ubuntu")) {
			amis[arch], names[arch] = aws.ToString(img.ImageId), name
		}
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if _, ok := amis[arch]; !ok {
			return nil, fmt.Errorf("moto: no %s image in DescribeImages", arch)
		}
	}
	s.amis = amis
	return maps.Clone(amis), nil
}

// AllocateAddress allocates an untagged Elastic IP at addr (e.g.
// 127.0.0.2), as a user would bring their own, and returns its
// allocation id.
func (s *Server) AllocateAddress(ctx context.Context, addr string) (string, error) {
	cfg, err := s.Config(ctx)
	if err != nil {
		return "", err
	}
	out, err := ec2.NewFromConfig(cfg).AllocateAddress(ctx, &ec2.AllocateAddressInput{
		Domain: ec2types.DomainTypeVpc, Address: aws.String(addr),
	})
	if err != nil {
		return "", fmt.Errorf("moto: allocate address %s: %w", addr, err)
	}
	return aws.ToString(out.AllocationId), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the log bounded: moto logs every request.
	if b.buf.Len() > 1<<20 {
		rest := b.buf.Bytes()[b.buf.Len()-(512<<10):]
		kept := append([]byte(nil), rest...)
		b.buf.Reset()
		b.buf.Write(kept)
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
