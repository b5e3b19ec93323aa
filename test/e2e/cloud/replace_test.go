package cloud_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

func (e *clusterEnv) status(ctx context.Context, t *testing.T) (harness.ClusterStatus, harness.Result) {
	t.Helper()
	return e.cli.Status(ctx, t, clusterName)
}

// instanceState is what EC2 says of instance id: its state, zone and
// private IP.
func (e *clusterEnv) instanceState(ctx context.Context, t *testing.T, id string) (state, zone, private string) {
	t.Helper()
	out, err := e.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("describe %s: %+v, %v", id, out, err)
	}
	i := out.Reservations[0].Instances[0]
	return string(i.State.Name), aws.ToString(i.Placement.AvailabilityZone), aws.ToString(i.PrivateIpAddress)
}

// replaceTerminatedNode is the EC2 node replacement on the running trio,
// with a no-loss checker producing (acks=all) throughout: node 3's broker
// is killed (SIGKILL) and its host torn down, which leaves its instance
// stopped, as EC2 does; status exits 1 naming node 3 down; node replace
// --node 3 launches a new instance in the same zone and terminates the
// old one, and the cluster is whole again: 3 voters with
// node 3's new directory id, every partition in full ISR (3 in sync),
// kcat lists 3 brokers, and no acknowledged record was lost. It returns
// the record after the replacement.
func (e *clusterEnv) replaceTerminatedNode(ctx context.Context, t *testing.T, rec trioRecord) trioRecord {
	harness.MustSucceed(t, e.cli.Run(ctx, "topics", "create", clusterName, "checked", "--partitions", "3"))
	kc, err := kafkaclient.Dial(ctx, strings.Join(rec.public(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	check, err := kafkaclient.StartCheck(ctx, kc, kafkaclient.CheckOptions{Topic: "checked"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			check.Stop(context.Background())
		}
	}()
	old := rec.Nodes[2]
	after := rec

	t.Run("node 3's host dies: status names it down", func(t *testing.T) {
		pid := e.root(t, rec, 2, `for f in /proc/[0-9]*/cmdline; do if tr '\0' ' ' <"$f" 2>/dev/null | grep -q ' kafka\.Kafka '; then p=${f#/proc/}; echo ${p%/cmdline}; fi; done | head -n 1`)
		if pid == "" {
			t.Fatal("no broker process on node 3")
		}
		e.root(t, rec, 2, "kill -9 "+pid)
		if err := e.lc.Instance(old.InstanceID).NamespaceHost().Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("node 3: broker pid %s killed (SIGKILL), its host torn down", pid)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			if st, _, _ := e.instanceState(ctx, t, old.InstanceID); st == "stopped" {
				break // as EC2 stops an instance whose machine went off
			} else if time.Now().After(deadline) {
				t.Fatalf("node 3's instance is %s a minute after its host went", st)
			}
		}
		deadline := time.Now().Add(3 * time.Minute)
		for {
			st, r := e.status(ctx, t)
			named := strings.Contains(strings.Join(st.Result.Problems, "\n"), fmt.Sprintf("node 3 (%s) is down", old.Host))
			if r.ExitCode == 1 && named && len(st.Result.Nodes) == 3 && st.Result.Nodes[2].Down && len(st.Result.Partitions.UnderReplicated) > 0 {
				text := e.cli.Run(ctx, "status", clusterName)
				if text.ExitCode != 1 || !strings.Contains(text.Stdout, "kafkaup node replace "+clusterName+" --node 3") || strings.Contains(text.Stdout, "--node 3 --host") {
					t.Errorf("status does not advise node replace without --host, with exit 1:\n%s", text)
				}
				t.Logf("status with node 3's host dead (%s, exit %d):\n%s", text.Took.Round(time.Millisecond), text.ExitCode, text.Stdout)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never named node 3 down with under-replicated partitions:\n%s", r)
			}
			time.Sleep(5 * time.Second)
		}
	})
	if t.Failed() {
		return rec
	}

	t.Run("--host is refused on an EC2 cluster", func(t *testing.T) {
		r := e.cli.Run(ctx, "node", "replace", clusterName, "--node", "3", "--host", "127.0.0.9")
		if r.ExitCode != 2 || !strings.Contains(r.Stderr, "leave out --host") {
			t.Errorf("node replace --host: %s", r)
		}
	})

	t.Run("node replace launches a new instance in the same zone", func(t *testing.T) {
		r := e.cli.Run(ctx, "node", "replace", clusterName, "--node", "3", "--console-timeout", "1m")
		harness.MustSucceed(t, r)
		t.Logf("node replace took %s:\n%s\n%s", r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
		after = e.record(t)
		n3 := after.Nodes[2]
		newState, newZone, newPrivate := e.instanceState(ctx, t, n3.InstanceID)
		oldState, oldZone, _ := e.instanceState(ctx, t, old.InstanceID)
		t.Logf("node 3: old instance %s (%s, %s), new instance %s (%s, %s), private %s -> %s", old.InstanceID, oldZone, oldState, n3.InstanceID, newZone, newState, old.InternalHost, n3.InternalHost)
		if n3.InstanceID == old.InstanceID || newState != "running" || newZone != old.Rack || n3.Rack != old.Rack || oldState != "terminated" {
			t.Errorf("new instance %s %s in %s (rack %s); old %s %s in %s", n3.InstanceID, newState, newZone, n3.Rack, old.InstanceID, oldState, oldZone)
		}
		// The private IP may be the old one again: moto (like EC2, at
		// times) hands a subnet's released address to the next instance.
		if n3.DirectoryID == old.DirectoryID || n3.InternalHost != newPrivate || n3.Host == old.Host {
			t.Errorf("recorded node 3 %+v, was %+v", n3, old)
		}
		if strings.Contains(r.Stderr, "on first use") {
			t.Errorf("the new instance's host key was trusted on first use:\n%s", r.Stderr)
		}
		for i := 0; i < 2; i++ {
			if after.Nodes[i] != rec.Nodes[i] {
				t.Errorf("node %d changed: %+v -> %+v", i+1, rec.Nodes[i], after.Nodes[i])
			}
		}
		if props := e.root(t, after, 2, "cat /etc/kafka/server.properties"); !strings.Contains(props, "broker.rack="+old.Rack) || !strings.Contains(props, "CONTROLLER://"+n3.InternalHost+":9093") {
			t.Errorf("node 3's new server.properties:\n%s", props)
		}

		st, sr := e.status(ctx, t)
		if sr.ExitCode != 0 || !st.Result.Healthy {
			t.Fatalf("status after the replacement:\n%s", sr)
		}
		voters := map[int]string{}
		for _, v := range st.Result.Quorum.Voters {
			voters[v.ID] = v.DirectoryID
		}
		if len(voters) != 3 || voters[3] != n3.DirectoryID || voters[1] != rec.Nodes[0].DirectoryID || voters[2] != rec.Nodes[1].DirectoryID {
			t.Errorf("voters %v; want nodes 1 and 2 as before and node 3 with %s", voters, n3.DirectoryID)
		}
		for _, topic := range []string{"orders", "checked"} {
			md, err := harness.Kcat(ctx, "", "-L", "-b", after.public()[0], "-t", topic, "-m", "30")
			if err != nil {
				t.Fatal(err)
			}
			parts := regexp.MustCompile(`replicas: ([0-9,]+), isrs: ([0-9,]+)`).FindAllStringSubmatch(md, -1)
			if len(parts) != 3 {
				t.Errorf("kcat -L -t %s:\n%s", topic, md)
			}
			for _, p := range parts {
				if len(strings.Split(p[1], ",")) != 3 || len(strings.Split(p[2], ",")) != 3 {
					t.Errorf("%s: a partition without 3 replicas in sync: %s", topic, p[0])
				}
			}
		}
		checkBrokers(ctx, t, after)

		again := e.cli.Run(ctx, "node", "replace", clusterName, "--node", "3")
		harness.MustSucceed(t, again)
		if !strings.Contains(again.Stderr, "nothing to replace") || e.record(t).Nodes[2] != n3 {
			t.Errorf("the same node replace again (%s):\n%s", again.Took, again)
		}
	})

	stopCtx, stopCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer stopCancel()
	report, err := check.Stop(stopCtx)
	stopped = true
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checker over the replacement: %s", report)
	if report.Lost != 0 || report.Acked == 0 {
		t.Errorf("checker: %s; want 0 lost", report)
	}
	return after
}
