package localcloud

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv/vm"
)

// Backend is what an instance runs on. The cloud calls it from one
// goroutine per instance, never twice at once for the same instance.
type Backend interface {
	// Kind names the backend in logs ("vm", "nshost").
	Kind() string
	// DefaultMaxRunning is how many instances may run at once when
	// Options.MaxRunning is zero.
	DefaultMaxRunning() int
	// Boot powers an instance on: the first time (its disk is made from
	// the image and its seed read) or again after Stop (its disk is as it
	// was left). It returns once the machine runs; the guest then boots by
	// itself, as after EC2's "pending".
	Boot(ctx context.Context, spec LaunchSpec) (Machine, error)
	// Remove deletes what Boot made for the instance (its disk) once its
	// machine is off: an EC2 termination.
	Remove(spec LaunchSpec) error
}

// Machine is a powered-on instance.
type Machine interface {
	// Addr is where the instance's ports are reachable from this machine
	// (a qemu forward on loopback, a namespace host's address). Only the
	// cloud's relays dial it: tests dial the instance's public address.
	Addr() string
	// Console is everything the instance wrote to its serial console in
	// this boot.
	Console() string
	// Stop powers the machine off in an orderly way (EC2's stop: the OS
	// shuts down), keeping its disk; it kills it after timeout.
	Stop(ctx context.Context, timeout time.Duration) error
	// Kill powers it off at once (the end of an EC2 termination).
	Kill() error
	// Off is closed once the machine is off, whatever the reason: Stop,
	// Kill, a shutdown from inside, or its process killed.
	Off() <-chan struct{}
}

// LaunchSpec is what RunInstances asked for, as the instance sees it
// through its NoCloud seed.
type LaunchSpec struct {
	InstanceID   string
	InstanceType string
	Hostname     string   // local-hostname: ip-172-31-x-y, from the private DNS name
	PrivateIP    string   // moto's private address (NamespaceHosts with a LAN put eth1 there)
	PublicKeys   []string // the key pair's public key (authorized for the default user)
	UserData     []byte   // as given, decoded from base64
	VendorData   string   // Options.VendorData
	MemoryMB     int      // the instance type's memory
	DiskGB       int      // the root volume's size
	Dir          string   // a directory of the cloud's for this instance (seed, disk, console)
	Logf         func(format string, args ...any)
}

// DefaultUser is the login cloud-init makes on both backends, as on
// Ubuntu's cloud images (passwordless sudo, the key pair's key).
const DefaultUser = "ubuntu"

// seedFiles are the NoCloud seed of an instance: meta-data (instance id,
// hostname, public keys), user-data and vendor-data.
func seedFiles(spec LaunchSpec) map[string]string {
	var md strings.Builder
	fmt.Fprintf(&md, "instance-id: %s\nlocal-hostname: %s\n", spec.InstanceID, spec.Hostname)
	if len(spec.PublicKeys) > 0 {
		md.WriteString("public-keys:\n")
		for _, k := range spec.PublicKeys {
			fmt.Fprintf(&md, "  - %q\n", strings.TrimSpace(k))
		}
	}
	return map[string]string{
		"meta-data":   md.String(),
		"user-data":   string(spec.UserData),
		"vendor-data": spec.VendorData,
	}
}

// writeSeed writes the seed files into dir.
func writeSeed(dir string, spec LaunchSpec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, text := range seedFiles(spec) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("write seed %s: %w", name, err)
		}
	}
	return nil
}

// VMs runs every instance as a Debian VM under qemu booted from a Cloud
// image (vm.BuildCloudImage): cloud-init reads the instance's NoCloud seed
// from a disk labelled cidata, makes the user "ubuntu" with the key pair's
// key, runs the user-data, and prints the SSH host keys to the serial
// console, which is what GetConsoleOutput returns. Stop presses the ACPI
// power button; the disk (a qcow2 overlay of the root volume's size) stays
// until termination.
type VMs struct {
	Image *vm.Image
	// MemoryMB overrides the instance type's memory (t3.micro: 1024).
	MemoryMB int
	// ShutdownTimeout bounds an orderly stop before qemu is killed
	// (default 3 minutes).
	ShutdownTimeout time.Duration
}

func (b VMs) Kind() string           { return "vm" }
func (b VMs) DefaultMaxRunning() int { return 1 } // 1-2 GB and most of a core each

func (b VMs) Boot(ctx context.Context, spec LaunchSpec) (Machine, error) {
	if b.Image == nil || b.Image.Flavor != vm.Cloud {
		return nil, fmt.Errorf("localcloud: the VM backend needs a Cloud image (vm.BuildCloudImage)")
	}
	seed := filepath.Join(spec.Dir, "seed")
	if _, err := os.Stat(seed); os.IsNotExist(err) {
		if err := writeSeed(seed, spec); err != nil {
			return nil, err
		}
	}
	mem := spec.MemoryMB
	if b.MemoryMB > 0 {
		mem = b.MemoryMB
	}
	if mem < 512 {
		mem = 1024
	}
	// The VM's own forwards live in 127.0.1.N, apart from the public
	// addresses (127.0.0.N): an address an instance gave up never leads to
	// its VM past the relay.
	v, err := vm.Boot(ctx, b.Image, vm.Options{
		Name: spec.InstanceID, MemoryMB: mem, NoWait: true, AddrNet: backendNet,
		Overlay: filepath.Join(spec.Dir, "disk.qcow2"), DiskGB: spec.DiskGB, Seed: seed,
		Logf: spec.Logf,
	})
	if err != nil {
		return nil, err
	}
	return &vmMachine{v: v}, nil
}

func (b VMs) Remove(spec LaunchSpec) error {
	return os.RemoveAll(filepath.Join(spec.Dir, "disk.qcow2"))
}

// backendNet is the /24 the VMs' forwards are taken from.
const backendNet = "127.0.1"

type vmMachine struct{ v *vm.VM }

func (m *vmMachine) Addr() string { return m.v.Addr }

func (m *vmMachine) Console() string {
	s, _ := m.v.SerialLog()
	return s
}

func (m *vmMachine) Stop(ctx context.Context, timeout time.Duration) error {
	_, err := m.v.Shutdown(ctx, timeout)
	return err
}

func (m *vmMachine) Kill() error { return m.v.Close() }

func (m *vmMachine) Off() <-chan struct{} { return m.v.Exited() }
