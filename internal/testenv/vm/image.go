// Package vm gives end-to-end tests a real Debian host: a bookworm VM under
// qemu (TCG), reachable over SSH on its own loopback address.
//
// BuildImage makes (once per content hash, cached under
// testenv.CacheDir()/vm/) a base disk with mmdebstrap and mkfs.ext4 -d; Boot
// starts a VM on a throwaway qcow2 overlay of it, forwarding ADDR:22 and
// ADDR:9092 to the guest. Both need root (mmdebstrap's root mode, file owners
// in the disk image, binding port 22) and qemu-system-x86, qemu-utils,
// mmdebstrap and e2fsprogs.
package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kafkaup/kafkaup/internal/testenv"
	"github.com/kafkaup/kafkaup/internal/testenv/testssh"
)

// The customize hooks: customize.sh makes any flavor bootable, then the
// flavor's own script finishes it (see each script's header).
var (
	//go:embed image/customize.sh
	customizeScript []byte
	//go:embed image/plain.sh
	plainScript []byte
	//go:embed image/cloud.sh
	cloudScript []byte
)

// Flavor is what kind of host an image boots into.
type Flavor string

const (
	// Plain is a host booted in advance: users "debian" (passwordless
	// sudo) and "nosudo" log in with the image's key, a unit prints the
	// SSH host keys to the console, the apt timers are masked.
	Plain Flavor = "plain"
	// Cloud is a cloud image: cloud-init (NoCloud seed) makes the user
	// "ubuntu" with the instance's key, the host keys and runs user-data;
	// unattended-upgrades and the apt timers are on. No login is baked in:
	// boot it with Options.Seed (see package localcloud).
	Cloud Flavor = "cloud"
)

// The inputs of the image. Everything here, plus the scripts, goes into
// the cache key, so changing any of it builds a new image.
const (
	// imageRecipe names the shape of the build steps in this file; bump it
	// when they change in a way the inputs below do not capture.
	imageRecipe = "kafkaup-vm-image/2"
	suite       = "bookworm"
	diskSize    = "8G" // sparse; room for a 2 GB swapfile, a JDK and Kafka
	diskLabel   = "kafkaup-root"
)

// basePackages is what a lean Debian cloud instance has, minus cloud-init;
// no Java or Kafka: installing those is the product's job.
var basePackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "libpam-systemd",
	"openssh-server", "sudo", "ca-certificates", "netbase", "iproute2",
	"linux-image-amd64", "initramfs-tools", "zstd",
	"curl", "procps", "util-linux",
}

// cloudPackages are added for the Cloud flavor: what a real cloud image
// runs at first boot and in the background.
var cloudPackages = []string{"cloud-init", "unattended-upgrades", "e2fsprogs"}

// packages is the package list of a flavor.
func packages(f Flavor) []string {
	if f == Cloud {
		return append(append([]string{}, basePackages...), cloudPackages...)
	}
	return basePackages
}

// flavorScript is the flavor's own customize hook.
func flavorScript(f Flavor) []byte {
	if f == Cloud {
		return cloudScript
	}
	return plainScript
}

// mirrors are the apt sources used for the build (the guest gets the same
// suites in /etc/apt/sources.list.d/debian.sources).
var mirrors = []string{
	"deb http://deb.debian.org/debian bookworm main",
	"deb http://deb.debian.org/debian bookworm-updates main",
	"deb http://deb.debian.org/debian-security bookworm-security main",
}

// dpkgOpts drop docs; mmdebstrap keeps them in /etc/dpkg/dpkg.cfg.d, so
// they also hold for packages installed later inside the VM (the customize
// script keeps /usr/share/man/man1..8 so update-alternatives still works).
var dpkgOpts = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/info/*",
}

// Image is a built base image. Its files are shared by every VM and must
// not be written to: Boot puts a qcow2 overlay on top.
type Image struct {
	Flavor  Flavor
	Dir     string // testenv.CacheDir()/vm/<hash>
	Disk    string // raw ext4 filesystem image of the root (the guest's /dev/vda)
	Kernel  string // vmlinuz taken from the image's /boot
	Initrd  string // initrd.img taken from the image's /boot
	KeyPath string // Plain: private key authorized for the users debian and nosudo; Cloud: empty
}

// Files inside an image directory.
const (
	diskFile     = "disk.raw"
	kernelFile   = "vmlinuz"
	initrdFile   = "initrd.img"
	manifestFile = "manifest.txt" // the hashed inputs, for humans
	packagesFile = "packages.txt" // dpkg-query of the result, for humans
	buildLogFile = "build.log"
)

// manifest is the text the cache key of a flavor is computed from.
func manifest(f Flavor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "recipe %s\nflavor %s\nsuite %s\ndisk %s label %s\n", imageRecipe, f, suite, diskSize, diskLabel)
	fmt.Fprintf(&b, "packages %s\n", strings.Join(packages(f), ","))
	for _, m := range mirrors {
		fmt.Fprintf(&b, "mirror %s\n", m)
	}
	for _, o := range dpkgOpts {
		fmt.Fprintf(&b, "dpkgopt %s\n", o)
	}
	for _, s := range []struct {
		name   string
		script []byte
	}{{"customize.sh", customizeScript}, {string(f) + ".sh", flavorScript(f)}} {
		sum := sha256.Sum256(s.script)
		fmt.Fprintf(&b, "%s sha256 %s\n", s.name, hex.EncodeToString(sum[:]))
	}
	return b.String()
}

// imageHash is the cache key: a short hash of the manifest.
func imageHash(f Flavor) string {
	sum := sha256.Sum256([]byte(manifest(f)))
	return hex.EncodeToString(sum[:])[:16]
}

func vmCacheDir() string { return filepath.Join(testenv.CacheDir(), "vm") }

// BuildImage builds (or returns the cached) Plain image.
func BuildImage(ctx context.Context) (*Image, error) { return Build(ctx, Plain) }

// BuildCloudImage builds (or returns the cached) Cloud image.
func BuildCloudImage(ctx context.Context) (*Image, error) { return Build(ctx, Cloud) }

// Build builds (or returns the cached) base image of a flavor under
// testenv.CacheDir()/vm/<content-hash>/. Test processes may call it
// concurrently: one builds under an flock in a temporary directory and
// renames it into place; the others wait for the lock and find it built.
func Build(ctx context.Context, f Flavor) (*Image, error) {
	if f != Plain && f != Cloud {
		return nil, fmt.Errorf("build vm image: unknown flavor %q", f)
	}
	root := vmCacheDir()
	hash := imageHash(f)
	dir := filepath.Join(root, hash)
	if img, ok := loadImage(dir, f); ok {
		return img, nil
	}
	if err := checkBuildTools(); err != nil {
		return nil, err
	}

	lock, err := lockFile(ctx, filepath.Join(root, "build.lock"))
	if err != nil {
		return nil, fmt.Errorf("build vm image %s: %w", hash, err)
	}
	defer lock.Unlock()
	if img, ok := loadImage(dir, f); ok { // another process built it meanwhile
		return img, nil
	}
	// Holding the lock, any leftover tmp-* directory is from a build that
	// died: clear it (it is the only writer of those directories).
	if stale, _ := filepath.Glob(filepath.Join(root, "tmp-*")); len(stale) > 0 {
		for _, s := range stale {
			if err := removeBuildDir(s); err != nil {
				return nil, fmt.Errorf("build vm image %s: clear stale build: %w", hash, err)
			}
		}
	}

	tmp, err := os.MkdirTemp(root, "tmp-"+hash+"-")
	if err != nil {
		return nil, fmt.Errorf("build vm image %s: %w", hash, err)
	}
	start := time.Now()
	log.Printf("vm: building %s base image %s in %s (mmdebstrap, ~80 s)", f, hash, tmp)
	if err := buildImage(ctx, tmp, f); err != nil {
		if rmErr := removeBuildDir(tmp); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return nil, fmt.Errorf("build vm image %s: %w", hash, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("build vm image %s: move into place: %w", hash, err)
	}
	log.Printf("vm: built base image %s in %s", dir, time.Since(start).Round(time.Second))
	img, ok := loadImage(dir, f)
	if !ok {
		return nil, fmt.Errorf("build vm image %s: files missing after build", hash)
	}
	return img, nil
}

// loadImage returns the image in dir when it is complete. Only whole builds
// are ever renamed into place, so existence of the files is enough.
func loadImage(dir string, f Flavor) (*Image, bool) {
	img := &Image{
		Flavor: f,
		Dir:    dir,
		Disk:   filepath.Join(dir, diskFile),
		Kernel: filepath.Join(dir, kernelFile),
		Initrd: filepath.Join(dir, initrdFile),
	}
	files := []string{img.Disk, img.Kernel, img.Initrd}
	if f == Plain {
		img.KeyPath = filepath.Join(dir, "id_ed25519")
		files = append(files, img.KeyPath, img.KeyPath+".pub")
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return nil, false
		}
	}
	return img, true
}

func checkBuildTools() error {
	if os.Geteuid() != 0 {
		return errors.New("build vm image: needs root (mmdebstrap root mode; mkfs.ext4 -d copies file owners)")
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4", "qemu-img"} {
		if _, err := lookTool(tool); err != nil {
			return fmt.Errorf("build vm image: %w (apt-get install qemu-system-x86 qemu-utils mmdebstrap e2fsprogs)", err)
		}
	}
	return nil
}

// lookTool finds a tool on PATH or in the sbin directories, which a
// non-login root shell may lack.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// buildImage runs the build steps inside dir, an empty directory that is
// renamed to the final image directory on success.
func buildImage(ctx context.Context, dir string, f Flavor) error {
	logf, err := os.Create(filepath.Join(dir, buildLogFile))
	if err != nil {
		return err
	}
	defer logf.Close()

	common := filepath.Join(dir, "customize.sh")
	own := filepath.Join(dir, string(f)+".sh")
	for path, data := range map[string][]byte{common: customizeScript, own: flavorScript(f), filepath.Join(dir, manifestFile): []byte(manifest(f))} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	// Hooks run under sh with the root directory as $1.
	ownHook := "sh " + shellQuote(own) + ` "$1"`
	if f == Plain {
		// The key is generated per image and lives beside it.
		keyPath, err := testssh.EnsureKey(dir)
		if err != nil {
			return fmt.Errorf("test key: %w", err)
		}
		ownHook += " " + shellQuote(keyPath+".pub")
	}

	rootfs := filepath.Join(dir, "rootfs")
	args := []string{
		"--variant=minbase",
		"--include=" + strings.Join(packages(f), ","),
	}
	for _, o := range dpkgOpts {
		args = append(args, "--dpkgopt="+o)
	}
	args = append(args, "--customize-hook=sh "+shellQuote(common)+` "$1"`, "--customize-hook="+ownHook)
	args = append(args, suite, rootfs)
	args = append(args, mirrors...)
	if err := runLogged(ctx, logf, "mmdebstrap", args...); err != nil {
		return err
	}

	// qemu boots the kernel and initrd directly (-kernel/-initrd).
	for src, dst := range map[string]string{"vmlinuz-*": kernelFile, "initrd.img-*": initrdFile} {
		matches, _ := filepath.Glob(filepath.Join(rootfs, "boot", src))
		if len(matches) != 1 {
			return fmt.Errorf("want exactly one /boot/%s in the image, found %d", src, len(matches))
		}
		if err := copyFile(matches[0], filepath.Join(dir, dst)); err != nil {
			return err
		}
	}

	var pkgs bytes.Buffer
	q := exec.CommandContext(ctx, "chroot", rootfs, "dpkg-query", "-W", "-f", "${Package} ${Version}\n")
	q.Stdout, q.Stderr = &pkgs, logf
	if err := q.Run(); err != nil {
		return fmt.Errorf("list packages: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, packagesFile), pkgs.Bytes(), 0o644); err != nil {
		return err
	}

	// mkfs.ext4 -d fills the filesystem from the directory: no loop mounts.
	if err := runLogged(ctx, logf, "mkfs.ext4", "-q", "-F", "-L", diskLabel, "-d", rootfs,
		filepath.Join(dir, diskFile), diskSize); err != nil {
		return err
	}
	return removeBuildDir(rootfs)
}

// runLogged runs a build tool with its output appended to the build log;
// a failure carries the log's tail.
func runLogged(ctx context.Context, logf *os.File, name string, args ...string) error {
	path, err := lookTool(name)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "+ %s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Let mmdebstrap unmount what it mounted in the chroot before it goes.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; log %s ends:\n%s", name, err, logf.Name(), tail(logf.Name(), 30))
	}
	return nil
}

// removeBuildDir deletes a build directory, first detaching anything still
// mounted below it (an interrupted mmdebstrap can leave /proc, /sys or
// /dev/pts mounted in the chroot: RemoveAll must never walk into those).
func removeBuildDir(dir string) error {
	mounts, err := mountsBelow(dir)
	if err != nil {
		return err
	}
	for _, m := range mounts { // deepest first
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s before removing %s: %w", m, dir, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// mountsBelow lists mount points at or under dir, deepest first.
func mountsBelow(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == abs || strings.HasPrefix(mp, abs+"/") {
			out = append(out, mp)
		}
	}
	// Later entries in mountinfo are mounted on top of earlier ones.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, ...).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the last n lines of a file (for error messages).
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
