#!/usr/bin/env bash
# swap.sh: a swapfile of SWAP_BYTES at SWAP_FILE, active, with exactly one
# /etc/fstab entry. Resizes when the size differs.
# Inputs: SWAP_FILE, SWAP_BYTES.

active() { awk -v f="$SWAP_FILE" '$1 == f {found=1} END {exit found ? 0 : 1}' /proc/swaps; }

ensure_fstab() {
  local tmp=/etc/fstab.kafkaup-tmp
  local entries
  entries=$(awk -v f="$SWAP_FILE" '$1 == f && $3 == "swap" {n++} END {print n + 0}' /etc/fstab 2>/dev/null || echo 0)
  if [ "$entries" = 1 ]; then return 0; fi
  touch /etc/fstab
  awk -v f="$SWAP_FILE" '$1 != f' /etc/fstab >"$tmp"
  printf '%s none swap sw 0 0\n' "$SWAP_FILE" >>"$tmp"
  chmod --reference=/etc/fstab "$tmp"
  mv -f "$tmp" /etc/fstab
  log "/etc/fstab: one entry for $SWAP_FILE"
}

make_swapfile() {
  local tmp="$SWAP_FILE.kafkaup-tmp" how=$1
  rm -f "$tmp"
  if [ "$how" = fallocate ] && fallocate -l "$SWAP_BYTES" "$tmp" 2>/dev/null; then
    :
  else
    rm -f "$tmp"
    dd if=/dev/zero of="$tmp" bs=1M count=$((SWAP_BYTES / 1048576)) status=none
  fi
  chmod 0600 "$tmp"
  mkswap "$tmp" >/dev/null
  mv -f "$tmp" "$SWAP_FILE"
}

if active; then
  if [ "$(stat -c %s "$SWAP_FILE")" = "$SWAP_BYTES" ]; then
    ensure_fstab
    exit 0
  fi
  log "resizing $SWAP_FILE: swapoff"
  swapoff "$SWAP_FILE" || die "could not turn off $SWAP_FILE to resize it (not enough free memory to take its pages back?). Retry when the host is less busy, or keep the current size with --swap $(stat -c %s "$SWAP_FILE")."
fi

make_swapfile fallocate
if ! swapon "$SWAP_FILE" 2>"$SWAP_FILE.err"; then
  # Some filesystems refuse fallocated swapfiles ("has holes"): write it out.
  log "swapon refused a fallocated file ($(cat "$SWAP_FILE.err")); writing it with dd"
  make_swapfile dd
  if ! swapon "$SWAP_FILE" 2>"$SWAP_FILE.err"; then
    err=$(cat "$SWAP_FILE.err")
    rm -f "$SWAP_FILE" "$SWAP_FILE.err"
    die "swapon $SWAP_FILE failed: $err. This host's filesystem or container does not allow a swapfile there; rerun with --swap 0 to skip swap."
  fi
fi
rm -f "$SWAP_FILE.err"
ensure_fstab
log "swap on: $(awk -v f="$SWAP_FILE" '$1 == f {print $1, $3 " KiB"}' /proc/swaps)"
