#!/bin/sh
# cloud.sh ROOTFS
#
# The "cloud" flavor's mmdebstrap --customize-hook (after customize.sh): an
# image that boots like a fresh cloud instance. cloud-init reads a NoCloud
# seed (a disk labelled cidata, one per instance) and, like EC2's image:
# creates the default user "ubuntu" (passwordless sudo) with the key pair's
# public key, generates the SSH host keys, runs the user-data and prints the
# host keys to the serial console in its final stage. No user and no host
# key is baked in. unattended-upgrades is installed and enabled, and the apt
# timers are left on, as in Debian's and Ubuntu's cloud images.
# Its bytes are part of the image's cache key: any change rebuilds the image.
set -eu
root="$1"

# --- cloud-init ---------------------------------------------------------------
cat >"$root/etc/cloud/cloud.cfg.d/99-kafkaup.cfg" <<'CFG'
# kafkaup's local cloud: the instance's data comes from a NoCloud seed
# (a vfat disk labelled cidata with meta-data, user-data, vendor-data).
datasource_list: [ NoCloud, None ]
# The image's systemd-networkd file does DHCP on the virtio NIC.
network: {config: disabled}
# RSA-3072 generation costs ~15 s of emulated CPU: ed25519 and ECDSA only.
ssh_genkeytypes: [ed25519, ecdsa]
manage_etc_hosts: true
# No locale is generated in the image; C.UTF-8 is built into glibc.
locale: C.UTF-8
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
CFG
# The host keys are cloud-init's to make, per instance.
rm -f "$root"/etc/ssh/ssh_host_*
# Nothing of the build's own cloud-init run (there is none, but be sure).
rm -rf "$root/var/lib/cloud/"* "$root/var/log/cloud-init"*

# --- unattended-upgrades, as a cloud image has it --------------------------------
cat >"$root/etc/apt/apt.conf.d/20auto-upgrades" <<'APT'
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APT
