#!/bin/bash
# init.sh: PID 1 of a namespace host.
#
# nshost.Start copies this file into the host's state directory and runs it
# from there as
#   nsenter --net=/run/netns/NETNS -- \
#     unshare --mount --uts --ipc --pid --fork --kill-child -- bash nshost-init
# so it starts inside the host's own network namespace (veth already set up
# by Start) and fresh mount, UTS, IPC and PID namespaces, as PID 1. unshare
# makes every mount private first, so nothing below propagates back to this
# machine's mount table. When this process dies (Close SIGKILLs unshare, and
# --kill-child SIGKILLs us), the kernel kills every process in the PID
# namespace and, with the last of them, drops the mount namespace and
# therefore the overlay.
#
# Parameters come in the environment, not on the command line, so that PID 1
# shows up in `ps ax` as "bash nshost-init" and no `pgrep -f kafka` inside
# ever matches it:
#   NSHOST_STATE    state dir on this machine (holds root/, the mount point)
#   NSHOST_UPPER    the overlay's upper directory (every write inside)
#   NSHOST_WORK     the overlay's work directory
#   NSHOST_RESTART  "1" when the upper directory is a disk used before: keep
#                   the host's own SSH host keys (an EC2 stop and start)
#   NSHOST_HIDE     directory to hide inside (the parent of all state dirs:
#                   keeps the overlay's own layers, which would loop, and
#                   other hosts out of sight)
#   NSHOST_HOSTNAME hostname
#   NSHOST_ADDR     the host's own address (for /etc/hosts)
#   NSHOST_PUBKEY   authorized_keys line for root
#   NSHOST_RSA_KEY  an RSA host key to install (see the sshd section)
set -euo pipefail

state=$NSHOST_STATE hide=$NSHOST_HIDE hostname=$NSHOST_HOSTNAME
addr=$NSHOST_ADDR pubkey=$NSHOST_PUBKEY rsakey=$NSHOST_RSA_KEY
upper=$NSHOST_UPPER work=$NSHOST_WORK restart=${NSHOST_RESTART:-}
unset NSHOST_STATE NSHOST_HIDE NSHOST_HOSTNAME NSHOST_ADDR NSHOST_PUBKEY NSHOST_RSA_KEY
unset NSHOST_UPPER NSHOST_WORK NSHOST_RESTART
root=$state/root

say() { echo "nshost-init $(date +%T.%N): $*"; }
say "setting up $hostname"

# --- The root filesystem: an overlay over this machine's root. ----------------
# Only the root filesystem itself is the lower layer (overlayfs does not look
# into submounts), so /proc, /sys, /dev, /run and /tmp are mounted fresh below.
# Every write inside lands in $upper.
mount -t overlay nshost -o "lowerdir=/,upperdir=$upper,workdir=$work" "$root"

# --- Kernel filesystems. ------------------------------------------------------
# A proc of our own PID namespace: ps, pgrep and kill see only our processes.
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# Most of /proc/sys is the kernel's global state (vm.swappiness, fs.file-max,
# ...): make it read-only so nothing inside can tune this machine. net.* is
# per network namespace and therefore safe to leave writable.
mount --bind "$root/proc/sys" "$root/proc/sys"
mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
mount -o remount,bind,ro "$root/proc/sys"
# sysfs shows our own network devices; read-only for the same reason.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"

# --- A fresh, minimal /dev (a tmpfs, like a container's). ----------------------
# Not devtmpfs: that is a single instance shared with this machine.
mount -t tmpfs -o nosuid,mode=755,size=64k dev "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir -m 755 "$root/dev/pts" "$root/dev/mqueue"
mkdir -m 1777 "$root/dev/shm"
# Our own devpts instance, so SSH sessions can get a pty.
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5,nosuid,noexec devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$root/dev/mqueue"

# --- Fresh tmpfs for /run and /tmp, as on a booted host. ----------------------
mount -t tmpfs -o nosuid,nodev,mode=755 run "$root/run"
mkdir -m 1777 "$root/run/lock"
mkdir -m 755 "$root/run/sshd"         # sshd's privilege separation directory
mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$root/tmp"

# Hide the state directories (lookups there return ELOOP through the overlay).
if [ -d "$root$hide" ]; then
  mount -t tmpfs -o mode=755,size=64k hide "$root$hide"
fi

say "mounts done"

# --- sshd host keys. -------------------------------------------------------------
# Not this machine's: drop the copies and give the host its own. ed25519 and
# ECDSA keys are minted per host below; an RSA-3072 key takes ~1 s of CPU to
# generate, so the RSA key is one that Start generated once and cached
# (copied here, before the cache dir may vanish behind pivot_root).
if [ -z "$restart" ]; then
  rm -f "$root"/etc/ssh/ssh_host_*
fi
install -m 600 "$rsakey" "$root/etc/ssh/ssh_host_rsa_key"
install -m 644 "$rsakey.pub" "$root/etc/ssh/ssh_host_rsa_key.pub"
# --- Switch root. --------------------------------------------------------------
# pivot_root rather than chroot: the mount table inside then shows the overlay
# as / and nothing of this machine's mounts.
mkdir "$root/run/oldroot"
cd "$root"
pivot_root . run/oldroot
cd /
umount -l /run/oldroot
rmdir /run/oldroot

# --- Identity of the host. -----------------------------------------------------
hostname "$hostname"
echo "$hostname" >/etc/hostname
# A fresh Debian /etc/hosts, naming this host rather than this machine.
cat >/etc/hosts <<EOF
127.0.0.1	localhost
$addr	$hostname

::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF

# --- sshd. -----------------------------------------------------------------
ssh-keygen -A >/dev/null  # the missing ed25519 and ECDSA host keys
say "host keys generated"
# /root is an empty opaque directory in the upper layer (Start made it so):
# give it the dotfiles of a fresh Debian install, not this machine's.
cp /usr/share/base-files/dot.bashrc /root/.bashrc
cp /usr/share/base-files/dot.profile /root/.profile
# Root logs in with the test key only.
install -d -m 700 /root/.ssh
printf '%s\n' "$pubkey" >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys

say "starting sshd as $hostname ($addr)"
# The stock /etc/ssh/sshd_config (PAM, sftp subsystem) plus what this host
# needs: root by key only, and no DNS lookups (there is no resolver here).
/usr/sbin/sshd -D -e \
  -o PermitRootLogin=prohibit-password \
  -o PasswordAuthentication=no \
  -o UseDNS=no \
  -o MaxStartups=100:30:200 &

# Stay PID 1: bash reaps orphans (nohup'd daemons that exit) while waiting.
# When sshd dies, so does the namespace.
wait $!
