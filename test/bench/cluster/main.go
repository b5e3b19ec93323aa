// Command cluster measures kafkaup's cluster work on namespace hosts: a
// 3-node `provision --host a,b,c` against a 1-node provision on the same
// kind of host (aim <= 1.3: the nodes are provisioned in parallel), once
// with every host free to use all of this machine's cores and once with
// each host limited to a third of them (as EC2 instances, which do not
// share vCPUs), and against three single brokers provisioned at once (the
// same load on this machine's cores, without the cluster); and a rolling
// restart seen by kafkaup's no-loss checker (an idempotent acks=all
// producer and a consumer): the longest producer stall and the p99
// produce latency during the roll, against the steady state. Run it with
// `make bench`.
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

// hosts is eleven namespace hosts and a Kafka mirror each resolves as
// kafkaup-mirror: 0 for the single broker, 1-3 for the cluster (on a
// private LAN), 4-6 for three single brokers set up at once, and 7-10 the
// same as 0-3 with each host's CPU limited to its share of this machine
// (7 the single broker, 8-10 the cluster).
type hosts struct {
	all             [11]*nshost.Host
	internal        [3]string // the cluster nodes' LAN addresses
	limitedInternal [3]string // the limited cluster nodes' LAN addresses
	// limit is the CPU each of hosts 7-10 gets: 0.9 of this machine's
	// cores / 3, so three of them never wait for each other's CPU, as three
	// EC2 instances each have vCPUs of their own. 0: this machine cannot
	// limit.
	limit   float64
	url     string
	closers []func() error
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
	var errs [11]error
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
		if h.limitedInternal[i], err = lan.Join(ctx, h.all[8+i]); err != nil {
			return h, err
		}
	}
	// A tenth of the machine stays for kafkaup and the checker, which on
	// AWS run on the user's laptop.
	h.limit = float64(runtime.NumCPU()) * 0.9 / 3
	for _, x := range h.all[7:] {
		if err := x.LimitCPU(h.limit); errors.Is(err, nshost.ErrNoCPUController) {
			log.Printf("no CPU limits on this machine (%v): the limited rows are left out", err)
			h.limit = 0
			break
		} else if err != nil {
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
	for i, x := range h.all[4:7] {
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

	// The same two provisions on hosts limited to their share of the CPU.
	var limitedOne, limitedThree harness.Result
	if h.limit > 0 {
		limitedOne = cli.Run(ctx, append([]string{"provision", "--host", h.all[7].Addr, "--name", "solo-limited"}, common...)...)
		if limitedOne.ExitCode != 0 {
			return fmt.Errorf("1-node provision on a limited host:\n%s", limitedOne)
		}
		log.Printf("1-node provision, %.2f cores: %s\n%s", h.limit, limitedOne.Took.Round(time.Millisecond), stepLines(limitedOne.Stderr))
		if r := cli.Run(ctx, "broker", "stop", "solo-limited"); r.ExitCode != 0 {
			return fmt.Errorf("stop solo-limited:\n%s", r)
		}
		limitedThree = cli.Run(ctx, append([]string{"provision", "--host", addrs(h.all[8:]), "--internal-host", strings.Join(h.limitedInternal[:], ","), "--name", "trio-limited"}, common...)...)
		if limitedThree.ExitCode != 0 {
			return fmt.Errorf("3-node provision on limited hosts:\n%s", limitedThree)
		}
		log.Printf("3-node provision, %.2f cores each: %s\n%s", h.limit, limitedThree.Took.Round(time.Millisecond), stepLines(limitedThree.Stderr))
		// Done with the limited hosts: close them, so their brokers take no
		// CPU from what follows. (Stopping the nodes one by one would take
		// the last one 5 minutes: its broker waits for a controller quorum
		// that is gone.)
		for _, x := range h.all[7:] {
			if err := x.Close(); err != nil {
				return err
			}
		}
	}

	var boot []string
	for _, x := range h.all[1:4] {
		boot = append(boot, x.Addr+":9092")
	}
	three := cli.Run(ctx, append([]string{"provision", "--host", addrs(h.all[1:4]), "--internal-host", strings.Join(h.internal[:], ","), "--name", "trio"}, common...)...)
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
	if h.limit > 0 {
		fmt.Fprintf(w, "  1-node provision, host limited to %.2f cores\t%.1f s\n", h.limit, limitedOne.Took.Seconds())
		fmt.Fprintf(w, "  3-node provision, each host limited to %.2f cores\t%.1f s\n", h.limit, limitedThree.Took.Seconds())
	}
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
	if h.limit > 0 {
		fmt.Printf("3-node provision / 1-node provision, each host limited to %.2f cores = %.2f (aim <= 1.30: as on EC2, where each node has CPUs of its own)\n",
			h.limit, limitedThree.Took.Seconds()/limitedOne.Took.Seconds())
	}
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

// addrs is the hosts' SSH addresses, comma-separated for --host.
func addrs(hs []*nshost.Host) string {
	var out []string
	for _, x := range hs {
		out = append(out, x.Addr)
	}
	return strings.Join(out, ",")
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
