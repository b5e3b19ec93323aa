package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/state"
)

// DefaultBrokerName is used when create is given no NAME.
const DefaultBrokerName = "kafka"

func regionFlag() cli.Flag {
	return &cli.StringFlag{Name: "region", Usage: "AWS region (default: from your AWS configuration: AWS_REGION, AWS_PROFILE, ~/.aws/config)"}
}

func createCommand() *cli.Command {
	flags := []cli.Flag{
		regionFlag(),
		&cli.StringFlag{Name: "instance-type", Value: cloud.DefaultInstanceType, Usage: "EC2 instance type"},
		&cli.StringFlag{Name: "ami", Usage: "image id to launch (default: Ubuntu 24.04 LTS for the type's architecture)"},
		&cli.StringFlag{Name: "ami-parameter", Usage: "SSM parameter holding the image id; {arch} becomes amd64 or arm64 (default: Canonical's Ubuntu 24.04 parameter)"},
		&cli.StringFlag{Name: "ssh-key", Usage: "public key file to import as the key pair (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub; else kafkaup makes a key)"},
		&cli.StringFlag{Name: "subnet", Usage: "subnet id to launch in (default: a default subnet of the default VPC)"},
		&cli.StringSliceFlag{Name: "allow-cidr", Usage: "CIDR allowed to reach SSH (22) and Kafka (9092), repeatable (default: your public IP /32)"},
		&cli.BoolFlag{Name: "open-to-world", Usage: "allow --allow-cidr 0.0.0.0/0 or ::/0: anyone on the internet may then read and write your topics"},
		&cli.BoolFlag{Name: "elastic-ip", Usage: "allocate an Elastic IP so the address survives stop/start (released by destroy)"},
		&cli.StringFlag{Name: "eip-allocation", Usage: "associate your own Elastic IP (allocation id; never released by kafkaup)"},
		&cli.IntFlag{Name: "root-size", Value: cloud.DefaultRootSizeGB, Usage: "root volume size in GB (gp3, encrypted)"},
		&cli.StringFlag{Name: "address", Value: "dns", Usage: "what clients are given: dns (the public DNS name) or ip"},
		&cli.StringSliceFlag{Name: "topics", Usage: "topics to create once the broker runs, comma-separated"},
		&cli.StringFlag{Name: "user", Value: "ubuntu", Usage: "SSH user of the image"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "private key matching --ssh-key (default: --ssh-key without .pub)"},
		&cli.DurationFlag{Name: "connect-timeout", Value: 5 * time.Minute, Usage: "how long to wait for SSH on the new instance"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before creating AWS resources"},
		&cli.BoolFlag{Name: "skip-verify", Usage: "do not produce and consume from this machine at the end"},
	}
	flags = append(flags, specFlags()...)
	flags = append(flags, outputFlags()...)
	return &cli.Command{
		Name:      "create",
		Usage:     "launch an EC2 instance and provision a Kafka broker on it",
		UsageText: "kafkaup create [NAME] [--region R] [--instance-type t3.micro] [--elastic-ip] [--allow-cidr CIDR] [--topics a,b] [provision flags]",
		Description: "Looks up the image, imports your SSH key, makes a security group open only to you on 22 and 9092, launches\n" +
			"an instance with IMDSv2 and an encrypted gp3 root volume (everything tagged at creation), waits for SSH, provisions\n" +
			"Kafka and proves it with a produce and consume from here. Rerun it after any failure: it resumes.",
		Flags:  flags,
		Action: runCreate,
	}
}

// createPlan is what create resolved from the flags before touching AWS.
type createPlan struct {
	name     string
	req      cloud.CreateRequest
	identity string // private key for SSH; empty: kafkaup's generated key
	spec     provision.Spec
	addrKind string
}

func runCreate(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		name = DefaultBrokerName
	}
	if err := state.ValidateName(name); err != nil {
		return &usageError{err.Error()}
	}
	p := &createPlan{name: name, addrKind: c.String("address")}
	if p.addrKind != "dns" && p.addrKind != "ip" {
		return usagef("--address must be dns or ip")
	}
	if c.Bool("elastic-ip") && c.String("eip-allocation") != "" {
		return usagef("--elastic-ip and --eip-allocation both given: choose one")
	}
	// A rerun resumes the broker kafkaup has a record of: flags not given
	// keep their recorded values (a resumed create never drops --tls or
	// --auth, say).
	dir, err := state.Dir()
	if err != nil {
		return err
	}
	rec, err := state.Load(dir, name)
	var recorded *state.Broker
	switch {
	case errors.Is(err, state.ErrNoBroker):
	case err != nil:
		return err
	case rec.EC2 == nil:
		return usagef("the name %q is already used for host %s (set up with provision --host); pick another name", name, rec.Host)
	default:
		recorded = &rec
	}
	// The spec is checked now with a placeholder address; the real one is
	// known once the instance runs.
	if p.spec, err = buildSpec(c, "placeholder.invalid", recorded); err != nil {
		return err
	}
	topics, err := topicList(c.StringSlice("topics"))
	if err != nil {
		return err
	}
	p.req = cloud.CreateRequest{Name: name, InstanceType: c.String("instance-type"), AMI: c.String("ami"), AMIParameter: c.String("ami-parameter"),
		SubnetID: c.String("subnet"), AllowCIDRs: c.StringSlice("allow-cidr"), ElasticIP: c.Bool("elastic-ip"),
		EIPAllocationID: c.String("eip-allocation"), RootSizeGB: c.Int("root-size")}
	if p.req.SSHPublicKey, p.identity, err = sshKeyFlags(c.String("ssh-key"), c.String("identity")); err != nil {
		return err
	}
	if err := checkOpenToWorld(c.App.ErrWriter, name, p.req.AllowCIDRs, p.spec.Security, c.Bool("open-to-world")); err != nil {
		return err
	}
	if err := cloud.ValidateLocal(c.String("region"), p.req); err != nil {
		if len(p.req.AllowCIDRs) > 0 || !strings.Contains(err.Error(), "allow at least one CIDR") {
			return &usageError{err.Error()}
		}
	}

	s, err := openSession(c, "create-"+name)
	if err != nil {
		return err
	}
	defer s.Close()
	if p.identity == "" && rec.Identity != "" {
		p.identity = rec.Identity // resuming with the key kafkaup made last time
	}

	cl, err := newCloud(c, s, rec)
	if err != nil {
		return err
	}
	if len(p.req.AllowCIDRs) == 0 {
		ip, err := cloud.CallerIP(c.Context, &http.Client{Timeout: 10 * time.Second}, cloud.DefaultCallerIPURL)
		if err != nil {
			return fmt.Errorf("find your public IP to open the security group to it: %w. Pass --allow-cidr with your address (e.g. 203.0.113.7/32)", err)
		}
		cidr, err := cloud.HostCIDR(ip)
		if err != nil {
			return err
		}
		p.req.AllowCIDRs = []string{cidr}
	}
	s.ui.Printf("checking the request in %s", cl.Region)
	if err := cl.Validate(c.Context, p.req); err != nil {
		return &usageError{err.Error()}
	}
	if c.Bool("dry-run") {
		fmt.Fprintf(c.App.Writer, "Would create broker %s in %s: a %s instance (%d GB gp3, encrypted, IMDSv2), security group kafkaup-%s open to %s on 22 and 9092, key pair kafkaup-%s",
			name, cl.Region, p.req.InstanceType, p.req.RootSizeGB, name, strings.Join(p.req.AllowCIDRs, ", "), name)
		if p.req.ElasticIP {
			fmt.Fprint(c.App.Writer, ", an Elastic IP")
		}
		fmt.Fprintln(c.App.Writer, "; then provision Kafka", p.spec.KafkaVersion, "on it. Nothing was created.")
		return nil
	}
	if !c.Bool("yes") {
		ok, err := confirm(c, fmt.Sprintf("Create a %s instance and its security group, key pair%s for broker %s in %s (billed to your AWS account)?",
			p.req.InstanceType, map[bool]string{true: " and Elastic IP", false: ""}[p.req.ElasticIP], name, cl.Region))
		if err != nil || !ok {
			return err
		}
	}

	rec.Name = name
	rec.User = c.String("user")
	rec.Port = 22
	rec.EC2 = &state.EC2{Region: cl.Region, AddressKind: p.addrKind, EIPAllocationID: p.req.EIPAllocationID}
	if p.identity != "" {
		recordTarget(&rec, target{Host: rec.Host, Port: 22, User: rec.User}, p.identity)
	}
	if err := state.Save(s.stateDir, rec); err != nil {
		return err
	}
	s.ui.Printf("creating AWS resources for %s", name)
	start := time.Now()
	b, err := cl.Create(c.Context, p.req)
	var ce *cloud.CreateError
	if errors.As(err, &ce) && len(ce.PrivateKeyPEM) > 0 {
		if _, kerr := storeGeneratedKey(s, &rec, ce.PrivateKeyPEM); kerr != nil {
			err = errors.Join(err, kerr)
		}
	}
	if err != nil {
		return s.wrap(err)
	}
	if len(b.PrivateKeyPEM) > 0 {
		if p.identity, err = storeGeneratedKey(s, &rec, b.PrivateKeyPEM); err != nil {
			return err
		}
	}
	s.ui.Printf("instance %s is %s at %s (%s)", b.InstanceID, b.State, b.PublicIP, time.Since(start).Round(100*time.Millisecond))
	if err := s.provisionInstance(c, cl, &rec, b, p.spec); err != nil {
		return err
	}
	if len(topics) > 0 {
		sec, err := loadSecrets(s.stateDir, rec.Name, p.spec.Security)
		if err != nil {
			return err
		}
		if err := createTopics(c.Context, rec.Bootstrap(), sec.Auth(), topics); err != nil {
			return s.wrap(fmt.Errorf("the broker runs, but creating --topics failed: %w (rerun kafkaup create %s, or use kafkaup topics create)", err, name))
		}
		fmt.Fprintf(c.App.Writer, "Created topics: %s\n", strings.Join(topics, ", "))
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.Writer, "\nLog in: kafkaup ssh %s    Status: kafkaup status %s    Delete everything: kafkaup destroy %s\n", name, name, name)
	}
	return nil
}

// checkOpenToWorld refuses to open the broker to the whole internet
// without TLS and a login, unless --open-to-world says so (then it warns).
func checkOpenToWorld(warn io.Writer, name string, cidrs []string, sec provision.Security, openToWorld bool) error {
	for _, cidr := range cidrs {
		if cidr = strings.TrimSpace(cidr); cidr != "0.0.0.0/0" && cidr != "::/0" {
			continue
		}
		if sec.TLS && sec.SCRAM {
			return nil // clients need kafkaup's password, over TLS
		}
		missing := "no authentication and no encryption"
		switch {
		case sec.SCRAM:
			missing = "a login but no TLS (the data crosses the internet unencrypted)"
		case sec.TLS:
			missing = "TLS but no authentication"
		}
		if !openToWorld {
			return usagef("--allow-cidr %s would let anyone on the internet reach SSH and the broker, and the broker has %s: anyone could read, write and delete your topics. "+
				"Add --tls --auth scram to require kafkaup's password over TLS, or list the addresses that need it instead, or add --open-to-world if you really mean it", cidr, missing)
		}
		fmt.Fprintf(warn, "warning: port 9092 of %s will be open to the whole internet with %s: anyone can read, write and delete its topics\n", name, missing)
		return nil
	}
	return nil
}

// provisionInstance points the record at the instance's public address and
// runs provision there: SSH is waited for (refused and publickey failures
// are normal while it boots), the host key is taken from the console output
// when it is there, else trusted on first use and pinned.
func (s *session) provisionInstance(c *cli.Context, cl *cloud.Cloud, rec *state.Broker, b *cloud.Broker, spec provision.Spec) error {
	if b.PublicIP == "" {
		return fmt.Errorf("instance %s has no public IP: its subnet does not assign one. Use --elastic-ip, or a public subnet (--subnet)", b.InstanceID)
	}
	rec.Host = b.PublicIP
	rec.EC2.InstanceID = b.InstanceID
	if b.EIPOwned {
		rec.EC2.EIPAllocationID = b.EIPAllocationID
	}
	if !c.IsSet("advertised-host") {
		spec.AdvertisedHost = b.PublicIP
		if rec.EC2.AddressKind == "dns" && b.PublicDNS != "" {
			spec.AdvertisedHost = b.PublicDNS
		}
	}
	rememberSpec(rec, spec, swapToRecord(c, rec.Swap))
	t := target{Host: rec.Host, Port: rec.Port, User: rec.User}
	keys, err := cl.ConsoleHostKeys(c.Context, b.InstanceID)
	if err != nil {
		s.ui.Printf("could not read the console output for host keys (%v); trusting the key on first use", err)
	}
	s.expectedHostKeys = keys
	if len(keys) > 0 {
		s.ui.Printf("host keys read from the instance's console output: %d", len(keys))
	}
	return s.provision(c, rec, t, spec)
}

// storeGeneratedKey keeps a private key kafkaup made (0600) and records it.
func storeGeneratedKey(s *session, rec *state.Broker, pem []byte) (string, error) {
	path, err := state.SaveKey(s.stateDir, rec.Name, pem)
	if err != nil {
		return "", err
	}
	rec.Identity = path
	s.ui.Printf("generated an SSH key for %s: %s", rec.Name, path)
	return path, state.Save(s.stateDir, *rec)
}

// sshKeyFlags reads --ssh-key (or finds a default public key) and works out
// the private key to log in with.
func sshKeyFlags(pubPath, identity string) ([]byte, string, error) {
	if pubPath == "" {
		home, _ := os.UserHomeDir()
		for _, n := range remote.DefaultIdentityFiles {
			cand := filepath.Join(home, ".ssh", n+".pub")
			if _, err := os.Stat(cand); err == nil {
				pubPath = cand
				break
			}
		}
		if pubPath == "" {
			return nil, identity, nil // kafkaup makes a key
		}
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, "", usagef("--ssh-key: %v", err)
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey(pub); err != nil {
		return nil, "", usagef("--ssh-key %s is not an OpenSSH public key (%v); pass the .pub file", pubPath, err)
	}
	if identity == "" {
		if priv := strings.TrimSuffix(pubPath, ".pub"); priv != pubPath {
			if _, err := os.Stat(priv); err == nil {
				identity = priv
			}
		}
	}
	return pub, identity, nil
}

func topicList(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t == "" {
				continue
			}
			if err := kafkaclient.ValidateTopicName(t); err != nil {
				return nil, usagef("--topics: %v", err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

func createTopics(ctx context.Context, bootstrap string, auth kafkaclient.Auth, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := kafkaclient.DialWith(ctx, bootstrap, auth)
	if err != nil {
		return err
	}
	defer cl.Close()
	for _, t := range topics {
		err := cl.CreateTopic(ctx, kafkaclient.TopicSpec{Name: t})
		var exists *kafkaclient.TopicExistsError
		if err != nil && !errors.As(err, &exists) {
			return err
		}
	}
	return nil
}

// newCloud connects to AWS in the flag's region, else the record's, else the
// configured one.
func newCloud(c *cli.Context, s *session, rec state.Broker) (*cloud.Cloud, error) {
	region := flagString(c, "region")
	if region == "" && rec.EC2 != nil {
		region = rec.EC2.Region
	}
	cl, err := cloud.New(c.Context, region)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	cl.Log = s.logFile
	return cl, nil
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
			if err := state.ValidateName(name); err != nil {
				return &usageError{err.Error()}
			}
			s, err := openSession(c, "destroy-"+name)
			if err != nil {
				return err
			}
			defer s.Close()
			rec, err := state.Load(s.stateDir, name)
			if err != nil && !errors.Is(err, state.ErrNoBroker) {
				return err
			}
			if err == nil && rec.EC2 == nil {
				return usagef("%s was set up with provision --host, not created on EC2: kafkaup does not delete hosts it did not make. Use kafkaup forget %s to drop its record", name, name)
			}
			cl, err := newCloud(c, s, rec)
			if err != nil {
				return err
			}
			found, err := cl.Find(c.Context, name)
			if err != nil {
				return s.wrap(err)
			}
			if found.Empty() {
				fmt.Fprintf(c.App.Writer, "Nothing of broker %s is left in %s.\n", name, cl.Region)
				if !c.Bool("dry-run") {
					return state.Delete(s.stateDir, name)
				}
				return nil
			}
			fmt.Fprintf(c.App.Writer, "Broker %s in %s has:\n", name, cl.Region)
			for _, l := range found.Lines() {
				fmt.Fprintf(c.App.Writer, "  %s\n", l)
			}
			if c.Bool("dry-run") {
				fmt.Fprintln(c.App.Writer, "Dry run: nothing deleted.")
				return nil
			}
			if !c.Bool("yes") {
				ok, err := confirm(c, fmt.Sprintf("Delete these, and every message stored in broker %s?", name))
				if err != nil || !ok {
					return err
				}
			}
			start := time.Now()
			if _, err := cl.Destroy(c.Context, name, false); err != nil {
				return s.wrap(err)
			}
			if err := state.Delete(s.stateDir, name); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "Deleted broker %s in %s.\n", name, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}
}

// instanceCommand is `kafkaup stop|start NAME`: the EC2 instance itself.
func instanceCommand(action string) *cli.Command {
	usage := "stop the broker's EC2 instance (saves money; data stays on the volume)"
	if action == "start" {
		usage = "start the broker's EC2 instance again, fix advertised.listeners if its address changed, and verify"
	}
	return &cli.Command{
		Name:      action,
		Usage:     usage,
		UsageText: "kafkaup " + action + " NAME",
		Flags:     []cli.Flag{regionFlag(), &cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}, &cli.BoolFlag{Name: "skip-verify", Hidden: true}},
		Action: func(c *cli.Context) error {
			return withBroker(c, action, func(s *session, b *broker) error {
				if b.rec.EC2 == nil {
					return usagef("%s was set up with provision --host: kafkaup can only stop and start EC2 instances it created (use kafkaup broker %s %s for the broker itself)", b.rec.Name, action, b.rec.Name)
				}
				cl, err := newCloud(c, s, b.rec)
				if err != nil {
					return err
				}
				start := time.Now()
				if action == "stop" {
					if _, err := cl.Stop(c.Context, b.rec.Name); err != nil {
						return s.wrap(err)
					}
					fmt.Fprintf(c.App.Writer, "instance of %s stopped in %s; kafkaup start %s brings it back\n", b.rec.Name, time.Since(start).Round(100*time.Millisecond), b.rec.Name)
					return nil
				}
				inst, err := cl.Start(c.Context, b.rec.Name)
				if err != nil {
					return s.wrap(err)
				}
				s.ui.Printf("instance %s running at %s (%s)", inst.InstanceID, inst.PublicIP, time.Since(start).Round(100*time.Millisecond))
				return s.provisionInstance(c, cl, &b.rec, inst, b.spec)
			})
		},
	}
}
