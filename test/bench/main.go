// Command bench measures `kafkaup provision` against the manual sequence it
// replaces, on identical fresh instances of the local cloud (Debian VMs
// under qemu launched from one cloud image through RunInstances, logged in
// as ubuntu with the key pair's key once cloud-init has finished), and
// prints the ratios with a per-step breakdown. Run it with `make bench`.
//
// Aims: full provision <= 0.5 x the manual sequence; no-op rerun <= 5 % of
// the full provision.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/kafkaup/kafkaup/internal/testenv/kafkadist"
	"github.com/kafkaup/kafkaup/internal/testenv/localcloud"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
	"github.com/kafkaup/kafkaup/internal/testenv/vm"
	"github.com/kafkaup/kafkaup/test/e2e/harness"
)

// manual is the seed's literal sequence, one SSH command per step.
func manual(url string) []struct{ name, cmd string } {
	return []struct{ name, cmd string }{
		{"apt update", "sudo apt-get update -q"},
		{"apt install openjdk-17-jdk", "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk"},
		{"download", "curl -fsSL -o kafka.tgz " + url},
		{"untar", "tar -xzf kafka.tgz"},
		{"dd 2 GB swapfile", "sudo dd if=/dev/zero of=/swapfile bs=1M count=2048 status=none && sudo chmod 600 /swapfile"},
		{"mkswap", "sudo /usr/sbin/mkswap /swapfile"},
		{"swapon", "sudo /usr/sbin/swapon /swapfile"},
		{"fstab", "echo '/swapfile none swap sw 0 0' | sudo tee -a /etc/fstab"},
		{"format", "cd kafka_2.13-4.0.0 && bin/kafka-storage.sh format --standalone -t $(bin/kafka-storage.sh random-uuid) -c config/server.properties"},
		{"start -daemon", "cd kafka_2.13-4.0.0 && bin/kafka-server-start.sh -daemon config/server.properties && " +
			"until grep -q 'Kafka Server started' logs/server.log 2>/dev/null; do sleep 1; done"},
	}
}

type row struct {
	name string
	took time.Duration
}

func main() {
	log.SetFlags(0)
	if err := run(); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	mirror, err := kafkadist.Serve(ctx, "127.0.0.1:0", "4.0.0")
	if err != nil {
		return err
	}
	defer mirror.Close()
	img, err := vm.BuildCloudImage(ctx)
	if err != nil {
		return err
	}
	// One VM at a time, so neither run competes with the other for the 2 cores.
	lc, err := localcloud.Start(ctx, localcloud.Options{Backend: localcloud.VMs{Image: img}, MaxRunning: 1, Logf: log.Printf})
	if err != nil {
		return err
	}
	defer lc.Close()
	dir, err := os.MkdirTemp("", "kafkaup-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cl, err := newCloud(ctx, lc, dir)
	if err != nil {
		return err
	}
	url := mirror.URLVia(0, "10.0.2.2", "4.0.0") // the VM reaches this machine's loopback at qemu's gateway

	manualRows, manualTotal, err := runManual(ctx, cl, url)
	if err != nil {
		return err
	}
	kRows, full, noop, err := runKafkaup(ctx, cl, url, dir)
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "manual sequence (seed)\tseconds")
	for _, r := range manualRows {
		fmt.Fprintf(w, "  %s\t%.1f\n", r.name, r.took.Seconds())
	}
	fmt.Fprintf(w, "  total\t%.1f\n", manualTotal.Seconds())
	fmt.Fprintln(w, "kafkaup provision\tseconds")
	for _, r := range kRows {
		fmt.Fprintf(w, "  %s\t%.1f\n", r.name, r.took.Seconds())
	}
	fmt.Fprintf(w, "  total (incl. SSH, observe, verify)\t%.1f\n", full.Seconds())
	fmt.Fprintf(w, "kafkaup no-op rerun\t%.2f\n", noop.Seconds())
	w.Flush()
	fmt.Printf("\nfull provision / manual sequence = %.2f (aim <= 0.50)\n", full.Seconds()/manualTotal.Seconds())
	fmt.Printf("no-op rerun / full provision     = %.3f (aim <= 0.05)\n", noop.Seconds()/full.Seconds())
	return nil
}

// benchCloud launches instances on the local cloud with one key pair and
// a security group open to this machine on 22 and 9092.
type benchCloud struct {
	ec2     *ec2.Client
	ami, sg string
	key     string // private key file of the key pair
	keyName string
}

func newCloud(ctx context.Context, lc *localcloud.Cloud, dir string) (*benchCloud, error) {
	cfg, err := lc.Config(ctx)
	if err != nil {
		return nil, err
	}
	b := &benchCloud{ec2: ec2.NewFromConfig(cfg), keyName: "bench"}
	_, amis, err := lc.Moto.PutAMIParameters(ctx)
	if err != nil {
		return nil, err
	}
	b.ami = amis["amd64"]
	if b.key, err = testssh.EnsureKey(filepath.Join(dir, "ssh")); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(b.key + ".pub")
	if err != nil {
		return nil, err
	}
	if _, err := b.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(b.keyName), PublicKeyMaterial: pub}); err != nil {
		return nil, err
	}
	sg, err := b.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("bench"), Description: aws.String("bench")})
	if err != nil {
		return nil, err
	}
	b.sg = aws.ToString(sg.GroupId)
	var perms []ec2types.IpPermission
	for _, p := range []int32{22, 9092} {
		perms = append(perms, ec2types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(p), ToPort: aws.Int32(p),
			IpRanges: []ec2types.IpRange{{CidrIp: aws.String("127.0.0.1/32")}}})
	}
	if _, err := b.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: sg.GroupId, IpPermissions: perms}); err != nil {
		return nil, err
	}
	return b, nil
}

// launch starts a fresh t3.micro and returns its login once cloud-init has
// finished its first boot, so neither run pays for it.
func (b *benchCloud) launch(ctx context.Context, name string) (testssh.Target, string, error) {
	out, err := b.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(b.ami), InstanceType: ec2types.InstanceTypeT3Micro, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		KeyName: aws.String(b.keyName), SecurityGroupIds: []string{b.sg},
		UserData: aws.String(base64.StdEncoding.EncodeToString([]byte("#cloud-config\n"))),
		BlockDeviceMappings: []ec2types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sda1"),
			Ebs: &ec2types.EbsBlockDevice{VolumeSize: aws.Int32(16), VolumeType: ec2types.VolumeTypeGp3}}},
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance,
			Tags: []ec2types.Tag{{Key: aws.String("Name"), Value: aws.String(name)}}}},
	})
	if err != nil {
		return testssh.Target{}, "", err
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	desc, err := b.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return testssh.Target{}, id, err
	}
	target := testssh.Target{Addr: aws.ToString(desc.Reservations[0].Instances[0].PublicIpAddress), User: localcloud.DefaultUser, KeyPath: b.key}
	begin := time.Now()
	if err := testssh.WaitLogin(ctx, target); err != nil {
		return target, id, err
	}
	if _, err := testssh.Run(ctx, target, "cloud-init status --wait"); err != nil {
		return target, id, fmt.Errorf("cloud-init on %s: %w", name, err)
	}
	log.Printf("%s: instance %s at %s ready (cloud-init done) %s after launch", name, id, target.Addr, time.Since(begin).Round(time.Second))
	return target, id, nil
}

// terminate terminates an instance and waits until its VM is gone (the
// local cloud runs one at a time).
func (b *benchCloud) terminate(ctx context.Context, id string) {
	if _, err := b.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{id}}); err != nil {
		log.Printf("terminate %s: %v", id, err)
		return
	}
	w := ec2.NewInstanceTerminatedWaiter(b.ec2, func(o *ec2.InstanceTerminatedWaiterOptions) { o.MinDelay, o.MaxDelay = time.Second, 2*time.Second })
	if err := w.Wait(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, 5*time.Minute); err != nil {
		log.Printf("terminate %s: %v", id, err)
	}
}

func runManual(ctx context.Context, b *benchCloud, url string) ([]row, time.Duration, error) {
	target, id, err := b.launch(ctx, "bench-manual")
	if id != "" {
		defer b.terminate(ctx, id)
	}
	if err != nil {
		return nil, 0, err
	}
	var rows []row
	var total time.Duration
	for _, st := range manual(url) {
		start := time.Now()
		out, err := testssh.Run(ctx, target, st.cmd)
		if err != nil && strings.Contains(st.cmd, "apt-get install") {
			// What a person does when a package's setup fails (seen with
			// ca-certificates-java on bookworm): finish configuring, then
			// let apt repair; the time counts against the manual sequence.
			log.Printf("manual: %s failed (%v); running dpkg --configure -a and apt-get install -f", st.name, err)
			out, err = testssh.Run(ctx, target, "sudo DEBIAN_FRONTEND=noninteractive dpkg --configure -a; sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q -f && java -version")
		}
		if err != nil {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			return nil, 0, fmt.Errorf("manual step %s: %w\nstdout (tail):\n%s", st.name, err, strings.Join(lines, "\n"))
		}
		took := time.Since(start)
		log.Printf("manual: %-28s %6.1fs", st.name, took.Seconds())
		rows = append(rows, row{st.name, took})
		total += took
	}
	return rows, total, nil
}

func runKafkaup(ctx context.Context, b *benchCloud, url, dir string) ([]row, time.Duration, time.Duration, error) {
	target, id, err := b.launch(ctx, "bench-kafkaup")
	if id != "" {
		defer b.terminate(ctx, id)
	}
	if err != nil {
		return nil, 0, 0, err
	}
	bin, err := harness.BuildCLI(dir)
	if err != nil {
		return nil, 0, 0, err
	}
	cli, err := harness.NewCLI(bin, dir, b.key)
	if err != nil {
		return nil, 0, 0, err
	}
	args := append([]string{"provision", "--host", target.Addr, "--kafka-url", url, "--json"}, cli.ConnArgs(target.User)...)
	first := cli.Run(ctx, args...)
	if first.ExitCode != 0 {
		return nil, 0, 0, fmt.Errorf("kafkaup provision:\n%s", first)
	}
	var out struct {
		Result struct {
			Applied []struct {
				ID, Title string
				Seconds   float64
			}
		}
	}
	if err := json.Unmarshal([]byte(first.Stdout), &out); err != nil {
		return nil, 0, 0, err
	}
	var rows []row
	for _, a := range out.Result.Applied {
		rows = append(rows, row{a.ID + ": " + a.Title, time.Duration(a.Seconds * float64(time.Second))})
	}
	second := cli.Run(ctx, args...)
	if second.ExitCode != 0 || !strings.Contains(second.Stdout, `"applied": null`) && !strings.Contains(second.Stdout, `"applied": []`) {
		return nil, 0, 0, fmt.Errorf("no-op rerun was not a no-op:\n%s", second)
	}
	return rows, first.Took, second.Took, nil
}
