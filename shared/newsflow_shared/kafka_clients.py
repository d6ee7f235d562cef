"""The one place Newsflow's plain aiokafka clients are built, and where a refused connection is explained.

Services talk to Kafka through FastStream (:func:`newsflow_shared.broker.make_broker`);
the CLI and the topic set-up use aiokafka's producer, consumer and admin client.
Both get their address, login and TLS from :func:`connection_options`, which is
FastStream's own translation of :func:`~newsflow_shared.kafka_security.security_for`.

aiokafka logs a failed TLS handshake or a refused login and then reports only
"Unable to bootstrap": :func:`connect` and :func:`wait_for_kafka` connect once more
themselves to find the cause and raise :class:`KafkaSecurityError` with it at once,
instead of retrying what can never succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from faststream.kafka.security import parse_security

from .errors import KafkaSecurityError
from .kafka_security import security_for
from .logs import say_at_start
from .readable_records import read_every_header_name
from .settings import ServiceSettings
from .unpacking import unpack_within

log = logging.getLogger(__name__)

TELL_WAITING_AFTER = 5.0
"""Seconds :func:`wait_for_kafka` and :func:`wait_for_topics` wait before they say that they wait."""
TOPICS_TIMEOUT = 120.0
"""How long a service waits for the topic job (a Job retried with back-off takes a minute or two); within the
Kubernetes startup probes' 300 s with the Kafka wait (60 s) and the database's (120 s). Storage waits for both while
its API serves, asking again after each wait."""


class _Startable(Protocol):
    async def start(self) -> None: ...


def connection_options(settings: ServiceSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security options every aiokafka client takes."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **parse_security(security_for(settings))}


def producer(settings: ServiceSettings, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**connection_options(settings), **options)


def consumer(settings: ServiceSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    read_every_header_name()  # a record with a header name that is not UTF-8 must not stop the reading
    unpack_within(settings.unpacked_batch_limit)  # nor a compression bomb
    return AIOKafkaConsumer(*topics, **connection_options(settings), **options)


def admin(settings: ServiceSettings, **options: Any) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(settings), **options)


async def connect(client: _Startable, settings: ServiceSettings) -> None:
    """Start ``client``; a refused login or a failed TLS handshake raises :class:`KafkaSecurityError` saying which.

    A client whose start failed is closed here, so a caller may start it outside its ``try``: left open, aiokafka
    printed "Unclosed AIOKafkaConsumer" under the command's own error when Kafka went away just before.
    """
    try:
        with _quiet_bootstrap():
            await client.start()
    except BaseException as error:
        await _close_quietly(client)
        if isinstance(error, KafkaConnectionError) and (cause := await diagnose(settings)) is not None:
            raise cause from None
        raise


async def _close_quietly(client: _Startable) -> None:
    close = getattr(client, "stop", None) or getattr(client, "close", None)  # the admin client has only close()
    if close is not None:
        with contextlib.suppress(Exception):
            await asyncio.shield(close())


async def diagnose(settings: ServiceSettings, timeout_ms: int = 5000) -> KafkaSecurityError | None:
    """Connect to each bootstrap address as the clients do; the security failure found, if any."""
    options = parse_security(security_for(settings))
    for host, port, _ in collect_hosts(settings.kafka_bootstrap_servers, randomize=False):
        try:
            connection = await create_conn(host, port, request_timeout_ms=timeout_ms, **options)
        except (OSError, KafkaError, TimeoutError) as error:
            explained = _explain(error, f"{host}:{port}", settings)
            if explained is not None:
                return explained
        else:
            connection.close()
    return None


def _explain(error: BaseException, address: str, settings: ServiceSettings) -> KafkaSecurityError | None:
    if isinstance(error, ssl.SSLCertVerificationError):
        if "mismatch" in (error.verify_message or "").lower():  # "Hostname mismatch", "IP address mismatch"
            return KafkaSecurityError(
                f"Kafka at {address} shows a TLS certificate for another name ({error.verify_message}): "
                "use an address the certificate lists in KAFKA_BOOTSTRAP_SERVERS, or KAFKA_SSL_CHECK_HOSTNAME=false"
            )
        return KafkaSecurityError(
            f"Kafka at {address} shows a TLS certificate that is not trusted ({error.verify_message}): "
            "set KAFKA_SSL_CA_FILE to the CA that signed it"
        )
    if isinstance(error, ssl.SSLError) or (settings.kafka_uses_tls and isinstance(error, ConnectionResetError)):
        return KafkaSecurityError(
            f"the TLS handshake with Kafka at {address} failed ({getattr(error, 'reason', None) or repr(error)}): "
            f"is that a TLS listener (KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}), and does it want "
            "a client certificate "
            "(KAFKA_SSL_CERT_FILE, KAFKA_SSL_KEY_FILE)?"
        )
    if (
        isinstance(error, KafkaConnectionError)
        and settings.kafka_security_protocol == "SSL"
        and settings.kafka_ssl_cert_file is None
    ):
        return KafkaSecurityError(
            f"Kafka at {address} closed the connection right after the TLS handshake: it probably wants a client "
            "certificate (KAFKA_SSL_CERT_FILE, KAFKA_SSL_KEY_FILE)"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return KafkaSecurityError(
            f"Kafka at {address} does not offer SASL {settings.kafka_sasl_mechanism}: "
            "set KAFKA_SASL_MECHANISM to one it enables"
        )
    if isinstance(error, IllegalSaslStateError):  # the broker's answer to a SASL handshake on a listener without SASL
        return KafkaSecurityError(
            f"Kafka at {address} does not take a SASL login there (IllegalSaslStateError): is it a SASL listener? "
            f"KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol}; a PLAINTEXT or SSL listener wants that,"
            " with no KAFKA_SASL_* settings"
        )
    if isinstance(error, SaslAuthenticationFailed | AuthenticationFailedError):
        return KafkaSecurityError(
            f"Kafka at {address} refused the login of {settings.kafka_sasl_username!r} with "
            f"{settings.kafka_sasl_mechanism}: check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD (or "
            "KAFKA_SASL_PASSWORD_FILE) and KAFKA_SASL_MECHANISM"
        )
    return None


async def wait_for_kafka(target: ServiceSettings | str, *, timeout: float = 60.0, say_waiting: bool = False) -> None:
    """Return once the cluster answers; raise ``TimeoutError`` naming the address after ``timeout`` seconds.

    A refused login or a failed TLS handshake raises :class:`KafkaSecurityError` at once:
    waiting cannot mend a setting. ``target`` may be a bare address; the login and TLS
    settings then come from the environment.
    """
    settings = target if isinstance(target, ServiceSettings) else ServiceSettings(kafka_bootstrap_servers=target)
    clock = asyncio.get_running_loop().time
    started = clock()
    deadline = started + timeout
    delay = 0.25
    told = False
    while True:
        client = admin(settings, request_timeout_ms=5000)
        try:
            await connect(client, settings)
            await client.list_topics()
            return
        except (KafkaConnectionError, OSError) as error:
            if say_waiting and not told and clock() - started >= TELL_WAITING_AFTER:
                # Else a service stayed silent for the whole wait, a minute, before its one line. (A command's
                # wait is 10 s, and its one line says it all.)
                log.warning(
                    "Kafka at %s does not answer yet (%s); waiting up to %.0fs in all",
                    settings.kafka_bootstrap_servers,
                    type(error).__name__,
                    timeout,
                )
                told = True
            if clock() + delay > deadline:
                raise TimeoutError(
                    f"Kafka at {settings.kafka_bootstrap_servers} did not answer within {timeout:.0f}s ({error}); "
                    "are KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL right and the broker up?"
                ) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        finally:
            await client.close()


class TopicsNotListed(TimeoutError):
    """:func:`wait_for_topics` could not list the topics at all: Kafka is away, which is no topic missing."""


async def wait_for_topics(
    settings: ServiceSettings, *, timeout: float = TOPICS_TIMEOUT, topics: Iterable[str] | None = None
) -> None:
    """Return once every topic the service uses (or ``topics``) exists; raise ``TimeoutError`` naming the missing
    after ``timeout``. The topics are listed, never asked for by name, which would make them where Kafka may.

    A service subscribing to a topic that is not there yet asks the broker for it, and a broker that creates topics
    on demand (Kafka's default) makes it with its own defaults: one partition, so no second replica ever gets work,
    and a 1 MiB record limit. On Kubernetes nothing orders the services after the topic job, so they wait here.
    """
    clock = asyncio.get_running_loop().time
    started = clock()
    told = False
    wanted = set(settings.topics_used if topics is None else topics)
    missing = sorted(wanted)
    unanswered: BaseException | None = None
    listed = False
    while True:
        client = admin(settings, request_timeout_ms=5000)
        try:
            await connect(client, settings)
            missing = sorted(wanted - set(await client.list_topics()))
            listed = True
        except KafkaSecurityError:
            raise
        except (KafkaError, OSError) as error:  # a broker rolling meanwhile: asked again, within the same wait
            log.debug("listing the topics failed (%s); asking again", type(error).__name__)
            unanswered = error
        finally:
            await client.close()
        if not missing:
            return
        if clock() - started >= timeout and not listed:
            # Said as missing topics, with how to make them, while the broker was only restarting.
            raise TopicsNotListed(
                f"Kafka at {settings.kafka_bootstrap_servers} did not answer while the topics were looked for "
                f"({type(unanswered).__name__}: {unanswered}); is the broker up?"
            )
        if clock() - started >= timeout:
            raise TimeoutError(
                f"the topics {', '.join(missing)} do not exist on {settings.kafka_bootstrap_servers} after "
                f"{timeout:.0f}s: create them with `newsflow topics` (Compose and Kubernetes run it as their topic job),"
                " or, where Kafka has ACLs, allow this service's user to describe them"
            )
        if not told and clock() - started >= TELL_WAITING_AFTER:
            log.warning("waiting for the topics %s (the topic job, `newsflow topics`, makes them)", ", ".join(missing))
            told = True
        await asyncio.sleep(1.0)


def require_kafka(settings: ServiceSettings, *, timeout: float = 60.0) -> None:
    """For a service's start: wait for Kafka and the pipeline's topics, or exit with one line saying why not."""

    async def ready() -> None:
        await wait_for_kafka(settings, timeout=timeout, say_waiting=True)
        await wait_for_topics(settings)

    try:
        asyncio.run(ready())
    except (KafkaSecurityError, TimeoutError, KafkaError) as error:
        say_at_start(str(error))
        raise SystemExit(3) from None


def _not_a_bootstrap_failure(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Unable connect to")


@contextlib.contextmanager
def _quiet_bootstrap() -> Iterator[None]:
    """aiokafka logs each failed bootstrap at ERROR; the cause is raised instead, so one line says it."""
    client_log = logging.getLogger("aiokafka")  # aiokafka.client logs under the package's name
    client_log.addFilter(_not_a_bootstrap_failure)
    try:
        yield
    finally:
        client_log.removeFilter(_not_a_bootstrap_failure)
