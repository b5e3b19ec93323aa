#!/usr/bin/env bash
# install-packages.sh: wait until the host is ready for packages (cloud-init
# done, apt and dpkg locks free), then install Java 17+ and curl with apt as
# needed.
# Inputs: WANT_JAVA, WANT_CURL, JAVA_PACKAGES (first available wins),
# CLOUD_INIT_TIMEOUT, APT_LOCK_TIMEOUT (seconds).

wait_for_cloud_init
wait_for_apt_locks

# apt_or_die runs apt-get and turns a failure into advice. A package whose
# setup script failed once (seen: a JVM crash in ca-certificates-java's) is
# finished with dpkg --configure -a and tried once more.
apt_or_die() {
  if apt_try "$@"; then
    printf '%s\n' "$apt_out" | tail -n 5 >&2
    return 0
  fi
  if grep -q 'Errors were encountered while processing' <<<"$apt_out"; then
    printf '%s\n' "$apt_out" | tail -n 20 >&2
    note "a package failed to set up; running dpkg --configure -a and trying once more"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2 || true
    if apt_try "$@"; then
      printf '%s\n' "$apt_out" | tail -n 5 >&2
      return 0
    fi
  fi
  printf '%s\n' "$apt_out" | tail -n 20 >&2
  if grep -q 'Could not get lock' <<<"$apt_out"; then
    # Taken and kept by other runs until APT_LOCK_TIMEOUT was used up, or
    # a holder /proc/locks does not show.
    lock=$(grep -o -m 1 'Could not get lock [^ ]*' <<<"$apt_out") || true
    lock=${lock#Could not get lock }
    holder=$(grep -o -m 1 'held by process [0-9]* ([^)]*)' <<<"$apt_out") || true
    holder=${holder#held by process }
    holder=${holder%)}
    dpkg_lock_advice "${holder:+pid ${holder/ (/: }}" "${lock%.}" "$APT_LOCK_TIMEOUT"
  fi
  die "apt-get $1 failed (see the output above); fix the host's package sources and rerun."
}

# Packages left half set up (a run cut short, a failed setup script) are
# finished first.
if [ -n "$(dpkg --audit 2>/dev/null)" ]; then
  log "dpkg --configure -a (packages left half set up)"
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2 || die "dpkg --configure -a failed (see above): the host's packages need repair before kafkaup can continue."
fi
if [ "$WANT_JAVA" = 0 ] && [ "$WANT_CURL" = 0 ]; then
  exit 0
fi

pkgs=()
log "apt-get update"
apt_or_die update
if [ "$WANT_JAVA" = 1 ]; then
  java_pkg=$(pick_java_package "${JAVA_PACKAGES[@]}")
  [ -n "$java_pkg" ] || die "none of ${JAVA_PACKAGES[*]} is available from this host's apt sources; Kafka 4 needs Java 17 or newer. Install one yourself and rerun."
  pkgs+=("$java_pkg")
fi
if [ "$WANT_CURL" = 1 ]; then pkgs+=(curl ca-certificates); fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  log "apt-get install ${pkgs[*]}"
  apt_or_die install --no-install-recommends "${pkgs[@]}"
fi
if [ "$WANT_JAVA" = 1 ]; then
  java -version >&2 || die "java is still not runnable after installing ${pkgs[*]}"
fi
