package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/workflow"
	"github.com/kafkaup/kafkaup/scripts"
)

// withKafka runs fn with a Kafka client for the broker named by the first
// argument.
func withKafka(c *cli.Context, fn func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error) error {
	return withBroker(c, c.Command.Name, func(s *session, env workflow.Env, b *workflow.Broker) error {
		cl, err := b.Kafka(c.Context)
		if err != nil {
			var unreachable *kafkaclient.UnreachableError
			if errors.As(err, &unreachable) && hasFlag(c, "via-ssh") {
				return fmt.Errorf("%w. To work through the host instead, add --via-ssh", err)
			}
			return err
		}
		defer cl.Close()
		return fn(c.Context, b, cl)
	})
}

func topicsCommand() *cli.Command {
	viaSSH := &cli.BoolFlag{Name: "via-ssh", Usage: "run Kafka's own kafka-topics.sh on the host over SSH (when 9092 is not reachable from here)"}
	return &cli.Command{
		Name:  "topics",
		Usage: "create, list, describe and delete topics (over the Kafka protocol from here)",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a topic",
				UsageText: "kafkaup topics create NAME TOPIC [--partitions 1] [--replication-factor N] [--config retention.ms=86400000 ...]",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "partitions", Aliases: []string{"p"}, Value: 1, Usage: "number of partitions"},
					&cli.IntFlag{Name: "replication-factor", Aliases: []string{"r"}, Usage: "replicas per partition (default: 3 on a cluster of 3 or more nodes, else one per node; a single node allows 1)"},
					&cli.StringSliceFlag{Name: "config", Aliases: []string{"c"}, Usage: "topic config KEY=VALUE, repeatable"},
					viaSSH,
				},
				Action: topicsCreate,
			},
			{
				Name:      "list",
				Usage:     "list topics",
				UsageText: "kafkaup topics list NAME [--all] [--json]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "include internal topics"},
					&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
					viaSSH,
				},
				Action: topicsList,
			},
			{
				Name:      "describe",
				Usage:     "show a topic's partitions, offsets and configs",
				UsageText: "kafkaup topics describe NAME TOPIC [--json]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print as JSON"}, viaSSH},
				Action:    topicsDescribe,
			},
			{
				Name:      "delete",
				Usage:     "delete a topic and its data (asks first unless --yes)",
				UsageText: "kafkaup topics delete NAME TOPIC [--yes]",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask"}, viaSSH},
				Action:    topicsDelete,
			},
		},
	}
}

// topicsCreate is `kafkaup topics create NAME TOPIC`.
func topicsCreate(c *cli.Context) error {
	topic, err := topicArg(c)
	if err != nil {
		return err
	}
	if c.Int("partitions") < 1 || c.Int("partitions") > 100000 {
		return usagef("--partitions must be between 1 and 100000")
	}
	if c.IsSet("replication-factor") && (c.Int("replication-factor") < 1 || c.Int("replication-factor") > 32767) {
		return usagef("--replication-factor must be at least 1")
	}
	configs, err := kafkaclient.ParseConfigs(c.StringSlice("config"))
	if err != nil {
		return usagef("--config: %v", err)
	}
	if c.Bool("via-ssh") {
		return topicsViaSSH(c, "create", topic, c.Int("partitions"), c.Int("replication-factor"), c.StringSlice("config"))
	}
	return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
		err := cl.CreateTopic(ctx, kafkaclient.TopicSpec{Name: topic, Partitions: int32(c.Int("partitions")),
			ReplicationFactor: int16(replicationFactor(c, b)), Configs: configs})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "created topic %s (%d partitions) on %s\n", topic, c.Int("partitions"), b.Name())
		if w := kafkaclient.CollisionWarning(topic); w != "" {
			fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", w)
		}
		return nil
	})
}

// topicsList is `kafkaup topics list NAME`.
func topicsList(c *cli.Context) error {
	if c.Bool("via-ssh") {
		return topicsViaSSH(c, "list", "", 0, 0, nil)
	}
	return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
		topics, err := cl.ListTopics(ctx, c.Bool("all"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, topics, nil)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION")
		for _, t := range topics {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", t.Name, len(t.Partitions), t.ReplicationFactor)
		}
		return tw.Flush()
	})
}

// topicsDescribe is `kafkaup topics describe NAME TOPIC`.
func topicsDescribe(c *cli.Context) error {
	topic, err := topicArg(c)
	if err != nil {
		return err
	}
	if c.Bool("via-ssh") {
		return topicsViaSSH(c, "describe", topic, 0, 0, nil)
	}
	return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
		t, err := cl.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, t, nil)
		}
		printTopic(c.App.Writer, t)
		return nil
	})
}

// topicsDelete is `kafkaup topics delete NAME TOPIC` (asks first unless --yes).
func topicsDelete(c *cli.Context) error {
	topic, err := topicArg(c)
	if err != nil {
		return err
	}
	if !c.Bool("yes") {
		ok, err := confirm(c, fmt.Sprintf("Delete topic %s and all its messages on %s?", topic, c.Args().First()))
		if err != nil || !ok {
			return err
		}
	}
	if c.Bool("via-ssh") {
		return topicsViaSSH(c, "delete", topic, 0, 0, nil)
	}
	return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
		if err := cl.DeleteTopic(ctx, topic); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "deleted topic %s on %s\n", topic, b.Name())
		return nil
	})
}

// topicArg reads and validates TOPIC, the second argument.
func topicArg(c *cli.Context) (string, error) {
	if c.Args().Len() < 2 {
		return "", usagef("usage: %s", c.Command.UsageText)
	}
	topic := c.Args().Get(1)
	if err := kafkaclient.ValidateTopicName(topic); err != nil {
		return "", usage(err)
	}
	return topic, nil
}

// confirm asks a yes/no question on the terminal; without a terminal it
// refuses and says to pass --yes.
func confirm(c *cli.Context, question string) (bool, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return false, usagef("%s Not asking without a terminal: pass --yes to confirm", question)
	}
	fmt.Fprintf(c.App.ErrWriter, "%s [y/N] ", question)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a == "y" || a == "yes" {
		return true, nil
	}
	fmt.Fprintln(c.App.ErrWriter, "nothing done")
	return false, nil
}

func printTopic(w io.Writer, t *kafkaclient.TopicInfo) {
	fmt.Fprintf(w, "topic %s (id %s): %d partitions, replication factor %d\n", t.Name, t.ID, len(t.Partitions), t.ReplicationFactor)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tISR\tSTART\tEND")
	for _, p := range t.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%v\t%v\t%d\t%d\n", p.ID, p.Leader, p.Replicas, p.ISR, p.StartOffset, p.EndOffset)
	}
	tw.Flush()
	if len(t.Configs) > 0 {
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "configs:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s=%s\n", k, t.Configs[k])
		}
	}
}

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:      "produce",
		Usage:     "send messages to a topic: each --message, or each line of stdin",
		UsageText: "echo hello | kafkaup produce NAME TOPIC    or    kafkaup produce NAME TOPIC --message hello",
		Flags: []cli.Flag{&cli.StringSliceFlag{Name: "message", Aliases: []string{"m"}, Usage: "a message to send, repeatable (stdin is read when none)"},
			&cli.DurationFlag{Name: "check", Usage: "instead: run kafkaup's no-loss check (acks=all producer and a consumer) this long and report lost, duplicated, longest stall, latency"}},
		Action: func(c *cli.Context) error {
			topic, err := topicArg(c)
			if err != nil {
				return err
			}
			if c.IsSet("check") {
				return checkAction(c, topic)
			}
			var values [][]byte
			for _, m := range c.StringSlice("message") {
				values = append(values, []byte(m))
			}
			if len(values) == 0 {
				sc := bufio.NewScanner(os.Stdin)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					values = append(values, append([]byte(nil), sc.Bytes()...))
				}
				if err := sc.Err(); err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
			}
			if len(values) == 0 {
				return usagef("nothing to send: give --message or lines on stdin")
			}
			return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
				n, err := cl.Produce(ctx, topic, values)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "sent %d message(s) to %s on %s\n", n, topic, b.Name())
				return nil
			})
		},
	}
}

// checkAction is produce --check: the report on stdout.
func checkAction(c *cli.Context, topic string) error {
	if c.Duration("check") <= 0 || len(c.StringSlice("message")) > 0 {
		return usagef("--check takes a positive duration (--check 5m) and no --message")
	}
	return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
		fmt.Fprintf(c.App.ErrWriter, "checking %s on %s for %s (Ctrl-C stops early)...\n", topic, b.Name(), c.Duration("check"))
		rep, err := workflow.Check(ctx, cl, workflow.CheckOptions{Topic: topic, For: c.Duration("check")})
		if rep.Acked > 0 || err == nil {
			fmt.Fprintf(c.App.Writer, "%v\n", rep)
		}
		return err
	})
}

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:      "consume",
		Usage:     "print messages from a topic, one per line",
		UsageText: "kafkaup consume NAME TOPIC [--from-beginning] [--max N] [--idle 5s]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "from-beginning", Usage: "start at the oldest message instead of new ones"},
			&cli.IntFlag{Name: "max", Usage: "stop after N messages (0: no limit)"},
			&cli.DurationFlag{Name: "idle", Usage: "stop after this long without a new message (0: keep following until interrupted)"},
		},
		Action: func(c *cli.Context) error {
			topic, err := topicArg(c)
			if err != nil {
				return err
			}
			if c.Int("max") < 0 || c.Duration("idle") < 0 {
				return usagef("--max and --idle must not be negative")
			}
			return withKafka(c, func(ctx context.Context, b *workflow.Broker, cl *kafkaclient.Client) error {
				out := bufio.NewWriter(c.App.Writer)
				defer out.Flush()
				_, err := cl.Consume(ctx, topic, c.Bool("from-beginning"), c.Int("max"), c.Duration("idle"), func(m kafkaclient.Message) error {
					out.Write(m.Value)
					out.WriteByte('\n')
					if c.Int("max") > 0 || c.Duration("idle") > 0 {
						return nil
					}
					return out.Flush() // following: show each message as it comes
				})
				if ctx.Err() != nil {
					return nil // interrupted while following
				}
				return err
			})
		},
	}
}

// replicationFactor is --replication-factor, or the cluster's default:
// 3, or every node on a smaller cluster.
func replicationFactor(c *cli.Context, b *workflow.Broker) int {
	if c.IsSet("replication-factor") {
		return c.Int("replication-factor")
	}
	return provision.ReplicationFactor(len(b.Record.Nodes))
}

// topicsViaSSH runs the broker's own kafka-topics.sh on its host.
func topicsViaSSH(c *cli.Context, action, topic string, partitions, rf int, configs []string) error {
	return onHost(c, "topics", func(s *session, b *workflow.Broker, host workflow.Host) error {
		if action == "create" {
			rf = replicationFactor(c, b)
		}
		out, err := provision.TopicsOnHost(c.Context, host, b.Spec, scripts.Topics{Action: action, Topic: topic,
			Partitions: partitions, ReplicationFactor: rf, Configs: configs})
		c.App.Writer.Write(out)
		return err
	})
}
