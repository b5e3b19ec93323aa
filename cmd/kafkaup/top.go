package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// The terminal's alternate screen: top draws there, and the user's screen
// comes back as it was when it exits.
const (
	enterAltScreen = "\x1b[?1049h\x1b[?25l"
	leaveAltScreen = "\x1b[?25h\x1b[?1049l"
	homeAndClear   = "\x1b[H\x1b[2J"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:      "top",
		Usage:     "a live view: records/s per topic, lag and its trend per group, heap, RSS, swap and disk per node",
		UsageText: "kafkaup top NAME [--interval 3s] [--once] [--json]",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "interval", Value: 3 * time.Second, Usage: "time between refreshes (rates are over it)"},
			&cli.BoolFlag{Name: "once", Usage: "print one frame (two samples one interval apart) and exit; the default without a terminal"},
			jsonFlag(),
			knownHostsFlag(), strictHostKeyFlag(),
		},
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return usagef("name the broker: kafkaup top NAME (kafkaup list shows them)")
			}
			if c.Duration("interval") < 100*time.Millisecond {
				return usagef("--interval %s is too short: use 100ms or more", c.Duration("interval"))
			}
			live := !c.Bool("once") && !c.Bool("json") && isTerminal(c.App.Writer)
			frames := 1
			if live {
				frames = 0
			}
			return withEnv(c, "top-"+safeName(name), func(s *session, env workflow.Env) error {
				show := func(f workflow.TopFrame) error {
					if c.Bool("json") {
						return writeJSON(c.App.Writer, f, nil)
					}
					printTop(c.App.Writer, name, f)
					return nil
				}
				if live {
					fmt.Fprint(c.App.Writer, enterAltScreen)
					defer fmt.Fprint(c.App.Writer, leaveAltScreen)
					show = func(f workflow.TopFrame) error {
						var buf bytes.Buffer
						printTop(&buf, name, f)
						fmt.Fprintf(&buf, "\nrefreshing every %s; Ctrl-C to quit\n", c.Duration("interval"))
						_, err := fmt.Fprint(c.App.Writer, homeAndClear+buf.String())
						return err
					}
				}
				return workflow.Top(c.Context, env, workflow.TopOptions{Name: name, Interval: c.Duration("interval"), Frames: frames,
					Dial: dialOptions(c), Show: show})
			})
		},
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printTop(w io.Writer, name string, f workflow.TopFrame) {
	fmt.Fprintf(w, "%s at %s: %d broker(s), %d under-replicated, %d offline partition(s)\n\n", name, f.Time.Format("15:04:05"), f.Brokers, f.UnderReplicated, f.Offline)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRECORDS\tRECORDS/S\t")
	for _, t := range f.Topics {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", t.Name, t.Partitions, t.Records, rate(t.RecordsPerSec, t.RateKnown, false))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "GROUP\tLAG\tTREND/S\t")
	for _, g := range f.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", g.Name, count(g.Lag), rate(g.LagPerSec, g.Known, true))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NODE\tHOST\tHEAP USED/MAX\tRSS\tSWAP USED\tDATA FREE\tUNDER-REPL\t")
	for _, n := range f.Nodes {
		if n.Error != "" {
			fmt.Fprintf(tw, "%d\t%s\t%s\t\t\t\t\t\n", n.ID, n.Host, n.Error)
			continue
		}
		heap := "-"
		if n.HeapUsedBytes > 0 {
			heap = provision.FormatSize(n.HeapUsedBytes)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s/%s\t%s\t%s\t%s\t%d\t\n", n.ID, n.Host, heap, orDash(n.HeapMax), provision.FormatSize(n.RSSBytes),
			provision.FormatSize(n.SwapUsedBytes), provision.FormatSize(n.DataFreeBytes), n.UnderReplicated)
	}
	tw.Flush()
}

// rate shows a per-second figure; signed shows + for growth (lag trends).
func rate(v float64, known, signed bool) string {
	switch {
	case !known:
		return "-"
	case signed:
		return fmt.Sprintf("%+.1f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
