#!/usr/bin/env bash
# format.sh: format KRaft storage once. Never runs over a directory that
# already has meta.properties or holds anything but an interrupted format.
# Inputs: KAFKA_HOME, CONFIG, DATA_DIR, CLUSTER_ID, INITIAL_CONTROLLERS (a
# cluster's voters, the same on every node; empty for a single broker, whose
# static quorum needs none), JOIN_QUORUM (1: a new host of a running
# cluster's node, formatted with --no-initial-controllers and added to the
# quorum once it runs). Never the standalone flag: on a cluster that would
# split the quorum.

if [ -f "$DATA_DIR/meta.properties" ]; then
  log "$DATA_DIR is already formatted (cluster.id $(sed -n 's/^cluster\.id=//p' "$DATA_DIR/meta.properties")); leaving it"
  exit 0
fi
shopt -s nullglob dotglob
for entry in "$DATA_DIR"/*; do
  case "$(basename "$entry")" in
    lost+found | bootstrap.checkpoint | .kafkaup-format) ;;
    *) die "$DATA_DIR holds $(basename "$entry") but no meta.properties, so it is not an empty data directory. kafkaup never formats over existing files: move them away or pick another --data-dir." ;;
  esac
done

# Format into a scratch directory beside the data dir, then move the result in
# with meta.properties last: a cut-short run leaves nothing that looks formatted.
scratch="$DATA_DIR/.kafkaup-format"
rm -rf "$scratch" "$DATA_DIR/bootstrap.checkpoint"
install -d -o kafka -g kafka -m 0750 "$scratch/data"
awk -v d="$scratch/data" '/^log\.dirs=/ {print "log.dirs=" d; next} {print}' "$CONFIG" >"$scratch/server.properties"
chown kafka:kafka "$scratch/server.properties"
quorum=()
if [ "$JOIN_QUORUM" = 1 ]; then
  quorum=(--no-initial-controllers)
elif [ -n "$INITIAL_CONTROLLERS" ]; then
  quorum=(--initial-controllers "$INITIAL_CONTROLLERS")
fi
# A one-shot tool: the client compiler alone starts it much faster on a small host.
runuser -u kafka -- env KAFKA_HEAP_OPTS=-Xmx256m KAFKA_JVM_PERFORMANCE_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true" \
  "$KAFKA_HOME/bin/kafka-storage.sh" format \
    --cluster-id "$CLUSTER_ID" --config "$scratch/server.properties" "${quorum[@]}" >&2
for entry in "$scratch/data"/*; do
  [ "$(basename "$entry")" = meta.properties ] || mv "$entry" "$DATA_DIR/"
done
mv "$scratch/data/meta.properties" "$DATA_DIR/meta.properties"
rm -rf "$scratch"
log "formatted $DATA_DIR with cluster.id $CLUSTER_ID"
