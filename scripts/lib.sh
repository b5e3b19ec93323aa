#!/usr/bin/env bash
# lib.sh: helpers shared by every kafkaup script (prepended by the renderer).

# log writes a progress line to stderr (kept in kafkaup's debug log).
log() { printf 'kafkaup: %s\n' "$*" >&2; }

# die stops the script with a message for the user. Exit status 3 tells
# kafkaup that the message is advice, not a crash.
die() { printf 'kafkaup: %s\n' "$*" >&2; exit 3; }

# broker_pids prints the PIDs of running Kafka brokers (java with kafka.Kafka
# as its main class), without needing pgrep.
broker_pids() {
  local f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    cmd=$(tr '\0' ' ' <"$f" 2>/dev/null) || continue
    case "$cmd" in
      *' kafka.Kafka '*) printf '%s\n' "$pid" ;;
    esac
  done
}

# installed_version prints the Kafka version INSTALL_DIR/current points at
# (empty when none).
installed_version() {
  local target
  [ -L "$1/current" ] || return 0
  target=$(basename "$(readlink "$1/current")")
  printf '%s\n' "${target#kafka_*-}"
}

# have tells whether a command exists.
have() { command -v "$1" >/dev/null 2>&1; }

# uses_systemd tells whether systemd is PID 1.
uses_systemd() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

# apt_get runs apt-get non-interactively, waiting for the dpkg lock held by
# unattended-upgrades or cloud-init instead of failing at once.
# unattended-upgrades or cloud-init instead of failing at once. dpkg skips
# its fsync per file (--force-unsafe-io): on a small cloud disk that halves
# the unpack time, and a run cut short by a crash is finished by rerunning.
# No translations are fetched on update.
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -q -y \
    -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT:-300}" \
    -o Acquire::Languages=none \
    -o Dpkg::Options::=--force-confold \
    -o Dpkg::Options::=--force-unsafe-io "$@"
}

# sha256_of prints the sha256 of a file, or - when it does not exist.
sha256_of() {
  if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo -; fi
}

# one_at_a_time makes runs of the same script on this host wait for each
# other: a run cut off from kafkaup (lost connection) may still be working
# when the user reruns, and the rerun must not race it.
one_at_a_time() {
  local dir=${LOCK_DIR:-/run/lock}
  mkdir -p "$dir"
  exec 9>"$dir/kafkaup-$1.lock"
  if ! flock -w "${LOCK_WAIT:-900}" 9; then
    die "another kafkaup run of $1 is still working on this host after ${LOCK_WAIT:-900}s; wait for it to finish and rerun"
  fi
}
