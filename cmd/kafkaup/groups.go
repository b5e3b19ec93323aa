package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func groupsCommand() *cli.Command {
	return &cli.Command{
		Name:  "groups",
		Usage: "consumer groups: list, describe (members and lag per partition), delete, reset offsets",
		Subcommands: []*cli.Command{
			{
				Name:      "list",
				Usage:     "list consumer groups with their state, members and total lag",
				UsageText: "kafkaup groups list NAME [--json]",
				Flags:     []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
						groups, err := cl.ListGroups(ctx)
						if err != nil || c.Bool("json") {
							return jsonOr(c, groups, err)
						}
						tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
						fmt.Fprintln(tw, "GROUP\tTYPE\tSTATE\tMEMBERS\tLAG")
						for _, g := range groups {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.Type, g.State, count(int64(g.Members)), lagText(g.Lag, g.LagUnknown))
						}
						return tw.Flush()
					})
				},
			},
			{
				Name:      "describe",
				Usage:     "show a group's members and, per partition, committed offset, end offset and lag",
				UsageText: "kafkaup groups describe NAME GROUP [--json]",
				Flags:     []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					group, err := groupArg(c)
					if err != nil {
						return err
					}
					return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
						g, err := cl.DescribeGroup(ctx, group)
						if err != nil || c.Bool("json") {
							return jsonOr(c, g, groupError(err))
						}
						printGroup(c.App.Writer, g)
						return nil
					})
				},
			},
			{
				Name:      "delete",
				Usage:     "delete a group and its committed offsets (refused while it has members; asks first unless --yes)",
				UsageText: "kafkaup groups delete NAME GROUP [--yes]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask"}},
				Action: func(c *cli.Context) error {
					group, err := groupArg(c)
					if err != nil {
						return err
					}
					if !c.Bool("yes") {
						if ok, err := confirm(c, fmt.Sprintf("Delete consumer group %s and its committed offsets on %s?", group, c.Args().First())); err != nil || !ok {
							return err
						}
					}
					return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
						if err := cl.DeleteGroup(ctx, group); err != nil {
							return groupError(err)
						}
						fmt.Fprintf(c.App.Writer, "deleted consumer group %s on %s\n", group, b.Name())
						return nil
					})
				},
			},
			resetOffsetsCommand(),
		},
	}
}

func resetOffsetsCommand() *cli.Command {
	return &cli.Command{
		Name:      "reset-offsets",
		Usage:     "move a stopped group's offsets on a topic; shows the plan unless --execute",
		UsageText: "kafkaup groups reset-offsets NAME GROUP --topic T (--to-earliest | --to-latest | --to-datetime 2026-12-01T10:00:00Z | --shift-by -100) [--execute]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "topic", Usage: "the topic whose offsets move (required)"},
			&cli.BoolFlag{Name: "to-earliest", Usage: "to the oldest record still kept"},
			&cli.BoolFlag{Name: "to-latest", Usage: "to the end: skip everything not yet read"},
			&cli.StringFlag{Name: "to-datetime", Usage: "to the first record at or after this time (RFC 3339, 2006-01-02T15:04:05 local, or 2006-01-02)"},
			&cli.Int64Flag{Name: "shift-by", Usage: "by N records (negative: back), kept within the partition"},
			&cli.BoolFlag{Name: "execute", Usage: "apply the plan (without it, only show it)"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			group, err := groupArg(c)
			if err != nil {
				return err
			}
			topic := c.String("topic")
			if topic == "" {
				return usagef("--topic is required: the topic whose offsets move")
			}
			if err := kafkaclient.ValidateTopicName(topic); err != nil {
				return usage(err)
			}
			var shift *int64
			if c.IsSet("shift-by") {
				v := c.Int64("shift-by")
				shift = &v
			}
			to, err := kafkaclient.ParseResetTarget(c.Bool("to-earliest"), c.Bool("to-latest"), c.String("to-datetime"), shift)
			if err != nil {
				return usage(err)
			}
			return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
				plan, err := cl.PlanReset(ctx, group, topic, to)
				if err != nil {
					return groupError(err)
				}
				if c.Bool("execute") {
					if err := cl.ExecuteReset(ctx, plan); err != nil {
						return groupError(err)
					}
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, map[string]any{"plan": plan, "executed": c.Bool("execute")}, nil)
				}
				printResetPlan(c.App.Writer, plan, c.Bool("execute"))
				return nil
			})
		},
	}
}

// groupError makes the group errors the user can cause usage errors.
func groupError(err error) error {
	var unknown *kafkaclient.UnknownGroupError
	var active *kafkaclient.GroupActiveError
	var noTopic *kafkaclient.NoTopicError
	if errors.As(err, &unknown) || errors.As(err, &active) || errors.As(err, &noTopic) {
		return usage(err)
	}
	return err
}

func groupArg(c *cli.Context) (string, error) {
	if c.Args().Len() < 2 || c.Args().Get(1) == "" {
		return "", usagef("usage: %s", c.Command.UsageText)
	}
	return c.Args().Get(1), nil
}

// jsonOr prints v as JSON when there is no error, and returns err.
func jsonOr(c *cli.Context, v any, err error) error {
	if err != nil {
		return err
	}
	return writeJSON(c.App.Writer, v, nil)
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func lagText(lag int64, unknown int) string {
	switch {
	case lag < 0:
		return "-"
	case unknown > 0:
		return fmt.Sprintf("%d (+%d partitions unknown)", lag, unknown)
	}
	return fmt.Sprint(lag)
}

func printGroup(w io.Writer, g *kafkaclient.GroupInfo) {
	fmt.Fprintf(w, "group %s (%s): %s, %d member(s), coordinator node %d, lag %s\n", g.Name, g.Type, g.State, len(g.Members), g.Coordinator, lagText(g.Lag, g.LagUnknown))
	if len(g.Members) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tASSIGNED")
		for _, m := range g.Members {
			var assigned []string
			for _, a := range m.Assigned {
				assigned = append(assigned, fmt.Sprintf("%s%v", a.Topic, a.Partitions))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", m.ID, m.ClientID, m.Host, assigned)
		}
		tw.Flush()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tCLIENT")
	for _, p := range g.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, count(p.Committed), count(p.End), count(p.Lag), orDash(p.ClientID))
	}
	tw.Flush()
}

func printResetPlan(w io.Writer, p *kafkaclient.ResetPlan, executed bool) {
	verb := "would move"
	if executed {
		verb = "moved"
	}
	fmt.Fprintf(w, "group %s on %s, reset to %s: %s %d of %d partition(s)\n", p.Group, p.Topic, p.Target, verb, p.Changes(), len(p.Partitions))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tCURRENT\tNEW\tLEFT TO READ")
	for _, part := range p.Partitions {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\n", part.Partition, count(part.Current), part.New, part.End-part.New)
	}
	tw.Flush()
	if !executed {
		fmt.Fprintln(w, "Nothing changed: add --execute to apply.")
	}
}
