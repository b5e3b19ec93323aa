#!/usr/bin/env bash
# install-files.sh: move files uploaded to STAGING into place atomically
# (temp file + rename in the target directory) when their content changed,
# and mark the broker for a restart first, so a run cut short still restarts.
# Files in REMOVE are deleted (a managed file no longer wanted).
# Inputs: STAGING, SRC, DEST, MODE, OWNER (parallel arrays), REMOVE, STATE_DIR.

# mark_changed records, before the first change, that the broker must
# restart: a run cut short after it still restarts on the next run.
changed=0
mark_changed() {
  if [ "$changed" = 0 ]; then mark_restart_pending; fi
  changed=1
}

for i in "${!SRC[@]}"; do
  src="$STAGING/${SRC[$i]}" dest=${DEST[$i]}
  [ -f "$src" ] || die "staged file $src is missing; rerun the same command"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then continue; fi
  mark_changed
  mkdir -p "$(dirname "$dest")"
  install -m "${MODE[$i]}" -o "${OWNER[$i]%%:*}" -g "${OWNER[$i]##*:}" "$src" "$dest.kafkaup-tmp"
  mv -f "$dest.kafkaup-tmp" "$dest"
  log "wrote $dest"
done
for dest in "${REMOVE[@]}"; do
  [ -e "$dest" ] || continue
  mark_changed
  rm -f "$dest"
  log "removed $dest"
done
rm -rf "$STAGING"
if [ "$changed" = 1 ] && uses_systemd; then systemctl daemon-reload; fi
