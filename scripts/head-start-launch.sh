#!/usr/bin/env bash
# head-start-launch.sh: the boothook in create's user-data (see
# provision.UserData). cloud-init runs boothooks early in every boot, once
# the network is up and before sshd starts. This starts head-start.sh once
# per instance, detached (a transient systemd unit, else its own session),
# and returns at once: nothing in the boot waits for it. It does not use
# lib.sh, which rides in HEAD_START_SCRIPT already.
# Inputs: HEAD_START_DIR, HEAD_START_SCRIPT (head-start.sh as rendered),
# UNIT.

# A later boot: the head start ran, or was cut off, already. It is not
# started again: the SSH run finishes what it left.
if [ -e "$HEAD_START_DIR/status" ]; then exit 0; fi
umask 022
mkdir -p "$HEAD_START_DIR"
printf '%s' "$HEAD_START_SCRIPT" >"$HEAD_START_DIR/head-start.sh"
printf 'launched=%s\nboot_id=%s\n' "$(date +%s.%3N)" "$(cat /proc/sys/kernel/random/boot_id)" >"$HEAD_START_DIR/status"
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
  systemd-run --unit="$UNIT" --description="kafkaup head start (Java and the Kafka download)" \
    --no-block --collect /bin/bash "$HEAD_START_DIR/head-start.sh"
else
  setsid /bin/bash "$HEAD_START_DIR/head-start.sh" </dev/null >/dev/null 2>&1 &
fi
