#!/usr/bin/env bash
# service.sh: start, restart or stop the broker and wait until it is really
# up ("Kafka Server started" in its log) or really gone. Under systemd it is
# an enabled unit; without systemd it runs as a daemon that will not survive
# a reboot.
# Inputs: ACTION (start|restart|stop), SERVICE, KAFKA_HOME, CONFIG, ENV_FILE,
# LOG_DIR, STATE_DIR, BROKER_PORT, START_TIMEOUT, STOP_TIMEOUT, KILL_AFTER
# (stop: seconds after which a broker still shutting down is killed; 0:
# never, up to STOP_TIMEOUT).

server_log="$LOG_DIR/server.log"

mark_log "$server_log"

# A broker already running when a plain start was asked for logged its
# "started" line before this script looked: for it, serving on its port is
# the sign (it may still be starting, after a run that was cut off).
was_running=$([ -n "$(broker_pids)" ] && echo 1 || echo 0)

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null; }

started() {
  if [ "$ACTION" = start ] && [ "$was_running" = 1 ]; then
    listening
    return
  fi
  logged_since_mark "$server_log" 'Kafka Server started'
}

wait_stopped() {
  local deadline=$((SECONDS + STOP_TIMEOUT)) kill_at=$((SECONDS + KILL_AFTER)) killed=0
  while [ -n "$(broker_pids)" ]; do
    if [ "$KILL_AFTER" -gt 0 ] && [ "$killed" = 0 ] && [ "$SECONDS" -ge "$kill_at" ]; then
      # Stopping a whole cluster: a broker still in its controlled
      # shutdown now waits for a controller quorum that left with the
      # other nodes; Kafka itself gives up after 5 minutes. Its files are
      # intact (the host keeps running): it recovers its logs at the next
      # start.
      note "the broker is still shutting down after ${KILL_AFTER}s, waiting for a controller quorum that is gone: killing it (it recovers its logs at the next start)"
      if uses_systemd; then systemctl kill --signal=SIGKILL "$SERVICE" || true; fi
      # shellcheck disable=SC2046
      kill -KILL $(broker_pids) 2>/dev/null || true
      killed=1
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "the broker did not stop within ${STOP_TIMEOUT}s"
    sleep 1
  done
}

if [ "$ACTION" = stop ]; then
  if uses_systemd; then
    log "systemctl stop $SERVICE"
    if [ "$KILL_AFTER" -gt 0 ]; then
      systemctl stop --no-block "$SERVICE"
    else
      systemctl stop "$SERVICE"
    fi
  else
    pids=$(broker_pids)
    if [ -n "$pids" ]; then
      log "stopping broker (pid ${pids//$'\n'/ })"
      # shellcheck disable=SC2086
      kill -TERM $pids
    fi
  fi
  wait_stopped
  log "broker stopped"
  exit 0
fi

if uses_systemd; then
  systemctl daemon-reload
  systemctl enable "$SERVICE" 2>/dev/null
  if [ "$ACTION" = restart ]; then
    # Stop, then mark the log, then start: a broker that was still
    # starting logs its "started" line before it stops, and that line
    # must not pass for the new broker's.
    log "systemctl stop $SERVICE, then start"
    systemctl stop "$SERVICE"
    wait_stopped
    mark_log "$server_log"
    systemctl start "$SERVICE"
  else
    log "systemctl start $SERVICE"
    systemctl start "$SERVICE"
  fi
else
  pids=$(broker_pids)
  if [ -n "$pids" ] && [ "$ACTION" = restart ]; then
    log "stopping broker (pid ${pids//$'\n'/ })"
    # shellcheck disable=SC2086
    kill -TERM $pids
    wait_stopped
    mark_log "$server_log"
    pids=
  fi
  if [ -z "$pids" ]; then
    log "starting broker with kafka-server-start.sh -daemon (no systemd here: it will not come back after a reboot)"
    # A fresh bash reads the broker's env file (this script's own variables are readonly).
    # shellcheck disable=SC2016
    bash -c '
      set -a; . "$1"; set +a
      cd /
      exec setsid runuser -u kafka -- env KAFKA_HEAP_OPTS="$KAFKA_HEAP_OPTS" LOG_DIR="$LOG_DIR" \
        "$2/bin/kafka-server-start.sh" -daemon "$3" </dev/null >/dev/null 2>&1
    ' kafkaup-start "$ENV_FILE" "$KAFKA_HOME" "$CONFIG" 9>&- # the daemon must not keep this script's lock
  fi
fi

deadline=$((SECONDS + START_TIMEOUT))
until started; do
  if uses_systemd; then
    state=$(systemctl is-active "$SERVICE" 2>/dev/null) || true
    if [ "$state" = failed ] || [ "$state" = inactive ]; then
      journalctl -u "$SERVICE" -n 30 --no-pager >&2 || true
      die "the broker exited during start-up (systemd says $state); its last log lines are above. Fix the cause and rerun."
    fi
  elif [ -z "$(broker_pids)" ]; then
    tail -n 30 "$LOG_DIR/kafkaServer.out" >&2 2>/dev/null || true
    die "the broker exited during start-up; its last log lines are above. Fix the cause and rerun."
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 30 "$server_log" >&2 2>/dev/null || true
    die "the broker did not log 'Kafka Server started' within ${START_TIMEOUT}s; see $server_log on the host."
  fi
  sleep 1
done
clear_restart_pending
log "broker up (pid $(broker_pids | paste -sd ' ' -))"
