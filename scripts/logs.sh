#!/usr/bin/env bash
# logs.sh: print (and with FOLLOW=1, stream) the broker's log: the systemd
# journal where systemd runs, else server.log.
# Inputs: SERVICE, LOG_DIR, LINES, FOLLOW.

if uses_systemd; then
  args=(-u "$SERVICE" -n "$LINES" --no-pager -o short-iso)
  [ "$FOLLOW" = 1 ] && args+=(-f)
  exec journalctl "${args[@]}"
fi
[ -f "$LOG_DIR/server.log" ] || die "no $LOG_DIR/server.log on this host yet: has the broker ever started? Run kafkaup status."
if [ "$FOLLOW" = 1 ]; then
  exec tail -n "$LINES" -F "$LOG_DIR/server.log"
fi
exec tail -n "$LINES" "$LOG_DIR/server.log"
