#!/usr/bin/env bash
# Makes what deploy/compose/secure.yml mounts: a private CA, the broker's TLS certificate (for the names `kafka`
# and `localhost`) with its key in a PEM keystore, and random SASL passwords for the broker and for the services.
#   deploy/compose/secure-certs.sh [DIR]     # default deploy/compose/secrets; keeps what is already there
# DIR/broker/ is mounted into the broker only; the services get DIR/ca.pem and DIR/newsflow.password.
# Files are readable by the containers' users (other uids than yours), so DIR itself is private (0700).
# For production, sign the broker's certificate with your own CA and prefer SCRAM to PLAIN.
set -euo pipefail
dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
days="${CERT_DAYS:-825}"
mkdir -p "$dir/broker"
chmod 700 "$dir"
cd "$dir"
umask 022
if [ -f broker/kafka-keystore.pem ]; then
  echo "secrets already in $dir (delete it to make new ones)" >&2
  exit 0
fi
if [ -f broker/kafka.p12 ] && [ -f broker/keystore.password ]; then
  # Made by an earlier version, with a PKCS12 keystore: the same key and chain go into the PEM keystore that
  # secure.yml names now, and the CA and the passwords stay, so clients keep working.
  pkcs12() { openssl pkcs12 -in broker/kafka.p12 -passin file:broker/keystore.password "$@"; }
  { pkcs12 -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt; pkcs12 -nokeys | sed -n '/-BEGIN/,/-END/p'; } \
    > broker/kafka-keystore.pem
  chmod 644 broker/kafka-keystore.pem
  rm broker/kafka.p12 broker/keystore.password
  echo "secrets in $dir: the broker's PKCS12 keystore is now broker/kafka-keystore.pem (same key, CA and passwords)" >&2
  echo "$dir"
  exit 0
fi
secret() { openssl rand -hex 24; }
secret > admin.password
secret > newsflow.password

openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=Newsflow local CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
chmod 600 ca.key
openssl req -newkey rsa:3072 -nodes -subj "/CN=kafka" -keyout broker/kafka.key -out broker/kafka.csr 2>/dev/null
printf 'subjectAltName=DNS:kafka,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > broker/kafka.ext
openssl x509 -req -in broker/kafka.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile broker/kafka.ext -out broker/kafka.crt 2>/dev/null
# Kafka's PEM keystore: the key (unencrypted PKCS#8, so no password has to reach the broker), then the chain.
{ openssl pkcs8 -topk8 -nocrypt -in broker/kafka.key; cat broker/kafka.crt ca.pem; } > broker/kafka-keystore.pem
rm -f broker/kafka.key broker/kafka.csr broker/kafka.ext broker/kafka.crt ca.srl broker/kafka.p12 broker/keystore.password
chmod 644 broker/kafka-keystore.pem  # the broker runs as its own uid; DIR is private
cp ca.pem broker/ca.pem

# The broker's SASL PLAIN users: `admin` for the broker itself (inter-broker and its health check), `newsflow` for
# the services. The password files hold no newline, so they can be read as they are.
admin=$(cat admin.password)
newsflow=$(cat newsflow.password)
cat > broker/kafka_server_jaas.conf <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
  username="admin" password="$admin"
  user_admin="$admin"
  user_newsflow="$newsflow";
};
JAAS
cat > broker/client.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.pem
PROPS
for file in admin.password newsflow.password; do printf '%s' "$(cat "$file")" > "$file"; done
echo "$dir"
