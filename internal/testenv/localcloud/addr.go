package localcloud

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kafkaup/kafkaup/internal/testenv/vm"
)

// publicAddr is a public IPv4 address of the cloud: a 127.0.0.N held
// against every other test on this machine, with a relay on each of
// Options.Ports to the machine of the instance that owns it.
type publicAddr struct {
	ip      string
	eip     bool // an Elastic IP (kept until ReleaseAddress), not an instance's auto-assigned address
	release func()
	lns     []net.Listener
	owner   string // the instance it reaches (guarded by Cloud.mu)

	closeOnce sync.Once
}

// closeRelays stops the address's relays; it stays reserved.
func (a *publicAddr) closeRelays() {
	for _, ln := range a.lns {
		ln.Close()
	}
	a.lns = nil
}

func (a *publicAddr) close() {
	a.closeOnce.Do(func() {
		a.closeRelays()
		a.release()
	})
}

// reserveAddr takes a public address (fixed, or any free one not in
// avoid) and starts its relays. The caller holds c.mu.
func (c *Cloud) reserveAddr(fixed string, avoid map[string]bool, eip bool) (*publicAddr, error) {
	a := &publicAddr{ip: fixed, eip: eip}
	var err error
	if fixed != "" {
		a.release, err = vm.ReserveLoopbackAt(fixed, c.opts.Ports)
	} else {
		a.ip, a.release, err = vm.ReserveLoopback(c.opts.Ports, avoid)
	}
	if err != nil {
		return nil, fmt.Errorf("localcloud: public address: %w", err)
	}
	if err := c.listen(a); err != nil {
		return nil, err
	}
	return a, nil
}

// listen starts the address's relays and records it as in use; on error
// the address is given back. The caller holds c.mu.
func (c *Cloud) listen(a *publicAddr) error {
	for _, p := range c.opts.Ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(a.ip, strconv.Itoa(p)))
		if err != nil {
			a.close()
			return fmt.Errorf("localcloud: public address %s: %w", a.ip, err)
		}
		a.lns = append(a.lns, ln)
		go c.accept(a, ln, p)
	}
	c.addrs[a.ip] = a
	return nil
}

// releaseAuto gives up instance i's auto-assigned address. The caller
// holds c.mu and i.mu.
func (c *Cloud) releaseAuto(i *Instance) {
	if i.auto == nil {
		return
	}
	delete(c.addrs, i.auto.ip)
	if c.opts.RecycleAddresses {
		// EC2 keeps a given-up address in its pool for a later instance:
		// it stays held against other tests on this machine (which would
		// otherwise take it meanwhile); only its relays stop.
		i.auto.closeRelays()
		c.held[i.auto.ip] = i.auto
	} else {
		i.auto.close()
	}
	c.recycled = append(c.recycled, i.auto.ip)
	i.auto = nil
}

// reserveAuto takes a new auto-assigned address for an instance, not one
// in avoid: with Options.RecycleAddresses the last one given up that is
// free again, else a free one no instance gave up (any free one when
// there is none). The caller holds c.mu.
func (c *Cloud) reserveAuto(avoid map[string]bool) (*publicAddr, error) {
	if c.opts.RecycleAddresses {
		for n := len(c.recycled) - 1; n >= 0; n-- {
			ip := c.recycled[n]
			if avoid[ip] || c.addrs[ip] != nil {
				continue
			}
			if a := c.held[ip]; a != nil {
				delete(c.held, ip)
				if err := c.listen(a); err != nil {
					continue
				}
				c.recycled = append(c.recycled[:n], c.recycled[n+1:]...)
				c.logf("localcloud: public address %s recycled", ip)
				return a, nil
			}
			if a, err := c.reserveAddr(ip, nil, false); err == nil {
				c.recycled = append(c.recycled[:n], c.recycled[n+1:]...)
				c.logf("localcloud: public address %s recycled", ip)
				return a, nil
			}
		}
		return c.reserveAddr("", avoid, false)
	}
	// EC2's pool is large: a new address is not one another instance gave
	// up a moment ago (a replaced node's), while others are free.
	fresh := maps.Clone(avoid)
	for _, ip := range c.recycled {
		fresh[ip] = true
	}
	if a, err := c.reserveAddr("", fresh, false); err == nil {
		return a, nil
	}
	return c.reserveAddr("", avoid, false)
}

// reconcile makes instance i's public address match what moto reports
// (motoIP: its ipAddress, "" for none). An Elastic IP associated with it
// wins, running or stopped, as on EC2 (moto drops it at a stop and puts a
// made-up address in its place at a start). A loopback address is an
// Elastic IP too (the cloud allocates them there); any other is moto's
// made-up auto-assigned address, which the instance gets a 127.0.0.N of
// the cloud's for: a new one whenever moto assigns a new one (each start).
func (c *Cloud) reconcile(i *Instance, motoIP string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i.mu.Lock()
	defer i.mu.Unlock()
	want := ""
	eip := c.eipOf[i.ID]
	switch ip := net.ParseIP(motoIP); {
	case eip != "":
		c.releaseAuto(i)
		if c.addrs[eip] == nil {
			if _, err := c.reserveAddr(eip, nil, true); err != nil {
				c.logf("localcloud: instance %s: Elastic IP %s: %v", i.ID, eip, err)
			}
		}
		want = eip
	case ip != nil && ip.IsLoopback():
		c.releaseAuto(i)
		if c.addrs[motoIP] == nil {
			if _, err := c.reserveAddr(motoIP, nil, true); err != nil {
				c.logf("localcloud: instance %s: Elastic IP %s: %v", i.ID, motoIP, err)
			}
		}
		want = motoIP
	case motoIP != "":
		if i.auto == nil || i.motoIP != motoIP {
			c.releaseAuto(i)
			a, err := c.reserveAuto(map[string]bool{i.prevPublic: true, i.public: true})
			if err != nil {
				c.logf("localcloud: instance %s: %v", i.ID, err)
				break
			}
			i.auto = a
		}
		want = i.auto.ip
	default:
		c.releaseAuto(i)
	}
	i.motoIP = motoIP
	if i.public != want {
		if i.public != "" {
			i.prevPublic = i.public
		}
		i.public = want
		c.logf("localcloud: instance %s: public address %q", i.ID, want)
	}
	for _, a := range c.addrs {
		if a.owner == i.ID && a.ip != want {
			a.owner = ""
		}
	}
	if a := c.addrs[want]; a != nil {
		a.owner = i.ID
	}
}

// syncAll reconciles every live instance with moto's view (after calls
// that move addresses: associate, disassociate, release, stop, start).
func (c *Cloud) syncAll(ctx context.Context) {
	addrs, err := c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if err != nil {
		c.logf("localcloud: sync with moto: %v", err)
		return
	}
	eipOf := map[string]string{}
	for _, a := range addrs.Addresses {
		if id := aws.ToString(a.InstanceId); id != "" {
			eipOf[id] = aws.ToString(a.PublicIp)
		}
	}
	c.mu.Lock()
	c.eipOf = eipOf
	c.mu.Unlock()
	var ids []string
	for _, i := range c.Instances() {
		ids = append(ids, i.ID)
	}
	if len(ids) == 0 {
		return
	}
	out, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		c.logf("localcloud: sync with moto: %v", err)
		return
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if i := c.Instance(aws.ToString(in.InstanceId)); i != nil {
				c.reconcile(i, aws.ToString(in.PublicIpAddress))
			}
		}
	}
}

func (c *Cloud) accept(a *publicAddr, ln net.Listener, port int) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go c.relay(a, conn, port)
	}
}

// relay forwards one connection to the owning instance's machine: closed
// when nothing runs behind the address, held silent when no security
// group rule allows it (what a dropped SYN looks like from the client:
// nothing, until its timeout).
func (c *Cloud) relay(a *publicAddr, conn net.Conn, port int) {
	c.mu.Lock()
	i := c.instances[a.owner]
	c.mu.Unlock()
	var backend string
	if i != nil {
		backend = i.BackendAddr()
	}
	if backend == "" {
		conn.Close()
		return
	}
	if !c.opts.IgnoreSecurityGroups {
		src := conn.RemoteAddr().(*net.TCPAddr).IP
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok, why := c.allowed(ctx, i.ID, port, src)
		cancel()
		if !ok {
			c.logf("localcloud: %s:%d (instance %s): connection from %s dropped: %s", a.ip, port, i.ID, src, why)
			blackhole(conn)
			return
		}
	}
	back, err := net.DialTimeout("tcp", net.JoinHostPort(backend, strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		conn.Close()
		return
	}
	pipe(conn, back)
}

// blackhole keeps a connection open and silent for 5 minutes, reading
// and dropping what the client sends.
func blackhole(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
}

// pipe copies both ways until both directions are done.
func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// allowed says whether a security group of instance id has a rule for TCP
// port from src, as EC2's stateful firewall would decide.
func (c *Cloud) allowed(ctx context.Context, id string, port int, src net.IP) (bool, string) {
	out, err := c.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return false, fmt.Sprintf("describe the instance: %v", err)
	}
	// A launch with network interfaces names the groups there (moto then
	// leaves the instance's own list empty).
	var groups []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			groups = append(groups, id)
		}
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			for _, g := range in.SecurityGroups {
				add(aws.ToString(g.GroupId))
			}
			for _, ni := range in.NetworkInterfaces {
				for _, g := range ni.Groups {
					add(aws.ToString(g.GroupId))
				}
			}
		}
	}
	if len(groups) == 0 {
		return false, "the instance has no security group"
	}
	sgs, err := c.ec2.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: groups})
	if err != nil {
		return false, fmt.Sprintf("describe security groups %v: %v", groups, err)
	}
	for _, g := range sgs.SecurityGroups {
		for _, p := range g.IpPermissions {
			proto := aws.ToString(p.IpProtocol)
			if proto != "tcp" && proto != "6" && proto != "-1" {
				continue
			}
			if proto != "-1" && (int32(port) < aws.ToInt32(p.FromPort) || int32(port) > aws.ToInt32(p.ToPort)) {
				continue
			}
			for _, r := range p.IpRanges {
				if _, n, err := net.ParseCIDR(aws.ToString(r.CidrIp)); err == nil && n.Contains(src) {
					return true, ""
				}
			}
			for _, r := range p.Ipv6Ranges {
				if _, n, err := net.ParseCIDR(aws.ToString(r.CidrIpv6)); err == nil && n.Contains(src) {
					return true, ""
				}
			}
		}
	}
	return false, fmt.Sprintf("no ingress rule of %v allows tcp/%d from %s", groups, port, src)
}
