package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func nodeCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.IntFlag{Name: "node", Usage: "the node (Kafka node.id) to replace (required)"},
		&cli.StringFlag{Name: "host", Usage: "the new host's SSH address, also what clients are told (default: the recorded one, for a rebuilt host at the same address); not for a cluster made by create, whose new instance kafkaup launches"},
		&cli.StringFlag{Name: "internal-host", Usage: "the address the other nodes reach the new host at (default: --host)"},
		&cli.BoolFlag{Name: "force", Usage: "replace a node that is still a live broker and a caught-up voter (stop its broker first)"},
		&cli.DurationFlag{Name: "console-timeout", Value: cloud.DefaultConsoleTimeout, Usage: "EC2: how long to wait for the new instance's console output to show its SSH host keys (after that, the key is trusted on first use)"},
		&cli.DurationFlag{Name: "wait", Value: workflow.DefaultReplaceWait, Usage: "how long to wait for the new node to catch up, and then for full ISR"},
		jsonFlag(),
	}
	flags = append(flags, connFlags()...)
	replace := &cli.Command{
		Name:      "replace",
		Usage:     "put a dead node of a cluster on a new host: it joins the quorum and its partitions replicate back",
		UsageText: "kafkaup node replace NAME --node N [--host NEWHOST] [--internal-host ADDR]   (a cluster made by provision --host)\n   kafkaup node replace NAME --node N                                          (a cluster made by create --nodes)",
		Description: "For a node whose host is gone. The new host keeps the node's id: it is formatted to join the running\n" +
			"quorum (--no-initial-controllers) and started; the old voter is removed from the metadata quorum and the new\n" +
			"one added; then kafkaup waits until every partition is back to full ISR. Refused when the rest of the\n" +
			"cluster is not a caught-up majority, or when the node is still healthy (unless --force). Interrupted, the\n" +
			"same command picks up where it stopped.\n\n" +
			"On a cluster made by kafkaup create, there is no --host: kafkaup launches the node's new instance in the\n" +
			"old one's subnet and availability zone (its rack), like the other nodes (instance type, AMI, key pair,\n" +
			"security group, root volume, user-data, tags), reads its SSH host keys from its console, records it, and\n" +
			"only then terminates the old instance. A rerun after an interruption finds the instance it launched\n" +
			"(the same idempotency token, and its tags) instead of launching another; destroy removes both at any point.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return usagef("name the cluster: kafkaup node replace NAME --node N --host NEWHOST")
			}
			return withEnv(c, "node-replace-"+safeName(name), func(s *session, env workflow.Env) error {
				o := workflow.ReplaceOptions{Name: name, Node: c.Int("node"), Host: c.String("host"), InternalHost: c.String("internal-host"),
					Force: c.Bool("force"), Dial: dialOptions(c), Wait: c.Duration("wait"), User: c.String("user"), Identity: c.String("identity"),
					ConsoleTimeout: c.Duration("console-timeout")}
				if c.IsSet("port") {
					o.Port = c.Int("port")
				}
				out, err := workflow.ReplaceNode(c.Context, env, o)
				if c.Bool("json") {
					if jerr := writeJSON(c.App.Writer, out, err); jerr != nil {
						return jerr
					}
					return err
				}
				if err == nil {
					printReplaced(c.App.Writer, out)
				}
				return err
			})
		},
	}
	return &cli.Command{
		Name:        "node",
		Usage:       "work on one node of a cluster",
		Subcommands: []*cli.Command{replace},
	}
}

func printReplaced(w io.Writer, out *workflow.ReplaceOutcome) {
	fmt.Fprintf(w, "Node %d of %s now runs on %s (internal %s), directory id %s (was %s).\n", out.Node, out.Name, out.Host, out.InternalHost, out.DirectoryID, out.OldDirectoryID)
	if out.InstanceID != "" {
		old := ""
		if out.OldInstanceID != "" {
			old = fmt.Sprintf("; %s is terminated", out.OldInstanceID)
		}
		fmt.Fprintf(w, "Its instance is %s in %s%s.\n", out.InstanceID, out.Zone, old)
	}
	fmt.Fprintf(w, "The quorum has %d voters:", len(out.Voters))
	for _, v := range out.Voters {
		fmt.Fprintf(w, " %d (%s)", v.ID, v.DirectoryID)
	}
	fmt.Fprintf(w, ".\nEvery partition is back to full ISR (%s after the new voter joined); %s in all.\n", out.CaughtUpIn, out.Took)
	fmt.Fprintf(w, "The other nodes still list the old address in controller.quorum.bootstrap.servers until kafkaup reprovision %s (a rolling change).\n", out.Name)
}
