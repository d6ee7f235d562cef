"""Newsflow through a broker that wants TLS and a SCRAM login, as managed Kafka does: the same commands plus env vars.

The broker gets a SASL_SSL listener (SCRAM users made when its storage is formatted)
and a mutual-TLS listener, with certificates made for the test. A wrong password,
a CA that did not sign the broker's certificate and a missing client certificate
must each end a command within seconds with one line naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsflow_cli.local_kafka import KafkaUnavailable, LocalKafka, SecureListener, free_port
from newsflow_shared import KafkaSecurityError, ServiceSettings, ensure_topics, kafka_clients, wait_for_kafka

from .tls import Certificates, make_certificates

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).parents[2]
NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))
PASSWORD = "pipeline-secret"


class SecureKafka:
    def __init__(self, kafka: LocalKafka, certificates: Certificates, password_file: Path) -> None:
        self.kafka = kafka
        self.certificates = certificates
        self.password_file = password_file

    def sasl_env(self, **changes: str) -> dict[str, str]:
        """What a user exports for a SASL_SSL cluster; the password from a file, as a Kubernetes Secret mounts it."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.address("SASL_SSL"),
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "newsflow",
            "KAFKA_SASL_PASSWORD_FILE": str(self.password_file),
            "KAFKA_SSL_CA_FILE": str(self.certificates.ca),
            **changes,
        }

    def mtls_settings(self, **changes: object) -> ServiceSettings:
        fields = {
            "kafka_bootstrap_servers": self.kafka.address("SSL"),
            "kafka_security_protocol": "SSL",
            "kafka_ssl_ca_file": self.certificates.ca,
            "kafka_ssl_cert_file": self.certificates.client_cert,
            "kafka_ssl_key_file": self.certificates.client_key,
            **changes,
        }
        return ServiceSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    certificates = make_certificates(folder / "certs")
    password_file = folder / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    kafka = LocalKafka(
        folder / "kafka",
        secure=[
            SecureListener("SASL_SSL", certificates.broker_keystore, certificates.ca, users={"newsflow": PASSWORD}),
            SecureListener("SSL", certificates.broker_keystore, certificates.ca),
        ],
    )
    try:
        kafka.start()
    except KafkaUnavailable as error:
        pytest.fail(f"the secure broker did not start: {error}")
    try:
        yield SecureKafka(kafka, certificates, password_file)
    finally:
        kafka.stop()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_URL", "TOPIC_"))}
    return subprocess.run(
        args, env={**clean, **env}, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


@pytest.mark.slow
def test_the_pipeline_runs_end_to_end_through_sasl_ssl(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    env = secure_kafka.sasl_env(STORAGE_API_PORT=str(free_port()), NEWSFLOW_HOME=str(tmp_path))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "typed", "text": 3.14}\n')
    result = run_cli(
        [NEWSFLOW, "process", "--json", "--timeout", "400", str(ROOT / "samples/seed-article.txt"), str(broken)],
        env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stored, dead = (json.loads(line) for line in result.stdout.splitlines())
    assert stored["status"] == "stored"
    assert stored["language"] == "en"
    assert stored["topics"], stored
    assert dead["status"] == "dead-letter"
    assert dead["stage"] == "ingest"

    again = run_cli([NEWSFLOW, "topics"], env)  # the topic job's command, through the same login
    assert again.returncode == 0, again.stderr
    assert "all topics exist" in again.stderr


def test_mutual_tls_carries_records_both_ways(secure_kafka: SecureKafka) -> None:
    run = uuid.uuid4().hex[:8]
    settings = secure_kafka.mtls_settings(topic_raw=f"{run}.raw", topic_partitions=1)

    async def round_trip() -> bytes | None:
        await wait_for_kafka(settings, timeout=20)
        assert set(await ensure_topics(settings)) >= {f"{run}.raw"}
        producer = kafka_clients.producer(settings)
        await kafka_clients.connect(producer, settings)
        try:
            await producer.send_and_wait(settings.topic_raw, b'{"text": "over mutual TLS"}')
        finally:
            await producer.stop()
        consumer = kafka_clients.consumer(settings, settings.topic_raw, auto_offset_reset="earliest")
        await kafka_clients.connect(consumer, settings)
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
            return record.value
        finally:
            await consumer.stop()

    assert asyncio.run(round_trip()) == b'{"text": "over mutual TLS"}'


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kafka_sasl_password": "wrong", "kafka_sasl_password_file": None}, "refused the login of 'newsflow'"),
        ({"kafka_ssl_ca_file": "stranger"}, "not trusted"),
    ],
)
def test_a_wrong_password_or_an_untrusted_certificate_fails_within_seconds(
    secure_kafka: SecureKafka, changes: dict[str, object], words: str
) -> None:
    fields = {k.lower(): v for k, v in secure_kafka.sasl_env().items()}
    fields.update(changes)
    if fields["kafka_ssl_ca_file"] == "stranger":
        fields["kafka_ssl_cert_file"] = None
        fields["kafka_ssl_ca_file"] = str(secure_kafka.certificates.stranger_ca)
    settings = ServiceSettings(**fields)  # type: ignore[arg-type]
    started = time.monotonic()
    with pytest.raises(KafkaSecurityError, match=words):
        asyncio.run(wait_for_kafka(settings, timeout=60))
    assert time.monotonic() - started < 5


def test_a_sasl_login_sent_to_a_listener_without_sasl_names_the_protocol(secure_kafka: SecureKafka) -> None:
    """It was called a refused login ("check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"): the broker's answer to a
    SASL handshake on a PLAINTEXT listener is IllegalSaslStateError, and no password is wrong there."""
    settings = ServiceSettings(
        kafka_bootstrap_servers=secure_kafka.kafka.address("PLAINTEXT"),
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="newsflow",
        kafka_sasl_password=PASSWORD,
    )
    with pytest.raises(KafkaSecurityError, match="does not take a SASL login there") as raised:
        asyncio.run(wait_for_kafka(settings, timeout=60))
    assert "KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT" in str(raised.value)
    assert "refused the login" not in str(raised.value)


def test_a_missing_client_certificate_is_named(secure_kafka: SecureKafka) -> None:
    settings = secure_kafka.mtls_settings(kafka_ssl_cert_file=None, kafka_ssl_key_file=None)
    with pytest.raises(KafkaSecurityError, match="wants a client certificate"):
        asyncio.run(wait_for_kafka(settings, timeout=60))


@pytest.mark.parametrize(
    ("command", "changes", "words"),
    [
        (["topics"], {"KAFKA_SASL_PASSWORD_FILE": "wrong"}, "refused the login of 'newsflow' with SCRAM-SHA-512"),
        (["push", "samples/seed-article.txt"], {"KAFKA_SSL_CA_FILE": "stranger"}, "KAFKA_SSL_CA_FILE"),
        (["-m", "newsflow_ingest"], {"KAFKA_SASL_PASSWORD_FILE": "wrong"}, "refused the login"),
        (["-m", "newsflow_cleanup"], {"KAFKA_SSL_CA_FILE": "stranger"}, "not trusted"),
    ],
)
def test_commands_and_services_stop_with_one_clear_line(
    secure_kafka: SecureKafka, tmp_path: Path, command: list[str], changes: dict[str, str], words: str
) -> None:
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    replace = {"wrong": str(wrong), "stranger": str(secure_kafka.certificates.stranger_ca)}
    env = secure_kafka.sasl_env(**{name: replace[value] for name, value in changes.items()})
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/newsflow.db"
    program = [sys.executable] if command[0] == "-m" else [NEWSFLOW]
    result = run_cli(program + command, env, timeout=120)
    assert result.returncode == 3, result.stderr[-2000:]
    # Waiting out the 60 s connection deadline would say "did not answer" instead: the cause was found at
    # once (the test above times it in-process; a subprocess's start-up on a busy machine is no measure).
    assert words in result.stderr
    assert "did not answer" not in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr


async def test_storage_refused_by_kafka_serves_its_api_and_says_why(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """Storage exited like the others when Kafka refused it, and the stored articles went out of reach with it: its
    API serves now, and /ready and the log say why its consumers have not started."""
    env = secure_kafka.sasl_env(KAFKA_SSL_CA_FILE=str(secure_kafka.certificates.stranger_ca))
    port = free_port()
    env |= {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/newsflow.db", "STORAGE_API_PORT": str(port)}
    storage = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "newsflow_storage", env={**os.environ, **env}, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(240):
                with contextlib.suppress(httpx.TransportError):
                    ready = await client.get("/ready")
                    if "not trusted" in ready.text:
                        break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("storage's /ready never said why it does not consume")
            assert ready.status_code == 503
            assert "the consumers have not started: KafkaSecurityError" in ready.text
            assert (await client.get("/ready/api")).status_code == 200
            assert (await client.get("/articles")).status_code == 200
            assert (await client.get("/health")).status_code == 200
        assert storage.returncode is None
    finally:
        storage.terminate()
        _, errors = await asyncio.wait_for(storage.communicate(), 60)
    assert "the consumers could not start (KafkaSecurityError:" in errors.decode()
    assert "Traceback" not in errors.decode()
