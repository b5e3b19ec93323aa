#!/bin/bash
# kafkaup test stand-in for Apache Kafka's bin/kafka-server-stop.sh (assembled from
# Maven Central by internal/testenv/kafkadist). Like the official script it signals
# EVERY broker on the host (no --process-role/--node-id filtering here).

SIGNAL=${SIGNAL:-TERM}
PIDS=$(ps ax | grep ' kafka\.Kafka ' | grep java | grep -v grep | awk '{print $1}')

if [ -z "$PIDS" ]; then
  echo "No kafka server to stop"
  exit 1
else
  kill -s $SIGNAL $PIDS
fi
