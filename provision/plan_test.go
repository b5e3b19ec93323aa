package provision

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision/security"
	"github.com/kafkaup/kafkaup/scripts"
)

func testSpec() Spec {
	s := DefaultSpec()
	s.AdvertisedHost = "broker.example.com"
	return s
}

// freshHost is an Ubuntu host that has never seen kafkaup.
func freshHost() Facts {
	return Facts{LoginUser: "ubuntu", LoginHome: "/home/ubuntu", OSID: "ubuntu", OSVersion: "24.04", HasAPT: true, Systemd: true,
		HasCurl: true, SwapFS: "ext2/ext3", FreeSwapDir: 20 << 30, FreeInstallDir: 20 << 30, FileSHA256: map[string]string{}}
}

// converged returns the facts of a host that already matches s.
func converged(s Spec) Facts {
	f := freshHost()
	f.JavaMajor = 17
	f.KafkaCurrent, f.KafkaCurrentSHA512 = s.KafkaVersion, strings.Repeat("a", 128)
	f.KafkaUser, f.DirsOK = true, true
	f.SwapActive, f.SwapFileSize, f.SwapFstab = true, s.SwapBytes, 1
	f.Formatted, f.ClusterID, f.NodeID = true, "abc", 1
	d, err := Render(s, f.Systemd)
	if err != nil {
		panic(err)
	}
	for _, m := range d.Files {
		f.FileSHA256[m.Path] = m.SHA256()
	}
	f.ServiceEnabled, f.ServiceActive, f.BrokerPID = true, true, 4242
	return f
}

func ids(steps []Step) []string {
	out := []string{}
	for _, s := range steps {
		out = append(out, s.ID)
	}
	return out
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name   string
		spec   func(*Spec)
		facts  func(*Facts)
		fresh  bool
		want   []string
		action string // expected service action, if a service step is planned
	}{
		{name: "fresh host gets everything", fresh: true, want: []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"}, action: "start"},
		{name: "converged host: empty plan", want: []string{}},
		{name: "new heap restarts, never formats", spec: func(s *Spec) { s.HeapMB = 512 }, want: []string{"config", "service"}, action: "restart"},
		{name: "new advertised host restarts", spec: func(s *Spec) { s.AdvertisedHost = "10.1.2.3" }, want: []string{"config", "service"}, action: "restart"},
		{name: "version upgrade installs and restarts, keeps data", spec: func(s *Spec) { s.KafkaVersion = "4.0.1" }, want: []string{"kafka", "service"}, action: "restart"},
		{name: "broker stopped: start only", facts: func(f *Facts) { f.ServiceActive, f.BrokerPID = false, 0 }, want: []string{"service"}, action: "start"},
		{name: "interrupted run left a restart pending", facts: func(f *Facts) { f.RestartPending = true }, want: []string{"service"}, action: "restart"},
		{name: "service not enabled", facts: func(f *Facts) { f.ServiceEnabled = false }, want: []string{"service"}, action: "start"},
		{name: "swap inactive", facts: func(f *Facts) { f.SwapActive = false }, want: []string{"swap"}},
		{name: "duplicate fstab entries repaired", facts: func(f *Facts) { f.SwapFstab = 2 }, want: []string{"swap"}},
		{name: "swap resized", spec: func(s *Spec) { s.SwapBytes = 1 << 30 }, want: []string{"swap"}},
		{name: "swap 0 leaves swap alone", spec: func(s *Spec) { s.SwapBytes = 0 }, facts: func(f *Facts) { f.SwapActive = false }, want: []string{}},
		{name: "java 11 is upgraded", facts: func(f *Facts) { f.JavaMajor = 11 }, want: []string{"wait-apt", "packages"}},
		{name: "half set up packages are finished", facts: func(f *Facts) { f.DpkgPending = true }, want: []string{"wait-apt", "packages"}},
		{name: "unverified install is replaced", facts: func(f *Facts) { f.KafkaCurrentSHA512 = "" }, want: []string{"kafka", "service"}, action: "restart"},
		{name: "no curl: download waits for it", fresh: true, facts: func(f *Facts) { f.HasCurl = false }, want: []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"}, action: "start"},
		{name: "no systemd: no unit file", fresh: true, facts: func(f *Facts) { f.Systemd = false }, want: []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"}, action: "start"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSpec()
			f := converged(s)
			if c.fresh {
				f = freshHost()
			}
			if c.spec != nil {
				c.spec(&s)
			}
			if c.facts != nil {
				c.facts(&f)
			}
			steps, err := Plan(s, f, "cluster-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(steps); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("plan = %v, want %v", got, c.want)
			}
			for _, st := range steps {
				if st.ID == "format" && f.Formatted {
					t.Error("planned a format over a formatted data dir")
				}
				if svc, ok := st.Script.(scripts.Service); ok && svc.Action != c.action {
					t.Errorf("service action %q, want %q", svc.Action, c.action)
				}
			}
		})
	}
}

func TestPlanGroupsDownloadWithJavaInstall(t *testing.T) {
	steps, err := Plan(testSpec(), freshHost(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if steps[0].ID != "wait-apt" || steps[0].Group != "" {
		t.Errorf("the wait for apt must run first and alone: %s in group %q", steps[0].ID, steps[0].Group)
	}
	if steps[1].Group != "download" || steps[2].Group != "download" {
		t.Errorf("packages and kafka should run together, groups %q %q", steps[1].Group, steps[2].Group)
	}
	f := freshHost()
	f.HasCurl = false
	steps, _ = Plan(testSpec(), f, "c")
	if steps[2].Group != "" {
		t.Error("without curl the download must wait for the package install")
	}
}

// TestPlanPassesTheAPTLockTimeout: --apt-lock-timeout reaches both scripts
// that wait for the dpkg lock, in whole seconds.
func TestPlanPassesTheAPTLockTimeout(t *testing.T) {
	s := testSpec()
	s.APTLockTimeout = 1500 * time.Millisecond
	steps, err := Plan(s, freshHost(), "c")
	if err != nil {
		t.Fatal(err)
	}
	wait := steps[0].Script.(scripts.WaitAPT)
	install := steps[1].Script.(scripts.InstallPackages)
	if wait.APTLockTimeout != 2 || install.APTLockTimeout != 2 {
		t.Errorf("lock timeouts %d and %d, want 2 (1.5s rounded up)", wait.APTLockTimeout, install.APTLockTimeout)
	}
	if DefaultSpec().APTLockSeconds() != 300 {
		t.Errorf("default apt lock timeout %ds, want 300", DefaultSpec().APTLockSeconds())
	}
	for _, d := range []time.Duration{-time.Second, 61 * time.Minute} {
		s.APTLockTimeout = d
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--apt-lock-timeout") {
			t.Errorf("--apt-lock-timeout %s: %v", d, err)
		}
	}
	s.APTLockTimeout = 0 // no wait at all is allowed
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestPlanConfigOnlyWritesChangedFiles(t *testing.T) {
	s := testSpec()
	f := converged(s)
	s.HeapMB = 512
	steps, _ := Plan(s, f, "c")
	in := steps[0].Script.(scripts.InstallFiles)
	// The heap sizes the cleaner buffer in server.properties too; the unit stays.
	if !reflect.DeepEqual(in.Dest, []string{s.ConfigFile(), s.EnvFile()}) {
		t.Errorf("heap change writes %v, want server.properties and the env file", in.Dest)
	}
	if len(steps[0].Uploads) != 2 || !strings.Contains(string(steps[0].Uploads[1].Content), "-Xmx512m -Xms512m") {
		t.Errorf("env upload lacks the new heap")
	}
}

func TestPlanUploadsLocalTarball(t *testing.T) {
	s := testSpec()
	s.Source = Source{LocalTarball: "/tmp/kafka_2.13-4.0.0.tgz", SHA512: strings.Repeat("b", 128)}
	steps, _ := Plan(s, freshHost(), "c")
	var kafka Step
	for _, st := range steps {
		if st.ID == "kafka" {
			kafka = st
		}
	}
	fetch := kafka.Script.(scripts.FetchKafka)
	if len(kafka.Uploads) != 1 || kafka.Uploads[0].RemotePath != fetch.LocalTarball || len(fetch.URLs) != 0 {
		t.Errorf("local tarball step: uploads %+v, fetch %+v", kafka.Uploads, fetch)
	}
	if !strings.HasPrefix(fetch.LocalTarball, "/home/ubuntu/") {
		t.Errorf("tarball staged at %s, want under the login user's home", fetch.LocalTarball)
	}
}

func stepByID(steps []Step, id string) Step {
	for _, st := range steps {
		if st.ID == id {
			return st
		}
	}
	return Step{}
}

// TestPlanChecksumSource: the host fetches the release's checksum only for
// a download with no digest given; a given or uploaded tarball's digest goes
// straight to fetch-kafka.sh.
func TestPlanChecksumSource(t *testing.T) {
	given := strings.Repeat("c", 128)
	cases := []struct {
		name    string
		source  Source
		resolve bool
		digest  string
	}{
		{"Apache, no digest", Source{}, true, ""},
		{"mirror, no digest", Source{URL: "https://mirror.example/kafka_2.13-4.0.0.tgz"}, true, ""},
		{"--kafka-sha512", Source{SHA512: given}, false, given},
		{"mirror and --kafka-sha512", Source{URL: "https://mirror.example/kafka_2.13-4.0.0.tgz", SHA512: given}, false, given},
		{"uploaded tarball", Source{LocalTarball: "/tmp/kafka_2.13-4.0.0.tgz", SHA512: given}, false, given},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testSpec()
			s.Source = c.source
			steps, err := Plan(s, freshHost(), "c")
			if err != nil {
				t.Fatal(err)
			}
			kafka := stepByID(steps, "kafka")
			fetch := kafka.Script.(scripts.FetchKafka)
			if (kafka.Resolve != nil) != c.resolve || fetch.ExpectedSHA512 != c.digest {
				t.Errorf("Resolve set %v, digest %q; want %v, %q", kafka.Resolve != nil, fetch.ExpectedSHA512, c.resolve, c.digest)
			}
			for _, st := range steps {
				if st.ID != "kafka" && st.Resolve != nil {
					t.Errorf("step %s has a Resolve", st.ID)
				}
			}
		})
	}
}

func TestPlanRefusesBeforeChanging(t *testing.T) {
	cases := []struct {
		name  string
		spec  func(*Spec)
		facts func(*Facts)
		want  string
	}{
		{"non-apt OS", nil, func(f *Facts) { f.HasAPT, f.OSID = false, "fedora" }, "without apt"},
		{"swap on overlayfs", nil, func(f *Facts) { f.SwapFS = "overlayfs" }, "--swap 0"},
		{"disk too small for swap", nil, func(f *Facts) { f.FreeSwapDir = 1 << 30 }, "does not fit"},
		{"disk too small for kafka", nil, func(f *Facts) { f.FreeInstallDir = 100 << 20 }, "free for /opt/kafka"},
		{"other node id", nil, func(f *Facts) { f.Formatted, f.NodeID = true, 7 }, "node.id 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, f := testSpec(), freshHost()
			if c.spec != nil {
				c.spec(&s)
			}
			c.facts(&f)
			_, err := Plan(s, f, "c")
			var pe *PlanError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "Nothing on the host was changed") {
				t.Errorf("err = %v, want a PlanError mentioning %q", err, c.want)
			}
		})
	}
}

func TestSwapCheckIgnoredWhenSwapAlreadyRight(t *testing.T) {
	s := testSpec()
	f := converged(s)
	f.SwapFS, f.FreeSwapDir = "overlayfs", 1
	if _, err := Plan(s, f, "c"); err != nil {
		t.Errorf("converged swap should not be rechecked: %v", err)
	}
}

func TestParseFacts(t *testing.T) {
	out := []byte("login_user=ubuntu\nlogin_home=/home/ubuntu\nos_id=ubuntu\nos_version=24.04\napt=1\nsystemd=1\njava_major=17\n" +
		"kafka_current=4.0.0\nswap_file_size=2147483648\nswap_active=1\nswap_fstab=1\nmeta=1\ncluster_id=AbC\nnode_id=1\ndirectory_id=DiR\n" +
		"file:/etc/kafka/server.properties=deadbeef\nservice_active=1\nbroker_pid=123\nnoise line without equals\n")
	f, err := ParseFacts(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.OSID != "ubuntu" || !f.HasAPT || f.JavaMajor != 17 || f.SwapFileSize != 2<<30 || f.ClusterID != "AbC" || f.DirectoryID != "DiR" || f.BrokerPID != 123 ||
		f.FileSHA256["/etc/kafka/server.properties"] != "deadbeef" || f.LoginHome != "/home/ubuntu" {
		t.Errorf("parsed %+v", f)
	}
	if _, err := ParseFacts([]byte("os_id=x\n")); err == nil {
		t.Error("a truncated report was accepted")
	}
	if _, err := ParseFacts([]byte("os_id=x\napt=1\nsystemd=1\njava_major=seventeen\nmeta=0\nservice_active=0\n")); err == nil {
		t.Error("a non-numeric value was accepted")
	}
}

func TestValidate(t *testing.T) {
	bad := map[string]func(*Spec){
		"advertised 0.0.0.0": func(s *Spec) { s.AdvertisedHost = "0.0.0.0" },
		"advertised junk":    func(s *Spec) { s.AdvertisedHost = "bad host" },
		"kafka 3":            func(s *Spec) { s.KafkaVersion = "3.9.0" },
		"version junk":       func(s *Spec) { s.KafkaVersion = "latest" },
		"heap tiny":          func(s *Spec) { s.HeapMB = 16 },
		"swap odd":           func(s *Spec) { s.SwapBytes = 1000 },
		"url and tarball":    func(s *Spec) { s.Source = Source{URL: "https://m/k.tgz", LocalTarball: "/k.tgz"} },
		"ftp url":            func(s *Spec) { s.Source.URL = "ftp://m/kafka_2.13-4.0.0.tgz" },
		"bad sha":            func(s *Spec) { s.Source.SHA512 = "abc" },
		"data in tmp":        func(s *Spec) { s.DataDir = "/tmp/kafka" },
		"relative data dir":  func(s *Spec) { s.DataDir = "data" },
		"data dir with $":    func(s *Spec) { s.DataDir = "/var/$(x)" },
	}
	for name, mutate := range bad {
		s := testSpec()
		mutate(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := testSpec().Validate(); err != nil {
		t.Errorf("default spec rejected: %v", err)
	}
}

func TestParseSizes(t *testing.T) {
	for in, want := range map[string]int64{"2G": 2 << 30, "512M": 512 << 20, "1.5g": 3 << 29, "0": 0, "2GiB": 2 << 30, "2gb": 2 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2", "-1G", "lots", "2X"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if mb, err := ParseHeap("400m"); err != nil || mb != 400 {
		t.Errorf("ParseHeap(400m) = %d, %v", mb, err)
	}
	if mb, err := ParseHeap("1g"); err != nil || mb != 1024 {
		t.Errorf("ParseHeap(1g) = %d, %v", mb, err)
	}
}

func TestClusterIDFormat(t *testing.T) {
	for i := 0; i < 200; i++ {
		id := NewClusterID()
		if len(id) != 22 || strings.HasPrefix(id, "-") || strings.ContainsAny(id, "+/=") {
			t.Fatalf("bad cluster id %q", id)
		}
	}
}

func TestDownloadSources(t *testing.T) {
	s := testSpec()
	want := []string{"https://dlcdn.apache.org/kafka/4.0.0/kafka_2.13-4.0.0.tgz", "https://archive.apache.org/dist/kafka/4.0.0/kafka_2.13-4.0.0.tgz"}
	if got := s.DownloadURLs(); !reflect.DeepEqual(got, want) {
		t.Errorf("default sources %v", got)
	}
	if got := s.SHA512URLs(); got[0] != "https://archive.apache.org/dist/kafka/4.0.0/kafka_2.13-4.0.0.tgz.sha512" {
		t.Errorf("checksum from %v; the archive keeps every release and comes first", got)
	}
	s.Source.URL = "http://mirror.internal/kafka/4.0.0/kafka_2.13-4.0.0.tgz"
	if got := s.DownloadURLs(); !reflect.DeepEqual(got, []string{s.Source.URL}) {
		t.Errorf("mirror sources %v", got)
	}
	if got := s.SHA512URLs(); !reflect.DeepEqual(got, []string{s.Source.URL + ".sha512"}) {
		t.Errorf("mirror checksum %v", got)
	}
}

// TestPlanSecured: turning on TLS and SCRAM on a converged PLAINTEXT broker
// writes the new configuration and the keystore (0640 root:kafka) and
// restarts; a new certificate alone (a new address) does the same; the
// formatted data is never touched.
func TestPlanSecured(t *testing.T) {
	plain := testSpec()
	secured := testSpec()
	secured.Security = Security{Mode: security.Mode{TLS: true, SCRAM: true}, InternalPort: 9094, KeystorePEM: []byte("key and cert")}
	steps, err := Plan(secured, converged(plain), "new-id")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(steps); !reflect.DeepEqual(got, []string{"config", "service"}) {
		t.Fatalf("steps %v", got)
	}
	in := steps[0].Script.(scripts.InstallFiles)
	if !reflect.DeepEqual(in.Dest, []string{secured.ConfigFile(), secured.KeystoreFile()}) || in.Mode[1] != "0640" || in.Owner[1] != "root:kafka" {
		t.Errorf("config step installs %v modes %v owners %v", in.Dest, in.Mode, in.Owner)
	}
	if steps[1].Script.(scripts.Service).Action != "restart" {
		t.Error("no restart")
	}

	renewed := secured
	renewed.Security.KeystorePEM = []byte("a new certificate")
	steps, err = Plan(renewed, converged(secured), "new-id")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(steps); !reflect.DeepEqual(got, []string{"config", "service"}) {
		t.Fatalf("a new certificate: steps %v", got)
	}
	if steps, _ := Plan(secured, converged(secured), "new-id"); len(steps) != 0 {
		t.Errorf("a converged secured broker plans %v", ids(steps))
	}

	noKey := secured
	noKey.Security.KeystorePEM = nil
	if _, err := Plan(noKey, converged(plain), "id"); err == nil || !strings.Contains(err.Error(), "keystore") {
		t.Errorf("TLS without a keystore: %v", err)
	}
	if secured.LocalBootstrap() != "127.0.0.1:9094" || plain.LocalBootstrap() != "localhost:9092" {
		t.Errorf("local bootstrap %s / %s", secured.LocalBootstrap(), plain.LocalBootstrap())
	}
	clash := secured
	clash.Security.InternalPort = 9093
	if err := clash.Validate(); err == nil || !strings.Contains(err.Error(), "controller port and internal port") {
		t.Errorf("internal port on the controller's: %v", err)
	}
}

// TestPlanDowngradeRemovesTheKeystore: turning TLS off removes the broker's
// key from the host along with the new configuration, and restarts.
func TestPlanDowngradeRemovesTheKeystore(t *testing.T) {
	secured := testSpec()
	secured.Security = Security{Mode: security.Mode{TLS: true, SCRAM: true}, InternalPort: 9094, KeystorePEM: []byte("key and cert")}
	plain := testSpec()
	steps, err := Plan(plain, converged(secured), "id")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(steps); !reflect.DeepEqual(got, []string{"config", "service"}) {
		t.Fatalf("steps %v", got)
	}
	in := steps[0].Script.(scripts.InstallFiles)
	if !reflect.DeepEqual(in.Remove, []string{plain.KeystoreFile()}) || !strings.Contains(steps[0].Title, "remove /etc/kafka/tls/broker.pem") {
		t.Errorf("config step %q removes %v", steps[0].Title, in.Remove)
	}
	if steps, _ := Plan(plain, converged(plain), "id"); len(steps) != 0 {
		t.Errorf("a PLAINTEXT broker without a keystore plans %v", ids(steps))
	}
}
