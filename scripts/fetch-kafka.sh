#!/usr/bin/env bash
# fetch-kafka.sh: download (or take the uploaded) Kafka tarball, verify its
# sha512 before unpacking, install it into a versioned directory and point
# the stable symlink at it. A mismatch installs nothing.
# Inputs: INSTALL_DIR, DIST_NAME (kafka_2.13-4.0.0), URLS, SHA512_URLS,
# SHA512 (expected hex or empty), LOCAL_TARBALL (staged upload or empty),
# DOWNLOAD_RETRIES (per URL, with exponential backoff), STATE_DIR.

# parse_sha512 reads Apache's `gpg --print-md sha512` format
# ("name: 00722AB0 A6B954E0 ...", wrapped over lines) or sha512sum's
# ("hex  name") and prints the lower-case hex digest.
parse_sha512() {
  local text
  text=$(cat "$1")
  case "$text" in
    *': '*) text=${text#*: } ;;
    *) text=${text%%[[:space:]]*} ;;
  esac
  printf '%s' "$text" | tr -d ' \t\r\n' | tr 'A-F' 'a-f'
}

is_sha512() { [[ "$1" =~ ^[0-9a-f]{128}$ ]]; }

dest="$INSTALL_DIR/$DIST_NAME"
mkdir -p "$INSTALL_DIR/.download"
work=$(mktemp -d "$INSTALL_DIR/.download/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

expected=$SHA512
if [ -z "$expected" ]; then
  failed=()
  for u in "${SHA512_URLS[@]}"; do
    log "fetching checksum $u"
    if fetch "$u" "$work/sha512"; then
      expected=$(parse_sha512 "$work/sha512")
      is_sha512 "$expected" && break
      log "$u is not a sha512 file"
      failed+=("$u (not a sha512 file)")
      expected=
    else
      failed+=("$u ($last_error)")
    fi
  done
  [ -n "$expected" ] || die "could not get the sha512 checksum of $DIST_NAME: ${failed[*]}. Nothing was installed. Check that the host can reach it, or pass --kafka-sha512 with the digest from the Apache download page."
fi
is_sha512 "$expected" || die "the expected sha512 '$expected' is not 128 hex digits"

if [ -n "$LOCAL_TARBALL" ]; then
  tgz=$LOCAL_TARBALL
else
  tgz="$work/$DIST_NAME.tgz"
  failed=()
  for u in "${URLS[@]}"; do
    log "downloading $u"
    rc=0
    fetch "$u" "$tgz" "$expected" || rc=$?
    case "$rc" in
      0) break ;;
      2) die "checksum mismatch for $DIST_NAME.tgz from $u: expected $expected, got $last_error twice. The mirror serves a different file than the release you asked for; nothing was installed. Check --kafka-url/--kafka-sha512 and rerun." ;;
    esac
    note "download from $u failed: $last_error"
    failed+=("$u ($last_error)")
  done
  [ -f "$tgz" ] || die "could not download $DIST_NAME.tgz: ${failed[*]}. Nothing was installed. Check that the host can reach the mirror (curl -I URL on the host), or pass --kafka-url with another mirror, or --kafka-tarball to upload a local copy; then rerun the same command."
fi

# Downloads were verified as they arrived; an uploaded tarball is checked here.
actual=$expected
if [ -n "$LOCAL_TARBALL" ]; then actual=$(sha512sum "$tgz" | cut -d' ' -f1); fi
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $DIST_NAME.tgz: expected $expected, got $actual. The file is corrupt or not the release you asked for; nothing was installed. Check --kafka-url/--kafka-sha512 and rerun."
fi
log "sha512 verified"

mkdir "$work/unpack"
tar -xzf "$tgz" -C "$work/unpack" --no-same-owner
[ -x "$work/unpack/$DIST_NAME/bin/kafka-server-start.sh" ] || die "$DIST_NAME.tgz does not contain $DIST_NAME/bin/kafka-server-start.sh; is it a Kafka binary release?"
printf '%s\n' "$actual" >"$work/unpack/$DIST_NAME/.kafkaup-sha512"
chown -R root:root "$work/unpack/$DIST_NAME"
chmod 0755 "$work/unpack/$DIST_NAME"

mark_restart_pending
if [ -e "$dest" ]; then
  # A broken or different copy of this version: keep it aside until the new one is in place.
  mv "$dest" "$work/previous"
fi
mv "$work/unpack/$DIST_NAME" "$dest"
ln -sfn "$DIST_NAME" "$INSTALL_DIR/.current.tmp"
mv -Tf "$INSTALL_DIR/.current.tmp" "$INSTALL_DIR/current"
if [ -n "$LOCAL_TARBALL" ]; then rm -f "$LOCAL_TARBALL"; fi
log "installed $dest and pointed $INSTALL_DIR/current at it"
