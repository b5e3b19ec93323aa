// Command headstart measures `kafkaup create` to the first produce with
// and without the head start, on identical fresh instances of the local
// cloud's VM backend, and prints the ratio and both timelines. `make bench`
// runs it after the provisioning bench.
//
// Aim: with / without <= 0.7 on the local cloud.
//
// -apt-at-boot runs apt's daily jobs at first boot (as an overdue cloud
// image does); both runs then wait for them, up to --apt-lock-timeout 30m
// (this machine's mirror link is slow).
//
// -together (the default) runs both creates at once, so that other load on
// this machine slows both alike; -together=false runs them in turn.
//
// -rate limits the tarball's download (MB/s) to model a slow mirror: at
// archive.apache.org's few Mbit/s the download is the longest phase of a
// create, and the head start's gain is how much of it hides behind the
// boot.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

func main() {
	log.SetFlags(0)
	rate := flag.Float64("rate", 0, "serve the Kafka tarball at this many MB/s (0: as fast as the local mirror goes)")
	aptAtBoot := flag.Bool("apt-at-boot", false, "run apt's daily jobs (update, unattended-upgrades) at first boot, as overdue cloud images do")
	together := flag.Bool("together", true, "run both creates at once (paired: any other load on this machine slows both alike); -together=false runs them one after the other")
	flag.Parse()
	if err := run(*rate, *aptAtBoot, *together); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

type outcome struct {
	name     string
	took     time.Duration // the CLI's wall time
	timeline *provision.Timeline
}

// firstProduce is when the first produce and consume finished, from the
// start of create.
func (o outcome) firstProduce() float64 {
	if p, ok := o.timeline.Find("first produce"); ok {
		return p.End()
	}
	return o.took.Seconds()
}

func run(rate float64, aptAtBoot, together bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	dist, err := kafkadist.Build(ctx, "4.0.0")
	if err != nil {
		return err
	}
	port, stop, err := serve(dist, rate)
	if err != nil {
		return err
	}
	defer stop()
	url := fmt.Sprintf("http://10.0.2.2:%d/kafka/4.0.0/%s", port, dist.FileName)
	img, err := vm.BuildCloudImage(ctx)
	if err != nil {
		return err
	}
	opts := localcloud.Options{Backend: localcloud.VMs{Image: img}, Logf: func(string, ...any) {}}
	if together {
		opts.MaxRunning = 2
	}
	if aptAtBoot {
		opts.VendorData = localcloud.VendorDataAPTAtFirstBoot
	}
	cl, err := localcloud.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	amiParam, _, err := cl.Moto.PutAMIParameters(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kafkaup-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key, err := testssh.EnsureKey(dir)
	if err != nil {
		return err
	}
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		return err
	}
	cli, err := harness.NewCLI(bin, dir, key)
	if err != nil {
		return err
	}
	cli.Env = cl.Env()
	create := func(name string, extra ...string) (outcome, error) {
		args := append([]string{"create", name, "--yes", "--json", "--instance-type", "t3.small", "--allow-cidr", "127.0.0.1/32",
			"--ssh-key", key + ".pub", "--identity", key, "--user", localcloud.DefaultUser, "--address", "ip",
			"--ami-parameter", amiParam, "--kafka-url", url, "--apt-lock-timeout", "30m"}, extra...)
		log.Printf("create %s %s ...", name, strings.Join(extra, " "))
		r := cli.Run(ctx, args...)
		if r.ExitCode != 0 {
			return outcome{}, fmt.Errorf("create %s failed:\n%s", name, r)
		}
		var out struct {
			Result struct {
				Timeline *provision.Timeline `json:"timeline"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || out.Result.Timeline == nil {
			return outcome{}, fmt.Errorf("create %s: no timeline in --json (%v)", name, err)
		}
		if d := cli.Run(ctx, "destroy", name, "--yes"); d.ExitCode != 0 {
			return outcome{}, fmt.Errorf("destroy %s:\n%s", name, d)
		}
		return outcome{name: name, took: r.Took, timeline: out.Result.Timeline}, nil
	}
	var without, with outcome
	if together {
		// Both at once, so that whatever else loads this machine loads both
		// alike: run one after the other, the second ran under other load
		// than the first (seen: 1.18 with helpers' tests starting midway).
		var errWithout, errWith error
		done := make(chan struct{})
		go func() {
			defer close(done)
			without, errWithout = create("bench-without", "--no-head-start")
		}()
		with, errWith = create("bench-with")
		<-done
		if err := errors.Join(errWithout, errWith); err != nil {
			return err
		}
	} else {
		// Without first: a VM image's page cache warms for whoever boots second.
		if without, err = create("bench-without", "--no-head-start"); err != nil {
			return err
		}
		if with, err = create("bench-with"); err != nil {
			return err
		}
	}
	for _, o := range []outcome{without, with} {
		fmt.Printf("\n%s: create -> first produce %.1fs (the CLI ran %.1fs)\n", o.name, o.firstProduce(), o.took.Seconds())
		for _, l := range o.timeline.Lines() {
			fmt.Println("  " + l)
		}
	}
	ratio := with.firstProduce() / without.firstProduce()
	verdict := "meets"
	if ratio > 0.7 {
		verdict = "misses"
	}
	mirror := "the local mirror"
	if rate > 0 {
		mirror = fmt.Sprintf("a mirror at %.2f MB/s", rate)
	}
	fmt.Printf("\ncreate -> first produce on the local cloud (VM, t3.small, %s): with the head start %.1fs, without %.1fs: ratio %.2f (%s the aim of 0.7)\n",
		mirror, with.firstProduce(), without.firstProduce(), ratio, verdict)
	return nil
}

// serve serves dist's tarball and .sha512 on 127.0.0.1 (the VMs reach it
// as 10.0.2.2), the tarball at rate MB/s when rate > 0.
func serve(d *kafkadist.Dist, rate float64) (int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/"+d.FileName+".sha512"):
			http.ServeFile(w, r, d.SHA512File)
		case strings.HasSuffix(r.URL.Path, "/"+d.FileName) && rate > 0:
			f, err := os.Open(d.Tarball)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
			chunk := int64(rate * 1e6 / 10)
			for {
				if _, err := io.CopyN(w, f, chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		case strings.HasSuffix(r.URL.Path, "/"+d.FileName):
			http.ServeFile(w, r, d.Tarball)
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	return l.Addr().(*net.TCPAddr).Port, func() { srv.Close() }, nil
}
