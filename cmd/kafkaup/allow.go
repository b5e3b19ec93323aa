package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func allowCommand() *cli.Command {
	return &cli.Command{
		Name:      "allow",
		Usage:     "let more addresses reach an EC2 broker (SSH, Kafka, metrics), or take some out; with none, list who may",
		UsageText: "kafkaup allow NAME [CIDR...] [--my-ip] [--revoke] [--json]",
		Description: "Changes the broker's security group and remembers the result (a rerun of create keeps it).\n" +
			"When your public IP changed and SSH or 9092 time out: kafkaup allow NAME --my-ip (and --revoke the old one).",
		Flags: []cli.Flag{
			regionFlag(),
			&cli.BoolFlag{Name: "my-ip", Usage: "this machine's public IP (as a /32)"},
			callerIPURLFlag(),
			&cli.BoolFlag{Name: "revoke", Usage: "take the given addresses out instead of letting them in"},
			&cli.BoolFlag{Name: "open-to-world", Usage: "allow 0.0.0.0/0 or ::/0 on a broker without TLS and a login"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return usagef("name the broker: kafkaup allow NAME [CIDR...|--my-ip] (kafkaup list shows them)")
			}
			o := workflow.AllowOptions{Name: name, Region: c.String("region"), CIDRs: splitList(c.Args().Tail()),
				MyIP: c.Bool("my-ip"), Revoke: c.Bool("revoke"), OpenToWorld: c.Bool("open-to-world")}
			return withEnv(c, "allow-"+safeName(name), func(s *session, env workflow.Env) error {
				out, err := workflow.Allow(c.Context, env, o)
				if err != nil || c.Bool("json") {
					return jsonOr(c, out, err)
				}
				ports := make([]string, len(out.Ports))
				for i, p := range out.Ports {
					ports[i] = fmt.Sprint(p)
				}
				switch {
				case len(out.Revoked) > 0:
					fmt.Fprintf(c.App.Writer, "Revoked %s.\n", strings.Join(out.Revoked, ", "))
				case len(out.Added) > 0:
					fmt.Fprintf(c.App.Writer, "Allowed %s.\n", strings.Join(out.Added, ", "))
				}
				allowed := strings.Join(out.Allowed, ", ")
				if allowed == "" {
					allowed = "no address"
				}
				fmt.Fprintf(c.App.Writer, "Broker %s in %s lets in %s on TCP %s.\n", name, out.Region, allowed, strings.Join(ports, ", "))
				return nil
			})
		},
	}
}

// callerIPURLFlag is where create and allow --my-ip look up this machine's
// public IP.
func callerIPURLFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "caller-ip-url", EnvVars: []string{cloud.CallerIPURLsEnv},
		Usage: "service answering with this machine's public IP as plain text, repeatable; all are asked (never through a proxy) and must agree (default: " +
			strings.Join(cloud.DefaultCallerIPURLs, ", ") + ")"}
}
