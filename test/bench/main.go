// Command bench measures `kafkaup provision` against the manual sequence it
// replaces, on identical fresh Debian VMs booted from one image, and prints
// the ratios with a per-step breakdown. Run it with `make bench`.
//
// Aims: full provision <= 0.5 x the manual sequence; no-op rerun <= 5 % of
// the full provision.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// manual is the seed's literal sequence, one SSH command per step.
func manual(url string) []struct{ name, cmd string } {
	return []struct{ name, cmd string }{
		{"apt update", "sudo apt-get update -q"},
		{"apt install openjdk-17-jdk", "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk"},
		{"download", "curl -fsSL -o kafka.tgz " + url},
		{"untar", "tar -xzf kafka.tgz"},
		{"dd 2 GB swapfile", "sudo dd if=/dev/zero of=/swapfile bs=1M count=2048 status=none && sudo chmod 600 /swapfile"},
		{"mkswap", "sudo /usr/sbin/mkswap /swapfile"},
		{"swapon", "sudo /usr/sbin/swapon /swapfile"},
		{"fstab", "echo '/swapfile none swap sw 0 0' | sudo tee -a /etc/fstab"},
		{"format", "cd kafka_2.13-4.0.0 && bin/kafka-storage.sh format --standalone -t $(bin/kafka-storage.sh random-uuid) -c config/server.properties"},
		{"start -daemon", "cd kafka_2.13-4.0.0 && bin/kafka-server-start.sh -daemon config/server.properties && " +
			"until grep -q 'Kafka Server started' logs/server.log 2>/dev/null; do sleep 1; done"},
	}
}

type row struct {
	name string
	took time.Duration
}

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		return err
	}
	defer mirror.Close()
	img, err := vm.BuildImage(ctx)
	if err != nil {
		return err
	}
	url := mirror.URLVia(0, "10.0.2.2", "4.0.0")

	// One VM at a time, so neither run competes with the other for the 2 cores.
	manualRows, manualTotal, err := runManual(ctx, img, url)
	if err != nil {
		return err
	}
	kRows, full, noop, err := runKafkaup(ctx, img, url)
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "manual sequence (seed)\tseconds")
	for _, r := range manualRows {
		fmt.Fprintf(w, "  %s\t%.1f\n", r.name, r.took.Seconds())
	}
	fmt.Fprintf(w, "  total\t%.1f\n", manualTotal.Seconds())
	fmt.Fprintln(w, "kafkaup provision\tseconds")
	for _, r := range kRows {
		fmt.Fprintf(w, "  %s\t%.1f\n", r.name, r.took.Seconds())
	}
	fmt.Fprintf(w, "  total (incl. SSH, observe, verify)\t%.1f\n", full.Seconds())
	fmt.Fprintf(w, "kafkaup no-op rerun\t%.2f\n", noop.Seconds())
	w.Flush()
	fmt.Printf("\nfull provision / manual sequence = %.2f (aim <= 0.50)\n", full.Seconds()/manualTotal.Seconds())
	fmt.Printf("no-op rerun / full provision     = %.3f (aim <= 0.05)\n", noop.Seconds()/full.Seconds())
	return nil
}

func boot(ctx context.Context, img *vm.Image, name string) (*vm.VM, error) {
	return vm.Boot(ctx, img, vm.Options{Name: name, Logf: log.Printf})
}

func runManual(ctx context.Context, img *vm.Image, url string) ([]row, time.Duration, error) {
	v, err := boot(ctx, img, "bench-manual")
	if err != nil {
		return nil, 0, err
	}
	defer v.Close()
	var rows []row
	var total time.Duration
	for _, st := range manual(url) {
		start := time.Now()
		out, err := v.Run(ctx, st.cmd)
		if err != nil && strings.Contains(st.cmd, "apt-get install") {
			// What a person does when a package's setup fails (seen with
			// ca-certificates-java on bookworm): finish configuring, then
			// let apt repair; the time counts against the manual sequence.
			log.Printf("manual: %s failed (%v); running dpkg --configure -a and apt-get install -f", st.name, err)
			out, err = v.Run(ctx, "sudo DEBIAN_FRONTEND=noninteractive dpkg --configure -a; sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q -f && java -version")
		}
		if err != nil {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			return nil, 0, fmt.Errorf("manual step %s: %w\nstdout (tail):\n%s", st.name, err, strings.Join(lines, "\n"))
		}
		took := time.Since(start)
		log.Printf("manual: %-28s %6.1fs", st.name, took.Seconds())
		rows = append(rows, row{st.name, took})
		total += took
	}
	return rows, total, nil
}

func runKafkaup(ctx context.Context, img *vm.Image, url string) ([]row, time.Duration, time.Duration, error) {
	v, err := boot(ctx, img, "bench-kafkaup")
	if err != nil {
		return nil, 0, 0, err
	}
	defer v.Close()
	dir, err := os.MkdirTemp("", "kafkaup-bench")
	if err != nil {
		return nil, 0, 0, err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		return nil, 0, 0, err
	}
	cli, err := harness.NewCLI(bin, dir, v.KeyPath)
	if err != nil {
		return nil, 0, 0, err
	}
	args := append([]string{"provision", "--host", v.Addr, "--kafka-url", url, "--json"}, cli.ConnArgs(v.User)...)
	first := cli.Run(ctx, args...)
	if first.ExitCode != 0 {
		return nil, 0, 0, fmt.Errorf("kafkaup provision:\n%s", first)
	}
	var out struct {
		Result struct {
			Applied []struct {
				ID, Title string
				Seconds   float64
			}
		}
	}
	if err := json.Unmarshal([]byte(first.Stdout), &out); err != nil {
		return nil, 0, 0, err
	}
	var rows []row
	for _, a := range out.Result.Applied {
		rows = append(rows, row{a.ID + ": " + a.Title, time.Duration(a.Seconds * float64(time.Second))})
	}
	second := cli.Run(ctx, args...)
	if second.ExitCode != 0 || !strings.Contains(second.Stdout, `"applied": null`) && !strings.Contains(second.Stdout, `"applied": []`) {
		return nil, 0, 0, fmt.Errorf("no-op rerun was not a no-op:\n%s", second)
	}
	return rows, first.Took, second.Took, nil
}
