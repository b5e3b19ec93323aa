#!/usr/bin/env bash
# head-start.sh: work begun at an instance's first boot, while kafkaup
# still waits for SSH. The boothook in create's user-data (head-start-
# launch.sh) starts it once per instance, detached from cloud-init. It
# installs Java with apt and downloads the Kafka tarball into a staging
# directory, with lib.sh's fetch (the SSH run's sources, retries, backoff
# and, when the digest is known, sha512 check). It never starts the broker
# and never writes kafkaup's managed files or its install directory: the
# SSH run stays the one source of truth. It waits for this
# (wait-head-start.sh), uses the staged tarball only once its sha512 has
# been verified against the release's (fetch-kafka.sh), and does itself
# whatever this left undone. What it did is in HEAD_START_DIR/status, one
# key=value a line with epoch timestamps: observe.sh reports it, and
# create's timeline shows it.
# Inputs: HEAD_START_DIR, DIST_NAME, URLS, EXPECTED_SHA512 (empty when the
# digest is to be read from the release's .sha512 file: the SSH run checks
# it then), DOWNLOAD_RETRIES, JAVA_PACKAGES, APT_LOCK_TIMEOUT.
#
# The order, and unattended-upgrades. A fresh Ubuntu or Debian cloud image
# runs apt's daily jobs at first boot (apt-get update, then
# unattended-upgrades installing security updates), holding the apt and
# dpkg locks for a while. This never disables, stops or delays them:
#   - the download needs no lock, so it starts at once and runs beside
#     everything else, apt's jobs included;
#   - the Java install waits for a lock that apt's jobs hold (the host is
#     being patched: that comes first, and the SSH run would wait too),
#     for at most APT_LOCK_TIMEOUT, while the download goes on;
#   - once Java is in, the locks are free again. An unattended-upgrades run
#     that began while this held them found the lock taken and gave up until
#     its next timer, hours away: it is started again at once, so the host
#     ends no less patched than without a head start, and sooner patched
#     than if it had waited for the timer. By then Java is installed, so
#     the SSH run has no apt work left to wait for behind it.

exec >>"$HEAD_START_DIR/log" 2>&1
status=$HEAD_START_DIR/status
record() { printf '%s=%s\n' "$1" "$2" >>"$status"; }
stamp() { record "$1" "$(epoch_now)"; }
record pid "$$"
stamp started
log "head start: Java from ${JAVA_PACKAGES[*]}, $DIST_NAME.tgz from ${URLS[*]}"

# apt_run runs apt-get with ARGS through lib.sh's apt_try (every apt lock
# waited for, a lock taken in between retried) and logs its output.
apt_run() {
  local rc=0
  apt_try "$@" || rc=$?
  printf '%s\n' "$apt_out"
  [ "$rc" = 0 ] || die "apt-get $1 failed (see above)"
}

install_java() {
  local pkg held
  stamp java.start
  if [ "$(java_major)" -ge 17 ]; then
    record java.result present
    stamp java.end
    return 0
  fi
  if held=$(lock_holder "${APT_LOCK_FILES[@]}") && [ -n "$held" ]; then
    record apt_wait.holder "${held#*$'\t'}"
    stamp apt_wait.start
    wait_for_apt_locks
    stamp apt_wait.end
  fi
  stamp apt_locked
  stamp apt_update.start
  apt_run update
  stamp apt_update.end
  pkg=$(pick_java_package "${JAVA_PACKAGES[@]}")
  [ -n "$pkg" ] || die "none of ${JAVA_PACKAGES[*]} is available from this host's apt sources"
  record java.package "$pkg"
  apt_run install --no-install-recommends "$pkg"
  record java.result ok
  stamp java.end
}

# rerun_upgrades starts unattended-upgrades again when its run began while
# install_java held the locks (see the top of this file).
rerun_upgrades() {
  local began since=$1
  uses_systemd || return 0
  systemctl cat apt-daily-upgrade.service >/dev/null 2>&1 || return 0
  began=$(systemctl show -p ExecMainStartTimestamp --value apt-daily-upgrade.service 2>/dev/null) || return 0
  case "$began" in '' | n/a) return 0 ;; esac # it never ran
  began=$(date -d "$began" +%s 2>/dev/null) || return 0
  if [ "$began" -ge "${since%.*}" ]; then
    log "unattended-upgrades ran at $began while Java was being installed: starting it again"
    systemctl start --no-block apt-daily-upgrade.service
    stamp upgrades.restarted
  fi
}

download() {
  local out=$HEAD_START_DIR/kafka/$DIST_NAME.tgz u rc
  stamp download.start
  mkdir -p "$HEAD_START_DIR/kafka"
  for u in "${URLS[@]}"; do
    record download.url "$u"
    rc=0
    fetch "$u" "$out" "$EXPECTED_SHA512" || rc=$?
    if [ "$rc" = 0 ]; then
      record download.bytes "$(stat -c %s "$out")"
      record download.result ok
      stamp download.end
      return 0
    fi
    record download.error "$u: $last_error"
    if [ "$rc" = 2 ]; then break; fi # the mirror serves another file
  done
  rm -f "$out.part"
  record download.result failed
  stamp download.end
  return 1
}

# Both run as jobs of their own, so that errexit holds inside each. No URL:
# the tarball is uploaded over SSH (--kafka-tarball).
if [ "${#URLS[@]}" -gt 0 ]; then
  download &
else
  record download.result skipped
  true &
fi
download_pid=$!
install_java &
java_rc=0
wait "$!" || java_rc=$?
if [ "$java_rc" != 0 ]; then
  record java.result failed
  record java.error "exit status $java_rc (see $HEAD_START_DIR/log)"
  stamp java.end
fi
if locked=$(sed -n 's/^apt_locked=//p' "$status") && [ -n "$locked" ]; then
  rerun_upgrades "$locked" || log "could not start unattended-upgrades again"
fi
download_rc=0
wait "$download_pid" || download_rc=$?
if [ "$java_rc" = 0 ] && [ "$download_rc" = 0 ]; then record result ok; else record result failed; fi
stamp finished
log "head start finished (Java: exit $java_rc, download: exit $download_rc)"
