#!/usr/bin/env bash
# wait-head-start.sh: wait while the head start (head-start.sh) that began
# at boot installs Java and downloads Kafka, instead of racing it for the
# apt lock and the download. A progress line every 15 s says what it is
# doing. The wait is bounded: a head start that shows no progress for
# STALL_TIMEOUT seconds (its log, status, download and dpkg's logs stay the
# same and its processes use no CPU), or
# still runs after TIMEOUT seconds, is stopped, and the plan that follows
# does its work over SSH. Changes nothing else.
# Inputs: HEAD_START_DIR, UNIT, DIST_NAME, TIMEOUT, STALL_TIMEOUT.

st=$HEAD_START_DIR/status
part=$HEAD_START_DIR/kafka/$DIST_NAME.tgz.part

value() { sed -n "s/^$1=//p" "$st" | tail -n 1; }
has() { grep -q "^$1=" "$st"; }

# doing says what the head start is busy with.
doing() {
  local what=() bytes since rate
  if has java.start && ! has java.end; then
    if has apt_wait.start && ! has apt_wait.end; then
      what+=("Java waits for the apt lock ($(value apt_wait.holder))")
    elif has apt_update.start && ! has apt_update.end; then
      what+=("apt-get update")
    else
      what+=("installing ${JAVA_PKG:-Java} with apt")
    fi
  fi
  if has download.start && ! has download.end; then
    bytes=$(stat -c %s "$part" 2>/dev/null || echo 0)
    since=$(value download.start)
    rate=$(awk -v b="$bytes" -v s="$since" -v n="$(epoch_now)" 'BEGIN {d = n - s; if (d > 0) printf "%.1f", b / d / 1e6; else print 0}')
    what+=("downloading $DIST_NAME.tgz: $((bytes / 1000000)) MB so far at $rate MB/s")
  fi
  if [ "${#what[@]}" = 0 ]; then what=("starting"); fi
  local IFS=';'
  printf '%s' "${what[*]}"
}

# session_cpu lists the CPU time of every process in the head start's
# session (systemd-run and setsid both make head-start.sh a session
# leader, so its pid is the session id). apt logs nothing while dpkg runs
# a long, silent maintainer script (a JDK's, under a slow CPU, for
# minutes), so work shows here and in dpkg's own logs, not in the head
# start's log: a head start busy that way is not a stalled one.
session_cpu() {
  local pid
  pid=$(value pid)
  [ -n "$pid" ] || return 0
  ps -e -o sess=,pid=,time= 2>/dev/null | awk -v s="$pid" '$1 == s {printf "%s:%s ", $2, $3}' || true
}

# signature changes whenever the head start makes progress: its status,
# its log, the download, dpkg's logs, or CPU time used.
signature() {
  { stat -c '%s %Y' "$st" "$HEAD_START_DIR/log" "$part" /var/log/dpkg.log /var/log/apt/term.log 2>/dev/null || true; } | tr '\n' ' '
  session_cpu
}

stop_it() {
  note "stopping the head start: $1; kafkaup does its work over SSH instead"
  printf 'stopped_by_kafkaup=%s\nstop_reason=%s\n' "$(epoch_now)" "$1" >>"$st"
  local pid
  pid=$(value pid)
  if uses_systemd && systemctl is-active --quiet "$UNIT" 2>/dev/null; then
    systemctl stop "$UNIT" || true
  elif [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  fi
}

start=$SECONDS next=0 last=$(signature) changed=$SECONDS
while [ "$(head_start_state "$HEAD_START_DIR")" = running ]; do
  JAVA_PKG=$(value java.package)
  sig=$(signature)
  if [ "$sig" != "$last" ]; then last=$sig changed=$SECONDS; fi
  if [ $((SECONDS - changed)) -ge "$STALL_TIMEOUT" ]; then
    stop_it "no progress for ${STALL_TIMEOUT}s"
    break
  fi
  if [ $((SECONDS - start)) -ge "$TIMEOUT" ]; then
    stop_it "still running after ${TIMEOUT}s"
    break
  fi
  if [ $((SECONDS - start)) -ge "$next" ]; then
    note "waiting for the head start begun at boot: $(doing) ($((SECONDS - start))s so far)"
    next=$((next + 15))
  fi
  sleep 1
done
log "head start: $(head_start_state "$HEAD_START_DIR") after waiting $((SECONDS - start))s"
