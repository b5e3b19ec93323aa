#!/usr/bin/env bash
# topics.sh: run Kafka's own kafka-topics.sh on the host (kafkaup topics
# --via-ssh, for when the broker's port is not reachable from the laptop).
# Inputs: ACTION (list|describe|create|delete), TOPIC, PARTITIONS,
# REPLICATION_FACTOR, CONFIGS, KAFKA_HOME, BOOTSTRAP.

[ -x "$KAFKA_HOME/bin/kafka-topics.sh" ] || die "Kafka is not installed under $KAFKA_HOME on this host; run kafkaup reprovision first."
args=(--bootstrap-server "$BOOTSTRAP")
case "$ACTION" in
  list) args+=(--list) ;;
  describe) args+=(--describe --topic "$TOPIC") ;;
  create)
    args+=(--create --topic "$TOPIC" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR")
    for c in "${CONFIGS[@]}"; do args+=(--config "$c"); done
    ;;
  delete) args+=(--delete --topic "$TOPIC") ;;
  *) die "unknown topics action $ACTION" ;;
esac
exec "$KAFKA_HOME/bin/kafka-topics.sh" "${args[@]}"
