#!/usr/bin/env bash
# fetch-kafka.sh: download (or take the uploaded) Kafka tarball, verify its
# sha512 before unpacking, install it into a versioned directory and point
# the stable symlink at it. A mismatch installs nothing.
# Inputs: INSTALL_DIR, DIST_NAME (kafka_2.13-4.0.0), URLS, EXPECTED_SHA512
# (lower-case hex: --kafka-sha512, the uploaded tarball's own digest, or the
# release's .sha512 file that kafkaup fetched through fetch-checksum.sh and
# read with provision.ParseSHA512File before this script runs),
# LOCAL_TARBALL (staged upload or empty), HEAD_START_TARBALL (what the
# head start staged its download at boot, or empty: used only when its
# sha512 is EXPECTED_SHA512, else downloaded again; its leftovers (a
# cut-off .part, curl's .err) are removed once this is done), DOWNLOAD_RETRIES
# (per URL, with exponential backoff), STATE_DIR. Prints download_source,
# download_bytes and download_seconds for create's timeline.

dest="$INSTALL_DIR/$DIST_NAME"
mkdir -p "$INSTALL_DIR/.download"
work=$(mktemp -d "$INSTALL_DIR/.download/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

[[ "$EXPECTED_SHA512" =~ ^[0-9a-f]{128}$ ]] || die "the expected sha512 '$EXPECTED_SHA512' is not 128 hex digits"

began=$(epoch_now)
source=
if [ -z "$LOCAL_TARBALL" ] && [ -n "$HEAD_START_TARBALL" ] && [ -f "$HEAD_START_TARBALL" ]; then
  got=$(sha512sum "$HEAD_START_TARBALL" | cut -d' ' -f1)
  if [ "$got" = "$EXPECTED_SHA512" ]; then
    log "using the head start's download $HEAD_START_TARBALL (sha512 verified)"
    mv -f "$HEAD_START_TARBALL" "$work/$DIST_NAME.tgz"
    source=head-start
  else
    note "the head start's download $HEAD_START_TARBALL ($(stat -c %s "$HEAD_START_TARBALL") bytes) has the wrong sha512 ($got, expected $EXPECTED_SHA512): removed; downloading it again"
    rm -f "$HEAD_START_TARBALL"
  fi
fi

if [ -n "$LOCAL_TARBALL" ]; then
  tgz=$LOCAL_TARBALL
  source=upload
elif [ -n "$source" ]; then
  tgz="$work/$DIST_NAME.tgz"
else
  tgz="$work/$DIST_NAME.tgz"
  source=download
  fetch_first "$tgz" "$EXPECTED_SHA512" "$EXPECTED_SHA512" "$DIST_NAME.tgz" \
    "The mirror serves a different file than the release you asked for; nothing was installed. Check --kafka-url/--kafka-sha512 and rerun." \
    "Nothing was installed. Check that the host can reach the mirror (curl -I URL on the host), or pass --kafka-url with another mirror, or --kafka-tarball to upload a local copy; then rerun the same command." \
    "${URLS[@]}"
fi
printf 'download_source=%s\ndownload_bytes=%s\ndownload_seconds=%s\n' "$source" "$(stat -c %s "$tgz")" \
  "$(awk -v a="$began" -v b="$(epoch_now)" 'BEGIN {printf "%.3f", b - a}')"

# Downloads were verified as they arrived; an uploaded tarball is checked here.
actual=$EXPECTED_SHA512
if [ -n "$LOCAL_TARBALL" ]; then actual=$(sha512sum "$tgz" | cut -d' ' -f1); fi
if [ "$actual" != "$EXPECTED_SHA512" ]; then
  die "checksum mismatch for $DIST_NAME.tgz: expected $EXPECTED_SHA512, got $actual. The file is corrupt or not the release you asked for; nothing was installed. Check --kafka-url/--kafka-sha512 and rerun."
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
if [ -n "$HEAD_START_TARBALL" ]; then rm -f "$HEAD_START_TARBALL" "$HEAD_START_TARBALL.part" "$HEAD_START_TARBALL.err"; fi
log "installed $dest and pointed $INSTALL_DIR/current at it"
