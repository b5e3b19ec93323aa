package workflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/cloud"
)

// TestCreateUserData: create launches with the head start in the
// user-data; --user-data is merged with it, --no-head-start leaves the
// user's alone or none; a user-data cloud-init would not run is refused
// before anything is created.
func TestCreateUserData(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	cc := write("cc.yaml", "#cloud-config\nruncmd:\n  - echo mine\n")
	bad := write("bad.txt", "echo no marker\n")
	for _, tc := range []struct {
		name        string
		noHeadStart bool
		file        string
		check       func(t *testing.T, ud []byte)
		input       bool // refused as the user's mistake, nothing created
	}{
		{name: "head start", check: func(t *testing.T, ud []byte) {
			if !bytes.HasPrefix(ud, []byte("#cloud-boothook\n")) || !bytes.Contains(ud, []byte("head-start")) {
				t.Errorf("user-data starts %q", ud[:min(len(ud), 40)])
			}
		}},
		{name: "merged", file: cc, check: func(t *testing.T, ud []byte) {
			if !bytes.HasPrefix(ud, []byte("Content-Type: multipart/mixed")) || !bytes.Contains(ud, []byte("text/cloud-boothook")) ||
				!bytes.Contains(ud, []byte("text/cloud-config")) || !bytes.Contains(ud, []byte("echo mine")) {
				t.Errorf("merged user-data:\n%s", ud[:min(len(ud), 400)])
			}
		}},
		{name: "no head start", noHeadStart: true, check: func(t *testing.T, ud []byte) {
			if len(ud) != 0 {
				t.Errorf("user-data %q", ud)
			}
		}},
		{name: "no head start, the user's own", noHeadStart: true, file: cc, check: func(t *testing.T, ud []byte) {
			if string(ud) != "#cloud-config\nruncmd:\n  - echo mine\n" {
				t.Errorf("user-data %q", ud)
			}
		}},
		{name: "not cloud-init's", file: bad, input: true},
		{name: "missing file", file: filepath.Join(dir, "nope"), input: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakes(t)
			t.Setenv("HOME", t.TempDir())
			o := createOptions()
			o.NoHeadStart, o.UserDataFile = tc.noHeadStart, tc.file
			_, err := Create(context.Background(), f.env, o)
			if tc.input {
				var ie *provision.InputError
				if !errors.As(err, &ie) || f.cloud.created != 0 {
					t.Errorf("err %v (input error: %v), %d created", err, errors.As(err, &ie), f.cloud.created)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, f.cloud.lastReq.UserData)
		})
	}
}

// TestCreateTimeline: create's outcome carries a timeline with the AWS
// calls, the instance's start, the wait for SSH, the engine's steps and
// the head start's own work on the host, in order, the head start
// overlapping the SSH wait.
func TestCreateTimeline(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	lt := &launchTimes{fakeCloud: f.cloud}
	f.env.NewCloud = func(context.Context, string) (Cloud, error) { return lt, nil }
	f.env.Dial = slowDialer{f.dial} // sshd takes 100 ms to come up
	engine := f.env.Engine
	f.env.Engine = func(ctx context.Context, h provision.Host, s provision.Spec, host string, o provision.Options) (*provision.Result, error) {
		res, err := engine(ctx, h, s, host, o)
		// The head start on a host whose clock is 2 s ahead: launched 5 ms
		// after the instance ran, it downloads 50 MB in 40 ms.
		ms := func(d int) string { return epoch(lt.running.Add(2*time.Second + time.Duration(d)*time.Millisecond)) }
		rec := map[string]string{"launched": ms(5), "download.start": ms(10), "download.end": ms(50),
			"download.bytes": "50000000", "download.result": "ok", "finished": ms(60)}
		now := time.Now()
		res.FactsAfter = provision.Facts{HeadStart: provision.HeadStart{State: "done", Record: rec}, HostNow: now.Add(2 * time.Second), ObservedAt: now}
		res.Applied = []provision.StepResult{{ID: "service", Title: "start the broker", Started: now, Duration: time.Millisecond}}
		res.VerifyStarted, res.VerifyDone = now.Add(time.Millisecond), now.Add(2*time.Millisecond)
		return res, err
	}
	out, err := Create(context.Background(), f.env, createOptions())
	if err != nil {
		t.Fatal(err)
	}
	tl := out.Timeline
	if tl == nil {
		t.Fatal("no timeline")
	}
	var names []string
	for _, p := range tl.Phases {
		names = append(names, p.Where+" "+p.Name)
	}
	t.Logf("\n%s", strings.Join(tl.Lines(), "\n"))
	want := []string{"aws API calls: key pair, security group, launch", "aws instance pending -> running",
		"aws wait for the SSH host keys in the console output", "ssh SSH ready", "host head start: from its launch", "host head start: download",
		"ssh broker start: start the broker", "client first produce"}
	got := strings.Join(names, "\n")
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("phase %q missing or out of order in:\n%s", w, got)
		}
		last = i
	}
	dl, _ := tl.Find("head start: download")
	ssh, _ := tl.Find("SSH ready")
	if dl.Detail != "50.0 MB in 0.0s, 1250.00 MB/s (10000.0 Mbit/s)" || dl.Offset < ssh.Offset || dl.End() > ssh.End() {
		t.Errorf("download %+v within SSH ready %+v?", dl, ssh)
	}
}

// launchTimes is a cloud whose instance is launched, then running 20 ms
// later.
type launchTimes struct {
	*fakeCloud
	running time.Time
}

func (c *launchTimes) CreateNodes(ctx context.Context, req cloud.CreateRequest) ([]*cloud.Broker, error) {
	time.Sleep(10 * time.Millisecond)
	launched := time.Now()
	time.Sleep(20 * time.Millisecond)
	bs, err := c.fakeCloud.CreateNodes(ctx, req)
	if err == nil {
		c.running = time.Now()
		bs[0].Launched, bs[0].Running = launched, c.running
	}
	return bs, err
}

type slowDialer struct{ *fakeDialer }

func (d slowDialer) Dial(ctx context.Context, t Target, o DialOptions) (Host, error) {
	time.Sleep(100 * time.Millisecond)
	return d.fakeDialer.Dial(ctx, t, o)
}

func epoch(t time.Time) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}
