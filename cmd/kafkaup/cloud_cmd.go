package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

func regionFlag() cli.Flag {
	return &cli.StringFlag{Name: "region", Usage: "AWS region (default: from your AWS configuration: AWS_REGION, AWS_PROFILE, ~/.aws/config)"}
}

func createCommand() *cli.Command {
	flags := []cli.Flag{
		regionFlag(),
		&cli.StringFlag{Name: "instance-type", Value: cloud.DefaultInstanceType, Usage: "EC2 instance type"},
		&cli.IntFlag{Name: "nodes", Usage: "instances in the cluster: 1 (a single broker), or 3 (or another odd number up to 9) for a KRaft cluster spread over availability zones (default: the recorded size, else 1)"},
		&cli.StringFlag{Name: "ami", Usage: "image id to launch (default: Ubuntu 24.04 LTS for the type's architecture)"},
		&cli.StringFlag{Name: "ami-parameter", Usage: "SSM parameter holding the image id; {arch} becomes amd64 or arm64 (default: Canonical's Ubuntu 24.04 parameter)"},
		&cli.StringFlag{Name: "ssh-key", Usage: "public key file to import as the key pair (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub; else kafkaup makes a key)"},
		&cli.StringFlag{Name: "subnet", Usage: "subnet id to launch in (default: a default subnet of the default VPC)"},
		&cli.StringSliceFlag{Name: "allow-cidr", Usage: "CIDR allowed to reach SSH (22) and Kafka (9092), repeatable (default: your public IP /32)"},
		&cli.BoolFlag{Name: "open-to-world", Usage: "allow --allow-cidr 0.0.0.0/0 or ::/0: anyone on the internet may then read and write your topics"},
		callerIPURLFlag(),
		&cli.BoolFlag{Name: "elastic-ip", Usage: "allocate an Elastic IP so the address survives stop/start (released by destroy)"},
		&cli.StringFlag{Name: "eip-allocation", Usage: "associate your own Elastic IP (allocation id; never released by kafkaup)"},
		&cli.IntFlag{Name: "root-size", Value: cloud.DefaultRootSizeGB, Usage: "root volume size in GB (gp3, encrypted)"},
		&cli.StringFlag{Name: "address", Value: "dns", Usage: "what clients are given: dns (the public DNS name) or ip"},
		&cli.StringSliceFlag{Name: "topics", Usage: "topics to create once the broker runs, comma-separated"},
		&cli.StringFlag{Name: "user", Value: "ubuntu", Usage: "SSH user of the image"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key matching --ssh-key (default: --ssh-key without .pub)"},
		&cli.DurationFlag{Name: "connect-timeout", Value: 5 * time.Minute, Usage: "how long to wait for SSH on the new instance"},
		&cli.DurationFlag{Name: "console-timeout", Value: cloud.DefaultConsoleTimeout, Usage: "how long to wait for the new instance's console output to show its SSH host keys (after that, the key is trusted on first use)"},
		&cli.BoolFlag{Name: "no-head-start", Usage: "do not begin the Java install and the Kafka download at first boot (user-data); do all the work over SSH"},
		&cli.StringFlag{Name: "user-data", Usage: "your own cloud-init user-data file (#cloud-config, a script, or MIME multipart), merged with kafkaup's head start", TakesFile: true},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before creating AWS resources"},
		skipVerifyFlag(),
	}
	flags = append(flags, specFlags()...)
	flags = append(flags, outputFlags()...)
	return &cli.Command{
		Name:      "create",
		Usage:     "launch an EC2 instance and provision a Kafka broker on it (or, with --nodes 3, a KRaft cluster over three zones)",
		UsageText: "kafkaup create [NAME] [--nodes 1|3] [--region R] [--instance-type t3.micro] [--elastic-ip] [--allow-cidr CIDR] [--topics a,b] [provision flags]",
		Description: "Looks up the image, imports your SSH key, makes a security group open only to you on 22 and 9092, launches\n" +
			"an instance with IMDSv2 and an encrypted gp3 root volume (everything tagged at creation), waits for SSH, provisions\n" +
			"Kafka and proves it with a produce and consume from here. Rerun it after any failure: it resumes.\n" +
			"--nodes 3 launches three instances at once, one per availability zone, whose controllers and replication\n" +
			"use their private IPs (the security group admits 9093-9094 only from itself); clients get the public addresses.",
		Flags:  flags,
		Action: runCreate,
	}
}

func runCreate(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		name = workflow.DefaultName
	}
	o := workflow.CreateOptions{Name: name, Region: c.String("region"),
		Request: cloud.CreateRequest{InstanceType: c.String("instance-type"), AMI: c.String("ami"), AMIParameter: c.String("ami-parameter"),
			SubnetID: c.String("subnet"), AllowCIDRs: c.StringSlice("allow-cidr"), ElasticIP: c.Bool("elastic-ip"),
			EIPAllocationID: c.String("eip-allocation"), RootSizeGB: c.Int("root-size")},
		SSHKey: c.String("ssh-key"), Identity: c.String("identity"), User: c.String("user"), AddressKind: c.String("address"),
		Nodes:  c.Int("nodes"),
		Topics: splitList(c.StringSlice("topics")), OpenToWorld: c.Bool("open-to-world"), Yes: c.Bool("yes"), ConsoleTimeout: c.Duration("console-timeout"),
		NoHeadStart: c.Bool("no-head-start"), UserDataFile: c.String("user-data"),
		Overrides: overrides(c), RunOptions: runOptions(c)}
	return withEnv(c, "create-"+safeName(name), func(s *session, env workflow.Env) error {
		out, err := workflow.Create(c.Context, env, o)
		if out != nil && out.CreatePlan != nil {
			printCreatePlan(c, out.CreatePlan)
			return nil
		}
		if err := printProvision(c, out, err); err != nil {
			return err
		}
		if len(out.Topics) > 0 {
			fmt.Fprintf(c.App.Writer, "Created topics: %s\n", strings.Join(out.Topics, ", "))
		}
		if !c.Bool("json") && out.Timeline != nil {
			head := fmt.Sprintf("%.1fs in all", out.Timeline.Total)
			if p, ok := out.Timeline.Find("first produce"); ok {
				head = fmt.Sprintf("first produce at %.1fs, %s", p.End(), head)
			}
			fmt.Fprintf(c.App.Writer, "\nWhere the time went (%s):\n", head)
			for _, l := range out.Timeline.Lines() {
				fmt.Fprintln(c.App.Writer, "  "+l)
			}
		}
		if !c.Bool("json") {
			fmt.Fprintf(c.App.Writer, "\nLog in: kafkaup ssh %s    Status: kafkaup status %s    Delete everything: kafkaup destroy %s\n", out.Name, out.Name, out.Name)
		}
		return nil
	})
}

func printCreatePlan(c *cli.Context, p *workflow.CreatePlan) {
	if c.Bool("json") {
		writeJSON(c.App.Writer, p, nil)
		return
	}
	ports := make([]string, len(p.Ports))
	for i, port := range p.Ports {
		ports[i] = fmt.Sprint(port)
	}
	if p.Nodes > 1 {
		printClusterPlan(c, p, ports)
	} else {
		fmt.Fprintf(c.App.Writer, "Would create broker %s in %s: a %s instance (%d GB gp3, encrypted, IMDSv2), security group %s open to %s on %s, key pair %s",
			p.Name, p.Region, p.InstanceType, p.RootSizeGB, p.SecurityGroup, strings.Join(p.AllowCIDRs, ", "), strings.Join(ports, " and "), p.KeyPair)
	}
	if p.ElasticIP && p.Nodes > 1 {
		fmt.Fprint(c.App.Writer, ", an Elastic IP per node")
	} else if p.ElasticIP {
		fmt.Fprint(c.App.Writer, ", an Elastic IP")
	}
	if p.HeadStart {
		fmt.Fprint(c.App.Writer, ", with a head start at first boot (Java and the Kafka download begin before SSH answers)")
	}
	if p.Nodes > 1 {
		fmt.Fprintln(c.App.Writer, "; then provision Kafka", p.KafkaVersion, "on every node at once. Nothing was created.")
		return
	}
	fmt.Fprintln(c.App.Writer, "; then provision Kafka", p.KafkaVersion, "on it. Nothing was created.")
}

// printClusterPlan is the first part of a cluster's dry run: the
// instances, where each goes, and the security group.
func printClusterPlan(c *cli.Context, p *workflow.CreatePlan, ports []string) {
	var where []string
	for i, pl := range p.Placements {
		where = append(where, fmt.Sprintf("node %d in %s (%s)", i+1, pl.Zone, pl.SubnetID))
	}
	fmt.Fprintf(c.App.Writer, "Would create cluster %s in %s: %d %s instances (%d GB gp3 each, encrypted, IMDSv2; %d times a single broker's cost): %s",
		p.Name, p.Region, p.Nodes, p.InstanceType, p.RootSizeGB, p.Nodes, strings.Join(where, ", "))
	if p.SharedZones {
		fmt.Fprint(c.App.Writer, " (fewer zones than nodes: some share a zone)")
	}
	fmt.Fprintf(c.App.Writer, "; security group %s open to %s on %s and to itself on %d-%d (controllers and replication over private addresses), key pair %s",
		p.SecurityGroup, strings.Join(p.AllowCIDRs, ", "), strings.Join(ports, " and "), cloud.ControllerPort, cloud.InternalPort, p.KeyPair)
}

// splitList reads a repeatable, comma-separated flag.
func splitList(values []string) []string {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func destroyCommand() *cli.Command {
	return &cli.Command{
		Name:      "destroy",
		Usage:     "delete everything kafkaup made for a broker on EC2 (found by tag) and its local record",
		UsageText: "kafkaup destroy NAME [--region R] [--yes] [--dry-run]",
		Flags: []cli.Flag{
			regionFlag(),
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask"},
			&cli.BoolFlag{Name: "dry-run", Usage: "show what would be deleted"},
		},
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			return withEnv(c, "destroy-"+safeName(name), func(s *session, env workflow.Env) error {
				out, err := workflow.Destroy(c.Context, env, workflow.DestroyOptions{Name: name, Region: c.String("region"),
					DryRun: c.Bool("dry-run"), Yes: c.Bool("yes"),
					Found: func(region string, lines []string) {
						fmt.Fprintf(c.App.Writer, "Broker %s in %s has:\n", name, region)
						for _, l := range lines {
							fmt.Fprintf(c.App.Writer, "  %s\n", l)
						}
					}})
				switch {
				case err != nil:
					return err
				case out.NothingLeft:
					fmt.Fprintf(c.App.Writer, "Nothing of broker %s is left in %s.\n", name, out.Region)
				case c.Bool("dry-run"):
					fmt.Fprintln(c.App.Writer, "Dry run: nothing deleted.")
				case out.Deleted:
					fmt.Fprintf(c.App.Writer, "Deleted broker %s in %s.\n", name, out.Took.Round(100*time.Millisecond))
				}
				return nil
			})
		},
	}
}

// instanceCommand is `kafkaup stop|start NAME`: the EC2 instance itself.
func instanceCommand(action string) *cli.Command {
	usage := "stop the broker's EC2 instances (saves money; data stays on the volumes)"
	flags := []cli.Flag{regionFlag()}
	if action == "start" {
		usage = "start the broker's EC2 instances again, fix advertised.listeners where an address changed, and verify"
		flags = append(flags, jsonFlag(), &cli.BoolFlag{Name: "skip-verify", Hidden: true},
			&cli.DurationFlag{Name: "connect-timeout", Value: 5 * time.Minute, Usage: "how long to wait for SSH once the instance runs"})
	}
	return &cli.Command{
		Name:      action,
		Usage:     usage,
		UsageText: "kafkaup " + action + " NAME",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			name := c.Args().First()
			return withEnv(c, action+"-"+safeName(name), func(s *session, env workflow.Env) error {
				if action == "stop" {
					out, err := workflow.Stop(c.Context, env, workflow.StopOptions{Name: name, Region: c.String("region")})
					if err != nil {
						return err
					}
					if b := out.Brokers; b != nil {
						fmt.Fprintf(c.App.Writer, "brokers of %s stopped on all %d nodes at once in %s\n", name, len(b.Nodes), b.Took.Round(100*time.Millisecond))
					}
					fmt.Fprintf(c.App.Writer, "instances of %s stopped in %s; kafkaup start %s brings them back\n", name, out.Took.Round(100*time.Millisecond), name)
					return nil
				}
				out, err := workflow.Start(c.Context, env, workflow.StartOptions{Name: name, Region: c.String("region"), RunOptions: runOptions(c)})
				return printProvision(c, out, err)
			})
		},
	}
}
