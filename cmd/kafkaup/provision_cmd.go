package main

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// provisionOutput is what provision, create and reprovision print: the
// engine's result and, for a secured broker, where the client settings are
// (the password itself never appears).
type provisionOutput struct {
	*provision.Result
	Client *secrets.ClientFiles `json:"client,omitempty"`
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
		&cli.DurationFlag{Name: "apt-lock-timeout", Value: provision.DefaultAPTLockTimeout, Usage: "how long to wait for another apt or dpkg run (unattended-upgrades) to release the dpkg lock, 0s..1h"},
		&cli.BoolFlag{Name: "tls", Usage: "clients connect with TLS: kafkaup makes a CA and a certificate for the advertised host (kept in its state directory)"},
		&cli.StringFlag{Name: "auth", Value: "none", Usage: "client login: none, or scram (SASL/SCRAM-SHA-512: kafkaup creates the user and keeps its password)"},
	}
}

// connFlags say how to reach a host over SSH.
func connFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "port", Value: 22, Usage: "SSH port"},
		&cli.StringFlag{Name: "user", Usage: "SSH user (default: your local user name, like ssh; ubuntu on Ubuntu cloud images)"},
		&cli.StringFlag{Name: "identity", Aliases: []string{"i"}, Usage: "SSH private key file (default: ssh-agent and ~/.ssh/id_*)"},
		&cli.StringFlag{Name: "known-hosts", Usage: "known_hosts file to check host keys against (default ~/.ssh/known_hosts and kafkaup's own)"},
		&cli.BoolFlag{Name: "strict-host-key", Usage: "refuse hosts whose key is not known yet instead of trusting and pinning it on first use"},
		&cli.DurationFlag{Name: "connect-timeout", Value: 20 * time.Second, Usage: "how long to keep retrying a refused or timed-out SSH connection"},
	}
}

func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON on stdout"},
	}
}

func provisionCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "host", Usage: "host to provision: name or IP, optionally user@host", Required: true},
		&cli.StringFlag{Name: "name", Usage: "name to remember the broker by, for later commands (default: derived from --host)"},
	}
	flags = append(flags, connFlags()...)
	flags = append(flags, specFlags()...)
	flags = append(flags, outputFlags()...)
	flags = append(flags, &cli.BoolFlag{Name: "skip-verify", Usage: "do not produce and consume from this machine at the end"})
	return &cli.Command{
		Name:      "provision",
		Usage:     "install and start a Kafka broker on an existing Ubuntu/Debian host over SSH",
		UsageText: "kafkaup provision --host HOST [--user USER] [--identity KEY] [--advertised-host NAME] [--heap 400m] [--swap 2G] [--dry-run] [--json]",
		Description: "Observes the host, plans only the changes it needs, applies them over one SSH connection and proves the broker\n" +
			"works with a produce and consume from this machine. Rerunning it converges: on a healthy host it changes nothing.",
		Flags:  flags,
		Action: runProvision,
	}
}

func runProvision(c *cli.Context) error {
	target, err := targetFromFlags(c, c.String("host"))
	if err != nil {
		return err
	}
	spec, err := specFromFlags(c, target.Host)
	if err != nil {
		return err
	}
	name := c.String("name")
	if name == "" {
		name = state.NameForHost(target.Host)
	}
	if err := state.ValidateName(name); err != nil {
		return usagef("--name: %v", err)
	}
	s, err := openSession(c, "provision-"+name)
	if err != nil {
		return err
	}
	defer s.Close()
	rec, err := state.Load(s.stateDir, name)
	if err != nil && !errors.Is(err, state.ErrNoBroker) {
		return err
	}
	if rec.Host != "" && rec.Host != target.Host && rec.EC2 == nil {
		return usagef("the name %q is already used for host %s; pick another --name or run `kafkaup forget %s` first", name, rec.Host, name)
	}
	rec.Name = name
	recordTarget(&rec, target, c.String("identity"))
	rememberSpec(&rec, spec, c.String("swap"))
	return s.provision(c, &rec, target, spec)
}

// provision connects, runs the engine, saves the broker record (before
// changes, so a failed run can be resumed by name) and prints the result.
func (s *session) provision(c *cli.Context, rec *state.Broker, t target, spec provision.Spec) error {
	client, err := s.dial(c, t, rec.Identity)
	if err != nil {
		return err
	}
	defer client.Close()
	// Recorded once the host answers and before any change, so a run that
	// fails midway can be resumed by name (reprovision NAME).
	if !c.Bool("dry-run") {
		if err := state.Save(s.stateDir, *rec); err != nil {
			return err
		}
	}
	// Secrets are made and kept here before the host changes, so a run cut
	// short resumes with the same CA and password.
	sec, err := secrets.Ensure(s.stateDir, rec.Name, secrets.Want{TLS: spec.Security.TLS, SCRAM: spec.Security.SCRAM,
		Hosts: []string{spec.AdvertisedHost}, DryRun: c.Bool("dry-run")})
	if err != nil {
		return err
	}
	spec.Security.KeystorePEM = sec.KeystorePEM
	if sec.Reissued && !c.Bool("dry-run") {
		s.ui.Printf("issued a broker certificate for %s from the CA in %s", spec.AdvertisedHost, sec.Dir)
	}
	res, err := provision.Provision(c.Context, client, spec, t.Host, provision.Options{
		DryRun: c.Bool("dry-run"), SkipVerify: c.Bool("skip-verify"), Progress: s.ui,
		Auth: sec.Auth(), NewPassword: sec.NewPassword,
	})
	if res != nil && res.ClusterID != "" && !c.Bool("dry-run") {
		rec.ClusterID, rec.Systemd = res.ClusterID, res.Systemd
		if serr := state.Save(s.stateDir, *rec); serr != nil && err == nil {
			err = serr
		}
	}
	out := provisionOutput{Result: res}
	if err == nil && !c.Bool("dry-run") {
		if out.Client, err = sec.WriteClientFiles(spec.Bootstrap()); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		if jerr := writeJSON(c.App.Writer, out, err); jerr != nil {
			return jerr
		}
	} else {
		printProvisionResult(c.App.Writer, out, err, spec, rec.Name)
	}
	if err != nil {
		return s.wrap(err)
	}
	return nil
}

// recordTarget remembers how to reach the host.
func recordTarget(rec *state.Broker, t target, identity string) {
	rec.Host, rec.Port, rec.User = t.Host, t.Port, t.User
	if identity != "" {
		if abs, err := filepath.Abs(identity); err == nil {
			identity = abs
		}
		rec.Identity = identity
	}
}

// swapToRecord is the --swap value to remember: the flag when given, else
// the recorded value, else the flag's default (2G where the command has no
// --swap, as instance start).
func swapToRecord(c *cli.Context, recorded string) string {
	if recorded != "" && !c.IsSet("swap") {
		return recorded
	}
	if s := flagString(c, "swap"); s != "" {
		return s
	}
	return "2G"
}

// authSCRAM is --auth scram, as the flag and the broker record spell it.
const authSCRAM = "scram"

// rememberSpec records the spec's flags, for reprovision.
func rememberSpec(rec *state.Broker, spec provision.Spec, swap string) {
	rec.AdvertisedHost, rec.BrokerPort = spec.AdvertisedHost, spec.BrokerPort
	rec.KafkaVersion, rec.Heap, rec.Swap, rec.DataDir = spec.KafkaVersion, spec.Heap(), swap, spec.DataDir
	rec.KafkaURL = spec.Source.URL
	rec.TLS, rec.Auth = spec.Security.TLS, ""
	if spec.Security.SCRAM {
		rec.Auth = authSCRAM
	}
	if spec.Source.LocalTarball == "" {
		rec.KafkaSHA512 = spec.Source.SHA512
	}
}

// target is where to SSH.
type target struct {
	Host, User string
	Port       int
}

func targetFromFlags(c *cli.Context, hostArg string) (target, error) {
	t := target{Host: hostArg, Port: c.Int("port"), User: c.String("user")}
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

func specFromFlags(c *cli.Context, sshHost string) (provision.Spec, error) {
	return buildSpec(c, sshHost, nil)
}

// buildSpec turns the spec flags into a Spec. A flag the user did not set
// takes its value from the broker's record when there is one (reprovision
// converges to the last spec plus what changed), else its default.
func buildSpec(c *cli.Context, sshHost string, rec *state.Broker) (provision.Spec, error) {
	get := func(flag, recorded string) string {
		if rec != nil && !c.IsSet(flag) && recorded != "" {
			return recorded
		}
		return c.String(flag)
	}
	var fromRec state.Broker
	if rec != nil {
		fromRec = *rec
	}
	s := provision.DefaultSpec()
	s.AdvertisedHost = get("advertised-host", fromRec.AdvertisedHost)
	if s.AdvertisedHost == "" {
		s.AdvertisedHost = sshHost
	}
	s.KafkaVersion = get("kafka-version", fromRec.KafkaVersion)
	heap, err := provision.ParseHeap(get("heap", fromRec.Heap))
	if err != nil {
		return s, usagef("%v", err)
	}
	s.HeapMB = heap
	swap, err := provision.ParseSize(get("swap", fromRec.Swap))
	if err != nil {
		return s, usagef("--swap: %v", err)
	}
	s.SwapBytes = swap
	s.DataDir = get("data-dir", fromRec.DataDir)
	if hasFlag(c, "apt-lock-timeout") {
		s.APTLockTimeout = c.Duration("apt-lock-timeout")
	}
	s.Source = provision.Source{URL: get("kafka-url", fromRec.KafkaURL), SHA512: strings.ToLower(get("kafka-sha512", fromRec.KafkaSHA512)),
		LocalTarball: c.String("kafka-tarball")}
	if rec != nil && c.IsSet("kafka-version") && s.KafkaVersion != fromRec.KafkaVersion {
		// The recorded digest belongs to the recorded version, and a recorded
		// mirror URL names it: follow the mirror to the new version.
		if !c.IsSet("kafka-sha512") {
			s.Source.SHA512 = ""
		}
		if !c.IsSet("kafka-url") && fromRec.KafkaVersion != "" {
			s.Source.URL = strings.ReplaceAll(s.Source.URL, fromRec.KafkaVersion, s.KafkaVersion)
		}
	}
	auth := get("auth", fromRec.Auth)
	switch auth {
	case "none", "":
	case authSCRAM:
		s.Security.SCRAM = true
	default:
		return s, usagef("--auth %q: use none or scram (SASL/SCRAM-SHA-512)", auth)
	}
	s.Security.TLS = c.Bool("tls")
	if rec != nil && !c.IsSet("tls") {
		s.Security.TLS = fromRec.TLS
	}
	if s.Source.LocalTarball != "" {
		if c.IsSet("kafka-url") {
			return s, usagef("--kafka-url and --kafka-tarball both given: choose one source")
		}
		s.Source.URL = "" // a recorded mirror gives way to the tarball
		if err := checkLocalTarball(&s); err != nil {
			return s, err
		}
	}
	if err := s.Validate(); err != nil {
		return s, &usageError{err.Error()}
	}
	return s, nil
}

// checkLocalTarball hashes the tarball to upload, and checks it against
// --kafka-sha512 here, before anything is sent.
func checkLocalTarball(s *provision.Spec) error {
	path := s.Source.LocalTarball
	if base := filepath.Base(path); base != s.DistName()+".tgz" {
		return usagef("--kafka-tarball %s: expected a file named %s.tgz for --kafka-version %s", path, s.DistName(), s.KafkaVersion)
	}
	f, err := os.Open(path)
	if err != nil {
		return usagef("--kafka-tarball: %v", err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if s.Source.SHA512 != "" && s.Source.SHA512 != sum {
		return fmt.Errorf("checksum mismatch for %s: --kafka-sha512 says %s but the file has %s; nothing was uploaded", path, s.Source.SHA512, sum)
	}
	if s.Source.SHA512 == "" {
		if sidecar, err := os.ReadFile(path + ".sha512"); err == nil {
			want, err := provision.ParseSHA512File(string(sidecar))
			if err != nil {
				return fmt.Errorf("%s.sha512: %w; nothing was uploaded. Fix or remove that file, or pass --kafka-sha512", path, err)
			}
			if want != sum {
				return fmt.Errorf("checksum mismatch for %s: %s.sha512 says %s but the file has %s; nothing was uploaded", path, path, want, sum)
			}
		}
	}
	s.Source.SHA512 = sum
	return nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, s)
}
