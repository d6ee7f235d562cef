#!/usr/bin/env bash
# Compose's health check of the broker: does it answer a Kafka request on PORT (default 19092, the INTERNAL listener)?
#   bash /etc/kafka/newsflow-health.sh 19092
#
# Why not the usual kafka-broker-api-versions.sh: it starts a JVM, 1.2-1.5 s of CPU a check, and Compose checks every
# 5 s for as long as the broker runs: ~0.3 of a core, ten times what the idle broker itself spends. This sends one
# ApiVersions request (version 0, which every broker answers) through bash's /dev/tcp and reads the answer's first
# 10 bytes: its size, our correlation id echoed, and error code 0; about 10 ms of CPU. Plaintext listeners only:
# deploy/compose/secure.yml, where every client listener is SASL_SSL, keeps Kafka's own tool.
set -euo pipefail
port=${1:-19092}
exec 3<>"/dev/tcp/127.0.0.1/$port"
# size 10 | api key 18 (ApiVersions) | version 0 | correlation id "NF", 1 | client id null
printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x4e\x46\x00\x01\xff\xff' >&3
answer=$(head -c 10 <&3 | od -A n -t x1 | tr -d ' \n')
if [[ ${answer:8} != 4e4600010000 ]]; then
  echo "port $port answered '${answer:-nothing}' to ApiVersions: not correlation id 4e460001 and error code 0000"
  exit 1
fi
echo "port $port answers ApiVersions"
