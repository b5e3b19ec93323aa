package localcloud

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kafkaup/kafkaup/internal/testenv/nshost"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
)

// Transitional states the cloud shows while a backend works, where moto
// has already moved on (moto's instances are running, stopped or
// terminated at once).
const (
	phasePending      = "pending"       // booting the backend's machine
	phaseStopping     = "stopping"      // orderly power-off in progress
	phaseShuttingDown = "shutting-down" // termination in progress
)

// stateCodes are EC2's codes for state names.
var stateCodes = map[string]string{"pending": "0", "running": "16", "shutting-down": "32", "terminated": "48", "stopping": "64", "stopped": "80"}

// Instance is an instance launched through the cloud.
type Instance struct {
	ID string

	c    *Cloud
	spec LaunchSpec
	opMu sync.Mutex // one backend operation at a time

	mu          sync.Mutex
	phase       string // a transitional state, or "" when moto's state is the truth
	machine     Machine
	halting     Machine // the machine the cloud is powering off (Stop, Kill)
	bootedAt    time.Time
	boots       int
	lastConsole string // the console of the last boot, once it ended
	err         error  // the last backend failure
	motoIP      string // moto's made-up public address, never shown
	public      string // the public address (a loopback address of the cloud)
	prevPublic  string
	auto        *publicAddr // the auto-assigned public address, if any
}

// PublicAddr is the instance's public IP address now ("" while it has
// none: stopped, terminated).
func (i *Instance) PublicAddr() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.public
}

// Phase is the transitional state the cloud shows while the backend works
// (pending, stopping, shutting-down), or "" once settled.
func (i *Instance) Phase() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.phase
}

// Running reports whether the instance's machine is powered on.
func (i *Instance) Running() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.machine != nil
}

// Err is the last backend failure (a boot that failed terminates the
// instance, as EC2 does when it cannot start one).
func (i *Instance) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// Boots counts the instance's boots (1 after launch, 2 after a stop and
// start).
func (i *Instance) Boots() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.boots
}

// Spec is what the instance was launched with.
func (i *Instance) Spec() LaunchSpec { return i.spec }

// Console is the instance's console output now, whatever the delay: the
// running boot's, else the last boot's.
func (i *Instance) Console() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.machine != nil {
		return i.machine.Console()
	}
	return i.lastConsole
}

// consoleOutput is what GetConsoleOutput shows: the running boot's
// console once delay has passed since it began; before that, the last
// boot's (empty after a launch).
func (i *Instance) consoleOutput(delay time.Duration) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.machine != nil && time.Since(i.bootedAt) >= delay {
		return i.machine.Console()
	}
	return i.lastConsole
}

// BackendAddr is where the machine's ports are on this machine (only the
// relays dial it); "" while powered off.
func (i *Instance) BackendAddr() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.machine == nil {
		return ""
	}
	return i.machine.Addr()
}

// NamespaceHost is the instance's namespace host while it runs (root login
// for tests: Host.Run), or nil.
func (i *Instance) NamespaceHost() *nshost.Host {
	i.mu.Lock()
	defer i.mu.Unlock()
	if m, ok := i.machine.(*nsMachine); ok {
		return m.h
	}
	return nil
}

// VM is the instance's VM while it runs, or nil.
func (i *Instance) VM() *vm.VM {
	i.mu.Lock()
	defer i.mu.Unlock()
	if m, ok := i.machine.(*vmMachine); ok {
		return m.v
	}
	return nil
}

// WaitIdle waits until no backend operation is in flight.
func (i *Instance) WaitIdle(ctx context.Context) error {
	for i.Phase() != "" {
		select {
		case <-ctx.Done():
			return fmt.Errorf("instance %s still %s: %w", i.ID, i.Phase(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (i *Instance) setPhase(p string) {
	i.mu.Lock()
	i.phase = p
	i.mu.Unlock()
}

// background runs a backend operation after the call that asked for it
// has been answered, one at a time per instance, then settles the phase.
func (i *Instance) background(what string, op func(ctx context.Context) error) {
	i.c.wg.Add(1)
	go func() {
		defer i.c.wg.Done()
		i.opMu.Lock()
		defer i.opMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		begin := time.Now()
		err := op(ctx)
		i.mu.Lock()
		i.phase = ""
		if err != nil {
			i.err = fmt.Errorf("%s: %w", what, err)
		}
		i.mu.Unlock()
		if err != nil {
			i.c.logf("localcloud: instance %s: %s failed after %s: %v", i.ID, what, time.Since(begin).Round(100*time.Millisecond), err)
			return
		}
		i.c.logf("localcloud: instance %s: %s in %s", i.ID, what, time.Since(begin).Round(100*time.Millisecond))
	}()
}

// boot powers the machine on (launch or start). A failed boot terminates
// the instance in moto, as EC2 does with one it could not start.
func (i *Instance) boot(ctx context.Context) error {
	if err := os.MkdirAll(i.spec.Dir, 0o755); err != nil {
		return err
	}
	m, err := i.c.opts.Backend.Boot(ctx, i.spec)
	if err != nil {
		if _, terr := i.c.ec2.TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{i.ID}}); terr != nil {
			i.c.logf("localcloud: instance %s: terminate after a failed boot: %v", i.ID, terr)
		}
		i.c.syncAll(context.Background())
		return fmt.Errorf("%w (the instance is terminated)", err)
	}
	i.mu.Lock()
	i.machine, i.bootedAt = m, time.Now()
	i.boots++
	i.mu.Unlock()
	go i.watch(m)
	return nil
}

// watch notices a machine that goes off by itself (a shutdown from inside,
// its process killed): EC2 then stops the instance (the default shutdown
// behaviour), and so does the cloud.
func (i *Instance) watch(m Machine) {
	<-m.Off()
	i.mu.Lock()
	mine := i.machine == m && i.halting != m
	i.mu.Unlock()
	if !mine {
		return
	}
	i.opMu.Lock()
	defer i.opMu.Unlock()
	i.mu.Lock()
	if i.machine != m {
		i.mu.Unlock()
		return
	}
	i.lastConsole, i.machine = m.Console(), nil
	i.mu.Unlock()
	_ = m.Kill() // frees what the machine held (addresses, slot)
	i.c.logf("localcloud: instance %s: its machine went off by itself (a shutdown from inside, or its process was killed): stopped, as EC2 does", i.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := i.c.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{i.ID}}); err != nil {
		i.c.logf("localcloud: instance %s: stop in moto: %v", i.ID, err)
	}
	i.c.syncAll(ctx)
}

// stop powers the machine off in an orderly way, keeping its disk.
func (i *Instance) stop(ctx context.Context) error {
	i.mu.Lock()
	m := i.machine
	i.mu.Unlock()
	if m == nil {
		return nil
	}
	timeout := 3 * time.Minute
	if v, ok := i.c.opts.Backend.(VMs); ok && v.ShutdownTimeout > 0 {
		timeout = v.ShutdownTimeout
	}
	i.mu.Lock()
	i.halting = m
	i.mu.Unlock()
	err := m.Stop(ctx, timeout)
	i.mu.Lock()
	i.lastConsole, i.machine = m.Console(), nil
	i.mu.Unlock()
	return err
}

// terminate powers the machine off at once and deletes its disk.
func (i *Instance) terminate(ctx context.Context) error {
	i.mu.Lock()
	m := i.machine
	i.mu.Unlock()
	var err error
	if m != nil {
		i.mu.Lock()
		i.halting = m
		i.mu.Unlock()
		err = m.Kill()
		i.mu.Lock()
		i.lastConsole, i.machine = m.Console(), nil
		i.mu.Unlock()
	}
	if rerr := i.c.opts.Backend.Remove(i.spec); rerr != nil && err == nil {
		err = rerr
	}
	if rerr := os.RemoveAll(i.spec.Dir); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// destroy terminates the backend now (Close, Reset), after any operation
// in flight.
func (i *Instance) destroy(ctx context.Context) error {
	i.opMu.Lock()
	defer i.opMu.Unlock()
	if err := i.terminate(ctx); err != nil {
		return fmt.Errorf("instance %s: %w", i.ID, err)
	}
	i.c.mu.Lock()
	i.mu.Lock()
	i.c.releaseAuto(i)
	i.public = ""
	i.mu.Unlock()
	i.c.mu.Unlock()
	return nil
}

// newInstance registers an instance moto has just launched.
func (c *Cloud) newInstance(spec LaunchSpec) *Instance {
	spec.Dir = filepath.Join(c.dir, spec.InstanceID)
	spec.Logf = c.logf
	i := &Instance{ID: spec.InstanceID, c: c, spec: spec, phase: phasePending}
	c.mu.Lock()
	c.instances[i.ID] = i
	c.mu.Unlock()
	return i
}

// running counts the instances that run or are being booted.
func (c *Cloud) running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, i := range c.instances {
		i.mu.Lock()
		if i.machine != nil || i.phase == phasePending {
			n++
		}
		i.mu.Unlock()
	}
	return n
}
