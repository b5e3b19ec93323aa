#!/usr/bin/env bash
# setup-dirs.sh: the kafka system user and the directories it owns.
# Inputs: DATA_DIR, LOG_DIR, CONFIG_DIR, STATE_DIR.

if ! id -u kafka >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/kafka --no-create-home --shell /usr/sbin/nologin --user-group kafka
  log "created system user kafka"
fi
install -d -o kafka -g kafka -m 0750 "$DATA_DIR" "$LOG_DIR"
install -d -o root -g kafka -m 0750 "$CONFIG_DIR"
install -d -o root -g root -m 0700 "$STATE_DIR"
# The data dir must be writable by the broker even when it already existed.
chown kafka:kafka "$DATA_DIR" "$LOG_DIR"
