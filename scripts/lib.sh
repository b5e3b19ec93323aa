#!/usr/bin/env bash
# lib.sh: helpers shared by every kafkaup script (prepended by the renderer).

# log writes a progress line to stderr (kept in kafkaup's debug log).
log() { printf 'kafkaup: %s\n' "$*" >&2; }

# note is a log line the user also sees while the step runs: waits and
# retries that would otherwise look like a hang.
note() { printf 'kafkaup: note: %s\n' "$*" >&2; }

# die stops the script with a message for the user. Exit status 3 tells
# kafkaup that the message is advice, not a crash.
die() { printf 'kafkaup: %s\n' "$*" >&2; exit 3; }

# broker_pids prints the PIDs of running Kafka brokers (java with kafka.Kafka
# as its main class), without needing pgrep.
broker_pids() {
  local f pid cmd
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    cmd=$(tr '\0' ' ' 2>/dev/null <"$f") || continue # gone meanwhile
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

# java_major prints the major version of the java on PATH, 0 when none.
# The JDK's release file tells it without starting a JVM (slow on small
# instances); java -version is the fallback.
java_major() {
  local v='' release major=0
  if have java; then
    release=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")/release
    if [ -r "$release" ]; then
      v=$(sed -n 's/^JAVA_VERSION="\(.*\)"$/\1/p' "$release")
    fi
    if [ -z "$v" ]; then
      v=$(java -version 2>&1 | awk -F'"' '/version/ && !seen {print $2; seen=1}') || v=
    fi
    case "$v" in
      1.*) major=$(echo "$v" | cut -d. -f2) ;;
      ?*) major=${v%%[.+-]*} ;;
    esac
  fi
  echo "${major:-0}"
}

# pick_java_package prints the first of the given packages that the apt
# sources offer (after apt-get update), or nothing.
pick_java_package() {
  local p
  for p in "$@"; do
    if [ -n "$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]; then
      echo "$p"
      return 0
    fi
  done
}

# apt_get runs apt-get non-interactively. dpkg's own locks are waited for
# by apt (DPkg::Lock::Timeout, for what is left of this script's
# APT_LOCK_TIMEOUT); apt's other locks are not, so callers wait for every
# lock first (wait_for_apt_locks) and retry a lock taken in between
# (apt_retrying). dpkg skips its fsync per file (--force-unsafe-io): on a
# small cloud disk that halves the unpack time, and a run cut short by a
# crash is finished by rerunning. No translations are fetched on update.
apt_get() {
  DEBIAN_FRONTEND=noninteractive apt-get -q -y \
    -o DPkg::Lock::Timeout="$(apt_lock_time_left)" \
    -o Acquire::Languages=none \
    -o Dpkg::Options::=--force-confold \
    -o Dpkg::Options::=--force-unsafe-io "$@"
}

# APT_LOCK_FILES are the locks apt and dpkg take (fcntl write locks). apt
# takes the dpkg ones for any change; apt-get update takes the lists lock
# and fails at once while another holds it; a download takes the archives
# lock. DPKG_LOCK_FILES (space-separated) replaces them in tests.
APT_LOCK_FILES=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)

# apt_lock_files prints the lock files to watch, one per line.
apt_lock_files() {
  if [ -n "${DPKG_LOCK_FILES:-}" ]; then
    tr ' ' '\n' <<<"$DPKG_LOCK_FILES"
  else
    printf '%s\n' "${APT_LOCK_FILES[@]}"
  fi
}

# lock_name says which lock FILE is, for people.
lock_name() {
  case "$1" in
    */lists/lock) echo "the apt lists lock" ;;
    */archives/lock) echo "the apt archives lock" ;;
    *) echo "the dpkg lock" ;;
  esac
}

# apt_lock_deadline is the $SECONDS by which this script stops waiting for
# apt locks: APT_LOCK_TIMEOUT after the first wait, shared by every wait
# and retry after it. apt_lock_time_left prints the seconds left (0 when
# none).
apt_lock_deadline=
apt_lock_time_left() {
  : "${apt_lock_deadline:=$((SECONDS + ${APT_LOCK_TIMEOUT:-300}))}"
  local left=$((apt_lock_deadline - SECONDS))
  printf '%s\n' $((left > 0 ? left : 0))
}

# lock_holder prints "FILE<tab>pid N: COMMAND" for the first of the given
# files that a process holds a POSIX record lock on (the fcntl locks apt and
# dpkg take), or nothing. /proc/locks names a locked file by its device
# (major:minor in hex) and inode.
lock_holder() {
  local f d key pid cmd
  for f in "$@"; do
    [ -e "$f" ] || continue
    d=$(stat -c %d "$f")
    key=$(printf '%02x:%02x:%s' $(((d >> 8) & 0xfff)) $(((d & 0xff) | ((d >> 12) & 0xfff00))) "$(stat -c %i "$f")")
    pid=$(awk -v key="$key" '$2 != "->" && $6 == key {print $5; exit}' /proc/locks)
    [ -n "$pid" ] || continue
    if [ "$pid" -gt 0 ] 2>/dev/null; then
      cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | cut -c1-80) || cmd=
      printf '%s\tpid %s: %s\n' "$f" "$pid" "${cmd% }"
    else # an OFD lock, or a holder in another PID namespace
      printf '%s\ta process not visible from here\n' "$f"
    fi
    return 0
  done
}

# wait_for_apt_locks waits while another apt or dpkg run (apt-daily and
# unattended-upgrades on a fresh host) holds any of the apt and dpkg locks,
# within what is left of APT_LOCK_TIMEOUT (the user's --apt-lock-timeout),
# then stops with advice naming the lock and its holder. Each lock and
# holder waited for is said once (and every 30s while it lasts), and so is
# the time waited in all.
wait_for_apt_locks() {
  local limit=${APT_LOCK_TIMEOUT:-300} start=$SECONDS next=0 held file who last=''
  local -a files
  mapfile -t files < <(apt_lock_files)
  apt_lock_time_left >/dev/null
  while held=$(lock_holder "${files[@]}") && [ -n "$held" ]; do
    IFS=$'\t' read -r file who <<<"$held"
    if [ "$SECONDS" -ge "$apt_lock_deadline" ]; then
      dpkg_lock_advice "$who" "$file" "$limit"
    fi
    if [ "$held" != "$last" ] || [ $((SECONDS - start)) -ge "$next" ]; then
      note "waiting for $(lock_name "$file"): $file is held by another apt or dpkg ($who); waited $((SECONDS - start))s, at most ${limit}s in all"
      last=$held
      next=$((SECONDS - start + 30))
    fi
    sleep 1
  done
  if [ -n "$last" ]; then
    note "the apt and dpkg locks are free after waiting $((SECONDS - start))s"
  fi
}

# apt_try runs apt_get with ARGS once every apt and dpkg lock is free,
# keeping its output in $apt_out. Another apt that takes a lock between the
# wait and apt-get (apt-get update then fails at once with "Could not get
# lock") is waited for, and apt-get run again, within what is left of
# APT_LOCK_TIMEOUT. Returns apt-get's failure otherwise.
apt_try() {
  local lock
  while :; do
    wait_for_apt_locks
    if apt_out=$(apt_get "$@" 2>&1); then
      return 0
    fi
    lock=$(grep -o -m 1 'Could not get lock [^ ]*' <<<"$apt_out") || return 1
    [ "$(apt_lock_time_left)" -gt 0 ] || return 1
    lock=${lock#Could not get lock }
    note "apt-get $1 could not get ${lock%.}: another apt took it; waiting and trying again"
    sleep 1
  done
}

# dpkg_lock_advice stops the script because another apt or dpkg kept a
# lock: WHO (pid and command, or empty), FILE, and how long kafkaup waited.
dpkg_lock_advice() {
  die "another apt or dpkg (${1:-pid unknown}) held $(lock_name "$2") $2 for all of the ${3}s kafkaup waits for it (--apt-lock-timeout), so no package was installed. Wait for it to finish (on a fresh host it is usually apt-daily or unattended-upgrades, or cloud-init installing updates) and rerun the same command, or raise --apt-lock-timeout (e.g. 15m)."
}

# wait_for_cloud_init waits (at most CLOUD_INIT_TIMEOUT seconds) until
# cloud-init has finished the first boot, which installs packages itself.
wait_for_cloud_init() {
  local limit=${CLOUD_INIT_TIMEOUT:-600} status
  have cloud-init || return 0
  log "waiting for cloud-init to finish (at most ${limit}s)"
  if ! timeout "$limit" cloud-init status --wait >/dev/null 2>&1; then
    status=$(cloud-init status 2>/dev/null) || true
    case "$status" in
      *running*) die "cloud-init is still running after ${limit}s, so the host is not ready for packages yet. Wait for the first boot to finish and rerun the same command." ;;
    esac
    note "cloud-init finished with errors ($status); continuing"
  fi
}

# sha256_of prints the sha256 of a file, or - when it does not exist.
sha256_of() {
  if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo -; fi
}

# The restart marker says the broker must restart to run what is on disk.
# A script sets it before it changes the broker's files or binaries, so a
# run cut short after the change still restarts on the next run; service.sh
# clears it once the broker is up again; observe.sh reports it as
# restart_pending. restart_marker is the one place its path is spelled.
restart_marker() { printf '%s\n' "${STATE_DIR:?}/restart-pending"; }
mark_restart_pending() {
  mkdir -p "${STATE_DIR:?}"
  touch "$(restart_marker)"
}
clear_restart_pending() { rm -f "$(restart_marker)"; }

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

# checksum_name names the digest WANT is by its length: 64 hex digits are a
# sha256, anything else a sha512. checksum_of prints FILE's digest in it.
checksum_name() { if [ "${#1}" = 64 ]; then echo sha256; else echo sha512; fi; }
checksum_of() { "$(checksum_name "$1")sum" "$2" | cut -d' ' -f1; }

# fetch downloads URL to FILE: a Kafka tarball or its checksum file, or
# the metrics agent's jar. A mirror error (5xx, 408, 429, a refused or
# reset connection, a transfer that ends early or stalls) is tried again,
# DOWNLOAD_RETRIES times, after 2, 4, 8... (at most 30) seconds. With WANT
# (a sha512, or a sha256 when it is 64 hex digits), a download whose
# digest differs is also fetched again: a body cut short or damaged in
# transit. The same wrong digest twice is no transfer fault: the mirror
# serves another file (returns 2). On failure last_error says why (returns
# 1). The file appears only whole and verified; FILE.part and curl's
# messages in FILE.err stay beside it, so FILE belongs in the caller's
# temporary directory.
fetch() {
  local url=$1 out=$2 want=${3:-} attempt=1 delay=2 code rc got prev=''
  while :; do
    rm -f "$out.part"
    rc=0
    code=$(curl -sS -L --connect-timeout 15 --speed-limit 1024 --speed-time 30 \
      -w '%{http_code}' -o "$out.part" "$url" 2>"$out.err") || rc=$?
    if [ "$rc" = 0 ] && [ "$code" -ge 400 ]; then
      last_error="HTTP $code"
      case "$code" in
        408 | 429 | 5??) ;;
        *) rm -f "$out.part"; return 1 ;; # 404 and the like: retrying will not help
      esac
    elif [ "$rc" != 0 ]; then
      last_error=$(sed -n 's/^curl: //p' "$out.err" | tail -n 1)
      last_error=${last_error:-curl exit status $rc}
    elif [ -z "$want" ]; then
      mv -f "$out.part" "$out"
      return 0
    else
      got=$(checksum_of "$want" "$out.part")
      if [ "$got" = "$want" ]; then
        mv -f "$out.part" "$out"
        return 0
      fi
      if [ "$got" = "$prev" ]; then
        rm -f "$out.part"
        last_error=$got
        return 2
      fi
      prev=$got
      last_error="the $(stat -c %s "$out.part")-byte download has the wrong $(checksum_name "$want") (cut short or damaged in transit)"
    fi
    rm -f "$out.part"
    if [ "$attempt" -gt "${DOWNLOAD_RETRIES:?}" ]; then
      last_error="$last_error, on all $attempt attempts"
      return 1
    fi
    note "attempt $attempt of $((DOWNLOAD_RETRIES + 1)) to download $url failed: $last_error; retrying in ${delay}s"
    sleep "$delay"
    attempt=$((attempt + 1))
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
  done
}

# fetch_first downloads WHAT to FILE from the first of URL... that serves
# it (fetch: retries, backoff, the WANT digest checked), and dies with
# advice when a mirror serves another file (MISMATCH_HINT) or none can be
# reached (UNREACHABLE_HINT). EXPECTED is how the message names WANT.
fetch_first() {
  local out=$1 want=$2 expected=$3 what=$4 mismatch_hint=$5 unreachable_hint=$6 u rc failed=()
  shift 6
  for u in "$@"; do
    log "downloading $u"
    rc=0
    fetch "$u" "$out" "$want" || rc=$?
    case "$rc" in
      0) return 0 ;;
      2) die "checksum mismatch for $what from $u: expected $expected, got $last_error twice. $mismatch_hint" ;;
    esac
    note "download from $u failed: $last_error"
    failed+=("$u ($last_error)")
  done
  die "could not download $what: ${failed[*]}. $unreachable_hint"
}

# epoch_now prints the time in seconds since the epoch, with milliseconds.
epoch_now() { date +%s.%3N; }

# head_start_state tells what became of the head start whose directory is
# DIR (see head-start.sh): none (never launched), running, done, failed,
# or interrupted (its process is gone before it finished: a reboot, or
# kafkaup stopped it). A launch less than a minute old whose process has
# not written its pid yet counts as running.
head_start_state() {
  local st=$1/status boot pid launched
  if [ ! -f "$st" ]; then echo none; return 0; fi
  if grep -q '^finished=' "$st"; then
    if grep -qx 'result=ok' "$st"; then echo 'done'; else echo failed; fi
    return 0
  fi
  boot=$(sed -n 's/^boot_id=//p' "$st" | tail -n 1)
  pid=$(sed -n 's/^pid=//p' "$st" | tail -n 1)
  launched=$(sed -n 's/^launched=//p' "$st" | tail -n 1)
  launched=${launched:-0}
  if [ "$boot" != "$(cat /proc/sys/kernel/random/boot_id)" ] || grep -q '^stopped_by_kafkaup=' "$st"; then
    echo interrupted
  elif [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q head-start; then
    echo running
  elif [ -z "$pid" ] && [ "$(($(date +%s) - ${launched%.*}))" -lt 60 ]; then
    echo running
  else
    echo interrupted
  fi
}

# mark_log FILE notes where a log stands: its file (device and inode:
# log4j renames the broker's server.log away every hour and starts a new
# one) and its size. logged_since_mark looks only past the mark, so that
# no line of an earlier broker counts.
mark_log() {
  log_mark_id=$(stat -c %d:%i "$1" 2>/dev/null || echo none)
  log_mark_offset=$(stat -c %s "$1" 2>/dev/null || echo 0)
}

# logged_since_mark FILE PATTERN says PATTERN was written to FILE since
# mark_log FILE: past the mark in the marked file (wherever it was renamed
# to, FILE.*), or anywhere in a FILE begun since.
logged_since_mark() {
  local f marked=
  for f in "$1" "$1".*; do
    if [ "$(stat -c %d:%i "$f" 2>/dev/null)" = "$log_mark_id" ]; then
      marked=$f
      break
    fi
  done
  if [ -n "$marked" ] && grep -q -- "$2" < <(tail -c +"$((log_mark_offset + 1))" "$marked" 2>/dev/null); then
    return 0
  fi
  [ "$marked" != "$1" ] && grep -q -- "$2" "$1" 2>/dev/null
}
