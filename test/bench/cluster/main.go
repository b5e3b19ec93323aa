// Command cluster measures kafkaup's cluster work on namespace hosts: a
// 3-node `provision --host a,b,c` against a 1-node provision on the same
// kind of host (aim <= 1.3: the nodes are provisioned in parallel) and
// against three single brokers provisioned at once (the same load on this
// machine's cores, without the cluster), and a
// rolling restart seen by kafkaup's no-loss checker (an idempotent
// acks=all producer and a consumer): the longest producer stall and the
// p99 produce latency during the roll, against the steady state. Run it
// with `make bench`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatalf("bench cluster: %v", err)
	}
}

// hosts is seven namespace hosts (one for the single broker, three for the
// cluster, on a private LAN, and three for three single brokers set up at
// once) and a Kafka mirror each resolves as kafkaup-mirror.
type hosts struct {
	all      [7]*nshost.Host
	internal [3]string // the cluster nodes' LAN addresses
	url      string
	closers  []func() error
}

func (h *hosts) close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		if err := h.closers[i](); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}
}

func setup(ctx context.Context) (*hosts, error) {
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		return nil, err
	}
	h := &hosts{}
	lan, err := nshost.NewLAN(ctx)
	if err != nil {
		return nil, err
	}
	h.closers = append(h.closers, lan.Close)
	var errs [7]error
	var wg sync.WaitGroup
	for i := range h.all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.all[i], errs[i] = nshost.Start(ctx, nshost.Options{Name: fmt.Sprintf("kafkaup-bench%d", i)})
		}()
	}
	wg.Wait()
	for i, x := range h.all {
		if x != nil {
			h.closers = append(h.closers, x.Close)
		}
		if errs[i] != nil {
			return h, errs[i]
		}
	}
	for i, x := range h.all[1:4] {
		if h.internal[i], err = lan.Join(ctx, x); err != nil {
			return h, err
		}
	}
	mirror, err := kafkadist.StartMirror([]*kafkadist.Dist{dist}, h.all[0].HostSideAddr+":0")
	if err != nil {
		return h, err
	}
	h.closers = append(h.closers, mirror.Close)
	port := mirror.Port(0)
	for i, x := range h.all {
		if i > 0 {
			if _, err := mirror.AddListener(fmt.Sprintf("%s:%d", x.HostSideAddr, port)); err != nil {
				return h, err
			}
		}
		if _, err := x.Run(ctx, "echo '"+x.HostSideAddr+" kafkaup-mirror' >>/etc/hosts"); err != nil {
			return h, err
		}
	}
	h.url = strings.Replace(mirror.URL(0, "4.0.0"), h.all[0].HostSideAddr, "kafkaup-mirror", 1)
	return h, nil
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	h, err := setup(ctx)
	defer h.close()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kafkaup-bench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		return err
	}
	cli, err := harness.NewCLI(bin, dir, h.all[0].KeyPath)
	if err != nil {
		return err
	}
	common := append([]string{"--swap", "0", "--kafka-url", h.url}, cli.ConnArgs("root")...)

	one := cli.Run(ctx, append([]string{"provision", "--host", h.all[0].Addr, "--name", "solo"}, common...)...)
	if one.ExitCode != 0 {
		return fmt.Errorf("1-node provision:\n%s", one)
	}
	log.Printf("1-node provision: %s\n%s", one.Took.Round(time.Millisecond), stepLines(one.Stderr))
	// The single broker stops, so it does not take CPU from the cluster's run.
	if r := cli.Run(ctx, "broker", "stop", "solo"); r.ExitCode != 0 {
		return fmt.Errorf("stop the single broker:\n%s", r)
	}
	// Three single brokers at once, on three more hosts: the same CPU load
	// as the cluster's three nodes on this machine's cores, without the
	// cluster. The cluster's time against this is what clustering costs.
	singles := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, x := range h.all[4:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("single%d", i+1)
			if r := cli.Run(ctx, append([]string{"provision", "--host", x.Addr, "--name", name}, common...)...); r.ExitCode != 0 {
				errs[i] = fmt.Errorf("provision %s:\n%s", name, r)
				return
			}
			if r := cli.Run(ctx, "broker", "stop", name); r.ExitCode != 0 {
				errs[i] = fmt.Errorf("stop %s:\n%s", name, r)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	threeSingles := time.Since(singles)
	log.Printf("3 single brokers at once: %s", threeSingles.Round(time.Millisecond))

	var public, boot []string
	for _, x := range h.all[1:4] {
		public = append(public, x.Addr)
		boot = append(boot, x.Addr+":9092")
	}
	three := cli.Run(ctx, append([]string{"provision", "--host", strings.Join(public, ","), "--internal-host", strings.Join(h.internal[:], ","), "--name", "trio"}, common...)...)
	if three.ExitCode != 0 {
		return fmt.Errorf("3-node provision:\n%s", three)
	}
	log.Printf("3-node provision: %s\n%s", three.Took.Round(time.Millisecond), stepLines(three.Stderr))

	cl, err := kafkaclient.Dial(ctx, strings.Join(boot, ","))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.CreateTopic(ctx, kafkaclient.TopicSpec{Name: "bench-check", Partitions: 3, ReplicationFactor: 3}); err != nil {
		return err
	}
	steady, err := checked(ctx, cl, func() error { time.Sleep(30 * time.Second); return nil })
	if err != nil {
		return err
	}
	var roll harness.Result
	rolling, err := checked(ctx, cl, func() error {
		roll = cli.Run(ctx, "broker", "restart", "trio")
		if roll.ExitCode != 0 {
			return fmt.Errorf("rolling restart:\n%s", roll)
		}
		return nil
	})
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "cluster (namespace hosts)\tvalue")
	fmt.Fprintf(w, "  1-node provision\t%.1f s\n", one.Took.Seconds())
	fmt.Fprintf(w, "  3 single brokers provisioned at once (no cluster)\t%.1f s\n", threeSingles.Seconds())
	fmt.Fprintf(w, "  3-node provision (nodes in parallel)\t%.1f s\n", three.Took.Seconds())
	fmt.Fprintf(w, "  rolling restart of 3 nodes\t%.1f s\n", roll.Took.Seconds())
	fmt.Fprintln(w, "produce (acks=all, 1 record / 20 ms)\tsteady 30 s\tduring the roll")
	fmt.Fprintf(w, "  acknowledged / lost / duplicated\t%d / %d / %d\t%d / %d / %d\n", steady.Acked, steady.Lost, steady.Duplicated, rolling.Acked, rolling.Lost, rolling.Duplicated)
	fmt.Fprintf(w, "  longest stall\t%s\t%s\n", ms(steady.LongestStall), ms(rolling.LongestStall))
	fmt.Fprintf(w, "  latency p50\t%s\t%s\n", ms(steady.P50), ms(rolling.P50))
	fmt.Fprintf(w, "  latency p99\t%s\t%s\n", ms(steady.P99), ms(rolling.P99))
	w.Flush()
	fmt.Printf("\n3-node provision / 1-node provision = %.2f (aim <= 1.30)\n", three.Took.Seconds()/one.Took.Seconds())
	fmt.Printf("3-node provision / 3 single brokers at once = %.2f (what clustering costs when the three share this machine's %d cores)\n",
		three.Took.Seconds()/threeSingles.Seconds(), runtime.NumCPU())
	if rolling.Lost > 0 || steady.Lost > 0 {
		return fmt.Errorf("acknowledged records lost: steady %v, rolling %v", steady, rolling)
	}
	return nil
}

// checked runs fn with the no-loss checker producing and consuming.
func checked(ctx context.Context, cl *kafkaclient.Client, fn func() error) (kafkaclient.CheckReport, error) {
	k, err := kafkaclient.StartCheck(ctx, cl, kafkaclient.CheckOptions{Topic: "bench-check"})
	if err != nil {
		return kafkaclient.CheckReport{}, err
	}
	ferr := fn()
	stopCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := k.Stop(stopCtx)
	if ferr != nil {
		return rep, ferr
	}
	return rep, err
}

// stepLines are a provision's finished steps with their durations, for
// where the time went.
func stepLines(stderr string) string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, " ok ") || strings.Contains(l, "verif") {
			out = append(out, "  "+strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
