#!/usr/bin/env bash
# install-packages.sh: wait until the host is ready for packages (cloud-init
# done, dpkg lock free), then install Java 17+ and curl with apt as needed.
# Inputs: WANT_JAVA, WANT_CURL, JAVA_PACKAGES (first available wins),
# CLOUD_INIT_TIMEOUT, APT_LOCK_TIMEOUT (seconds).

if have cloud-init; then
  log "waiting for cloud-init to finish (at most ${CLOUD_INIT_TIMEOUT}s)"
  if ! timeout "$CLOUD_INIT_TIMEOUT" cloud-init status --wait >/dev/null 2>&1; then
    status=$(cloud-init status 2>/dev/null) || true
    case "$status" in
      *running*) die "cloud-init is still running after ${CLOUD_INIT_TIMEOUT}s, so the host is not ready for packages yet. Wait for the first boot to finish and rerun the same command." ;;
    esac
    log "cloud-init finished with errors ($status); continuing"
  fi
fi

# apt_or_die runs apt-get and turns a lock time-out into advice.
apt_or_die() {
  local out
  if out=$(apt_get "$@" 2>&1); then
    printf '%s\n' "$out" | tail -n 5 >&2
    return 0
  fi
  printf '%s\n' "$out" | tail -n 20 >&2
  if printf '%s' "$out" | grep -q 'Could not get lock'; then
    holder=$(printf '%s' "$out" | grep -o 'held by process [0-9]* ([^)]*)' | head -n 1) || true
    die "the package manager stayed busy for more than ${APT_LOCK_TIMEOUT}s (${holder:-lock held}). This is usually unattended-upgrades on a fresh instance: wait a few minutes and rerun the same command."
  fi
  die "apt-get $1 failed (see the output above); fix the host's package sources and rerun."
}

pkgs=()
log "apt-get update"
apt_or_die update
if [ "$WANT_JAVA" = 1 ]; then
  java_pkg=
  for p in "${JAVA_PACKAGES[@]}"; do
    if [ -n "$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
      java_pkg=$p
      break
    fi
  done
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
