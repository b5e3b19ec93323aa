#!/bin/sh
# customize.sh ROOTFS
#
# mmdebstrap --customize-hook for every kafkaup test VM image, run first; the
# flavor's own hook (plain.sh or cloud.sh) runs after it. It runs on the
# build host under sh (not bash: no brace expansion), after all packages are
# installed, with ROOTFS the image's root directory. It makes the minbase
# chroot bootable under qemu: a small initrd, DHCP networking, fstab and the
# apt sources of a Debian cloud image.
# Its bytes are part of the image's cache key: any change rebuilds the image.
set -eu
root="$1"

# --- identity and name resolution ------------------------------------------
echo kafkaup-test >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	kafkaup-test
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
HOSTS
# qemu's user-mode network serves DNS at 10.0.2.3.
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
# A fresh machine-id per VM: systemd creates it on first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# --- storage ---------------------------------------------------------------
cat >"$root/etc/fstab" <<'FSTAB'
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/vda	/	ext4	errors=remount-ro	0	1
FSTAB

# --- boot: a small initrd ---------------------------------------------------
# MODULES=most makes a 30 MB initrd that takes ~4 s to unpack under TCG; the
# guest's hardware is fixed (virtio disk, ext4 root), so list just that.
# (MODULES=dep cannot detect the root device inside the build chroot.)
echo MODULES=list >"$root/etc/initramfs-tools/conf.d/kafkaup-modules"
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all

# --- network: DHCP on the virtio NIC via systemd-networkd -------------------
cat >"$root/etc/systemd/network/10-virtio.network" <<'NET'
[Match]
Name=en*

[Network]
DHCP=ipv4
NET
chroot "$root" systemctl enable systemd-networkd.service

# --- apt: the same suites a Debian cloud image uses -------------------------
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# Docs are excluded (dpkg path-exclude, kept in /etc/dpkg/dpkg.cfg.d), but
# update-alternatives in e.g. openjdk's postinst needs the man directories.
for n in 1 2 3 4 5 6 7 8; do mkdir -p "$root/usr/share/man/man$n"; done

