package provision

import (
	"context"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// headStarted is a fresh host where the head start is in the given state,
// with what it would have left behind.
func headStarted(state string, record map[string]string) Facts {
	f := freshHost()
	f.HostNow = time.Unix(1700000100, 0)
	f.HeadStart = HeadStart{State: state, Record: map[string]string{"launched": "1700000000.000", "started": "1700000001.250"}}
	for k, v := range record {
		f.HeadStart.Record[k] = v
	}
	if record["java.result"] == "ok" {
		f.JavaMajor = 17
	}
	if record["download.result"] == "ok" {
		f.HeadStart.Tarball = HeadStartDir + "/kafka/kafka_2.13-4.0.0.tgz"
	}
	return f
}

// TestPlanHeadStart: while the head start runs, the plan waits for it
// (and does what needs neither Java nor Kafka) and plans again; once it is
// done, what it did is not done twice; what it failed at or did not reach
// (a reboot cut it off, the wait stopped it) the plan does itself, and
// says so in the step's reason.
func TestPlanHeadStart(t *testing.T) {
	cases := []struct {
		name   string
		facts  Facts
		want   []string
		reason map[string]string // step -> text its reason must contain
		title  map[string]string
		staged bool // the kafka step verifies and uses the staged tarball
	}{
		{name: "none: the old plan", facts: headStarted("none", nil),
			want:   []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"},
			reason: map[string]string{"packages": "no Java 17+ on the host", "kafka": "not installed"}},
		{name: "running: wait, beside dirs and swap, then plan again", facts: headStarted("running", map[string]string{"java.start": "1700000002"}),
			want:   []string{"head-start", "dirs", "swap"},
			reason: map[string]string{"head-start": "it began 1m39s ago and is still running"}},
		{name: "done: no apt work, the staged tarball", facts: headStarted("done", map[string]string{"java.result": "ok", "download.result": "ok", "result": "ok"}),
			want: []string{"kafka", "dirs", "swap", "config", "format", "service"}, staged: true,
			reason: map[string]string{"kafka": "not installed; the head start downloaded it at boot"},
			title:  map[string]string{"kafka": "from the head start's download (sha512 verified first)"}},
		{name: "Java failed: kafkaup installs it, and says so", facts: headStarted("failed", map[string]string{"java.result": "failed", "java.error": "exit status 100 (see /var/lib/kafkaup-head-start/log)", "download.result": "ok", "result": "failed"}),
			want: []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"}, staged: true,
			reason: map[string]string{"packages": "no Java 17+ on the host; the head start's Java install failed: exit status 100 (see /var/lib/kafkaup-head-start/log), so kafkaup installs it"}},
		{name: "download failed: kafkaup downloads it, and says so", facts: headStarted("failed", map[string]string{"java.result": "ok", "download.result": "failed", "download.error": "https://m/k.tgz: HTTP 503, on all 5 attempts", "result": "failed"}),
			want:   []string{"kafka", "dirs", "swap", "config", "format", "service"},
			reason: map[string]string{"kafka": "not installed; the head start's download failed: https://m/k.tgz: HTTP 503, on all 5 attempts, so kafkaup downloads it"}},
		{name: "cut off by a reboot mid-apt: dpkg finished, Java installed", facts: func() Facts {
			f := headStarted("interrupted", map[string]string{"java.start": "1700000002", "apt_update.end": "1700000010"})
			f.DpkgPending = true
			return f
		}(), want: []string{"wait-apt", "packages", "kafka", "dirs", "swap", "config", "format", "service"},
			reason: map[string]string{"packages": "the head start's Java install was cut off before it finished (the host rebooted?), so kafkaup installs it",
				"kafka": "the head start's download was cut off"}},
		{name: "stopped by the wait", facts: headStarted("interrupted", map[string]string{"stopped_by_kafkaup": "1700000090", "stop_reason": "no progress for 180s", "java.result": "ok"}),
			want:   []string{"kafka", "dirs", "swap", "config", "format", "service"},
			reason: map[string]string{"kafka": "the head start's download was stopped (no progress for 180s), so kafkaup downloads it"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			steps, err := Plan(testSpec(), c.facts, "cluster-1")
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(steps); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("plan = %v, want %v", got, c.want)
			}
			for id, want := range c.reason {
				if st := stepByID(steps, id); !strings.Contains(st.Reason, want) {
					t.Errorf("%s's reason %q lacks %q", id, st.Reason, want)
				}
			}
			for id, want := range c.title {
				if st := stepByID(steps, id); !strings.Contains(st.Title, want) {
					t.Errorf("%s's title %q lacks %q", id, st.Title, want)
				}
			}
			if st := stepByID(steps, "kafka"); st.ID != "" {
				fk := st.Script.(scripts.FetchKafka)
				if got := strings.Contains(st.Title, "from the head start's download"); got != c.staged {
					t.Errorf("kafka step uses the staged tarball: %v, want %v", got, c.staged)
				}
				if ran := c.facts.HeadStart.Ran(); (fk.HeadStartTarball == HeadStartTarball(testSpec())) != ran {
					t.Errorf("kafka step's staging path %q (head start ran: %v)", fk.HeadStartTarball, ran)
				}
				if st.Resolve == nil {
					t.Error("the kafka step must get the release's sha512 to check the staged tarball against")
				}
			}
			for _, st := range steps {
				if st.Replan != (st.ID == "head-start") {
					t.Errorf("step %s: Replan %v", st.ID, st.Replan)
				}
				if c.facts.HeadStart.State == "running" && st.Group != "head-start" {
					t.Errorf("step %s runs after the wait, not beside it (group %q)", st.ID, st.Group)
				}
			}
		})
	}
}

func TestPlanHeadStartKeepsLocalTarballAndGivenDigest(t *testing.T) {
	s := testSpec()
	s.Source.SHA512 = strings.Repeat("b", 128)
	f := headStarted("done", map[string]string{"java.result": "ok", "download.result": "ok", "result": "ok"})
	steps, err := Plan(s, f, "c")
	if err != nil {
		t.Fatal(err)
	}
	st := stepByID(steps, "kafka")
	if fk := st.Script.(scripts.FetchKafka); fk.ExpectedSHA512 != s.Source.SHA512 || st.Resolve != nil {
		t.Errorf("given digest: %q, resolve %v", fk.ExpectedSHA512, st.Resolve != nil)
	}
	s.Source.SHA512 = ""
	s.Source.LocalTarball = "/tmp/kafka_2.13-4.0.0.tgz"
	steps, _ = Plan(s, f, "c")
	st = stepByID(steps, "kafka")
	if fk := st.Script.(scripts.FetchKafka); fk.HeadStartTarball != "" || fk.LocalTarball == "" {
		t.Errorf("an uploaded tarball wins over the head start's: %+v", fk)
	}
}

func TestParseFactsHeadStart(t *testing.T) {
	out := "os_id=ubuntu\napt=1\nsystemd=1\njava_major=17\nmeta=0\nservice_active=0\nnow=1700000100.500\n" +
		"head_start=done\nhs.launched=1700000000.000\nhs.boot_id=abc\nhs.pid=812\nhs.started=1700000001.250\n" +
		"hs.download.url=https://a/k.tgz\nhs.download.url=https://b/k.tgz\nhs.download.bytes=120000000\nhs.result=ok\nhs.finished=1700000060.125\n" +
		"head_start_tarball=/var/lib/kafkaup-head-start/kafka/kafka_2.13-4.0.0.tgz\n"
	f, err := ParseFacts([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	hs := f.HeadStart
	if hs.State != "done" || hs.Tarball != "/var/lib/kafkaup-head-start/kafka/kafka_2.13-4.0.0.tgz" || hs.Record["download.url"] != "https://b/k.tgz" || hs.Record["download.bytes"] != "120000000" {
		t.Errorf("head start %+v", hs)
	}
	if got, ok := hs.Time("finished"); !ok || !got.Equal(time.Unix(1700000060, 125e6)) {
		t.Errorf("finished = %v, %v", got, ok)
	}
	if !f.HostNow.Equal(time.Unix(1700000100, 500e6)) {
		t.Errorf("host now = %v", f.HostNow)
	}
	f.ObservedAt = time.Unix(1700000098, 0)
	if got := f.HostClockOffset(); got != 2500*time.Millisecond {
		t.Errorf("clock offset %v", got)
	}
	old, err := ParseFacts([]byte("os_id=ubuntu\napt=1\nsystemd=1\njava_major=17\nmeta=0\nservice_active=0\n"))
	if err != nil || old.HeadStart.State != "none" || old.HeadStart.Ran() {
		t.Errorf("a host without a head start: %+v, %v", old.HeadStart, err)
	}
}

// scriptedHost answers observe with the next of its reports (the last one
// repeats), fetch-checksum with a sha512 file and the kafka step with its
// download report, and records every script it was given.
type scriptedHost struct {
	mu       sync.Mutex
	observes []string
	ran      []string
	scripts  map[string]string
}

func (h *scriptedHost) RunScript(_ context.Context, name string, script []byte) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ran = append(h.ran, name)
	if h.scripts == nil {
		h.scripts = map[string]string{}
	}
	h.scripts[name] = string(script)
	switch name {
	case "observe":
		out := h.observes[0]
		if len(h.observes) > 1 {
			h.observes = h.observes[1:]
		}
		return []byte(out), nil
	case "fetch-checksum":
		return []byte("kafka_2.13-4.0.0.tgz: " + strings.Repeat("AB", 64) + "\n"), nil
	case "kafka":
		return []byte("download_source=head-start\ndownload_bytes=120000000\ndownload_seconds=0.900\n"), nil
	}
	return nil, nil
}

func (h *scriptedHost) Upload(context.Context, io.Reader, string, uint32) error { return nil }

const freshReport = "login_user=ubuntu\nlogin_home=/home/ubuntu\nos_id=ubuntu\nos_version=24.04\napt=1\nsystemd=1\ncurl=1\n" +
	"swap_fs=ext2/ext3\nfree_swap_dir=20000000000\nfree_install_dir=20000000000\nservice_active=0\n"

// TestProvisionWaitsForTheHeadStartThenPlansAgain: the first plan waits
// for the running head start (beside dirs and swap); the second, made
// from what it left, installs no Java and installs Kafka from its
// download, checked against the release's sha512.
func TestProvisionWaitsForTheHeadStartThenPlansAgain(t *testing.T) {
	running := freshReport + "java_major=0\nmeta=0\nkafka_user=0\ndirs_ok=0\nswap_active=0\nnow=1700000030.000\n" +
		"head_start=running\nhs.launched=1700000000.000\nhs.started=1700000001.000\nhs.java.start=1700000001.100\nhs.download.start=1700000001.100\n"
	done := freshReport + "java_major=17\nmeta=0\nkafka_user=1\ndirs_ok=1\nswap_active=1\nswap_file_size=2147483648\nswap_fstab=1\nnow=1700000090.000\n" +
		"head_start=done\nhs.launched=1700000000.000\nhs.started=1700000001.000\nhs.java.package=openjdk-17-jre-headless\nhs.java.result=ok\n" +
		"hs.apt_update.start=1700000002.000\nhs.apt_update.end=1700000012.000\nhs.java.start=1700000001.100\nhs.java.end=1700000050.000\n" +
		"hs.download.start=1700000001.100\nhs.download.end=1700000041.100\nhs.download.bytes=120000000\nhs.download.result=ok\nhs.download.url=https://m/kafka_2.13-4.0.0.tgz\n" +
		"hs.result=ok\nhs.finished=1700000050.100\nhead_start_tarball=" + HeadStartDir + "/kafka/kafka_2.13-4.0.0.tgz\n"
	after := strings.Replace(done, "meta=0", "meta=1\ncluster_id=c1\nnode_id=1\nkafka_current=4.0.0", 1)
	after = strings.Replace(after, "service_active=0", "service_active=1\nservice_enabled=1\nbroker_pid=99", 1)

	h := &scriptedHost{observes: []string{running, running}}
	dry, err := Provision(context.Background(), h, testSpec(), "host", Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := plannedIDs(dry.Plan); got != "head-start dirs swap" {
		t.Errorf("dry run plans %q", got)
	}

	h = &scriptedHost{observes: []string{running, done, after}}
	res, err := Provision(context.Background(), h, testSpec(), "host", Options{SkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := plannedIDs(res.Plan); got != "head-start dirs swap kafka config format service" {
		t.Errorf("plans %q", got)
	}
	ran := strings.Join(h.ran, " ")
	wait := strings.Index(ran, "head-start")
	if !strings.HasPrefix(ran, "observe ") || wait < 0 || strings.Count(ran, "observe") != 3 ||
		!strings.HasSuffix(ran, "observe fetch-checksum kafka config format service observe") {
		t.Errorf("ran %s", ran)
	}
	if strings.Contains(ran, "packages") || strings.Contains(ran, "wait-apt") {
		t.Errorf("installed Java again after the head start did: %s", ran)
	}
	kafka := h.scripts["kafka"]
	for _, want := range []string{"readonly HEAD_START_TARBALL='" + HeadStartDir + "/kafka/kafka_2.13-4.0.0.tgz'", "readonly EXPECTED_SHA512='" + strings.Repeat("ab", 64) + "'"} {
		if !strings.Contains(kafka, want) {
			t.Errorf("kafka script lacks %s", want)
		}
	}
	if d := res.Applied[len(res.Applied)-4].Download; d == nil || d.Source != "head-start" || d.Bytes != 120000000 {
		t.Errorf("kafka step's download: %+v", d)
	}
	if len(res.Observed) != 3 || res.FactsAfter.HeadStart.State != "done" {
		t.Errorf("%d observations, head start after: %s", len(res.Observed), res.FactsAfter.HeadStart.State)
	}
}

func plannedIDs(p []PlannedStep) string {
	var ids []string
	for _, s := range p {
		ids = append(ids, s.ID)
	}
	return strings.Join(ids, " ")
}
