"""Fixtures shared by the suites: a real Kafka broker and PostgreSQL, started when the environment has none."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from newsflow_cli.local_kafka import KafkaUnavailable, LocalKafka, free_port

ROOT = Path(__file__).parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Compiling the encoder costs ~10 s per classify start and tests start it many times; one test
# (test_user_models.py) checks that the compiled model gives the eager model's vectors.
os.environ.setdefault("CLASSIFY_COMPILE", "off")
# A watch asked in this process (a test's own liveness checks) must never stop the test run with SIGTERM; the one test
# of the self-stop passes its setting and a signal of its own.
os.environ.setdefault("HEALTH_EXIT_AFTER_S", "0")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a broker of our own for the session."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    try:
        kafka = LocalKafka(tmp_path_factory.mktemp("kafka")).start()
    except KafkaUnavailable as error:
        pytest.fail(f"integration tests need Kafka: {error}")
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """DATABASE_URL_POSTGRES when set, else PostgreSQL from Debian's packages via deploy/local/postgres.sh."""
    if os.environ.get("DATABASE_URL_POSTGRES"):
        yield os.environ["DATABASE_URL_POSTGRES"]
        return
    script = ROOT / "deploy/local/postgres.sh"
    if not shutil.which("runuser") and os.geteuid() == 0:
        pytest.fail("PostgreSQL tests need runuser to start the server as the postgres user")
    result = subprocess.run([str(script), "start"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"PostgreSQL could not be started: {result.stderr.strip()}")
    yield result.stdout.strip()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind in turn, for code whose statements differ by database (bulk parameters as a
    JSON array in SQLite and as arrays in PostgreSQL; asyncpg and SQLite cap a statement's values differently)."""
    return (
        f"sqlite+aiosqlite:///{tmp_path}/newsflow.db"
        if request.param == "sqlite"
        else request.getfixturevalue("fresh_postgres")
    )


@asynccontextmanager
async def database_of_its_own(postgres_url: str) -> AsyncIterator[str]:
    """A new database on the server of ``postgres_url``, dropped afterwards."""
    url = make_url(postgres_url)
    name = f"newsflow_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port, database=url.database
    )
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends the test's own connections, but a role that is not a superuser may not end an autovacuum
        # worker (PostgreSQL 15 refuses with InsufficientPrivilegeError): one that is vacuuming the new tables is
        # waited out, as it finishes within moments.
        for attempt in range(20):
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except asyncpg.exceptions.InsufficientPrivilegeError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        await admin.close()


@pytest.fixture
async def fresh_postgres(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own for one test."""
    async with database_of_its_own(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
async def module_postgres(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own for one module's tests, where setting it up for each would cost too much."""
    async with database_of_its_own(postgres_url) as url:
        yield url


@pytest.fixture
def own_postgres() -> Iterator[tuple[dict[str, str], str]]:
    """A PostgreSQL server of this test's own, so stopping it does not disturb other tests."""
    # Not under pytest's tmp_path: the server runs as the postgres user, who cannot enter root's folders.
    folder = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
    folder.chmod(0o755)
    env = {**os.environ, "NEWSFLOW_PG_DIR": str(folder / "data"), "NEWSFLOW_PG_PORT": str(free_port())}
    script = str(ROOT / "deploy/local/postgres.sh")
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    yield env, started.stdout.strip()
    subprocess.run([script, "stop"], env=env, check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def torch_threads_as_they_were() -> Iterator[None]:
    """Loading a classifier lowers torch's process-wide thread count to one model call's share (CLASSIFY_WORKERS):
    the tests after it in this process get their threads back."""
    yield
    if (torch := sys.modules.get("torch")) is not None:
        from newsflow_classify.workers import TORCH_DEFAULT_THREADS

        torch.set_num_threads(TORCH_DEFAULT_THREADS)
