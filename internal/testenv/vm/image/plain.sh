#!/bin/sh
# plain.sh ROOTFS AUTHORIZED_KEYS
#
# The "plain" flavor's mmdebstrap --customize-hook (after customize.sh): a
# host booted in advance, without cloud-init. sshd makes its host keys on
# first boot and prints them to the console in cloud-init's format; a sudo
# user "debian" and a plain user "nosudo" log in with the image's key; the
# apt timers are masked so no background apt run fights the product for the
# dpkg lock mid-test.
# Its bytes are part of the image's cache key: any change rebuilds the image.
set -eu
root="$1"
keys="$2"

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

