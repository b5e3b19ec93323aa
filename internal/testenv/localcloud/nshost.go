package localcloud

import (
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
)

// firstBootScript is what stands in for cloud-init on a namespace host.
//
//go:embed nshost-boot.sh
var firstBootScript string

// NamespaceHosts runs every instance as a namespace host (package nshost):
// sshd in its own network namespace over an overlay of this machine's root,
// up in about a second, so a test can run several instances at once. It has
// no init system and no cloud-init; the harness does a part of cloud-init's
// job over SSH right after sshd is up, in cloud-init's order:
//   - a user-data that is a boothook ("#cloud-boothook"), on every boot,
//     before the user is made (kafkaup's head start is one);
//   - the user "ubuntu" with passwordless sudo and the key pair's key;
//   - on the first boot only, the user-data when it is a shell script
//     ("#!") or a #cloud-config's runcmd (other modules, MIME multipart and
//     vendor-data are not run: their text is logged as skipped);
//   - the SSH host keys printed to its console in cloud-init's format.
//
// Until the user exists a login as ubuntu is refused, as on a booting
// instance. Stop sends SIGTERM to every process and keeps the overlay; a
// started host has its files and host keys back, but nothing runs again
// by itself.
//
// With a LAN, every instance also joins it at moto's private IP, on-link
// to the whole default VPC (VPCPrefix), as instances of one VPC reach
// each other at their private addresses whatever their subnet; this
// machine has no address there and still reaches them only at their
// public (loopback) address, through the cloud's relays. The address
// stays across a stop and start, as on EC2.
type NamespaceHosts struct {
	LAN *nshost.LAN
	// OnBoot, when set, runs at each boot once the host is up and before
	// the stand-in for cloud-init: what a test's surroundings need there
	// (a listener for a mirror on the host's side of its veth, a name for
	// it in /etc/hosts), as a cloud's network provides.
	OnBoot func(ctx context.Context, h *nshost.Host) error
}

// VPCPrefix is the length of moto's default VPC (172.31.0.0/16).
const VPCPrefix = 16

func (NamespaceHosts) Kind() string           { return "nshost" }
func (NamespaceHosts) DefaultMaxRunning() int { return 16 }

// nsDisk is where an instance's writes live: below nshost.BaseDir (hidden
// inside the hosts), in the instance's directory of the cloud.
func nsDisk(spec LaunchSpec) string { return filepath.Join(spec.Dir, "nshost-disk") }

func (b NamespaceHosts) Boot(ctx context.Context, spec LaunchSpec) (Machine, error) {
	disk := nsDisk(spec)
	_, err := os.Stat(filepath.Join(disk, "upper"))
	first := os.IsNotExist(err)
	h, err := nshost.Start(ctx, nshost.Options{Name: spec.Hostname, Disk: disk})
	if err != nil {
		return nil, err
	}
	if b.LAN != nil && spec.PrivateIP != "" {
		if err := b.LAN.JoinAt(ctx, h, fmt.Sprintf("%s/%d", spec.PrivateIP, VPCPrefix)); err != nil {
			h.Close()
			return nil, err
		}
	}
	if b.OnBoot != nil {
		if err := b.OnBoot(ctx, h); err != nil {
			h.Close()
			return nil, fmt.Errorf("localcloud: OnBoot of %s: %w", spec.InstanceID, err)
		}
	}
	m := &nsMachine{h: h, spec: spec, done: make(chan struct{})}
	m.say("localcloud: namespace host %s (%s) powered on at %s (private %s); first boot: %v", spec.InstanceID, h.NetNS, h.Addr, spec.PrivateIP, first)
	go m.boot(first)
	return m, nil
}

func (NamespaceHosts) Remove(spec LaunchSpec) error { return os.RemoveAll(nsDisk(spec)) }

type nsMachine struct {
	h    *nshost.Host
	spec LaunchSpec
	done chan struct{} // closed when the stand-in for cloud-init has finished

	mu      sync.Mutex
	console strings.Builder
}

func (m *nsMachine) Addr() string { return m.h.Addr }

func (m *nsMachine) Console() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.console.String()
}

func (m *nsMachine) say(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(&m.console, format+"\r\n", args...)
}

// boot does cloud-init's part (see NamespaceHosts) and writes its output
// to the console.
func (m *nsMachine) boot(first bool) {
	defer close(m.done)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	userData := ""
	if first {
		userData = string(m.spec.UserData)
	}
	env := fmt.Sprintf("LC_USER=%s LC_KEYS=%s LC_USERDATA=%s LC_FIRST=%v ",
		shellQuote(DefaultUser),
		shellQuote(base64.StdEncoding.EncodeToString([]byte(strings.Join(m.spec.PublicKeys, "\n")+"\n"))),
		shellQuote(base64.StdEncoding.EncodeToString([]byte(userData))), first)
	out, err := m.h.Run(ctx, env+"bash -s <<'LOCALCLOUD_BOOT'\n"+firstBootScript+"\nLOCALCLOUD_BOOT\n")
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		m.say("%s", line)
	}
	if err != nil {
		m.say("localcloud: first-boot script failed: %v", err)
		m.spec.Logf("localcloud: instance %s: first-boot script on namespace host %s: %v", m.spec.InstanceID, m.h.NetNS, err)
	}
}

func (m *nsMachine) Stop(ctx context.Context, timeout time.Duration) error {
	return m.h.Shutdown(timeout)
}

func (m *nsMachine) Kill() error { return m.h.Close() }

func (m *nsMachine) Off() <-chan struct{} { return m.h.Exited() }

// Host is the namespace host (for tests that look inside as root).
func (m *nsMachine) Host() *nshost.Host { return m.h }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
