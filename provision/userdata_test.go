package provision

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// mimeParts reads a multipart user-data back as cloud-init would.
func mimeParts(t *testing.T, data []byte) (types []string, bodies []string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types, bodies = append(types, ct), append(bodies, string(b))
	}
}

func TestUserDataIsTheBoothookAlone(t *testing.T) {
	s := testSpec()
	ud, err := UserData(s, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(ud, []byte("#cloud-boothook\n#!/usr/bin/env bash\n")) {
		t.Errorf("starts %q", ud[:60])
	}
	// Room is left for a user's own user-data before gzip is needed.
	if len(ud) > MaxUserData-1024 {
		t.Errorf("the head start's user-data is %d bytes: too close to EC2's %d", len(ud), MaxUserData)
	}
	t.Logf("head start user-data: %d bytes", len(ud))
	if err := exec.Command("bash", "-n", "-c", string(ud)).Run(); err != nil {
		t.Errorf("bash -n: %v", err)
	}
	if ud2, _ := UserData(s, true, nil); !bytes.Equal(ud, ud2) {
		t.Error("the same spec gave different user-data")
	}
}

// TestBoothookWritesTheRenderedHeadStart runs the boothook (with the head
// start's directory moved into a temporary one and setsid stubbed out) and
// compares the script it writes with the head start rendered for the spec.
func TestBoothookWritesTheRenderedHeadStart(t *testing.T) {
	s := testSpec()
	s.Source.URL = "http://10.0.2.2:8080/kafka/4.0.0/kafka_2.13-4.0.0.tgz"
	hook, err := HeadStartBoothook(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hs")
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "setsid"), []byte("#!/bin/sh\necho \"setsid $*\" >"+scripts.Quote(filepath.Join(bin, "called"))+"\n"), 0o755)
	text := strings.Replace(string(hook), "readonly HEAD_START_DIR="+scripts.Quote(HeadStartDir), "readonly HEAD_START_DIR="+scripts.Quote(dir), 1)
	cmd := exec.Command("bash", "-c", text)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want, err := scripts.RenderCompact(HeadStartScript(s))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "head-start.sh"))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("written head start differs from the rendered one (%v)", err)
	}
	if !bytes.Contains(got, []byte("readonly URLS=('http://10.0.2.2:8080/kafka/4.0.0/kafka_2.13-4.0.0.tgz')")) {
		t.Error("the head start does not download from the spec's source")
	}
	var called []byte
	for i := 0; i < 50 && len(called) == 0; i++ { // the launcher starts it in the background
		time.Sleep(100 * time.Millisecond)
		called, _ = os.ReadFile(filepath.Join(bin, "called"))
	}
	if !strings.Contains(string(called), dir+"/head-start.sh") {
		t.Errorf("setsid called as %q", called)
	}
}

func TestUserDataMergesTheUsers(t *testing.T) {
	s := testSpec()
	hook, _ := HeadStartBoothook(s)
	cloudConfig := "#cloud-config\npackages: [htop]\nruncmd:\n  - echo hi\n"
	userMIME := "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n" +
		"--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n" +
		"--XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\nruncmd: [[echo, two]]\n--XYZ--\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(cloudConfig))
	zw.Close()

	for _, tc := range []struct {
		name   string
		own    string
		types  []string
		bodies []string // after ours
	}{
		{"cloud-config", cloudConfig, []string{"text/cloud-boothook", "text/cloud-config"}, []string{cloudConfig}},
		{"script", "#!/bin/bash\necho hi\n", []string{"text/cloud-boothook", "text/x-shellscript"}, []string{"#!/bin/bash\necho hi\n"}},
		{"gzipped cloud-config", gz.String(), []string{"text/cloud-boothook", "text/cloud-config"}, []string{cloudConfig}},
		{"the user's multipart", userMIME, []string{"text/cloud-boothook", "text/x-shellscript", "text/cloud-config"}, []string{"#!/bin/sh\necho one", "#cloud-config\nruncmd: [[echo, two]]"}},
		{"jinja", "## template: jinja\n#cloud-config\n", []string{"text/cloud-boothook", "text/jinja2"}, []string{"## template: jinja\n#cloud-config\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ud, err := UserData(s, true, []byte(tc.own))
			if err != nil {
				t.Fatal(err)
			}
			types, bodies := mimeParts(t, ud)
			if strings.Join(types, " ") != strings.Join(tc.types, " ") {
				t.Fatalf("parts %v, want %v", types, tc.types)
			}
			if bodies[0] != string(hook) {
				t.Error("the first part is not the head start's boothook")
			}
			for i, want := range tc.bodies {
				if strings.TrimRight(bodies[i+1], "\r\n") != strings.TrimRight(want, "\r\n") {
					t.Errorf("part %d = %q, want %q", i+1, bodies[i+1], want)
				}
			}
		})
	}
}

func TestUserDataLimits(t *testing.T) {
	s := testSpec()
	var ie *InputError
	if _, err := UserData(s, true, []byte("echo no marker\n")); !errors.As(err, &ie) || !strings.Contains(err.Error(), "cloud-init would not run it") {
		t.Errorf("unknown format: %v", err)
	}
	// Over 16 KB together: gzipped, and cloud-init reads it back.
	big := "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: |\n      " + strings.Repeat("Welcome to the Kafka broker. ", 300) + "\n"
	ud, err := UserData(s, true, []byte(big))
	if err != nil {
		t.Fatal(err)
	}
	if len(ud) > MaxUserData || !bytes.HasPrefix(ud, []byte{0x1f, 0x8b}) {
		t.Fatalf("%d bytes, gzipped %v", len(ud), bytes.HasPrefix(ud, []byte{0x1f, 0x8b}))
	}
	plain, err := gunzipped(ud)
	if err != nil {
		t.Fatal(err)
	}
	if types, _ := mimeParts(t, plain); len(types) != 2 {
		t.Errorf("parts %v", types)
	}
	// Incompressible and too big even so: refused with advice.
	noise := make([]byte, 20<<10)
	rand.Read(noise)
	huge := "#!/bin/sh\n: '" + strings.ReplaceAll(string(bytes.ToValidUTF8(noise, nil)), "'", "") + "'\n"
	if _, err := UserData(s, true, []byte(huge)); !errors.As(err, &ie) || !strings.Contains(err.Error(), "--no-head-start") {
		t.Errorf("too big: %v", err)
	}
	// Without the head start, the user's own user-data goes as it is.
	own := []byte("#cloud-config\nruncmd: [[true]]\n")
	if got, err := UserData(s, false, own); err != nil || !bytes.Equal(got, own) {
		t.Errorf("--no-head-start: %q, %v", got, err)
	}
	if got, err := UserData(s, false, nil); err != nil || len(got) != 0 {
		t.Errorf("nothing at all: %q, %v", got, err)
	}
}

func TestHeadStartScriptFollowsTheSpec(t *testing.T) {
	s := testSpec()
	hs := HeadStartScript(s)
	if !equalStrings(hs.URLs, s.DownloadURLs()) || hs.ExpectedSHA512 != "" || hs.Dir != HeadStartDir || hs.DistName != "kafka_2.13-4.0.0" {
		t.Errorf("%+v", hs)
	}
	s.Source.SHA512 = strings.Repeat("c", 128)
	if hs := HeadStartScript(s); hs.ExpectedSHA512 != s.Source.SHA512 {
		t.Error("a given digest is not checked by the head start")
	}
	s.Source.LocalTarball = "/tmp/k.tgz"
	if hs := HeadStartScript(s); len(hs.URLs) != 0 {
		t.Error("the head start downloads a tarball that is uploaded")
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestPresignedSourceNeedsDigest: a copy of the release in one's own S3
// bucket (a presigned URL) is a source, checked against the digest given.
func TestPresignedSourceNeedsDigest(t *testing.T) {
	s := testSpec()
	s.Source.URL = "https://b.s3.eu-west-1.amazonaws.com/kafka_2.13-4.0.0.tgz?X-Amz-Expires=3600&X-Amz-Signature=ab"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "pass --kafka-sha512") {
		t.Errorf("presigned URL without a digest: %v", err)
	}
	s.Source.SHA512 = strings.Repeat("d", 128)
	if err := s.Validate(); err != nil {
		t.Errorf("presigned URL with a digest: %v", err)
	}
	if hs := HeadStartScript(s); hs.URLs[0] != s.Source.URL || hs.ExpectedSHA512 != s.Source.SHA512 {
		t.Errorf("head start %+v", hs)
	}
	s.Source.URL = "https://b.s3.amazonaws.com/kafka.zip?sig=1"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), ".tgz") {
		t.Errorf("not a .tgz: %v", err)
	}
}
