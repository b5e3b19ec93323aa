package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func nodeFlag() cli.Flag {
	return &cli.IntFlag{Name: "node", Usage: "the node (Kafka node.id) to act on; default: the first"}
}

// withBroker runs fn with a session, the workflows' Env and the broker
// named by the first argument (the node --node names).
func withBroker(c *cli.Context, logName string, fn func(s *session, env workflow.Env, b *workflow.Broker) error) error {
	name := c.Args().First()
	if name == "" {
		return usagef("name the broker: kafkaup %s NAME (kafkaup list shows them)", c.Command.Name)
	}
	return withEnv(c, logName+"-"+safeName(name), func(s *session, env workflow.Env) error {
		b, err := workflow.Open(env, name, c.Int("node"))
		if err != nil {
			return err
		}
		return fn(s, env, b)
	})
}

// onHost runs fn logged in to the host of the broker named by the first
// argument.
func onHost(c *cli.Context, logName string, fn func(s *session, b *workflow.Broker, host workflow.Host) error) error {
	return withBroker(c, logName, func(s *session, env workflow.Env, b *workflow.Broker) error {
		host, err := b.Dial(c.Context, env, dialOptions(c))
		if err != nil {
			return err
		}
		defer host.Close()
		return fn(s, b, host)
	})
}

func reprovisionCommand() *cli.Command {
	flags := append(specFlags(), connFlags()...)
	flags = append(flags, outputFlags()...)
	flags = append(flags, regionFlag(), skipVerifyFlag())
	return &cli.Command{
		Name:      "reprovision",
		Usage:     "converge a known broker to its spec again, with any flags given as changes",
		UsageText: "kafkaup reprovision NAME [--heap 512m] [--kafka-version 4.0.1] [--advertised-host NAME] [--dry-run]",
		Description: "Re-reads the broker's record, applies the flags you give on top, and runs provision again: fixes\n" +
			"advertised.listeners, heap and swap, upgrades Kafka in place, repairs a broken install. Data and the cluster id\n" +
			"are kept, and the broker restarts only when something it runs with changed.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			return withEnv(c, "reprovision-"+safeName(name), func(s *session, env workflow.Env) error {
				o := workflow.ReprovisionOptions{Name: name, Region: c.String("region"), Overrides: overrides(c), RunOptions: runOptions(c)}
				if c.IsSet("user") {
					o.User = c.String("user")
				}
				if c.IsSet("identity") {
					o.Identity = c.String("identity")
				}
				out, err := workflow.Reprovision(c.Context, env, o)
				return printProvision(c, out, err)
			})
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "is the broker (or every node of the cluster) healthy? (exit status 1 when not)",
		UsageText: "kafkaup status NAME [--json]",
		Flags:     []cli.Flag{jsonFlag(), knownHostsFlag(), strictHostKeyFlag()},
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			if name == "" {
				return usagef("name the broker: kafkaup status NAME (kafkaup list shows them)")
			}
			return withEnv(c, "status-"+safeName(name), func(s *session, env workflow.Env) error {
				st, err := workflow.GetStatus(c.Context, env, workflow.StatusOptions{Name: name, Dial: dialOptions(c)})
				if st == nil {
					return err
				}
				if c.Bool("json") {
					if jerr := writeJSON(c.App.Writer, st, nil); jerr != nil {
						return jerr
					}
				} else if len(st.Nodes) > 0 {
					printClusterStatus(c.App.Writer, st)
				} else {
					printStatus(c.App.Writer, st)
				}
				return err
			})
		},
	}
}

func printStatus(w io.Writer, st *workflow.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(tw, "broker\t%s (%s)\n", st.Name, health)
	fmt.Fprintf(tw, "bootstrap\t%s\n", st.Bootstrap)
	fmt.Fprintf(tw, "clients use\t%s\n", st.Security)
	if st.Cluster != nil {
		fmt.Fprintf(tw, "reachable from here\tyes\n")
		fmt.Fprintf(tw, "cluster id\t%s\n", st.Cluster.ClusterID)
		fmt.Fprintf(tw, "controller\tnode %d\n", st.Cluster.ControllerID)
		fmt.Fprintf(tw, "topics / partitions\t%d / %d\n", st.Cluster.Topics, st.Cluster.Partitions)
	} else {
		fmt.Fprintf(tw, "reachable from here\tno\n")
	}
	if h := st.OnHost; h != nil {
		svc := h.ServiceState
		if h.Systemd {
			svc += " (systemd, " + h.ServiceEnabled + ")"
		} else {
			svc += " (daemon, no systemd)"
		}
		fmt.Fprintf(tw, "service\t%s\n", svc)
		if h.Running() {
			fmt.Fprintf(tw, "pid / uptime\t%d / %s\n", h.BrokerPID, h.Uptime)
			fmt.Fprintf(tw, "heap (-Xmx) / RSS\t%s / %s\n", h.Heap, provision.FormatSize(h.RSSBytes))
		}
		if h.Restarts > 0 {
			fmt.Fprintf(tw, "restarts\t%d (systemd brought the broker back after it stopped; kafkaup logs %s shows why)\n", h.Restarts, st.Name)
		}
		fmt.Fprintf(tw, "kafka version\t%s\n", h.KafkaVersion)
		fmt.Fprintf(tw, "swap used / total\t%s / %s\n", provision.FormatSize(h.SwapUsedBytes), provision.FormatSize(h.SwapTotalBytes))
		fmt.Fprintf(tw, "data used / free\t%s / %s\n", provision.FormatSize(h.DataUsedBytes), provision.FormatSize(h.DataFreeBytes))
	}
	tw.Flush()
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print the broker's log (the systemd journal where systemd runs); -f streams it",
		UsageText: "kafkaup logs NAME [-f] [--lines 100] [--node N]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming new lines until interrupted"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "how many recent lines to print first"},
			nodeFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.Int("lines") < 0 {
				return usagef("--lines must be 0 or more")
			}
			return onHost(c, "logs", func(s *session, b *workflow.Broker, host workflow.Host) error {
				script, err := provision.LogsScript(b.Spec, c.Int("lines"), c.Bool("follow"))
				if err != nil {
					return err
				}
				err = host.StreamScript(c.Context, "logs", script, c.App.Writer)
				if c.Context.Err() != nil {
					return nil // interrupted -f: the normal way to stop
				}
				return err
			})
		},
	}
}

func sshCommand() *cli.Command {
	return &cli.Command{
		Name:      "ssh",
		Usage:     "open a shell on the broker's host, or run one command there, checking the pinned host key",
		UsageText: "kafkaup ssh NAME [--node N] [-- COMMAND ...]",
		Flags:     []cli.Flag{nodeFlag()},
		Action: func(c *cli.Context) error {
			return withBroker(c, "ssh", func(s *session, env workflow.Env, b *workflow.Broker) error {
				rest := c.Args().Tail()
				if len(rest) > 0 && rest[0] == "--" {
					rest = rest[1:]
				}
				command := strings.Join(rest, " ")
				if command == "" {
					return interactiveSSH(b, s)
				}
				host, err := b.Dial(c.Context, env, dialOptions(c))
				if err != nil {
					return err
				}
				defer host.Close()
				err = host.Exec(c.Context, command, os.Stdin, c.App.Writer, c.App.ErrWriter)
				var pe *remote.ProcessError
				if errors.As(err, &pe) {
					return exitStatus(pe.ExitStatus)
				}
				return err
			})
		},
	}
}

// exitStatus passes a remote command's exit status through.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("the command exited with status %d", int(e)) }

// interactiveSSH hands the terminal to OpenSSH with kafkaup's pinned host
// keys and strict checking, so the shell is the user's usual ssh.
func interactiveSSH(b *workflow.Broker, s *session) error {
	path, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("an interactive shell needs the ssh client (OpenSSH) on this machine; install it, or run one command with kafkaup ssh NAME -- COMMAND")
	}
	if err := b.PinHostKeys(s.stateDir); err != nil {
		return err
	}
	known := state.KnownHostsFile(s.stateDir)
	if home, err := os.UserHomeDir(); err == nil {
		known += " " + home + "/.ssh/known_hosts"
	}
	t := b.Target()
	args := []string{"-p", fmt.Sprint(t.Port), "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes"}
	if t.Identity != "" {
		args = append(args, "-i", t.Identity)
	}
	args = append(args, t.User+"@"+t.Host)
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitStatus(exitErr.ExitCode())
	}
	return err
}

// printControl says what broker start|stop|restart did: on which node,
// or on every node of a cluster at once.
func printControl(w io.Writer, out *workflow.ControlOutcome, node int) {
	past := map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}[out.Action]
	took := out.Took.Round(100 * time.Millisecond)
	switch {
	case node != 0:
		fmt.Fprintf(w, "broker %s %s on node %d in %s\n", out.Name, past, node, took)
	case len(out.Nodes) > 1:
		fmt.Fprintf(w, "broker %s %s on all %d nodes at once in %s\n", out.Name, past, len(out.Nodes), took)
	default:
		fmt.Fprintf(w, "broker %s %s in %s\n", out.Name, past, took)
	}
}

// brokerUsage is broker ACTION's usage line, with its flags.
func brokerUsage(action string) string {
	usage := "kafkaup broker " + action + " NAME [--node N]"
	if action == "stop" {
		usage += " [--force]"
	}
	return usage
}

// brokerFlags are broker ACTION's flags: --node, and for stop --force.
func brokerFlags(action string) []cli.Flag {
	flags := []cli.Flag{nodeFlag()}
	if action == "stop" {
		flags = append(flags, &cli.BoolFlag{Name: "force", Usage: "with --node on a cluster: stop the node even when the cluster cannot lose it now (partitions would fall below min.insync.replicas, or the controllers left would not be a majority)"})
	}
	return flags
}

func brokerCommand() *cli.Command {
	sub := func(action, usage string) *cli.Command {
		return &cli.Command{
			Name:      action,
			Usage:     usage,
			UsageText: brokerUsage(action),
			Flags:     brokerFlags(action),
			Action: func(c *cli.Context) error {
				name := c.Args().First()
				return withEnv(c, "broker-"+action+"-"+safeName(name), func(s *session, env workflow.Env) error {
					if action == "restart" {
						out, err := workflow.Restart(c.Context, env, workflow.RestartOptions{Name: name, Node: c.Int("node"), Dial: dialOptions(c)})
						printRestart(c.App.Writer, out, err)
						return err
					}
					out, err := workflow.Control(c.Context, env, workflow.ControlOptions{Name: name, Node: c.Int("node"), Action: action, Force: c.Bool("force"), Dial: dialOptions(c)})
					if err != nil {
						return err
					}
					printControl(c.App.Writer, out, c.Int("node"))
					return nil
				})
			},
		}
	}
	return &cli.Command{
		Name:  "broker",
		Usage: "start, stop or restart the Kafka broker (waits until it is really up or down)",
		Subcommands: []*cli.Command{
			sub("start", "start the broker and wait until it serves; on a cluster without --node, every node at once"),
			sub("stop", "stop the broker gracefully and wait until it exited; on a cluster without --node, every node at once"),
			sub("restart", "restart the broker and wait until it serves again; on a cluster, every node in turn (a rolling restart)"),
		},
	}
}

func envCommand() *cli.Command {
	return &cli.Command{
		Name:      "env",
		Usage:     "print client settings for eval or a .env file",
		UsageText: "eval \"$(kafkaup env NAME [--show-secrets])\"",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "show-secrets", Usage: "also print the SCRAM password (KAFKA_SASL_PASSWORD)"},
		},
		Action: func(c *cli.Context) error {
			return withBroker(c, "env", func(s *session, env workflow.Env, b *workflow.Broker) error {
				return printEnv(c.App.Writer, b, c.Bool("show-secrets"))
			})
		},
	}
}

// printEnv prints KAFKA_* settings, shell-quoted, for eval or a .env file.
// A secured broker's client files are written again first, so they match
// the broker's current address.
func printEnv(w io.Writer, b *workflow.Broker, showSecrets bool) error {
	if err := b.Sec.Check(b.Name()); err != nil {
		return err
	}
	line := func(k, v string) { fmt.Fprintf(w, "%s=%s\n", k, shellQuote(v)) }
	line("KAFKA_BOOTSTRAP_SERVERS", b.Bootstrap())
	cf, err := b.Sec.WriteClientFiles(b.Bootstrap())
	if err != nil || cf == nil {
		return err
	}
	line("KAFKA_SECURITY_PROTOCOL", cf.Protocol)
	if cf.CAFile != "" {
		line("KAFKA_SSL_CA_LOCATION", cf.CAFile)
	}
	if cf.Username != "" {
		line("KAFKA_SASL_MECHANISM", cf.Mechanism)
		line("KAFKA_SASL_USERNAME", cf.Username)
		if showSecrets {
			line("KAFKA_SASL_PASSWORD", b.Sec.Password)
		} else {
			fmt.Fprintf(w, "# KAFKA_SASL_PASSWORD is left out: add --show-secrets, or point clients at the files below\n")
		}
	}
	line("KAFKAUP_LIBRDKAFKA_CONFIG", cf.Librdkafka)
	line("KAFKAUP_CLIENT_PROPERTIES", cf.Java)
	return nil
}

// shellQuote quotes v for a POSIX shell when it needs it.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-[]") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

func forgetCommand() *cli.Command {
	return &cli.Command{
		Name:      "forget",
		Usage:     "drop kafkaup's record of a broker set up with provision --host (the host is not touched)",
		UsageText: "kafkaup forget NAME",
		Action: func(c *cli.Context) error {
			env, err := localEnv()
			if err != nil {
				return err
			}
			return workflow.Forget(env, c.Args().First())
		},
	}
}
