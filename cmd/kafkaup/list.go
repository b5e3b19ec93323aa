package main

import (
	"encoding/json"
	"fmt"
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
	onEC2 := map[string]cloud.Broker{}
	for _, b := range brokers {
		onEC2[b.Name] = b
	}
	for _, r := range all {
		if b, ok := onEC2[r.Name]; ok && r.EC2 != nil {
			fmt.Fprintf(tw, "%s\tec2\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.InstanceID, b.State, r.Bootstrap(), orDash(r.Spec.KafkaVersion), b.InstanceType, age(b.LaunchTime))
			delete(onEC2, r.Name)
			continue
		}
		kind, inst, st := "host", "-", "-"
		if r.EC2 != nil {
			var ids []string
			for _, n := range r.Nodes {
				ids = append(ids, n.InstanceID)
			}
			kind, inst = "ec2", orDash(strings.Join(ids, ","))
			if askedEC2 {
				st = "gone"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t%s\n", r.Name, kind, inst, st, r.Bootstrap(), orDash(r.Spec.KafkaVersion), age(r.Created))
	}
	for _, b := range brokers {
		if _, ok := onEC2[b.Name]; ok {
			fmt.Fprintf(tw, "%s\tec2 (no local record)\t%s\t%s\t%s\t-\t%s\t%s\n", b.Name, b.InstanceID, b.State, orDash(b.PublicIP), b.InstanceType, age(b.LaunchTime))
		}
	}
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
