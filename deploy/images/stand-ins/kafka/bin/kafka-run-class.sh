#!/usr/bin/env bash
# Runs one of Kafka's classes on the broker's jars, as the real image's script of this name does.
# shellcheck disable=SC2086 # the *_OPTS variables hold several options each
exec java ${KAFKA_HEAP_OPTS:--Xmx256M} ${KAFKA_OPTS-} -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.yaml \
  -cp '/opt/kafka/libs/*' "$@"
