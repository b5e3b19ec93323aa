#!/usr/bin/env bash
# fetch-agent.sh: download (or take the uploaded) Prometheus JMX exporter
# agent jar, verify its sha256 before it goes into place, and move it to
# AGENT_PATH atomically. A mismatch installs nothing. The broker loads the
# agent from its env file at its next start; this script restarts nothing.
# Inputs: AGENT_PATH, URLS, SHA256 (expected hex), LOCAL_AGENT (staged
# upload or empty), DOWNLOAD_RETRIES (per URL, with exponential backoff).
# Downloads go through lib.sh's fetch.

[[ "$SHA256" =~ ^[0-9a-f]{64}$ ]] || die "the expected sha256 '$SHA256' of the metrics agent is not 64 hex digits"
name=$(basename "$AGENT_PATH")
dir=$(dirname "$AGENT_PATH")
mkdir -p "$dir"
chmod 0755 "$dir"
# Next to the destination, so the final rename is atomic.
work=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
jar="$work/$name"

if [ -n "$LOCAL_AGENT" ]; then
  [ -f "$LOCAL_AGENT" ] || die "the uploaded $name is not at $LOCAL_AGENT; rerun the same command"
  mv -f "$LOCAL_AGENT" "$jar"
  got=$(sha256sum "$jar" | cut -d' ' -f1)
  if [ "$got" != "$SHA256" ]; then
    die "checksum mismatch for the uploaded $name: expected sha256 $SHA256, got $got. It is not the agent release you asked for; nothing was installed. Check --metrics-agent-jar/--metrics-agent-sha256 and rerun."
  fi
else
  fetch_first "$jar" "$SHA256" "sha256 $SHA256" "$name" \
    "The mirror serves a different file than the agent release kafkaup pins; nothing was installed. Check --metrics-agent-url/--metrics-agent-sha256 and rerun." \
    "Nothing was installed. Check that the host can reach the mirror (curl -I URL on the host), or pass --metrics-agent-url with another mirror, or --metrics-agent-jar to upload a local copy; then rerun the same command." \
    "${URLS[@]}"
fi
log "sha256 verified"

chown root:root "$jar"
chmod 0644 "$jar"
mv -f "$jar" "$AGENT_PATH"
log "installed $AGENT_PATH"
