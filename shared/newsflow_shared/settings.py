"""Settings every service shares, read once from the environment.

Each service subclasses :class:`ServiceSettings` and adds its own fields. Field
names are the environment variable names (case-insensitive), and they are the
same in docker-compose.yml, the Kubernetes manifests and the README's table.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, fields
from typing import Literal, Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kafka_security import KafkaSecuritySettings

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///newsflow.db"
# What a PostgreSQL URL's query may hold: asyncpg's connect() arguments, SQLAlchemy's own, and libpq's sslmode.
_ASYNCPG_OPTIONS = frozenset(
    {
        "host",  # a socket's folder (Cloud SQL's /cloudsql/…), or several host:port for failover, as SQLAlchemy reads
        "port",
        "user",
        "password",
        "database",
        "ssl",
        "sslmode",
        "direct_tls",
        "timeout",
        "command_timeout",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "prepared_statement_cache_size",
        "target_session_attrs",
        "passfile",
        "krbsrvname",
        "gsslib",
    }
)


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one deployment; the article id is the key on each."""

    raw: str
    ingested: str
    clean: str
    enriched: str
    stored: str
    skipped: str
    unsupported: str
    dlq: str

    def all(self) -> list[str]:
        return [getattr(self, role.name) for role in fields(self)]


KAFKA_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
TOPIC_FIELDS = tuple(f"topic_{role.name}" for role in fields(Topics))
"""The settings naming the pipeline's topics, one a role: ``topic_raw`` … ``topic_dlq``."""

MOST_RECORDS_A_BATCH = 10_000
"""The most ``BATCH_MAX_RECORDS`` may be: a batch's ids go into a statement's ``IN`` list, and asyncpg binds at most
32,767 values to one (SQLite 32,766). Above that every batch on PostgreSQL failed, and was retried as if the database
were down."""


class ServiceSettings(KafkaSecuritySettings):
    """Kafka (its login and TLS from :class:`KafkaSecuritySettings`), topics, database and logging."""

    # No "inf" or "nan" in any float: SHUTDOWN_TIMEOUT_S=inf passed and failed at SIGTERM with an OverflowError.
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False, allow_inf_nan=False)

    kafka_bootstrap_servers: str = Field(default="localhost:9092", description="host:port[,host:port...]")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _ports_are_ports(cls, value: str) -> str:
        """A port past 65535 (or "²") went through to aiokafka's first connect, and out of every command and service
        as a traceback; a host without a port keeps Kafka's 9092, as aiokafka gives it."""
        for server in (part.strip() for part in value.split(",")):
            if not server:
                raise ValueError("an empty address: give host:port[,host:port...]")
            if "://" in server:
                raise ValueError(f"{server!r} is a URL: give host:port, without a scheme")
            host, colon, port = server.rpartition(":")
            if not colon or server.endswith("]"):  # "kafka", "[::1]": no port given
                continue
            if not host or not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536):
                raise ValueError(f"{server!r} is not host:port with a port from 1 to 65535")
        return value

    kafka_group_prefix: str = Field(
        default="newsflow",
        description="Consumer groups are <prefix>-<service>: one group per service, replicas share it.",
    )
    kafka_max_message_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024 * 1024,  # Kafka's own default; below it a dead letter of a record with big headers might not fit
        le=512 * 1024 * 1024,  # a consumer fetches twice this, and Kafka's fetch sizes are 32-bit: 1 GiB failed
        description="Largest message producers send and topics accept; big enough to dead-letter huge input whole.",
    )

    # How each service's producer and consumers talk to the broker: fewer, larger requests cost the broker less CPU.
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="lz4",
        description="Compression of produced batches; lz4 and zstd need cramjam (installed with Newsflow).",
    )
    kafka_linger_ms: int = Field(
        default=5, ge=0, description="How long a producer waits for more records to send them in one request."
    )
    kafka_producer_batch_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest batch a producer sends to one partition at once (aiokafka's max_batch_size).",
    )
    kafka_fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        le=2**31 - 1,  # a 32-bit field: past it the consumer's fetcher failed for good, and the service looked well
        description="The broker answers a consumer's fetch once this many bytes wait (or the wait ends).",
    )
    kafka_fetch_max_wait_ms: int = Field(
        # An idle consumer long-polls: at Kafka's 500 the pipeline's consumers kept an idle local broker at twice the
        # CPU it spends at 2,000. Health probes read the end offsets the fetches carry, not a request that would
        # wait behind the held fetch on the same connection.
        default=2000,
        ge=0,
        le=30_000,  # below the clients' 40 s request timeout, or every idle fetch times out and is logged as failed
        description="Longest the broker holds a consumer's fetch to gather KAFKA_FETCH_MIN_BYTES: an idle consumer"
        " asks this often, and records that arrive are answered at once.",
    )

    topic_raw: str = "articles.raw"
    topic_ingested: str = "articles.ingested"
    topic_clean: str = "articles.clean"
    topic_enriched: str = "articles.enriched"
    topic_stored: str = "articles.stored"
    topic_skipped: str = "articles.skipped"
    topic_unsupported: str = "articles.unsupported"
    topic_dlq: str = "articles.dlq"
    # Kafka creates at most 10,000 partitions a request, and `newsflow topics` asks for the eight topics in one.
    topic_partitions: int = Field(default=6, ge=1, le=1000)
    topic_replication_factor: int = Field(default=1, ge=1, le=2**15 - 1)  # a 16-bit field

    @field_validator(*TOPIC_FIELDS)
    @classmethod
    def _a_name_kafka_takes(cls, value: str) -> str:
        """Kafka's rule for a topic's name: checked here, not found out when the topic is made."""
        if not KAFKA_TOPIC_NAME.fullmatch(value) or value in {".", ".."}:
            raise ValueError("a Kafka topic's name is 1 to 249 letters, digits, '.', '_' or '-' (not '.' or '..')")
        return value

    @model_validator(mode="after")
    def _topics_apart(self) -> Self:
        """Two roles on one topic loop or mix records: TOPIC_DLQ=articles.raw fed every dead letter back to ingest."""
        seen: dict[str, str] = {}
        for name, topic in zip(TOPIC_FIELDS, self.topics.all(), strict=True):
            if topic in seen:
                raise ValueError(f"{seen[topic].upper()} and {name.upper()} both name the topic {topic!r}")
            seen[topic] = name
        return self

    batch_max_records: int = Field(
        default=100, ge=1, le=MOST_RECORDS_A_BATCH, description="Most records handled in one batch."
    )
    # Why 1,000 and not Kafka-client habits' 200: records are taken the moment a fetch brings them, so the wait only
    # sets how often an idle stage turns its loop (tests/integration/test_batch_wait.py). At 200 ms those turns were
    # half of an idle service's CPU: 3.3-6.3 ms a second each, 1.3-3.0 at 1,000. A busy stage turns for its records
    # anyway: in the pipeline benchmark only ingest's CPU per article moved (0.54-0.58 -> 0.39-0.40 ms), and an
    # article took as long from ingest to storage after a quiet spell either way (bench/HISTORY.md, session 20).
    batch_timeout_ms: int = Field(
        default=1000,
        ge=0,
        description="How long an idle stage waits for records before it asks again. Records that come are taken at"
        " once: a batch is what has arrived, up to BATCH_MAX_RECORDS, never held back to fill; a longer wait only"
        " wakes an idle stage less often.",
    )
    batch_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of records past which a batch takes no more (it holds at most this and one record): a"
        " batch of the largest records a stage takes stays within its memory.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Tries of an unexpected error before dead-lettering.")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, description="SQLAlchemy async URL.")

    @field_validator("database_url")
    @classmethod
    def _a_database_newsflow_drives(cls, value: str) -> str:
        """A URL SQLAlchemy cannot parse, or one for another database, failed only after the Kafka wait, as a
        34-line traceback (``mysql://`` as a missing MySQLdb module)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
            backend = url.get_backend_name()
        except (ArgumentError, ValueError):
            raise ValueError(
                "not a database URL: sqlite+aiosqlite:///path/newsflow.db or "
                "postgresql+asyncpg://user:password@host:5432/db (a password's '@', ':' or '/' percent-encoded)"
            ) from None
        if backend not in {"sqlite", "postgresql", "postgres"}:  # "postgres://", as managed services write it
            raise ValueError(f"Newsflow keeps its data in SQLite or PostgreSQL, not {backend}")
        # Another driver (psycopg2, pysqlite) was a missing module's traceback after the Kafka wait.
        if (driver := url.drivername.partition("+")[2]) not in {"", "asyncpg", "aiosqlite"}:
            usual = "sqlite+aiosqlite:///" if backend == "sqlite" else "postgresql+asyncpg://"
            raise ValueError(f"Newsflow reaches {backend} through an async driver, not {driver}: write {usual}…")
        if backend != "sqlite" and {"ssl", "sslmode"} <= set(url.query):
            raise ValueError("give TLS once: ?ssl= (asyncpg's) or ?sslmode= (libpq's), not both")
        if backend != "sqlite" and (unknown := sorted(set(url.query) - _ASYNCPG_OPTIONS)):
            raise ValueError(
                f"asyncpg, Newsflow's PostgreSQL driver, takes no {', '.join(unknown)} in the URL: TLS is ?ssl= (or"
                " libpq's ?sslmode=) require, verify-ca or verify-full, certificates in PGSSLROOTCERT, PGSSLCERT and"
                " PGSSLKEY"
            )
        if "@" in (url.host or ""):  # user:p@ss@host reads as the host "ss@host", which never answers
            raise ValueError("the password holds an '@': write it as %40 in the URL")
        return value

    shutdown_timeout_s: float = Field(
        default=9.0,
        ge=3.0,
        le=3600.0,
        description="After SIGTERM the service exits within this many seconds; an unfinished batch is redelivered.",
    )

    health_host: str = "0.0.0.0"

    @field_validator("health_host")
    @classmethod
    def _a_host_without_its_port(cls, value: str) -> str:
        return host_without_port(value, "HEALTH_PORT")

    health_port: int = Field(default=8000, ge=1, le=65535, description="Port of /health, /ready and /metrics.")
    health_stall_seconds: float = Field(
        default=300,
        gt=0,
        description="Liveness fails when records wait and no batch started or finished for this long.",
    )
    health_exit_after_s: float = Field(
        default=90,
        ge=0,
        le=86_400,
        description="Once liveness has failed this long (probes asking /health), the service stops itself and exits"
        " 1, for a restart policy that acts only on exits (Docker Compose's); 0 never.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING, ERROR or CRITICAL; any case, and WARN and FATAL as well."
    )
    log_format: Literal["console", "json"] = "console"

    @field_validator("log_level", mode="before")
    @classmethod
    def _a_level_logging_knows(cls, value: object) -> object:
        """``LOG_LEVEL=warn`` passed here and failed later, in uvicorn's table of levels, as a bare ``KeyError: 'warn'``
        out of every service's start; the names the standard library also accepts are taken here."""
        if isinstance(value, str):
            level = value.strip().upper()
            return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
        return value

    @property
    def topics_used(self) -> list[str]:
        """The topics the service reads or writes: what its start waits for. Each service names its own, so that a
        Kafka user allowed only those (ACLs) is not kept waiting for topics it may not even see; here, all of them."""
        return self.topics.all()

    @property
    def uses_database(self) -> bool:
        """Whether the service keeps state in DATABASE_URL: its start waits for the database."""
        return False

    @property
    def topics(self) -> Topics:
        return Topics(
            raw=self.topic_raw,
            ingested=self.topic_ingested,
            clean=self.topic_clean,
            enriched=self.topic_enriched,
            stored=self.topic_stored,
            skipped=self.topic_skipped,
            unsupported=self.topic_unsupported,
            dlq=self.topic_dlq,
        )

    @property
    def record_limit(self) -> int:
        """The largest body a producer of ours sends: ``KAFKA_MAX_MESSAGE_BYTES`` less room for the key, a header and
        the record batch's framing."""
        return self.kafka_max_message_bytes - 64 * 1024

    @property
    def unpacked_batch_limit(self) -> int:
        """The most bytes a fetched record batch may unpack to (:mod:`.unpacking`): twice ``KAFKA_MAX_MESSAGE_BYTES``
        and at least 64 MiB. Our producers' batches unpack to less than ``KAFKA_MAX_MESSAGE_BYTES``; the Java client
        bounds a batch by its estimated compressed size (``batch.size``), so one set to megabytes, of text that packs
        tightly, can pass it (raise ``KAFKA_MAX_MESSAGE_BYTES`` for such a producer). A bomb unpacks to gigabytes."""
        return max(2 * self.kafka_max_message_bytes, 64 << 20)

    @property
    def compression_type(self) -> str | None:
        """``KAFKA_COMPRESSION`` as aiokafka names it."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    def producer_options(self) -> dict[str, object]:
        """Batching and compression options of every producer (the services' and the CLI's)."""
        return {
            "linger_ms": self.kafka_linger_ms,
            "compression_type": self.compression_type,
            "max_batch_size": self.kafka_producer_batch_bytes,
        }

    def consumer_options(self) -> dict[str, object]:
        """How long and for how much a consumer's fetch waits at the broker, and how often its fetcher looks again."""
        return {
            "fetch_min_bytes": self.kafka_fetch_min_bytes,
            "fetch_max_wait_ms": self.kafka_fetch_max_wait_ms,
            # aiokafka's fetch routine also wakes on a timer (200 ms by default) to look for work no event announced.
            # Every event it serves wakes it at once anyway (a fetch answered, records taken, a rebalance), so an idle
            # consumer only paid five wake-ups a second for it.
            "consumer_timeout_ms": 1000,
        }

    def group_id(self, service: str) -> str:
        return f"{self.kafka_group_prefix}-{service}"


def host_without_port(value: str, port_setting: str) -> str:
    """A host to listen on, refused when it carries a port ("localhost:8080" failed at start with "Name or service
    not known"); IPv6 addresses ("::") have colons of their own and pass."""
    host = value.strip()
    if not host:
        raise ValueError("empty: a host name or address (0.0.0.0 for every interface)")
    if re.fullmatch(r"[^:\[\]]*:[^:]*|\[.*\]:.*", host):
        raise ValueError(f"a host name or address without a port: the port is {port_setting}")
    return host


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
SHOWN_VALUE_CHARACTERS = 80
EXIT_CONFIG = 78
"""The exit status of a process whose environment holds a setting it cannot use (sysexits.h's EX_CONFIG)."""


def settings_from_environment(settings: type[SettingsT], *, service: str | None = None) -> SettingsT:
    """``settings()`` read from the environment, or a line for each variable it cannot use and exit status
    :data:`EXIT_CONFIG` (78, sysexits' EX_CONFIG: not 2, which ``newsflow status`` gives when Kafka does not answer).

    A deployment's typo (``LOG_LEVEL=TRACE``, ``KAFKA_BOOTSTRAP_SERVERS=kafka:99092``) should read as the variable and
    what is wrong with it, not as forty lines of pydantic's traceback in a crash-looping pod's log. Secrets are never
    echoed.

    A ``service`` whose environment says ``LOG_FORMAT=json`` gets them as one JSON record, as its other lines (the
    commands, run by hand in the same pods, keep plain text).
    """
    try:
        return settings()
    except ValidationError as error:
        described = describe_settings_error(settings, error)
        if service is not None and os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
            from .logs import configure_logging, say_at_start

            configure_logging(service, fmt="json")
            say_at_start(described)
        else:
            print(described, file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def describe_settings_error(settings: type[BaseSettings], error: ValidationError) -> str:
    """What :func:`settings_from_environment` prints: a header and one line a variable. A value is shown only where
    it is one variable's own and no secret: a rule across variables (TLS files given together, say) gets the
    environment as a whole as its input, passwords included, so it is named without it."""
    lines = [f"{settings.__name__}: {error.error_count()} setting(s) in the environment cannot be used:"]
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        if field not in settings.model_fields:
            lines.append(f"  {problem['msg']}")
            continue
        lines.append(f"  {field.upper()}={_shown(settings, field, problem.get('input'))}: {problem['msg']}")
    return "\n".join(lines)


def _without_password(value: str) -> str:
    """A URL with its password masked: what lies between the user's name and the last "@" of its authority (a
    password may hold "/" and "@"), as ``scheme://user:***@host/db``."""
    scheme, separator, rest = value.partition("://")
    at = rest.rfind("@")
    if not separator or at < 0:
        return value
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}:***@{rest[at + 1 :]}" if colon else value


def _shown(settings: type[BaseSettings], field: str, value: object) -> str:
    annotation = str(settings.model_fields[field].annotation)
    # By type, or by name (CLASSIFY_MAX_TOKENS is no secret: the name must end so).
    if "SecretStr" in annotation or field.endswith(("_password", "_secret", "_token")):
        return "(a secret, not shown)"
    if isinstance(value, str):
        value = _without_password(value)
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_CHARACTERS else text[: SHOWN_VALUE_CHARACTERS - 1] + "…"
