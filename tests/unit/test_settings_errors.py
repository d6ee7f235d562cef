"""A deployment's wrong setting reads as the variable and what is wrong with it, never as a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from newsflow_classify.settings import ClassifySettings
from newsflow_cleanup.settings import KNOWN_LANGUAGES, CleanupSettings
from newsflow_shared.settings import ServiceSettings, _shown, settings_from_environment
from newsflow_storage.settings import StorageSettings


@pytest.mark.parametrize(("given", "level"), [("warn", "WARNING"), (" Info ", "INFO"), ("fatal", "CRITICAL")])
def test_the_level_names_logging_takes_are_taken(given: str, level: str) -> None:
    """``LOG_LEVEL=warn`` used to pass here and crash every service's start in uvicorn's table of levels."""
    assert ServiceSettings(log_level=given).log_level == level


Refused = Callable[..., str]


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Refused:
    """``refused(settings, **environment)``: what ``settings_from_environment(settings)`` says on standard error for
    ``environment``, which it refuses with exit status 78 (EX_CONFIG: not 2, newsflow status's "Kafka does not
    answer")."""

    def said(settings: type[ServiceSettings], **environment: str) -> str:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as stopped:
            settings_from_environment(settings)
        assert stopped.value.code == 78
        return capsys.readouterr().err

    return said


def test_each_wrong_variable_gets_a_line_and_secrets_are_not_shown(refused: Refused) -> None:
    said = refused(
        StorageSettings,
        LOG_LEVEL="TRACE",
        KAFKA_BOOTSTRAP_SERVERS="kafka:99092",
        BATCH_MAX_RECORDS="x" * 500,
        STORAGE_API_TOKEN="hunter2-hunter2-hunter2",
        KAFKA_SASL_PASSWORD="s3cret-password",
        KAFKA_SASL_MECHANISM="NOT-A-MECHANISM",  # makes the secrets' model fail beside them
    )
    assert said.startswith("StorageSettings: 4 setting(s) in the environment cannot be used:\n")
    assert "  LOG_LEVEL='TRACE': Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'" in said
    assert "  KAFKA_BOOTSTRAP_SERVERS='kafka:99092': Value error, 'kafka:99092' is not host:port" in said
    assert "  BATCH_MAX_RECORDS='xxxxx" in said
    assert max(len(line) for line in said.splitlines()) < 200  # a long value is cut short
    assert "KAFKA_SASL_MECHANISM='NOT-A-MECHANISM'" in said
    assert "hunter2" not in said
    assert "s3cret" not in said
    assert "Traceback" not in said


def test_a_service_with_a_wrong_setting_exits_78_with_one_readable_block() -> None:
    """As a crash-looping pod's log shows it: the service's own process, before it imports the model or Kafka."""
    env = {**os.environ, "LOG_LEVEL": "TRACE", "HEALTH_PORT": "eighty"}
    started = subprocess.run(
        [sys.executable, "-m", "newsflow_ingest"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert started.returncode == 78
    assert started.stderr.splitlines() == [
        "IngestSettings: 2 setting(s) in the environment cannot be used:",
        "  HEALTH_PORT='eighty': Input should be a valid integer, unable to parse string as an integer",
        "  LOG_LEVEL='TRACE': Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'",
    ]


@pytest.mark.parametrize("token", ["change-me", "s3cret", "x" * 15])
def test_a_token_a_person_could_guess_is_refused(token: str) -> None:
    """The Kubernetes manifest's placeholder was taken as the API's token."""
    with pytest.raises(ValueError, match="use 16 or more random ones"):
        StorageSettings(storage_api_token=token)
    assert StorageSettings(storage_api_token="x" * 16).storage_api_token is not None
    assert StorageSettings().storage_api_token is None  # unset: an open API, as before (the README says so)


@pytest.mark.parametrize("token", ["pässwört-0123456789", " a space before it-0123", "tab\tbetween-0123456789"])
def test_a_token_no_http_header_can_carry_is_refused(token: str) -> None:
    """The API never matched a token outside ASCII (a header's bytes are read as Latin-1), while the page's login
    took it: every API call was refused, with the right token too."""
    with pytest.raises(ValueError, match="which an HTTP header cannot carry"):
        StorageSettings(storage_api_token=token)
    assert StorageSettings(storage_api_token="correct horse battery staple").storage_api_token is not None


def test_a_rule_across_variables_is_named_without_the_environment_it_was_given(refused: Refused) -> None:
    """A check across fields gets every value as its input, the password among them: it was printed whole."""
    said = refused(
        ServiceSettings,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_USERNAME="newsflow",
        KAFKA_SASL_PASSWORD="hunter2-password",
        KAFKA_SSL_CERT_FILE="/certs/client.pem",  # without KAFKA_SSL_KEY_FILE
        DATABASE_URL="postgresql+asyncpg://newsflow:db-password@db:5432/newsflow",
    )
    assert "mutual TLS needs both KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE" in said
    assert "hunter2" not in said
    assert "db-password" not in said


def test_a_urls_password_is_masked_where_its_value_is_shown(refused: Refused) -> None:
    said = refused(
        StorageSettings,
        DATABASE_URL="postgresql+asyncpg://newsflow:db-password@db:5432/newsflow",
        BATCH_MAX_RECORDS="0",
    )
    assert "BATCH_MAX_RECORDS='0': Input should be greater than or equal to 1" in said
    assert "db-password" not in said
    shown = _shown(StorageSettings, "database_url", "postgresql+asyncpg://newsflow:db-password@db:5432/newsflow")
    assert shown == "'postgresql+asyncpg://newsflow:***@db:5432/newsflow'"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:pa/ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:pa@ss@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite+aiosqlite:///newsflow.db", "sqlite+aiosqlite:///newsflow.db"),
    ],
)
def test_no_part_of_a_password_shows_whatever_it_holds(url: str, shown: str) -> None:
    assert _shown(StorageSettings, "database_url", url) == repr(shown)


def test_a_setting_named_like_tokens_is_no_secret() -> None:
    """CLASSIFY_MAX_TOKENS is a count: hidden as a secret, the message hid the very value it was about."""
    from newsflow_classify.settings import ClassifySettings

    assert _shown(ClassifySettings, "classify_max_tokens", "lots") == "'lots'"
    assert _shown(StorageSettings, "storage_api_token", "x" * 20) == "(a secret, not shown)"


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({"TOPIC_DLQ": "articles.raw"}, "TOPIC_RAW and TOPIC_DLQ both name the topic 'articles.raw'"),
        ({"TOPIC_RAW": "articles raw"}, "TOPIC_RAW='articles raw': Value error, a Kafka topic's name is 1 to 249"),
        ({"TOPIC_CLEAN": ""}, "TOPIC_CLEAN='': Value error, a Kafka topic's name"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL='not a url': Value error, not a database URL"),
        ({"DATABASE_URL": "mysql://u:pw@db/news"}, "in SQLite or PostgreSQL, not mysql"),
        ({"DATABASE_URL": "postgresql://u:p@ss@db/news"}, "the password holds an '@': write it as %40"),
        # A ModuleNotFoundError's traceback after the Kafka wait, as each replica started.
        ({"DATABASE_URL": "postgresql+psycopg2://u:pw@db/news"}, "an async driver, not psycopg2: write postgresql+"),
        ({"DATABASE_URL": "sqlite+pysqlite:///news.db"}, "an async driver, not pysqlite: write sqlite+aiosqlite"),
        # asyncpg's "connect() got an unexpected keyword argument" in a traceback.
        ({"DATABASE_URL": "postgresql://u:pw@db/news?sslrootcert=/ca.pem"}, "takes no sslrootcert in the URL"),
        ({"DATABASE_URL": "postgresql://u:pw@db/news?ssl=require&sslmode=disable"}, "give TLS once"),
        ({"HEALTH_PORT": "70000"}, "HEALTH_PORT='70000': Input should be less than or equal to 65535"),
        ({"HEALTH_PORT": "0"}, "HEALTH_PORT='0': Input should be greater than or equal to 1"),
        (
            {"HEALTH_HOST": "localhost:8000"},
            "HEALTH_HOST='localhost:8000': Value error, a host name or address without",
        ),
        ({"SHUTDOWN_TIMEOUT_S": "inf"}, "SHUTDOWN_TIMEOUT_S='inf': Input should be a finite number"),
        ({"KAFKA_BOOTSTRAP_SERVERS": ""}, "KAFKA_BOOTSTRAP_SERVERS='': Value error, an empty address"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "http://kafka:9092"}, "is a URL: give host:port, without a scheme"),
        ({"KAFKA_MAX_MESSAGE_BYTES": str(1024**3)}, "KAFKA_MAX_MESSAGE_BYTES='1073741824': Input should be less"),
        ({"KAFKA_FETCH_MAX_WAIT_MS": "40000"}, "KAFKA_FETCH_MAX_WAIT_MS='40000': Input should be less"),
        ({"KAFKA_FETCH_MIN_BYTES": "3000000000"}, "KAFKA_FETCH_MIN_BYTES='3000000000': Input should be less"),
        ({"TOPIC_PARTITIONS": "200000"}, "TOPIC_PARTITIONS='200000': Input should be less than or equal to 1000"),
        ({"TOPIC_REPLICATION_FACTOR": "40000"}, "TOPIC_REPLICATION_FACTOR='40000': Input should be less"),
    ],
)
def test_values_that_failed_later_are_refused_at_start(
    refused: Refused, environment: dict[str, str], said: str
) -> None:
    """Each of these passed, and failed later: a traceback after the Kafka wait, a bind error once the model had
    loaded, an OverflowError at SIGTERM, dead letters fed back to ingest, or a 32-bit fetch size overflowing."""
    assert said in refused(ServiceSettings, **environment)


def test_a_password_written_for_a_url_is_taken() -> None:
    assert ServiceSettings(database_url="postgresql://u:p%40ss@db/news").database_url.endswith("@db/news")
    # As managed PostgreSQL services hand it out; the engine gives it the async driver.
    assert ServiceSettings(database_url="postgres://u:pw@db/news").database_url == "postgres://u:pw@db/news"


@pytest.mark.parametrize(
    ("settings", "environment", "said"),
    [
        (
            CleanupSettings,
            {"LANGUAGE_ALLOWLIST": "english,german"},
            "LANGUAGE_ALLOWLIST='english,german': Value error, 'english', 'german': not a language code",
        ),
        (CleanupSettings, {"LANGUAGE_CANDIDATES": "en,xx"}, "'xx': not a language code the detector knows"),
        (
            CleanupSettings,
            {"LANGUAGE_CANDIDATES": "en,fr", "LANGUAGE_ALLOWLIST": "en,de"},
            "LANGUAGE_ALLOWLIST names 'de', which LANGUAGE_CANDIDATES leaves out",
        ),
        (  # a text pasted by mistake: the error stays one short line
            CleanupSettings,
            {
                "LANGUAGE_CANDIDATES": ",".join(
                    ["en", "a-paragraph-of-text-pasted-here", *(f"x{i}" for i in range(500))]
                )
            },
            "Value error, 'a-paragraph…', 'x0', 'x1', 'x2', 'x3' and 496 more: not a language code",
        ),
        (ClassifySettings, {"CLASSIFY_DEVICE": "gpu"}, "CLASSIFY_DEVICE='gpu': String should match pattern"),
        (ClassifySettings, {"CLASSIFY_WINDOW_TOKENS": "2"}, "a window is 0 (one window) or at least 16 tokens"),
        (StorageSettings, {"STORAGE_API_PORT": "99999"}, "STORAGE_API_PORT='99999': Input should be less"),
        (StorageSettings, {"STORAGE_API_HOST": "localhost:8080"}, "without a port: the port is STORAGE_API_PORT"),
    ],
)
def test_a_services_own_setting_is_checked_before_it_routes_anything(
    refused: Refused, settings: type[ServiceSettings], environment: dict[str, str], said: str
) -> None:
    """``LANGUAGE_ALLOWLIST=english`` sent every article cleanup was sure of to TOPIC_UNSUPPORTED, without a word."""
    assert said in refused(settings, **environment)


def test_the_languages_named_are_those_the_detector_knows() -> None:
    from newsflow_cleanup.language import py3langid_identifier

    assert set(py3langid_identifier([]).nb_classes) == KNOWN_LANGUAGES
    allowed = CleanupSettings(language_allowlist=" EN, de ")
    assert (allowed.language_allowlist, CleanupSettings(language_candidates="").language_candidates) == (" EN, de ", "")


def test_libpqs_sslmode_is_asyncpgs_ssl() -> None:
    """Managed PostgreSQL services hand out `?sslmode=require`: asyncpg refused it, and every replica crash-looped."""
    from newsflow_shared.db.engine import normalise_url

    assert normalise_url("postgresql://u:pw@db/news?sslmode=require") == "postgresql+asyncpg://u:pw@db/news?ssl=require"
    assert (
        normalise_url("postgres://u:pw@db/news?ssl=verify-full") == "postgresql+asyncpg://u:pw@db/news?ssl=verify-full"
    )
    assert ServiceSettings(database_url="postgresql://u:pw@db/news?sslmode=verify-full&command_timeout=30")
    # SQLAlchemy's own forms: a Unix socket's folder (Cloud SQL), several hosts for failover.
    assert ServiceSettings(database_url="postgresql+asyncpg://u:pw@/news?host=/cloudsql/p:r:i")
    assert ServiceSettings(database_url="postgresql+asyncpg://u:pw@/news?host=db1:5432&host=db2:5432")


@pytest.mark.postgres
async def test_sslmode_reaches_a_real_server_as_asyncpgs_ssl(fresh_postgres: str) -> None:
    """The local server speaks no TLS: `prefer` falls back to plain text and `require` is refused by the server's
    answer, not by asyncpg's argument check ("unexpected keyword argument 'sslmode'"): the mode reached the driver."""
    from sqlalchemy import text

    from newsflow_shared.db import make_engine

    async def select_one(mode: str) -> object:
        engine = make_engine(f"{fresh_postgres}?sslmode={mode}")
        try:
            async with engine.connect() as connection:
                return (await connection.execute(text("SELECT 1"))).scalar()
        finally:
            await engine.dispose()

    assert await select_one("prefer") == 1
    assert await select_one("disable") == 1
    with pytest.raises(Exception) as refused:  # noqa: PT011 - asyncpg's TLS refusal differs by version
        await select_one("require")
    assert not isinstance(refused.value, TypeError), refused.value
