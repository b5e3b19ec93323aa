package main

import (
	"context"
	"encoding/json"
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
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// broker is a recorded broker, ready to talk to.
type broker struct {
	rec    state.Broker
	target target
	spec   provision.Spec
	sec    *secrets.Set // the CA and login of a secured broker; empty for PLAINTEXT
}

// auth is how this machine logs in to the broker.
func (b *broker) auth() kafkaclient.Auth { return b.sec.Auth() }

// loadBroker reads NAME (the first argument) from the state directory.
func loadBroker(c *cli.Context, s *session) (*broker, error) {
	name := c.Args().First()
	if name == "" {
		return nil, usagef("name the broker: kafkaup %s NAME (kafkaup list shows them)", c.Command.Name)
	}
	rec, err := state.Load(s.stateDir, name)
	if err != nil {
		return nil, err
	}
	b := &broker{rec: rec, target: target{Host: rec.Host, Port: rec.Port, User: rec.User}}
	if b.spec, err = specFromRecord(rec); err != nil {
		return nil, err
	}
	if b.sec, err = loadSecrets(s.stateDir, rec.Name, b.spec.Security); err != nil {
		return nil, err
	}
	return b, nil
}

// loadSecrets reads a broker's CA and login as they are (reprovision makes
// what is missing). What the broker's security leaves off is left out (a
// broker reprovisioned back to PLAINTEXT keeps its old CA on disk, unused).
func loadSecrets(stateDir, name string, security provision.Security) (*secrets.Set, error) {
	sec, err := secrets.Load(stateDir, name)
	if err != nil {
		return nil, err
	}
	if !security.TLS {
		sec.CAPEM = nil
	}
	if !security.SCRAM {
		sec.Username, sec.Password = "", ""
	}
	return sec, nil
}

// checkSecrets says what to do when a secured broker's CA or password is
// missing here, before a client tries without them.
func (b *broker) checkSecrets() error {
	switch {
	case b.spec.Security.TLS && len(b.sec.CAPEM) == 0:
		return fmt.Errorf("%s uses TLS but its CA certificate is missing from %s; run kafkaup reprovision %s to make a new CA and broker certificate", b.rec.Name, b.sec.Dir, b.rec.Name)
	case b.spec.Security.SCRAM && b.sec.Password == "":
		return fmt.Errorf("%s uses SCRAM but its password is missing from %s; run kafkaup reprovision %s to set a new one", b.rec.Name, b.sec.Dir, b.rec.Name)
	}
	return nil
}

// specFromRecord rebuilds the spec a broker was last provisioned with.
func specFromRecord(rec state.Broker) (provision.Spec, error) {
	s := provision.DefaultSpec()
	s.AdvertisedHost = rec.AdvertisedHost
	if rec.BrokerPort != 0 {
		s.BrokerPort = rec.BrokerPort
	}
	if rec.KafkaVersion != "" {
		s.KafkaVersion = rec.KafkaVersion
	}
	if rec.DataDir != "" {
		s.DataDir = rec.DataDir
	}
	s.Security.TLS, s.Security.SCRAM = rec.TLS, rec.Auth == authSCRAM
	if rec.Heap != "" {
		heap, err := provision.ParseHeap(rec.Heap)
		if err != nil {
			return s, fmt.Errorf("broker record %s: %w", rec.Name, err)
		}
		s.HeapMB = heap
	}
	return s, nil
}

func (s *session) dialBroker(c *cli.Context, b *broker) (*remote.Client, error) {
	return s.dial(c, b.target, b.rec.Identity)
}

// withBroker runs fn with a session and the broker named by the first
// argument.
func withBroker(c *cli.Context, logName string, fn func(s *session, b *broker) error) error {
	s, err := openSession(c, logName+"-"+c.Args().First())
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := loadBroker(c, s)
	if err != nil {
		return err
	}
	return fn(s, b)
}

// onHost runs fn logged in to the host of the broker named by the first
// argument.
func onHost(c *cli.Context, logName string, fn func(s *session, b *broker, client *remote.Client) error) error {
	return withBroker(c, logName, func(s *session, b *broker) error {
		client, err := s.dialBroker(c, b)
		if err != nil {
			return err
		}
		defer client.Close()
		return fn(s, b, client)
	})
}

func reprovisionCommand() *cli.Command {
	flags := append(specFlags(), connFlags()...)
	flags = append(flags, outputFlags()...)
	flags = append(flags, regionFlag())
	flags = append(flags, &cli.BoolFlag{Name: "skip-verify", Usage: "do not produce and consume from this machine at the end"})
	return &cli.Command{
		Name:      "reprovision",
		Usage:     "converge a known broker to its spec again, with any flags given as changes",
		UsageText: "kafkaup reprovision NAME [--heap 512m] [--kafka-version 4.0.1] [--advertised-host NAME] [--dry-run]",
		Description: "Re-reads the broker's record, applies the flags you give on top, and runs provision again: fixes\n" +
			"advertised.listeners, heap and swap, upgrades Kafka in place, repairs a broken install. Data and the cluster id\n" +
			"are kept, and the broker restarts only when something it runs with changed.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			return withBroker(c, "reprovision", func(s *session, b *broker) error {
				if c.IsSet("user") {
					b.target.User = c.String("user")
				}
				if c.IsSet("identity") {
					recordTarget(&b.rec, b.target, c.String("identity"))
				}
				spec, err := buildSpec(c, b.target.Host, &b.rec)
				if err != nil {
					return err
				}
				if b.rec.EC2 != nil {
					// The instance's public address may have changed (stop/start
					// without an Elastic IP): ask EC2, then converge there.
					cl, err := newCloud(c, s, b.rec)
					if err != nil {
						return err
					}
					inst, err := cl.Describe(c.Context, b.rec.Name)
					if err != nil {
						return s.wrap(err)
					}
					if inst.State != "running" {
						return fmt.Errorf("the instance of %s is %s: run kafkaup start %s", b.rec.Name, inst.State, b.rec.Name)
					}
					return s.provisionInstance(c, cl, &b.rec, inst, spec)
				}
				rememberSpec(&b.rec, spec, swapToRecord(c, b.rec.Swap))
				return s.provision(c, &b.rec, b.target, spec)
			})
		},
	}
}

// status is the report of `kafkaup status`.
type status struct {
	Name        string                   `json:"name"`
	Host        string                   `json:"host"`
	Bootstrap   string                   `json:"bootstrap"`
	Security    string                   `json:"security"`
	Healthy     bool                     `json:"healthy"`
	Problems    []string                 `json:"problems,omitempty"`
	Reachable   bool                     `json:"reachable"`
	Cluster     *kafkaclient.ClusterInfo `json:"cluster,omitempty"`
	OnHost      *provision.HostStatus    `json:"on_host,omitempty"`
	CheckedTook string                   `json:"checked_in"`
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "is the broker healthy? (exit status 1 when not)",
		UsageText: "kafkaup status NAME [--json]",
		Flags:     append(outputFlags()[1:], connFlags()[3:5]...),
		Action: func(c *cli.Context) error {
			return withBroker(c, "status", func(s *session, b *broker) error {
				start := time.Now()
				st := &status{Name: b.rec.Name, Host: b.rec.Host, Bootstrap: b.rec.Bootstrap(), Security: b.auth().String()}
				if client, err := s.dialBroker(c, b); err != nil {
					st.Problems = append(st.Problems, "cannot log in to the host: "+err.Error())
				} else {
					st.OnHost, err = provision.StatusOnHost(c.Context, client, b.spec)
					client.Close()
					if err != nil {
						st.Problems = append(st.Problems, err.Error())
					} else if !st.OnHost.Running() {
						st.Problems = append(st.Problems, fmt.Sprintf("the broker is not running on the host (service %s); start it with kafkaup broker start %s", st.OnHost.ServiceState, b.rec.Name))
					}
				}
				err := b.checkSecrets()
				if err == nil {
					st.Cluster, err = clusterInfo(c.Context, b.rec.Bootstrap(), b.auth())
				}
				if err != nil {
					st.Problems = append(st.Problems, err.Error())
				} else {
					st.Reachable = true
					for _, br := range st.Cluster.Brokers {
						if br.Addr != b.rec.Bootstrap() {
							st.Problems = append(st.Problems, fmt.Sprintf("the broker advertises %s but kafkaup expects %s: run kafkaup reprovision %s", br.Addr, b.rec.Bootstrap(), b.rec.Name))
						}
					}
				}
				st.Healthy = len(st.Problems) == 0
				st.CheckedTook = time.Since(start).Round(time.Millisecond).String()
				if c.Bool("json") {
					if err := writeJSON(c.App.Writer, st, nil); err != nil {
						return err
					}
				} else {
					printStatus(c.App.Writer, st)
				}
				if !st.Healthy {
					return errors.New(b.rec.Name + " is unhealthy")
				}
				return nil
			})
		},
	}
}

func clusterInfo(ctx context.Context, bootstrap string, auth kafkaclient.Auth) (*kafkaclient.ClusterInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kafkaclient.DialWith(ctx, bootstrap, auth)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Cluster(ctx)
}

func printStatus(w interface{ Write([]byte) (int, error) }, st *status) {
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
		UsageText: "kafkaup logs NAME [-f] [--lines 100]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming new lines until interrupted"},
			&cli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "how many recent lines to print first"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("lines") < 0 {
				return usagef("--lines must be 0 or more")
			}
			return onHost(c, "logs", func(s *session, b *broker, client *remote.Client) error {
				script, err := provision.LogsScript(b.spec, c.Int("lines"), c.Bool("follow"))
				if err != nil {
					return err
				}
				err = client.StreamScript(c.Context, "logs", script, c.App.Writer)
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
		UsageText: "kafkaup ssh NAME [-- COMMAND ...]",
		Action: func(c *cli.Context) error {
			return withBroker(c, "ssh", func(s *session, b *broker) error {
				rest := c.Args().Tail()
				if len(rest) > 0 && rest[0] == "--" {
					rest = rest[1:]
				}
				command := strings.Join(rest, " ")
				if command == "" {
					return interactiveSSH(b, s)
				}
				client, err := s.dialBroker(c, b)
				if err != nil {
					return err
				}
				defer client.Close()
				err = client.Exec(c.Context, command, os.Stdin, c.App.Writer, c.App.ErrWriter)
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
func interactiveSSH(b *broker, s *session) error {
	path, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("an interactive shell needs the ssh client (OpenSSH) on this machine; install it, or run one command with kafkaup ssh NAME -- COMMAND")
	}
	known := state.KnownHostsFile(s.stateDir)
	if home, err := os.UserHomeDir(); err == nil {
		known += " " + home + "/.ssh/known_hosts"
	}
	args := []string{"-p", fmt.Sprint(b.target.Port), "-o", "UserKnownHostsFile=" + known, "-o", "StrictHostKeyChecking=yes"}
	if b.rec.Identity != "" {
		args = append(args, "-i", b.rec.Identity)
	}
	args = append(args, b.target.User+"@"+b.target.Host)
	cmd := exec.Command(path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitStatus(exitErr.ExitCode())
	}
	return err
}

func brokerCommand() *cli.Command {
	sub := func(action, usage string) *cli.Command {
		return &cli.Command{
			Name:      action,
			Usage:     usage,
			UsageText: "kafkaup broker " + action + " NAME",
			Action: func(c *cli.Context) error {
				return onHost(c, "broker-"+action, func(s *session, b *broker, client *remote.Client) error {
					start := time.Now()
					if err := provision.ControlBroker(c.Context, client, b.spec, action); err != nil {
						return s.wrap(err)
					}
					past := map[string]string{"start": "started", "stop": "stopped", "restart": "restarted"}[action]
					fmt.Fprintf(c.App.Writer, "broker %s %s in %s\n", b.rec.Name, past, time.Since(start).Round(100*time.Millisecond))
					return nil
				})
			},
		}
	}
	return &cli.Command{
		Name:  "broker",
		Usage: "start, stop or restart the Kafka broker (waits until it is really up or down)",
		Subcommands: []*cli.Command{
			sub("start", "start the broker and wait until it serves"),
			sub("stop", "stop the broker gracefully and wait until it exited"),
			sub("restart", "restart the broker and wait until it serves again"),
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
			return withBroker(c, "env", func(s *session, b *broker) error {
				return printEnv(c.App.Writer, b, c.Bool("show-secrets"))
			})
		},
	}
}

// printEnv prints KAFKA_* settings, shell-quoted, for eval or a .env file.
// A secured broker's client files are written again first, so they match
// the broker's current address.
func printEnv(w io.Writer, b *broker, showSecrets bool) error {
	if err := b.checkSecrets(); err != nil {
		return err
	}
	line := func(k, v string) { fmt.Fprintf(w, "%s=%s\n", k, shellQuote(v)) }
	line("KAFKA_BOOTSTRAP_SERVERS", b.rec.Bootstrap())
	cf, err := b.sec.WriteClientFiles(b.rec.Bootstrap())
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
			line("KAFKA_SASL_PASSWORD", b.sec.Password)
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
			all, err := state.List(dir)
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
			tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tINSTANCE\tSTATE\tADDRESS\tKAFKA\tTYPE\tAGE")
			onEC2 := map[string]cloud.Broker{}
			for _, b := range brokers {
				onEC2[b.Name] = b
			}
			for _, r := range all {
				if b, ok := onEC2[r.Name]; ok && r.EC2 != nil {
					fmt.Fprintf(tw, "%s\tec2\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.InstanceID, b.State, r.Bootstrap(), orDash(r.KafkaVersion), b.InstanceType, age(b.LaunchTime))
					delete(onEC2, r.Name)
					continue
				}
				kind, inst, st := "host", "-", "-"
				if r.EC2 != nil {
					kind, inst = "ec2", orDash(r.EC2.InstanceID)
					if cloudErr == nil && !c.Bool("local") {
						st = "gone"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t-\t%s\n", r.Name, kind, inst, st, r.Bootstrap(), orDash(r.KafkaVersion), age(r.Created))
			}
			for _, b := range brokers {
				if _, ok := onEC2[b.Name]; ok {
					fmt.Fprintf(tw, "%s\tec2 (no local record)\t%s\t%s\t%s\t-\t%s\t%s\n", b.Name, b.InstanceID, b.State, orDash(b.PublicIP), b.InstanceType, age(b.LaunchTime))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if cloudErr != nil {
				fmt.Fprintf(c.App.ErrWriter, "note: EC2 brokers not listed: %v\n", cloudErr)
			}
			return nil
		},
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

func forgetCommand() *cli.Command {
	return &cli.Command{
		Name:      "forget",
		Usage:     "drop kafkaup's record of a broker set up with provision --host (the host is not touched)",
		UsageText: "kafkaup forget NAME",
		Action: func(c *cli.Context) error {
			dir, err := state.Dir()
			if err != nil {
				return err
			}
			name := c.Args().First()
			rec, err := state.Load(dir, name)
			if err != nil {
				return err
			}
			if rec.EC2 != nil {
				return fmt.Errorf("%s is an EC2 broker: kafkaup destroy %s deletes it and its record", name, name)
			}
			return state.Delete(dir, name)
		},
	}
}
