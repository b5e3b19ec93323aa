#!/usr/bin/env bash
# fetch-checksum.sh: download one release checksum file (the .sha512 beside
# a tarball) from the host, with the tarball's retries and backoff, and
# print its text as it came. kafkaup reads it (provision.ParseSHA512File)
# and tries the next source when it holds no digest. Nothing on the host
# changes. A download that fails stops the script with the reason alone as
# its message (exit 3), e.g. "HTTP 404" or "HTTP 503, on all 5 attempts".
# Inputs: URL, DOWNLOAD_RETRIES.

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "fetching checksum $URL"
fetch "$URL" "$work/sum" || die "$last_error"
# A checksum file is a few hundred bytes: a huge answer is not one.
head -c 65536 "$work/sum"
