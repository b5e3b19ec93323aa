// Command demo runs kafkaup's main job end to end on a local cloud, with no
// AWS account (internal/testenv/localcloud): moto's EC2 API behind a proxy
// that boots a Debian VM under qemu when kafkaup's RunInstances asks for
// one. The VM is a cloud image: cloud-init makes the user "ubuntu" with the
// key kafkaup imported, the instance gets its public address at launch and
// posts its console output a minute after boot. It runs the real kafkaup
// binary, as a user without SSH keys would (kafkaup makes one), and prints
// each command as you would type it on AWS. Run it with `make demo`.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("demo: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func step(format string, args ...any) { fmt.Printf("\n== %s\n", fmt.Sprintf(format, args...)) }

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	start := time.Now()

	step("setting up the local cloud (Kafka tarball mirror; moto's EC2 API behind a proxy that boots a Debian VM under qemu when an instance is launched)")
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		return err
	}
	defer mirror.Close()
	img, err := vm.BuildCloudImage(ctx)
	if err != nil {
		return err
	}
	lc, err := localcloud.Start(ctx, localcloud.Options{Backend: localcloud.VMs{Image: img}, ConsoleDelay: time.Minute, Logf: log.Printf})
	if err != nil {
		return err
	}
	defer lc.Close()
	amiParam, _, err := lc.Moto.PutAMIParameters(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kafkaup-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		return err
	}
	// A HOME without ~/.ssh: kafkaup makes the instance's key itself.
	home := filepath.Join(dir, "user")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	env := append(os.Environ(), "HOME="+home, "KAFKAUP_HOME="+filepath.Join(dir, "kafkaup-home"), "SSH_AUTH_SOCK=")
	env = append(env, lc.Env()...)
	// What AWS has and the local cloud has not: DNS for the public names,
	// Canonical's AMI parameter, Apache's download site. The caller-IP
	// lookup asks the local cloud's two "what is my IP" services on
	// loopback (KAFKAUP_CALLER_IP_URLS, in lc.Env) instead of the internet's.
	local := []string{"--address", "ip", "--ami-parameter", amiParam,
		"--kafka-url", mirror.URLVia(0, "10.0.2.2", "4.0.0")}
	fmt.Printf("ready in %s: EC2 at %s (moto behind the local cloud's proxy); instances boot when launched\n", time.Since(start).Round(time.Second), lc.Endpoint)
	fmt.Printf("this machine's public IP is looked up at the local cloud's services: %s=%s\n", localcloud.CallerIPURLsEnv, strings.Join(lc.CallerIPURLs, ","))

	kafkaup := func(onAWS string, args []string, stdin string) error {
		fmt.Printf("\n$ %s\n", onAWS)
		if len(args) > len(strings.Fields(onAWS))-1 {
			fmt.Printf("  (here with: %s)\n", strings.Join(args[len(strings.Fields(onAWS))-1:], " "))
		}
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", onAWS, err)
		}
		return nil
	}
	create := append([]string{"create", "demo", "--yes", "--topics", "orders"}, local...)
	steps := []struct {
		onAWS string
		args  []string
		stdin string
	}{
		{"kafkaup create demo --yes --topics orders", create, ""},
		{"kafkaup list", []string{"list"}, ""},
		{"kafkaup produce demo orders", []string{"produce", "demo", "orders"}, "first order\nsecond order\n"},
		{"kafkaup consume demo orders --from-beginning --max 2", []string{"consume", "demo", "orders", "--from-beginning", "--max", "2"}, ""},
		{"kafkaup status demo", []string{"status", "demo"}, ""},
		{"kafkaup destroy demo --yes", []string{"destroy", "demo", "--yes"}, ""},
	}
	for _, st := range steps {
		if err := kafkaup(st.onAWS, st.args, st.stdin); err != nil {
			return err
		}
	}

	cfg, err := lc.Config(ctx)
	if err != nil {
		return err
	}
	cl, err := cloud.NewFromConfig(ctx, cfg)
	if err != nil {
		return err
	}
	left, err := cl.Find(ctx, "demo")
	if err != nil {
		return err
	}
	if !left.Empty() {
		return fmt.Errorf("destroy left %v", left.Lines())
	}
	for _, i := range lc.Instances() {
		if err := i.WaitIdle(ctx); err != nil {
			return err
		}
		if i.Running() {
			return fmt.Errorf("instance %s still runs after destroy", i.ID)
		}
	}
	step("done in %s: created, used and destroyed; nothing tagged as kafkaup's is left in the (local) cloud", time.Since(start).Round(time.Second))
	fmt.Println("On AWS, with your credentials configured (aws configure, AWS_PROFILE or SSO), the same commands work without the \"here with\" flags.")

	return nil
}
