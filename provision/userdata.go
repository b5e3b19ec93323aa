package provision

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/scripts"
)

// The head start: create's user-data begins the Java install and the Kafka
// download at the instance's first boot, while kafkaup waits for SSH
// (scripts/head-start.sh says what it does and does not do).
const (
	// HeadStartDir holds its status, log and staged tarball on the host.
	HeadStartDir = "/var/lib/kafkaup-head-start"
	// HeadStartUnit is the transient systemd unit it runs as.
	HeadStartUnit = "kafkaup-head-start"
	// HeadStartTimeout bounds the SSH run's wait for it in all, and
	// HeadStartStall the time it may go without progress (its log, status
	// or download growing) before the wait stops it.
	HeadStartTimeout = 30 * 60
	HeadStartStall   = 180
)

// HeadStartTarball is where the head start stages the tarball it
// downloads (with .part and .err beside it while it works).
func HeadStartTarball(s Spec) string { return HeadStartDir + "/kafka/" + s.DistName() + ".tgz" }

// MaxUserData is EC2's limit on user-data, before base64.
const MaxUserData = 16 << 10

// HeadStartScript is the head start for the spec: the same sources and
// retries as the kafka step, and the digest when the user gave one (else
// it downloads unchecked, and the SSH run verifies the file before using
// it). Nothing is downloaded for a tarball uploaded over SSH.
func HeadStartScript(s Spec) scripts.HeadStart {
	hs := scripts.HeadStart{Dir: HeadStartDir, DistName: s.DistName(), URLs: s.DownloadURLs(),
		ExpectedSHA512: s.Source.SHA512, DownloadRetries: DownloadRetries, JavaPackages: JavaPackages,
		APTLockTimeout: s.APTLockSeconds()}
	if s.Source.LocalTarball != "" {
		hs.URLs, hs.ExpectedSHA512 = nil, ""
	}
	return hs
}

// HeadStartBoothook is the head start as a cloud-init boothook: cloud-init
// runs it early in every boot, before sshd starts; it starts the head start
// once per instance, detached, and returns.
func HeadStartBoothook(s Spec) ([]byte, error) {
	script, err := scripts.RenderCompact(HeadStartScript(s))
	if err != nil {
		return nil, err
	}
	launch, err := scripts.Render(scripts.HeadStartLaunch{Dir: HeadStartDir, Script: string(script), Unit: HeadStartUnit})
	if err != nil {
		return nil, err
	}
	return append([]byte("#cloud-boothook\n"), launch...), nil
}

// UserData is what create gives the instance: the head start's boothook
// (unless headStart is false) and the user's own user-data, own, which is
// merged rather than replaced: both become parts of one MIME multipart
// message, the form cloud-init reads several parts from (a #cloud-config,
// scripts, boothooks, or the parts of the user's own multipart message).
// A result over EC2's 16 KB is gzipped, which cloud-init undoes; one that
// is still too big is refused.
func UserData(s Spec, headStart bool, own []byte) ([]byte, error) {
	own, err := gunzipped(own)
	if err != nil {
		return nil, Inputf("--user-data: %v", err)
	}
	if !headStart {
		if len(own) > MaxUserData {
			return nil, Inputf("--user-data is %d bytes; EC2 takes at most %d. Shrink it, or gzip it (cloud-init reads gzipped user-data)", len(own), MaxUserData)
		}
		return own, nil
	}
	hook, err := HeadStartBoothook(s)
	if err != nil {
		return nil, err
	}
	out := hook
	if len(bytes.TrimSpace(own)) > 0 {
		parts, err := userParts(own)
		if err != nil {
			return nil, Inputf("--user-data: %v", err)
		}
		ours := part{header: textproto.MIMEHeader{
			"Content-Type":        {`text/cloud-boothook; charset="utf-8"`},
			"Content-Disposition": {`attachment; filename="kafkaup-head-start"`},
		}, body: hook}
		if out, err = multipartMessage(append([]part{ours}, parts...)); err != nil {
			return nil, err
		}
	}
	if len(out) <= MaxUserData {
		return out, nil
	}
	if out, err = gzipped(out); err != nil {
		return nil, err
	}
	if len(out) > MaxUserData {
		return nil, Inputf("the user-data, your --user-data with kafkaup's head start, is %d bytes gzipped; EC2 takes at most %d. Shrink your --user-data, or pass --no-head-start", len(out), MaxUserData)
	}
	return out, nil
}

// part is one part of a MIME multipart message.
type part struct {
	header textproto.MIMEHeader
	body   []byte
}

// startTypes are the first lines by which cloud-init tells what a
// user-data (or a part without a Content-Type) is, longest first.
var startTypes = []struct{ prefix, ctype string }{
	{"#cloud-config-archive", "text/cloud-config-archive"},
	{"#cloud-config-jsonp", "text/cloud-config-jsonp"},
	{"#cloud-config", "text/cloud-config"},
	{"#cloud-boothook", "text/cloud-boothook"},
	{"#include-once", "text/x-include-once-url"},
	{"#include", "text/x-include-url"},
	{"#part-handler", "text/part-handler"},
	{"## template: jinja", "text/jinja2"},
	{"#!", "text/x-shellscript"},
}

// userParts splits the user's user-data into parts: the parts of a MIME
// multipart message as they are, or the whole as one part of the type its
// first line says.
func userParts(data []byte) ([]part, error) {
	if isMIME(data) {
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("reading it as a MIME message: %w", err)
		}
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			return nil, fmt.Errorf("its Content-Type: %w", err)
		}
		if !strings.HasPrefix(mt, "multipart/") {
			body, err := io.ReadAll(msg.Body)
			if err != nil {
				return nil, err
			}
			return []part{{header: textproto.MIMEHeader{"Content-Type": {msg.Header.Get("Content-Type")}}, body: body}}, nil
		}
		r := multipart.NewReader(msg.Body, params["boundary"])
		var parts []part
		for {
			p, err := r.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading its parts: %w", err)
			}
			body, err := io.ReadAll(p)
			if err != nil {
				return nil, fmt.Errorf("reading its parts: %w", err)
			}
			parts = append(parts, part{header: p.Header, body: body})
		}
		if len(parts) == 0 {
			return nil, fmt.Errorf("the multipart message has no parts")
		}
		return parts, nil
	}
	first, _, _ := strings.Cut(string(data), "\n")
	for _, st := range startTypes {
		if strings.HasPrefix(first, st.prefix) {
			return []part{{header: textproto.MIMEHeader{
				"Content-Type":        {st.ctype + `; charset="utf-8"`},
				"Content-Disposition": {`attachment; filename="user-data"`},
			}, body: data}}, nil
		}
	}
	return nil, fmt.Errorf("cloud-init would not run it: it starts with %q, not #cloud-config, #! (a script), #cloud-boothook, #include or ## template: jinja, and it is not a MIME multipart message", truncate(first, 40))
}

// isMIME tells a MIME message (headers first) from the other user-data
// formats, which start with '#'.
func isMIME(data []byte) bool {
	head := strings.ToLower(string(data[:min(len(data), 200)]))
	return strings.HasPrefix(head, "content-type:") || strings.HasPrefix(head, "mime-version:")
}

// multipartMessage writes the parts as a multipart/mixed message, with a
// boundary made from the content (the same input gives the same bytes).
func multipartMessage(parts []part) ([]byte, error) {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p.body)
	}
	boundary := "kafkaup-" + hex.EncodeToString(h.Sum(nil))[:24]
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	if err := w.SetBoundary(boundary); err != nil {
		return nil, err
	}
	for _, p := range parts {
		if bytes.Contains(p.body, []byte("--"+boundary)) {
			return nil, fmt.Errorf("a part of the user-data contains the MIME boundary %s", boundary)
		}
		hdr := textproto.MIMEHeader{}
		for k, v := range p.header {
			hdr[k] = v
		}
		if hdr.Get("MIME-Version") == "" {
			hdr.Set("MIME-Version", "1.0")
		}
		pw, err := w.CreatePart(hdr)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write(p.body); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "Content-Type: multipart/mixed; boundary=%q\r\nMIME-Version: 1.0\r\n\r\n", boundary)
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// gunzipped undoes gzip when data is gzipped (as cloud-init would).
func gunzipped(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		return data, nil
	}
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("it looks gzipped but is not: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out, nil
}

// gzipped compresses data with no name or time in the header, so the same
// input gives the same bytes.
func gzipped(data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// HeadStart is what Observe found of the head start on the host.
type HeadStart struct {
	// State is none (no head start was launched: no user-data, or
	// --no-head-start, or a host kafkaup did not create), running, done,
	// failed, or interrupted (its process went away before it finished:
	// a reboot, or the SSH run stopped it).
	State string
	// Record is its status file: EVENT=epoch seconds (started, finished,
	// java.start, java.end, apt_wait.start, apt_update.start,
	// download.start, download.end, ...) and values (result, pid,
	// java.package, java.result, java.error, download.result,
	// download.bytes, download.error, stop_reason, ...).
	Record map[string]string
	// Tarball is the tarball it downloaded, when one is staged (not yet
	// verified: the kafka step checks its sha512 before using it).
	Tarball string
}

// Ran tells whether a head start was launched on the host.
func (h HeadStart) Ran() bool { return h.State != "" && h.State != "none" }

// Time reads an event's time from the record (host clock).
func (h HeadStart) Time(event string) (time.Time, bool) {
	return epochTime(h.Record[event])
}

// epochTime reads seconds since the epoch, with a fraction.
func epochTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)).Round(time.Millisecond), true
}

// failure says why the head start left a part of its work (java or
// download) undone, for a step's reason; empty when that part went well.
func (h HeadStart) failure(what string) string {
	switch {
	case !h.Ran() || h.State == "running":
		return ""
	case h.Record[what+".result"] == "ok" || h.Record[what+".result"] == "present":
		return ""
	case h.Record["stop_reason"] != "":
		return "was stopped (" + h.Record["stop_reason"] + ")"
	case h.State == "interrupted":
		return "was cut off before it finished (the host rebooted?)"
	case h.Record[what+".error"] != "":
		return "failed: " + h.Record[what+".error"]
	case h.Record[what+".result"] == "skipped":
		return ""
	}
	return "failed"
}
