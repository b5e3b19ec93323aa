package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/state"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:      "list",
		Usage:     "list the brokers kafkaup knows, and every kafkaup broker on EC2 in the region",
		UsageText: "kafkaup list [--region R] [--local] [--json]",
		Flags: []cli.Flag{
			regionFlag(),
			&cli.BoolFlag{Name: "local", Usage: "only the local records; do not ask AWS"},
			&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
		},
		Action: func(c *cli.Context) error {
			dir, err := state.Dir()
			if err != nil {
				return err
			}
			all, err := state.Store{Dir: dir}.List()
			if err != nil {
				return err
			}
			var brokers []cloud.Broker
			var cloudErr error
			if !c.Bool("local") {
				var cl *cloud.Cloud
				if cl, cloudErr = cloud.New(c.Context, c.String("region")); cloudErr == nil {
					brokers, cloudErr = cl.List(c.Context)
				}
			}
			if c.Bool("json") {
				out := map[string]any{"local": all, "ec2": brokers}
				if cloudErr != nil {
					out["ec2_error"] = cloudErr.Error()
				}
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printList(c, all, brokers, cloudErr == nil && !c.Bool("local"))
			if cloudErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "note: EC2 brokers not listed: %v\n", cloudErr)
			}
			return nil
		},
	}
}

// printList shows the local records beside what EC2 has; askedEC2 says
// whether EC2's answer is complete (so a record it lacks is gone).
func printList(c *cli.Context, all []state.Cluster, brokers []cloud.Broker, askedEC2 bool) {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "NAME\tKIND\tINSTANCE\tSTATE\tADDRESS\tKAFKA\tTYPE\tAGE")
	onEC2 := map[string][]cloud.Broker{} // a cluster has one instance per node
	for _, b := range brokers {
		onEC2[b.Name] = append(onEC2[b.Name], b)
	}
	for _, r := range all {
		if bs, ok := onEC2[r.Name]; ok && r.EC2 != nil {
			ids, states, b := instancesOf(bs)
			fmt.Fprintf(tw, "%s	%s	%s	%s	%s	%s	%s	%s\n", b.Name, ec2Kind(len(bs)), ids, states, r.Bootstrap(), orDash(r.Spec.KafkaVersion), b.InstanceType, age(b.LaunchTime))
			delete(onEC2, r.Name)
			continue
		}
		kind, inst, st := "host", "-", "-"
		if r.EC2 != nil {
			var ids []string
			for _, n := range r.Nodes {
				ids = append(ids, n.InstanceID)
			}
			kind, inst = ec2Kind(len(r.Nodes)), orDash(strings.Trim(strings.Join(ids, ","), ","))
			if askedEC2 {
				st = "gone"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t%s\n", r.Name, kind, inst, st, r.Bootstrap(), orDash(r.Spec.KafkaVersion), age(r.Created))
	}
	for _, b := range brokers {
		if bs, ok := onEC2[b.Name]; ok {
			ids, states, first := instancesOf(bs)
			var addrs []string
			for _, x := range bs {
				addrs = append(addrs, orDash(x.PublicIP))
			}
			fmt.Fprintf(tw, "%s\t%s (no local record)\t%s\t%s\t%s\t-\t%s\t%s\n", b.Name, ec2Kind(len(bs)), ids, states, strings.Join(addrs, ","), first.InstanceType, age(first.LaunchTime))
			delete(onEC2, b.Name)
		}
	}
}

// ec2Kind is the KIND column of an EC2 broker or cluster.
func ec2Kind(nodes int) string {
	if nodes > 1 {
		return fmt.Sprintf("ec2 (%d nodes)", nodes)
	}
	return "ec2"
}

// instancesOf are a cluster's instance ids and states (each state once),
// and its first instance.
func instancesOf(bs []cloud.Broker) (ids, states string, first cloud.Broker) {
	sort.Slice(bs, func(a, b int) bool { return bs[a].Node < bs[b].Node })
	var idl, stl []string
	for _, b := range bs {
		idl = append(idl, b.InstanceID)
		if !slices.Contains(stl, b.State) {
			stl = append(stl, b.State)
		}
	}
	return strings.Join(idl, ","), strings.Join(stl, ","), bs[0]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
