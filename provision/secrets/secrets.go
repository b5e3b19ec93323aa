// Package secrets keeps what kafkaup needs to reach a broker whose clients
// use TLS and/or SCRAM: the broker's own CA, the broker's keystore (key and
// certificate for its advertised address), the SCRAM login, and the client
// configuration files other tools read. Everything lives in one directory
// per broker under the state directory: the directory is 0700 and every
// file 0600, written atomically.
package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/security"
	"github.com/kafkaup/kafkaup/provision/state"
	"github.com/kafkaup/kafkaup/provision/tlsca"
)

// DefaultUsername is the SCRAM user kafkaup creates.
const DefaultUsername = "kafkaup"

// Files in a broker's secrets directory.
const (
	caFile         = "ca.pem"            // the CA certificate (clients trust it)
	caKeyFile      = "ca-key.pem"        // the CA's private key
	keystoreFile   = "broker.pem"        // the broker's key, certificate and CA
	loginFile      = "scram.json"        // username and password
	librdkafkaFile = "librdkafka.conf"   // kcat -F, librdkafka-based clients
	javaFile       = "client.properties" // Kafka's own tools: --command-config
)

// Want is what the broker's clients should use.
type Want struct {
	Mode     security.Mode
	Hosts    []string // names and addresses the broker certificate must cover
	Username string   // SCRAM user; DefaultUsername when empty
	Now      time.Time
	DryRun   bool // make what is missing in memory only (provision --dry-run)
}

// Set is one broker's secrets, loaded or made by Ensure.
type Set struct {
	Dir string
	// Mode is the broker's security: what of the below its clients use.
	Mode security.Mode

	CAPEM       []byte // with TLS
	KeystorePEM []byte // with TLS

	Username, Password string // with SCRAM
	// NewPassword is true when Ensure made the password just now, so the
	// broker does not have it yet.
	NewPassword bool
	// Reissued is true when Ensure issued a new broker certificate.
	Reissued bool

	dryRun bool
}

// Dir is where the secrets of broker name live.
func Dir(stateDir, name string) string { return state.SecretsDir(stateDir, name) }

// Ensure loads the broker's secrets and makes what is missing: for TLS a CA
// and a broker certificate for w.Hosts (issued again when it does not cover
// them or expires within tlsca.RenewBefore; the CA stays, so clients keep
// trusting it), for SCRAM a username and a random password.
func Ensure(stateDir, name string, w Want) (*Set, error) {
	set := &Set{Dir: Dir(stateDir, name), dryRun: w.DryRun}
	set.Mode = w.Mode
	if !w.Mode.Secured() {
		return set, nil
	}
	if w.Now.IsZero() {
		w.Now = time.Now()
	}
	if !w.DryRun {
		if err := os.MkdirAll(set.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", name, err)
		}
		if err := os.Chmod(set.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", name, err)
		}
	}
	if w.Mode.TLS {
		if err := set.ensureTLS(name, w); err != nil {
			return nil, err
		}
	}
	if w.Mode.SCRAM {
		if err := set.ensureLogin(w.Username); err != nil {
			return nil, err
		}
	}
	return set, nil
}

func (s *Set) ensureTLS(name string, w Want) error {
	caPEM, caErr := s.read(caFile)
	caKeyPEM, keyErr := s.read(caKeyFile)
	var ca *tlsca.CA
	var err error
	switch {
	case caErr == nil && keyErr == nil:
		if ca, err = tlsca.LoadCA(caPEM, caKeyPEM); err != nil {
			return fmt.Errorf("the CA kept in %s cannot be used (%v). Clients trust that CA, so kafkaup does not replace it by itself: "+
				"move %s aside and rerun to make a new CA (clients then need the new %s)", s.Dir, err, s.Dir, caFile)
		}
	case errors.Is(caErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		if ca, err = tlsca.NewCA(name, w.Now); err != nil {
			return err
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return err
		}
		// The key first: a CA certificate without its key is never left behind.
		if err := s.write(caKeyFile, keyPEM); err != nil {
			return err
		}
		if err := s.write(caFile, ca.CertPEM()); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s has only one of %s and %s (%v, %v); restore the other or move the directory aside and rerun",
			s.Dir, caFile, caKeyFile, caErr, keyErr)
	}
	s.CAPEM = ca.CertPEM()

	keystore, err := s.read(keystoreFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err == nil && ca.Covers(keystore, w.Hosts) {
		s.KeystorePEM = keystore
		return nil
	}
	certPEM, keyPEM, err := ca.IssueServer(w.Hosts, w.Now)
	if err != nil {
		return err
	}
	// Unencrypted PKCS#8: Java 17 cannot read the PBES2 form (the file is
	// protected by its mode on both ends instead).
	if keystore, err = tlsca.KeystorePEM(certPEM, keyPEM, s.CAPEM, ""); err != nil {
		return err
	}
	if err := s.write(keystoreFile, keystore); err != nil {
		return err
	}
	s.KeystorePEM, s.Reissued = keystore, true
	return nil
}

type login struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateUsername accepts SCRAM user names kafkaup can put in every client
// configuration format unquoted.
func ValidateUsername(u string) error {
	if !usernameRE.MatchString(u) {
		return fmt.Errorf("SCRAM user %q: use 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit", u)
	}
	return nil
}

func (s *Set) ensureLogin(username string) error {
	if username == "" {
		username = DefaultUsername
	}
	if err := ValidateUsername(username); err != nil {
		return err
	}
	l, found, err := s.readLogin()
	if err != nil {
		return err
	}
	if found && l.Username == username {
		s.Username, s.Password = l.Username, l.Password
		return nil
	}
	password, err := newPassword()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(login{Username: username, Password: password}, "", "  ")
	if err != nil {
		return err
	}
	if err := s.write(loginFile, append(data, '\n')); err != nil {
		return err
	}
	s.Username, s.Password, s.NewPassword = username, password, true
	return nil
}

// newPassword is 32 random bytes, URL-safe base64: nothing any client
// configuration format would need to quote.
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Auth is how kafkaup's own client logs in to the broker.
func (s *Set) Auth() kafkaclient.Auth {
	if s == nil {
		return kafkaclient.Auth{}
	}
	a := kafkaclient.Auth{Mode: s.Mode}
	if s.Mode.TLS {
		a.CAPEM = s.CAPEM
	}
	if s.Mode.SCRAM {
		a.Username, a.Password = s.Username, s.Password
	}
	return a
}

// Check says what to do when what the broker's security needs is missing
// here, before a client tries without it.
func (s *Set) Check(name string) error {
	switch {
	case s.Mode.TLS && len(s.CAPEM) == 0:
		return fmt.Errorf("%s uses TLS but its CA certificate is missing from %s; run kafkaup reprovision %s to make a new CA and broker certificate", name, s.Dir, name)
	case s.Mode.SCRAM && s.Password == "":
		return fmt.Errorf("%s uses SCRAM but its password is missing from %s; run kafkaup reprovision %s to set a new one", name, s.Dir, name)
	}
	return nil
}

// ClientFiles are the files other clients can use, all in the secrets
// directory.
type ClientFiles struct {
	Protocol   string `json:"security_protocol"`
	Mechanism  string `json:"sasl_mechanism,omitempty"`
	Username   string `json:"sasl_username,omitempty"`
	CAFile     string `json:"ssl_ca_location,omitempty"`
	Librdkafka string `json:"librdkafka_config"` // kcat -F FILE
	Java       string `json:"java_properties"`   // kafka-*.sh --command-config FILE
}

// WriteClientFiles writes the client configurations for bootstrap: a
// librdkafka file (kcat -F) and Java client properties (Kafka's tools'
// --command-config). Both hold the password, so they are 0600 like the rest.
// A PLAINTEXT broker needs none: it returns nil.
func (s *Set) WriteClientFiles(bootstrap string) (*ClientFiles, error) {
	if !s.Mode.Secured() {
		return nil, nil
	}
	auth := s.Auth()
	cf := &ClientFiles{Protocol: auth.Protocol(),
		Librdkafka: filepath.Join(s.Dir, librdkafkaFile), Java: filepath.Join(s.Dir, javaFile)}
	rd := []string{"# kafkaup: librdkafka settings (kcat -F " + cf.Librdkafka + ")", "bootstrap.servers=" + bootstrap, "security.protocol=" + cf.Protocol}
	java := []string{"# kafkaup: Kafka client settings (kafka-console-producer.sh --command-config " + cf.Java + ")", "bootstrap.servers=" + bootstrap, "security.protocol=" + cf.Protocol}
	if s.Mode.TLS {
		cf.CAFile = filepath.Join(s.Dir, caFile)
		rd = append(rd, "ssl.ca.location="+cf.CAFile, "ssl.endpoint.identification.algorithm=https")
		java = append(java, "ssl.truststore.type=PEM", "ssl.truststore.location="+cf.CAFile)
	}
	if s.Mode.SCRAM {
		cf.Mechanism, cf.Username = kafkaclient.Mechanism, s.Username
		rd = append(rd, "sasl.mechanisms="+kafkaclient.Mechanism, "sasl.username="+s.Username, "sasl.password="+s.Password)
		java = append(java, "sasl.mechanism="+kafkaclient.Mechanism,
			fmt.Sprintf(`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";`, s.Username, s.Password))
	}
	if err := s.write(librdkafkaFile, []byte(strings.Join(rd, "\n")+"\n")); err != nil {
		return nil, err
	}
	if err := s.write(javaFile, []byte(strings.Join(java, "\n")+"\n")); err != nil {
		return nil, err
	}
	return cf, nil
}

// Load reads a broker's secrets as they are, making nothing (day-2
// commands); Check says whether what mode needs is there. What mode leaves
// off is not used (a broker reprovisioned back to PLAINTEXT keeps its old
// CA on disk, unused).
func Load(stateDir, name string, mode security.Mode) (*Set, error) {
	s := &Set{Dir: Dir(stateDir, name), Mode: mode}
	var err error
	if s.CAPEM, err = s.read(caFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, _, err := s.readLogin()
	if err != nil {
		return nil, err
	}
	s.Username, s.Password = l.Username, l.Password
	return s, nil
}

// readLogin reads the SCRAM login; found is false when there is none.
func (s *Set) readLogin() (l login, found bool, err error) {
	data, err := s.read(loginFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return l, false, nil
	case err != nil:
		return l, false, err
	}
	if err := json.Unmarshal(data, &l); err != nil || l.Username == "" || l.Password == "" {
		return login{}, false, fmt.Errorf("%s is damaged; delete it and rerun kafkaup reprovision (it then sets a new password on the broker)", filepath.Join(s.Dir, loginFile))
	}
	return l, true, nil
}

func (s *Set) read(file string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, file))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(s.Dir, file), err)
	}
	return data, err
}

// write replaces file atomically; the temp file is 0600 from its creation.
func (s *Set) write(file string, data []byte) error {
	if s.dryRun {
		return nil
	}
	path := filepath.Join(s.Dir, file)
	tmp, err := os.CreateTemp(s.Dir, "."+file+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
