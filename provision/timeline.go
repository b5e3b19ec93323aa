package provision

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Timeline is where a create's time went: one phase per stretch of work or
// waiting, on this machine's clock, with its offset from the start and its
// duration. Phases overlap where work ran side by side (the head start on
// the host while kafkaup waited for SSH).
type Timeline struct {
	Start  time.Time `json:"start"`
	Total  float64   `json:"total_seconds"`
	Phases []Phase   `json:"phases"`
}

// Phase is one stretch of a Timeline.
type Phase struct {
	Name string `json:"name"`
	// Where it ran: "aws" (API calls and waits from this machine), "ssh"
	// (kafkaup over SSH), "host" (the head start, by itself on the host),
	// or "client" (a Kafka client on this machine).
	Where   string  `json:"where"`
	Offset  float64 `json:"offset_seconds"`
	Seconds float64 `json:"seconds"`
	// Detail is what the phase moved or found, e.g. the download's size
	// and throughput.
	Detail string `json:"detail,omitempty"`
}

// Add records a phase that ran from start to end; a phase without both
// ends is left out.
func (t *Timeline) Add(where, name, detail string, start, end time.Time) {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return
	}
	if t.Start.IsZero() || start.Before(t.Start) {
		t.shift(start)
	}
	t.Phases = append(t.Phases, Phase{Name: name, Where: where, Detail: detail,
		Offset: seconds(start.Sub(t.Start)), Seconds: seconds(end.Sub(start))})
	if e := seconds(end.Sub(t.Start)); e > t.Total {
		t.Total = e
	}
}

// shift moves the timeline's start earlier, keeping the phases in place.
func (t *Timeline) shift(start time.Time) {
	if !t.Start.IsZero() {
		d := seconds(t.Start.Sub(start))
		for i := range t.Phases {
			t.Phases[i].Offset += d
		}
		t.Total += d
	}
	t.Start = start
}

// Sort orders the phases by start; phases that start together keep the
// order they were added in.
func (t *Timeline) Sort() {
	sort.SliceStable(t.Phases, func(i, j int) bool { return t.Phases[i].Offset < t.Phases[j].Offset })
}

// Find returns the first phase whose name starts with prefix.
func (t Timeline) Find(prefix string) (Phase, bool) {
	for _, p := range t.Phases {
		if strings.HasPrefix(p.Name, prefix) {
			return p, true
		}
	}
	return Phase{}, false
}

// End is where a phase ends, in seconds from the start.
func (p Phase) End() float64 { return p.Offset + p.Seconds }

// barWidth is the width of the text timeline's bar column.
const barWidth = 40

// Lines renders the timeline as text: offset, duration, a bar on a common
// scale (so overlap shows at a glance), where it ran and what.
func (t Timeline) Lines() []string {
	if len(t.Phases) == 0 {
		return nil
	}
	name := 0
	for _, p := range t.Phases {
		name = max(name, len(p.Name))
	}
	lines := []string{fmt.Sprintf("%7s %7s  %-*s  %-6s %s", "start", "took", barWidth+2, "", "where", "phase")}
	for _, p := range t.Phases {
		line := fmt.Sprintf("%6.1fs %6.1fs  %s  %-6s %-*s", p.Offset, p.Seconds, t.bar(p), p.Where, name, p.Name)
		if p.Detail != "" {
			line += "  " + p.Detail
		}
		lines = append(lines, strings.TrimRight(line, " "))
	}
	return append(lines, fmt.Sprintf("%6.1fs total", t.Total))
}

func (t Timeline) bar(p Phase) string {
	b := []byte(strings.Repeat(" ", barWidth))
	if t.Total <= 0 {
		return string(b)
	}
	from := int(p.Offset / t.Total * barWidth)
	to := int(p.End() / t.Total * barWidth)
	from, to = min(from, barWidth-1), min(max(to, from+1), barWidth)
	for i := from; i < to; i++ {
		b[i] = '#'
	}
	return "|" + string(b) + "|"
}

func seconds(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

// Throughput says how much a transfer moved and how fast: "120.0 MB in
// 42.1s, 2.85 MB/s (22.8 Mbit/s)".
func Throughput(bytes int64, took time.Duration) string {
	mb := float64(bytes) / 1e6
	if took <= 0 {
		return fmt.Sprintf("%.1f MB", mb)
	}
	rate := mb / took.Seconds()
	return fmt.Sprintf("%.1f MB in %.1fs, %.2f MB/s (%.1f Mbit/s)", mb, took.Seconds(), rate, rate*8)
}

// AddRun adds what one provisioning run did: each observation, each step
// (a wait says what it waited for; the kafka step how the tarball came),
// and the produce and consume from this machine.
func (t *Timeline) AddRun(r *Result) {
	if r == nil {
		return
	}
	for _, o := range r.Observed {
		t.Add("ssh", "observe the host", "", o.Start, o.End)
	}
	for _, a := range r.Applied {
		name, detail := "step "+a.ID+": "+a.Title, ""
		switch a.ID {
		case "wait-apt":
			name = "wait: cloud-init and other apt runs (apt lock)"
		case "head-start":
			name = "wait: for the head start to finish"
		case "service":
			name = "broker start: " + a.Title
		}
		if d := a.Download; d != nil {
			switch d.Source {
			case "download":
				detail = "downloaded over SSH: " + Throughput(d.Bytes, time.Duration(d.Seconds*float64(time.Second)))
			case "head-start":
				detail = "the head start's download, sha512 verified"
			case "upload":
				detail = "uploaded from this machine"
			}
		}
		if a.Error != "" {
			detail = strings.TrimSpace(detail + " FAILED")
		}
		t.Add("ssh", name, detail, a.Started, a.Started.Add(a.Duration))
	}
	t.Add("client", "first produce and consume from here", "", r.VerifyStarted, r.VerifyDone)
	last := r.FactsAfter
	if last.HostNow.IsZero() { // the run stopped before its last observation
		last = r.Facts
	}
	t.AddHeadStart(last)
}

// AddHeadStart adds the head start's own phases from its record, its
// host's clock mapped onto this machine's.
func (t *Timeline) AddHeadStart(f Facts) {
	hs := f.HeadStart
	if !hs.Ran() {
		return
	}
	offset := f.HostClockOffset()
	at := func(event string) time.Time {
		v, ok := hs.Time(event)
		if !ok {
			return time.Time{}
		}
		return v.Add(-offset)
	}
	end := func(event string) time.Time { // a phase cut off ends where the record ends
		if v := at(event); !v.IsZero() {
			return v
		}
		return t.lastOf(hs, at)
	}
	if !t.Start.IsZero() && at("launched").Before(t.Start) {
		return // a head start from before this run (a create that resumed)
	}
	t.Add("host", "head start: from its launch at boot to its end", "state "+hs.State, at("launched"), end("finished"))
	if h := hs.Record["apt_wait.holder"]; h != "" {
		t.Add("host", "head start: wait for the apt lock", "held by "+h, at("apt_wait.start"), end("apt_wait.end"))
	}
	t.Add("host", "head start: apt-get update", "", at("apt_update.start"), end("apt_update.end"))
	if pkg := hs.Record["java.package"]; pkg != "" {
		t.Add("host", "head start: install "+pkg, hs.Record["java.result"], at("apt_update.end"), end("java.end"))
	} else if hs.Record["java.result"] == "present" || hs.Record["java.result"] == "failed" {
		t.Add("host", "head start: Java", hs.Record["java.result"], at("java.start"), end("java.end"))
	}
	if !at("download.start").IsZero() {
		detail := hs.Record["download.result"]
		start, stop := at("download.start"), end("download.end")
		if n, err := strconv.ParseInt(hs.Record["download.bytes"], 10, 64); err == nil && n > 0 {
			detail = Throughput(n, stop.Sub(start))
		} else if e := hs.Record["download.error"]; e != "" {
			detail += ": " + e
		}
		t.Add("host", "head start: download "+f.distName(), detail, start, stop)
	}
	t.Add("host", "unattended-upgrades started again (it found the lock taken)", "", at("upgrades.restarted"), at("upgrades.restarted"))
}

// lastOf is the latest time in the record: where a cut-off head start was
// last seen working.
func (t *Timeline) lastOf(hs HeadStart, at func(string) time.Time) time.Time {
	var last time.Time
	for k := range hs.Record {
		if v := at(k); v.After(last) && k != "pid" && k != "download.bytes" {
			last = v
		}
	}
	return last
}

// distName names the tarball in the head start's record.
func (f Facts) distName() string {
	if u := f.HeadStart.Record["download.url"]; u != "" {
		return u[strings.LastIndex(u, "/")+1:]
	}
	return "the Kafka tarball"
}
