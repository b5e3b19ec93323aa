package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kafkaup/kafkaup/provision"
)

// TestAllow: kafkaup allow adds CIDRs (or this machine's IP) on the
// broker's ports and records the result, which create then keeps;
// --revoke takes them out; mistakes are usage errors.
func TestAllow(t *testing.T) {
	f := newFakes(t)
	t.Setenv("HOME", t.TempDir())
	on := true
	o := createOptions()
	o.Overrides.Metrics = &on
	if _, err := Create(context.Background(), f.env, o); err != nil {
		t.Fatal(err)
	}
	f.env.CallerIP = func(context.Context) (string, error) { return "203.0.113.99", nil }
	out, err := Allow(context.Background(), f.env, AllowOptions{Name: "demo", CIDRs: []string{"192.0.2.0/24"}, MyIP: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "[192.0.2.0/24 198.51.100.7/32 203.0.113.99/32]"
	if fmt.Sprint(out.Allowed) != want || fmt.Sprint(out.Added) != "[192.0.2.0/24 203.0.113.99/32]" || fmt.Sprint(f.cloud.allowPorts) != "[22 9092 9404]" {
		t.Errorf("allow: %+v, ports %v", out, f.cloud.allowPorts)
	}
	if rec, _ := f.store.Load("demo"); fmt.Sprint(rec.EC2.AllowCIDRs) != want {
		t.Errorf("recorded %v", rec.EC2.AllowCIDRs)
	}
	if _, err := Create(context.Background(), f.env, createOptions()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(f.cloud.lastReq.AllowCIDRs) != want {
		t.Errorf("create after allow asked for %v", f.cloud.lastReq.AllowCIDRs)
	}
	out, err = Allow(context.Background(), f.env, AllowOptions{Name: "demo", MyIP: true, Revoke: true})
	if err != nil || fmt.Sprint(out.Allowed) != "[192.0.2.0/24 198.51.100.7/32]" || fmt.Sprint(out.Revoked) != "[203.0.113.99/32]" {
		t.Errorf("revoke: %+v %v", out, err)
	}
	if out, err := Allow(context.Background(), f.env, AllowOptions{Name: "demo"}); err != nil || len(out.Allowed) != 2 {
		t.Errorf("list: %+v %v", out, err)
	}
	var ie *provision.InputError
	for _, bad := range []AllowOptions{
		{Name: "demo", CIDRs: []string{"192.0.2.1/24"}},
		{Name: "demo", CIDRs: []string{"0.0.0.0/0"}},
		{Name: "nope", CIDRs: []string{"192.0.2.0/24"}},
	} {
		if _, err := Allow(context.Background(), f.env, bad); err == nil || bad.Name == "demo" && !errors.As(err, &ie) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, err := Provision(context.Background(), f.env, ProvisionOptions{Name: "dev", Target: Target{Host: "10.0.0.5", Port: 22, User: "u"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Allow(context.Background(), f.env, AllowOptions{Name: "dev", MyIP: true}); !errors.As(err, &ie) || !strings.Contains(err.Error(), "provision --host") {
		t.Errorf("allow on a provision --host cluster: %v", err)
	}
}
