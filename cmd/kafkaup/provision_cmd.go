package main

import (
	"os/user"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// provisionOutput is what provision, create and reprovision print: the
// engine's result and, for a secured broker, where the client settings are
// (the password itself never appears).
type provisionOutput struct {
	*provision.Result
	Client   *secrets.ClientFiles `json:"client,omitempty"`
	Timeline *provision.Timeline  `json:"timeline,omitempty"` // create's
}

// specFlags are the flags that describe the broker; create and reprovision
// share them.
func specFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "advertised-host", Usage: "DNS name or IP that clients use to reach the broker (default: the SSH host)"},
		&cli.StringFlag{Name: "kafka-version", Value: provision.DefaultKafkaVersion, Usage: "Kafka release to install (4.x)"},
		&cli.StringFlag{Name: "kafka-url", Usage: "download the .tgz from this mirror URL instead of Apache (checksum from URL.sha512 unless --kafka-sha512)"},
		&cli.StringFlag{Name: "kafka-sha512", Usage: "expected sha512 of the tarball, hex"},
		&cli.StringFlag{Name: "kafka-tarball", Usage: "upload this local kafka_2.13-VERSION.tgz over SSH instead of downloading (air-gapped hosts)"},
		&cli.StringFlag{Name: "heap", Value: "400m", Usage: "broker JVM heap (-Xmx and -Xms)"},
		&cli.StringFlag{Name: "swap", Value: "2G", Usage: "swapfile size; 0 leaves swap alone"},
		&cli.StringFlag{Name: "data-dir", Value: provision.DefaultSpec().DataDir, Usage: "where Kafka keeps its data (persistent; never /tmp)"},
		&cli.DurationFlag{Name: "apt-lock-timeout", Value: provision.DefaultAPTLockTimeout, Usage: "how long to wait, in all, for other apt or dpkg runs (apt-daily, unattended-upgrades) to release the apt and dpkg locks, 0s..1h"},
		&cli.BoolFlag{Name: "tls", Usage: "clients connect with TLS: kafkaup makes a CA and a certificate for the advertised host (kept in its state directory)"},
		&cli.StringFlag{Name: "auth", Value: "none", Usage: "client login: none, or scram (SASL/SCRAM-SHA-512: kafkaup creates the user and keeps its password)"},
		&cli.BoolFlag{Name: "metrics", Usage: "serve Prometheus metrics from the broker (the JMX exporter as a Java agent); --metrics=false turns them off"},
		&cli.IntFlag{Name: "metrics-port", Value: provision.DefaultMetricsPort, Usage: "port of the metrics endpoint"},
		&cli.StringFlag{Name: "metrics-agent-version", Value: provision.DefaultAgentVersion, Usage: "JMX exporter release (its sha256 is pinned in kafkaup)"},
		&cli.StringFlag{Name: "metrics-agent-url", Usage: "download the agent jar from this mirror URL instead of Maven Central"},
		&cli.StringFlag{Name: "metrics-agent-sha256", Usage: "expected sha256 of the agent jar, hex (default: kafkaup's pin for the version)"},
		&cli.StringFlag{Name: "metrics-agent-jar", Usage: "upload this local agent jar over SSH instead of downloading it (air-gapped hosts)"},
	}
}

// overrides reads the spec flags the user set; the rest keep the recorded
// value (or the default).
func overrides(c *cli.Context) state.Overrides {
	o := state.Overrides{KafkaTarball: c.String("kafka-tarball"), MetricsAgentJar: c.String("metrics-agent-jar")}
	for flag, dst := range map[string]**string{"advertised-host": &o.AdvertisedHost, "kafka-version": &o.KafkaVersion,
		"kafka-url": &o.KafkaURL, "kafka-sha512": &o.KafkaSHA512, "heap": &o.Heap, "swap": &o.Swap, "data-dir": &o.DataDir,
		"auth": &o.Auth, "metrics-agent-version": &o.MetricsAgentVersion, "metrics-agent-url": &o.MetricsAgentURL,
		"metrics-agent-sha256": &o.MetricsAgentSHA256} {
		setIfGiven(c, flag, dst, c.String)
	}
	setIfGiven(c, "tls", &o.TLS, c.Bool)
	setIfGiven(c, "metrics", &o.Metrics, c.Bool)
	setIfGiven(c, "metrics-port", &o.MetricsPort, c.Int)
	setIfGiven(c, "apt-lock-timeout", &o.APTLockTimeout, c.Duration)
	return o
}

// setIfGiven points *dst at the flag's value when the user set the flag.
func setIfGiven[T any](c *cli.Context, flag string, dst **T, get func(string) T) {
	if c.IsSet(flag) {
		v := get(flag)
		*dst = &v
	}
}

// connFlags say how to reach a host over SSH.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "port", Value: 22, Usage: "SSH port"},
		&cli.StringFlag{Name: "user", Usage: "SSH user (default: your local user name, like ssh; ubuntu on Ubuntu cloud images)"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "SSH private key file (default: ssh-agent and ~/.ssh/id_*)"},
		knownHostsFlag(),
		strictHostKeyFlag(),
		&cli.DurationFlag{Name: "connect-timeout", Value: 20 * time.Second, Usage: "how long to keep retrying a refused or timed-out SSH connection"},
	}
}

func knownHostsFlag() cli.Flag {
	return &cli.StringFlag{Name: "known-hosts", Usage: "known_hosts file to check host keys against (default ~/.ssh/known_hosts and kafkaup's own)"}
}

func strictHostKeyFlag() cli.Flag {
	return &cli.BoolFlag{Name: "strict-host-key", Usage: "refuse hosts whose key is not known yet instead of trusting and pinning it on first use"}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"}
}

func outputFlags() []cli.Flag {
	return []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"}, jsonFlag()}
}

func skipVerifyFlag() cli.Flag {
	return &cli.BoolFlag{Name: "skip-verify", Usage: "do not produce and consume from this machine at the end"}
}

func provisionCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "host", Usage: "host to provision: name or IP, optionally user@host (required); several (a,b,c or --host repeated) make a cluster, every node a broker and a controller"},
		&cli.StringSliceFlag{Name: "internal-host", Usage: "for a cluster: the address each node is reached at by the other nodes (a private address), one per --host in the same order (default: the --host addresses)"},
		&cli.StringFlag{Name: "name", Usage: "name to remember the broker by, for later commands (default: derived from --host)"},
	}
	flags = append(flags, connFlags()...)
	flags = append(flags, specFlags()...)
	flags = append(flags, outputFlags()...)
	flags = append(flags, skipVerifyFlag())
	return &cli.Command{
		Name:  "provision",
		Usage: "install and start a Kafka broker on an existing Ubuntu/Debian host over SSH",
		UsageText: "kafkaup provision --host HOST [--user USER] [--identity KEY] [--advertised-host NAME] [--heap 400m] [--swap 2G] [--dry-run] [--json]\n" +
			"   kafkaup provision --host HOST1,HOST2,HOST3 [--internal-host IP1,IP2,IP3] [--name NAME] ...",
		Description: "Observes the host, plans only the changes it needs, applies them over one SSH connection and proves the broker\n" +
			"works with a produce and consume from this machine. Rerunning it converges: on a healthy host it changes nothing.\n" +
			"With several hosts it makes a KRaft cluster (all nodes at once, each a broker and a controller, replication factor 3):\n" +
			"the nodes talk to each other on --internal-host addresses, clients use --advertised-host (one per host) or the --host addresses.",
		Flags:  flags,
		Action: runProvision,
	}
}

func runProvision(c *cli.Context) error {
	if !c.IsSet("host") {
		return usagef("--host is required: the name or IP of the machine to provision")
	}
	nodes, err := nodeTargets(c)
	if err != nil {
		return err
	}
	o := workflow.ProvisionOptions{Name: c.String("name"), Target: nodes[0].Target, Overrides: overrides(c), RunOptions: runOptions(c)}
	if len(nodes) > 1 {
		o.Nodes, o.Overrides.AdvertisedHost = nodes, nil
	}
	name := o.Name
	if name == "" {
		name = state.NameForHost(nodes[0].Host)
	}
	return withEnv(c, "provision-"+name, func(s *session, env workflow.Env) error {
		out, err := workflow.Provision(c.Context, env, o)
		return printProvision(c, out, err)
	})
}

// nodeTargets reads --host (one or several), --internal-host and, for a
// cluster, --advertised-host as one address per host.
func nodeTargets(c *cli.Context) ([]workflow.NodeTarget, error) {
	hosts := splitList(c.StringSlice("host"))
	if len(hosts) == 0 {
		return nil, usagef("--host is empty; give the name or IP of the machine to provision")
	}
	internal := splitList(c.StringSlice("internal-host"))
	if len(internal) > 0 && len(internal) != len(hosts) {
		return nil, usagef("--internal-host gives %d addresses for %d hosts: give one per --host, in the same order", len(internal), len(hosts))
	}
	if len(internal) > 0 && len(hosts) == 1 {
		return nil, usagef("--internal-host is for a cluster of several hosts: a single broker keeps its controller on loopback")
	}
	var advertised []string
	if len(hosts) > 1 && c.IsSet("advertised-host") {
		if advertised = splitList([]string{c.String("advertised-host")}); len(advertised) != len(hosts) {
			return nil, usagef("--advertised-host gives %d addresses for %d hosts: give one per --host, in the same order", len(advertised), len(hosts))
		}
	}
	nodes := make([]workflow.NodeTarget, len(hosts))
	for i, h := range hosts {
		t, err := targetFromFlags(c, h)
		if err != nil {
			return nil, err
		}
		nodes[i].Target = t
		if len(internal) > 0 {
			if err := provision.ValidateHost(internal[i]); err != nil {
				return nil, usagef("--internal-host: %v", err)
			}
			nodes[i].InternalHost = internal[i]
		}
		if len(advertised) > 0 {
			if err := provision.ValidateHost(advertised[i]); err != nil {
				return nil, usagef("--advertised-host: %v", err)
			}
			nodes[i].AdvertisedHost = advertised[i]
		}
	}
	return nodes, nil
}

func runOptions(c *cli.Context) workflow.RunOptions {
	return workflow.RunOptions{DryRun: flagBool(c, "dry-run"), SkipVerify: flagBool(c, "skip-verify"), Dial: dialOptions(c)}
}

// printProvision prints what a provisioning workflow did (as JSON with
// --json) and returns its error.
func printProvision(c *cli.Context, out *workflow.Outcome, err error) error {
	if out != nil && len(out.Nodes) > 1 {
		return printCluster(c, out, err)
	}
	if out == nil || out.Result == nil {
		return err
	}
	po := provisionOutput{Result: out.Result, Client: out.Client, Timeline: out.Timeline}
	if c.Bool("json") {
		if jerr := writeJSON(c.App.Writer, po, err); jerr != nil {
			return jerr
		}
	} else {
		printProvisionResult(c.App.Writer, po, err, out.Spec, out.Name)
	}
	return err
}

func targetFromFlags(c *cli.Context, hostArg string) (workflow.Target, error) {
	t := workflow.Target{Host: hostArg, Port: c.Int("port"), User: c.String("user"), Identity: c.String("identity")}
	if u, h, ok := strings.Cut(hostArg, "@"); ok {
		if t.User != "" && t.User != u {
			return t, usagef("--host says user %q but --user says %q; give one", u, t.User)
		}
		t.User, t.Host = u, h
	}
	if t.Host == "" {
		return t, usagef("--host is empty; give the name or IP of the machine to provision")
	}
	if err := provision.ValidateHost(strings.Trim(t.Host, "[]")); err != nil {
		return t, usagef("--host: %v", err)
	}
	t.Host = strings.Trim(t.Host, "[]")
	if t.Port < 1 || t.Port > 65535 {
		return t, usagef("--port %d is not a TCP port", t.Port)
	}
	if t.User == "" {
		u, err := user.Current()
		if err != nil {
			return t, usagef("cannot tell your user name (%v); pass --user", err)
		}
		t.User = u.Username
	}
	return t, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, s)
}
