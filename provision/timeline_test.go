package provision

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTimeline: phases from this machine and from the host's head start
// (its clock 5 s ahead) land on one scale; the download shows its
// throughput; the text shows the overlap as bars.
func TestTimeline(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	epoch := func(s float64) string { // on the host's clock, 5 s ahead
		ms := at(s + 5).UnixMilli()
		return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
	}
	f := Facts{HostNow: at(70 + 5), ObservedAt: at(70), HeadStart: HeadStart{State: "done", Record: map[string]string{
		"launched": epoch(4), "started": epoch(5), "apt_update.start": epoch(6), "apt_update.end": epoch(16),
		"java.start": epoch(5), "java.end": epoch(50), "java.package": "openjdk-17-jre-headless", "java.result": "ok",
		"download.start": epoch(5), "download.end": epoch(45), "download.bytes": "120000000", "download.result": "ok",
		"download.url": "https://archive.apache.org/dist/kafka/4.0.0/kafka_2.13-4.0.0.tgz", "finished": epoch(50),
	}}}
	r := &Result{Observed: []Span{{at(60), at(61)}}, FactsAfter: f, VerifyStarted: at(90), VerifyDone: at(92),
		Applied: []StepResult{{ID: "kafka", Title: "install Kafka 4.0.0", Started: at(61), Duration: 9 * time.Second,
			Download: &Transfer{Source: "head-start", Bytes: 120000000, Seconds: 0.9}},
			{ID: "service", Title: "start the broker as a systemd service", Started: at(70), Duration: 20 * time.Second}}}
	tl := &Timeline{Start: t0}
	tl.Add("aws", "API calls: key pair, security group, launch", "", at(0), at(2))
	tl.Add("ssh", "SSH ready: sshd up and the key accepted", "", at(3), at(60))
	tl.AddRun(r)
	tl.Sort()

	dl, ok := tl.Find("head start: download")
	if !ok || dl.Offset != 5 || dl.Seconds != 40 || dl.Detail != "120.0 MB in 40.0s, 3.00 MB/s (24.0 Mbit/s)" || dl.Where != "host" ||
		dl.Name != "head start: download kafka_2.13-4.0.0.tgz" {
		t.Errorf("download phase %+v", dl)
	}
	ssh, _ := tl.Find("SSH ready")
	if dl.Offset >= ssh.End() {
		t.Error("the head start's download does not overlap the wait for SSH")
	}
	if j, ok := tl.Find("head start: install openjdk-17-jre-headless"); !ok || j.Offset != 16 || j.Seconds != 34 {
		t.Errorf("java phase %+v", j)
	}
	if p, ok := tl.Find("first produce"); !ok || p.End() != 92 || tl.Total != 92 {
		t.Errorf("first produce %+v, total %v", p, tl.Total)
	}
	if k, _ := tl.Find("step kafka"); k.Detail != "the head start's download, sha512 verified" {
		t.Errorf("kafka phase %+v", k)
	}
	text := strings.Join(tl.Lines(), "\n")
	t.Logf("\n%s", text)
	for _, want := range []string{
		"   5.0s   40.0s  |  #################                     |  host   head start: download kafka_2.13-4.0.0.tgz",
		"broker start: start the broker as a systemd service",
		"  92.0s total",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	// A head start cut off by a reboot: its phases end where its record does.
	f.HeadStart = HeadStart{State: "interrupted", Record: map[string]string{"launched": epoch(4), "started": epoch(5),
		"apt_update.start": epoch(6), "apt_update.end": epoch(16), "java.package": "openjdk-17-jre-headless", "download.start": epoch(5)}}
	cut := &Timeline{Start: t0}
	cut.AddHeadStart(f)
	if p, ok := cut.Find("head start: install"); !ok || p.End() != 16 {
		t.Errorf("cut-off install %+v", p)
	}
}
