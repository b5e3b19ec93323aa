#!/bin/sh
# customize.sh ROOTFS AUTHORIZED_KEYS
#
# mmdebstrap --customize-hook for the kafkaup test VM image. It runs on the
# build host under sh (not bash: no brace expansion), after all packages are
# installed, with ROOTFS the image's root directory. It turns the minbase
# chroot into something that boots like a fresh Debian cloud instance:
# DHCP networking, sshd with first-boot host keys printed to the console in
# cloud-init's format, a sudo user "debian" and a plain user "nosudo".
# Its bytes are part of the image's cache key: any change rebuilds the image.
set -eu
root="$1"
keys="$2"

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
# No background apt runs fighting the product for the dpkg lock mid-test.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer

# --- users -------------------------------------------------------------------
chroot "$root" useradd --create-home --shell /bin/bash --groups adm,sudo debian
chroot "$root" useradd --create-home --shell /bin/bash nosudo
# "*": no password login, but not "locked" (sshd refuses locked accounts).
chroot "$root" usermod -p '*' debian
chroot "$root" usermod -p '*' nosudo
printf 'debian ALL=(ALL) NOPASSWD:ALL\n' >"$root/etc/sudoers.d/90-debian"
chmod 0440 "$root/etc/sudoers.d/90-debian"
for u in debian nosudo; do
	install -d -m 0700 "$root/home/$u/.ssh"
	install -m 0600 "$keys" "$root/home/$u/.ssh/authorized_keys"
	chroot "$root" chown -R "$u:$u" "/home/$u/.ssh"
done

# --- sshd: host keys are made on first boot, never baked in -----------------
# Like cloud images, every instance gets its own keys on first boot. Only
# ed25519 and ecdsa: RSA-3072 generation costs ~15 s under TCG emulation.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/ssh/sshd_config.d/10-kafkaup-hostkeys.conf" <<'SSHD'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
SSHD
cat >"$root/usr/local/sbin/kafkaup-ssh-hostkeys" <<'KEYS'
#!/bin/sh
# Create missing SSH host keys, then print them to the console the way
# cloud-init does, so tests can read them from the serial log.
set -eu
for t in ecdsa ed25519; do
	f="/etc/ssh/ssh_host_${t}_key"
	[ -f "$f" ] || ssh-keygen -q -t "$t" -N '' -C "root@$(hostname)" -f "$f"
done
fps=""
keys=""
for t in ecdsa ed25519; do
	f="/etc/ssh/ssh_host_${t}_key.pub"
	fps="${fps}ec2: $(ssh-keygen -l -f "$f")
"
	keys="${keys}$(cat "$f")
"
done
# One write, so systemd's own console lines cannot split the block.
printf 'ec2: #############################################################\nec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n%sec2: -----END SSH HOST KEY FINGERPRINTS-----\nec2: #############################################################\n-----BEGIN SSH HOST KEY KEYS-----\n%s-----END SSH HOST KEY KEYS-----\n' \
	"$fps" "$keys" >/dev/console
KEYS
chmod 0755 "$root/usr/local/sbin/kafkaup-ssh-hostkeys"
cat >"$root/etc/systemd/system/kafkaup-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys and print them to the console
Before=ssh.service
ConditionPathExists=/usr/bin/ssh-keygen

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/kafkaup-ssh-hostkeys

[Install]
WantedBy=ssh.service multi-user.target
UNIT
chroot "$root" systemctl enable kafkaup-ssh-hostkeys.service

