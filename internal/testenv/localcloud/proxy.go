package localcloud

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// answer is moto's (or the proxy's own) HTTP answer to one call.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// call is one EC2 query-protocol request.
type call struct {
	r      *http.Request
	body   []byte
	form   url.Values
	action string
}

// serve is the proxy: EC2 calls are acted on, everything else (SSM, STS,
// moto's own API) goes to moto untouched.
func (c *Cloud) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cl := &call{r: r, body: body}
	if r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") == "" &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Version") == "2016-11-15" {
			cl.form, cl.action = form, form.Get("Action")
		}
	}
	var ans *answer
	if cl.action == "" {
		ans, err = c.forward(cl)
	} else {
		ans, err = c.ec2Call(r.Context(), cl)
	}
	if err != nil {
		c.logf("localcloud: %s: %v", cl.action, err)
		http.Error(w, "localcloud: "+err.Error(), http.StatusBadGateway)
		return
	}
	for k, vs := range ans.header {
		if strings.EqualFold(k, "Content-Length") {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(ans.body)))
	w.WriteHeader(ans.status)
	_, _ = w.Write(ans.body)
}

// forward sends the call to moto as it is (with cl.body, which a handler
// may have changed).
func (c *Cloud) forward(cl *call) (*answer, error) {
	req, err := http.NewRequestWithContext(cl.r.Context(), cl.r.Method, c.Moto.Endpoint()+cl.r.URL.RequestURI(), bytes.NewReader(cl.body))
	if err != nil {
		return nil, err
	}
	req.Header = cl.r.Header.Clone()
	req.Header.Del("Content-Length")
	req.Header.Del("Accept-Encoding") // answers are rewritten as text
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("forward to moto: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read moto's answer: %w", err)
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// ec2Error is an answer in EC2's error format.
func ec2Error(status int, code, format string, args ...any) *answer {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<Response><Errors><Error><Code>")
	b.WriteString(code)
	b.WriteString("</Code><Message>")
	msg := fmt.Sprintf(format, args...)
	b.WriteString(strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(msg))
	b.WriteString("</Message></Error></Errors><RequestID>localcloud</RequestID></Response>")
	return &answer{status: status, header: http.Header{"Content-Type": {"text/xml"}}, body: b.Bytes()}
}

// ec2Call handles one EC2 call: checks EC2 would make that moto does not,
// then moto, then what the call does to the backends, then the answer's
// rewrite.
func (c *Cloud) ec2Call(ctx context.Context, cl *call) (*answer, error) {
	if refusal := c.refuse(ctx, cl); refusal != nil {
		c.logf("localcloud: %s refused: %s", cl.action, refusal.body)
		return refusal, nil
	}
	if cl.action == "DescribeInstances" {
		c.translateFilters(cl)
	}
	var release func()
	if cl.action == "AllocateAddress" {
		var refusal *answer
		if release, refusal = c.allocateAddress(cl); refusal != nil {
			return refusal, nil
		}
	}
	ans, err := c.forward(cl)
	if err != nil || ans.status != http.StatusOK {
		if release != nil {
			release()
		}
		return ans, err
	}
	tree, err := parseXML(ans.body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cl.action, err)
	}
	switch cl.action {
	case "RunInstances":
		c.launched(ctx, cl, tree)
	case "StopInstances":
		c.acted(ctx, tree, phaseStopping, "stop", func(i *Instance) func(context.Context) error { return i.stop })
	case "StartInstances":
		c.acted(ctx, tree, phasePending, "start", func(i *Instance) func(context.Context) error { return i.boot })
	case "TerminateInstances":
		c.acted(ctx, tree, phaseShuttingDown, "terminate", func(i *Instance) func(context.Context) error { return i.terminate })
	case "AllocateAddress":
		c.mu.Lock()
		c.allocIDs[tree.childText("allocationId")] = tree.childText("publicIp")
		c.mu.Unlock()
	case "AssociateAddress", "DisassociateAddress":
		c.syncAll(ctx)
	case "ReleaseAddress":
		c.released(cl)
		c.syncAll(ctx)
	case "GetConsoleOutput":
		c.consoleAnswer(tree)
	}
	c.rewrite(tree)
	ans.body = writeXML(tree)
	return ans, nil
}

// refuse returns EC2's answer to a call EC2 would refuse and moto would
// not, or nil.
func (c *Cloud) refuse(ctx context.Context, cl *call) *answer {
	ids := listParam(cl.form, "InstanceId")
	switch cl.action {
	case "RunInstances":
		n, _ := strconv.Atoi(cl.form.Get("MinCount"))
		if n < 1 {
			n = 1
		}
		if r := c.running(); r+n > c.opts.MaxRunning {
			return ec2Error(http.StatusInternalServerError, "InsufficientInstanceCapacity",
				"We currently do not have sufficient %s capacity: the local cloud runs at most %d instances at once (%d run; localcloud.Options.MaxRunning).",
				cl.form.Get("InstanceType"), c.opts.MaxRunning, r)
		}
	case "StartInstances":
		starting := 0
		for _, id := range ids {
			i := c.Instance(id)
			if i == nil {
				continue
			}
			switch p := i.Phase(); p {
			case phaseStopping, phaseShuttingDown:
				return ec2Error(http.StatusBadRequest, "IncorrectInstanceState",
					"The instance '%s' is not in a state from which it can be started.", id)
			}
			if !i.Running() {
				starting++
			}
		}
		if r := c.running(); starting > 0 && r+starting > c.opts.MaxRunning {
			return ec2Error(http.StatusInternalServerError, "InsufficientInstanceCapacity",
				"Insufficient capacity: the local cloud runs at most %d instances at once (%d run; localcloud.Options.MaxRunning).", c.opts.MaxRunning, r)
		}
	case "StopInstances":
		for _, id := range ids {
			if i := c.Instance(id); i != nil && i.Phase() != "" && i.Phase() != phaseStopping {
				return ec2Error(http.StatusBadRequest, "IncorrectInstanceState",
					"The instance '%s' is not in a state from which it can be stopped.", id)
			}
		}
	case "GetConsoleOutput":
		if c.opts.LatestConsoleUnsupported && cl.form.Get("Latest") == "true" {
			return ec2Error(http.StatusBadRequest, "UnsupportedOperation",
				"The instance type does not support retrieving the latest console output.")
		}
	}
	return nil
}

// translateFilters makes DescribeInstances filters on public addresses
// (ip-address, dns-name) match the addresses the cloud shows, which moto
// knows by its own made-up ones.
func (c *Cloud) translateFilters(cl *call) {
	toMoto := map[string]string{}
	for _, i := range c.Instances() {
		i.mu.Lock()
		if i.public != "" && i.motoIP != "" && i.public != i.motoIP {
			toMoto[i.public] = i.motoIP
			toMoto[strings.ReplaceAll(i.public, ".", "-")] = strings.ReplaceAll(i.motoIP, ".", "-")
		}
		i.mu.Unlock()
	}
	changed := false
	for n := 1; cl.form.Get(fmt.Sprintf("Filter.%d.Name", n)) != ""; n++ {
		name := cl.form.Get(fmt.Sprintf("Filter.%d.Name", n))
		if name != "ip-address" && name != "dns-name" {
			continue
		}
		for m := 1; ; m++ {
			key := fmt.Sprintf("Filter.%d.Value.%d", n, m)
			v := cl.form.Get(key)
			if v == "" {
				break
			}
			for local, moto := range toMoto {
				if (name == "ip-address" && v == local) || (name == "dns-name" && strings.Contains(v, local) && strings.Count(local, "-") == 3) {
					cl.form.Set(key, strings.Replace(v, local, moto, 1))
					changed = true
				}
			}
		}
	}
	if changed {
		cl.body = []byte(cl.form.Encode())
	}
}

// allocateAddress puts every Elastic IP on loopback: without Address, it
// picks a free 127.0.0.N and adds it to the call; an Address that is not
// loopback is refused (tests never dial anything else). It returns the
// release of the address, to call if moto refuses.
func (c *Cloud) allocateAddress(cl *call) (func(), *answer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	addr := cl.form.Get("Address")
	if addr != "" {
		if ip := net.ParseIP(addr); ip == nil || !ip.IsLoopback() {
			return nil, ec2Error(http.StatusBadRequest, "InvalidParameterValue",
				"localcloud: Elastic IPs are loopback addresses here (127.0.0.0/8), not %s", addr)
		}
		if c.addrs[addr] != nil {
			return nil, nil // moto answers whether it is already allocated
		}
	}
	a, err := c.reserveAddr(addr, nil, true)
	if err != nil {
		return nil, ec2Error(http.StatusBadRequest, "AddressLimitExceeded", "%v", err)
	}
	if addr == "" {
		cl.form.Set("Address", a.ip)
		cl.body = []byte(cl.form.Encode())
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		a.close()
		delete(c.addrs, a.ip)
	}, nil
}

// released frees an Elastic IP moto has released.
func (c *Cloud) released(cl *call) {
	ip := cl.form.Get("PublicIp")
	if alloc := cl.form.Get("AllocationId"); ip == "" && alloc != "" {
		c.mu.Lock()
		ip = c.allocIDs[alloc]
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.addrs[ip]; a != nil && a.eip {
		a.close()
		delete(c.addrs, ip)
	}
}

// launched registers the instances moto has just launched and boots their
// backends in the background.
func (c *Cloud) launched(ctx context.Context, cl *call, tree *node) {
	userData, err := base64.StdEncoding.DecodeString(cl.form.Get("UserData"))
	if err != nil {
		c.logf("localcloud: RunInstances: UserData is not base64 (%v): the instances get none", err)
		userData = nil
	}
	diskGB, _ := strconv.Atoi(cl.form.Get("BlockDeviceMapping.1.Ebs.VolumeSize"))
	keys := c.publicKeys(ctx, cl.form.Get("KeyName"))
	mem := c.memoryMB(ctx, cl.form.Get("InstanceType"))
	for _, item := range tree.instances() {
		spec := LaunchSpec{
			InstanceID:   item.childText("instanceId"),
			InstanceType: item.childText("instanceType"),
			Hostname:     strings.SplitN(item.childText("privateDnsName"), ".", 2)[0],
			PrivateIP:    item.childText("privateIpAddress"),
			PublicKeys:   keys,
			UserData:     userData,
			VendorData:   c.opts.VendorData,
			MemoryMB:     mem,
			DiskGB:       diskGB,
		}
		if spec.Hostname == "" {
			spec.Hostname = spec.InstanceID
		}
		i := c.newInstance(spec)
		c.reconcile(i, item.childText("ipAddress"))
		c.logf("localcloud: instance %s launched (%s, key %q, %d bytes of user-data): booting a %s", i.ID, spec.InstanceType,
			cl.form.Get("KeyName"), len(userData), c.opts.Backend.Kind())
		i.background("boot", i.boot)
	}
}

// acted starts a backend operation for each instance in a Stop, Start or
// Terminate answer, and shows the transitional state.
func (c *Cloud) acted(ctx context.Context, tree *node, phase, what string, op func(*Instance) func(context.Context) error) {
	for _, item := range tree.instances() {
		i := c.Instance(item.childText("instanceId"))
		if i == nil {
			continue
		}
		prev := item.child("previousState")
		if what == "start" && prev != nil && prev.childText("name") == "running" && i.Running() {
			continue // already running: nothing to do
		}
		if what == "stop" && !i.Running() && i.Phase() == "" {
			continue
		}
		i.setPhase(phase)
		i.background(what, op(i))
	}
	c.syncAll(ctx)
}

// consoleAnswer replaces moto's fixed boot log with the instance's own
// console (the last 64 KB, as EC2), or none before the delay.
func (c *Cloud) consoleAnswer(tree *node) {
	i := c.Instance(tree.childText("instanceId"))
	tree.remove("output")
	if i == nil {
		return
	}
	c.mu.Lock()
	delay, forged := c.consoleDelay, c.consoleKeys
	c.mu.Unlock()
	text := i.consoleOutput(delay)
	if forged != nil {
		text = replaceHostKeys(text, forged)
	}
	if len(text) > 64<<10 {
		text = text[len(text)-64<<10:]
	}
	if text != "" {
		tree.children = append(tree.children, &node{name: "output", text: base64.StdEncoding.EncodeToString([]byte(text))})
	}
	if ts := tree.child("timestamp"); ts != nil {
		ts.text = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	}
}

// publicKeys returns a key pair's public key ("" name: none).
func (c *Cloud) publicKeys(ctx context.Context, name string) []string {
	if name == "" {
		return nil
	}
	out, err := c.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{KeyNames: []string{name}, IncludePublicKey: aws.Bool(true)})
	if err != nil || len(out.KeyPairs) == 0 {
		c.logf("localcloud: key pair %s: %v: the instance gets no key", name, err)
		return nil
	}
	return []string{aws.ToString(out.KeyPairs[0].PublicKey)}
}

// memoryMB is the instance type's memory, from moto's real table.
func (c *Cloud) memoryMB(ctx context.Context, instanceType string) int {
	out, err := c.ec2.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{ec2types.InstanceType(instanceType)}})
	if err != nil || len(out.InstanceTypes) == 0 || out.InstanceTypes[0].MemoryInfo == nil {
		return 0
	}
	return int(aws.ToInt64(out.InstanceTypes[0].MemoryInfo.SizeInMiB))
}

// publicNames are the elements of EC2 answers that carry public addresses.
var publicNames = map[string]bool{"ipAddress": true, "publicIp": true, "dnsName": true, "publicDnsName": true, "carrierIp": true, "customerOwnedIp": true}

// ipInText finds an IPv4 address in dotted or dashed form (as in a DNS
// name, ec2-54-1-2-3.compute-1.amazonaws.com: not the 2 of "ec2").
var ipInText = regexp.MustCompile(`(?:^|[^0-9A-Za-z])(\d{1,3})[.-](\d{1,3})[.-](\d{1,3})[.-](\d{1,3})(?:$|[^0-9])`)

// rewrite shows each instance's own public address instead of moto's, its
// transitional state while its backend works, and removes any public
// address that would still not be loopback.
func (c *Cloud) rewrite(tree *node) {
	for _, item := range tree.instances() {
		i := c.Instance(item.childText("instanceId"))
		if i == nil {
			continue
		}
		if item.child("instanceState") != nil { // DescribeInstances, RunInstances
			c.reconcile(i, item.childText("ipAddress"))
		}
		i.mu.Lock()
		motoIP, public, phase := i.motoIP, i.public, i.phase
		i.mu.Unlock()
		if motoIP != "" && motoIP != public {
			replaceAddr(item, motoIP, public)
		}
		if phase != "" {
			for _, name := range []string{"instanceState", "currentState"} {
				if st := item.child(name); st != nil {
					setState(st, phase)
				}
			}
		}
	}
	tree.walk(func(e *node) {
		if !publicNames[e.name] || e.text == "" {
			return
		}
		for _, m := range ipInText.FindAllStringSubmatch(e.text, -1) {
			if m[1] != "127" {
				c.logf("localcloud: removed a non-loopback public address from %s: %q", e.name, e.text)
				e.text = ""
				return
			}
		}
	})
}

// replaceAddr puts public in place of moto's address in an instance's
// answer, in dotted (ipAddress, publicIp) and dashed (DNS names) form; with
// no public address those elements go empty.
func replaceAddr(item *node, motoIP, public string) {
	dashed, newDashed := strings.ReplaceAll(motoIP, ".", "-"), strings.ReplaceAll(public, ".", "-")
	item.walk(func(e *node) {
		if !publicNames[e.name] {
			return
		}
		switch {
		case e.text == motoIP:
			e.text = public
		case strings.Contains(e.text, dashed) && public == "":
			e.text = ""
		case strings.Contains(e.text, dashed):
			e.text = strings.ReplaceAll(e.text, dashed, newDashed)
		}
	})
}

func setState(st *node, name string) {
	if n := st.child("name"); n != nil {
		n.text = name
	}
	if n := st.child("code"); n != nil {
		n.text = stateCodes[name]
	}
}

// listParam reads a query-protocol list (Name.1, Name.2, ...).
func listParam(form url.Values, name string) []string {
	var out []string
	for n := 1; ; n++ {
		v := form.Get(name + "." + strconv.Itoa(n))
		if v == "" {
			return out
		}
		out = append(out, v)
	}
}

// replaceHostKeys puts keys in place of the lines of every SSH HOST KEY
// KEYS block of a console text.
func replaceHostKeys(text string, keys []string) string {
	const begin, end = "-----BEGIN SSH HOST KEY KEYS-----", "-----END SSH HOST KEY KEYS-----"
	var out strings.Builder
	for {
		i := strings.Index(text, begin)
		if i < 0 {
			break
		}
		j := strings.Index(text[i:], end)
		if j < 0 {
			break
		}
		out.WriteString(text[:i+len(begin)])
		out.WriteString("\r\n")
		for _, k := range keys {
			out.WriteString(strings.TrimSpace(k) + "\r\n")
		}
		text = text[i+j:]
		out.WriteString(text[:len(end)])
		text = text[len(end):]
	}
	out.WriteString(text)
	return out.String()
}
