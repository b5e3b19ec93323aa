package workflow

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/security"
	"github.com/kafkaup/kafkaup/provision/state"
)

// DefaultName is used when create is given no NAME.
const DefaultName = "kafka"

// CreateOptions is `kafkaup create NAME`.
type CreateOptions struct {
	Name   string
	Region string
	// Request is the instance to launch; Name and SSHPublicKey are filled
	// in here.
	Request     cloud.CreateRequest
	SSHKey      string // public key file to import; empty: the first default key, else a generated one
	Identity    string // private key for SSH; default: SSHKey without .pub
	User        string // the image's SSH user
	AddressKind string // what clients are given: dns or ip
	Topics      []string
	// Nodes is the cluster's size: 1 (a single broker) or an odd number up
	// to cloud.MaxNodes, one instance each. 0: the recorded size, else 1.
	Nodes       int
	OpenToWorld bool
	Yes         bool // do not ask before creating AWS resources
	// ConsoleTimeout bounds the wait for a new instance's console output to
	// show its SSH host keys (cloud.DefaultConsoleTimeout is the CLI's
	// default; 0 reads it once); without them by then, the host key is
	// trusted on first use.
	ConsoleTimeout time.Duration
	// NoHeadStart launches the instance without the head start in its
	// user-data (provision.UserData): the SSH run does all the work.
	NoHeadStart bool
	// UserDataFile is the user's own user-data, merged with the head
	// start's (or given alone with NoHeadStart).
	UserDataFile string
	Overrides    state.Overrides
	RunOptions
}

// CreatePlan is what create would make, in the cloud package's own names.
type CreatePlan struct {
	Name          string   `json:"name"`
	Region        string   `json:"region"`
	InstanceType  string   `json:"instance_type"`
	RootSizeGB    int      `json:"root_size_gb"`
	SecurityGroup string   `json:"security_group"`
	KeyPair       string   `json:"key_pair"`
	AllowCIDRs    []string `json:"allow_cidrs"`
	Ports         []int32  `json:"ports"`
	ElasticIP     bool     `json:"elastic_ip"`
	KafkaVersion  string   `json:"kafka_version"`
	HeadStart     bool     `json:"head_start"`
	UserDataBytes int      `json:"user_data_bytes"`
	// Nodes is how many instances (one per node); Placements where each
	// goes; SharedZones says two nodes share a zone (the region has
	// fewer zones than nodes, or --subnet put them in one).
	Nodes       int               `json:"nodes"`
	Placements  []cloud.Placement `json:"placements"`
	SharedZones bool              `json:"shared_zones,omitempty"`
}

// Create launches an instance and provisions a broker on it. A rerun
// resumes the cluster kafkaup has a record of: settings not given keep
// their recorded values, and the cloud package finds each resource by its
// tag before making one.
func Create(ctx context.Context, env Env, o CreateOptions) (*Outcome, error) {
	rec, spec, err := checkCreate(&o, env)
	if err != nil {
		return nil, err
	}
	if o.Identity == "" && len(rec.Nodes) > 0 && rec.Nodes[0].Identity != "" {
		o.Identity = rec.Nodes[0].Identity // resuming with the key kafkaup made last time
	}
	cl, err := newCloud(ctx, env, o.Region, rec)
	if err != nil {
		return nil, err
	}
	if len(o.Request.AllowCIDRs) == 0 { // neither given nor recorded
		ip, err := env.CallerIP(ctx)
		if err != nil {
			return nil, fmt.Errorf("find your public IP to open the security group to it: %w. Pass --allow-cidr with your address (e.g. 203.0.113.7/32)", err)
		}
		cidr, err := cloud.HostCIDR(ip)
		if err != nil {
			return nil, err
		}
		o.Request.AllowCIDRs = []string{cidr}
	}
	env.UI.Printf("checking the request in %s", cl.RegionName())
	placements, err := cl.Layout(ctx, o.Request)
	if err != nil {
		return nil, validationError(err)
	}
	sayPlacements(env.UI, o.Name, placements, o.Request.SubnetID != "")
	if o.DryRun {
		return &Outcome{Name: o.Name, Spec: spec, CreatePlan: &CreatePlan{Name: o.Name, Region: cl.RegionName(),
			InstanceType: o.Request.InstanceType, RootSizeGB: o.Request.RootSizeGB,
			SecurityGroup: cloud.ResourceName(o.Name), KeyPair: cloud.ResourceName(o.Name),
			AllowCIDRs: o.Request.AllowCIDRs, Ports: cloud.IngressPorts(o.Request), ElasticIP: o.Request.ElasticIP,
			KafkaVersion: spec.KafkaVersion, HeadStart: !o.NoHeadStart, UserDataBytes: len(o.Request.UserData),
			Nodes: o.Nodes, Placements: placements, SharedZones: cloud.SharedZones(placements)}}, nil
	}
	if !o.Yes {
		ok, err := env.UI.Confirm(confirmCreate(o, cl.RegionName()))
		if err != nil || !ok {
			return nil, err
		}
	}
	n := rec.Node(0)
	n.User, n.Port = o.User, 22
	if o.Identity != "" {
		setTarget(&rec, 0, Target{Host: n.Host, Port: 22, User: o.User, Identity: o.Identity})
	}
	rec.Node(o.Nodes - 1) // the cluster's size is recorded before anything is made, so a rerun resumes it
	rec.EC2 = &state.EC2{Region: cl.RegionName(), AddressKind: o.AddressKind, AllowCIDRs: o.Request.AllowCIDRs}
	if err := env.Store.Save(rec); err != nil {
		return nil, err
	}
	env.UI.Printf("creating AWS resources for %s", o.Name)
	start := time.Now()
	insts, err := cl.CreateNodes(ctx, o.Request)
	created := time.Now()
	var ce *cloud.CreateError
	if errors.As(err, &ce) && len(ce.PrivateKeyPEM) > 0 {
		if kerr := storeGeneratedKey(env, &rec, ce.PrivateKeyPEM); kerr != nil {
			err = errors.Join(err, kerr)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(insts[0].PrivateKeyPEM) > 0 {
		if err := storeGeneratedKey(env, &rec, insts[0].PrivateKeyPEM); err != nil {
			return nil, err
		}
	}
	for _, inst := range insts {
		env.UI.Printf("instance %s is %s at %s%s (%s)", inst.InstanceID, inst.State, inst.PublicIP, zoneNote(inst, len(insts)), time.Since(start).Round(100*time.Millisecond))
	}
	o.Dial.RetryAuth = true
	if o.Nodes > 1 {
		return createCluster(ctx, env, cl, &rec, insts, o)
	}
	inst := insts[0]
	out, err := provisionInstance(ctx, env, cl, &rec, 0, inst, spec, o.Overrides.AdvertisedHost != nil, o.ConsoleTimeout, o.RunOptions)
	if out != nil {
		out.Timeline = createTimeline(start, created, inst, out)
	}
	if err != nil {
		return out, err
	}
	began := time.Now()
	if err := createTopicsAfter(ctx, env, rec, o, out); err != nil {
		return out, err
	}
	if len(o.Topics) > 0 {
		out.Timeline.Add("client", "create --topics", strings.Join(o.Topics, ", "), began, time.Now())
	}
	return out, nil
}

// createTopicsAfter makes create's --topics once the cluster runs.
func createTopicsAfter(ctx context.Context, env Env, rec state.Cluster, o CreateOptions, out *Outcome) error {
	if len(o.Topics) == 0 {
		return nil
	}
	if err := createTopics(ctx, env, rec, o.Topics); err != nil {
		return fmt.Errorf("the cluster runs, but creating --topics failed: %w (rerun kafkaup create %s, or use kafkaup topics create)", err, o.Name)
	}
	out.Topics = o.Topics
	return nil
}

// createTimeline says where a create's time went: the AWS calls and the
// instance's start, the wait for SSH, each step of the provisioning run,
// the head start's own work on the host beside them, and the first
// produce.
func createTimeline(start, created time.Time, inst *cloud.Broker, out *Outcome) *provision.Timeline {
	tl := &provision.Timeline{Start: start}
	if !inst.Launched.IsZero() {
		tl.Add("aws", "API calls: key pair, security group, launch", "", start, inst.Launched)
		tl.Add("aws", "instance pending -> running", inst.InstanceID, inst.Launched, inst.Running)
		tl.Add("aws", "API calls: address, read back", "", inst.Running, created)
	} else {
		tl.Add("aws", "API calls (the instance was there already)", inst.InstanceID, start, created)
	}
	tl.Add("aws", "wait for the SSH host keys in the console output", out.console.Detail, out.console.Start, out.console.End)
	tl.Add("ssh", "SSH ready: sshd up and the key accepted", "", out.connect.Start, out.connect.End)
	tl.AddRun(out.Result)
	tl.Sort()
	return tl
}

// checkCreate checks everything about a create that needs no AWS call, and
// returns the record to resume (or a new one) and the spec to apply. The
// spec is checked with a placeholder address: the real one is known once
// the instance runs.
func checkCreate(o *CreateOptions, env Env) (state.Cluster, provision.Spec, error) {
	var spec provision.Spec
	if o.Name == "" {
		o.Name = DefaultName
	}
	if err := state.ValidateName(o.Name); err != nil {
		return state.Cluster{}, spec, input(err)
	}
	if o.AddressKind != "dns" && o.AddressKind != "ip" {
		return state.Cluster{}, spec, provision.Inputf("--address must be dns or ip")
	}
	if o.Request.ElasticIP && o.Request.EIPAllocationID != "" {
		return state.Cluster{}, spec, provision.Inputf("--elastic-ip and --eip-allocation both given: choose one")
	}
	rec, found, err := loadOrNew(env, o.Name)
	if err != nil {
		return rec, spec, err
	}
	if found && rec.EC2 == nil {
		return rec, spec, provision.Inputf("the name %q is already used for host %s (set up with provision --host); pick another name", o.Name, rec.Nodes[0].Host)
	}
	if err := checkNodes(o, rec, found); err != nil {
		return rec, spec, err
	}
	if len(o.Request.AllowCIDRs) == 0 && rec.EC2 != nil && len(rec.EC2.AllowCIDRs) > 0 {
		o.Request.AllowCIDRs = rec.EC2.AllowCIDRs
		env.UI.Printf("keeping the addresses allowed in for %s: %s (kafkaup allow %s changes them)", o.Name, strings.Join(o.Request.AllowCIDRs, ", "), o.Name)
	}
	// The shared settings are checked on node 1 alone: a cluster's
	// addresses and ids are laid out once its instances exist.
	first := rec
	first.Nodes = rec.Nodes[:min(len(rec.Nodes), 1)]
	if spec, err = o.Overrides.Apply(first, 0, "placeholder.invalid"); err != nil {
		return rec, spec, err
	}
	if err := checkLocalTarball(&spec); err != nil {
		return rec, spec, err
	}
	o.Request.Ports = ingressPorts(spec)
	if err := checkTopics(o.Topics); err != nil {
		return rec, spec, err
	}
	if err := userData(o, spec); err != nil {
		return rec, spec, err
	}
	o.Request.Name = o.Name
	if o.Request.SSHPublicKey, o.Identity, err = sshKey(env.UI, o.SSHKey, o.Identity); err != nil {
		return rec, spec, err
	}
	if err := checkLoginKey(o.Request.SSHPublicKey, o.Identity); err != nil {
		return rec, spec, err
	}
	if err := CheckOpenToWorld(env.UI, o.Name, o.Request.AllowCIDRs, spec.Security.Mode, o.OpenToWorld); err != nil {
		return rec, spec, err
	}
	if err := cloud.ValidateLocal(o.Region, o.Request); err != nil && (len(o.Request.AllowCIDRs) > 0 || !errors.Is(err, cloud.ErrNoAllowedCIDR)) {
		return rec, spec, validationError(err)
	}
	return rec, spec, nil
}

// userData makes the instance's user-data: the head start (unless
// --no-head-start) and the user's own --user-data, merged.
func userData(o *CreateOptions, spec provision.Spec) error {
	var own []byte
	if o.UserDataFile != "" {
		var err error
		if own, err = os.ReadFile(o.UserDataFile); err != nil {
			return provision.Inputf("--user-data: %v", err)
		}
	}
	ud, err := provision.UserData(spec, !o.NoHeadStart, own)
	if err != nil {
		return err
	}
	o.Request.UserData = ud
	return nil
}

// validationError classifies what cloud validation found: a mistake in the
// request is the user's (exit 2); AWS being unreachable or throttling is
// a runtime failure.
func validationError(err error) error {
	var re *cloud.RequestError
	if errors.As(err, &re) {
		return input(err)
	}
	return err
}

// CheckOpenToWorld refuses to open the broker to the whole internet
// without TLS and a login, unless openToWorld says so (then it warns).
func CheckOpenToWorld(ui interface{ Printf(string, ...any) }, name string, cidrs []string, sec security.Mode, openToWorld bool) error {
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
			return provision.Inputf("--allow-cidr %s would let anyone on the internet reach SSH and the broker, and the broker has %s: anyone could read, write and delete your topics. "+
				"Add --tls --auth scram to require kafkaup's password over TLS, or list the addresses that need it instead, or add --open-to-world if you really mean it", cidr, missing)
		}
		ui.Printf("warning: port 9092 of %s will be open to the whole internet with %s: anyone can read, write and delete its topics", name, missing)
		return nil
	}
	return nil
}

// provisionInstance points node i at its instance's public address and
// provisions it: SSH is waited for (refused and publickey failures are
// normal while it boots), and the host key is checked against the keys the
// instance printed on its console (instanceHostKeys), else trusted on
// first use and pinned.
func provisionInstance(ctx context.Context, env Env, cl Cloud, rec *state.Cluster, i int, inst *cloud.Broker, spec provision.Spec, keepAdvertised bool, consoleWait time.Duration, o RunOptions) (*Outcome, error) {
	if inst.PublicIP == "" {
		return nil, fmt.Errorf("instance %s has no public IP: its subnet does not assign one. Use --elastic-ip, or a public subnet (--subnet)", inst.InstanceID)
	}
	n := rec.Node(i)
	console := timed{Start: time.Now()}
	keys, err := instanceHostKeys(ctx, env, cl, *n, inst, consoleWait)
	console.End, console.Detail = time.Now(), fmt.Sprintf("%d keys", len(keys))
	if err != nil {
		return nil, err
	}
	n.Host, n.InstanceID = inst.PublicIP, inst.InstanceID
	n.SetHostKeys(keys)
	if inst.EIPOwned {
		n.EIPAllocationID = inst.EIPAllocationID
	}
	if !keepAdvertised {
		spec.AdvertisedHost = inst.PublicIP
		if rec.EC2.AddressKind == "dns" && inst.PublicDNS != "" {
			spec.AdvertisedHost = inst.PublicDNS
		}
	}
	state.Remember(rec, i, spec)
	out, err := provisionNode(ctx, env, rec, i, spec, o)
	if out != nil {
		out.console = console
	}
	var mismatch *remote.HostKeyMismatchError
	if errors.As(err, &mismatch) && len(mismatch.Expected) > 0 {
		err = fmt.Errorf("%w\nNothing was installed on instance %s; it still runs (and is billed). Once you have looked at its system log: kafkaup destroy %s removes it, and kafkaup create %s then launches a new one",
			err, inst.InstanceID, rec.Name, rec.Name)
	}
	return out, err
}

// timed is a stretch of the run, for the timeline.
type timed struct {
	Start, End time.Time
	Detail     string
}

// instanceHostKeys are the SSH host keys of node n's instance: the recorded
// ones while it is the same instance, else those the instance prints on
// its console at first boot, waited for up to wait (0: one read) when the
// instance is new to the record (one already provisioned without them is
// read once). None (the console has not shown them in time, or could not
// be read) means the key is trusted on first use, which is said.
func instanceHostKeys(ctx context.Context, env Env, cl Cloud, n state.Node, inst *cloud.Broker, wait time.Duration) ([]ssh.PublicKey, error) {
	if n.InstanceID == inst.InstanceID {
		if len(n.HostKeys) > 0 {
			return n.PublicHostKeys()
		}
		wait = 0
	}
	if wait > 0 {
		env.UI.Printf("reading the SSH host keys of %s from its console output (at most %s)", inst.InstanceID, wait)
	}
	start := time.Now()
	next := 30 * time.Second
	keys, err := cl.WaitConsoleHostKeys(ctx, inst.InstanceID, cloud.ConsoleWait{Timeout: wait, Waiting: func(waited time.Duration) {
		if waited >= next {
			env.UI.Printf("still waiting for %s to print its SSH host keys on the console: %s of at most %s", inst.InstanceID, waited.Round(time.Second), wait)
			next += 30 * time.Second
		}
	}})
	took := time.Since(start).Round(100 * time.Millisecond)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		env.UI.Printf("could not read the console output of %s for its SSH host keys (%v); trusting the host key on first use", inst.InstanceID, err)
	case len(keys) == 0 && wait == 0:
		env.UI.Printf("the console output of %s shows no SSH host keys; checking the host key against kafkaup's known_hosts (trusting it on first use if it has none)", inst.InstanceID)
	case len(keys) == 0:
		env.UI.Printf("the console output of %s shows no SSH host keys after %s; trusting the host key on first use", inst.InstanceID, took)
	default:
		fps := make([]string, len(keys))
		for j, k := range keys {
			fps[j] = k.Type() + " " + ssh.FingerprintSHA256(k)
		}
		env.UI.Printf("SSH host keys of %s read from its console output in %s: %s", inst.InstanceID, took, strings.Join(fps, ", "))
	}
	return keys, nil
}

// storeGeneratedKey keeps a private key kafkaup made (0600) and records it.
func storeGeneratedKey(env Env, rec *state.Cluster, pem []byte) error {
	path, err := env.Store.SaveKey(rec.Name, pem)
	if err != nil {
		return err
	}
	rec.Node(0).Identity = path
	env.UI.Printf("generated an SSH key for %s: %s", rec.Name, path)
	return env.Store.Save(*rec)
}

// sshKey reads the public key to import (or finds a default one) and works
// out the private key to log in with. EC2 imports only RSA and ED25519
// keys: default keys of other types are skipped (said on ui), and an
// explicit one is refused.
func sshKey(ui interface{ Printf(string, ...any) }, pubPath, identity string) ([]byte, string, error) {
	if pubPath == "" {
		home, _ := os.UserHomeDir()
		for _, n := range remote.DefaultIdentityFiles {
			cand := filepath.Join(home, ".ssh", n+".pub")
			data, err := os.ReadFile(cand)
			if err != nil {
				continue
			}
			k, _, _, _, err := ssh.ParseAuthorizedKey(data)
			if err != nil || !ec2Importable(k) {
				ui.Printf("not importing %s into EC2: %s", cand, unusableKey(k, err))
				continue
			}
			pubPath = cand
			break
		}
		if pubPath == "" {
			return nil, identity, nil // kafkaup makes a key
		}
	}
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, "", provision.Inputf("--ssh-key: %v", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return nil, "", provision.Inputf("--ssh-key %s is not an OpenSSH public key (%v); pass the .pub file", pubPath, err)
	}
	if !ec2Importable(k) {
		return nil, "", provision.Inputf("--ssh-key %s: %s. Pass an ed25519 or RSA public key (ssh-keygen -t ed25519 makes one), or leave --ssh-key out and kafkaup makes a key for this broker", pubPath, unusableKey(k, nil))
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

// ec2Importable tells the key types EC2's ImportKeyPair takes.
func ec2Importable(k ssh.PublicKey) bool {
	return k.Type() == ssh.KeyAlgoRSA || k.Type() == ssh.KeyAlgoED25519
}

func unusableKey(k ssh.PublicKey, parseErr error) string {
	if parseErr != nil {
		return fmt.Sprintf("not an OpenSSH public key (%v)", parseErr)
	}
	return fmt.Sprintf("its type is %s, and EC2 imports only RSA and ED25519 key pairs", k.Type())
}

// checkLoginKey makes sure, before anything is made in AWS, that kafkaup
// can log in with the key pair it will import: the private key (identity,
// else ssh-agent and the default keys) loads, without a passphrase or
// through ssh-agent, and is pub's private half. pub nil: kafkaup makes
// the key, nothing to check.
func checkLoginKey(pub []byte, identity string) error {
	if pub == nil {
		return nil
	}
	want, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return provision.Inputf("--ssh-key: %v", err)
	}
	signers, err := remote.Signers(identity)
	if err != nil {
		return provision.Inputf("%v. Nothing was created in AWS", err)
	}
	for _, s := range signers {
		if string(s.PublicKey().Marshal()) == string(want.Marshal()) {
			return nil
		}
	}
	if identity != "" {
		return provision.Inputf("%s is not the private key of the public key to import (%s): pass the matching pair (--ssh-key KEY.pub --identity KEY). Nothing was created in AWS", identity, ssh.FingerprintSHA256(want))
	}
	return provision.Inputf("kafkaup could not find the private key of --ssh-key (%s) in ssh-agent or ~/.ssh: pass it with --identity, or load it with ssh-add. Nothing was created in AWS", ssh.FingerprintSHA256(want))
}

// ingressPorts are the TCP ports the cluster's security group opens to the
// allowed CIDRs: SSH, Kafka and, with --metrics, the metrics endpoint.
func ingressPorts(spec provision.Spec) []int32 {
	ports := []int32{cloud.SSHPort, cloud.KafkaPort}
	if spec.Metrics.Enabled {
		ports = append(ports, int32(spec.Metrics.Port))
	}
	return ports
}

func checkTopics(topics []string) error {
	for _, t := range topics {
		if err := kafkaclient.ValidateTopicName(t); err != nil {
			return provision.Inputf("--topics: %v", err)
		}
	}
	return nil
}

func createTopics(ctx context.Context, env Env, rec state.Cluster, topics []string) error {
	sec, err := secrets.Load(env.StateDir, rec.Name, rec.Spec.Security)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := kafkaclient.DialWith(ctx, rec.Bootstrap(), sec.Auth())
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

// newCloud connects to AWS in region, else the record's, else the
// configured one.
func newCloud(ctx context.Context, env Env, region string, rec state.Cluster) (Cloud, error) {
	if region == "" && rec.EC2 != nil {
		region = rec.EC2.Region
	}
	return env.NewCloud(ctx, region)
}
