package provision

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestParseHSPerfDataOfARealJVM starts a JVM with a 64 MiB heap and reads
// its hsperfdata file the way status.sh hands it over.
func TestParseHSPerfDataOfARealJVM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JVM")
	}
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no java on this machine")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "Idle.java")
	os.WriteFile(src, []byte(`public class Idle { public static void main(String[] a) throws Exception {
	byte[][] keep = new byte[8][]; for (int i = 0; i < keep.length; i++) keep[i] = new byte[1 << 20];
	System.out.println("ready"); System.out.flush(); Thread.sleep(60000); System.out.println(keep.length); } }`), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, java, "-Xmx64m", "-Xms64m", src)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatalf("JVM did not start: %v", err)
	}
	u, _ := user.Current()
	path := filepath.Join(os.TempDir(), "hsperfdata_"+u.Username, strconv.Itoa(cmd.Process.Pid))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no hsperfdata for the JVM (%v)", err)
	}
	heap, err := ParseHSPerfData(data)
	if err != nil {
		t.Fatal(err)
	}
	if heap.UsedBytes < 8<<20 || heap.UsedBytes > 64<<20 || heap.CapacityBytes < heap.UsedBytes || heap.CapacityBytes > 65<<20 {
		t.Errorf("heap %+v: want at least the 8 MiB the program keeps, at most -Xmx64m", heap)
	}
	t.Logf("heap used %d MiB, committed %d MiB", heap.UsedBytes>>20, heap.CapacityBytes>>20)
	if _, err := ParseHSPerfData(data[:100]); err == nil {
		t.Error("a truncated file parsed")
	}
	if _, err := ParseHSPerfData([]byte("not perf data, not perf data, not perf data")); err == nil {
		t.Error("junk parsed")
	}
}
