package kafkadist

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Expected outputs were produced by gpg 2.2 (`gpg --print-md sha512 NAME`) on
// a file holding "kafkaup\n".
func TestFormatSHA512File(t *testing.T) {
	const sum = "3b389cad5b7c66ffd606a6dac09758ed7aed666f92e126859dfca67c5a9945a719da5afa54df535d98178d710faeba7dc0a7bfee249ca14df9563e37c6dbfe1b"
	cases := map[string]string{
		"kafka_2.13-4.0.0.tgz": "" +
			"kafka_2.13-4.0.0.tgz: 3B389CAD 5B7C66FF D606A6DA C09758ED 7AED666F 92E12685\n" +
			"                      9DFCA67C 5A9945A7 19DA5AFA 54DF535D 98178D71 0FAEBA7D\n" +
			"                      C0A7BFEE 249CA14D F9563E37 C6DBFE1B\n",
		"a.tgz": "" +
			"a.tgz: 3B389CAD 5B7C66FF D606A6DA C09758ED 7AED666F 92E12685 9DFCA67C 5A9945A7\n" +
			"       19DA5AFA 54DF535D 98178D71 0FAEBA7D C0A7BFEE 249CA14D F9563E37 C6DBFE1B\n",
		"this-is-a-rather-long-file-name-over-forty-chars.tgz": "" +
			"this-is-a-rather-long-file-name-over-forty-chars.tgz: \n" +
			"3B389CAD 5B7C66FF D606A6DA C09758ED 7AED666F 92E12685 9DFCA67C 5A9945A7 19DA5AFA\n" +
			" 54DF535D 98178D71 0FAEBA7D C0A7BFEE 249CA14D F9563E37 C6DBFE1B\n",
	}
	for name, want := range cases {
		got := formatSHA512File(name, sum)
		if got != want {
			t.Errorf("formatSHA512File(%s):\n%s\nwant:\n%s", name, got, want)
		}
		if back, err := parseSHA512File([]byte(got)); err != nil || back != sum {
			t.Errorf("parseSHA512File(%s) = %q, %v", name, back, err)
		}
	}
	// The digest reported for the real 4.0.0 tarball, in Apache's layout.
	real := formatSHA512File("kafka_2.13-4.0.0.tgz", "00722ab0a6b954e0006994b8d589dcd8f26e1827c47f70b6e820fb45aa35945c19163b0f188caf0caf976c11f7ab005fd368c54e5851e899d2de687a804a5eb9")
	if !strings.HasPrefix(real, "kafka_2.13-4.0.0.tgz: 00722AB0 A6B954E0 ") {
		t.Errorf("real 4.0.0 digest formatted as %q", real)
	}
}

func TestWriteTarGzDeterministic(t *testing.T) {
	base := t.TempDir()
	for _, f := range []string{"top/bin/run.sh", "top/LICENSE", "top/libs/a.jar"} {
		p := filepath.Join(base, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(f), mode); err != nil {
			t.Fatal(err)
		}
	}
	var sums []string
	for i := range 2 {
		dst := filepath.Join(t.TempDir(), "x.tgz")
		sum, err := writeTarGz(dst, base, "top")
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, sum)
		if i == 0 {
			entries := tarEntries(t, dst)
			want := []string{"top/ 755", "top/LICENSE 644", "top/bin/ 755", "top/bin/run.sh 755", "top/libs/ 755", "top/libs/a.jar 644"}
			if !slices.Equal(entries, want) {
				t.Errorf("entries %q, want %q", entries, want)
			}
		}
		// Touching the sources must not change the bytes.
		later := time.Now().Add(time.Hour)
		os.Chtimes(filepath.Join(base, "top/LICENSE"), later, later)
	}
	if sums[0] != sums[1] {
		t.Errorf("two packs differ: %s vs %s", sums[0], sums[1])
	}
}

func TestBuildRejectsBadVersion(t *testing.T) {
	if _, err := Build(context.Background(), "4.0.0/../x"); err == nil {
		t.Fatal("Build accepted a bad version")
	}
}

func TestMirrorFailNext(t *testing.T) {
	dir := t.TempDir()
	d := newDist(dir, "9.9.9")
	d.SHA512 = strings.Repeat("ab", 64)
	mustWrite(t, d.Tarball, "tarball bytes")
	mustWrite(t, d.SHA512File, formatSHA512File(d.FileName, d.SHA512))

	m, err := StartMirror([]*Dist{d}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url := m.URL(0, "9.9.9")
	if want := fmt.Sprintf("http://127.0.0.1:%d/kafka/9.9.9/kafka_2.13-9.9.9.tgz", m.Port(0)); url != want {
		t.Fatalf("URL = %s, want %s", url, want)
	}
	path := "/kafka/9.9.9/kafka_2.13-9.9.9.tgz"
	m.FailNext(path, 2, http.StatusServiceUnavailable)
	for _, want := range []int{503, 503, 200} {
		if code, _ := get(t, url); code != want {
			t.Fatalf("GET %s = %d, want %d", url, code, want)
		}
	}
	if code, body := get(t, url+".sha512"); code != 200 || !strings.HasPrefix(body, "kafka_2.13-9.9.9.tgz: ABABABAB") {
		t.Fatalf("GET .sha512 = %d %q", code, body)
	}
	addr, err := m.AddListener("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+addr+path); code != 200 || body != "tarball bytes" {
		t.Fatalf("GET on listener 1 = %d %q", code, body)
	}
	if m.URL(1, "9.9.9") != "http://"+addr+path {
		t.Fatalf("URL(1) = %s", m.URL(1, "9.9.9"))
	}
	if code, _ := get(t, "http://"+addr+"/kafka/1.0.0/kafka_2.13-1.0.0.tgz"); code != 404 {
		t.Fatalf("unknown version answered %d", code)
	}
	// Range requests work, so a downloader can resume.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes=8-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(body) != "bytes" {
		t.Fatalf("range GET = %d %q", resp.StatusCode, body)
	}
	want := []string{
		"GET " + path + " 503", "GET " + path + " 503", "GET " + path + " 200",
		"GET " + path + ".sha512 200", "GET " + path + " 200",
		"GET /kafka/1.0.0/kafka_2.13-1.0.0.tgz 404", "GET " + path + " 206",
	}
	if got := m.Requests(); !slices.Equal(got, want) {
		t.Fatalf("Requests() =\n%q\nwant\n%q", got, want)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddListener("127.0.0.1:0"); err == nil {
		t.Fatal("AddListener after Close succeeded")
	}
}

// TestRealBroker builds the dists of 4.0.0 and of 4.0.1 (which the upgrade
// tests use), downloads each from the mirror, and runs a real broker from it
// with the dist's own scripts.
func TestRealBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Kafka from Maven Central and runs a broker")
	}
	for _, v := range []string{"4.0.0", "4.0.1"} {
		t.Run(v, func(t *testing.T) { testRealBroker(t, v) })
	}
}

func testRealBroker(t *testing.T, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	start := time.Now()
	d, err := Build(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Build %s (cold or cached): %v", version, time.Since(start))
	start = time.Now()
	d2, err := Build(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Build %s warm: %v", version, time.Since(start))
	if *d2 != *d {
		t.Fatalf("warm Build differs: %+v vs %+v", d2, d)
	}

	m, err := StartMirror([]*Dist{d}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	// Download and verify the way a provisioner would.
	tmp := t.TempDir()
	tgz := filepath.Join(tmp, d.FileName)
	gotSum := download(t, m.URL(0, version), tgz)
	_, sumFile := get(t, m.URL(0, version)+".sha512")
	want, err := parseSHA512File([]byte(sumFile))
	if err != nil {
		t.Fatal(err)
	}
	if want != d.SHA512 || gotSum != d.SHA512 {
		t.Fatalf("sha512: file %s, downloaded %s, Dist %s", want, gotSum, d.SHA512)
	}
	if out, err := exec.Command("tar", "-xzf", tgz, "-C", tmp).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	home := filepath.Join(tmp, "kafka_2.13-"+version)
	for _, f := range []string{"LICENSE", "config/server.properties", "config/log4j2.yaml", "config/tools-log4j2.yaml", "libs/kafka_2.13-" + version + ".jar", "bin/kafka-server-stop.sh"} {
		if _, err := os.Stat(filepath.Join(home, f)); err != nil {
			t.Fatal(err)
		}
	}

	clusterID := strings.TrimSpace(runTool(ctx, t, home, "kafka-storage.sh", "random-uuid"))
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(clusterID) {
		t.Fatalf("random-uuid printed %q", clusterID)
	}

	// The shipped server.properties, moved to free loopback ports and a temp log dir.
	port, cport := freePort(t), freePort(t)
	dataDir := filepath.Join(tmp, "data")
	props := filepath.Join(tmp, "server.properties")
	shipped, err := os.ReadFile(filepath.Join(home, "config/server.properties"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{
		"listeners":                           fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, cport),
		"advertised.listeners":                fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, cport),
		"controller.quorum.bootstrap.servers": fmt.Sprintf("127.0.0.1:%d", cport),
		"log.dirs":                            dataDir,
	}
	mustWrite(t, props, setProps(t, string(shipped), set))
	runTool(ctx, t, home, "kafka-storage.sh", "format", "-t", clusterID, "-c", props, "--standalone")
	if _, err := os.Stat(filepath.Join(dataDir, "meta.properties")); err != nil {
		t.Fatal(err)
	}

	// Start the broker in the foreground, as a systemd Type=simple unit would.
	brokerOut, err := os.Create(filepath.Join(tmp, "broker.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer brokerOut.Close()
	broker := exec.Command(filepath.Join(home, "bin/kafka-server-start.sh"), props)
	broker.Env = append(toolEnv(), "KAFKA_HEAP_OPTS=-Xmx400m")
	broker.Stdout, broker.Stderr = brokerOut, brokerOut
	start = time.Now()
	if err := broker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- broker.Wait() }()
	defer broker.Process.Kill() // no-op once it has exited

	serverLog := filepath.Join(home, "logs/server.log")
	waitFor(t, exited, 3*time.Minute, brokerOut.Name(), func() bool {
		b, _ := os.ReadFile(serverLog)
		return strings.Contains(string(b), "Kafka Server started")
	})
	t.Logf("broker started in %v", time.Since(start))

	// The launcher exec'd java in place, with " kafka.Kafka " on its command
	// line (what kafka-server-stop.sh looks for) and the heap we asked for.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", broker.Process.Pid))
	args := strings.ReplaceAll(string(cmdline), "\x00", " ")
	if !strings.Contains(args, " kafka.Kafka ") || !strings.Contains(args, " -Xmx400m ") || !strings.Contains(filepath.Base(strings.Fields(args)[0]), "java") {
		t.Errorf("broker command line: %s", args)
	}
	for _, f := range []string{"controller.log", "state-change.log", "kafkaServer-gc.log"} {
		if st, err := os.Stat(filepath.Join(home, "logs", f)); err != nil || (f == "controller.log" && st.Size() == 0) {
			t.Errorf("logs/%s: %v", f, err)
		}
	}

	bs := fmt.Sprintf("127.0.0.1:%d", port)
	runTool(ctx, t, home, "kafka-topics.sh", "--bootstrap-server", bs, "--create", "--topic", "t1")
	if out := runTool(ctx, t, home, "kafka-topics.sh", "--bootstrap-server", bs, "--list"); !slices.Contains(strings.Fields(out), "t1") {
		t.Errorf("--list printed %q", out)
	}

	start = time.Now()
	if err := broker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Errorf("broker exit after SIGTERM: %v (want status 143)", err)
		}
		t.Logf("broker stopped in %v", time.Since(start))
	case <-time.After(3 * time.Minute):
		t.Fatal("broker did not exit within 3m of SIGTERM")
	}
}

// runTool runs a bin/ script of the unpacked dist and returns its stdout.
func runTool(ctx context.Context, t *testing.T, home, script string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(home, "bin", script), args...)
	cmd.Env = toolEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// toolEnv is the test's environment without the Kafka variables the scripts read.
func toolEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "KAFKA_") || strings.HasPrefix(kv, "LOG_DIR=") || strings.HasPrefix(kv, "CLASSPATH=")
	})
}

// setProps replaces (or appends) keys in a .properties text.
func setProps(t *testing.T, text string, set map[string]string) string {
	t.Helper()
	var b strings.Builder
	done := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		k, _, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if v, found := set[k]; ok && found && !strings.HasPrefix(line, "#") {
			line = k + "=" + v
			done[k] = true
		}
		b.WriteString(line + "\n")
	}
	for k, v := range set {
		if !done[k] {
			b.WriteString(k + "=" + v + "\n")
		}
	}
	return b.String()
}

// waitFor polls cond until it holds, failing if the process exits or time runs out.
func waitFor(t *testing.T, exited <-chan error, d time.Duration, outFile string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	for !cond() {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(outFile)
			t.Fatalf("broker exited early: %v\n%s", err, tail(string(out), 4000))
		case <-deadline:
			out, _ := os.ReadFile(outFile)
			t.Fatalf("broker not started within %v\n%s", d, tail(string(out), 4000))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// download saves url to dst and returns the sha512 of what it received.
func download(t *testing.T, url, dst string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tarEntries lists "name mode" for each entry of a .tgz.
func tarEntries(t *testing.T, tgz string) []string {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, fmt.Sprintf("%s %o", h.Name, h.Mode))
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
