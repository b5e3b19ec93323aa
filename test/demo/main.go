// Command demo runs kafkaup's main job end to end on a local cloud, with no
// AWS account: moto's EC2 API on loopback and a Debian VM under qemu that
// plays the instance (an Elastic IP allocated in moto at the VM's loopback
// address makes the "public address" reach it). It runs the real kafkaup
// binary and prints each command as you would type it on AWS. Run it with
// `make demo`.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/moto"
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

	step("setting up the local cloud (Kafka tarball mirror, moto's EC2 API, a Debian VM under qemu)")
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		return err
	}
	defer mirror.Close()
	m, err := moto.Start(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	amiParam, _, err := m.PutAMIParameters(ctx)
	if err != nil {
		return err
	}
	img, err := vm.BuildImage(ctx)
	if err != nil {
		return err
	}
	v, err := vm.Boot(ctx, img, vm.Options{Name: "demo", Logf: log.Printf})
	if err != nil {
		return err
	}
	defer v.Close()
	eip, err := m.AllocateAddress(ctx, v.Addr)
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
	env := append(os.Environ(), "KAFKAUP_HOME="+dir+"/home", "SSH_AUTH_SOCK=")
	env = append(env, m.Env()...)
	url := mirror.URLVia(0, v.HostGateway, "4.0.0")
	local := []string{"--eip-allocation", eip, "--allow-cidr", "127.0.0.1/32", "--ssh-key", v.KeyPath + ".pub", "--identity", v.KeyPath,
		"--user", v.User, "--address", "ip", "--ami-parameter", amiParam, "--kafka-url", url}
	fmt.Printf("ready in %s: moto at %s, VM at %s (its Elastic IP in moto)\n", time.Since(start).Round(time.Second), m.Endpoint(), v.Addr)

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

	cfg, err := m.Config(ctx)
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
	step("done in %s: created, used and destroyed; nothing tagged as kafkaup's is left in the (local) cloud", time.Since(start).Round(time.Second))
	fmt.Println("On AWS, with your credentials configured (aws configure, AWS_PROFILE or SSO), the same commands work without the \"here with\" flags.")

	return nil
}
